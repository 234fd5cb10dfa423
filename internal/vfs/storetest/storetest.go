// Package storetest is the conformance suite of vfs.Store: what the FS
// above a store relies on, checked the same way on every store (local
// disk, memory, a bucket). It assumes no symlinks, modes or capacity, and
// runs the checks of an optional capability (Renamer, Resumer, ...) only
// on a store that has it.
//
// Errors are judged with errors.Is against io/fs sentinels and errnos, so
// a store's raw errors pass as they are.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// Options relax the suite for a store that differs where the contract
// lets it.
type Options struct {
	// InPlace is for a store that writes an upload under its name as the
	// bytes arrive (local with uploads.atomic off): the checks that
	// nothing shows before Commit, that an abort leaves the old file,
	// that two uploads of one name do not mix and that a broken upload
	// leaves a partial are skipped. A broken upload must then leave what
	// it received under the name, and a resume continue from there.
	InPlace bool
	// ShortPartials is for a store whose partial may hold less than a
	// broken upload received, or nothing (a bucket keeps whole parts
	// only). Its size must still be where a resume continues.
	ShortPartials bool
	// Objects is for a store of objects (a bucket): a size changes only by
	// an upload, so Truncate is checked to refuse any other size, and
	// modes and times are the store's own, so setting them is checked to
	// be accepted (setstat: ignore) without checking what they became.
	Objects bool
}

// Run runs the suite with no relaxations. newStore returns an empty store
// for each subtest and registers with t.Cleanup whatever lies beneath it
// (a directory, a bucket prefix); Run closes the store itself.
func Run(t *testing.T, newStore func(t *testing.T) vfs.Store) {
	RunWith(t, Options{}, newStore)
}

// RunWith runs the suite as o says.
func RunWith(t *testing.T, o Options, newStore func(t *testing.T) vfs.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s vfs.Store, o Options)
	}{
		{"RootIsDir", testRootIsDir},
		{"Dirs", testDirs},
		{"RmdirNotEmpty", testRmdirNotEmpty},
		{"Remove", testRemove},
		{"UploadOutOfOrder", testUploadOutOfOrder},
		{"Sizes", testSizes},
		{"Open", testOpen},
		{"InvisibleBeforeCommit", testInvisibleBeforeCommit},
		{"AbortDetached", testAbortDetached},
		{"AbortBrokenThenResume", testAbortBrokenThenResume},
		{"AbortEmptyKeepsNothing", testAbortEmptyKeepsNothing},
		{"ContinueAppends", testContinueAppends},
		{"Exclusive", testExclusive},
		{"MustExist", testMustExist},
		{"ConcurrentUploadsOfOneName", testConcurrentUploads},
		{"CreateOnDir", testCreateOnDir},
		{"Rename", testRename},
		{"CommitDropsPartial", testCommitDropsPartial},
		{"RenameDropsPartial", testRenameDropsPartial},
		{"Truncate", testTruncate},
		{"TruncatePartial", testTruncatePartial},
		{"RemoveDropsPartial", testRemoveDropsPartial},
		{"RmdirWithPartial", testRmdirWithPartial},
		{"Attrs", testAttrs},
		{"UploadCapabilities", testUploadCapabilities},
		{"ListMany", testListMany},
		{"OddNames", testOddNames},
		{"ListerClosedEarly", testListerClosedEarly},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close the store: %v", err)
				}
			})
			tc.run(t, s, o)
		})
	}
}

func testRootIsDir(t *testing.T, s vfs.Store, _ Options) {
	fi, err := s.Stat("/")
	if err != nil {
		t.Fatalf("stat /: %v", err)
	}
	if !fi.IsDir() {
		t.Errorf("stat / is not a directory: mode %v", fi.Mode())
	}
	if got := names(t, s, "/"); len(got) != 0 {
		t.Errorf("a new store lists %q", got)
	}
}

func testDirs(t *testing.T, s vfs.Store, _ Options) {
	mustNil(t, "mkdir /d", s.Mkdir("/d"))
	mustNil(t, "mkdir /d/e", s.Mkdir("/d/e"))
	for _, p := range []string{"/d", "/d/e"} {
		fi, err := s.Stat(p)
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		if !fi.IsDir() {
			t.Errorf("%s is not a directory: mode %v", p, fi.Mode())
		}
		if fi.Name() != path.Base(p) {
			t.Errorf("stat %s: name %q", p, fi.Name())
		}
	}
	entries := list(t, s, "/", 100)
	if len(entries) != 1 || entries[0].Name() != "d" || !entries[0].IsDir() {
		t.Errorf("list / = %v, want the directory d", describe(entries))
	}
	wantErr(t, "mkdir of an existing directory", s.Mkdir("/d"), fs.ErrExist)
	wantErr(t, "mkdir below a missing directory", s.Mkdir("/missing/x"), fs.ErrNotExist)
	wantErr(t, "rmdir of a missing directory", s.Rmdir("/missing"), fs.ErrNotExist)

	put(t, s, "/file", []byte("x"))
	if err := s.Rmdir("/file"); err == nil {
		t.Error("rmdir of a file succeeded")
	}
	if got := read(t, s, "/file"); string(got) != "x" {
		t.Errorf("after a failed rmdir the file holds %q", got)
	}

	mustNil(t, "rmdir /d/e", s.Rmdir("/d/e"))
	mustNil(t, "rmdir /d", s.Rmdir("/d"))
	wantErr(t, "stat of a removed directory", statErr(s, "/d"), fs.ErrNotExist)
	if got := names(t, s, "/"); !slices.Equal(got, []string{"file"}) {
		t.Errorf("list / = %q, want [file]", got)
	}
}

func testRmdirNotEmpty(t *testing.T, s vfs.Store, _ Options) {
	mustNil(t, "mkdir", s.Mkdir("/d"))
	put(t, s, "/d/f", []byte("data"))
	if err := s.Rmdir("/d"); !NotEmpty(err) {
		t.Errorf("rmdir of a directory holding a file: %v, want ENOTEMPTY or EEXIST", err)
	}
	mustNil(t, "mkdir", s.Mkdir("/e"))
	mustNil(t, "mkdir", s.Mkdir("/e/sub"))
	if err := s.Rmdir("/e"); !NotEmpty(err) {
		t.Errorf("rmdir of a directory holding a directory: %v, want ENOTEMPTY or EEXIST", err)
	}
	if got := read(t, s, "/d/f"); string(got) != "data" {
		t.Errorf("after a failed rmdir the file holds %q", got)
	}
	mustNil(t, "remove", s.Remove("/d/f"))
	mustNil(t, "rmdir once empty", s.Rmdir("/d"))
}

// NotEmpty reports whether err is a refusal to remove a directory that
// holds something: ENOTEMPTY, or EEXIST, which POSIX allows instead.
func NotEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, fs.ErrExist)
}

func testRemove(t *testing.T, s vfs.Store, _ Options) {
	put(t, s, "/f", []byte("data"))
	mustNil(t, "remove", s.Remove("/f"))
	missing(t, s, "/f")
	wantErr(t, "remove of a missing name", s.Remove("/f"), fs.ErrNotExist)
	wantErr(t, "remove below a missing directory", s.Remove("/missing/f"), fs.ErrNotExist)

	mustNil(t, "mkdir", s.Mkdir("/d"))
	wantErr(t, "remove of a directory", s.Remove("/d"), syscall.EISDIR)
	if fi, err := s.Stat("/d"); err != nil || !fi.IsDir() {
		t.Errorf("the directory after remove: %v, %v", fi, err)
	}
}

// testUploadOutOfOrder writes 64 chunks of 32 KiB from 8 goroutines in
// shuffled order, as pkg/sftp's workers do, and reads the file back whole,
// from the middle and at random ranges.
func testUploadOutOfOrder(t *testing.T, s vfs.Store, _ Options) {
	const chunk, chunks, workers = 32 << 10, 64, 8
	data := Bytes(1, chunk*chunks)
	u, err := s.Create("/big", vfs.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	order := rand.New(rand.NewPCG(1, 2)).Perm(chunks)
	work := make(chan int)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range workers {
		wg.Go(func() {
			for i := range work {
				off := i * chunk
				if n, err := u.WriteAt(data[off:off+chunk], int64(off)); err != nil || n != chunk {
					mu.Lock()
					errs = append(errs, fmt.Errorf("write chunk %d: %d, %w", i, n, err))
					mu.Unlock()
				}
			}
		})
	}
	for _, i := range order {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if fi, err := u.Stat(); err != nil || fi.Size() != int64(len(data)) {
		t.Errorf("upload stat before commit: %v, %v; want size %d", fi, err, len(data))
	}
	mustNil(t, "commit", u.Commit())

	if fi, err := s.Stat("/big"); err != nil || fi.Size() != int64(len(data)) || !fi.Mode().IsRegular() {
		t.Fatalf("stat after commit: %v, %v; want a file of %d bytes", fi, err, len(data))
	}
	same(t, "read from 0", read(t, s, "/big"), data)
	mid := int64(len(data)/2 + 12345)
	same(t, "read from the middle", readFrom(t, s, "/big", mid), data[mid:])

	f, err := s.Open("/big", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != int64(len(data)) {
		t.Errorf("file stat: %v, %v", fi, err)
	}
	// pkg/sftp reads at the offsets clients ask, from several goroutines.
	ranges := rand.New(rand.NewPCG(3, 4))
	type span struct{ off, n int }
	spans := make([]span, 64)
	for i := range spans {
		off := ranges.IntN(len(data))
		spans[i] = span{off, 1 + ranges.IntN(min(len(data)-off, 100<<10))}
	}
	var rg sync.WaitGroup
	readErrs := make(chan error, len(spans))
	for _, sp := range spans {
		rg.Go(func() {
			buf := make([]byte, sp.n)
			n, err := f.ReadAt(buf, int64(sp.off))
			if n != sp.n || (err != nil && !(errors.Is(err, io.EOF) && sp.off+sp.n == len(data))) {
				readErrs <- fmt.Errorf("ReadAt(%d bytes at %d) = %d, %w", sp.n, sp.off, n, err)
				return
			}
			if !bytes.Equal(buf, data[sp.off:sp.off+sp.n]) {
				readErrs <- fmt.Errorf("ReadAt(%d bytes at %d) read other bytes", sp.n, sp.off)
			}
		})
	}
	rg.Wait()
	close(readErrs)
	for err := range readErrs {
		t.Error(err)
	}
	buf := make([]byte, 10)
	if n, err := f.ReadAt(buf, int64(len(data))-4); n != 4 || !errors.Is(err, io.EOF) {
		t.Errorf("ReadAt across the end = %d, %v; want 4, io.EOF", n, err)
	}
	if _, err := f.ReadAt(buf, int64(len(data))); !errors.Is(err, io.EOF) {
		t.Errorf("ReadAt at the end: %v, want io.EOF", err)
	}
}

func testSizes(t *testing.T, s vfs.Store, _ Options) {
	for i, size := range []int{0, 1, 1<<20 + 1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			name := fmt.Sprintf("/size-%d", size)
			data := Bytes(uint64(10+i), size)
			put(t, s, name, data)
			fi, err := s.Stat(name)
			if err != nil || fi.Size() != int64(size) || fi.IsDir() {
				t.Fatalf("stat: %v, %v; want a file of %d bytes", fi, err, size)
			}
			same(t, "read", read(t, s, name), data)
		})
	}
}

func testOpen(t *testing.T, s vfs.Store, _ Options) {
	wantErr(t, "open of a missing name", openErr(s, "/missing"), fs.ErrNotExist)
	mustNil(t, "mkdir", s.Mkdir("/d"))
	if err := openErr(s, "/d"); err == nil {
		t.Error("open of a directory for reading succeeded")
	}
	put(t, s, "/f", []byte("0123456789"))
	if got := readFrom(t, s, "/f", 4); string(got) != "456789" {
		t.Errorf("read from 4 = %q", got)
	}
	if got := readFrom(t, s, "/f", 10); len(got) != 0 {
		t.Errorf("read from the end = %q", got)
	}
	if got := readFrom(t, s, "/f", 20); len(got) != 0 {
		t.Errorf("read from past the end = %q", got)
	}
}

// testInvisibleBeforeCommit checks that an upload shows neither under its
// name nor under any other before Commit, new or replacing a file.
func testInvisibleBeforeCommit(t *testing.T, s vfs.Store, o Options) {
	if o.InPlace {
		t.Skip("the store writes uploads in place")
	}
	u, err := s.Create("/new", vfs.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, Bytes(5, 100<<10), 0)
	missing(t, s, "/new")
	if got := names(t, s, "/"); len(got) != 0 {
		t.Errorf("before commit the home lists %q", got)
	}
	mustNil(t, "commit", u.Commit())
	if got := names(t, s, "/"); !slices.Equal(got, []string{"new"}) {
		t.Errorf("after commit the home lists %q", got)
	}

	old := []byte("the old content")
	put(t, s, "/old", old)
	u, err = s.Create("/old", vfs.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, []byte("new and longer content"), 0)
	if fi, err := s.Stat("/old"); err != nil || fi.Size() != int64(len(old)) {
		t.Errorf("stat of the name being replaced: %v, %v; want the old file", fi, err)
	}
	same(t, "the name being replaced", read(t, s, "/old"), old)
	mustNil(t, "commit", u.Commit())
	same(t, "after commit", read(t, s, "/old"), []byte("new and longer content"))
}

func testAbortDetached(t *testing.T, s vfs.Store, o Options) {
	if o.InPlace {
		t.Skip("the store writes uploads in place")
	}
	u, err := s.Create("/new", vfs.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, Bytes(6, 10<<10), 0)
	mustNil(t, "abort", u.Abort(vfs.ErrDetached))
	missing(t, s, "/new")
	noPartial(t, s, "/new")

	put(t, s, "/old", []byte("old"))
	u, err = s.Create("/old", vfs.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, []byte("new"), 0)
	mustNil(t, "abort", u.Abort(vfs.ErrDetached))
	same(t, "after a detached upload", read(t, s, "/old"), []byte("old"))
	noPartial(t, s, "/old")
	if got := names(t, s, "/"); !slices.Equal(got, []string{"old"}) {
		t.Errorf("the home lists %q", got)
	}
}

// testAbortBrokenThenResume breaks an upload that replaces a file, then
// resumes it, as reput does after a dropped connection.
func testAbortBrokenThenResume(t *testing.T, s vfs.Store, o Options) {
	old := []byte("the old content")
	put(t, s, "/f", old)
	whole := Bytes(7, 300<<10)
	received := whole[:200<<10]
	u, err := s.Create("/f", vfs.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, received, 0)
	mustNil(t, "abort", u.Abort(errors.New("broken")))

	resumer, canResume := s.(vfs.Resumer)
	var at int64 // where the resume continues
	switch {
	case o.InPlace:
		fi, err := s.Stat("/f")
		if err != nil || fi.Size() != int64(len(received)) {
			t.Fatalf("stat after a broken in-place upload: %v, %v; want %d bytes", fi, err, len(received))
		}
		at = fi.Size()
	case !canResume:
		same(t, "after a broken upload", read(t, s, "/f"), old)
		t.Skip("the store keeps no partials")
	default:
		same(t, "after a broken upload", read(t, s, "/f"), old)
		fi, err := resumer.Partial("/f")
		switch {
		case o.ShortPartials && errors.Is(err, fs.ErrNotExist):
			// A Continue would start from the old file.
			t.Skip("the store kept no partial of this size")
		case err != nil:
			t.Fatalf("partial after a broken upload: %v", err)
		case fi.Size() == int64(len(received)), o.ShortPartials && fi.Size() <= int64(len(received)):
			at = fi.Size()
		default:
			t.Fatalf("partial of %d bytes, want %d", fi.Size(), len(received))
		}
		if got := names(t, s, "/"); !slices.Equal(got, []string{"f"}) {
			t.Errorf("the home lists %q", got)
		}
	}

	u, err = s.Create("/f", vfs.CreateOptions{Continue: true})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := u.Stat(); err != nil || fi.Size() != at {
		t.Fatalf("resumed upload stat: %v, %v; want size %d", fi, err, at)
	}
	write(t, u, whole[at:], at)
	mustNil(t, "commit", u.Commit())
	same(t, "after the resume", read(t, s, "/f"), whole)
	if canResume {
		noPartial(t, s, "/f")
	}
}

// testAbortEmptyKeepsNothing checks that a broken upload that received
// nothing keeps no partial and leaves the name as it was.
func testAbortEmptyKeepsNothing(t *testing.T, s vfs.Store, o Options) {
	u, err := s.Create("/new", vfs.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustNil(t, "abort", u.Abort(errors.New("broken")))
	noPartial(t, s, "/new")
	if !o.InPlace {
		missing(t, s, "/new")
	}
}

func testContinueAppends(t *testing.T, s vfs.Store, _ Options) {
	put(t, s, "/log", []byte("hello"))
	u, err := s.Create("/log", vfs.CreateOptions{Continue: true})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := u.Stat(); err != nil || fi.Size() != 5 {
		t.Fatalf("continued upload stat: %v, %v; want size 5", fi, err)
	}
	write(t, u, []byte(" world"), 5)
	mustNil(t, "commit", u.Commit())
	same(t, "appended", read(t, s, "/log"), []byte("hello world"))

	// Continuing, writing nothing and committing leaves the file whole.
	u, err = s.Create("/log", vfs.CreateOptions{Continue: true})
	if err != nil {
		t.Fatal(err)
	}
	mustNil(t, "commit", u.Commit())
	same(t, "continued with nothing written", read(t, s, "/log"), []byte("hello world"))

	// Continue on a missing name starts empty.
	u, err = s.Create("/fresh", vfs.CreateOptions{Continue: true})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := u.Stat(); err != nil || fi.Size() != 0 {
		t.Fatalf("continued upload of a new name: %v, %v; want size 0", fi, err)
	}
	write(t, u, []byte("x"), 0)
	mustNil(t, "commit", u.Commit())
	same(t, "new name continued", read(t, s, "/fresh"), []byte("x"))
}

func testExclusive(t *testing.T, s vfs.Store, o Options) {
	put(t, s, "/f", []byte("first"))
	_, err := s.Create("/f", vfs.CreateOptions{Exclusive: true})
	wantErr(t, "exclusive create of an existing file", err, fs.ErrExist)
	same(t, "after a refused exclusive create", read(t, s, "/f"), []byte("first"))

	u, err := s.Create("/g", vfs.CreateOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, []byte("mine"), 0)
	if !o.InPlace {
		// Another upload completes the name first: the exclusive one must
		// not replace it.
		put(t, s, "/g", []byte("theirs"))
		wantErr(t, "exclusive commit after another commit", u.Commit(), fs.ErrExist)
		same(t, "after a refused exclusive commit", read(t, s, "/g"), []byte("theirs"))
	} else {
		mustNil(t, "commit", u.Commit())
	}

	// A partial does not count: an upload-only user may resume.
	if _, ok := s.(vfs.Resumer); !ok || o.InPlace {
		return
	}
	if !leavePartial(t, s, "/h", []byte("part"), o) {
		return
	}
	u, err = s.Create("/h", vfs.CreateOptions{Exclusive: true, Continue: true})
	if err != nil {
		t.Fatalf("exclusive resume of a partial: %v", err)
	}
	fi, err := u.Stat()
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, []byte("part-rest")[fi.Size():], fi.Size())
	mustNil(t, "commit", u.Commit())
	same(t, "exclusive resume", read(t, s, "/h"), []byte("part-rest"))
}

func testMustExist(t *testing.T, s vfs.Store, o Options) {
	_, err := s.Create("/missing", vfs.CreateOptions{MustExist: true})
	wantErr(t, "create of a missing name that must exist", err, fs.ErrNotExist)
	missing(t, s, "/missing")

	put(t, s, "/f", []byte("old"))
	u, err := s.Create("/f", vfs.CreateOptions{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, []byte("new"), 0)
	mustNil(t, "commit", u.Commit())
	same(t, "replaced", read(t, s, "/f"), []byte("new"))

	if _, ok := s.(vfs.Resumer); !ok || o.InPlace {
		return
	}
	if !leavePartial(t, s, "/p", []byte("partial"), o) {
		return
	}
	u, err = s.Create("/p", vfs.CreateOptions{MustExist: true, Continue: true})
	if err != nil {
		t.Fatalf("create of a name with only a partial: %v", err)
	}
	mustNil(t, "abort", u.Abort(vfs.ErrDetached))
}

// testConcurrentUploads runs two uploads of one name side by side: the
// last to commit wins, whole, with none of the other's bytes.
func testConcurrentUploads(t *testing.T, s vfs.Store, o Options) {
	if o.InPlace {
		t.Skip("the store writes uploads in place")
	}
	const size = 256 << 10
	a, b := Bytes(20, size), Bytes(21, size)
	for _, lastA := range []bool{false, true} {
		ua, err := s.Create("/f", vfs.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ub, err := s.Create("/f", vfs.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, w := range []struct {
			u    vfs.Upload
			data []byte
		}{{ua, a}, {ub, b}} {
			wg.Go(func() {
				for off := 0; off < size; off += 16 << 10 {
					if _, err := w.u.WriteAt(w.data[off:off+16<<10], int64(off)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		first, last, want := ua, ub, b
		if lastA {
			first, last, want = ub, ua, a
		}
		mustNil(t, "first commit", first.Commit())
		mustNil(t, "last commit", last.Commit())
		same(t, "after two uploads", read(t, s, "/f"), want)
	}
}

// testCreateOnDir checks that an upload never replaces a directory.
func testCreateOnDir(t *testing.T, s vfs.Store, _ Options) {
	mustNil(t, "mkdir", s.Mkdir("/d"))
	put(t, s, "/d/f", []byte("x"))
	for _, name := range []string{"/d", "/"} {
		u, err := s.Create(name, vfs.CreateOptions{})
		if err == nil {
			write(t, u, []byte("file"), 0)
			if err = u.Commit(); err == nil {
				t.Errorf("an upload of the directory %s committed", name)
			}
		}
		if fi, err := s.Stat(name); err != nil || !fi.IsDir() {
			t.Errorf("%s after an upload onto it: %v, %v", name, fi, err)
		}
	}
	same(t, "the file in the directory", read(t, s, "/d/f"), []byte("x"))
}

func testRename(t *testing.T, s vfs.Store, _ Options) {
	r, ok := s.(vfs.Renamer)
	if !ok {
		t.Skip("not a Renamer")
	}
	put(t, s, "/a", []byte("a"))
	mustNil(t, "rename a file", r.Rename("/a", "/b"))
	missing(t, s, "/a")
	same(t, "renamed file", read(t, s, "/b"), []byte("a"))

	put(t, s, "/c", []byte("c content"))
	mustNil(t, "rename onto a file", r.Rename("/b", "/c"))
	missing(t, s, "/b")
	same(t, "replaced file", read(t, s, "/c"), []byte("a"))

	mustNil(t, "mkdir", s.Mkdir("/d"))
	mustNil(t, "mkdir", s.Mkdir("/d/sub"))
	put(t, s, "/d/sub/f", []byte("deep"))
	mustNil(t, "rename a directory", r.Rename("/d", "/e"))
	missing(t, s, "/d")
	if fi, err := s.Stat("/e/sub"); err != nil || !fi.IsDir() {
		t.Errorf("renamed directory's subdirectory: %v, %v", fi, err)
	}
	same(t, "file in the renamed directory", read(t, s, "/e/sub/f"), []byte("deep"))

	mustNil(t, "mkdir", s.Mkdir("/into"))
	mustNil(t, "rename into a directory", r.Rename("/c", "/into/c"))
	same(t, "file moved into a directory", read(t, s, "/into/c"), []byte("a"))

	wantErr(t, "rename of a missing name", r.Rename("/missing", "/x"), fs.ErrNotExist)
	missing(t, s, "/x")
}

// testCommitDropsPartial checks that an upload that starts afresh and
// completes drops the name's older partial, which would describe another
// file.
func testCommitDropsPartial(t *testing.T, s vfs.Store, o Options) {
	if _, ok := s.(vfs.Resumer); !ok || o.InPlace {
		t.Skip("not a Resumer with partials")
	}
	if !leavePartial(t, s, "/f", []byte("partial"), o) {
		t.Skip("the store kept no partial")
	}
	put(t, s, "/f", []byte("complete"))
	noPartial(t, s, "/f")
	same(t, "committed", read(t, s, "/f"), []byte("complete"))

	// An upload that breaks before it receives anything leaves an older
	// partial as it was.
	if !leavePartial(t, s, "/g", []byte("partial"), o) {
		return
	}
	u, err := s.Create("/g", vfs.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustNil(t, "abort", u.Abort(errors.New("broken")))
	if fi, err := s.(vfs.Resumer).Partial("/g"); err != nil || fi.Size() == 0 {
		t.Errorf("the older partial after an empty broken upload: %v, %v", fi, err)
	}
}

func testRenameDropsPartial(t *testing.T, s vfs.Store, o Options) {
	r, ok := s.(vfs.Renamer)
	if _, resumes := s.(vfs.Resumer); !ok || !resumes || o.InPlace {
		t.Skip("not a Renamer and Resumer with partials")
	}
	if !leavePartial(t, s, "/f", []byte("partial"), o) {
		t.Skip("the store kept no partial")
	}
	put(t, s, "/other", []byte("other"))
	mustNil(t, "rename onto a name with a partial", r.Rename("/other", "/f"))
	noPartial(t, s, "/f")
	same(t, "renamed", read(t, s, "/f"), []byte("other"))
}

func testTruncate(t *testing.T, s vfs.Store, o Options) {
	tr, ok := s.(vfs.Truncater)
	if !ok {
		t.Skip("not a Truncater")
	}
	put(t, s, "/f", []byte("0123456789"))
	if o.Objects {
		mustNil(t, "truncate to the size", tr.Truncate("/f", 10))
		if err := tr.Truncate("/f", 4); err == nil {
			t.Error("truncate of an object to another size succeeded")
		}
		same(t, "untouched", read(t, s, "/f"), []byte("0123456789"))
		return
	}
	mustNil(t, "truncate to 4", tr.Truncate("/f", 4))
	same(t, "shrunk", read(t, s, "/f"), []byte("0123"))
	mustNil(t, "truncate to 8", tr.Truncate("/f", 8))
	same(t, "grown", read(t, s, "/f"), []byte("0123\x00\x00\x00\x00"))
	mustNil(t, "truncate to 0", tr.Truncate("/f", 0))
	if fi, err := s.Stat("/f"); err != nil || fi.Size() != 0 {
		t.Errorf("after truncate to 0: %v, %v", fi, err)
	}
	wantErr(t, "truncate of a missing name", tr.Truncate("/missing", 1), fs.ErrNotExist)
	missing(t, s, "/missing")
}

// testTruncatePartial checks that Truncate resizes the partial, which is
// what a client that stats the name sees, and leaves the file alone.
func testTruncatePartial(t *testing.T, s vfs.Store, o Options) {
	tr, ok := s.(vfs.Truncater)
	resumer, resumes := s.(vfs.Resumer)
	if !ok || !resumes || o.InPlace || o.Objects {
		t.Skip("not a Truncater and Resumer with partials of any size")
	}
	put(t, s, "/f", []byte("complete file"))
	if !leavePartial(t, s, "/f", []byte("partial bytes"), o) {
		t.Skip("the store kept no partial")
	}
	mustNil(t, "truncate", tr.Truncate("/f", 3))
	if fi, err := resumer.Partial("/f"); err != nil || fi.Size() != 3 {
		t.Errorf("partial after truncate: %v, %v; want size 3", fi, err)
	}
	same(t, "the file", read(t, s, "/f"), []byte("complete file"))
}

func testRemoveDropsPartial(t *testing.T, s vfs.Store, o Options) {
	if _, ok := s.(vfs.Resumer); !ok || o.InPlace {
		t.Skip("not a Resumer with partials")
	}
	put(t, s, "/f", []byte("file"))
	if !leavePartial(t, s, "/f", []byte("partial"), o) {
		t.Skip("the store kept no partial")
	}
	mustNil(t, "remove", s.Remove("/f"))
	missing(t, s, "/f")
	noPartial(t, s, "/f")

	// A partial alone is enough for a remove to succeed.
	leavePartial(t, s, "/g", []byte("partial"), o)
	mustNil(t, "remove of a name with only a partial", s.Remove("/g"))
	noPartial(t, s, "/g")
	wantErr(t, "second remove", s.Remove("/g"), fs.ErrNotExist)
}

func testRmdirWithPartial(t *testing.T, s vfs.Store, o Options) {
	if _, ok := s.(vfs.Resumer); !ok || o.InPlace {
		t.Skip("not a Resumer with partials")
	}
	mustNil(t, "mkdir", s.Mkdir("/d"))
	if !leavePartial(t, s, "/d/f", []byte("partial"), o) {
		t.Skip("the store kept no partial")
	}
	if got := names(t, s, "/d"); len(got) != 0 {
		t.Errorf("a directory holding a partial lists %q", got)
	}
	mustNil(t, "rmdir of a directory holding only a partial", s.Rmdir("/d"))
	missing(t, s, "/d")
	mustNil(t, "mkdir again", s.Mkdir("/d"))
	noPartial(t, s, "/d/f")
}

func testAttrs(t *testing.T, s vfs.Store, o Options) {
	put(t, s, "/f", []byte("x"))
	mustNil(t, "mkdir", s.Mkdir("/d"))
	if o.Objects {
		when := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		if c, ok := s.(vfs.Chmoder); ok {
			mustNil(t, "chmod (ignored)", c.Chmod("/f", 0o600))
		}
		if c, ok := s.(vfs.Chtimeser); ok {
			mustNil(t, "chtimes (ignored)", c.Chtimes("/f", when, when))
		}
		same(t, "untouched", read(t, s, "/f"), []byte("x"))
		return
	}
	t.Run("Chmod", func(t *testing.T) {
		c, ok := s.(vfs.Chmoder)
		if !ok {
			t.Skip("not a Chmoder")
		}
		mustNil(t, "chmod", c.Chmod("/f", 0o600))
		if fi, err := s.Stat("/f"); err != nil || fi.Mode().Perm() != 0o600 || !fi.Mode().IsRegular() {
			t.Errorf("after chmod 0600: %v, %v", fi, err)
		}
		mustNil(t, "chmod of a directory", c.Chmod("/d", 0o700))
		if fi, err := s.Stat("/d"); err != nil || fi.Mode().Perm() != 0o700 || !fi.IsDir() {
			t.Errorf("after chmod 0700: %v, %v", fi, err)
		}
		wantErr(t, "chmod of a missing name", c.Chmod("/missing", 0o600), fs.ErrNotExist)
	})
	t.Run("Chtimes", func(t *testing.T) {
		c, ok := s.(vfs.Chtimeser)
		if !ok {
			t.Skip("not a Chtimeser")
		}
		when := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		for _, p := range []string{"/f", "/d"} {
			mustNil(t, "chtimes "+p, c.Chtimes(p, when, when))
			if fi, err := s.Stat(p); err != nil || !fi.ModTime().Equal(when) {
				t.Errorf("%s after chtimes: %v, %v; want mtime %v", p, fi, err, when)
			}
		}
		wantErr(t, "chtimes of a missing name", c.Chtimes("/missing", when, when), fs.ErrNotExist)
	})
}

func testUploadCapabilities(t *testing.T, s vfs.Store, o Options) {
	t.Run("Reader", func(t *testing.T) {
		u, err := s.Create("/r", vfs.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer u.Abort(vfs.ErrDetached)
		r, ok := u.(vfs.UploadReader)
		if !ok {
			t.Skip("not an UploadReader")
		}
		write(t, u, []byte("0123456789"), 0)
		buf := make([]byte, 4)
		if n, err := r.ReadAt(buf, 3); n != 4 || err != nil || string(buf) != "3456" {
			t.Errorf("ReadAt(4 at 3) = %d %q, %v", n, buf[:n], err)
		}
		if n, err := r.ReadAt(buf, 8); n != 2 || !errors.Is(err, io.EOF) {
			t.Errorf("ReadAt across the end = %d, %v; want 2, io.EOF", n, err)
		}
	})
	t.Run("Truncater", func(t *testing.T) {
		u, err := s.Create("/t", vfs.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tr, ok := u.(vfs.UploadTruncater)
		if !ok {
			mustNil(t, "abort", u.Abort(vfs.ErrDetached))
			t.Skip("not an UploadTruncater")
		}
		write(t, u, []byte("0123456789"), 0)
		mustNil(t, "truncate to 3", tr.Truncate(3))
		if fi, err := u.Stat(); err != nil || fi.Size() != 3 {
			t.Errorf("upload stat after truncate: %v, %v", fi, err)
		}
		mustNil(t, "truncate to 5", tr.Truncate(5))
		write(t, u, []byte("x"), 6) // past a hole
		mustNil(t, "commit", u.Commit())
		same(t, "truncated upload", read(t, s, "/t"), []byte("012\x00\x00\x00x"))
	})
	t.Run("Attrs", func(t *testing.T) {
		u, err := s.Create("/a", vfs.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		a, ok := u.(vfs.UploadAttrs)
		if !ok {
			mustNil(t, "abort", u.Abort(vfs.ErrDetached))
			t.Skip("not UploadAttrs")
		}
		write(t, u, []byte("x"), 0)
		when := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		mustNil(t, "chtimes", a.Chtimes(when, when))
		mustNil(t, "chmod", a.Chmod(0o600))
		mustNil(t, "commit", u.Commit())
		fi, err := s.Stat("/a")
		if err != nil {
			t.Fatal(err)
		}
		if o.Objects {
			return // accepted, and the store's own
		}
		if !fi.ModTime().Equal(when) {
			t.Errorf("mtime %v, want %v", fi.ModTime(), when)
		}
		if _, modes := s.(vfs.Chmoder); modes && fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode())
		}
	})
}

// testListMany lists 2,500 entries in chunks of 100: each comes exactly
// once.
func testListMany(t *testing.T, s vfs.Store, _ Options) {
	const n = 2500
	mustNil(t, "mkdir", s.Mkdir("/many"))
	for i := range n {
		if i%10 == 0 {
			mustNil(t, "mkdir", s.Mkdir(fmt.Sprintf("/many/d%04d", i)))
			continue
		}
		put(t, s, fmt.Sprintf("/many/f%04d", i), nil)
	}
	seen := map[string]int{}
	for _, fi := range list(t, s, "/many", 100) {
		seen[fi.Name()]++
		if wantDir := fi.Name()[0] == 'd'; fi.IsDir() != wantDir {
			t.Errorf("%s: IsDir %v", fi.Name(), fi.IsDir())
		}
	}
	for name, k := range seen {
		if k != 1 {
			t.Errorf("%s listed %d times", name, k)
		}
	}
	if len(seen) != n {
		t.Errorf("listed %d names, want %d", len(seen), n)
	}
}

func testOddNames(t *testing.T, s vfs.Store, _ Options) {
	for _, name := range []string{
		"with space", " leading space", "trailing space ", "ünïcødé-文件-✓", "emoji 🚚",
		".profile", "..double", "...", "a+b=c&d#e%f", "quote'd", "semi;colon", "x.tar.gz",
	} {
		t.Run(name, func(t *testing.T) {
			dir := "/dir " + name
			mustNil(t, "mkdir", s.Mkdir(dir))
			file := dir + "/" + name
			put(t, s, file, []byte(name))
			if got := names(t, s, dir); !slices.Equal(got, []string{name}) {
				t.Errorf("list %q = %q", dir, got)
			}
			if fi, err := s.Stat(file); err != nil || fi.Name() != name || fi.Size() != int64(len(name)) {
				t.Errorf("stat %q: %v, %v", file, fi, err)
			}
			same(t, "read", read(t, s, file), []byte(name))
			mustNil(t, "remove", s.Remove(file))
			mustNil(t, "rmdir", s.Rmdir(dir))
		})
	}
}

func testListerClosedEarly(t *testing.T, s vfs.Store, _ Options) {
	for i := range 10 {
		put(t, s, fmt.Sprintf("/f%d", i), nil)
	}
	l, err := s.List("/")
	if err != nil {
		t.Fatal(err)
	}
	if fis, err := l.Next(3); len(fis) == 0 || len(fis) > 3 || (err != nil && !errors.Is(err, io.EOF)) {
		t.Errorf("Next(3) = %d entries, %v", len(fis), err)
	}
	mustNil(t, "close a lister early", l.Close())
	// The directory is not held: it lists again, and goes once empty.
	if got := names(t, s, "/"); len(got) != 10 {
		t.Errorf("listed %d names after an early close, want 10", len(got))
	}
	mustNil(t, "mkdir", s.Mkdir("/d"))
	put(t, s, "/d/f", nil)
	l, err = s.List("/d")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Next(1); err != nil && !errors.Is(err, io.EOF) {
		t.Errorf("Next(1): %v", err)
	}
	mustNil(t, "close", l.Close())
	mustNil(t, "remove", s.Remove("/d/f"))
	mustNil(t, "rmdir after an early close", s.Rmdir("/d"))
}

// Bytes returns n deterministic pseudo-random bytes for seed.
func Bytes(seed uint64, n int) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b) // never fails
	return b
}

// put uploads data as name and commits it.
func put(t *testing.T, s vfs.Store, name string, data []byte) {
	t.Helper()
	u, err := s.Create(name, vfs.CreateOptions{})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	write(t, u, data, 0)
	if err := u.Commit(); err != nil {
		t.Fatalf("commit %s: %v", name, err)
	}
}

// leavePartial leaves data as the partial of name, as a broken upload
// does, and reports whether the store kept one (with ShortPartials it may
// keep none).
func leavePartial(t *testing.T, s vfs.Store, name string, data []byte, o Options) bool {
	t.Helper()
	u, err := s.Create(name, vfs.CreateOptions{})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	write(t, u, data, 0)
	if err := u.Abort(errors.New("broken")); err != nil {
		t.Fatalf("abort %s: %v", name, err)
	}
	fi, err := s.(vfs.Resumer).Partial(name)
	switch {
	case err == nil && (fi.Size() == int64(len(data)) || o.ShortPartials && fi.Size() <= int64(len(data))):
		return true
	case err == nil:
		t.Fatalf("partial of %s: %d bytes, want %d", name, fi.Size(), len(data))
	case o.ShortPartials && errors.Is(err, fs.ErrNotExist):
		return false
	}
	t.Fatalf("partial of %s: %v", name, err)
	return false
}

// write writes data at off in chunks of 64 KiB, in order.
func write(t *testing.T, u vfs.Upload, data []byte, off int64) {
	t.Helper()
	for len(data) > 0 {
		n := min(len(data), 64<<10)
		if k, err := u.WriteAt(data[:n], off); err != nil || k != n {
			t.Fatalf("write %d bytes at %d: %d, %v", n, off, k, err)
		}
		data, off = data[n:], off+int64(n)
	}
}

func read(t *testing.T, s vfs.Store, name string) []byte {
	t.Helper()
	return readFrom(t, s, name, 0)
}

func readFrom(t *testing.T, s vfs.Store, name string, off int64) []byte {
	t.Helper()
	f, err := s.Open(name, off)
	if err != nil {
		t.Fatalf("open %s at %d: %v", name, off, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s from %d: %v", name, off, err)
	}
	return b
}

func openErr(s vfs.Store, name string) error {
	f, err := s.Open(name, 0)
	if err == nil {
		f.Close()
	}
	return err
}

func statErr(s vfs.Store, name string) error {
	_, err := s.Stat(name)
	return err
}

// list returns every entry of dir, read by Next(n), except the store's
// internal names; it fails the test on a chunk longer than n or an error.
func list(t *testing.T, s vfs.Store, dir string, n int) []fs.FileInfo {
	t.Helper()
	l, err := s.List(dir)
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	defer l.Close()
	var all []fs.FileInfo
	for {
		fis, err := l.Next(n)
		if len(fis) > n {
			t.Fatalf("Next(%d) on %s returned %d entries", n, dir, len(fis))
		}
		for _, fi := range fis {
			if !Internal(fi.Name()) {
				all = append(all, fi)
			}
		}
		if errors.Is(err, io.EOF) {
			return all
		}
		if err != nil {
			t.Fatalf("list %s: %v", dir, err)
		}
		if len(fis) == 0 {
			t.Fatalf("list %s: Next(%d) returned nothing and no error", dir, n)
		}
	}
}

// names returns the sorted names dir lists.
func names(t *testing.T, s vfs.Store, dir string) []string {
	t.Helper()
	var out []string
	for _, fi := range list(t, s, dir, 100) {
		out = append(out, fi.Name())
	}
	slices.Sort(out)
	return out
}

// Internal reports whether a listed name is one of the store's internal
// names (vfs's upload and partial prefixes), which FS leaves out.
func Internal(name string) bool {
	return strings.HasPrefix(name, ".wharf-upload.") || strings.HasPrefix(name, ".wharf-partial.")
}

func describe(fis []fs.FileInfo) []string {
	out := make([]string, len(fis))
	for i, fi := range fis {
		out[i] = fmt.Sprintf("%s (%v, %d bytes)", fi.Name(), fi.Mode(), fi.Size())
	}
	return out
}

// missing fails the test unless name neither stats nor lists.
func missing(t *testing.T, s vfs.Store, name string) {
	t.Helper()
	if fi, err := s.Stat(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat %s: %v, %v; want fs.ErrNotExist", name, fi, err)
	}
	dir := path.Dir(name)
	if _, err := s.Stat(dir); err != nil {
		return
	}
	if slices.Contains(names(t, s, dir), path.Base(name)) {
		t.Errorf("%s lists %s", dir, path.Base(name))
	}
}

// noPartial fails the test if a Resumer describes a partial of name.
func noPartial(t *testing.T, s vfs.Store, name string) {
	t.Helper()
	r, ok := s.(vfs.Resumer)
	if !ok {
		return
	}
	if fi, err := r.Partial(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("partial of %s: %v, %v; want fs.ErrNotExist", name, fi, err)
	}
}

func mustNil(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantErr fails the test unless err is one of targets (errors.Is).
func wantErr(t *testing.T, what string, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if errors.Is(err, target) {
			return
		}
	}
	t.Errorf("%s: %v, want %v", what, err, targets)
}

// same fails the test unless got equals want, naming the first byte that
// differs rather than printing both.
func same(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < min(len(got), len(want)) && got[i] == want[i] {
		i++
	}
	if len(got) <= 64 && len(want) <= 64 {
		t.Errorf("%s: got %q, want %q", what, got, want)
		return
	}
	t.Errorf("%s: %d bytes, want %d; they differ from offset %d", what, len(got), len(want), i)
}

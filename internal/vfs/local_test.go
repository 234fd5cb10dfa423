package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/procstat"
)

// localTest is a home "/u" in a fresh storage root, and its directory on
// disk, which the tests read and plant files in directly.
type localTest struct {
	l   *Local
	s   *localStore
	dir string // the home on disk
}

// newLocalTest opens the home after set (if any) adjusted the backend.
func newLocalTest(t *testing.T, o LocalOptions, set ...func(*Local)) *localTest {
	t.Helper()
	root := t.TempDir()
	l, err := NewLocal(root, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for _, f := range set {
		f(l)
	}
	h, err := l.Home("/u")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return &localTest{l: l, s: h.(*localStore), dir: filepath.Join(root, "u")}
}

// host is where the client path name lies on disk.
func (lt *localTest) host(name string) string { return filepath.Join(lt.dir, rel(name)) }

func (lt *localTest) plant(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(lt.host(name), []byte(data), 0o640); err != nil {
		t.Fatal(err)
	}
}

func (lt *localTest) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(lt.host(name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

func (lt *localTest) absent(t *testing.T, name string) {
	t.Helper()
	if _, err := os.Lstat(lt.host(name)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s on disk: %v, want nothing", name, err)
	}
}

// hidden lists the names in dir on disk that start with prefix.
func (lt *localTest) hidden(t *testing.T, dir, prefix string) []string {
	t.Helper()
	ents, err := os.ReadDir(lt.host(dir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// noneHidden fails if dir holds a temporary file or a partial.
func (lt *localTest) noneHidden(t *testing.T, dir string) {
	t.Helper()
	if n := lt.hidden(t, dir, ".wharf-"); len(n) != 0 {
		t.Errorf("left in %s: %v", dir, n)
	}
}

// start creates an upload of name and writes data at off.
func (lt *localTest) start(t *testing.T, name string, o CreateOptions, off int64, data string) Upload {
	t.Helper()
	u, err := lt.s.Create(name, o)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if data != "" {
		if _, err := u.WriteAt([]byte(data), off); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
	}
	return u
}

// put uploads data to name from scratch and commits it.
func (lt *localTest) put(t *testing.T, name, data string) {
	t.Helper()
	if err := lt.start(t, name, CreateOptions{}, 0, data).Commit(); err != nil {
		t.Fatalf("commit %s: %v", name, err)
	}
}

// broken uploads data to name from scratch and aborts as a dropped
// connection does.
func (lt *localTest) broken(t *testing.T, name, data string) {
	t.Helper()
	if err := lt.start(t, name, CreateOptions{}, 0, data).Abort(io.ErrUnexpectedEOF); err != nil {
		t.Fatalf("abort %s: %v", name, err)
	}
}

// partialSize is where a resume of name continues: its partial's size.
func (lt *localTest) partialSize(t *testing.T, name string) int64 {
	t.Helper()
	fi, err := lt.s.Partial(name)
	if err != nil {
		t.Fatalf("partial of %s: %v", name, err)
	}
	return fi.Size()
}

var tempName = regexp.MustCompile(`^` + regexp.QuoteMeta(uploadPrefix) + `(.+)\.[0-9a-f]{16}$`)

// tempKey is the key a temporary file's name carries, "" if it is not
// one.
func tempKey(base string) string {
	if m := tempName.FindStringSubmatch(base); m != nil {
		return m[1]
	}
	return ""
}

func TestLocalAtomicUploadAppearsOnCommit(t *testing.T) {
	lt := newLocalTest(t, LocalOptions{Atomic: true})
	for _, tc := range []struct {
		name, old string // old: the file's content before, "" for none
		o         CreateOptions
	}{
		{"new", "", CreateOptions{}},
		{"new-continue", "", CreateOptions{Continue: true}},
		{"overwrite", "old content, longer than the new", CreateOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "/" + tc.name
			if tc.old != "" {
				lt.plant(t, name, tc.old)
			}
			u := lt.start(t, name, tc.o, 0, "new data")
			if fi, err := u.Stat(); err != nil || fi.Name() != tc.name || fi.Size() != 8 {
				t.Errorf("Stat() = %v, %v; want %s of 8 bytes", fi, err, tc.name)
			}
			// Mid-upload: the name on disk is untouched, and one temporary
			// file beside it holds the upload.
			if tc.old == "" {
				lt.absent(t, name)
			} else if got := lt.read(t, name); got != tc.old {
				t.Errorf("mid-upload the file holds %q, want the old %q", got, tc.old)
			}
			tmps := lt.hidden(t, "/", uploadPrefix+tc.name+".")
			if len(tmps) != 1 || tempKey(tmps[0]) != tc.name {
				t.Errorf("temporary files mid-upload: %v, want one for %s", tmps, tc.name)
			}
			if err := u.Commit(); err != nil {
				t.Fatal(err)
			}
			if got := lt.read(t, name); got != "new data" {
				t.Errorf("after commit: %q, want %q", got, "new data")
			}
			lt.noneHidden(t, "/")
			if err := u.Commit(); !errors.Is(err, fs.ErrClosed) {
				t.Errorf("second commit: %v, want ErrClosed", err)
			}
			if err := u.Abort(io.ErrUnexpectedEOF); !errors.Is(err, fs.ErrClosed) {
				t.Errorf("abort after commit: %v, want ErrClosed", err)
			}
		})
	}
}

func TestLocalAtomicAbort(t *testing.T) {
	const sent = "half of the new"
	for _, tc := range []struct {
		name, old string
		cause     error
		data      string
		partial   string // what the partial holds after, "" for none
	}{
		{"broken-new", "", io.ErrUnexpectedEOF, sent, sent},
		{"broken-overwrite", "the old, complete file", io.ErrUnexpectedEOF, sent, sent},
		{"detached", "", ErrDetached, sent, ""},
		{"detached-overwrite", "the old, complete file", ErrDetached, sent, ""},
		{"nothing-sent", "", io.ErrUnexpectedEOF, "", ""},
		{"nothing-sent-overwrite", "the old, complete file", io.ErrUnexpectedEOF, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt := newLocalTest(t, LocalOptions{Atomic: true})
			if tc.old != "" {
				lt.plant(t, "/f", tc.old)
			}
			u := lt.start(t, "/f", CreateOptions{}, 0, tc.data)
			if err := u.Abort(tc.cause); err != nil {
				t.Fatalf("abort: %v", err)
			}
			if tc.old == "" {
				lt.absent(t, "/f")
				if _, err := lt.s.Open("/f", 0); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("open for reading: %v, want not found", err)
				}
			} else if got := lt.read(t, "/f"); got != tc.old {
				t.Fatalf("the old file now holds %q, want %q", got, tc.old)
			}
			if n := lt.hidden(t, "/", uploadPrefix); len(n) != 0 {
				t.Errorf("temporary files left: %v", n)
			}
			fi, err := lt.s.Partial("/f")
			if tc.partial == "" {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Partial = %v, %v; want none", fi, err)
				}
				lt.absent(t, partialOf("/f"))
				return
			}
			if got := lt.read(t, partialOf("/f")); got != tc.partial {
				t.Errorf("partial = %q, want %q", got, tc.partial)
			}
			if err != nil || fi.Size() != int64(len(tc.partial)) || fi.Name() != "f" {
				t.Errorf("Partial = %v, %v; want %d bytes named f", fi, err, len(tc.partial))
			}
			if err := u.Abort(io.ErrUnexpectedEOF); !errors.Is(err, fs.ErrClosed) {
				t.Errorf("second abort: %v, want ErrClosed", err)
			}
		})
	}
}

func TestLocalWriteErrorNamesTheClientPath(t *testing.T) {
	for _, atomic := range []bool{true, false} {
		lt := newLocalTest(t, LocalOptions{Atomic: atomic})
		u := lt.start(t, "/f", CreateOptions{}, 0, "some")
		_, err := u.WriteAt([]byte("x"), -1)
		var pe *fs.PathError
		if err == nil || !errors.As(err, &pe) || pe.Path != "/f" ||
			strings.Contains(err.Error(), ".wharf") || strings.Contains(err.Error(), lt.dir) {
			t.Errorf("atomic=%v: write at -1: %v, want an error naming /f only", atomic, err)
		}
		u.Abort(io.ErrUnexpectedEOF)
	}
}

func TestLocalAtomicResume(t *testing.T) {
	const whole = "0123456789abcdefghijklmnopqrstuvwxyz"
	const cut = 13
	// How a client finds where to continue: the name's Stat through FS
	// before it opens (the partial), or the open upload's own size (an
	// FTP APPE).
	for _, old := range []string{"", "an older complete version"} {
		for _, how := range []string{"partial", "upload-size"} {
			t.Run(fmt.Sprintf("%s/old=%v", how, old != ""), func(t *testing.T) {
				lt := newLocalTest(t, LocalOptions{Atomic: true})
				if old != "" {
					lt.plant(t, "/f", old)
				}
				lt.broken(t, "/f", whole[:cut])
				off := lt.partialSize(t, "/f")
				u := lt.start(t, "/f", CreateOptions{Continue: true}, 0, "")
				if how == "upload-size" {
					fi, err := u.Stat()
					if err != nil {
						t.Fatal(err)
					}
					off = fi.Size()
				}
				if off != cut {
					t.Fatalf("resume at %d, want %d", off, cut)
				}
				if _, err := u.WriteAt([]byte(whole[off:]), off); err != nil {
					t.Fatal(err)
				}
				if err := u.Commit(); err != nil {
					t.Fatal(err)
				}
				if got := lt.read(t, "/f"); got != whole {
					t.Errorf("after resume: %q, want %q", got, whole)
				}
				lt.noneHidden(t, "/")
			})
		}
	}
}

func TestLocalAtomicResumeInterruptedTwice(t *testing.T) {
	lt := newLocalTest(t, LocalOptions{Atomic: true})
	for i, part := range []string{"first ", "second ", "third"} {
		off := int64(0)
		if fi, err := lt.s.Partial("/f"); err == nil {
			off = fi.Size()
		}
		u := lt.start(t, "/f", CreateOptions{Continue: true}, off, part)
		if i < 2 {
			if err := u.Abort(io.ErrUnexpectedEOF); err != nil {
				t.Fatal(err)
			}
			lt.absent(t, "/f")
		} else if err := u.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if got := lt.read(t, "/f"); got != "first second third" {
		t.Errorf("after two resumes: %q", got)
	}
	lt.noneHidden(t, "/")
}

// MustExist refuses a name with neither a file nor a partial; a partial
// is enough, even for an upload that starts from scratch.
func TestLocalAtomicMustExist(t *testing.T) {
	lt := newLocalTest(t, LocalOptions{Atomic: true})
	for _, o := range []CreateOptions{{MustExist: true}, {MustExist: true, Continue: true}} {
		if _, err := lt.s.Create("/none", o); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%+v of nothing: %v, want not found", o, err)
		}
	}
	lt.broken(t, "/p", "abc")
	u := lt.start(t, "/p", CreateOptions{MustExist: true}, 0, "xy")
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := lt.read(t, "/p"); got != "xy" {
		t.Errorf("after an upload from scratch over a partial: %q", got)
	}
	lt.noneHidden(t, "/")
}

// Continuing a complete file (APPE, a resume onto a file a plain server
// left, a rewrite in place) writes a copy of it, so the name keeps the old
// content until the upload completes.
func TestLocalAtomicAppendToCompleteFile(t *testing.T) {
	lt := newLocalTest(t, LocalOptions{Atomic: true})
	cont := CreateOptions{Continue: true}
	lt.plant(t, "/log", "line 1\n")
	if err := os.Chmod(lt.host("/log"), 0o604); err != nil {
		t.Fatal(err)
	}
	u := lt.start(t, "/log", cont, 7, "line 2\n")
	if got := lt.read(t, "/log"); got != "line 1\n" {
		t.Errorf("mid-append the file holds %q", got)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := lt.read(t, "/log"); got != "line 1\nline 2\n" {
		t.Errorf("after append: %q", got)
	}
	if fi, _ := os.Stat(lt.host("/log")); fi.Mode().Perm() != 0o604 {
		t.Errorf("mode after append = %v, want the file's 0604", fi.Mode().Perm())
	}

	// A broken append: the old content stays, the copy and the new bytes
	// wait as the partial.
	u = lt.start(t, "/log", cont, 14, "line 3")
	if err := u.Abort(io.ErrUnexpectedEOF); err != nil {
		t.Fatal(err)
	}
	if got := lt.read(t, "/log"); got != "line 1\nline 2\n" {
		t.Errorf("after a broken append: %q", got)
	}
	if got := lt.partialSize(t, "/log"); got != int64(len("line 1\nline 2\nline 3")) {
		t.Errorf("partial after a broken append: %d bytes", got)
	}

	// Rewriting part of a file reads and writes the copy.
	lt.plant(t, "/rw", "abcdef")
	u = lt.start(t, "/rw", cont, 2, "XY")
	buf := make([]byte, 6)
	if _, err := u.(UploadReader).ReadAt(buf, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if string(buf) != "abXYef" {
		t.Errorf("read back through the upload: %q", buf)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := lt.read(t, "/rw"); got != "abXYef" {
		t.Errorf("after rewrite: %q", got)
	}

	// Opened to continue, nothing written: the file is not replaced and
	// keeps its times.
	then := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(lt.host("/rw"), then, then); err != nil {
		t.Fatal(err)
	}
	if err := lt.start(t, "/rw", cont, 0, "").Commit(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(lt.host("/rw")); !fi.ModTime().Equal(then) {
		t.Errorf("an upload without writes changed the file's time to %v", fi.ModTime())
	}
	// Nor does an abort of one leave a partial.
	if err := lt.start(t, "/rw", cont, 0, "").Abort(io.ErrUnexpectedEOF); err != nil {
		t.Fatal(err)
	}
	if got := lt.hidden(t, "/", ".wharf-"); !slices.Equal(got, []string{partialPrefix + "log"}) {
		t.Errorf("on disk: %v, want the broken append's partial alone", got)
	}
}

// Beyond the copy limit, an existing file is continued in place.
func TestLocalAtomicAppendBeyondCopyLimitInPlace(t *testing.T) {
	lt := newLocalTest(t, LocalOptions{Atomic: true}, func(l *Local) { l.copyMax = 4 })
	cont := CreateOptions{Continue: true}
	lt.plant(t, "/big", "0123456789")
	u := lt.start(t, "/big", cont, 10, "+")
	if got := lt.read(t, "/big"); got != "0123456789+" {
		t.Errorf("in place: %q", got)
	}
	// What was written stays, as on a plain server.
	if err := u.Abort(io.ErrUnexpectedEOF); err != nil {
		t.Fatal(err)
	}
	if got := lt.read(t, "/big"); got != "0123456789+" {
		t.Errorf("after an abort in place: %q", got)
	}
	lt.noneHidden(t, "/")
	// Small files are still copied.
	lt.plant(t, "/small", "0123")
	u = lt.start(t, "/small", cont, 4, "+")
	if got := lt.read(t, "/small"); got != "0123" {
		t.Errorf("a small file was written in place: %q", got)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := lt.read(t, "/small"); got != "0123+" {
		t.Errorf("after commit: %q", got)
	}
}

// The store keeps its internal names beside the client's on disk, and
// lists them (FS hides them); a name too long to carry is hashed in both
// the temporary and the partial name, which still map to each other.
func TestLocalAtomicNamesOnDisk(t *testing.T) {
	lt := newLocalTest(t, LocalOptions{Atomic: true})
	if err := lt.s.Mkdir("/d"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		lt.put(t, fmt.Sprintf("/d/f%d", i), "x")
	}
	lt.broken(t, "/d/broken", "half")
	open := lt.start(t, "/d/inprogress", CreateOptions{}, 0, "growing")
	defer open.Abort(ErrDetached)

	partials, tmps := lt.hidden(t, "/d", partialPrefix), lt.hidden(t, "/d", uploadPrefix)
	if !slices.Equal(partials, []string{partialPrefix + "broken"}) || len(tmps) != 1 ||
		tempKey(tmps[0]) != "inprogress" {
		t.Fatalf("on disk: partials %v, temporary files %v", partials, tmps)
	}
	if p, ok := partialForHidden(tmps[0]); !ok || p != partialPrefix+"inprogress" {
		t.Errorf("the temporary file maps to %q, %v", p, ok)
	}

	// The listing streams every entry, internal names included, in as
	// many calls as it takes.
	want := []string{"f0", "f1", "f2", "f3", "f4", partials[0], tmps[0]}
	slices.Sort(want)
	for _, n := range []int{1, 2, 100} {
		l, err := lt.s.List("/d")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for calls := 0; ; calls++ {
			if calls > len(want)+1 {
				t.Fatalf("Next(%d) never reached EOF", n)
			}
			fis, err := l.Next(n)
			if len(fis) > n {
				t.Fatalf("Next(%d) returned %d entries", n, len(fis))
			}
			for _, fi := range fis {
				got = append(got, fi.Name())
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("Next(%d) pages = %v, want %v", n, got, want)
		}
	}

	long := "/" + strings.Repeat("n", 250)
	lt.broken(t, long, "half")
	key := hiddenKey(long[1:])
	if key == long[1:] || len(key) != 32 {
		t.Fatalf("a 250-byte name's key is %q", key)
	}
	lt.read(t, "/"+partialPrefix+key)
	if got := lt.partialSize(t, long); got != 4 {
		t.Fatalf("partial of a long name: %d bytes", got)
	}
	u := lt.start(t, long, CreateOptions{Continue: true}, 4, " and the rest")
	if n := lt.hidden(t, "/", uploadPrefix+key+"."); len(n) != 1 {
		t.Errorf("temporary file of the long name's resume: %v", n)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := lt.read(t, long); got != "half and the rest" {
		t.Errorf("long name resumed: %q", got)
	}
}

func TestLocalCreateErrorsNameTheClientPath(t *testing.T) {
	for _, atomic := range []bool{true, false} {
		lt := newLocalTest(t, LocalOptions{Atomic: atomic})
		lt.plant(t, "/file", "x")
		for _, tc := range []struct {
			name string
			want error
		}{
			{"/missing/f", fs.ErrNotExist},
			{"/file/f", syscall.ENOTDIR},
			{"/", syscall.EISDIR},
		} {
			_, err := lt.s.Create(tc.name, CreateOptions{})
			var pe *fs.PathError
			if !errors.Is(err, tc.want) || !errors.As(err, &pe) || pe.Path != tc.name ||
				strings.Contains(err.Error(), ".wharf") || strings.Contains(err.Error(), lt.dir) {
				t.Errorf("atomic=%v: create %s: %v, want %v naming the client path only", atomic, tc.name, err, tc.want)
			}
		}
		lt.noneHidden(t, "/")
	}
}

func TestLocalExclusive(t *testing.T) {
	excl := CreateOptions{Exclusive: true}
	for _, atomic := range []bool{true, false} {
		lt := newLocalTest(t, LocalOptions{Atomic: atomic})
		lt.plant(t, "/exists", "keep me")
		for _, o := range []CreateOptions{excl, {Exclusive: true, Continue: true}, {Exclusive: true, MustExist: true}} {
			if _, err := lt.s.Create("/exists", o); !errors.Is(err, fs.ErrExist) {
				t.Errorf("atomic=%v: %+v on an existing file: %v, want exists", atomic, o, err)
			}
		}
		if got := lt.read(t, "/exists"); got != "keep me" {
			t.Errorf("atomic=%v: a refused exclusive upload changed the file: %q", atomic, got)
		}
		if _, err := lt.s.Create("/none", CreateOptions{Exclusive: true, MustExist: true}); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("atomic=%v: exclusive MustExist of nothing: %v, want not found", atomic, err)
		}
		lt.noneHidden(t, "/")
	}

	// A partial is no file yet: an upload-only user resumes it.
	lt := newLocalTest(t, LocalOptions{Atomic: true})
	u := lt.start(t, "/p", excl, 0, "abc")
	u.Abort(io.ErrUnexpectedEOF)
	u = lt.start(t, "/p", CreateOptions{Exclusive: true, Continue: true}, 3, "def")
	if err := u.Commit(); err != nil {
		t.Fatalf("exclusive resume: %v", err)
	}
	if got := lt.read(t, "/p"); got != "abcdef" {
		t.Errorf("resumed exclusively: %q", got)
	}
}

// Two exclusive uploads race: the first to commit wins, the second fails
// at commit instead of replacing it, with hard links (one atomic step) or
// without (a check, then a rename).
func TestLocalExclusiveRaceAtCommit(t *testing.T) {
	for _, links := range []bool{true, false} {
		t.Run(fmt.Sprintf("links=%v", links), func(t *testing.T) {
			lt := newLocalTest(t, LocalOptions{Atomic: true}, func(l *Local) {
				l.trace = func(op, _ string) error {
					if op == "link" && !links {
						return syscall.EPERM // as a file system without hard links answers
					}
					return nil
				}
			})
			excl := CreateOptions{Exclusive: true}
			u1, u2 := lt.start(t, "/race", excl, 0, "first"), lt.start(t, "/race", excl, 0, "second")
			if err := u1.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := u2.Commit(); !errors.Is(err, fs.ErrExist) {
				t.Errorf("second exclusive upload: commit = %v, want exists", err)
			}
			if got := lt.read(t, "/race"); got != "first" {
				t.Errorf("after the race: %q, want the first", got)
			}
			if fi, _ := os.Stat(lt.host("/race")); fi.Sys().(*syscall.Stat_t).Nlink != 1 {
				t.Errorf("the committed file has %d links", fi.Sys().(*syscall.Stat_t).Nlink)
			}
			lt.noneHidden(t, "/")
		})
	}
}

// Uploads of one name each write their own file, with writes arriving at
// once and out of order; the last to commit wins whole.
func TestLocalAtomicConcurrentUploads(t *testing.T) {
	lt := newLocalTest(t, LocalOptions{Atomic: true})
	const n = 64 << 10
	data := [2][]byte{bytes.Repeat([]byte("A"), n), bytes.Repeat([]byte("B"), n/2)}
	ups := [2]Upload{lt.start(t, "/same", CreateOptions{}, 0, ""), lt.start(t, "/same", CreateOptions{}, 0, "")}
	var wg sync.WaitGroup
	for i, u := range ups {
		// Four writers per upload, each taking every fourth chunk from the
		// end backwards.
		for w := range 4 {
			wg.Go(func() {
				for off := len(data[i]) - 1024*(w+1); off >= 0; off -= 4 * 1024 {
					if _, err := u.WriteAt(data[i][off:off+1024], int64(off)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	if err := ups[0].Commit(); err != nil {
		t.Fatal(err)
	}
	if got := lt.read(t, "/same"); got != string(data[0]) {
		t.Errorf("after the first commit: %d bytes, not the first upload", len(got))
	}
	if err := ups[1].Commit(); err != nil {
		t.Fatal(err)
	}
	if got := lt.read(t, "/same"); got != string(data[1]) {
		t.Errorf("after the second commit: %d bytes, not the second upload", len(got))
	}
}

// OpenSSH's put -p sets mode and times on the open handle before it
// closes; a client may set a size on it (ftruncate). They reach the file.
func TestLocalUploadAttributes(t *testing.T) {
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		o    LocalOptions
		old  string // a file there before, continued without writes
	}{
		{"atomic", LocalOptions{Atomic: true}, ""},
		{"atomic-copy-untouched", LocalOptions{Atomic: true}, "12345"},
		{"in-place", LocalOptions{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt := newLocalTest(t, tc.o)
			var u Upload
			if tc.old != "" {
				lt.plant(t, "/f", tc.old)
				u = lt.start(t, "/f", CreateOptions{Continue: true}, 0, "")
			} else {
				u = lt.start(t, "/f", CreateOptions{}, 0, "12345")
			}
			a := u.(UploadAttrs)
			if err := a.Chmod(0o600 | fs.ModeSetuid); err != nil {
				t.Fatal(err)
			}
			if err := a.Chtimes(mtime, mtime); err != nil {
				t.Fatal(err)
			}
			if err := u.Commit(); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(lt.host("/f"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != 0o600 {
				t.Errorf("after commit: mode %v, want 0600 (permission bits only)", fi.Mode())
			}
			if !fi.ModTime().Equal(mtime) {
				t.Errorf("after commit: mtime %v, want %v", fi.ModTime(), mtime)
			}
			lt.noneHidden(t, "/")

			u = lt.start(t, "/g", CreateOptions{}, 0, "123456789")
			if err := u.(UploadTruncater).Truncate(3); err != nil {
				t.Fatal(err)
			}
			if fi, err := u.Stat(); err != nil || fi.Size() != 3 {
				t.Errorf("Stat after truncate: %v, %v", fi, err)
			}
			if err := u.Commit(); err != nil {
				t.Fatal(err)
			}
			if got := lt.read(t, "/g"); got != "123" {
				t.Errorf("truncated upload: %q", got)
			}
		})
	}
}

// Without Atomic, an upload is the file, from Create on.
func TestLocalInPlaceUploads(t *testing.T) {
	lt := newLocalTest(t, LocalOptions{})
	u := lt.start(t, "/f", CreateOptions{}, 0, "visible")
	if got := lt.read(t, "/f"); got != "visible" {
		t.Errorf("mid-upload: %q", got)
	}
	if err := u.Abort(io.ErrUnexpectedEOF); err != nil {
		t.Fatal(err)
	}
	if got := lt.read(t, "/f"); got != "visible" {
		t.Errorf("after abort: %q, want the bytes written", got)
	}
	u = lt.start(t, "/f", CreateOptions{Continue: true}, 7, " more")
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := lt.read(t, "/f"); got != "visible more" {
		t.Errorf("after a continued upload: %q", got)
	}
	u = lt.start(t, "/f", CreateOptions{}, 0, "new")
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := lt.read(t, "/f"); got != "new" {
		t.Errorf("after an upload from scratch: %q", got)
	}
	if _, err := lt.s.Create("/none", CreateOptions{MustExist: true}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("MustExist of nothing: %v", err)
	}
	if _, err := lt.s.Partial("/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Partial: %v, want none", err)
	}
	if err := u.Commit(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("second commit: %v, want ErrClosed", err)
	}
	lt.noneHidden(t, "/")
}

func TestLocalRemoveRmdirRename(t *testing.T) {
	lt := newLocalTest(t, LocalOptions{Atomic: true})
	s := lt.s

	// Removing a name removes its partial; it succeeds if either existed.
	lt.broken(t, "/gone", "partial")
	if err := s.Remove("/gone"); err != nil {
		t.Fatalf("remove of a partial-only name: %v", err)
	}
	lt.absent(t, partialOf("/gone"))
	if err := s.Remove("/gone"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second remove: %v, want not found", err)
	}
	lt.put(t, "/both", "complete")
	lt.broken(t, "/both", "partial")
	if err := s.Remove("/both"); err != nil {
		t.Fatal(err)
	}
	lt.absent(t, "/both")
	lt.absent(t, partialOf("/both"))

	// Remove is for files, Rmdir for directories.
	if err := s.Mkdir("/d"); err != nil {
		t.Fatal(err)
	}
	lt.put(t, "/file", "x")
	for what, err := range map[string]error{
		"remove /d":     s.Remove("/d"),
		"rmdir /file":   s.Rmdir("/file"),
		"remove /":      s.Remove("/"),
		"rmdir /":       s.Rmdir("/"),
		"rmdir missing": s.Rmdir("/missing"),
		"mkdir /d":      s.Mkdir("/d"),
		"rename /":      s.Rename("/", "/x"),
		"rename onto /": s.Rename("/file", "/"),
	} {
		want := map[string]error{
			"remove /d": syscall.EISDIR, "rmdir /file": syscall.ENOTDIR, "remove /": fs.ErrPermission,
			"rmdir /": fs.ErrPermission, "rmdir missing": fs.ErrNotExist, "mkdir /d": fs.ErrExist,
			"rename /": fs.ErrPermission, "rename onto /": fs.ErrPermission,
		}[what]
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}

	// A directory holding nothing but partials can go, with them.
	lt.broken(t, "/d/x", "partial")
	lt.broken(t, "/d/y", "partial")
	if err := s.Rmdir("/d"); err != nil {
		t.Errorf("rmdir of a directory with only partials: %v", err)
	}
	lt.absent(t, "/d")
	// One with an upload in progress cannot, as on a plain server, nor
	// one with a file.
	for _, uploading := range []bool{true, false} {
		if err := s.Mkdir("/busy"); err != nil {
			t.Fatal(err)
		}
		lt.broken(t, "/busy/p", "partial")
		if uploading {
			defer lt.start(t, "/busy/x", CreateOptions{}, 0, "growing").Abort(ErrDetached)
		} else {
			lt.put(t, "/busy/x", "file")
		}
		if err := s.Rmdir("/busy"); !errors.Is(err, syscall.ENOTEMPTY) {
			t.Errorf("rmdir of a busy directory: %v, want ENOTEMPTY", err)
		}
		if got := lt.read(t, partialOf("/busy/p")); got != "partial" {
			t.Errorf("the busy directory's partial: %q", got)
		}
		if err := os.RemoveAll(lt.host("/busy")); err != nil {
			t.Fatal(err)
		}
	}

	// A file renamed onto a name replaces its partial; onto itself it
	// keeps it.
	lt.broken(t, "/target", "partial")
	lt.put(t, "/src", "complete")
	if err := s.Rename("/src", "/target"); err != nil {
		t.Fatal(err)
	}
	if got := lt.read(t, "/target"); got != "complete" {
		t.Errorf("renamed file: %q", got)
	}
	lt.absent(t, partialOf("/target"))
	lt.broken(t, "/target", "partial")
	if err := s.Rename("/target", "/target"); err != nil {
		t.Fatal(err)
	}
	if got := lt.read(t, partialOf("/target")); got != "partial" {
		t.Errorf("a rename onto itself dropped the partial: %q", got)
	}
	// Directories rename too.
	if err := s.Mkdir("/d2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Rename("/d2", "/d3"); err != nil {
		t.Fatal(err)
	}
	if fi, err := s.Stat("/d3"); err != nil || !fi.IsDir() {
		t.Errorf("renamed directory: %v, %v", fi, err)
	}
}

// Rmdir reads the directory a chunk at a time, and still drops more
// partials than a chunk holds.
func TestLocalRmdirManyPartials(t *testing.T) {
	lt := newLocalTest(t, LocalOptions{Atomic: true})
	if err := lt.s.Mkdir("/d"); err != nil {
		t.Fatal(err)
	}
	for i := range listChunk*2 + 7 {
		lt.plant(t, partialOf(fmt.Sprintf("/d/f%d", i)), "x")
	}
	lt.plant(t, "/d/zz-file", "x")
	if err := lt.s.Rmdir("/d"); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("rmdir with a file among the partials: %v", err)
	}
	if n := lt.hidden(t, "/d", partialPrefix); len(n) != listChunk*2+7 {
		t.Fatalf("%d partials left, want all", len(n))
	}
	if err := os.Remove(lt.host("/d/zz-file")); err != nil {
		t.Fatal(err)
	}
	if err := lt.s.Rmdir("/d"); err != nil {
		t.Fatal(err)
	}
	lt.absent(t, "/d")
}

// Stat follows a symlink and Lstat does not; a name's partial stands for
// it in Partial, Truncate, Chmod and Chtimes, unless the name is now
// something other than a file.
func TestLocalAttributesAndPartials(t *testing.T) {
	lt := newLocalTest(t, LocalOptions{Atomic: true})
	s := lt.s
	lt.put(t, "/file", "0123456789")
	if err := os.Symlink("file", lt.host("/link")); err != nil {
		t.Fatal(err)
	}
	if fi, err := s.Stat("/link"); err != nil || !fi.Mode().IsRegular() || fi.Size() != 10 {
		t.Errorf("Stat of a symlink: %v, %v; want the file", fi, err)
	}
	if fi, err := s.Lstat("/link"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat of a symlink: %v, %v; want the link", fi, err)
	}
	if fi, err := s.Stat("/"); err != nil || !fi.IsDir() {
		t.Errorf("Stat of the home: %v, %v", fi, err)
	}

	// Truncate reaches the partial if the name has one, else the file.
	lt.broken(t, "/file", "partial!")
	if err := s.Truncate("/file", 3); err != nil {
		t.Fatal(err)
	}
	if got, part := lt.read(t, "/file"), lt.read(t, partialOf("/file")); got != "0123456789" || part != "par" {
		t.Errorf("after truncate: file %q, partial %q", got, part)
	}
	// A symlink's partial does not count: the name is no file.
	lt.plant(t, partialOf("/link"), "link's")
	if err := s.Truncate("/link", 4); err != nil {
		t.Fatal(err)
	}
	if got, part := lt.read(t, "/file"), lt.read(t, partialOf("/link")); got != "0123" || part != "link's" {
		t.Errorf("truncate through the symlink: file %q, its partial %q", got, part)
	}
	if _, err := s.Partial("/link"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Partial of a symlink: %v, want none", err)
	}
	if err := s.Truncate("/missing", 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("truncate of nothing: %v", err)
	}

	// Chmod and Chtimes reach both; either existing is enough.
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	lt.broken(t, "/only-partial", "x")
	for _, name := range []string{"/file", "/only-partial"} {
		if err := s.Chmod(name, 0o600|fs.ModeSticky); err != nil {
			t.Fatalf("chmod %s: %v", name, err)
		}
		if err := s.Chtimes(name, mtime, mtime); err != nil {
			t.Fatalf("chtimes %s: %v", name, err)
		}
		for _, p := range []string{name, partialOf(name)} {
			fi, err := os.Stat(lt.host(p))
			if errors.Is(err, fs.ErrNotExist) && p == "/only-partial" {
				continue
			}
			if err != nil || fi.Mode() != 0o600 || !fi.ModTime().Equal(mtime) {
				t.Errorf("%s after chmod and chtimes: %v, %v", p, fi, err)
			}
		}
	}
	for what, err := range map[string]error{
		"chmod":   s.Chmod("/missing", 0o600),
		"chtimes": s.Chtimes("/missing", mtime, mtime),
	} {
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s of nothing: %v", what, err)
		}
	}

	// A directory made where a partial waits keeps its own attributes.
	lt.broken(t, "/dir", "partial")
	if err := s.Mkdir("/dir"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Partial("/dir"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Partial of a directory: %v, want none", err)
	}
	if err := s.Chmod("/dir", 0o700); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(lt.host(partialOf("/dir"))); fi.Mode().Perm() == 0o700 {
		t.Error("chmod of a directory reached a partial of its name")
	}
	if _, err := s.Partial("/"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Partial of the home: %v", err)
	}
}

func TestLocalOpenAndStatFS(t *testing.T) {
	lt := newLocalTest(t, LocalOptions{Atomic: true})
	lt.put(t, "/f", "0123456789")
	f, err := lt.s.Open("/f", 4)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(f)
	if err != nil || string(rest) != "456789" {
		t.Errorf("read from 4: %q, %v", rest, err)
	}
	buf := make([]byte, 3)
	if n, err := f.ReadAt(buf, 1); n != 3 || string(buf) != "123" {
		t.Errorf("ReadAt 1: %q, %v", buf[:n], err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != 10 || fi.Name() != "f" {
		t.Errorf("Stat: %v, %v", fi, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// Only regular files open, and a FIFO planted on disk does not block.
	if err := syscall.Mkfifo(lt.host("/fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := lt.s.Mkdir("/d"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]error{"/d": syscall.EISDIR, "/fifo": syscall.EINVAL, "/missing": fs.ErrNotExist} {
		if _, err := lt.s.Open(name, 0); !errors.Is(err, want) {
			t.Errorf("open %s: %v, want %v", name, err, want)
		}
	}
	for _, atomic := range []bool{true, false} {
		lt.s.opts.Atomic = atomic
		for _, o := range []CreateOptions{{}, {Continue: true}} {
			if _, err := lt.s.Create("/fifo", o); !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENXIO) {
				t.Errorf("atomic=%v: upload %+v to a FIFO: %v", atomic, o, err)
			}
		}
	}
	if err := lt.s.Truncate("/fifo", 0); err == nil {
		t.Error("truncate of a FIFO succeeded")
	}
	if _, err := lt.s.List("/f"); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("list of a file: %v, want ENOTDIR", err)
	}

	st, err := lt.s.StatFS()
	if err != nil || st.BlockSize == 0 || st.Blocks == 0 || st.NameMax == 0 {
		t.Errorf("StatFS = %+v, %v", st, err)
	}
}

// With Fsync, an upload's bytes are on disk before its name is, and its
// name before Commit returns; a kept partial likewise. Without, nothing
// is flushed.
func TestLocalFsync(t *testing.T) {
	type step = []string
	tmp := "/d/" + uploadPrefix
	for _, tc := range []struct {
		name string
		o    LocalOptions
		run  func(t *testing.T, lt *localTest) error
		want step
	}{
		{"atomic/commit", LocalOptions{Atomic: true, Fsync: true},
			func(t *testing.T, lt *localTest) error {
				return lt.start(t, "/d/f", CreateOptions{}, 0, "data").Commit()
			},
			step{"sync " + tmp + "f.…", "rename " + tmp + "f.… /d/f", "sync /d"}},
		{"atomic/exclusive", LocalOptions{Atomic: true, Fsync: true},
			func(t *testing.T, lt *localTest) error {
				return lt.start(t, "/d/f", CreateOptions{Exclusive: true}, 0, "data").Commit()
			},
			step{"sync " + tmp + "f.…", "link " + tmp + "f.… /d/f", "sync /d"}},
		{"atomic/abort", LocalOptions{Atomic: true, Fsync: true},
			func(t *testing.T, lt *localTest) error {
				return lt.start(t, "/d/g", CreateOptions{}, 0, "half").Abort(io.ErrUnexpectedEOF)
			},
			step{"sync " + tmp + "g.…", "rename " + tmp + "g.… /d/" + partialPrefix + "g", "sync /d"}},
		{"atomic/detached", LocalOptions{Atomic: true, Fsync: true},
			func(t *testing.T, lt *localTest) error {
				return lt.start(t, "/d/g", CreateOptions{}, 0, "half").Abort(ErrDetached)
			}, nil},
		{"atomic/no-fsync", LocalOptions{Atomic: true},
			func(t *testing.T, lt *localTest) error {
				return lt.start(t, "/d/f", CreateOptions{}, 0, "data").Commit()
			},
			step{"rename " + tmp + "f.… /d/f"}},
		{"in-place/commit", LocalOptions{Fsync: true},
			func(t *testing.T, lt *localTest) error {
				return lt.start(t, "/d/f", CreateOptions{}, 0, "data").Commit()
			},
			step{"sync /d/f", "sync /d"}},
		{"in-place/abort", LocalOptions{Fsync: true},
			func(t *testing.T, lt *localTest) error {
				return lt.start(t, "/d/f", CreateOptions{}, 0, "data").Abort(io.ErrUnexpectedEOF)
			}, nil},
		{"download", LocalOptions{Atomic: true, Fsync: true},
			func(t *testing.T, lt *localTest) error {
				lt.plant(t, "/d/r", "x")
				f, err := lt.s.Open("/d/r", 0)
				if err != nil {
					return err
				}
				_, err = io.ReadAll(f)
				f.Close()
				return err
			}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &opLog{}
			lt := newLocalTest(t, tc.o, func(l *Local) { l.trace = rec.trace })
			if err := lt.s.Mkdir("/d"); err != nil {
				t.Fatal(err)
			}
			if err := tc.run(t, lt); err != nil {
				t.Fatal(err)
			}
			if got := rec.seen(); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// An upload whose bytes cannot be flushed is not complete: Commit fails
// (so the client is told), the name is untouched, the bytes stay as the
// partial.
func TestLocalFsyncFailure(t *testing.T) {
	for _, atomic := range []bool{true, false} {
		rec := &opLog{failSync: true}
		lt := newLocalTest(t, LocalOptions{Atomic: atomic, Fsync: true}, func(l *Local) { l.trace = rec.trace })
		err := lt.start(t, "/f", CreateOptions{}, 0, "data").Commit()
		var pe *fs.PathError
		if !errors.Is(err, syscall.EIO) || !errors.As(err, &pe) || pe.Path != "/f" || strings.Contains(err.Error(), uploadPrefix) {
			t.Fatalf("atomic=%v: commit after a failed fsync: %v, want EIO on /f", atomic, err)
		}
		if !atomic {
			continue // the file is the upload: it stays, as on a plain server
		}
		lt.absent(t, "/f")
		if got := lt.read(t, partialOf("/f")); got != "data" {
			t.Errorf("partial after a failed fsync: %q", got)
		}
		if n := lt.hidden(t, "/", uploadPrefix); len(n) != 0 {
			t.Errorf("temporary files left: %v", n)
		}
	}
}

// opLog records the durable steps of uploads (Local.trace), with the
// random part of temporary names cut, and can make every flush fail.
type opLog struct {
	mu       sync.Mutex
	ops      []string
	failSync bool
}

var randomPart = regexp.MustCompile(`\.[0-9a-f]{16}\b`)

func (o *opLog) trace(op, name string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ops = append(o.ops, op+" "+randomPart.ReplaceAllString(name, ".…"))
	if op == "sync" && o.failSync {
		return syscall.EIO
	}
	return nil
}

func (o *opLog) seen() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.ops)
}

// localFixture lays out a storage root with two homes and a secret outside
// it, plus symlinks planted on disk that point out of alice's home.
func localFixture(t testing.TB) (storage, outside string) {
	t.Helper()
	top := t.TempDir()
	storage = filepath.Join(top, "storage")
	outside = filepath.Join(top, "outside")
	for _, d := range []string{storage + "/alice/sub", storage + "/bob", outside} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	for p, data := range map[string]string{
		storage + "/alice/hello.txt": "hello",
		storage + "/bob/secret.txt":  "bob's",
		outside + "/secret.txt":      "host secret",
	} {
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range map[string]string{
		storage + "/alice/etc":       "/etc",
		storage + "/alice/out-file":  outside + "/secret.txt",
		storage + "/alice/to-bob":    "../bob",
		storage + "/alice/sub/up":    "../../bob/secret.txt",
		storage + "/alice/inside":    "hello.txt",
		storage + "/alice/sub/round": "../hello.txt",
		storage + "/alice/subdir":    "sub",
	} {
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	return storage, outside
}

// escapeFiles and escapeDirs name, in localFixture's alice home, files
// and directories outside it, by every route: "..", absolute paths,
// symlinks planted on disk. The store's table and the session's both
// walk them.
var (
	escapeFiles = []string{
		"../bob/secret.txt", "/../bob/secret.txt", "../../outside/secret.txt",
		"etc/passwd", "/etc/passwd", "out-file", "to-bob/secret.txt", "sub/up",
	}
	escapeDirs = []string{"etc", "to-bob", "etc/", "to-bob/."}
)

// TestLocalEscapes is the security table: every way out of a home fails
// with what FS reduces to permission denied or not found, in an error
// that names no host path.
func TestLocalEscapes(t *testing.T) {
	storage, outside := localFixture(t)
	for _, atomic := range []bool{true, false} {
		t.Run(fmt.Sprintf("atomic=%v", atomic), func(t *testing.T) {
			l, err := NewLocal(storage, LocalOptions{Atomic: atomic})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			h, err := l.Home("/alice")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.Close() })
			alice := h.(*localStore)
			escapes(t, alice, storage, outside)
		})
	}
}

func escapes(t *testing.T, alice *localStore, storage, outside string) {
	refused := func(t *testing.T, err error, also ...error) {
		t.Helper()
		if err == nil {
			t.Fatal("succeeded")
		}
		if c := cause(err); !errors.Is(c, fs.ErrPermission) && !errors.Is(c, fs.ErrNotExist) &&
			!slices.ContainsFunc(also, func(e error) bool { return errors.Is(c, e) }) {
			t.Errorf("error %v (cause %v): want permission denied or not found", err, c)
		}
		for _, p := range []string{storage, outside} {
			if strings.Contains(err.Error(), p) {
				t.Errorf("error %q leaks host path %q", err, p)
			}
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) || !strings.HasPrefix(pe.Path, "/") {
			t.Errorf("error %v is not a *fs.PathError with a client path", err)
		}
	}
	for _, name := range escapeFiles {
		t.Run("open "+name, func(t *testing.T) {
			f, err := alice.Open(name, 0)
			if err == nil {
				data, _ := io.ReadAll(f)
				f.Close()
				t.Fatalf("read %q through the home", data)
			}
			refused(t, err)
		})
		t.Run("stat "+name, func(t *testing.T) {
			_, err := alice.Stat(name)
			refused(t, err)
		})
	}
	for _, name := range escapeDirs {
		t.Run("list "+name, func(t *testing.T) {
			l, err := alice.List(name)
			if err == nil {
				l.Close()
				t.Fatalf("listed %q, which leads out of the home", name)
			}
			refused(t, err)
		})
	}
	for name, op := range map[string]func() error{
		"rename into a symlinked directory": func() error { return alice.Rename("inside", "to-bob/x") },
		"rename out of one":                 func() error { return alice.Rename("to-bob/secret.txt", "stolen") },
		"mkdir through a symlink":           func() error { return alice.Mkdir("etc/wharf-test") },
		"chmod through a symlink":           func() error { return alice.Chmod("out-file", 0o777) },
		"chtimes through a symlink":         func() error { return alice.Chtimes("out-file", time.Now(), time.Now()) },
		"truncate through a symlink":        func() error { return alice.Truncate("out-file", 0) },
		"remove through a symlink":          func() error { return alice.Remove("to-bob/secret.txt") },
		"rmdir through a symlink":           func() error { return alice.Rmdir("to-bob/d") },
		"lstat through a symlink":           func() error { _, err := alice.Lstat("to-bob/secret.txt"); return err },
	} {
		t.Run(name, func(t *testing.T) { refused(t, op()) })
	}
	for _, o := range []CreateOptions{{}, {Continue: true}, {Exclusive: true}, {MustExist: true}} {
		for _, name := range []string{"to-bob/new.txt", "out-file", "to-bob/secret.txt", "sub/up"} {
			t.Run(fmt.Sprintf("create %s %+v", name, o), func(t *testing.T) {
				u, err := alice.Create(name, o)
				if err == nil {
					u.Abort(ErrDetached)
					t.Fatal("an upload through a symlink out of the home began")
				}
				if o.Exclusive {
					refused(t, err, fs.ErrExist) // the link itself is a name that exists
				} else {
					refused(t, err)
				}
			})
		}
	}
	t.Run("rename out", func(t *testing.T) {
		// "../bob" is cleaned to "/bob", inside the home, which has none.
		if err := alice.Rename("hello.txt", "../bob/stolen.txt"); err == nil {
			t.Fatal("rename succeeded")
		}
	})
	t.Run("remove the home", func(t *testing.T) {
		for _, name := range []string{"/", ".", "..", ""} {
			for what, err := range map[string]error{"remove": alice.Remove(name), "rmdir": alice.Rmdir(name)} {
				if !errors.Is(err, fs.ErrPermission) {
					t.Errorf("%s %q = %v, want permission denied", what, name, err)
				}
			}
		}
	})
	t.Run("symlinks inside stay usable", func(t *testing.T) {
		for _, name := range []string{"inside", "sub/round"} {
			f, err := alice.Open(name, 0)
			if err != nil {
				t.Fatalf("open %q: %v", name, err)
			}
			data, _ := io.ReadAll(f)
			f.Close()
			if string(data) != "hello" {
				t.Fatalf("%q = %q", name, data)
			}
		}
		l, err := alice.List("subdir")
		if err != nil {
			t.Fatalf("list through a symlink inside: %v", err)
		}
		l.Close()
	})
	t.Run("lstat reports a planted link without following it", func(t *testing.T) {
		fi, err := alice.Lstat("etc")
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Fatalf("lstat etc = %v, %v", fi, err)
		}
	})
	// Nothing outside the home changed.
	for p, want := range map[string]string{storage + "/bob/secret.txt": "bob's", outside + "/secret.txt": "host secret"} {
		if b, err := os.ReadFile(p); err != nil || string(b) != want {
			t.Errorf("%s now holds %q, %v", p, b, err)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
			t.Errorf("%s mode changed to %v", p, fi.Mode())
		}
	}
	for _, p := range []string{storage + "/bob/x", storage + "/bob/new.txt", "/etc/wharf-test"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s appeared", p)
		}
	}
	if ents, _ := os.ReadDir(storage + "/bob"); len(ents) != 1 {
		t.Errorf("bob's home now holds %v", ents)
	}
}

func TestLocalHomeCreatedAndSeenAsRoot(t *testing.T) {
	dir := t.TempDir()
	l, err := NewLocal(dir, LocalOptions{Atomic: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h, err := l.Home("/partners/acme")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Mkdir("/inbox"); err != nil {
		t.Fatal(err)
	}
	u, err := h.Create("/inbox/../inbox/order.edi", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.WriteAt([]byte("ISA*00"), 0); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if fi, err := h.Stat("/inbox/order.edi"); err != nil || fi.Size() != 6 {
		t.Fatalf("stat = %v, %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "partners/acme/inbox/order.edi")); err != nil {
		t.Fatal(err)
	}
	_, err = h.Stat("/missing")
	if !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), dir) || strings.Contains(err.Error(), "acme") {
		t.Fatalf("stat missing: %v", err)
	}
}

// The sessions of one home hold one os.Root between them, which closes
// with the last; a home replaced on disk is opened anew rather than
// served from the old directory.
func TestLocalHomesShareOneDescriptor(t *testing.T) {
	dir := t.TempDir()
	l, err := NewLocal(dir, LocalOptions{Atomic: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	openFDs := func() int {
		t.Helper()
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatalf("count descriptors: %v", err)
		}
		return len(ents)
	}
	home := func() Store {
		t.Helper()
		h, err := l.Home("/acme")
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	before := openFDs()
	a1, a2 := home(), home()
	if got := openFDs() - before; got != 1 {
		t.Fatalf("two sessions of one home hold %d descriptors, want 1", got)
	}
	u, err := a1.Create("/x", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	a1.Close()
	a1.Close() // twice: must not release a2's hold
	if _, err := a2.Stat("/x"); err != nil {
		t.Fatalf("the other session lost its home: %v", err)
	}
	a2.Close()
	if got := openFDs() - before; got != 0 {
		t.Fatalf("%d descriptors left after the last session closed", got)
	}

	old := home()
	defer old.Close()
	if err := os.Rename(filepath.Join(dir, "acme"), filepath.Join(dir, "acme.old")); err != nil {
		t.Fatal(err)
	}
	fresh := home()
	defer fresh.Close()
	if _, err := fresh.Stat("/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a new session got the moved-away home: stat /x: %v", err)
	}
	if _, err := old.Stat("/x"); err != nil {
		t.Fatalf("the session opened before the move lost its directory: %v", err)
	}
}

// The store chooses the mode of what a client creates; the umask still
// applies on disk, as for any process. An overwrite keeps the file's.
func TestLocalCreatedModes(t *testing.T) {
	umask, err := procstat.Umask()
	if err != nil {
		t.Fatal(err)
	}
	for _, atomic := range []bool{true, false} {
		lt := newLocalTest(t, LocalOptions{Atomic: atomic})
		lt.put(t, "/f", "x")
		if err := lt.s.Mkdir("/d"); err != nil {
			t.Fatal(err)
		}
		lt.plant(t, "/old", "x")
		if err := os.Chmod(lt.host("/old"), 0o604); err != nil {
			t.Fatal(err)
		}
		lt.put(t, "/old", "y")
		for p, want := range map[string]fs.FileMode{"/": dirMode &^ umask, "/f": fileMode &^ umask, "/d": dirMode &^ umask, "/old": 0o604} {
			fi, err := os.Stat(lt.host(p))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("atomic=%v: %s has mode %#o, want %#o", atomic, p, got, want)
			}
		}
	}
}

// FuzzLocalNames drives arbitrary names through a home: whatever the name,
// nothing may appear or be read outside the home, and no error may name a
// host path.
func FuzzLocalNames(f *testing.F) {
	for _, s := range []string{"a", "../x", "/../../x", "a/../../x", "..", "/", "", "sub/../../../outside/secret.txt",
		"to-out/x", "a\x00b", "./././..//x", "..0", partialPrefix + "x", uploadPrefix + "x.0123456789abcdef"} {
		f.Add(s)
	}
	top := f.TempDir()
	storage, outside := filepath.Join(top, "storage"), filepath.Join(top, "outside")
	for _, d := range []string{storage + "/home", outside} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.WriteFile(outside+"/secret.txt", []byte("x"), 0o640); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink(outside, storage+"/home/to-out"); err != nil {
		f.Fatal(err)
	}
	l, err := NewLocal(storage, LocalOptions{Atomic: true})
	if err != nil {
		f.Fatal(err)
	}
	h, err := l.Home("/home")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		leaks := func(err error) {
			t.Helper()
			for _, p := range []string{storage, outside} {
				if err != nil && strings.Contains(err.Error(), p) {
					t.Fatalf("error %q leaks %q", err, p)
				}
			}
		}
		for _, o := range []CreateOptions{{Continue: true}, {}} {
			u, err := h.Create(name, o)
			leaks(err)
			if err == nil {
				_, err = u.WriteAt([]byte("x"), 0)
				leaks(err)
				leaks(u.Commit())
			}
		}
		leaks(h.Mkdir(name + "/d"))
		if f, err := h.Open(name, 0); err == nil {
			f.Close()
		} else {
			leaks(err)
		}
		if l, err := h.List(name); err == nil {
			l.Close()
		} else {
			leaks(err)
		}
		_, err := h.Stat(name)
		leaks(err)
		if entries, _ := os.ReadDir(outside); len(entries) != 1 {
			t.Fatalf("%q: something was created outside the home: %v", name, entries)
		}
		if b, err := os.ReadFile(outside + "/secret.txt"); err != nil || string(b) != "x" {
			t.Fatalf("%q: the file outside changed: %q, %v", name, b, err)
		}
		if entries, _ := os.ReadDir(storage); len(entries) != 1 {
			t.Fatalf("%q: something was created beside the home: %v", name, entries)
		}
	})
}

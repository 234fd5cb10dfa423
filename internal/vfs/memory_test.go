package vfs_test

import (
	"errors"
	"io"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/wharf-sftp/wharf/internal/vfs"
	"github.com/wharf-sftp/wharf/internal/vfs/storetest"
)

func memHome(t *testing.T, m *vfs.Memory, home string) vfs.Store {
	t.Helper()
	s, err := m.Home(home)
	if err != nil {
		t.Fatalf("home %s: %v", home, err)
	}
	return s
}

func TestMemoryConformance(t *testing.T) {
	for _, home := range []string{"/", "/partners/acme"} {
		t.Run(home, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) vfs.Store { return memHome(t, vfs.NewMemory(), home) })
		})
	}
}

func memPut(t *testing.T, s vfs.Store, name, data string) {
	t.Helper()
	u, err := s.Create(name, vfs.CreateOptions{})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := u.WriteAt([]byte(data), 0); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	if err := u.Commit(); err != nil {
		t.Fatalf("commit %s: %v", name, err)
	}
}

func memRead(t *testing.T, s vfs.Store, name string) string {
	t.Helper()
	f, err := s.Open(name, 0)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

func wantErrIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: %v, want %v", what, err, target)
	}
}

// A name a disk would refuse is refused before anything is created, by
// every way of creating one.
func TestMemoryNameLimits(t *testing.T) {
	long := strings.Repeat("n", 256)
	deep := strings.Repeat("/"+strings.Repeat("d", 200), 21) // 4221 bytes
	for _, tc := range []struct {
		name string
		want error
	}{
		{"/nul\x00byte", syscall.EINVAL},
		{"/" + long, syscall.ENAMETOOLONG},
		{"/ok/" + long, syscall.ENAMETOOLONG},
		{deep, syscall.ENAMETOOLONG},
	} {
		t.Run(vfs.ShowPath(tc.name[:min(len(tc.name), 20)]), func(t *testing.T) {
			m := vfs.NewMemory()
			s := memHome(t, m, "/u")
			if err := s.Mkdir("/ok"); err != nil {
				t.Fatal(err)
			}
			memPut(t, s, "/src", "x")
			_, err := s.Create(tc.name, vfs.CreateOptions{})
			wantErrIs(t, "create", err, tc.want)
			wantErrIs(t, "mkdir", s.Mkdir(tc.name), tc.want)
			wantErrIs(t, "rename onto", s.(vfs.Renamer).Rename("/src", tc.name), tc.want)
			_, err = m.Home(tc.name)
			wantErrIs(t, "home", err, tc.want)
			var pe *fs.PathError
			if !errors.As(err, &pe) {
				t.Errorf("home error %T is not a *fs.PathError", err)
			}
			if got := memRead(t, s, "/src"); got != "x" {
				t.Errorf("the rename source holds %q", got)
			}
		})
	}
	// The limits themselves are allowed.
	s := memHome(t, vfs.NewMemory(), "/")
	memPut(t, s, "/"+strings.Repeat("n", 255), "x")
	if err := s.Mkdir("/" + strings.Repeat("m", 255)); err != nil {
		t.Errorf("mkdir of a 255-byte name: %v", err)
	}
}

// A name is created only in an existing directory, never below a file.
func TestMemoryParentMustBeDir(t *testing.T) {
	s := memHome(t, vfs.NewMemory(), "/u")
	memPut(t, s, "/file", "x")
	_, err := s.Create("/missing/f", vfs.CreateOptions{})
	wantErrIs(t, "create below a missing directory", err, fs.ErrNotExist)
	_, err = s.Create("/file/f", vfs.CreateOptions{})
	wantErrIs(t, "create below a file", err, syscall.ENOTDIR)
	wantErrIs(t, "mkdir below a file", s.Mkdir("/file/d"), syscall.ENOTDIR)
	_, err = s.Stat("/file/x")
	wantErrIs(t, "stat below a file", err, syscall.ENOTDIR)
	wantErrIs(t, "rename below a file", s.(vfs.Renamer).Rename("/file", "/file/x"), syscall.ENOTDIR)
	wantErrIs(t, "rmdir of a file", s.Rmdir("/file"), syscall.ENOTDIR)
	_, err = s.List("/file")
	wantErrIs(t, "list of a file", err, syscall.ENOTDIR)
}

// Homes are views of one tree: a home may lie inside another, and both
// see the same files; none reaches above its own root.
func TestMemoryNestedHomes(t *testing.T) {
	m := vfs.NewMemory()
	all := memHome(t, m, "/")
	outer := memHome(t, m, "/a")
	inner := memHome(t, m, "/a/b/c")

	memPut(t, inner, "/../../../escape", "inner")
	if got := memRead(t, all, "/a/b/c/escape"); got != "inner" {
		t.Errorf("the inner home's file seen from / holds %q", got)
	}
	if got := memRead(t, outer, "/b/c/escape"); got != "inner" {
		t.Errorf("the inner home's file seen from /a holds %q", got)
	}
	for _, name := range []string{"/escape", "/a/escape"} {
		if _, err := all.Stat(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want nothing above the home", name, err)
		}
	}
	memPut(t, outer, "/b/c/from-outer", "outer")
	if got := memRead(t, inner, "/from-outer"); got != "outer" {
		t.Errorf("the outer home's file seen from inside holds %q", got)
	}
	if fi, err := all.Stat("/a/b"); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o750 {
		t.Errorf("a directory made for a home: %v, %v", fi, err)
	}
	again := memHome(t, m, "/a/b/c")
	if got := memRead(t, again, "/escape"); got != "inner" {
		t.Errorf("a home opened again holds %q", got)
	}

	// A home that is removed from an outer one is gone for its store too.
	if err := inner.Remove("/escape"); err != nil {
		t.Fatal(err)
	}
	if err := inner.Remove("/from-outer"); err != nil {
		t.Fatal(err)
	}
	if err := outer.Rmdir("/b/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := inner.Stat("/"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat of a removed home: %v", err)
	}
	_, err := inner.Create("/f", vfs.CreateOptions{})
	wantErrIs(t, "create in a removed home", err, fs.ErrNotExist)

	memPut(t, all, "/file", "x")
	_, err = m.Home("/file/home")
	wantErrIs(t, "a home below a file", err, syscall.ENOTDIR)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := memRead(t, all, "/file"); got != "x" {
		t.Errorf("after the backend's close a home reads %q", got)
	}
	if _, err := outer.Stat("/b/../../file"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/a reached /file above it: %v", err)
	}
}

// Errors carry the client's path, never the home's.
func TestMemoryErrorsNameClientPaths(t *testing.T) {
	s := memHome(t, vfs.NewMemory(), "/secret/home")
	_, err := s.Stat("/missing")
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != "/missing" || strings.Contains(err.Error(), "secret") {
		t.Errorf("stat error %v", err)
	}
}

func TestMemoryRenameRules(t *testing.T) {
	s := memHome(t, vfs.NewMemory(), "/u")
	r := s.(vfs.Renamer)
	for _, d := range []string{"/full", "/full/sub", "/empty", "/src", "/src/in"} {
		if err := s.Mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	memPut(t, s, "/file", "x")
	for _, tc := range []struct {
		old, new string
		want     error
	}{
		{"/src", "/full", syscall.ENOTEMPTY},
		{"/src", "/file", syscall.ENOTDIR},
		{"/file", "/empty", syscall.EISDIR},
		{"/src", "/src/in/deeper", syscall.EINVAL},
		{"/", "/x", fs.ErrPermission},
		{"/file", "/", fs.ErrPermission},
	} {
		wantErrIs(t, "rename "+tc.old+" to "+tc.new, r.Rename(tc.old, tc.new), tc.want)
	}
	if err := r.Rename("/src", "/empty"); err != nil {
		t.Errorf("rename of a directory onto an empty one: %v", err)
	}
	if fi, err := s.Stat("/empty/in"); err != nil || !fi.IsDir() {
		t.Errorf("after the rename: %v, %v", fi, err)
	}
	if err := r.Rename("/file", "/file"); err != nil {
		t.Errorf("rename onto itself: %v", err)
	}
}

// A partial lives in its directory: it moves with the directory and goes
// with it.
func TestMemoryPartialsMoveWithTheirDirectory(t *testing.T) {
	s := memHome(t, vfs.NewMemory(), "/u")
	if err := s.Mkdir("/d"); err != nil {
		t.Fatal(err)
	}
	u, err := s.Create("/d/f", vfs.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.WriteAt([]byte("part"), 0); err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(errors.New("broken")); err != nil {
		t.Fatal(err)
	}
	if err := s.(vfs.Renamer).Rename("/d", "/e"); err != nil {
		t.Fatal(err)
	}
	res := s.(vfs.Resumer)
	if fi, err := res.Partial("/e/f"); err != nil || fi.Size() != 4 {
		t.Errorf("partial after its directory's rename: %v, %v", fi, err)
	}
	if _, err := res.Partial("/d/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("partial at the old name: %v", err)
	}
	// A directory made over a partial's name hides it.
	if err := s.Mkdir("/e/f"); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Partial("/e/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("partial of a directory's name: %v", err)
	}
}

// A File keeps the bytes it was opened on, as an open file on disk keeps
// its inode, whatever happens to the name.
func TestMemoryOpenFileKeepsItsBytes(t *testing.T) {
	s := memHome(t, vfs.NewMemory(), "/u")
	memPut(t, s, "/f", "original")
	f, err := s.Open("/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	memPut(t, s, "/f", "replaced!")
	if err := s.(vfs.Truncater).Truncate("/f", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.(vfs.Truncater).Truncate("/f", 20); err != nil {
		t.Fatal(err)
	}
	u, err := s.Create("/f", vfs.CreateOptions{Continue: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.WriteAt([]byte("xyz"), 0); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil || string(b) != "original" {
		t.Errorf("the open file reads %q, %v", b, err)
	}
	if got := memRead(t, s, "/f"); got != "xyz"+strings.Repeat("\x00", 17) {
		t.Errorf("the name holds %q", got)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("ReadAt after close: %v", err)
	}
}

func TestMemoryModes(t *testing.T) {
	s := memHome(t, vfs.NewMemory(), "/u")
	memPut(t, s, "/f", "x")
	if err := s.Mkdir("/d"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]fs.FileMode{"/f": 0o640, "/d": fs.ModeDir | 0o750, "/": fs.ModeDir | 0o750} {
		if fi, err := s.Stat(name); err != nil || fi.Mode() != want {
			t.Errorf("%s: %v, %v; want mode %v", name, fi, err, want)
		}
	}
	// An overwrite keeps the file's mode, as writing in place would.
	if err := s.(vfs.Chmoder).Chmod("/f", 0o600); err != nil {
		t.Fatal(err)
	}
	memPut(t, s, "/f", "y")
	if fi, err := s.Stat("/f"); err != nil || fi.Mode() != 0o600 {
		t.Errorf("after an overwrite: %v, %v", fi, err)
	}
	if err := s.(vfs.Chmoder).Chmod("/d", 0o700|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	if fi, err := s.Stat("/d"); err != nil || fi.Mode() != fs.ModeDir|0o700 {
		t.Errorf("after chmod of a directory: %v, %v", fi, err)
	}
}

// Offsets a client may send that memory cannot honour are refused, never
// a panic or a huge allocation.
func TestMemoryBounds(t *testing.T) {
	s := memHome(t, vfs.NewMemory(), "/u")
	u, err := s.Create("/f", vfs.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = u.WriteAt([]byte("x"), 1<<40)
	wantErrIs(t, "write at 1 TiB", err, syscall.EFBIG)
	_, err = u.WriteAt([]byte("x"), -1)
	wantErrIs(t, "write at -1", err, syscall.EINVAL)
	tr := u.(vfs.UploadTruncater)
	wantErrIs(t, "truncate the upload to 1 TiB", tr.Truncate(1<<40), syscall.EFBIG)
	wantErrIs(t, "truncate the upload to -1", tr.Truncate(-1), syscall.EINVAL)
	_, err = u.(vfs.UploadReader).ReadAt(make([]byte, 1), -1)
	wantErrIs(t, "read the upload at -1", err, syscall.EINVAL)

	// Bytes cut off by a truncate never come back in a hole.
	if _, err := u.WriteAt([]byte("abcdefghij"), 0); err != nil {
		t.Fatal(err)
	}
	if err := tr.Truncate(2); err != nil {
		t.Fatal(err)
	}
	if _, err := u.WriteAt([]byte("z"), 8); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := memRead(t, s, "/f"); got != "ab\x00\x00\x00\x00\x00\x00z" {
		t.Errorf("after truncate and write past the end: %q", got)
	}

	for what, err := range map[string]error{
		"commit twice":       u.Commit(),
		"abort after commit": u.Abort(errors.New("broken")),
		"write after commit": func() error { _, err := u.WriteAt([]byte("x"), 0); return err }(),
	} {
		wantErrIs(t, what, err, fs.ErrClosed)
	}

	st := s.(vfs.Truncater)
	wantErrIs(t, "truncate to 1 TiB", st.Truncate("/f", 1<<40), syscall.EFBIG)
	wantErrIs(t, "truncate to -1", st.Truncate("/f", -1), syscall.EINVAL)
	_, err = s.Open("/f", -1)
	wantErrIs(t, "open at -1", err, syscall.EINVAL)
}

// An upload whose directory went, or whose name became a directory,
// commits nothing and never panics; the latter keeps a partial.
func TestMemoryCommitAfterTheNameChanged(t *testing.T) {
	s := memHome(t, vfs.NewMemory(), "/u")
	if err := s.Mkdir("/d"); err != nil {
		t.Fatal(err)
	}
	gone, err := s.Create("/d/f", vfs.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	broken, err := s.Create("/d/g", vfs.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []vfs.Upload{gone, broken} {
		if _, err := u.WriteAt([]byte("data"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Rmdir("/d"); err != nil {
		t.Fatal(err)
	}
	wantErrIs(t, "commit into a removed directory", gone.Commit(), fs.ErrNotExist)
	if err := broken.Abort(errors.New("broken")); err != nil {
		t.Errorf("abort in a removed directory: %v", err)
	}
	if _, err := s.Stat("/d"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the removed directory came back: %v", err)
	}

	u, err := s.Create("/n", vfs.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.WriteAt([]byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Mkdir("/n"); err != nil {
		t.Fatal(err)
	}
	wantErrIs(t, "commit onto a directory", u.Commit(), syscall.EISDIR)
	if err := s.Rmdir("/n"); err != nil {
		t.Fatal(err)
	}
	// Rmdir took the partial of the directory's name with it.
	if _, err := s.(vfs.Resumer).Partial("/n"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("partial after rmdir: %v", err)
	}
}

func TestMemoryLister(t *testing.T) {
	s := memHome(t, vfs.NewMemory(), "/u")
	for _, n := range []string{"/c", "/a", "/b"} {
		memPut(t, s, n, "")
	}
	l, err := s.List("/")
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Next(0)
	wantErrIs(t, "Next(0)", err, fs.ErrInvalid)
	first, err := l.Next(2)
	if err != nil || len(first) != 2 || first[0].Name() != "a" || first[1].Name() != "b" {
		t.Errorf("Next(2) = %v, %v", first, err)
	}
	last, err := l.Next(2)
	if !errors.Is(err, io.EOF) || len(last) != 1 || last[0].Name() != "c" {
		t.Errorf("Next(2) at the end = %v, %v; want c with io.EOF", last, err)
	}
	if more, err := l.Next(2); len(more) != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("Next past the end = %v, %v", more, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = l.Next(1)
	wantErrIs(t, "Next after close", err, fs.ErrClosed)
}

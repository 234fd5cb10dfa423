package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/afero"
)

// fixture lays out a storage root with two homes and a secret outside it,
// plus symlinks planted on disk that point out of alice's home.
func fixture(t *testing.T) (storage, outside string) {
	t.Helper()
	top := t.TempDir()
	storage = filepath.Join(top, "storage")
	outside = filepath.Join(top, "outside")
	for _, d := range []string{storage + "/alice/sub", storage + "/bob", outside} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		storage + "/alice/hello.txt": "hello",
		storage + "/bob/secret.txt":  "bob's",
		outside + "/secret.txt":      "host secret",
	}
	for p, data := range files {
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		storage + "/alice/etc":       "/etc",
		storage + "/alice/out-file":  outside + "/secret.txt",
		storage + "/alice/to-bob":    "../bob",
		storage + "/alice/sub/up":    "../../bob/secret.txt",
		storage + "/alice/inside":    "hello.txt",
		storage + "/alice/sub/round": "../hello.txt",
	}
	for p, target := range links {
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	return storage, outside
}

func openHome(t *testing.T, b Backend, home string) FS {
	t.Helper()
	h, err := b.Home(home)
	if err != nil {
		t.Fatalf("Home(%q): %v", home, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestRel(t *testing.T) {
	for in, want := range map[string]string{
		"": ".", "/": ".", ".": ".", "..": ".", "/..": ".", "../../etc": "etc",
		"/a/b/../c": "a/c", "a//b/": "a/b", "/../../../x": "x", "a/../../b": "b",
	} {
		if got := rel(in); got != want {
			t.Errorf("rel(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEscapes is the security table: every way out of a home must fail
// with a permission or not-found error whose text names no host path.
func TestEscapes(t *testing.T) {
	storage, outside := fixture(t)
	b, err := NewLocal(storage)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	alice := openHome(t, b, "/alice")

	reads := []string{
		"../bob/secret.txt", "/../bob/secret.txt", "../../outside/secret.txt",
		"etc/passwd", "/etc/passwd", "out-file", "to-bob/secret.txt", "sub/up",
	}
	for _, name := range reads {
		t.Run("open "+name, func(t *testing.T) {
			f, err := alice.Open(name)
			if err == nil {
				data, _ := io.ReadAll(f)
				f.Close()
				if string(data) == "bob's" || string(data) == "host secret" || strings.Contains(string(data), "root:") {
					t.Fatalf("read %q through the chroot", data)
				}
				return // e.g. "/etc/passwd" resolves to a missing file inside home: fine only if it is not the host's
			}
			checkErr(t, err, storage, outside)
		})
	}
	for _, name := range []string{"etc", "to-bob", "etc/", "to-bob/."} {
		t.Run("list "+name, func(t *testing.T) {
			f, err := alice.Open(name)
			if err == nil {
				f.Close()
				t.Fatalf("opened %q, which leads out of the home", name)
			}
			checkErr(t, err, storage, outside)
		})
	}
	t.Run("rename out", func(t *testing.T) {
		err := alice.Rename("hello.txt", "../bob/stolen.txt")
		if err == nil {
			// Rename may only land inside the home: "../bob" is cleaned to "/bob".
			if _, err := os.Stat(storage + "/bob/stolen.txt"); err == nil {
				t.Fatal("rename reached bob's home")
			}
			if _, err := os.Stat(storage + "/alice/bob/stolen.txt"); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			return
		}
		checkErr(t, err, storage, outside)
	})
	t.Run("rename through symlink", func(t *testing.T) {
		err := alice.Rename("inside", "to-bob/x")
		if err == nil {
			t.Fatal("rename into a symlinked directory outside the home succeeded")
		}
		checkErr(t, err, storage, outside)
		if _, err := os.Lstat(storage + "/bob/x"); err == nil {
			t.Fatal("file appeared in bob's home")
		}
	})
	t.Run("create through symlink", func(t *testing.T) {
		f, err := alice.OpenFile("to-bob/new.txt", os.O_WRONLY|os.O_CREATE, 0o640)
		if err == nil {
			f.Close()
			t.Fatal("created a file through a symlink out of the home")
		}
		checkErr(t, err, storage, outside)
	})
	t.Run("mkdir through symlink", func(t *testing.T) {
		err := alice.Mkdir("etc/wharf-test", 0o750)
		if err == nil {
			os.Remove("/etc/wharf-test")
			t.Fatal("mkdir through a symlink to /etc succeeded")
		}
		checkErr(t, err, storage, outside)
	})
	t.Run("chmod through symlink", func(t *testing.T) {
		if err := alice.Chmod("out-file", 0o777); err == nil {
			t.Fatal("chmod through a symlink out of the home succeeded")
		}
		fi, _ := os.Stat(outside + "/secret.txt")
		if fi.Mode().Perm() != 0o640 {
			t.Fatalf("outside file mode changed to %v", fi.Mode())
		}
	})
	t.Run("remove home", func(t *testing.T) {
		for _, name := range []string{"/", ".", "..", ""} {
			if err := alice.RemoveAll(name); !errors.Is(err, fs.ErrPermission) {
				t.Fatalf("RemoveAll(%q) = %v, want permission denied", name, err)
			}
		}
	})
	t.Run("symlinks inside stay usable", func(t *testing.T) {
		for _, name := range []string{"inside", "sub/round"} {
			f, err := alice.Open(name)
			if err != nil {
				t.Fatalf("open %q: %v", name, err)
			}
			data, _ := io.ReadAll(f)
			f.Close()
			if string(data) != "hello" {
				t.Fatalf("%q = %q", name, data)
			}
		}
	})
	t.Run("lstat reports a planted link without following it", func(t *testing.T) {
		fi, _, err := alice.LstatIfPossible("etc")
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Fatalf("lstat etc = %v, %v", fi, err)
		}
	})
}

// checkErr asserts an escape failed the right way and said nothing about the host.
func checkErr(t *testing.T, err error, hostPaths ...string) {
	t.Helper()
	if !errors.Is(err, fs.ErrPermission) && !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v: want permission denied or not found", err)
	}
	for _, p := range hostPaths {
		if strings.Contains(err.Error(), p) {
			t.Errorf("error %q leaks host path %q", err, p)
		}
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || !strings.HasPrefix(pe.Path, "/") {
		t.Errorf("error %v is not a *fs.PathError with a client path", err)
	}
}

func TestHomeCreatedAndSeenAsRoot(t *testing.T) {
	for _, backend := range []string{"local", "memory"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			b, err := New(backend, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			h := openHome(t, b, "/partners/acme")
			if err := h.Mkdir("/inbox", 0o750); err != nil {
				t.Fatal(err)
			}
			f, err := h.OpenFile("/inbox/../inbox/order.edi", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("ISA*00"), 0); err != nil {
				t.Fatal(err)
			}
			if f.Name() != "/inbox/order.edi" {
				t.Errorf("Name() = %q, want the client path", f.Name())
			}
			f.Close()
			fi, err := h.Stat("inbox/order.edi")
			if err != nil || fi.Size() != 6 {
				t.Fatalf("stat = %v, %v", fi, err)
			}
			if backend == "local" {
				if _, err := os.Stat(filepath.Join(dir, "partners/acme/inbox/order.edi")); err != nil {
					t.Fatal(err)
				}
			}
			_, err = h.Stat("/missing")
			if !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), dir) || strings.Contains(err.Error(), "acme") {
				t.Fatalf("stat missing: %v", err)
			}
		})
	}
}

func TestRestrict(t *testing.T) {
	type op struct {
		name string
		run  func(FS) error
	}
	write := func(name string, flag int) func(FS) error {
		return func(h FS) error {
			f, err := h.OpenFile(name, flag, 0o640)
			if err == nil {
				f.Close()
			}
			return err
		}
	}
	read := func(name string) func(FS) error {
		return func(h FS) error {
			f, err := h.Open(name)
			if err == nil {
				f.Close()
			}
			return err
		}
	}
	ops := map[string]op{
		"list":       {"list", read("/")},
		"download":   {"download", read("/existing")},
		"upload new": {"upload", write("/new", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)},
		"overwrite":  {"overwrite", write("/existing", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)},
		"append":     {"overwrite", write("/existing", os.O_WRONLY|os.O_APPEND)},
		"mkdir":      {"mkdir", func(h FS) error { return h.Mkdir("/d", 0o750) }},
		"delete":     {"delete", func(h FS) error { return h.Remove("/existing") }},
		"rename":     {"rename", func(h FS) error { return h.Rename("/existing", "/moved") }},
		"setstat":    {"setstat", func(h FS) error { return h.Chtimes("/existing", time.Now(), time.Now()) }},
	}
	// which ops each single permission allows
	allows := map[Perms][]string{
		PermList:      {"list"},
		PermDownload:  {"download"},
		PermUpload:    {"upload new", "setstat"},
		PermOverwrite: {"overwrite", "append", "setstat"},
		PermMkdir:     {"mkdir"},
		PermDelete:    {"delete"},
		PermRename:    {"rename"},
		0:             nil,
		PermAll:       {"list", "download", "upload new", "overwrite", "append", "mkdir", "delete", "rename", "setstat"},
	}
	for perms, allowed := range allows {
		for name, o := range ops {
			t.Run(perms.String()+"/"+name, func(t *testing.T) {
				b := NewMemory()
				h := openHome(t, b, "/u")
				f, _ := h.Create("/existing")
				f.Close()
				var logs bytes.Buffer
				r := Restrict(h, func() Perms { return perms }, slog.New(slog.NewJSONHandler(&logs, nil)))
				err := o.run(r)
				want := false
				for _, a := range allowed {
					want = want || a == name
				}
				if want && err != nil {
					t.Fatalf("%s with %v: %v", name, perms, err)
				}
				if !want {
					if !errors.Is(err, fs.ErrPermission) {
						t.Fatalf("%s with %v: err = %v, want permission denied", name, perms, err)
					}
					if !strings.Contains(logs.String(), `"msg":"denied"`) {
						t.Errorf("no denied log line: %s", logs.String())
					}
				}
			})
		}
	}
}

func TestUploadOnlyNeverOverwrites(t *testing.T) {
	h := openHome(t, NewMemory(), "/u")
	f, _ := h.Create("/x")
	f.WriteString("original")
	f.Close()
	r := Restrict(h, func() Perms { return PermUpload }, slog.New(slog.DiscardHandler))
	if _, err := r.OpenFile("/x", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("overwrite by an upload-only user: %v", err)
	}
	fi, _ := h.Stat("/x")
	if fi.Size() != int64(len("original")) {
		t.Fatal("file was truncated")
	}
}

func TestAuditLogsTransfersAndChanges(t *testing.T) {
	var logs bytes.Buffer
	h := Audit(openHome(t, NewMemory(), "/u"), slog.New(slog.NewJSONHandler(&logs, nil)), AuditOptions{})
	f, err := h.OpenFile("/a", os.O_WRONLY|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(make([]byte, 1000), 0)
	f.Close()
	if err := h.Mkdir("/d", 0o750); err != nil {
		t.Fatal(err)
	}
	h.Remove("/d")
	h.Rename("/a", "/b")
	out := logs.String()
	for _, want := range []string{
		`"msg":"transfer","op":"upload","path":"/a","bytes":1000`,
		`"msg":"change","op":"mkdir","path":"/d"`,
		`"msg":"change","op":"rmdir","path":"/d"`,
		`"msg":"change","op":"rename","path":"/a","target":"/b"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

// FuzzResolve drives arbitrary client paths through the local backend:
// whatever the path, nothing may appear or be read outside the home, and no
// error may name a host path.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"a", "../x", "/../../x", "a/../../x", "..", "/", "", "sub/../../../outside/secret.txt", "to-out/x", "a\x00b", "./././..//x"} {
		f.Add(s)
	}
	storage, outside := fixtureFuzz(f)
	b, err := NewLocal(storage)
	if err != nil {
		f.Fatal(err)
	}
	h, err := b.Home("/home")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if r := rel(name); r == ".." || strings.HasPrefix(r, "../") || strings.HasPrefix(r, "/") {
			t.Fatalf("rel(%q) = %q", name, r)
		}
		fh, err := h.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o640)
		if err == nil {
			fh.Close()
		} else {
			for _, p := range []string{storage, outside} {
				if strings.Contains(err.Error(), p) {
					t.Fatalf("error %q leaks %q", err, p)
				}
			}
		}
		if err := h.Mkdir(name+"/d", 0o750); err != nil && strings.Contains(err.Error(), storage) {
			t.Fatalf("error %q leaks the storage path", err)
		}
		entries, _ := os.ReadDir(outside)
		if len(entries) != 1 {
			t.Fatalf("%q: something was created outside the home: %v", name, entries)
		}
		if entries, _ := os.ReadDir(storage); len(entries) != 1 {
			t.Fatalf("%q: something was created beside the home: %v", name, entries)
		}
	})
}

func fixtureFuzz(f *testing.F) (storage, outside string) {
	top := f.TempDir()
	storage, outside = filepath.Join(top, "storage"), filepath.Join(top, "outside")
	os.MkdirAll(storage+"/home", 0o750)
	os.MkdirAll(outside, 0o750)
	os.WriteFile(outside+"/secret.txt", []byte("x"), 0o640)
	os.Symlink(outside, storage+"/home/to-out")
	return storage, outside
}

func TestCapSize(t *testing.T) {
	limit := int64(10)
	h := CapSize(openHome(t, NewMemory(), "/u"), func() int64 { return limit })
	f, err := h.OpenFile("/f", os.O_WRONLY|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("0123456789"), 0); err != nil {
		t.Fatalf("write up to the cap: %v", err)
	}
	if _, err := f.WriteAt([]byte("x"), 10); !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("write past the cap: %v", err)
	}
	for _, off := range []int64{-1, 1<<63 - 5} { // no overflow, no negative offset under the cap
		if _, err := f.WriteAt([]byte("0123456789"), off); !errors.Is(err, syscall.EFBIG) {
			t.Fatalf("write at %d: %v", off, err)
		}
	}
	if _, err := f.Write([]byte("more than ten bytes")); !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("sequential write past the cap: %v", err)
	}
	f.Close()
	if err := h.Truncate("/f", 11); !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("truncate past the cap: %v", err)
	}
	limit = 0 // no cap
	f, _ = h.OpenFile("/f", os.O_WRONLY, 0)
	if _, err := f.WriteAt(make([]byte, 100), 0); err != nil {
		t.Fatalf("uncapped write: %v", err)
	}
	f.Close()
}

// TestLocalHomesShareOneDescriptor checks that the sessions of one home
// hold one os.Root between them, that it closes with the last, and that a
// home replaced on disk is opened anew rather than served from the old
// directory.
func TestLocalHomesShareOneDescriptor(t *testing.T) {
	dir := t.TempDir()
	l, err := NewLocal(dir)
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
	before := openFDs()
	a1, err := l.Home("/acme")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := l.Home("/acme")
	if err != nil {
		t.Fatal(err)
	}
	if got := openFDs() - before; got != 1 {
		t.Fatalf("two sessions of one home hold %d descriptors, want 1", got)
	}
	if err := afero.WriteFile(a1, "/x", []byte("1"), 0o640); err != nil {
		t.Fatal(err)
	}
	a1.Close()
	a1.Close() // twice: must not release a2's hold
	if b, err := afero.ReadFile(a2, "/x"); err != nil || string(b) != "1" {
		t.Fatalf("the other session lost its home: %q, %v", b, err)
	}
	a2.Close()
	if got := openFDs() - before; got != 0 {
		t.Fatalf("%d descriptors left after the last session closed", got)
	}

	old, err := l.Home("/acme")
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := os.Rename(filepath.Join(dir, "acme"), filepath.Join(dir, "acme.old")); err != nil {
		t.Fatal(err)
	}
	fresh, err := l.Home("/acme")
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if _, err := fresh.Stat("/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a new session got the moved-away home: stat /x: %v", err)
	}
	if _, err := old.Stat("/x"); err != nil {
		t.Fatalf("the session opened before the move lost its directory: %v", err)
	}
}

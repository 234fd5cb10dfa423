package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/syncbuf"
)

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

// Client paths are cleaned before they reach the store: ".." never climbs
// above the home, and the store sees the same name however it was spelt.
func TestPathsCleaned(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		s := h.fs
		if err := s.Mkdir("../../inbox/"); err != nil {
			t.Fatal(err)
		}
		w, err := s.Create("inbox/../inbox//order.edi", trunc)
		if err != nil {
			t.Fatal(err)
		}
		if w.Name() != "/inbox/order.edi" {
			t.Errorf("Name() = %q, want the clean client path", w.Name())
		}
		w.WriteAt([]byte("ISA*00"), 0)
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/inbox/order.edi", "inbox/order.edi", "/../inbox/./order.edi", "../../../inbox/order.edi"} {
			if got, err := size(s, p); got != 6 || err != nil {
				t.Errorf("stat %q = %d, %v", p, got, err)
			}
		}
		if got := rawContent(t, h.raw, "/inbox/order.edi"); got != "ISA*00" {
			t.Errorf("on the store: %q", got)
		}
		if h.root != "" {
			if _, err := os.Stat(h.hostPath("/inbox/order.edi")); err != nil {
				t.Errorf("on the host: %v", err)
			}
		}
		if ups := h.ops.of("upload", "/inbox/order.edi"); len(ups) != 1 {
			t.Errorf("recorded %+v, want the upload under its clean path", h.ops.all())
		}
		for _, name := range []string{"/", ".", "..", ""} {
			if err := s.Remove(name); !errors.Is(err, fs.ErrPermission) {
				t.Errorf("remove %q: %v, want permission denied", name, err)
			}
			if err := s.Rmdir(name); !errors.Is(err, fs.ErrPermission) {
				t.Errorf("rmdir %q: %v, want permission denied", name, err)
			}
			if err := s.Rename(name, "/x"); !errors.Is(err, fs.ErrPermission) {
				t.Errorf("rename %q: %v, want permission denied", name, err)
			}
			if _, err := s.Create(name, trunc); !errors.Is(err, syscall.EISDIR) {
				t.Errorf("create %q: %v, want EISDIR", name, err)
			}
			if _, err := s.Open(name, 0); !errors.Is(err, syscall.EISDIR) {
				t.Errorf("open %q: %v, want EISDIR", name, err)
			}
		}
		if fi, err := s.Stat("/"); err != nil || !fi.IsDir() {
			t.Errorf("stat of the home: %v, %v", fi, err)
		}
	})
}

// The permissions table: each operation needs its permission, and a
// refusal is fs.ErrPermission, logged once.
func TestPermissions(t *testing.T) {
	type op struct {
		name string
		run  func(*FS) error
	}
	upload := func(name string, flag int) func(*FS) error {
		return func(s *FS) error {
			w, err := s.Create(name, flag)
			if err != nil {
				return err
			}
			if _, err := w.WriteAt([]byte("data"), 0); err != nil {
				w.Abort(err)
				return err
			}
			return w.Commit()
		}
	}
	ops := []op{
		{"list", func(s *FS) error {
			d, err := s.List("/")
			if err == nil {
				d.Close()
			}
			return err
		}},
		{"download", func(s *FS) error {
			r, err := s.Open("/existing", 0)
			if err == nil {
				r.Close()
			}
			return err
		}},
		{"upload new", upload("/new", trunc)},
		{"overwrite", upload("/existing", trunc)},
		{"append", upload("/existing", appnd)},
		{"write without create", upload("/existing", wo)},
		{"read-write", upload("/existing", os.O_RDWR|os.O_CREATE)},
		{"mkdir", func(s *FS) error { return s.Mkdir("/d") }},
		{"delete", func(s *FS) error { return s.Remove("/existing") }},
		{"rmdir", func(s *FS) error { return s.Rmdir("/empty") }},
		{"rename", func(s *FS) error { return s.Rename("/existing", "/moved") }},
		{"rename over", func(s *FS) error { return s.Rename("/existing", "/other") }},
		{"chtimes", func(s *FS) error { return s.Chtimes("/existing", time.Now(), time.Now()) }},
		{"chmod", func(s *FS) error { return s.Chmod("/existing", 0o600) }},
		{"truncate", func(s *FS) error { return s.Truncate("/existing", 1) }},
	}
	all := []string{}
	for _, o := range ops {
		all = append(all, o.name)
	}
	// Which operations each set of permissions allows.
	allows := map[Perms][]string{
		0:                            nil,
		PermList:                     {"list"},
		PermDownload:                 {"download"},
		PermUpload:                   {"upload new", "chtimes", "chmod"},
		PermOverwrite:                {"overwrite", "append", "write without create", "chtimes", "chmod", "truncate"},
		PermOverwrite | PermDownload: {"download", "overwrite", "append", "write without create", "read-write", "chtimes", "chmod", "truncate"},
		PermMkdir:                    {"mkdir"},
		PermDelete:                   {"delete", "rmdir"},
		PermRename:                   {"rename"},
		PermRename | PermOverwrite:   {"rename", "rename over", "overwrite", "append", "write without create", "chtimes", "chmod", "truncate"},
		PermAll:                      all,
	}
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			for perms, allowed := range allows {
				for _, o := range ops {
					t.Run(fmt.Sprintf("%s/%s", perms, o.name), func(t *testing.T) {
						h := newHome(t, k)
						put(t, h.fs, "/existing", trunc, "existing")
						put(t, h.fs, "/other", trunc, "other")
						if err := h.fs.Mkdir("/empty"); err != nil {
							t.Fatal(err)
						}
						h.setPerms(perms)
						err := o.run(h.fs)
						if slices.Contains(allowed, o.name) {
							if err != nil {
								t.Fatalf("allowed, failed: %v", err)
							}
							return
						}
						if !errors.Is(err, fs.ErrPermission) {
							t.Fatalf("err = %v, want permission denied", err)
						}
						if n := len(h.logs.Lines(`"msg":"denied"`)); n != 1 {
							t.Errorf("%d denied log lines, want 1:\n%s", n, h.logs.String())
						}
						h.setPerms(PermAll)
						if got := content(t, h.fs, "/existing"); got != "existing" {
							t.Errorf("a refused operation changed the file: %q", got)
						}
						for _, p := range []string{"/new", "/d", "/moved"} {
							absent(t, h.fs, p)
						}
					})
				}
			}
		})
	}
}

// A user who may upload but not overwrite never replaces a file, however
// the upload is opened, but resumes a partial.
func TestUploadOnlyNeverOverwrites(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		put(t, h.fs, "/x", trunc, "original")
		h.setPerms(PermUpload | PermDownload | PermList)
		for _, flag := range []int{trunc, create, os.O_RDWR | os.O_CREATE, create | os.O_APPEND, wo} {
			if w, err := h.fs.Create("/x", flag); !errors.Is(err, fs.ErrPermission) {
				t.Errorf("open %#x of an existing file: %v, want permission denied", flag, err)
				if err == nil {
					w.Abort(nil)
				}
			}
		}
		if got := content(t, h.fs, "/x"); got != "original" {
			t.Errorf("the file now holds %q", got)
		}
		if !h.kind.atomic {
			return
		}
		// A partial is no file yet: the user resumes it.
		broken(t, h.fs, "/p", "abc")
		fi, err := h.fs.Stat("/p")
		if err != nil || fi.Size() != 3 {
			t.Fatalf("stat of the partial: %v, %v", fi, err)
		}
		w, err := h.fs.Create("/p", create)
		if err != nil {
			t.Fatalf("resume by an upload-only user: %v", err)
		}
		w.WriteAt([]byte("def"), 3)
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := content(t, h.fs, "/p"); got != "abcdef" {
			t.Errorf("resumed: %q", got)
		}
	})
}

// A user who may overwrite but not upload reaches existing names only (a
// partial counts: Stat shows it).
func TestOverwriteOnlyReachesExistingNames(t *testing.T) {
	forEachStore(t, atomicKinds(), func(t *testing.T, h *home) {
		put(t, h.fs, "/x", trunc, "original")
		broken(t, h.fs, "/p", "abc")
		h.setPerms(PermOverwrite | PermDownload)
		if _, err := h.fs.Create("/new", trunc); !errors.Is(err, fs.ErrPermission) {
			t.Errorf("create of a new name: %v, want permission denied", err)
		}
		absent(t, h.fs, "/new")
		put(t, h.fs, "/x", trunc, "replaced")
		w, err := h.fs.Create("/p", create)
		if err != nil {
			t.Fatalf("resume of a partial: %v", err)
		}
		w.WriteAt([]byte("def"), 3)
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := content(t, h.fs, "/p"); got != "abcdef" {
			t.Errorf("resumed: %q", got)
		}
	})
}

// max_upload_size: a write past it fails with EFBIG, whatever its offset
// (no overflow, no negative offset under the cap), and so does a truncate;
// the cap is read per write, and 0 means none. The failed upload does not
// become the file.
func TestSizeCap(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		s := h.fs
		h.setMaxSize(10)
		put(t, s, "/small", trunc, "0123456789")

		w, err := s.Create("/f", trunc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt([]byte("0123456789"), 0); err != nil {
			t.Fatalf("write up to the cap: %v", err)
		}
		for _, tc := range []struct {
			off  int64
			data string
		}{{10, "x"}, {5, "0123456789"}, {-1, "0"}, {-1 << 62, "0"}, {1<<63 - 5, "0123456789"}, {1<<63 - 1, "x"}} {
			if _, err := w.WriteAt([]byte(tc.data), tc.off); !errors.Is(err, syscall.EFBIG) {
				t.Errorf("write %d bytes at %d: %v, want EFBIG", len(tc.data), tc.off, err)
			}
		}
		for _, n := range []int64{11, -1, 1<<63 - 1} {
			if err := w.Truncate(n); !errors.Is(err, syscall.EFBIG) {
				t.Errorf("truncate the upload to %d: %v, want EFBIG", n, err)
			}
			if err := s.Truncate("/small", n); !errors.Is(err, syscall.EFBIG) {
				t.Errorf("truncate a file to %d: %v, want EFBIG", n, err)
			}
		}
		if err := w.Commit(); err != nil {
			t.Errorf("commit after a refused write: %v, want nil as close(2) gives", err)
		}
		if h.kind.atomic {
			if r, err := s.Open("/f", 0); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("open of the refused upload: %v, want no such file", err)
				if err == nil {
					r.Close()
				}
			}
		}
		if ups := h.ops.of("upload", "/f"); len(ups) != 1 || !errors.Is(ups[0].Err, syscall.EFBIG) {
			t.Errorf("recorded %+v, want the upload failed with EFBIG", ups)
		}
		if got := content(t, s, "/small"); got != "0123456789" {
			t.Errorf("refused truncates changed the file: %q", got)
		}

		// Read per write: lowered mid-upload, it applies to the next write.
		w, err = s.Create("/g", trunc)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteAt([]byte("12345"), 0)
		h.setMaxSize(7)
		if _, err := w.WriteAt([]byte("678"), 5); !errors.Is(err, syscall.EFBIG) {
			t.Errorf("write past a lowered cap: %v", err)
		}
		w.Abort(nil)

		h.setMaxSize(0)
		w, err = s.Create("/big", trunc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt(make([]byte, 100), 0); err != nil {
			t.Fatalf("uncapped write: %v", err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if got, _ := size(s, "/big"); got != 100 {
			t.Errorf("uncapped upload: %d bytes", got)
		}
	})
}

// The store's internal names are never listed, never reached by any
// operation and never created: a client naming one finds nothing there.
func TestHiddenNames(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		s := h.fs
		if err := s.Mkdir("/d"); err != nil {
			t.Fatal(err)
		}
		want := []string{"f0", "f1", "f2", "f3", "f4"}
		for _, n := range want {
			put(t, s, "/d/"+n, trunc, "x")
		}
		// A broken upload (a partial) and one in progress.
		broken(t, s, "/d/broken", "half")
		w, err := s.Create("/d/inprogress", trunc)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort(nil)
		w.WriteAt([]byte("growing"), 0)
		if !h.kind.atomic {
			want = append(want, "broken", "inprogress")
			slices.Sort(want)
		}
		for _, n := range []int{1, 2, 3, 100} {
			if got := listNames(t, s, "/d", n); !slices.Equal(got, want) {
				t.Errorf("listed %d at a time: %v, want %v", n, got, want)
			}
		}

		// What the store holds of them, if it lists them, and names of the
		// same shapes forged by a client.
		hidden := []string{
			"/d/" + partialPrefix + "broken", "/d/" + partialPrefix + "f0", "/d/" + partialPrefix,
			"/d/" + uploadPrefix + "inprogress.0123456789abcdef", "/" + uploadPrefix + "x/f", "/d/" + uploadPrefix,
		}
		before := hiddenNames(t, h, "/d")
		if h.kind.name == "local-atomic" && len(before) != 2 {
			t.Errorf("the store holds %v, want a partial and a temporary file", before)
		}
		for _, n := range before {
			hidden = append(hidden, "/d/"+n)
		}
		mtime := time.Now()
		for _, p := range hidden {
			for op, err := range map[string]error{
				"stat":     second(s.Stat(p)),
				"lstat":    second(s.Lstat(p)),
				"list":     second(s.List(p)),
				"open":     second(s.Open(p, 0)),
				"write":    second(s.Create(p, wo)),
				"remove":   s.Remove(p),
				"rmdir":    s.Rmdir(p),
				"rename":   s.Rename(p, "/d/stolen"),
				"chmod":    s.Chmod(p, 0o600),
				"chtimes":  s.Chtimes(p, mtime, mtime),
				"truncate": s.Truncate(p, 0),
			} {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s %s: %v, want no such file", op, p, err)
				}
			}
			for op, err := range map[string]error{
				"create":    second(s.Create(p, trunc)),
				"mkdir":     s.Mkdir(p),
				"rename to": s.Rename("/d/f0", p),
			} {
				if !errors.Is(err, fs.ErrPermission) {
					t.Errorf("%s %s: %v, want permission denied", op, p, err)
				}
			}
		}
		if after := hiddenNames(t, h, "/d"); !slices.Equal(after, before) {
			t.Errorf("a client operation touched an internal name: %v, then %v", before, after)
		}
		if got := listNames(t, s, "/d", 100); !slices.Equal(got, want) {
			t.Errorf("listed after the attempts: %v", got)
		}
	})
}

// second returns the error of a two-result call.
func second[T any](_ T, err error) error { return err }

// hiddenLister hands out chunks of entries as a store might: some of
// nothing but internal names.
type hiddenLister struct {
	chunks [][]string
	closed bool
}

type nameInfo string

func (n nameInfo) Name() string       { return string(n) }
func (n nameInfo) Size() int64        { return 0 }
func (n nameInfo) Mode() fs.FileMode  { return 0o640 }
func (n nameInfo) ModTime() time.Time { return time.Time{} }
func (n nameInfo) IsDir() bool        { return false }
func (n nameInfo) Sys() any           { return nil }

func (l *hiddenLister) Next(int) ([]fs.FileInfo, error) {
	if len(l.chunks) == 0 {
		return nil, io.EOF
	}
	var out []fs.FileInfo
	for _, n := range l.chunks[0] {
		out = append(out, nameInfo(n))
	}
	l.chunks = l.chunks[1:]
	if len(l.chunks) == 0 {
		return out, io.EOF
	}
	return out, nil
}

func (l *hiddenLister) Close() error { l.closed = true; return nil }

// A chunk of nothing but internal names must not look like the end of a
// listing (an empty chunk without io.EOF) nor end it early.
func TestListSkipsChunksOfHiddenNames(t *testing.T) {
	up, part := uploadPrefix+"a.0123456789abcdef", partialPrefix+"a"
	for _, tc := range []struct {
		name   string
		chunks [][]string
		want   []string
	}{
		{"hidden first", [][]string{{up}, {part}, {"a"}, {"b"}}, []string{"a", "b"}},
		{"hidden between", [][]string{{"a"}, {up, part}, {"b"}}, []string{"a", "b"}},
		{"hidden last", [][]string{{"a"}, {up}, {part}}, []string{"a"}},
		{"only hidden", [][]string{{up}, {part}}, nil},
		{"nothing", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &hiddenLister{chunks: tc.chunks}
			d := &Dir{l: l, name: "/d"}
			var got []string
			for range 10 {
				fis, err := d.Next(1)
				for _, fi := range fis {
					got = append(got, fi.Name())
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(fis) == 0 {
					t.Fatal("an empty chunk without io.EOF")
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("listed %v, want %v", got, tc.want)
			}
			if err := d.Close(); err != nil || !l.closed {
				t.Errorf("close: %v, closed %v", err, l.closed)
			}
		})
	}
}

// closeCount counts the Close calls that reach a store.
type closeCount struct {
	Store
	mu sync.Mutex
	n  int
}

func (c *closeCount) Close() error {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.Store.Close()
}

func (c *closeCount) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// A session may end before its last upload does (ftpserverlib ends the
// session, then closes the data connection whose transfer ends the
// upload): FS.Close leaves the store open until that upload has ended, then
// closes it once.
func TestCloseWaitsForUploads(t *testing.T) {
	for _, end := range []string{"commit", "abort", "detached"} {
		t.Run(end, func(t *testing.T) {
			forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
				st, err := h.b.Home("/u")
				if err != nil {
					t.Fatal(err)
				}
				cc := &closeCount{Store: st}
				s := NewFS(cc, Options{})
				w1, err := s.Create("/late", trunc)
				if err != nil {
					t.Fatal(err)
				}
				w2, err := s.Create("/later", trunc)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if cc.count() != 0 {
					t.Fatal("the store was closed under open uploads")
				}
				w1.WriteAt([]byte("late"), 0)
				if err := w1.Commit(); err != nil {
					t.Fatal(err)
				}
				if cc.count() != 0 {
					t.Fatal("the store was closed under an open upload")
				}
				w2.WriteAt([]byte("later"), 0)
				switch end {
				case "commit":
					err = w2.Commit()
				case "abort":
					err = w2.Abort(io.ErrUnexpectedEOF)
				case "detached":
					if err := s.Remove("/later"); err != nil {
						t.Fatal(err)
					}
					if cc.count() != 0 {
						t.Fatal("the store was closed when the upload was detached, before it ended")
					}
					err = w2.Commit()
				}
				if err != nil {
					t.Fatal(err)
				}
				if cc.count() != 1 {
					t.Errorf("store closed %d times after the last upload, want once", cc.count())
				}
				if err := s.Close(); err != nil || cc.count() != 1 {
					t.Errorf("second Close: %v, %d closes", err, cc.count())
				}
				if got := rawContent(t, h.raw, "/late"); got != "late" {
					t.Errorf("the upload that ended after Close: %q", got)
				}
			})
		})
	}
	t.Run("idle", func(t *testing.T) {
		cc := &closeCount{Store: newHome(t, storeKinds()[0]).raw}
		s := NewFS(cc, Options{})
		if err := s.Close(); err != nil || cc.count() != 1 {
			t.Errorf("Close of an idle session: %v, %d closes", err, cc.count())
		}
		s.Close()
		if cc.count() != 1 {
			t.Errorf("second Close closed the store again")
		}
	})
}

// TestEscapes is the security table, through the session: every way out
// of a home fails with a permission or not-found error that names only
// the client's path, and the log never names the host's.
func TestEscapes(t *testing.T) {
	for _, atomic := range []bool{true, false} {
		t.Run(fmt.Sprintf("atomic=%v", atomic), func(t *testing.T) {
			storage, outside := localFixture(t)
			b := newLocalBackend(t, storage, atomic)
			t.Cleanup(func() { b.Close() })
			st, err := b.Home("/alice")
			if err != nil {
				t.Fatal(err)
			}
			logs, ops := &syncbuf.Buffer{}, &recorder{}
			s := NewFS(st, Options{Log: slog.New(slog.NewJSONHandler(logs, nil)), Record: ops.add})
			t.Cleanup(func() { s.Close() })
			check := func(t *testing.T, err error) {
				t.Helper()
				if !errors.Is(err, fs.ErrPermission) && !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("error %v: want permission denied or not found", err)
				}
				noHostPath(t, err, storage, outside)
			}

			for _, name := range escapeFiles {
				t.Run("open "+name, func(t *testing.T) {
					r, err := s.Open(name, 0)
					if err == nil {
						data, _ := io.ReadAll(r)
						r.Close()
						t.Fatalf("read %q through the chroot", data)
					}
					check(t, err)
				})
			}
			for _, name := range escapeDirs {
				t.Run("list "+name, func(t *testing.T) {
					d, err := s.List(name)
					if err == nil {
						d.Close()
						t.Fatalf("listed %q, which leads out of the home", name)
					}
					check(t, err)
				})
			}
			t.Run("rename out", func(t *testing.T) {
				// "../bob" is cleaned to "/bob", inside the home, where
				// there is no such directory.
				check(t, s.Rename("hello.txt", "../bob/stolen.txt"))
				if _, err := os.Stat(storage + "/bob/stolen.txt"); err == nil {
					t.Fatal("rename reached bob's home")
				}
			})
			t.Run("rename through symlink", func(t *testing.T) {
				check(t, s.Rename("inside", "to-bob/x"))
				if _, err := os.Lstat(storage + "/bob/x"); err == nil {
					t.Fatal("file appeared in bob's home")
				}
			})
			t.Run("create through symlink", func(t *testing.T) {
				w, err := s.Create("to-bob/new.txt", trunc)
				if err == nil {
					w.WriteAt([]byte("x"), 0)
					err = w.Commit()
				}
				check(t, err)
				if _, err := os.Lstat(storage + "/bob/new.txt"); err == nil {
					t.Fatal("file appeared in bob's home")
				}
			})
			t.Run("mkdir through symlink", func(t *testing.T) {
				err := s.Mkdir("etc/wharf-test")
				if err == nil {
					os.Remove("/etc/wharf-test")
					t.Fatal("mkdir through a symlink to /etc succeeded")
				}
				check(t, err)
			})
			t.Run("chmod through symlink", func(t *testing.T) {
				err := s.Chmod("out-file", 0o777)
				if fi, _ := os.Stat(outside + "/secret.txt"); fi.Mode().Perm() != 0o640 {
					t.Fatalf("outside file mode changed to %v", fi.Mode())
				}
				if err != nil {
					noHostPath(t, err, storage, outside)
				}
			})
			t.Run("truncate through symlink", func(t *testing.T) {
				err := s.Truncate("out-file", 0)
				if data, _ := os.ReadFile(outside + "/secret.txt"); string(data) != "host secret" {
					t.Fatalf("the file outside now holds %q", data)
				}
				if err != nil {
					noHostPath(t, err, storage, outside)
				}
			})
			t.Run("remove through symlink", func(t *testing.T) {
				err := s.Remove("sub/up/")
				if _, serr := os.Stat(storage + "/bob/secret.txt"); serr != nil {
					t.Fatalf("bob's file is gone: %v", serr)
				}
				if err != nil {
					noHostPath(t, err, storage, outside)
				}
			})
			t.Run("overwrite through symlink", func(t *testing.T) {
				w, err := s.Create("out-file", trunc)
				if err == nil {
					w.WriteAt([]byte("pwned"), 0)
					err = w.Commit()
				}
				if data, _ := os.ReadFile(outside + "/secret.txt"); string(data) != "host secret" {
					t.Fatalf("the file outside now holds %q", data)
				}
				if err != nil {
					noHostPath(t, err, storage, outside)
				}
			})
			t.Run("symlinks inside stay usable", func(t *testing.T) {
				for _, name := range []string{"inside", "sub/round"} {
					if got := content(t, s, name); got != "hello" {
						t.Errorf("%q = %q", name, got)
					}
				}
			})
			t.Run("lstat reports a planted link without following it", func(t *testing.T) {
				fi, err := s.Lstat("etc")
				if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
					t.Fatalf("lstat etc = %v, %v", fi, err)
				}
			})
			for _, o := range ops.all() {
				noHostPath(t, o.Err, storage, outside)
			}
			if l := logs.String(); strings.Contains(l, storage) || strings.Contains(l, outside) {
				t.Errorf("the log names a host path:\n%s", l)
			}
		})
	}
}

// noHostPath fails if err names any of the host paths, or is not a
// *fs.PathError about a client path.
func noHostPath(t *testing.T, err error, hostPaths ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, p := range hostPaths {
		if strings.Contains(err.Error(), p) {
			t.Errorf("error %q names the host path %q", err, p)
		}
	}
	if strings.Contains(err.Error(), ".wharf-") {
		t.Errorf("error %q names an internal name", err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || !strings.HasPrefix(pe.Path, "/") {
		t.Errorf("error %v is not a *fs.PathError with a client path", err)
	}
}

// Every error of a session on a local store names the client's path only,
// never the storage root on the host: each operation is tried where it
// fails, on every store kind.
func TestErrorsNameNoHostPath(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		s := h.fs
		put(t, s, "/file", trunc, "x")
		if err := s.Mkdir("/dir"); err != nil {
			t.Fatal(err)
		}
		put(t, s, "/dir/x", trunc, "x")
		errs := map[string]error{
			"stat missing":        second(s.Stat("/missing")),
			"lstat missing":       second(s.Lstat("/missing")),
			"list missing":        second(s.List("/missing")),
			"list a file":         second(s.List("/file")),
			"open missing":        second(s.Open("/missing", 0)),
			"open a directory":    second(s.Open("/dir", 0)),
			"open under a file":   second(s.Open("/file/x", 0)),
			"create no parent":    second(s.Create("/missing/f", trunc)),
			"create under a file": second(s.Create("/file/f", trunc)),
			"create a directory":  second(s.Create("/dir", trunc)),
			"create must exist":   second(s.Create("/missing", wo)),
			"create exclusive":    second(s.Create("/file", excl)),
			"mkdir exists":        s.Mkdir("/dir"),
			"mkdir no parent":     s.Mkdir("/missing/d"),
			"remove missing":      s.Remove("/missing"),
			"remove a directory":  s.Remove("/dir"),
			"rmdir missing":       s.Rmdir("/missing"),
			"rmdir a file":        s.Rmdir("/file"),
			"rmdir not empty":     s.Rmdir("/dir"),
			"rename missing":      s.Rename("/missing", "/x"),
			"rename no parent":    s.Rename("/file", "/missing/x"),
			"rename onto a dir":   s.Rename("/file", "/dir"),
			"chmod missing":       s.Chmod("/missing", 0o600),
			"chtimes missing":     s.Chtimes("/missing", time.Now(), time.Now()),
			"truncate missing":    s.Truncate("/missing", 0),
			"truncate a dir":      s.Truncate("/dir", 0),
		}
		w, err := s.Create("/neg", trunc)
		if err != nil {
			t.Fatal(err)
		}
		errs["write at -1"] = second(w.WriteAt([]byte("x"), -1))
		w.Commit()
		for what, err := range errs {
			if err == nil {
				t.Errorf("%s: succeeded", what)
				continue
			}
			if h.root != "" {
				noHostPath(t, err, h.root)
			} else {
				noHostPath(t, err)
			}
		}
		if h.root != "" {
			for _, o := range h.ops.all() {
				noHostPath(t, o.Err, h.root)
			}
			if strings.Contains(h.logs.String(), h.root) {
				t.Errorf("the log names the storage root:\n%s", h.logs.String())
			}
		}
	})
}

// FuzzResolve drives arbitrary client paths through a session on the
// local store: whatever the path, nothing may appear or be read outside
// the home, and no error may name a host path.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"a", "../x", "/../../x", "a/../../x", "..", "/", "", "sub/../../../outside/secret.txt", "to-out/x", "a\x00b", "./././..//x", ".wharf-upload.x", "a/.wharf-partial.b"} {
		f.Add(s)
	}
	storage, outside := fixtureFuzz(f)
	b := newLocalBackend(f, storage, true)
	f.Cleanup(func() { b.Close() })
	st, err := b.Home("/home")
	if err != nil {
		f.Fatal(err)
	}
	s := NewFS(st, Options{})
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, name string) {
		if r := rel(name); r == ".." || strings.HasPrefix(r, "../") || strings.HasPrefix(r, "/") {
			t.Fatalf("rel(%q) = %q", name, r)
		}
		leaks := func(err error) {
			t.Helper()
			for _, p := range []string{storage, outside} {
				if err != nil && strings.Contains(err.Error(), p) {
					t.Fatalf("error %q leaks %q", err, p)
				}
			}
		}
		w, err := s.Create(name, os.O_RDWR|os.O_CREATE)
		leaks(err)
		if err == nil {
			_, err = w.WriteAt([]byte("x"), 0)
			leaks(err)
			leaks(w.Commit())
		}
		leaks(s.Mkdir(name + "/d"))
		leaks(second(s.Stat(name)))
		if r, err := s.Open(name, 0); err == nil {
			data, _ := io.ReadAll(r)
			r.Close()
			if string(data) == "secret" {
				t.Fatalf("%q: read the file outside the home", name)
			}
		} else {
			leaks(err)
		}
		leaks(s.Rename(name, name+".moved"))
		leaks(s.Remove(name + ".moved"))
		leaks(s.Rmdir(name + "/d"))
		if entries, _ := os.ReadDir(outside); len(entries) != 1 {
			t.Fatalf("%q: something was created outside the home: %v", name, entries)
		}
		if data, _ := os.ReadFile(outside + "/secret.txt"); string(data) != "secret" {
			t.Fatalf("%q: the file outside the home changed: %q", name, data)
		}
		if entries, _ := os.ReadDir(storage); len(entries) != 1 {
			t.Fatalf("%q: something was created beside the home: %v", name, entries)
		}
	})
}

func fixtureFuzz(f *testing.F) (storage, outside string) {
	top := f.TempDir()
	storage, outside = filepath.Join(top, "storage"), filepath.Join(top, "outside")
	for _, d := range []string{storage + "/home", outside} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.WriteFile(outside+"/secret.txt", []byte("secret"), 0o640); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink(outside, storage+"/home/to-out"); err != nil {
		f.Fatal(err)
	}
	return storage, outside
}

// StatFS reports the capacity of a store that can tell (local), and
// errors.ErrUnsupported about "/" on one that cannot (memory).
func TestStatFS(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		st, err := h.fs.StatFS()
		if _, ok := h.raw.(StatFSer); !ok {
			var pe *fs.PathError
			if !errors.Is(err, errors.ErrUnsupported) || !errors.As(err, &pe) || pe.Path != "/" {
				t.Errorf("StatFS on a store without it: %v, %v", st, err)
			}
			return
		}
		if err != nil || st.BlockSize == 0 || st.Blocks == 0 || st.NameMax == 0 {
			t.Errorf("StatFS = %+v, %v", st, err)
		}
	})
}

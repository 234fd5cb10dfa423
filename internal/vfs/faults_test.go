package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
)

// Storage faults (disk full, a read-only store, a vanished home, I/O
// errors) injected beneath a session: the client gets an error naming
// only its own path with the store's errno, the session and the others
// keep working, and nothing names a host path or an internal name.

// faultHome is a session over a faultStore on a home of kind k.
type faultHome struct {
	*home
	f  *faults
	fs *FS // the session over the faulty store
}

const faultHost = "/srv/wharf-storage/u"

func newFaultHome(t *testing.T, k storeKind) *faultHome {
	t.Helper()
	h := newHome(t, k)
	st, err := h.b.Home("/u")
	if err != nil {
		t.Fatal(err)
	}
	f := newFaults(faultHost)
	s := NewFS(faultStore{Store: st, f: f}, Options{Log: slog.New(slog.NewJSONHandler(h.logs, nil)), Record: h.ops.add})
	t.Cleanup(func() { s.Close() })
	return &faultHome{home: h, f: f, fs: s}
}

// upload writes data under name in 32 KiB writes, as pkg/sftp's client
// does, and commits; the first error ends it (the client then closes).
func upload(s *FS, name string, data []byte) error {
	w, err := s.Create(name, trunc)
	if err != nil {
		return err
	}
	for off := 0; off < len(data); off += 32 << 10 {
		end := min(off+32<<10, len(data))
		if _, err := w.WriteAt(data[off:end], int64(off)); err != nil {
			w.Commit()
			return err
		}
	}
	return w.Commit()
}

func download(s *FS, name string) ([]byte, error) {
	r, err := s.Open(name, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

var payload = bytes.Repeat([]byte("wharf "), 50000) // 300,000 bytes

type faultCase struct {
	name  string
	fail  func(op, name string) syscall.Errno
	space int64 // bytes writes may still add; -1: unlimited
	// act runs the operation under the fault and returns its error.
	act  func(s *FS) error
	want error  // the cause the client must see
	msg  string // what its text must hold
}

var faultCases = []faultCase{
	{"disk full on create", errnoOn(syscall.ENOSPC, "create"), -1,
		func(s *FS) error { return second(s.Create("/new.txt", trunc)) },
		syscall.ENOSPC, "/new.txt: no space left on device"},
	{"disk full during upload", nil, 100_000,
		func(s *FS) error { return upload(s, "/big.bin", payload) },
		syscall.ENOSPC, "/big.bin: no space left on device"},
	{"disk full on commit", errnoOn(syscall.ENOSPC, "commit"), -1,
		func(s *FS) error { return upload(s, "/closing.bin", payload) },
		syscall.ENOSPC, "/closing.bin: no space left on device"},
	{"disk full on mkdir", errnoOn(syscall.ENOSPC, "mkdir"), -1,
		func(s *FS) error { return s.Mkdir("/dir") },
		syscall.ENOSPC, "/dir: no space left on device"},
	{"read-only store: upload", errnoOn(syscall.EROFS, "create", "mkdir", "remove", "rename", "chmod", "chtimes", "truncate"), -1,
		func(s *FS) error { return upload(s, "/ro.txt", payload) },
		syscall.EROFS, "/ro.txt: read-only file system"},
	{"read-only store: mkdir", errnoOn(syscall.EROFS, "mkdir"), -1,
		func(s *FS) error { return s.Mkdir("/ro-dir") },
		syscall.EROFS, "/ro-dir: read-only file system"},
	{"read-only store: remove", errnoOn(syscall.EROFS, "remove"), -1,
		func(s *FS) error { return s.Remove("/existing.txt") },
		syscall.EROFS, "/existing.txt: read-only file system"},
	{"read-only store: rmdir", errnoOn(syscall.EROFS, "rmdir"), -1,
		func(s *FS) error { return s.Rmdir("/sub") },
		syscall.EROFS, "/sub: read-only file system"},
	{"read-only store: rename", errnoOn(syscall.EROFS, "rename"), -1,
		func(s *FS) error { return s.Rename("/existing.txt", "/moved.txt") },
		syscall.EROFS, "/existing.txt: read-only file system"},
	{"read-only store: chmod", errnoOn(syscall.EROFS, "chmod"), -1,
		func(s *FS) error { return s.Chmod("/existing.txt", 0o600) },
		syscall.EROFS, "/existing.txt: read-only file system"},
	{"read-only store: truncate", errnoOn(syscall.EROFS, "truncate"), -1,
		func(s *FS) error { return s.Truncate("/existing.txt", 1) },
		syscall.EROFS, "/existing.txt: read-only file system"},
	{"I/O error on open", errnoOn(syscall.EIO, "open"), -1,
		func(s *FS) error { return second(download(s, "/existing.txt")) },
		syscall.EIO, "/existing.txt: input/output error"},
	{"I/O error on read", errnoOn(syscall.EIO, "read"), -1,
		func(s *FS) error { return second(download(s, "/existing.txt")) },
		syscall.EIO, "read /existing.txt: input/output error"},
	{"I/O error on stat", errnoOn(syscall.EIO, "stat"), -1,
		func(s *FS) error { return second(s.Stat("/existing.txt")) },
		syscall.EIO, "stat /existing.txt: input/output error"},
	{"I/O error on listing", errnoOn(syscall.EIO, "next"), -1,
		func(s *FS) error {
			d, err := s.List("/")
			if err != nil {
				return err
			}
			defer d.Close()
			_, err = d.Next(10)
			return err
		},
		syscall.EIO, "readdir /: input/output error"},
	{"home gone: list", errnoOn(syscall.ENOENT, "list", "stat"), -1,
		func(s *FS) error { return second(s.List("/")) },
		fs.ErrNotExist, "/: no such file or directory"},
	{"home gone: upload", errnoOn(syscall.ENOENT, "create"), -1,
		func(s *FS) error { return upload(s, "/gone.txt", payload) },
		fs.ErrNotExist, "/gone.txt: no such file or directory"},
}

// TestStorageFaults runs each fault on every store.
func TestStorageFaults(t *testing.T) {
	for _, tc := range faultCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range storeKinds() {
				t.Run(k.name, func(t *testing.T) {
					testStorageFault(t, k, tc)
				})
			}
		})
	}
}

func testStorageFault(t *testing.T, k storeKind, tc faultCase) {
	h := newFaultHome(t, k)
	s := h.fs
	if err := upload(s, "/existing.txt", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := s.Mkdir("/sub"); err != nil {
		t.Fatal(err)
	}
	other := h.session(t, homeOptions{})

	h.f.set(tc.fail, tc.space)
	err := tc.act(s)
	h.f.set(nil, -1)
	if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
		t.Fatalf("got %v, want %v with %q", err, tc.want, tc.msg)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		t.Errorf("%v is no *fs.PathError", err)
	}
	hosts := []string{faultHost}
	if h.root != "" {
		hosts = append(hosts, h.root)
	}
	noHostPath(t, err, hosts...)

	// The same session, and another one, carry on.
	for who, cl := range map[string]*FS{"the session": s, "another session": other} {
		if err := upload(cl, "/after.txt", []byte(who)); err != nil {
			t.Fatalf("%s: upload after the fault: %v", who, err)
		}
		if got, err := download(cl, "/after.txt"); err != nil || string(got) != who {
			t.Fatalf("%s: download after the fault: %q, %v", who, got, err)
		}
	}
	if got, err := download(s, "/existing.txt"); err != nil || string(got) != "kept" {
		t.Fatalf("existing file after the fault: %q, %v", got, err)
	}
	for _, o := range h.ops.all() {
		noHostPath(t, o.Err, hosts...)
	}
	for _, p := range hosts {
		if strings.Contains(h.logs.String(), p) {
			t.Errorf("the log names the host path %s:\n%s", p, h.logs.String())
		}
	}
	if strings.Contains(h.logs.String(), ".wharf-") {
		t.Errorf("the log names an internal name:\n%s", h.logs.String())
	}
}

// An upload cut short by a full disk leaves nothing under its name on an
// atomic store (what fitted is the name's partial, which Stat describes
// for a resume and a listing does not show); written in place, the bytes
// that fitted are the file. Either way the failed transfer is logged with
// the reason.
func TestDiskFullPartialUpload(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			h := newFaultHome(t, k)
			h.f.set(nil, 100_000)
			err := upload(h.fs, "/big.bin", bytes.Repeat([]byte("x"), 300_000))
			h.f.set(nil, -1)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("upload onto a full disk: %v, want ENOSPC", err)
			}
			fi, err := h.raw.Stat("/big.bin")
			switch {
			case k.atomic && err == nil:
				t.Errorf("a half upload of %d bytes sits under the final name", fi.Size())
			case k.atomic && !errors.Is(err, fs.ErrNotExist):
				t.Fatal(err)
			case !k.atomic && err != nil:
				t.Fatalf("no partial file: %v", err)
			case !k.atomic && fi.Size() > 100_000:
				t.Fatalf("the partial file has %d bytes, more than the %d that fitted", fi.Size(), 100_000)
			}
			if k.atomic {
				if n, err := size(h.fs, "/big.bin"); err != nil || n > 100_000 {
					t.Errorf("stat after the failure: %d, %v; want the partial", n, err)
				}
				if names := listNames(t, h.fs, "/", 10); len(names) != 0 {
					t.Errorf("the listing shows %v after a failed atomic upload", names)
				}
			}
			lines := h.logs.Lines(`"msg":"transfer"`, `"path":"/big.bin"`, `"outcome":"failed"`)
			if len(lines) != 1 || !strings.Contains(lines[0], "no space left on device") {
				t.Errorf("failed transfer lines: %v", lines)
			}
		})
	}
}

// A failed commit is a failed transfer, told to the client; the session
// keeps no hold on the upload.
func TestFailedCommit(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			h := newFaultHome(t, k)
			w, err := h.fs.Create("/f", trunc)
			if err != nil {
				t.Fatal(err)
			}
			w.WriteAt([]byte("data"), 0)
			h.f.set(errnoOn(syscall.EIO, "commit"), -1)
			if err := w.Commit(); !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "/f") {
				t.Errorf("commit: %v, want EIO naming /f", err)
			}
			h.f.set(nil, -1)
			if ups := h.ops.of("upload", "/f"); len(ups) != 1 || !errors.Is(ups[0].Err, syscall.EIO) {
				t.Errorf("recorded %+v", ups)
			}
			if len(h.fs.uploads("/f")) != 0 || h.fs.active.Load() != 0 {
				t.Errorf("the session still holds the upload")
			}
		})
	}
}

// A home deleted on disk while its session is open: every operation fails
// with a not-found error naming only the client's path, the old session
// does not make the home again, and a new one does.
func TestVanishedHome(t *testing.T) {
	for _, k := range storeKinds() {
		if !k.local {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			h := newHome(t, k)
			s := h.fs
			put(t, s, "/before.txt", trunc, "before")
			dir := h.hostPath("/")
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			// The session's home is a directory that no longer has a name:
			// it lists as empty, or not at all.
			if d, err := s.List("/"); err == nil {
				fis, err := d.Next(10)
				if len(fis) != 0 || err != io.EOF && !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("list of a vanished home: %v, %v", fis, err)
				}
				if err != io.EOF {
					noHostPath(t, err, h.root)
				}
				d.Close()
			} else {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("list of a vanished home: %v, want no such file", err)
				}
				noHostPath(t, err, h.root)
			}
			for what, err := range map[string]error{
				"download": second(download(s, "/before.txt")),
				"upload":   upload(s, "/after.txt", []byte("after")),
				"mkdir":    s.Mkdir("/d"),
				"stat":     second(s.Stat("/before.txt")),
			} {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s in a vanished home: %v, want no such file", what, err)
				}
				noHostPath(t, err, h.root)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the old session made the home again: %v", err)
			}
			again := h.session(t, homeOptions{})
			put(t, again, "/new.txt", trunc, "new")
			if got, err := os.ReadFile(h.hostPath("/new.txt")); err != nil || string(got) != "new" {
				t.Fatalf("home not made again on disk: %q, %v", got, err)
			}
		})
	}
}

// A REMOVE the store refuses leaves the session's upload of the name
// alone: it was not removed, so it still commits.
func TestRefusedRemoveKeepsTheUpload(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			h := newFaultHome(t, k)
			s := h.fs
			if err := upload(s, "/f", []byte("old")); err != nil {
				t.Fatal(err)
			}
			w, err := s.Create("/f", trunc)
			if err != nil {
				t.Fatal(err)
			}
			w.WriteAt([]byte("new"), 0)
			h.f.set(errnoOn(syscall.EROFS, "remove"), -1)
			if err := s.Remove("/f"); !errors.Is(err, syscall.EROFS) {
				t.Errorf("remove on a read-only store: %v", err)
			}
			h.f.set(nil, -1)
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			if got, err := download(s, "/f"); err != nil || string(got) != "new" {
				t.Errorf("after a refused remove: %q, %v; want the upload committed", got, err)
			}
		})
	}
}

// A download the store fails to read is a failed transfer, even when the
// client closes it as usual afterwards.
func TestFailedReadRecorded(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			h := newFaultHome(t, k)
			if err := upload(h.fs, "/f", []byte("content")); err != nil {
				t.Fatal(err)
			}
			for _, how := range []string{"read", "readat"} {
				h.ops.reset()
				r, err := h.fs.Open("/f", 0)
				if err != nil {
					t.Fatal(err)
				}
				h.f.set(errnoOn(syscall.EIO, "read"), -1)
				if how == "read" {
					_, err = r.Read(make([]byte, 4))
				} else {
					_, err = r.ReadAt(make([]byte, 4), 0)
				}
				h.f.set(nil, -1)
				if !errors.Is(err, syscall.EIO) {
					t.Fatalf("%s: %v, want EIO", how, err)
				}
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				if ds := h.ops.of("download", "/f"); len(ds) != 1 || !errors.Is(ds[0].Err, syscall.EIO) {
					t.Errorf("%s: recorded %+v; want the download failed with EIO", how, ds)
				}
			}
			// The end of the file is no failure.
			h.ops.reset()
			if got, err := download(h.fs, "/f"); err != nil || string(got) != "content" {
				t.Fatal(got, err)
			}
			r, err := h.fs.Open("/f", 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.ReadAt(make([]byte, 4), 100); err != io.EOF {
				t.Errorf("read past the end: %v", err)
			}
			r.Close()
			for _, o := range h.ops.all() {
				if o.Err != nil {
					t.Errorf("recorded %+v", o)
				}
			}
		})
	}
}

package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/afero"
)

// atomicHomes returns, for each backend, a fresh home and the Atomic layer
// over it (copying existing files of up to copyMax bytes).
func atomicHomes(t *testing.T, copyMax int64) map[string]func(t *testing.T) (raw, a FS) {
	t.Helper()
	open := func(t *testing.T, b Backend) (FS, FS) {
		t.Helper()
		t.Cleanup(func() { b.Close() })
		h, err := b.Home("/u")
		if err != nil {
			t.Fatalf("home: %v", err)
		}
		t.Cleanup(func() { h.Close() })
		return h, newAtomic(h, copyMax)
	}
	return map[string]func(t *testing.T) (FS, FS){
		"local": func(t *testing.T) (FS, FS) {
			b, err := NewLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return open(t, b)
		},
		"memory": func(t *testing.T) (FS, FS) { return open(t, NewMemory()) },
	}
}

// forEachHome runs f on both backends.
func forEachHome(t *testing.T, copyMax int64, f func(t *testing.T, raw, a FS)) {
	t.Helper()
	for name, mk := range atomicHomes(t, copyMax) {
		t.Run(name, func(t *testing.T) {
			raw, a := mk(t)
			f(t, raw, a)
		})
	}
}

func writeAll(t *testing.T, fsys afero.Fs, name string, flag int, data string) {
	t.Helper()
	f, err := fsys.OpenFile(name, flag, 0o640)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", name, err)
	}
}

func content(t *testing.T, fsys afero.Fs, name string) string {
	t.Helper()
	b, err := afero.ReadFile(fsys, name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

// absent fails unless name does not exist in fsys.
func absent(t *testing.T, fsys afero.Fs, name string) {
	t.Helper()
	if _, err := fsys.Stat(name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat %s: %v, want not found", name, err)
	}
}

// rawNames lists dir on the backend, hidden names included.
func rawNames(t *testing.T, raw FS, dir string) []string {
	t.Helper()
	d, err := raw.Open(dir)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	slices.Sort(names)
	return names
}

// hiddenIn returns the hidden names of dir with the given prefix.
func hiddenIn(t *testing.T, raw FS, dir, prefix string) []string {
	t.Helper()
	var out []string
	for _, n := range rawNames(t, raw, dir) {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

const (
	wo     = os.O_WRONLY
	create = os.O_WRONLY | os.O_CREATE
	trunc  = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	appnd  = os.O_WRONLY | os.O_CREATE | os.O_APPEND
)

func TestAtomicUploadAppearsOnClose(t *testing.T) {
	forEachHome(t, atomicCopyMax, func(t *testing.T, raw, a FS) {
		for _, tc := range []struct {
			name, old string // old: the file's content before, "" for none
			flag      int
		}{
			{"new", "", trunc},
			{"new-create-only", "", create},
			{"overwrite", "old content, longer than the new", trunc},
		} {
			t.Run(tc.name, func(t *testing.T) {
				name := "/" + tc.name
				if tc.old != "" {
					writeAll(t, raw, name, trunc, tc.old)
				}
				f, err := a.OpenFile(name, tc.flag, 0o640)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt([]byte("new data"), 0); err != nil {
					t.Fatal(err)
				}
				if f.Name() != name {
					t.Errorf("Name() = %q, want the client's %q", f.Name(), name)
				}
				if fi, err := f.Stat(); err != nil || fi.Name() != tc.name || fi.Size() != 8 {
					t.Errorf("Stat() = %v, %v; want %s of 8 bytes", fi, err, tc.name)
				}
				// Mid-upload: the name on the store is untouched.
				if tc.old == "" {
					absent(t, raw, name)
				} else if got := content(t, raw, name); got != tc.old {
					t.Errorf("mid-upload the file holds %q, want the old %q", got, tc.old)
				}
				if n := hiddenIn(t, raw, "/", uploadPrefix); len(n) != 1 {
					t.Errorf("temporary files mid-upload: %v, want one", n)
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				if got := content(t, raw, name); got != "new data" {
					t.Errorf("after close: %q, want %q", got, "new data")
				}
				for _, p := range []string{uploadPrefix, partialPrefix} {
					if n := hiddenIn(t, raw, "/", p); len(n) != 0 {
						t.Errorf("left behind: %v", n)
					}
				}
				if err := f.Close(); !errors.Is(err, fs.ErrClosed) {
					t.Errorf("second close: %v, want ErrClosed", err)
				}
			})
		}
	})
}

func TestAtomicFailedUploadKeepsNameIntact(t *testing.T) {
	transferError := func(f afero.File) {
		f.(interface{ TransferError(error) }).TransferError(io.ErrUnexpectedEOF)
	}
	forEachHome(t, atomicCopyMax, func(t *testing.T, raw, a FS) {
		for _, tc := range []struct {
			name, old string
			breakIt   func(afero.File) // before Close; nil: never closed
		}{
			{"transfer-error-new", "", transferError},
			{"transfer-error-overwrite", "the old, complete file", transferError},
			{"never-closed", "", nil},
			{"never-closed-overwrite", "the old, complete file", nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				name := "/" + tc.name
				if tc.old != "" {
					writeAll(t, raw, name, trunc, tc.old)
				}
				f, err := a.OpenFile(name, trunc, 0o640)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.Write([]byte("half of the new")); err != nil {
					t.Fatal(err)
				}
				if tc.breakIt != nil {
					tc.breakIt(f)
					if err := f.Close(); err != nil {
						t.Fatalf("close after a transfer error: %v", err)
					}
				}
				if tc.old == "" {
					absent(t, raw, name)
				} else if got := content(t, raw, name); got != tc.old {
					t.Fatalf("the old file now holds %q, want %q", got, tc.old)
				}
				if tc.breakIt == nil {
					return
				}
				// Kept for resume, and described by Stat.
				if got := content(t, raw, partialOf(name)); got != "half of the new" {
					t.Errorf("partial = %q", got)
				}
				if fi, err := a.Stat(name); err != nil || fi.Size() != int64(len("half of the new")) || fi.Name() != tc.name {
					t.Errorf("Stat after the failure = %v, %v; want the partial's size under the name", fi, err)
				}
				// Downloads only ever see complete files.
				if tc.old == "" {
					if _, err := a.Open(name); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("open for reading: %v, want not found", err)
					}
				} else if got := content(t, a, name); got != tc.old {
					t.Errorf("download = %q, want the old content", got)
				}
			})
		}
	})
}

func TestAtomicWriteErrorIsFailure(t *testing.T) {
	forEachHome(t, atomicCopyMax, func(t *testing.T, raw, a FS) {
		f, err := a.OpenFile("/f", trunc, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("some"))
		// A negative offset fails in every backend.
		if _, err := f.WriteAt([]byte("x"), -1); err == nil {
			t.Fatal("write at -1 succeeded")
		} else if strings.Contains(err.Error(), ".wharf") {
			t.Errorf("write error names the temporary file: %v", err)
		}
		f.Close()
		absent(t, raw, "/f")
	})
}

func TestAtomicResume(t *testing.T) {
	const whole = "0123456789abcdefghijklmnopqrstuvwxyz"
	const cut = 13
	// Each client's resume, after an upload that broke at cut: how it
	// opens the name and sends the rest.
	resumes := map[string]func(t *testing.T, a FS, name string, off int64){
		// OpenSSH reput/put -a, psftp reput, curl -C - over SFTP: no
		// O_TRUNC, writes at the offset.
		"sftp-writeat": func(t *testing.T, a FS, name string, off int64) {
			f, err := a.OpenFile(name, create, 0o640)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte(whole[off:]), off); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		},
		// lftp put -c: REST then STOR, which ftpserverlib turns into a
		// seek on a file opened without O_TRUNC.
		"ftp-rest-stor": func(t *testing.T, a FS, name string, off int64) {
			f, err := a.OpenFile(name, create, 0o777)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Seek(off, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte(whole[off:])); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		},
		// curl -C - over FTP, Python's ftplib: APPE.
		"ftp-appe": func(t *testing.T, a FS, name string, off int64) {
			writeAll(t, a, name, appnd, whole[off:])
		},
	}
	// What the name looked like before the upload that broke.
	for _, old := range []string{"", "an older complete version"} {
		for client, resume := range resumes {
			t.Run(fmt.Sprintf("%s/old=%v", client, old != ""), func(t *testing.T) {
				forEachHome(t, atomicCopyMax, func(t *testing.T, raw, a FS) {
					if old != "" {
						writeAll(t, raw, "/f", trunc, old)
					}
					f, err := a.OpenFile("/f", trunc, 0o640)
					if err != nil {
						t.Fatal(err)
					}
					f.Write([]byte(whole[:cut]))
					f.(interface{ TransferError(error) }).TransferError(io.ErrUnexpectedEOF)
					f.Close()
					// The client learns the offset from stat (or SIZE).
					fi, err := a.Stat("/f")
					if err != nil || fi.Size() != cut {
						t.Fatalf("Stat = %v, %v; want %d bytes", fi, err, cut)
					}
					resume(t, a, "/f", fi.Size())
					if got := content(t, raw, "/f"); got != whole {
						t.Errorf("after resume: %q, want %q", got, whole)
					}
					if n := hiddenIn(t, raw, "/", ".wharf-"); len(n) != 0 {
						t.Errorf("left behind: %v", n)
					}
				})
			})
		}
	}
}

func TestAtomicResumeInterruptedTwice(t *testing.T) {
	forEachHome(t, atomicCopyMax, func(t *testing.T, raw, a FS) {
		for i, part := range []string{"first ", "second ", "third"} {
			fi, err := a.Stat("/f")
			off := int64(0)
			if err == nil {
				off = fi.Size()
			}
			f, err := a.OpenFile("/f", create, 0o640)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte(part), off); err != nil {
				t.Fatal(err)
			}
			if i < 2 {
				f.(interface{ TransferError(error) }).TransferError(io.ErrUnexpectedEOF)
			}
			f.Close()
			if i < 2 {
				absent(t, raw, "/f")
			}
		}
		if got := content(t, raw, "/f"); got != "first second third" {
			t.Errorf("after two resumes: %q", got)
		}
	})
}

// Writing to an existing complete file without O_TRUNC (APPE, a resume
// onto a file a plain server left, a rewrite in place) continues a copy of
// it, so the name keeps the old content until the upload completes.
func TestAtomicAppendToCompleteFile(t *testing.T) {
	forEachHome(t, atomicCopyMax, func(t *testing.T, raw, a FS) {
		writeAll(t, raw, "/log", trunc, "line 1\n")
		if err := raw.Chmod("/log", 0o604); err != nil {
			t.Fatal(err)
		}
		f, err := a.OpenFile("/log", appnd, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("line 2\n"))
		if got := content(t, raw, "/log"); got != "line 1\n" {
			t.Errorf("mid-append the file holds %q", got)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if got := content(t, raw, "/log"); got != "line 1\nline 2\n" {
			t.Errorf("after append: %q", got)
		}
		if fi, _ := raw.Stat("/log"); fi.Mode().Perm() != 0o604 {
			t.Errorf("mode after append = %v, want the file's 0604", fi.Mode().Perm())
		}

		// Broken append: old content stays, the copy plus the new bytes wait.
		f, err = a.OpenFile("/log", appnd, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("line 3"))
		f.(interface{ TransferError(error) }).TransferError(io.ErrUnexpectedEOF)
		f.Close()
		if got := content(t, raw, "/log"); got != "line 1\nline 2\n" {
			t.Errorf("after a broken append: %q", got)
		}
		if fi, err := a.Stat("/log"); err != nil || fi.Size() != int64(len("line 1\nline 2\nline 3")) {
			t.Errorf("Stat after a broken append = %v, %v", fi, err)
		}

		// Rewriting part of a file in place (O_RDWR, no O_TRUNC) reads and
		// writes the copy.
		writeAll(t, raw, "/rw", trunc, "abcdef")
		f, err = a.OpenFile("/rw", os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte("XY"), 2)
		buf := make([]byte, 6)
		if _, err := f.ReadAt(buf, 0); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if string(buf) != "abXYef" {
			t.Errorf("read back through the handle: %q", buf)
		}
		f.Close()
		if got := content(t, raw, "/rw"); got != "abXYef" {
			t.Errorf("after rewrite: %q", got)
		}

		// Opened for writing, nothing written: the file is not replaced.
		old, _ := raw.Stat("/rw")
		time.Sleep(10 * time.Millisecond)
		f, _ = a.OpenFile("/rw", wo, 0)
		f.Close()
		if fi, _ := raw.Stat("/rw"); !fi.ModTime().Equal(old.ModTime()) {
			t.Errorf("an open without writes changed the file's time")
		}
	})
}

// Beyond the copy limit, an existing file is continued in place.
func TestAtomicAppendBeyondCopyLimitInPlace(t *testing.T) {
	forEachHome(t, 4, func(t *testing.T, raw, a FS) {
		writeAll(t, raw, "/big", trunc, "0123456789")
		f, err := a.OpenFile("/big", appnd, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("+"))
		if got := content(t, raw, "/big"); got != "0123456789+" {
			t.Errorf("in place: %q", got)
		}
		f.Close()
		// Small files are still copied.
		writeAll(t, raw, "/small", trunc, "012")
		f, _ = a.OpenFile("/small", appnd, 0o640)
		f.Write([]byte("+"))
		if got := content(t, raw, "/small"); got != "012" {
			t.Errorf("a small file was written in place: %q", got)
		}
		f.Close()
	})
}

func TestAtomicHidesItsNames(t *testing.T) {
	forEachHome(t, atomicCopyMax, func(t *testing.T, raw, a FS) {
		if err := a.Mkdir("/d", 0o750); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			writeAll(t, a, fmt.Sprintf("/d/f%d", i), trunc, "x")
		}
		// A broken upload (a partial) and one in progress (a temporary file).
		f, _ := a.OpenFile("/d/broken", trunc, 0o640)
		f.Write([]byte("half"))
		f.(interface{ TransferError(error) }).TransferError(io.ErrUnexpectedEOF)
		f.Close()
		open, err := a.OpenFile("/d/inprogress", trunc, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		defer open.Close()
		open.Write([]byte("growing"))
		if len(hiddenIn(t, raw, "/d", ".wharf-")) != 2 {
			t.Fatalf("store: %v, want a partial and a temporary file", rawNames(t, raw, "/d"))
		}
		var hidden []string
		for _, n := range rawNames(t, raw, "/d") {
			if isHidden(n) {
				hidden = append(hidden, "/d/"+n)
			}
		}
		want := []string{"f0", "f1", "f2", "f3", "f4"}

		d, _ := a.Open("/d")
		names, err := d.Readdirnames(-1)
		d.Close()
		slices.Sort(names)
		if err != nil || !slices.Equal(names, want) {
			t.Errorf("Readdirnames(-1) = %v, %v; want %v", names, err, want)
		}
		// One entry at a time, as pkg/sftp and ftpserverlib page through.
		for _, n := range []int{1, 2, 100} {
			d, _ := a.Open("/d")
			var got []string
			for range 20 {
				fis, err := d.Readdir(n)
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
					t.Fatalf("Readdir(%d) returned nothing and no EOF", n)
				}
			}
			d.Close()
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("Readdir(%d) pages = %v, want %v", n, got, want)
			}
		}

		for _, h := range hidden {
			for op, err := range map[string]error{
				"stat":     func() error { _, err := a.Stat(h); return err }(),
				"lstat":    func() error { _, _, err := a.LstatIfPossible(h); return err }(),
				"open":     func() error { _, err := a.Open(h); return err }(),
				"write":    func() error { _, err := a.OpenFile(h, wo, 0); return err }(),
				"remove":   a.Remove(h),
				"rename":   a.Rename(h, "/d/stolen"),
				"chmod":    a.Chmod(h, 0o600),
				"truncate": a.Truncate(h, 0),
			} {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s %s: %v, want not found", op, h, err)
				}
			}
		}
		// Nor can a client make one of these names.
		for op, err := range map[string]error{
			"create": func() error { _, err := a.OpenFile("/"+partialPrefix+"f0", trunc, 0o640); return err }(),
			"mkdir":  a.Mkdir("/d/"+uploadPrefix+"x", 0o750),
			"rename": a.Rename("/d/f0", "/d/"+partialPrefix+"f1"),
		} {
			if !errors.Is(err, fs.ErrPermission) {
				t.Errorf("%s of a reserved name: %v, want permission denied", op, err)
			}
		}
		if len(hiddenIn(t, raw, "/d", ".wharf-")) != 2 {
			t.Errorf("a client operation touched a hidden file: %v", rawNames(t, raw, "/d"))
		}
	})
}

func TestAtomicErrorsNameTheClientPath(t *testing.T) {
	forEachHome(t, atomicCopyMax, func(t *testing.T, raw, a FS) {
		for what, err := range map[string]error{
			"no parent": func() error { _, err := a.OpenFile("/missing/f", trunc, 0o640); return err }(),
			"parent is a file": func() error {
				writeAll(t, raw, "/file", trunc, "x")
				_, err := a.OpenFile("/file/f", trunc, 0o640)
				return err
			}(),
		} {
			if err == nil {
				t.Errorf("%s: open succeeded", what)
				continue
			}
			if strings.Contains(err.Error(), ".wharf") {
				t.Errorf("%s: error names a temporary file: %v", what, err)
			}
		}
	})
}

func TestAtomicExcl(t *testing.T) {
	const excl = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	forEachHome(t, atomicCopyMax, func(t *testing.T, raw, a FS) {
		writeAll(t, raw, "/exists", trunc, "keep me")
		if _, err := a.OpenFile("/exists", excl|os.O_TRUNC, 0o640); !errors.Is(err, fs.ErrExist) {
			t.Errorf("O_EXCL on an existing file: %v, want exists", err)
		}
		if got := content(t, raw, "/exists"); got != "keep me" {
			t.Errorf("refused O_EXCL changed the file: %q", got)
		}

		// A partial is no file yet: an upload-only user (Restrict adds
		// O_EXCL) resumes it.
		f, _ := a.OpenFile("/p", excl|os.O_TRUNC, 0o640)
		f.Write([]byte("abc"))
		f.(interface{ TransferError(error) }).TransferError(io.ErrUnexpectedEOF)
		f.Close()
		f, err := a.OpenFile("/p", excl, 0o640)
		if err != nil {
			t.Fatalf("resume with O_EXCL: %v", err)
		}
		f.WriteAt([]byte("def"), 3)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if got := content(t, raw, "/p"); got != "abcdef" {
			t.Errorf("resumed with O_EXCL: %q", got)
		}

		// Two exclusive uploads race: the first to complete wins, the
		// second fails at close instead of replacing it.
		f1, err1 := a.OpenFile("/race", excl|os.O_TRUNC, 0o640)
		f2, err2 := a.OpenFile("/race", excl|os.O_TRUNC, 0o640)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		f1.Write([]byte("first"))
		f2.Write([]byte("second"))
		if err := f1.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f2.Close(); !errors.Is(err, fs.ErrExist) {
			t.Errorf("second exclusive upload: close = %v, want exists", err)
		}
		if got := content(t, raw, "/race"); got != "first" {
			t.Errorf("after the race: %q, want the first", got)
		}
		if n := hiddenIn(t, raw, "/", ".wharf-"); len(n) != 0 {
			t.Errorf("left behind: %v", n)
		}
	})
}

func TestAtomicConcurrentUploads(t *testing.T) {
	forEachHome(t, atomicCopyMax, func(t *testing.T, raw, a FS) {
		// Another session: its own Atomic layer over the same home.
		b := newAtomic(raw, atomicCopyMax)
		const n = 64 << 10
		data := [2][]byte{bytes.Repeat([]byte("A"), n), bytes.Repeat([]byte("B"), n/2)}
		files := make([]afero.File, 2)
		for i, fsys := range []FS{a, b} {
			f, err := fsys.OpenFile("/same", trunc, 0o640)
			if err != nil {
				t.Fatal(err)
			}
			files[i] = f
		}
		var wg sync.WaitGroup
		for i, f := range files {
			wg.Go(func() {
				for off := 0; off < len(data[i]); off += 1024 {
					if _, err := f.WriteAt(data[i][off:off+1024], int64(off)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		// The longer one completes first; the shorter one last, and wins
		// whole, with no byte of the other.
		if err := files[0].Close(); err != nil {
			t.Fatal(err)
		}
		if got := content(t, raw, "/same"); got != string(data[0]) {
			t.Errorf("after the first close: %d bytes, not the first upload", len(got))
		}
		if err := files[1].Close(); err != nil {
			t.Fatal(err)
		}
		if got := content(t, raw, "/same"); got != string(data[1]) {
			t.Errorf("after the second close: %d bytes, not the second upload", len(got))
		}
	})
}

// pkg/sftp answers FSTAT and FSETSTAT on an open handle by path: they must
// reach the upload (OpenSSH put -p sets mode and times before closing).
func TestAtomicAttributesOfAnOpenUpload(t *testing.T) {
	forEachHome(t, atomicCopyMax, func(t *testing.T, raw, a FS) {
		mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
		f, err := a.OpenFile("/f", trunc, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("12345"))
		if fi, err := a.Stat("/f"); err != nil || fi.Size() != 5 || fi.Name() != "f" {
			t.Errorf("Stat of the open upload = %v, %v", fi, err)
		}
		if err := a.Chmod("/f", 0o600); err != nil {
			t.Errorf("chmod of the open upload: %v", err)
		}
		if err := a.Chtimes("/f", mtime, mtime); err != nil {
			t.Errorf("chtimes of the open upload: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		fi, err := raw.Stat("/f")
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("after close: mode %v, want 0600", fi.Mode().Perm())
		}
		// afero's memory files take the time of their last close, with or
		// without this layer.
		if raw.Name() == "local" && !fi.ModTime().Equal(mtime) {
			t.Errorf("after close: mtime %v, want %v", fi.ModTime(), mtime)
		}
		// Setting a size through the name reaches the open upload too.
		f, _ = a.OpenFile("/g", trunc, 0o640)
		f.Write([]byte("123456789"))
		if err := a.Truncate("/g", 3); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if got := content(t, raw, "/g"); got != "123" {
			t.Errorf("truncated upload: %q", got)
		}
		absent(t, a, "/missing")
		if err := a.Chmod("/missing", 0o600); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("chmod of nothing: %v", err)
		}
	})
}

func TestAtomicRemoveAndRename(t *testing.T) {
	forEachHome(t, atomicCopyMax, func(t *testing.T, raw, a FS) {
		broken := func(name string) {
			t.Helper()
			f, err := a.OpenFile(name, trunc, 0o640)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("partial"))
			f.(interface{ TransferError(error) }).TransferError(io.ErrUnexpectedEOF)
			f.Close()
		}
		// Removing a name removes what Stat showed: its partial.
		broken("/gone")
		if err := a.Remove("/gone"); err != nil {
			t.Fatalf("remove of a partial-only name: %v", err)
		}
		absent(t, a, "/gone")
		absent(t, raw, partialOf("/gone"))
		if err := a.Remove("/gone"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("second remove: %v", err)
		}

		// A directory holding nothing but partials looks empty and can go.
		a.Mkdir("/d", 0o750)
		broken("/d/x")
		if err := a.Remove("/d"); err != nil {
			t.Errorf("rmdir of a directory with only a partial: %v", err)
		}
		// One with an upload in progress cannot, as on a plain server.
		a.Mkdir("/busy", 0o750)
		f, _ := a.OpenFile("/busy/x", trunc, 0o640)
		if err := a.Remove("/busy"); !errors.Is(err, syscall.ENOTEMPTY) {
			t.Errorf("rmdir during an upload: %v, want ENOTEMPTY", err)
		}
		f.Close()

		// A complete file renamed onto a name replaces its partial.
		broken("/target")
		writeAll(t, a, "/src", trunc, "complete")
		if err := a.Rename("/src", "/target"); err != nil {
			t.Fatal(err)
		}
		if got := content(t, a, "/target"); got != "complete" {
			t.Errorf("renamed file: %q", got)
		}
		if fi, _ := a.Stat("/target"); fi.Size() != int64(len("complete")) {
			t.Errorf("Stat after rename describes %d bytes, not the renamed file", fi.Size())
		}
		absent(t, raw, partialOf("/target"))
	})
}

func TestAtomicLongNames(t *testing.T) {
	forEachHome(t, atomicCopyMax, func(t *testing.T, raw, a FS) {
		name := "/" + strings.Repeat("n", 250)
		f, err := a.OpenFile(name, trunc, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("half"))
		f.(interface{ TransferError(error) }).TransferError(io.ErrUnexpectedEOF)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if fi, err := a.Stat(name); err != nil || fi.Size() != 4 {
			t.Fatalf("Stat of a long name's partial: %v, %v", fi, err)
		}
		f, _ = a.OpenFile(name, create, 0o640)
		f.WriteAt([]byte(" and the rest"), 4)
		f.Close()
		if got := content(t, raw, name); got != "half and the rest" {
			t.Errorf("long name resumed: %q", got)
		}
	})
}

// The session's stack: the front ends report a broken transfer to the
// outermost file, and every layer must pass it down to this one; a write
// the size cap refuses must count as a failure too.
func TestAtomicUnderAuditAndCapSize(t *testing.T) {
	forEachHome(t, atomicCopyMax, func(t *testing.T, raw, a FS) {
		stack := Restrict(Audit(CapSize(a, func() int64 { return 10 }), slog.New(slog.DiscardHandler), AuditOptions{}),
			func() Perms { return PermAll }, slog.New(slog.DiscardHandler))

		f, err := stack.OpenFile("/dropped", trunc, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("12345"))
		te, ok := f.(interface{ TransferError(error) })
		if !ok {
			t.Fatal("the stack's file has no TransferError")
		}
		te.TransferError(io.ErrUnexpectedEOF)
		f.Close()
		absent(t, raw, "/dropped")

		f, _ = stack.OpenFile("/toobig", trunc, 0o640)
		f.Write([]byte("12345"))
		if _, err := f.Write([]byte("678901")); !errors.Is(err, syscall.EFBIG) {
			t.Fatalf("write past the cap: %v", err)
		}
		f.Close()
		absent(t, raw, "/toobig")

		writeAll(t, stack, "/ok", trunc, "fine")
		if got := content(t, raw, "/ok"); got != "fine" {
			t.Errorf("complete upload through the stack: %q", got)
		}
	})
}

// closeCount counts the Close calls that reach a home.
type closeCount struct {
	FS
	mu sync.Mutex
	n  int
}

func (c *closeCount) Close() error {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.FS.Close()
}

func (c *closeCount) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// A session may end before its last upload closes (ftpserverlib ends the
// session, then closes the data connection): the home must stay open
// until that upload has landed, and then close once.
func TestAtomicCloseWaitsForUploads(t *testing.T) {
	for _, broken := range []bool{false, true} {
		t.Run(fmt.Sprintf("broken=%v", broken), func(t *testing.T) {
			forEachHome(t, atomicCopyMax, func(t *testing.T, raw, _ FS) {
				name := "/late"
				home := &closeCount{FS: raw}
				a := newAtomic(home, atomicCopyMax)
				f, err := a.OpenFile(name, trunc, 0o640)
				if err != nil {
					t.Fatal(err)
				}
				if err := a.Close(); err != nil {
					t.Fatal(err)
				}
				if home.count() != 0 {
					t.Fatal("the home was closed under an open upload")
				}
				f.Write([]byte("late"))
				if broken {
					f.(interface{ TransferError(error) }).TransferError(io.ErrUnexpectedEOF)
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				if home.count() != 1 {
					t.Errorf("home closed %d times after the last upload, want once", home.count())
				}
				if err := a.Close(); err != nil || home.count() != 1 {
					t.Errorf("second Close: %v, %d closes", err, home.count())
				}
			})
		})
	}
}

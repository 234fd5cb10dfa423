package vfs_test

// Benchmarks of the data path every SFTP and FTPS transfer takes, with and
// without the decorators a session stacks on its home. They run only with
// -bench; compare a change with benchstat:
//
//	go test -run '^$' -bench . -benchmem -count 10 ./internal/vfs > old.txt
//	(change something)
//	go test -run '^$' -bench . -benchmem -count 10 ./internal/vfs > new.txt
//	benchstat old.txt new.txt

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/afero"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// benchSegment bounds each benchmark's file: a sequential writer starts a
// new file once it reaches this size, so b.N never fills the store.
const benchSegment = 64 << 20

// benchChunks are the request sizes of the two SFTP clients that matter:
// 32 KiB (pkg/sftp, PuTTY, OpenSSH without limits@openssh.com) and 256 KiB
// (what OpenSSH sends once the server advertises limits@openssh.com).
var benchChunks = []int{32 << 10, 256 << 10}

// benchStack is one way of wrapping a home: "bare" is the backend alone,
// "session" what session.Manager.Open stacks on it.
type benchStack struct {
	name string
	wrap func(vfs.FS) vfs.FS
}

func benchStacks() []benchStack {
	// JSON at info level is what the daemon runs in production; io.Discard
	// keeps the terminal's speed out of the figure but not the formatting.
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	perms := func() vfs.Perms { return vfs.PermAll }
	// A cap far above any segment, so the check runs on every write
	// without ever refusing one.
	maxSize := func() int64 { return 1 << 40 }
	return []benchStack{
		{"bare", func(h vfs.FS) vfs.FS { return h }},
		{"session", func(h vfs.FS) vfs.FS {
			return vfs.Restrict(vfs.Audit(vfs.CapSize(h, maxSize), log, vfs.AuditOptions{}), perms, log)
		}},
	}
}

// benchRoot is a storage root on tmpfs when the machine has one, so that
// the figures measure code rather than a disk.
func benchRoot(b *testing.B) string {
	b.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "wharf-vfs-bench-")
		if err == nil {
			b.Cleanup(func() {
				if err := os.RemoveAll(dir); err != nil {
					b.Errorf("remove %s: %v", dir, err)
				}
			})
			return dir
		}
		b.Logf("/dev/shm is not writable (%v): storage root on the test temp dir, figures include its disk", err)
		return b.TempDir()
	}
	b.Logf("no /dev/shm: storage root on the test temp dir, figures include its disk")
	return b.TempDir()
}

// benchHome opens a fresh home on a local backend and wraps it.
func benchHome(b *testing.B, s benchStack) (vfs.FS, string) {
	b.Helper()
	root := benchRoot(b)
	backend, err := vfs.NewLocal(root)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { backend.Close() })
	home, err := backend.Home("/bench")
	if err != nil {
		b.Fatal(err)
	}
	fsys := s.wrap(home)
	b.Cleanup(func() { fsys.Close() })
	return fsys, filepath.Join(root, "bench")
}

func randomBytes(n int, seed byte) []byte {
	buf := make([]byte, n)
	src := mrand.NewChaCha8([32]byte{seed})
	if _, err := io.ReadFull(src, buf); err != nil {
		panic(err) // ChaCha8 never fails
	}
	return buf
}

// BenchmarkWriteAt is a sequential upload: WriteAt at increasing offsets
// into a file opened for writing, a new file every benchSegment bytes.
// Reopening is outside the timer; closing, which logs the transfer and
// finishes its hash, is not part of any chunk's cost.
func BenchmarkWriteAt(b *testing.B) {
	for _, s := range benchStacks() {
		for _, chunk := range benchChunks {
			b.Run(fmt.Sprintf("%s/%dKiB", s.name, chunk>>10), func(b *testing.B) {
				fsys, hostDir := benchHome(b, s)
				buf := randomBytes(chunk, 1)
				// cur is the open file, if any, so that a failed run still
				// closes it.
				var cur afero.File
				b.Cleanup(func() {
					if cur != nil {
						cur.Close()
					}
				})
				open := func() {
					f, err := fsys.OpenFile("/upload.bin", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
					if err != nil {
						b.Fatal(err)
					}
					cur = f
				}
				closeFile := func() {
					f := cur
					cur = nil
					if err := f.Close(); err != nil {
						b.Fatalf("close: %v", err)
					}
				}
				open()
				var off int64
				b.SetBytes(int64(chunk))
				b.ResetTimer()
				for range b.N {
					if off+int64(chunk) > benchSegment {
						b.StopTimer()
						closeFile()
						open()
						off = 0
						b.StartTimer()
					}
					n, err := cur.WriteAt(buf, off)
					if err != nil || n != chunk {
						b.Fatalf("WriteAt(%d bytes at %d) = %d, %v", chunk, off, n, err)
					}
					off += int64(n)
				}
				b.StopTimer()
				closeFile()
				// What the backend holds must be what was written: the file
				// has off bytes, the chunk repeated.
				got, err := os.ReadFile(filepath.Join(hostDir, "upload.bin"))
				if err != nil {
					b.Fatal(err)
				}
				if int64(len(got)) != off || !bytes.Equal(got[:chunk], buf) {
					b.Fatalf("upload.bin holds %d bytes, want %d starting with the chunk", len(got), off)
				}
			})
		}
	}
}

// BenchmarkReadAt is a sequential download: ReadAt at increasing offsets,
// wrapping around a benchSegment-sized file that is in the page cache.
func BenchmarkReadAt(b *testing.B) {
	data := randomBytes(benchSegment, 2)
	for _, s := range benchStacks() {
		for _, chunk := range benchChunks {
			b.Run(fmt.Sprintf("%s/%dKiB", s.name, chunk>>10), func(b *testing.B) {
				fsys, hostDir := benchHome(b, s)
				if err := os.WriteFile(filepath.Join(hostDir, "download.bin"), data, 0o640); err != nil {
					b.Fatal(err)
				}
				f, err := fsys.Open("/download.bin")
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { f.Close() })
				buf := make([]byte, chunk)
				var off int64
				b.SetBytes(int64(chunk))
				b.ResetTimer()
				for range b.N {
					if off+int64(chunk) > benchSegment {
						off = 0
					}
					n, err := f.ReadAt(buf, off)
					if err != nil || n != chunk {
						b.Fatalf("ReadAt(%d bytes at %d) = %d, %v", chunk, off, n, err)
					}
					off += int64(n)
				}
				b.StopTimer()
				// The last chunk read must be the file's bytes at its offset.
				if !bytes.Equal(buf, data[off-int64(chunk):off]) {
					b.Fatalf("ReadAt at %d returned other bytes than the file holds", off-int64(chunk))
				}
				if err := f.Close(); err != nil {
					b.Fatalf("close: %v", err)
				}
			})
		}
	}
}

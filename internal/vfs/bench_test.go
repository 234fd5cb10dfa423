package vfs

// Benchmarks of the data path every SFTP and FTPS transfer takes, on the
// local store alone and through the session's policy (FS). They run only
// with -bench; compare a change with benchstat:
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
)

// benchSegment bounds each benchmark's file: a sequential writer starts a
// new file once it reaches this size, so b.N never fills the store.
const benchSegment = 64 << 20

// benchChunks are the request sizes of the two SFTP clients that matter:
// 32 KiB (pkg/sftp, PuTTY, OpenSSH without limits@openssh.com) and 256 KiB
// (what OpenSSH sends once the server advertises limits@openssh.com).
var benchChunks = []int{32 << 10, 256 << 10}

// benchWriter and benchReader are what a benchmark drives: the store's
// own upload and file, or the session's.
type (
	benchWriter interface {
		io.WriterAt
		Commit() error
	}
	benchReader interface {
		io.ReaderAt
		io.Closer
	}
)

// benchStack is one way to reach a home: "store" is the local store
// alone, "session" the FS a session gets over it.
type benchStack struct {
	name   string
	create func(name string) (benchWriter, error)
	open   func(name string) (benchReader, error)
}

func benchStacks(b *testing.B) []func() (benchStack, string) {
	// JSON at info level is what the daemon runs in production; io.Discard
	// keeps the terminal's speed out of the figure but not the formatting.
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	return []func() (benchStack, string){
		func() (benchStack, string) {
			st, dir := benchHome(b)
			return benchStack{
				name:   "store",
				create: func(name string) (benchWriter, error) { return st.Create(name, CreateOptions{}) },
				open:   func(name string) (benchReader, error) { return st.Open(name, 0) },
			}, dir
		},
		func() (benchStack, string) {
			st, dir := benchHome(b)
			// A cap far above any segment, so that the check runs on every
			// write without ever refusing one.
			s := NewFS(st, Options{Log: log, MaxSize: func() int64 { return 1 << 40 }})
			b.Cleanup(func() { s.Close() })
			return benchStack{
				name:   "session",
				create: func(name string) (benchWriter, error) { return s.Create(name, trunc) },
				open:   func(name string) (benchReader, error) { return s.Open(name, 0) },
			}, dir
		},
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

// benchHome opens a fresh home on a local store with atomic uploads, as
// the daemon runs by default, and returns its directory on the host.
func benchHome(b *testing.B) (Store, string) {
	b.Helper()
	root := benchRoot(b)
	backend := newLocalBackend(b, root, true)
	b.Cleanup(func() { backend.Close() })
	st, err := backend.Home("/bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st, filepath.Join(root, "bench")
}

func randomBytes(n int, seed byte) []byte {
	buf := make([]byte, n)
	src := mrand.NewChaCha8([32]byte{seed})
	if _, err := io.ReadFull(src, buf); err != nil {
		panic(err) // ChaCha8 never fails
	}
	return buf
}

// BenchmarkWriteAt is a sequential upload: WriteAt at increasing offsets,
// a new upload every benchSegment bytes. Starting and committing uploads
// is outside the timer.
func BenchmarkWriteAt(b *testing.B) {
	for _, mk := range benchStacks(b) {
		for _, chunk := range benchChunks {
			s, hostDir := mk()
			b.Run(fmt.Sprintf("%s/%dKiB", s.name, chunk>>10), func(b *testing.B) {
				buf := randomBytes(chunk, 1)
				var cur benchWriter
				start := func() {
					w, err := s.create("/upload.bin")
					if err != nil {
						b.Fatal(err)
					}
					cur = w
				}
				commit := func() {
					if err := cur.Commit(); err != nil {
						b.Fatalf("commit: %v", err)
					}
				}
				start()
				var off int64
				b.SetBytes(int64(chunk))
				b.ResetTimer()
				for range b.N {
					if off+int64(chunk) > benchSegment {
						b.StopTimer()
						commit()
						start()
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
				commit()
				// What the store holds must be what was written: the file
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
	for _, mk := range benchStacks(b) {
		for _, chunk := range benchChunks {
			s, hostDir := mk()
			b.Run(fmt.Sprintf("%s/%dKiB", s.name, chunk>>10), func(b *testing.B) {
				if err := os.WriteFile(filepath.Join(hostDir, "download.bin"), data, 0o640); err != nil {
					b.Fatal(err)
				}
				r, err := s.open("/download.bin")
				if err != nil {
					b.Fatal(err)
				}
				buf := make([]byte, chunk)
				var off int64
				b.SetBytes(int64(chunk))
				b.ResetTimer()
				for range b.N {
					if off+int64(chunk) > benchSegment {
						off = 0
					}
					n, err := r.ReadAt(buf, off)
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
				if err := r.Close(); err != nil {
					b.Fatalf("close: %v", err)
				}
			})
		}
	}
}

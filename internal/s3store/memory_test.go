package s3store

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// chunkOf fills buf with the bytes of a synthetic file at off: the test
// never holds the file, only the chunks in flight.
func chunkOf(buf []byte, off int64) {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(off))
	r := rand.NewChaCha8(seed)
	_, _ = r.Read(buf)
}

// heapSampler records the peak of the heap's object bytes (live and not
// yet swept) until stopped.
type heapSampler struct {
	stop chan struct{}
	done chan struct{}
	peak uint64
}

const heapObjects = "/memory/classes/heap/objects:bytes"

func heapNow() uint64 {
	s := []metrics.Sample{{Name: heapObjects}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if v := heapNow(); v > h.peak {
				h.peak = v
			}
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	<-h.done
	return h.peak
}

// 256 MiB through one Upload, written by 8 workers as pkg/sftp does:
// the heap grows by about what the formula in Upload's comment says
// (part_size × (upload_concurrency + 1) + 2 × part_size), not with the
// file. Measured with GOGC=20 so that garbage not yet collected does not
// hide the live set.
func TestUploadMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 256 MiB")
	}
	for _, cfg := range []struct {
		part int64
		conc int
	}{{MinPartSize, 3}, {DefaultConfig().PartSize, DefaultConfig().UploadConcurrency}} {
		t.Run(fmt.Sprintf("%dMiB×%d", cfg.part>>20, cfg.conc), func(t *testing.T) {
			uploadMemory(t, newEnv(t, func(c *Config, _ *Options) { c.PartSize, c.UploadConcurrency = cfg.part, cfg.conc }))
		})
	}
}

func uploadMemory(t *testing.T, e *env) {
	const size, chunk, workers = 256 << 20, 32 << 10, 8
	bound := e.b.cfg.PartSize*int64(e.b.cfg.UploadConcurrency+1) + 2*e.b.cfg.PartSize
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	runtime.GC()
	base := heapNow()
	h := startHeapSampler()
	start := time.Now()

	u := mustCreate(t, e.home, "/big", vfs.CreateOptions{})
	queue := make(chan int64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var werr error
	for range workers {
		wg.Go(func() {
			buf := make([]byte, chunk)
			for o := range queue {
				chunkOf(buf, o)
				if _, err := u.WriteAt(buf, o); err != nil {
					mu.Lock()
					werr = err
					mu.Unlock()
				}
			}
		})
	}
	for o := int64(0); o < size; o += chunk {
		queue <- o
	}
	close(queue)
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	peak := h.Stop()
	growth := int64(peak) - int64(base)
	t.Logf("256 MiB in %v (%.0f MB/s); heap peak %.1f MiB above the %.1f MiB before; bound by the formula %d MiB",
		elapsed.Round(time.Millisecond), float64(size)/elapsed.Seconds()/1e6, float64(growth)/(1<<20), float64(base)/(1<<20), bound>>20)
	if growth > bound+bound/2 {
		t.Errorf("heap grew by %d MiB uploading 256 MiB; want about the formula's %d MiB", growth>>20, bound>>20)
	}

	// Read it back through the bucket and compare.
	want := sha256.New()
	buf := make([]byte, chunk)
	for o := int64(0); o < size; o += chunk {
		chunkOf(buf, o)
		want.Write(buf)
	}
	out, err := e.raw.GetObject(testContext(t), &s3.GetObjectInput{Bucket: &e.bucket, Key: ptr(e.prefix + "big")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	got := sha256.New()
	if n, err := io.Copy(got, out.Body); err != nil || n != size {
		t.Fatalf("read back %d bytes, %v", n, err)
	}
	if string(got.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatal("the 256 MiB object differs from what was written")
	}
}

package s3store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// readObject puts size random bytes as the home's object name and
// returns them, with the requests counted from then on.
func readObject(t *testing.T, e *env, name string, size int) []byte {
	t.Helper()
	data := randomBytes(t, size)
	e.putRaw(t, e.prefix+name, data)
	e.count.reset()
	return data
}

// readAtOK reads len(p) bytes at off and checks them against data.
func readAtOK(t *testing.T, f interface {
	ReadAt([]byte, int64) (int, error)
}, data []byte, off int64, n int) {
	t.Helper()
	p := make([]byte, n)
	k, err := f.ReadAt(p, off)
	want := min(int64(n), int64(len(data))-off)
	if int64(k) != want || (err != nil && !(err == io.EOF && want < int64(n))) {
		t.Fatalf("ReadAt(%d bytes at %d): %d, %v; want %d", n, off, k, err, want)
	}
	if !bytes.Equal(p[:k], data[off:off+int64(k)]) {
		t.Fatalf("ReadAt(%d bytes at %d): wrong bytes", n, off)
	}
}

// ranges lists the Range headers of the object GETs the wire saw.
func (w *wire) ranges() []string {
	var r []string
	for _, x := range w.objectGets() {
		r = append(r, x.req.Get("Range"))
	}
	return r
}

// objectGets are the GETs of objects the wire saw, not of listings.
func (w *wire) objectGets() []exchange {
	var r []exchange
	for _, x := range w.exchanges() {
		if q, _ := url.ParseQuery(x.query); x.method == http.MethodGet && !q.Has("list-type") && !q.Has("uploads") && !q.Has("uploadId") {
			r = append(r, x)
		}
	}
	return r
}

// isObjectGet says whether r is a GET of an object's bytes.
func isObjectGet(r *http.Request) bool {
	q := r.URL.Query()
	return r.Method == http.MethodGet && !q.Has("list-type") && !q.Has("uploads") && !q.Has("uploadId")
}

// versioned checks that every ranged GET asked for the first one's ETag.
func versioned(t *testing.T, w *wire) {
	t.Helper()
	for _, x := range w.objectGets() {
		if x.req.Get("Range") != "" && x.req.Get("If-Match") == "" {
			t.Errorf("GET %s without If-Match", x.req.Get("Range"))
		}
	}
}

func recording(w *wire) envOption {
	return func(_ *Config, o *Options) { o.Client = append(o.Client, recordWire(w)) }
}

// A read the stream has left behind (its bytes gone from the ring) gets a
// ranged GET of its own and leaves the stream where it is; a second read
// that continues it moves the stream there; a read far ahead moves it too.
func TestReadBehindAndAhead(t *testing.T) {
	w := &wire{}
	e := newEnv(t, recording(w))
	data := readObject(t, e, "f", 40<<20+5)
	f, err := e.home.Open("/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const chunk = 256 << 10
	for off := int64(0); off < 20<<20; off += chunk {
		readAtOK(t, f, data, off, chunk)
	}
	if got := w.ranges(); len(got) != 1 || got[0] != "" {
		t.Fatalf("a sequential read sent GETs with ranges %q; want one GET of everything", got)
	}
	// Behind the ring: its own GET, exactly its bytes.
	readAtOK(t, f, data, 1<<20, chunk)
	readAtOK(t, f, data, 20<<20, chunk) // the stream goes on
	want := []string{"", fmt.Sprintf("bytes=%d-%d", 1<<20, 1<<20+chunk-1)}
	if got := w.ranges(); !equalStrings(got, want) {
		t.Fatalf("after a read behind: GET ranges %q; want %q", got, want)
	}
	// The next read behind continues that one: the reader has moved, the
	// stream follows, and the reads after it come from it.
	for off := int64(1<<20 + chunk); off < 4<<20; off += chunk {
		readAtOK(t, f, data, off, chunk)
	}
	want = append(want, fmt.Sprintf("bytes=%d-", 1<<20+chunk))
	if got := w.ranges(); !equalStrings(got, want) {
		t.Fatalf("after a seek back: GET ranges %q; want %q", got, want)
	}
	// Far ahead (a ring or more past the stream): the stream moves there.
	readAtOK(t, f, data, 30<<20, chunk)
	readAtOK(t, f, data, 30<<20+chunk, chunk)
	want = append(want, fmt.Sprintf("bytes=%d-", 30<<20))
	if got := w.ranges(); !equalStrings(got, want) {
		t.Fatalf("after a seek ahead: GET ranges %q; want %q", got, want)
	}
	versioned(t, w)
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n") && len(a) == len(b)
}

// pkg/sftp's pattern at its worst: 8 workers, and now and then one of
// them far behind the others (more than the ring holds). Every byte
// arrives right, the stream is never restarted, and each straggler costs
// one GET of its own bytes.
func TestReadStragglers(t *testing.T) {
	w := &wire{}
	e := newEnv(t, recording(w))
	data := readObject(t, e, "f", 48<<20+3)
	f, err := e.home.Open("/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const chunk = 255 << 10
	var offs []int64
	for o := int64(0); o < int64(len(data)); o += chunk {
		offs = append(offs, o)
	}
	// Every 40th read is held back until 60 reads later (15 MiB: OpenSSH
	// keeps 64 in flight), the others go in order.
	held := map[int]int64{}
	var order []int64
	stragglers := 0 // the held reads the ring cannot have kept
	for i, o := range offs {
		if i%40 == 7 {
			held[i+60] = o
			if int64(min(i+60, len(offs))-i)*chunk > readBuffer {
				stragglers++
			}
		} else {
			order = append(order, o)
		}
		if h, ok := held[i]; ok {
			order = append(order, h)
			delete(held, i)
		}
	}
	for _, o := range held {
		order = append(order, o)
	}
	out := make([]byte, len(data))
	queue := make(chan int64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for range 8 {
		wg.Go(func() {
			buf := make([]byte, chunk)
			for o := range queue {
				n, err := f.ReadAt(buf, o)
				if err != nil && !(err == io.EOF && o+int64(n) == int64(len(data))) {
					mu.Lock()
					errs = append(errs, fmt.Errorf("ReadAt %d: %d, %w", o, n, err))
					mu.Unlock()
					continue
				}
				copy(out[o:], buf[:n])
			}
		})
	}
	for _, o := range order {
		queue <- o
	}
	close(queue)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	equal(t, "stragglers", out, data)
	// One stream, never restarted; every other GET is one read's bytes
	// (a straggler's, or a read the scheduler held back as long).
	for i, r := range w.ranges() {
		var lo, hi int64
		if _, err := fmt.Sscanf(r, "bytes=%d-%d", &lo, &hi); i == 0 && r != "" || i > 0 && (err != nil || lo/chunk != hi/chunk) {
			t.Errorf("GET %d has range %q: want one stream from 0, then one read's bytes", i, r)
		}
	}
	if n := len(w.ranges()); n < 1+stragglers {
		t.Errorf("%d GETs for %d stragglers", n, stragglers)
	}
	t.Logf("%d bytes with %d stragglers: %d GETs, %d bytes from the bucket", len(data), stragglers, len(e.count.gets), e.count.getBytes.Load())
}

// The ends: a read across the end is short with io.EOF, one at or past
// it is (0, io.EOF), Read returns what it has and then io.EOF, and an
// object smaller than the ring gets a ring of its size.
func TestReadEOF(t *testing.T) {
	e := newEnv(t)
	data := readObject(t, e, "f", 3<<20+11)
	f, err := e.home.Open("/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := make([]byte, 100)
	n, err := f.ReadAt(p, int64(len(data))-10)
	if n != 10 || err != io.EOF || !bytes.Equal(p[:10], data[len(data)-10:]) {
		t.Errorf("ReadAt across the end: %d, %v", n, err)
	}
	for _, off := range []int64{int64(len(data)), int64(len(data)) + 1} {
		if n, err := f.ReadAt(p, off); n != 0 || err != io.EOF {
			t.Errorf("ReadAt at %d: %d, %v", off, n, err)
		}
	}
	if r := len(f.(*file).ring); r != len(data) {
		t.Errorf("ring of %d bytes for an object of %d", r, len(data))
	}
	// Read from the start, with a buffer larger than the object.
	got, err := io.ReadAll(io.LimitReader(f, 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "Read to the end", got, data)
	if n, err := f.Read(p); n != 0 || err != io.EOF {
		t.Errorf("Read at the end: %d, %v", n, err)
	}

	// A large object's ring is readBuffer, whatever is read.
	big := readObject(t, e, "big", readBuffer+1<<20)
	g, err := e.home.Open("/big", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	readAtOK(t, g, big, int64(len(big))-5, 100)
	if r := len(g.(*file).ring); r != readBuffer {
		t.Errorf("ring of %d bytes; want readBuffer (%d)", r, readBuffer)
	}
}

// breaker makes the body of the n-th object GET (from 0) fail after
// after(n) bytes as a dropped connection would (after < 0: never).
type breaker struct {
	inner s3.HTTPClient
	after func(n int) int64
	mu    sync.Mutex
	n     int
}

func (b *breaker) install(o *s3.Options) {
	b.inner = o.HTTPClient
	o.HTTPClient = b
}

func (b *breaker) Do(r *http.Request) (*http.Response, error) {
	resp, err := b.inner.Do(r)
	if err != nil || !isObjectGet(r) || resp.StatusCode >= 300 {
		return resp, err
	}
	b.mu.Lock()
	left := b.after(b.n)
	b.n++
	b.mu.Unlock()
	if left >= 0 {
		resp.Body = &brokenBody{ReadCloser: resp.Body, left: left}
	}
	return resp, nil
}

type brokenBody struct {
	io.ReadCloser
	left int64
}

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errors.New("injected: connection reset by peer")
	}
	n, err := b.ReadCloser.Read(p[:min(int64(len(p)), b.left)])
	b.left -= int64(n)
	return n, err
}

// A stream that breaks after some progress is resumed where it broke by
// another GET (of the same version); one that breaks at once fails the
// reads that wait for it, with the error, and Close still returns.
func TestReadBrokenStream(t *testing.T) {
	t.Run("resumed", func(t *testing.T) {
		w := &wire{}
		b := &breaker{after: func(n int) int64 {
			if n == 0 {
				return 3<<20 + 123
			}
			return -1
		}}
		e := newEnv(t, func(_ *Config, o *Options) { o.Client = append(o.Client, b.install, recordWire(w)) })
		data := readObject(t, e, "f", 12<<20)
		f, err := e.home.Open("/f", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		got, err := io.ReadAll(f)
		if err != nil {
			t.Fatalf("Read through a broken stream: %v", err)
		}
		equal(t, "resumed", got, data)
		want := []string{"", fmt.Sprintf("bytes=%d-", 3<<20+123)}
		if got := w.ranges(); !equalStrings(got, want) {
			t.Errorf("GET ranges %q; want %q", got, want)
		}
		versioned(t, w)
	})
	t.Run("failing", func(t *testing.T) {
		b := &breaker{after: func(int) int64 { return 100 << 10 }}
		e := newEnv(t, func(_ *Config, o *Options) { o.Client = append(o.Client, b.install) })
		data := readObject(t, e, "f", 12<<20)
		f, err := e.home.Open("/f", 0)
		if err != nil {
			t.Fatal(err)
		}
		readAtOK(t, f, data, 0, 64<<10)
		// 8 readers waiting for bytes the stream will not bring.
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = f.ReadAt(make([]byte, 256<<10), int64(i)*256<<10+1<<20)
			})
		}
		waited := make(chan struct{})
		go func() { wg.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(time.Minute):
			t.Fatal("reads still waiting a minute after the stream broke")
		}
		for i, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "injected") {
				t.Errorf("reader %d: %v; want the stream's error", i, err)
			}
		}
		// A read within what the ring holds still works.
		readAtOK(t, f, data, 4096, 1000)
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if _, err := f.ReadAt(make([]byte, 10), 0); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("ReadAt after Close: %v", err)
		}
	})
}

// An object replaced while it is read: every later GET (a read behind the
// ring, the stream moved ahead) asks for the first version and is refused
// with "changed", never served the new bytes.
func TestReadChangedObject(t *testing.T) {
	e := newEnv(t)
	data := readObject(t, e, "f", 24<<20)
	f, err := e.home.Open("/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off := int64(0); off < 12<<20; off += 256 << 10 {
		readAtOK(t, f, data, off, 256<<10)
	}
	e.putRaw(t, e.prefix+"f", bytes.Repeat([]byte("new"), 8<<20))
	for _, off := range []int64{0, 22 << 20} { // behind the ring, then far ahead
		_, err := f.ReadAt(make([]byte, 1000), off)
		if err == nil || !strings.Contains(err.Error(), "changed") || !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("ReadAt at %d of a replaced object: %v; want it changed", off, err)
		}
	}
	// A new Open reads the new version.
	g, err := e.home.Open("/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	p := make([]byte, 6)
	if _, err := g.ReadAt(p, 0); err != nil || string(p) != "newnew" {
		t.Errorf("reopened: %q, %v", p, err)
	}
}

// Close while reads wait for the stream and the filler waits on a slow
// store: every read returns fs.ErrClosed and Close returns, the filler
// done.
func TestReadCloseWhileWaiting(t *testing.T) {
	release := make(chan struct{})
	b := &breaker{after: func(int) int64 { return 1 << 20 }}
	e := newEnv(t, func(_ *Config, o *Options) {
		o.Client = append(o.Client, b.install, func(o *s3.Options) {
			o.HTTPClient = stall{inner: o.HTTPClient, release: release}
		})
	})
	defer close(release)
	data := readObject(t, e, "f", 12<<20)
	f, err := e.home.Open("/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	readAtOK(t, f, data, 0, 1000)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { _, errs[i] = f.ReadAt(make([]byte, 1000), 2<<20+int64(i)*1000) })
	}
	time.Sleep(100 * time.Millisecond) // let them wait
	closed := make(chan error)
	go func() { closed <- f.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Close still waiting after a minute")
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, fs.ErrClosed) {
			t.Errorf("reader %d: %v; want fs.ErrClosed", i, err)
		}
	}
	select {
	case <-f.(*file).done:
	default:
		t.Error("the filler still runs after Close")
	}
}

// stall holds every object GET after the first until its request's
// context ends or release is closed: a store that stopped answering.
type stall struct {
	inner   s3.HTTPClient
	release chan struct{}
}

func (s stall) Do(r *http.Request) (*http.Response, error) {
	if isObjectGet(r) && r.Header.Get("Range") != "" {
		select {
		case <-r.Context().Done():
			return nil, r.Context().Err()
		case <-s.release:
		}
	}
	return s.inner.Do(r)
}

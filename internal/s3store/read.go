package s3store

import (
	"context"
	"io"
	"io/fs"
	"math"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// A download reads its object as one GET stream, filled by a goroutine of
// its own (the filler) into a ring of the stream's latest bytes, ahead of
// the reads. pkg/sftp serves an OpenSSH download with up to 64 READs in
// flight, handed to 8 workers that call ReadAt concurrently, so offsets
// arrive out of order, and now and then a worker the scheduler left
// waiting falls megabytes behind the others while they go on (pkg/sftp
// sends the replies in order, so theirs wait for its). The ring serves
// the reads a little behind; a read
// whose bytes the ring has dropped gets a ranged GET of its own, which
// leaves the stream where it is. Reading the network outside the lock,
// in the filler, lets the workers copy from memory while the next bytes
// arrive.
const (
	// readBuffer is the ring's size: the most a download holds in memory
	// (less for a smaller object).
	readBuffer = 8 << 20
	// readAhead is how far the stream runs ahead of the furthest read
	// (at most half the ring): the rest of the ring keeps what the reads
	// behind that one may still ask for.
	readAhead = 2 << 20
	// readChunk bounds one Read of the stream's body.
	readChunk = 512 << 10
	// resumeAfter is what a stream must have delivered since its GET for
	// the filler to resume it with another GET when it breaks, rather than
	// fail the reads. The bound makes the retries at most size/resumeAfter.
	resumeAfter = 1 << 20
)

// Open starts one GET from off. Its response describes the object (size,
// time, ETag); every later GET of this File asks for the same ETag
// (If-Match), so a download never mixes two versions of an object.
func (s *store) Open(name string, off int64) (vfs.File, error) {
	if isRoot(name) {
		return nil, failure("open", s.prefix, syscall.EISDIR, "the home folder")
	}
	if off < 0 {
		return nil, failure("open", name, fs.ErrInvalid, "negative offset %d", off)
	}
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	f := newFile(s.b, key, off)
	st, err := f.get(f.ctx, off, -1)
	if rangeErr(err) {
		// At or past the end (an empty object, a resumed download that
		// has it all): nothing to stream until a read asks for less.
		var fi info
		if fi, err = s.headFile(key); err == nil {
			f.info, f.etag = fi, fi.etag
		}
	}
	if notFound(err) {
		if d, derr := s.dirInfo(key); derr == nil && d != nil {
			f.stopAll()
			return nil, failure("open", key, syscall.EISDIR, "a folder")
		}
	}
	if err != nil {
		f.stopAll()
		return nil, err
	}
	f.body = st
	f.info.name = baseName(name)
	return f, nil
}

func rangeErr(err error) bool {
	code, status := apiCode(err)
	return code == "InvalidRange" || status == 416
}

// file is an object open for reading. Its fields below mu are guarded by
// it; the ring's bytes [lo, hi) are stable while mu is held, since only
// the filler writes the ring, and only outside [lo, hi).
type file struct {
	b       *Backend
	key     string
	ctx     context.Context // of every GET of the file; Close cancels it
	stopAll context.CancelFunc

	mu     sync.Mutex
	ready  sync.Cond // for the reads: the stream reached wakeAt, failed, moved, or Close
	more   sync.Cond // for the filler: want grew, the stream moved, or Close
	closed bool
	etag   string // of the first response; every later GET asks for it
	info   info
	cursor int64 // where Read goes on

	ring   []byte // allocated at the first read
	lead   int64  // how far the stream runs ahead of want: min(readAhead, half the ring)
	lo, hi int64  // the ring holds the stream's bytes [lo, hi); the stream stands at hi
	want   int64  // the furthest end a read asked for
	gen    int    // the stream's generation: moveTo starts another
	err    error  // why the stream of this generation stopped at hi, if it did
	// wakeAt is the least stream offset a waiting read needs: the filler
	// wakes the reads when hi reaches it, not at every chunk.
	wakeAt int64
	body   *stream       // Open's response, until the filler takes it
	cancel func()        // ends the filler's current GET
	done   chan struct{} // closed when the filler returns; nil before it starts
	// missEnd is where the last read served by a GET of its own ended: a
	// read behind the ring that starts there is a reader that left the
	// stream behind, and the stream follows it.
	missEnd int64
}

// stream is one GET's response from off.
type stream struct {
	body   io.ReadCloser
	cancel context.CancelFunc
	off    int64
}

func (s *stream) close() {
	s.cancel()
	s.body.Close()
}

func newFile(b *Backend, key string, off int64) *file {
	ctx, stop := context.WithCancel(context.Background())
	f := &file{b: b, key: key, ctx: ctx, stopAll: stop, cursor: off, lo: off, hi: off, want: off,
		wakeAt: math.MaxInt64, missEnd: -1}
	f.ready.L, f.more.L = &f.mu, &f.mu
	return f
}

// get sends a GET of [off, end] (end < 0: to the object's end) under ctx,
// asking for the file's ETag once it is known, and notes the object's
// size, time and ETag from the first response. The caller must not hold
// mu.
func (f *file) get(ctx context.Context, off, end int64) (*stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	in := &s3.GetObjectInput{Bucket: &f.b.bucket, Key: &f.key}
	switch {
	case end >= 0:
		in.Range = ptr("bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(end, 10))
	case off > 0:
		in.Range = ptr("bytes=" + strconv.FormatInt(off, 10) + "-")
	}
	f.mu.Lock()
	etag := f.etag
	f.mu.Unlock()
	if etag != "" {
		in.IfMatch = &etag
	}
	out, err := f.b.client.GetObject(ctx, in)
	if err != nil {
		cancel()
		if etag != "" && kindOf(err) == fs.ErrExist {
			return nil, failure("read", f.key, fs.ErrInvalid, "the object changed while it was read")
		}
		return nil, s3Err("get", f.key, err)
	}
	if etag == "" {
		size := aws.ToInt64(out.ContentLength) + off
		if cr := aws.ToString(out.ContentRange); cr != "" {
			if i := strings.LastIndexByte(cr, '/'); i >= 0 {
				if n, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
					size = n
				}
			}
		}
		f.mu.Lock()
		if f.etag == "" {
			f.etag = aws.ToString(out.ETag)
			f.info.size, f.info.mtime = size, aws.ToTime(out.LastModified)
		}
		f.mu.Unlock()
	}
	return &stream{body: out.Body, cancel: cancel, off: off}, nil
}

// Read goes on from where the last Read ended (from Open's offset first).
func (f *file) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, fs.ErrClosed
	}
	if f.cursor >= f.info.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), f.info.size-f.cursor)]
	n, err := f.read(p, f.cursor, true)
	f.cursor += int64(n)
	return n, err
}

// ReadAt serves pkg/sftp's READs: concurrent, out of order, now and then
// far behind the others, or anywhere in the file.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, failure("read", f.key, fs.ErrInvalid, "negative offset %d", off)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, fs.ErrClosed
	}
	if off >= f.info.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), f.info.size-off)
	n, err := f.read(p[:want], off, false)
	if err == nil && want < int64(len(p)) {
		err = io.EOF
	}
	return n, err
}

// read fills p with the object's bytes from off (p within its size), or,
// with some, returns once it has any. The caller holds mu; read releases
// it while it waits and while it sends a GET of its own.
func (f *file) read(p []byte, off int64, some bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if f.ring == nil {
		f.start()
	}
	end := off + int64(len(p))
	if end > f.want {
		if f.hi >= f.want+f.lead {
			f.more.Signal() // the filler waits for want to grow
		}
		f.want = end
	}
	n := 0
	for n < len(p) && !(some && n > 0) {
		o := off + int64(n)
		switch {
		case f.closed:
			return n, fs.ErrClosed
		case o >= f.lo && o < f.hi:
			n += f.copyOut(p[n:], o)
		case o < f.lo && o != f.missEnd:
			// Behind the ring: a straggler, or a seek back. A GET of its
			// own; the stream stays where it is.
			k, err := f.fetch(p[n:], o)
			n += k
			if err != nil {
				return n, err
			}
		case o < f.lo || o-f.hi >= int64(len(f.ring)):
			// A second read in a row behind the ring, or one far ahead:
			// the reader has moved, and the stream follows it.
			f.moveTo(o, end)
		case f.err != nil:
			return n, f.err
		default:
			// Ahead, within reach: wait until the stream brings this read's
			// bytes (or half a ring of them, for a read that large).
			f.wakeAt = min(f.wakeAt, end, o+int64(len(f.ring)/2))
			f.ready.Wait()
		}
	}
	return n, nil
}

// copyOut copies the ring's bytes from off (in [lo, hi)) into p.
func (f *file) copyOut(p []byte, off int64) int {
	r := int64(len(f.ring))
	n := min(int64(len(p)), f.hi-off)
	for i := int64(0); i < n; {
		i += int64(copy(p[i:n], f.ring[(off+i)%r:]))
	}
	return int(n)
}

// fetch fills p from off with a GET of exactly those bytes, without mu.
func (f *file) fetch(p []byte, off int64) (int, error) {
	f.mu.Unlock()
	n, err := f.fetchUnlocked(p, off)
	f.mu.Lock()
	if err == nil {
		f.missEnd = off + int64(n)
	}
	return n, err
}

func (f *file) fetchUnlocked(p []byte, off int64) (int, error) {
	ctx, cancel := context.WithTimeout(f.ctx, f.b.o.TransferTimeout)
	defer cancel()
	st, err := f.get(ctx, off, off+int64(len(p))-1)
	if err != nil {
		return 0, err
	}
	defer st.close()
	n, err := io.ReadFull(st.body, p)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return n, failure("read", f.key, io.ErrUnexpectedEOF, "a GET of %d bytes at %d ended after %d", len(p), off, n)
	case err != nil:
		return n, s3Err("read", f.key, err)
	}
	return n, nil
}

// moveTo restarts the stream at off for a read that ends at end: the
// filler drops the stream it has and sends a GET from off.
func (f *file) moveTo(off, end int64) {
	f.gen++
	f.lo, f.hi, f.want, f.err, f.missEnd = off, off, end, nil, -1
	if f.cancel != nil {
		f.cancel()
	}
	f.more.Signal()
	f.wake() // the reads that wait look again: theirs may be behind now
}

// start allocates the ring and starts the filler. The caller holds mu.
func (f *file) start() {
	f.ring = make([]byte, min(readBuffer, max(f.info.size, 1)))
	f.lead = min(readAhead, int64(len(f.ring))/2)
	f.done = make(chan struct{})
	st := f.body
	f.body = nil
	if st != nil {
		f.cancel = st.cancel
	}
	go f.fill(st, f.gen)
}

// fill runs the stream into the ring as far as the reads need it, until
// Close. st is Open's stream, if it is still there, for generation gen.
func (f *file) fill(st *stream, gen int) {
	defer close(f.done)
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() {
		if st != nil {
			st.close()
		}
	}()
	r := int64(len(f.ring))
	for {
		for !f.closed && f.gen == gen && (f.err != nil || f.hi >= f.info.size || f.hi >= f.want+f.lead) {
			if st != nil && f.hi >= f.info.size {
				st.close() // all read: let the connection go
				st = nil
			}
			f.more.Wait()
		}
		if f.closed {
			return
		}
		if f.gen != gen {
			gen = f.gen
			if st != nil {
				st.close()
				st = nil
			}
			continue
		}
		if st == nil {
			at := f.hi
			ctx, cancel := context.WithCancel(f.ctx)
			f.cancel = cancel
			f.mu.Unlock()
			s, err := f.get(ctx, at, -1)
			f.mu.Lock()
			if f.gen != gen || f.closed {
				if s != nil {
					s.close()
				}
				cancel()
				continue
			}
			if err != nil {
				cancel()
				f.fail(err)
				continue
			}
			st = &stream{body: s.body, off: s.off, cancel: func() { s.cancel(); cancel() }}
		}
		// Read into the ring at hi, dropping what that overwrites.
		at := f.hi % r
		n := min(r-at, f.want+f.lead-f.hi, f.info.size-f.hi, readChunk)
		f.lo = max(f.lo, f.hi+n-r)
		f.mu.Unlock()
		k, err := st.body.Read(f.ring[at : at+n])
		f.mu.Lock()
		if f.gen != gen || f.closed {
			continue
		}
		f.hi += int64(k)
		if err != nil && f.hi < f.info.size {
			if err == io.EOF {
				err = failure("read", f.key, io.ErrUnexpectedEOF, "the stream ended at %d of %d bytes", f.hi, f.info.size)
			} else {
				err = s3Err("read", f.key, err)
			}
			resume := f.hi-st.off >= resumeAfter
			st.close()
			st = nil
			if !resume {
				f.fail(err)
				continue
			}
			// It broke after some progress: the next turn sends another
			// GET from hi.
		}
		if f.hi >= f.wakeAt {
			f.wake()
		}
	}
}

// fail stops the stream of this generation with err, for the reads that
// wait for it.
func (f *file) fail(err error) {
	f.err = err
	f.wake()
}

// wake lets every waiting read look again.
func (f *file) wake() {
	f.wakeAt = math.MaxInt64
	f.ready.Broadcast()
}

func (f *file) Stat() (fs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info, nil
}

// Close ends every GET of the file and waits for the filler.
func (f *file) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return fs.ErrClosed
	}
	f.closed = true
	f.stopAll()
	f.ready.Broadcast()
	f.more.Broadcast()
	st, done := f.body, f.done
	f.body = nil
	f.mu.Unlock()
	if st != nil {
		st.close()
	}
	if done != nil {
		<-done
	}
	f.mu.Lock()
	f.ring = nil
	f.mu.Unlock()
	return nil
}

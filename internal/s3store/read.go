package s3store

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// readWindow bounds how far a download's reads may stray from its stream
// and still be served from it: pkg/sftp serves up to 64 READs at once
// from several workers, so offsets arrive slightly out of order. Reads up
// to this far ahead skip forward (keeping what they skip), reads up to
// this far behind are served from what was read; others reopen the
// stream at their offset. It is also the most a download holds in memory.
const readWindow = 4 << 20

// Open starts one ranged GET from off. Its response describes the object
// (size, time, ETag); every later GET of this File (a reopen) asks for the
// same ETag, so a download never mixes two versions of an object.
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
	f := &file{b: s.b, key: key}
	err = f.open(off)
	if rangeErr(err) {
		// At or past the end (an empty object, a resumed download that
		// has it all): nothing to stream.
		var fi info
		if fi, err = s.headFile(key); err == nil {
			f.info, f.etag, f.pos = fi, "", off
			f.atEnd = true
		}
	}
	if notFound(err) {
		if d, derr := s.dirInfo(key); derr == nil && d != nil {
			return nil, failure("open", key, syscall.EISDIR, "a folder")
		}
	}
	if err != nil {
		return nil, err
	}
	f.info.name = baseName(name)
	return f, nil
}

func rangeErr(err error) bool {
	code, status := apiCode(err)
	return code == "InvalidRange" || status == 416
}

// file is an object open for reading: one GET stream at pos, and, once
// reads have come out of order, a ring of the last readWindow bytes read.
type file struct {
	b    *Backend
	key  string
	etag string // of the first response; reopens ask for it
	info info

	mu     sync.Mutex
	body   io.ReadCloser
	cancel context.CancelFunc
	pos    int64 // the stream's offset
	atEnd  bool  // no stream: the object ends at or before pos
	ring   []byte
	ringLo int64 // the ring holds [max(ringLo, pos-len(ring)), pos)
	closed bool
}

// open (re)starts the stream at off. The caller holds mu (or owns f).
func (f *file) open(off int64) error {
	f.stop()
	ctx, cancel := context.WithCancel(context.Background())
	in := &s3.GetObjectInput{Bucket: &f.b.bucket, Key: &f.key}
	if off > 0 {
		in.Range = ptr("bytes=" + strconv.FormatInt(off, 10) + "-")
	}
	if f.etag != "" {
		in.IfMatch = &f.etag
	}
	out, err := f.b.client.GetObject(ctx, in)
	if err != nil {
		cancel()
		if f.etag != "" && kindOf(err) == fs.ErrExist {
			return failure("read", f.key, fs.ErrInvalid, "the object changed while it was read")
		}
		return s3Err("get", f.key, err)
	}
	size := aws.ToInt64(out.ContentLength) + off
	if cr := aws.ToString(out.ContentRange); cr != "" {
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			if n, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
				size = n
			}
		}
	}
	if f.etag == "" {
		f.etag = aws.ToString(out.ETag)
		f.info = info{size: size, mtime: aws.ToTime(out.LastModified)}
	}
	f.body, f.cancel, f.pos, f.atEnd = out.Body, cancel, off, false
	f.ringLo = off
	return nil
}

// stop ends the stream, if any.
func (f *file) stop() {
	if f.body != nil {
		f.cancel()
		f.body.Close()
		f.body, f.cancel = nil, nil
	}
}

// Read continues the stream.
func (f *file) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, fs.ErrClosed
	}
	if f.pos >= f.info.size {
		return 0, io.EOF
	}
	if f.body == nil {
		if err := f.open(f.pos); err != nil {
			return 0, err
		}
	}
	return f.readStream(p)
}

// readStream reads what the stream gives into p, keeping it in the ring.
// A stream that ends before the object's size is an error.
func (f *file) readStream(p []byte) (int, error) {
	if rest := f.info.size - f.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := f.body.Read(p)
	f.remember(p[:n])
	f.pos += int64(n)
	if err == io.EOF {
		f.stop()
		if f.pos < f.info.size {
			return n, failure("read", f.key, io.ErrUnexpectedEOF, "the stream ended at %d of %d bytes", f.pos, f.info.size)
		}
		if n > 0 {
			err = nil
		}
	} else if err != nil {
		f.stop()
		err = s3Err("read", f.key, err)
	}
	return n, err
}

// remember keeps b, about to be read from the stream at pos, in the
// ring (once there is one): only its last len(ring) bytes matter.
func (f *file) remember(b []byte) {
	if f.ring == nil {
		return
	}
	r := int64(len(f.ring))
	at := f.pos
	if int64(len(b)) > r {
		at += int64(len(b)) - r
		b = b[int64(len(b))-r:]
	}
	for len(b) > 0 {
		k := copy(f.ring[at%r:], b)
		b, at = b[k:], at+int64(k)
	}
}

// ReadAt serves pkg/sftp's READs, concurrent and slightly out of order:
// from the stream when off is where it stands or a little ahead, from the
// ring when a little behind, else by reopening the stream at off.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, fs.ErrClosed
	}
	if off < 0 {
		return 0, failure("read", f.key, fs.ErrInvalid, "negative offset %d", off)
	}
	if off >= f.info.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), f.info.size-off)
	n := int64(0)
	for n < want {
		o := off + n
		if k := f.fromRing(p[n:want], o); k > 0 {
			n += int64(k)
			continue
		}
		if f.body != nil && o > f.pos && o-f.pos <= readWindow {
			if err := f.skip(o - f.pos); err != nil {
				return int(n), err
			}
			continue
		}
		if f.body == nil || o != f.pos {
			if f.ring == nil && f.body != nil {
				f.ring = make([]byte, readWindow) // reads have come out of order
			}
			if err := f.open(o); err != nil {
				return int(n), err
			}
		}
		k, err := f.readStream(p[n:want])
		n += int64(k)
		if err != nil && (err != io.EOF || n < want) {
			return int(n), err
		}
	}
	if want < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// fromRing copies what the ring holds of [off, off+len(p)) from its
// start, and returns how much.
func (f *file) fromRing(p []byte, off int64) int {
	if f.ring == nil || off >= f.pos {
		return 0
	}
	r := int64(len(f.ring))
	lo := max(f.ringLo, f.pos-r)
	if off < lo {
		return 0
	}
	n := min(int64(len(p)), f.pos-off)
	for i := int64(0); i < n; {
		at := (off + i) % r
		i += int64(copy(p[i:n], f.ring[at:]))
	}
	return int(n)
}

// skip reads n bytes of the stream into the ring only.
func (f *file) skip(n int64) error {
	if f.ring == nil {
		f.ring = make([]byte, readWindow)
		f.ringLo = f.pos
	}
	buf := make([]byte, min(n, 64<<10))
	for n > 0 {
		k, err := f.readStream(buf[:min(n, int64(len(buf)))])
		n -= int64(k)
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("s3 read %s: %w", f.key, io.ErrUnexpectedEOF)
			}
			return err
		}
	}
	return nil
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }

func (f *file) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fs.ErrClosed
	}
	f.closed = true
	f.stop()
	f.ring = nil
	return nil
}

package vfs

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// maxPending bounds the out-of-order data kept for hashing: SFTP clients
// keep many writes in flight and pkg/sftp may apply them out of order.
const maxPending = 16 << 20

// orderedHash computes the SHA-256 of an upload as it is written, without
// a second read of the file: writes at the next expected offset are hashed
// at once, later ones are held (up to maxPending) until the gap fills. An
// upload that does not start at offset 0, rewrites data, or strays too
// far gets no hash rather than a wrong one.
type orderedHash struct {
	mu      sync.Mutex
	h       hash.Hash
	next    int64
	pending map[int64][]byte
	held    int
	broken  bool
}

func newOrderedHash() *orderedHash {
	return &orderedHash{h: sha256.New(), pending: map[int64][]byte{}}
}

// write records p written at off (off < 0: unknown, which breaks the hash).
func (o *orderedHash) write(p []byte, off int64) {
	if len(p) == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case o.broken:
	case off == o.next:
		o.h.Write(p)
		o.next += int64(len(p))
		for {
			q, ok := o.pending[o.next]
			if !ok {
				break
			}
			delete(o.pending, o.next)
			o.held -= len(q)
			o.h.Write(q)
			o.next += int64(len(q))
		}
	case off > o.next && o.held+len(p) <= maxPending:
		if _, dup := o.pending[off]; dup {
			o.broken = true
			return
		}
		o.pending[off] = append([]byte(nil), p...)
		o.held += len(p)
	default:
		o.broken = true
	}
	if o.broken {
		o.pending, o.held = nil, 0
	}
}

// sum is the hex SHA-256 if the hashed bytes are exactly the file's
// content (size bytes), else "".
func (o *orderedHash) sum(size int64) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.broken || len(o.pending) > 0 || size != o.next {
		return ""
	}
	return hex.EncodeToString(o.h.Sum(nil))
}

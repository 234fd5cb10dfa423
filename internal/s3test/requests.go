package s3test

import "sync"

// Requests counts a client's S3 requests by operation: give Count to
// s3store.CountRequests (or s3store.Options.CountRequest) and read the
// counts with Take. Safe for concurrent use.
type Requests struct {
	mu sync.Mutex
	n  map[string]int
}

// Count counts one request of the operation op.
func (r *Requests) Count(op string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[op]++
}

// Take returns the counts since the last Take (never nil).
func (r *Requests) Take() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.n
	r.n = nil
	if n == nil {
		n = map[string]int{}
	}
	return n
}

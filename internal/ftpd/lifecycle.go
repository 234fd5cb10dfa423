package ftpd

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// forceWait bounds how long Shutdown waits, once it has closed every
// socket, for ftpserverlib's goroutines to notice and end. They need
// milliseconds; the bound only keeps a stuck one from holding the daemon.
const forceWait = 5 * time.Second

// tracker counts work in progress, so that Shutdown can wait for none.
// Unlike a sync.WaitGroup it may go back up after a wait began: a
// connection accepted just before the listener closed still checks in.
type tracker struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0
}

func (t *tracker) Add(delta int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		t.zero = make(chan struct{})
	}
	t.n += delta
}

func (t *tracker) Done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 {
		close(t.zero)
	}
}

// wait returns true once nothing is in progress, false if ctx ends first.
func (t *tracker) wait(ctx context.Context) bool {
	for {
		t.mu.Lock()
		n, zero := t.n, t.zero
		t.mu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-zero:
		case <-ctx.Done():
			return false
		}
	}
}

// registry knows every control connection between ClientConnected and
// ClientDisconnected, by the goroutine ftpserverlib serves it on.
//
// ftpserverlib (v0.32.3) runs each control connection on one goroutine
// (HandleCommands): ClientConnected, every command but the transfers, and
// ClientDisconnected. Its passive-listener hook, WrapPassiveListener, is
// told nothing about the client; the goroutine is how wharf finds which
// session asked, to hold each session and user to their share of ports.
type registry struct {
	mu    sync.Mutex
	byG   map[uint64]*conn
	conns map[*conn]uint64
}

func newRegistry() *registry {
	return &registry{byG: make(map[uint64]*conn), conns: make(map[*conn]uint64)}
}

// enter records c as served by the calling goroutine.
func (r *registry) enter(c *conn) {
	g := goid()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byG[g] = c
	r.conns[c] = g
}

func (r *registry) leave(c *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g, ok := r.conns[c]; ok {
		delete(r.byG, g)
		delete(r.conns, c)
	}
}

// current is the connection served by the calling goroutine, or nil.
func (r *registry) current() *conn {
	g := goid()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byG[g]
}

func (r *registry) all() []*conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*conn, 0, len(r.conns))
	for c := range r.conns {
		out = append(out, c)
	}
	return out
}

// goid is the calling goroutine's id, from the first line of its stack
// ("goroutine 42 [running]:"). Ids are never reused while the process runs.
func goid() uint64 {
	var buf [64]byte
	f := bytes.Fields(buf[:runtime.Stack(buf[:], false)])
	if len(f) < 2 {
		return 0
	}
	id, _ := strconv.ParseUint(string(f[1]), 10, 64)
	return id
}

package sftpd

import (
	"net"
	"sync/atomic"
	"time"
)

// idleConn notes when bytes last moved, so that a watchdog can close a
// session that has been silent for too long. One timer per connection
// fires about once per timeout; reads and writes only store a timestamp.
type idleConn struct {
	net.Conn
	last atomic.Int64 // unix nanoseconds of the last read or write
}

func newIdleConn(c net.Conn) *idleConn {
	ic := &idleConn{Conn: c}
	ic.last.Store(time.Now().UnixNano())
	return ic
}

func (c *idleConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *idleConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// watch closes the connection once it has been idle for timeout (calling
// onIdle first) and returns a function that stops watching. A timeout of
// 0 watches nothing.
func (c *idleConn) watch(timeout time.Duration, onIdle func()) (stop func()) {
	if timeout <= 0 {
		return func() {}
	}
	var t *time.Timer
	var stopped atomic.Bool
	check := func() {
		if stopped.Load() {
			return
		}
		idle := time.Since(time.Unix(0, c.last.Load()))
		if idle >= timeout {
			onIdle()
			c.Conn.Close()
			return
		}
		t.Reset(timeout - idle)
	}
	// Armed after t is set: check reads t.
	t = time.AfterFunc(time.Hour, check)
	t.Reset(timeout)
	return func() {
		stopped.Store(true)
		t.Stop()
	}
}

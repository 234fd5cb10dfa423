// Package syncbuf is a bytes.Buffer that goroutines may write while a test
// reads it: the log sink of tests that read what a daemon or a component
// logged. It imports nothing of wharf, so every package's tests may use it.
package syncbuf

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is safe for concurrent use; the zero value is empty and ready.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Take is everything written since the last Take, and empties the buffer.
func (b *Buffer) Take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

// Lines returns the lines written so far (without their newline) that
// contain every one of subs: a log's lines with certain fields.
func (b *Buffer) Lines(subs ...string) []string {
	var out []string
	for line := range strings.Lines(b.String()) {
		line = strings.TrimSuffix(line, "\n")
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

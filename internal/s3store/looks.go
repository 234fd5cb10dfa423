package s3store

import (
	"sync"
	"time"
)

// A session's recent looks at names. Clients STAT a name right before
// they OPEN it for an upload (OpenSSH's put does, to see whether the
// target is a folder), and Create needs to know the same thing: whether
// the name is a folder, or a file. On S3 each look at a new name is two
// requests (a HEAD, then a LIST for an implicit folder), so Create reuses
// what the session's Stat of that name found within lookFresh instead of
// asking again: a new small file costs five requests instead of seven.
//
// The check Create makes is best effort either way: a folder made by
// another session between Create and the commit is not seen at all, so
// one made in the second before Create is no different. Looks are never
// reused for an upload that continues a file or must find one (a resume,
// an append), whose size they could get wrong, and every change this
// session makes forgets them all.

// lookFresh is how old a look Create still takes: STAT and OPEN arrive
// milliseconds apart, even on a loaded machine.
const lookFresh = 2 * time.Second

// maxLooks bounds the looks one session keeps; past it they are forgotten.
const maxLooks = 64

// look is what a Stat found: a file, a folder, or neither.
type look struct {
	file *info
	dir  bool
	at   time.Time
}

// looks is a session's looks by key. A nil *looks keeps none.
type looks struct {
	mu sync.Mutex
	m  map[string]look
}

func newLooks() *looks { return &looks{m: map[string]look{}} }

// saw records what a Stat of key found at now.
func (l *looks) saw(key string, file *info, dir bool, now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) >= maxLooks {
		clear(l.m)
	}
	l.m[key] = look{file: file, dir: dir, at: now}
}

// take returns, and forgets, the look at key if it is fresh at now.
func (l *looks) take(key string, now time.Time) (file *info, dir, ok bool) {
	if l == nil {
		return nil, false, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k, found := l.m[key]
	delete(l.m, key)
	if !found || now.Sub(k.at) > lookFresh || now.Before(k.at) {
		return nil, false, false
	}
	return k.file, k.dir, true
}

// forget drops every look: the session changed something.
func (l *looks) forget() {
	if l == nil {
		return
	}
	l.mu.Lock()
	clear(l.m)
	l.mu.Unlock()
}

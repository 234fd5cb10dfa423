package s3store

import (
	"errors"
	"io/fs"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/s3test"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// Every request the store sends is counted by operation: a small upload
// is one PutObject, and no request goes uncounted or unnamed.
func TestCountRequests(t *testing.T) {
	var reqs s3test.Requests
	e := newEnv(t, func(_ *Config, o *Options) { o.CountRequest = reqs.Count })
	reqs.Take() // Home's own requests
	u := mustCreate(t, e.home, "/order.edi", vfs.CreateOptions{})
	if _, err := u.WriteAt([]byte("UNB+UNOC:3"), 0); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	counts := reqs.Take()
	if counts["PutObject"] != 1 || counts[""] != 0 {
		t.Errorf("requests of a 10-byte upload: %v; want one PutObject and every request named", counts)
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	t.Logf("requests of a 10-byte upload: %d %v", total, counts)
}

// A Stat right before Create (OpenSSH's put) spares Create its own look at
// the name: a new small file is a HEAD and a LIST (the Stat), a PutObject
// and the HEAD of its partial's record, five requests instead of seven.
// The look is not reused once stale, after a change by the session, nor
// for an upload that continues a file.
func TestCreateReusesStat(t *testing.T) {
	var reqs s3test.Requests
	var mu sync.Mutex
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	wait := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
	}
	e := newEnv(t, func(_ *Config, o *Options) { o.CountRequest, o.Now = reqs.Count, clock })
	reqs.Take()
	upload := func(name string, o vfs.CreateOptions) {
		t.Helper()
		u := mustCreate(t, e.home, name, o)
		if _, err := u.WriteAt([]byte("UNB"), 0); err != nil {
			t.Fatal(err)
		}
		if err := u.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	lookups := func(want int, what string) {
		t.Helper()
		c := reqs.Take()
		if got := c["HeadObject"] + c["ListObjectsV2"]; got != want {
			t.Errorf("%s: %d lookups, want %d (%v)", what, got, want, c)
		}
	}

	// Stat (HEAD + LIST), Create (none), commit (PutObject + the record's HEAD).
	if _, err := e.home.Stat("/new.edi"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat of a new name: %v", err)
	}
	upload("/new.edi", vfs.CreateOptions{})
	if c := reqs.Take(); c["HeadObject"] != 2 || c["ListObjectsV2"] != 1 || c["PutObject"] != 1 || len(c) != 3 {
		t.Errorf("Stat then upload of a new name: %v; want HeadObject 2, ListObjectsV2 1, PutObject 1", c)
	}

	// An overwrite: the Stat's HEAD found it, Create asks nothing.
	if _, err := e.home.Stat("/new.edi"); err != nil {
		t.Fatal(err)
	}
	lookups(1, "Stat of a file")
	upload("/new.edi", vfs.CreateOptions{})
	lookups(1, "overwrite after the Stat (the record's HEAD)")

	// Stale: Create looks again (HEAD found, no LIST).
	if _, err := e.home.Stat("/new.edi"); err != nil {
		t.Fatal(err)
	}
	reqs.Take()
	wait(lookFresh + time.Millisecond)
	upload("/new.edi", vfs.CreateOptions{})
	lookups(2, "overwrite with a stale Stat")

	// A change by the session in between: the folder it made is seen.
	if _, err := e.home.Stat("/d"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if err := e.home.Mkdir("/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.home.Create("/d", vfs.CreateOptions{}); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("Create over the folder the session just made: %v, want EISDIR", err)
	}

	// An append looks at the file itself: its size is where it continues.
	if _, err := e.home.Stat("/new.edi"); err != nil {
		t.Fatal(err)
	}
	reqs.Take()
	u := mustCreate(t, e.home, "/new.edi", vfs.CreateOptions{Continue: true})
	lookups(1, "Create of an append after a Stat (its HEAD)")
	if _, err := u.WriteAt([]byte("+UNH"), 3); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if fi, err := e.home.Stat("/new.edi"); err != nil || fi.Size() != 7 {
		t.Errorf("after the append: %v %v, want 7 bytes", fi, err)
	}
}

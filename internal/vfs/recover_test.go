package vfs

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// crashedStore is a storage root on disk and a home in it, seen by a
// daemon that is about to die: what its uploads leave open is never
// committed nor aborted.
type crashedStore struct {
	dir  string // storage root
	home string // alice's home on disk
	s    Store  // alice's home
}

func newCrashedStore(t *testing.T) *crashedStore {
	t.Helper()
	dir := t.TempDir()
	l, err := NewLocal(dir, LocalOptions{Atomic: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := l.Home("/alice")
	if err != nil {
		t.Fatal(err)
	}
	// The "dead" daemon's descriptors are released when the test ends.
	t.Cleanup(func() { h.Close(); l.Close() })
	return &crashedStore{dir: dir, home: filepath.Join(dir, "alice"), s: h}
}

// leaveOpen starts an upload of name as o says and writes data at off,
// then abandons it as a SIGKILL would.
func (c *crashedStore) leaveOpen(t *testing.T, name string, o CreateOptions, off int64, data string) {
	t.Helper()
	u, err := c.s.Create(name, o)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := u.WriteAt([]byte(data), off); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
}

// restart opens the storage again as a new daemon does: recovery first,
// then alice's home. It returns what recovery reported and logged, and
// the home.
func (c *crashedStore) restart(t *testing.T) (n int, log string, lt *localTest) {
	t.Helper()
	l, err := NewLocal(c.dir, LocalOptions{Atomic: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var buf bytes.Buffer
	n, err = l.Recover(slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	h, err := l.Home("/alice")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return n, buf.String(), &localTest{l: l, s: h.(*localStore), dir: c.home}
}

func TestRecoverUploadKilled(t *testing.T) {
	c := newCrashedStore(t)
	if err := os.Mkdir(filepath.Join(c.home, "in"), 0o750); err != nil {
		t.Fatal(err)
	}
	c.leaveOpen(t, "/in/report.csv", CreateOptions{}, 0, "first half,")

	n, log, lt := c.restart(t)
	if n != 1 {
		t.Fatalf("recovered %d uploads, want 1; log:\n%s", n, log)
	}
	if !strings.Contains(log, `msg="recovered upload" component=vfs path=/alice/in/report.csv`) {
		t.Errorf("no recovery line for /alice/in/report.csv:\n%s", log)
	}
	if got := lt.hidden(t, "/in", uploadPrefix); len(got) != 0 {
		t.Errorf("temporary files left after recovery: %v", got)
	}
	// What every resuming client does: stat the name, continue from there.
	off := lt.partialSize(t, "/in/report.csv")
	if off != int64(len("first half,")) {
		t.Fatalf("partial after recovery: %d bytes, want 11", off)
	}
	u := lt.start(t, "/in/report.csv", CreateOptions{Continue: true}, off, "second half")
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := lt.read(t, "/in/report.csv"); got != "first half,second half" {
		t.Errorf("resumed file: %q", got)
	}
	lt.absent(t, partialOf("/in/report.csv"))
}

// A resume claims the partial (renames it to its own temporary file): a
// crash then must not lose what the partial held, nor what the resume
// added.
func TestRecoverResumeKilled(t *testing.T) {
	c := newCrashedStore(t)
	if err := os.WriteFile(filepath.Join(c.home, partialPrefix+"big"), []byte("0123"), 0o640); err != nil {
		t.Fatal(err)
	}
	c.leaveOpen(t, "/big", CreateOptions{Continue: true}, 4, "4567")
	if _, err := os.Stat(filepath.Join(c.home, partialPrefix+"big")); err == nil {
		t.Fatal("the resume did not claim the partial; this test would prove nothing")
	}

	n, _, lt := c.restart(t)
	if n != 1 {
		t.Fatalf("recovered %d, want 1", n)
	}
	if got := lt.read(t, partialOf("/big")); got != "01234567" {
		t.Errorf("partial after recovery holds %q, want the claimed partial and the resume's bytes", got)
	}
	if got := lt.partialSize(t, "/big"); got != 8 {
		t.Errorf("partial after recovery: %d bytes", got)
	}
}

// Several uploads of one name died at once, and an older partial was
// there: the one changed last becomes the partial, the others go.
func TestRecoverNewestWins(t *testing.T) {
	c := newCrashedStore(t)
	older := filepath.Join(c.home, partialPrefix+"x")
	if err := os.WriteFile(older, []byte("oldest partial"), 0o640); err != nil {
		t.Fatal(err)
	}
	c.leaveOpen(t, "/x", CreateOptions{}, 0, "first upload")
	waitChanged(t, c.home)
	c.leaveOpen(t, "/x", CreateOptions{}, 0, "newest upload")
	waitChanged(t, c.home)
	c.leaveOpen(t, "/y", CreateOptions{}, 0, "") // opened, nothing sent

	n, log, lt := c.restart(t)
	if n != 1 {
		t.Errorf("recovered %d, want 1", n)
	}
	if got := lt.read(t, partialOf("/x")); got != "newest upload" {
		t.Errorf("partial holds %q, want the newest upload's bytes", got)
	}
	if got := append(lt.hidden(t, "/", uploadPrefix), lt.hidden(t, "/", partialPrefix+"y")...); len(got) != 0 {
		t.Errorf("left after recovery: %v\n%s", got, log)
	}
}

// waitChanged waits until a file created now would have a later ctime than
// one created before the call (the kernel's clock for it is coarse).
func waitChanged(t *testing.T, dir string) {
	t.Helper()
	probe := func() time.Time {
		p := filepath.Join(dir, "probe")
		if err := os.WriteFile(p, nil, 0o640); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(p)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return changedAt(fi)
	}
	first := probe()
	for range 1000 {
		if probe().After(first) {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("ctime did not move in 1000 tries")
}

func TestRecoverLongNames(t *testing.T) {
	c := newCrashedStore(t)
	// 250 bytes: hashed in both names. 230: hashed since the temporary
	// name would not fit; an older version kept its partial unhashed.
	long, mid := strings.Repeat("l", 250), strings.Repeat("m", 230)
	c.leaveOpen(t, "/"+long, CreateOptions{}, 0, "long")
	if err := os.WriteFile(filepath.Join(c.home, partialPrefix+mid), []byte("mid"), 0o640); err != nil {
		t.Fatal(err)
	}

	n, _, lt := c.restart(t)
	if n != 2 {
		t.Errorf("recovered %d, want 2", n)
	}
	for name, size := range map[string]int64{long: 4, mid: 3} {
		if got := lt.partialSize(t, "/"+name); got != size {
			t.Errorf("partial of a %d-byte name after recovery: %d bytes, want %d", len(name), got, size)
		}
	}
}

// An exclusive commit links the temporary file to the name, then removes
// it: a crash between the two leaves a complete upload, not a partial.
func TestRecoverCommittedExclusive(t *testing.T) {
	c := newCrashedStore(t)
	if err := os.WriteFile(filepath.Join(c.home, "f"), []byte("complete"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(c.home, "f"), filepath.Join(c.home, uploadPrefix+"f.0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	n, log, lt := c.restart(t)
	if n != 0 {
		t.Errorf("recovered %d, want 0\n%s", n, log)
	}
	lt.noneHidden(t, "/")
	if got := lt.read(t, "/f"); got != "complete" {
		t.Errorf("the committed file holds %q", got)
	}
}

// The scan stays in the storage root: a symlink to a directory elsewhere
// is not followed, and names that only look like temporary files are
// left alone.
func TestRecoverStaysInside(t *testing.T) {
	c := newCrashedStore(t)
	outside := t.TempDir()
	victim := filepath.Join(outside, uploadPrefix+"f.0123456789abcdef")
	if err := os.WriteFile(victim, []byte("not ours"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(c.home, "link")); err != nil {
		t.Fatal(err)
	}
	odd := []string{uploadPrefix + "f", uploadPrefix + "f.xyz", uploadPrefix + "f.0123456789abcdeg"}
	for _, name := range odd {
		if err := os.WriteFile(filepath.Join(c.home, name), []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}

	n, _, _ := c.restart(t)
	if n != 0 {
		t.Errorf("recovered %d, want 0", n)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("a file outside the storage root was touched: %v", err)
	}
	for _, name := range odd {
		if _, err := os.Stat(filepath.Join(c.home, name)); err != nil {
			t.Errorf("%s was touched: %v", name, err)
		}
	}
}

// Partials older than uploads.partial_ttl are removed at start; younger
// ones, and the ones this scan recovers, stay.
func TestRecoverExpiresOldPartials(t *testing.T) {
	c := newCrashedStore(t)
	u, err := c.s.Create("/old.csv", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.WriteAt([]byte("given up"), 0); err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(errors.New("connection lost")); err != nil {
		t.Fatal(err)
	}
	// The old partial is at least 300 ms older than what the first scan
	// recovers; the second scan's TTL falls between the two.
	time.Sleep(300 * time.Millisecond)
	c.leaveOpen(t, "/fresh.csv", CreateOptions{}, 0, "in flight")

	for _, tc := range []struct {
		ttl  time.Duration
		kept bool
	}{{time.Hour, true}, {200 * time.Millisecond, false}} {
		l, err := NewLocal(c.dir, LocalOptions{Atomic: true, PartialTTL: tc.ttl})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := l.Recover(slog.New(slog.NewTextHandler(&buf, nil))); err != nil {
			t.Fatal(err)
		}
		l.Close()
		_, err = os.Lstat(filepath.Join(c.home, partialOf("/old.csv")[1:]))
		if kept := err == nil; kept != tc.kept {
			t.Errorf("ttl %v: old partial kept = %v, want %v; log:\n%s", tc.ttl, kept, tc.kept, buf.String())
		}
		if !tc.kept && !strings.Contains(buf.String(), "reason=expired") {
			t.Errorf("ttl %v: no expiry logged:\n%s", tc.ttl, buf.String())
		}
		if _, err := os.Lstat(filepath.Join(c.home, partialOf("/fresh.csv")[1:])); err != nil {
			t.Errorf("ttl %v: the partial recovered by the first scan: %v", tc.ttl, err)
		}
	}
}

package vfs

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// crashedStore is a storage root on disk and a home in it, seen by a
// daemon that is about to die: what its uploads leave open is never closed.
type crashedStore struct {
	dir  string // storage root
	home string // alice's home on disk
	a    FS     // alice's home through the Atomic layer
}

func newCrashedStore(t *testing.T) *crashedStore {
	t.Helper()
	dir := t.TempDir()
	b, err := NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := b.Home("/alice")
	if err != nil {
		t.Fatal(err)
	}
	// The "dead" daemon's descriptors are released when the test ends.
	t.Cleanup(func() { h.Close(); b.Close() })
	return &crashedStore{dir: dir, home: filepath.Join(dir, "alice"), a: newAtomic(h, atomicCopyMax)}
}

// leaveOpen starts an upload of name with flag and writes data, then
// abandons it as a SIGKILL would.
func (c *crashedStore) leaveOpen(t *testing.T, name string, flag int, off int64, data string) {
	t.Helper()
	f, err := c.a.OpenFile(name, flag, 0o640)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	if _, err := f.WriteAt([]byte(data), off); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
}

// restart opens the storage again as a new daemon does: recovery first,
// then alice's home. It returns what recovery reported and logged.
func (c *crashedStore) restart(t *testing.T) (n int, log string, raw, a FS) {
	t.Helper()
	b, err := NewLocal(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	var buf bytes.Buffer
	n, err = RecoverUploads(b, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatalf("RecoverUploads: %v", err)
	}
	h, err := b.Home("/alice")
	if err != nil {
		t.Fatal(err)
	}
	a = newAtomic(h, atomicCopyMax)
	t.Cleanup(func() { a.Close() })
	return n, buf.String(), h, a
}

func TestRecoverUploadKilled(t *testing.T) {
	c := newCrashedStore(t)
	if err := os.Mkdir(filepath.Join(c.home, "in"), 0o750); err != nil {
		t.Fatal(err)
	}
	c.leaveOpen(t, "/in/report.csv", trunc, 0, "first half,")

	n, log, raw, a := c.restart(t)
	if n != 1 {
		t.Fatalf("recovered %d uploads, want 1; log:\n%s", n, log)
	}
	if !strings.Contains(log, `msg="recovered upload" component=vfs path=/alice/in/report.csv`) {
		t.Errorf("no recovery line for /alice/in/report.csv:\n%s", log)
	}
	if got := hiddenIn(t, raw, "/in", uploadPrefix); len(got) != 0 {
		t.Errorf("temporary files left after recovery: %v", got)
	}
	// What every resuming client does: stat the name, continue from there.
	fi, err := a.Stat("/in/report.csv")
	if err != nil || fi.Size() != int64(len("first half,")) {
		t.Fatalf("stat after recovery: %v, %v; want the partial's 11 bytes", fi, err)
	}
	f, err := a.OpenFile("/in/report.csv", create, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("second half"), fi.Size())
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := content(t, raw, "/in/report.csv"); got != "first half,second half" {
		t.Errorf("resumed file: %q", got)
	}
	absent(t, raw, partialOf("/in/report.csv"))
}

// A resume claims the partial (renames it to its own temporary file): a
// crash then must not lose what the partial held, nor what the resume
// added.
func TestRecoverResumeKilled(t *testing.T) {
	c := newCrashedStore(t)
	if err := os.WriteFile(filepath.Join(c.home, partialPrefix+"big"), []byte("0123"), 0o640); err != nil {
		t.Fatal(err)
	}
	c.leaveOpen(t, "/big", create, 4, "4567")
	if _, err := os.Stat(filepath.Join(c.home, partialPrefix+"big")); err == nil {
		t.Fatal("the resume did not claim the partial; this test would prove nothing")
	}

	n, _, raw, a := c.restart(t)
	if n != 1 {
		t.Fatalf("recovered %d, want 1", n)
	}
	if got := content(t, raw, partialOf("/big")); got != "01234567" {
		t.Errorf("partial after recovery holds %q, want the claimed partial and the resume's bytes", got)
	}
	if fi, err := a.Stat("/big"); err != nil || fi.Size() != 8 {
		t.Errorf("stat after recovery: %v, %v", fi, err)
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
	c.leaveOpen(t, "/x", trunc, 0, "first upload")
	waitChanged(t, c.home)
	c.leaveOpen(t, "/x", trunc, 0, "newest upload")
	waitChanged(t, c.home)
	c.leaveOpen(t, "/y", trunc, 0, "") // opened, nothing sent

	n, log, raw, _ := c.restart(t)
	if n != 1 {
		t.Errorf("recovered %d, want 1", n)
	}
	if got := content(t, raw, partialOf("/x")); got != "newest upload" {
		t.Errorf("partial holds %q, want the newest upload's bytes", got)
	}
	if got := append(hiddenIn(t, raw, "/", uploadPrefix), hiddenIn(t, raw, "/", partialPrefix+"y")...); len(got) != 0 {
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
	c.leaveOpen(t, "/"+long, trunc, 0, "long")
	if err := os.WriteFile(filepath.Join(c.home, partialPrefix+mid), []byte("mid"), 0o640); err != nil {
		t.Fatal(err)
	}

	n, _, _, a := c.restart(t)
	if n != 2 {
		t.Errorf("recovered %d, want 2", n)
	}
	for name, size := range map[string]int64{long: 4, mid: 3} {
		if fi, err := a.Stat("/" + name); err != nil || fi.Size() != size {
			t.Errorf("stat of a %d-byte name after recovery: %v, %v", len(name), fi, err)
		}
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

	n, _, _, _ := c.restart(t)
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

func TestRecoverMemoryBackend(t *testing.T) {
	n, err := RecoverUploads(NewMemory(), slog.New(slog.DiscardHandler))
	if n != 0 || err != nil {
		t.Errorf("memory backend: %d, %v", n, err)
	}
}

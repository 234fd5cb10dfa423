package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wharf-sftp/wharf/internal/config"
)

// The reference wharf's config is the main one's plus uploads.fsync off,
// as the daemon's own strict loader reads it: a key the schema lacks, or
// one written twice, fails the load.
func TestFsyncOffConfig(t *testing.T) {
	dir := t.TempDir()
	c := client{user: "root", publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bench"}
	for _, tc := range []struct {
		extra string
		fsync bool
	}{{"", true}, {fsyncOffConfig, false}} {
		path := filepath.Join(dir, "wharf.yaml")
		cfg := wharfConfig(filepath.Join(dir, "state"), filepath.Join(dir, "data"), c, nil) + tc.extra
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := config.Load(path)
		if err != nil {
			t.Fatalf("config with %q: %v", tc.extra, err)
		}
		if got.Uploads.Fsync != tc.fsync || !got.Uploads.Atomic {
			t.Errorf("config with %q: uploads %+v, want fsync %v and atomic", tc.extra, got.Uploads, tc.fsync)
		}
	}
}

func TestFsyncRows(t *testing.T) {
	o, err := parseFlags([]string{"-rows", "fsync", "-quick"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{o: o}
	rows := b.fsyncTests()
	if len(rows) != 2 {
		t.Fatalf("%d fsync rows, want an upload and a files row", len(rows))
	}
	for _, r := range rows {
		if r.measure == nil || r.run == nil || !strings.Contains(r.name, "uploads.fsync on vs off") {
			t.Errorf("row %q: measure set %v, run set %v", r.name, r.measure != nil, r.run != nil)
		}
	}
	// The rows upload the big file and the small ones: both are written.
	if !b.transfers() || !b.smallFiles() {
		t.Errorf("fsync rows alone: transfers %v, small files %v", b.transfers(), b.smallFiles())
	}
	o.rows = []string{"upload"}
	if b := (&bench{o: o}); b.fsyncTests() != nil || b.smallFiles() {
		t.Error("fsync rows without -rows fsync")
	}
}

func TestFsType(t *testing.T) {
	if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
		t.Skip("no /dev/shm")
	}
	if got := fsType("/dev/shm"); got != "tmpfs" {
		t.Errorf("fsType(/dev/shm) = %q, want tmpfs", got)
	}
	if got := fsType("/no/such/dir"); got != "unknown filesystem" {
		t.Errorf("fsType of a missing dir = %q", got)
	}
}

package main

import (
	"io"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The reference wharf's config is the main one's plus uploads.fsync off,
// with no key written twice (which YAML refuses).
func TestFsyncOffConfig(t *testing.T) {
	c := client{user: "root", publicKey: "ssh-ed25519 AAAA test"}
	var m map[string]any
	if err := yaml.Unmarshal([]byte(wharfConfig("/s", "/d", c, nil)+fsyncOffConfig), &m); err != nil {
		t.Fatalf("config does not parse: %v", err)
	}
	up, _ := m["uploads"].(map[string]any)
	if fsync, ok := up["fsync"].(bool); !ok || fsync {
		t.Errorf("uploads = %v, want fsync: false", m["uploads"])
	}
	if m["storage"] == nil || m["users"] == nil || m["sftp"] == nil {
		t.Errorf("the main config's keys are missing: %v", m)
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

package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
)

// TestCurlCeiling runs the ceiling measurement small: curl downloads 3 MiB
// (not a multiple of the server's chunk) from the in-process HTTPS server,
// and the file it wrote has that size.
func TestCurlCeiling(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl (Debian package curl) not found: %v", err)
	}
	ws, err := newWorkspace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{o: options{size: 3<<20 + 12345}, ws: ws}
	rate, err := b.curlCeiling(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rate <= 0 {
		t.Fatalf("rate %v MB/s", rate)
	}
	// The download is removed; the certificate stays for the next run.
	if _, err := os.Stat(ws.path("ceiling", "down.bin")); !os.IsNotExist(err) {
		t.Errorf("downloaded file left behind: %v", err)
	}
}

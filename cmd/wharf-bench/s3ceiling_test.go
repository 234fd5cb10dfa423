package main

import "testing"

// The figures of 2026-12-03's quiet run (docs/performance.md): on two
// cores wharf's upload path allows 199 MB/s, 0.77× the direct client's
// measured rate, below the 0.8×.
func TestCeilingLine(t *testing.T) {
	wharf := cpuCost{client: 2.01, gateway: 3.07, store: 4.95}
	got := ceilingLine("upload", 2, wharf, []measured{{"direct S3", 257.5}, {"one GET", 0}, {"rclone serve sftp", 50.2}})
	want := "CPU ceiling of the S3 upload through wharf on 2 cores (medians): client 2.01 + wharf 3.07 + versitygw 4.95 = 10.0 CPU-s/GB, " +
		"so at most 199 MB/s with every core busy: at most 0.77× direct S3's 257.5 MB/s, 3.97× rclone serve sftp's 50.2 MB/s"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

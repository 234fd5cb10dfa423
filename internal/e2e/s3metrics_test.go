package e2e

import (
	"path/filepath"
	"testing"
)

// TestS3RequestMetrics: on the s3 backend, /metrics counts the requests the
// daemon sends to the store by operation, and the start-up sweep.
func TestS3RequestMetrics(t *testing.T) {
	u := newUser(t, "acme")
	d := startDaemon(t, daemonOpts{Users: []*testUser{u}, Backend: "s3", Extra: "admin:\n  listen: 127.0.0.1:0\n"})
	local := filepath.Join(t.TempDir(), "order.edi")
	writeRandomFile(t, local, 1000)
	put1 := func(name string) {
		t.Helper()
		if _, stderr, err := sftpBatch(t, d, u, "put "+local+" "+name+"\n"); err != nil {
			t.Fatalf("put: %v\n%s", err, stderr)
		}
	}
	admin := d.WaitLog(t, logMatch("msg", "listening", "proto", "http"), startTimeout)
	addr, _ := admin["addr"].(string)
	const put, swept = `wharf_s3_requests_total{op="PutObject"}`, "wharf_s3_uploads_swept_total"
	put1("/first.edi") // the first login also writes the home's folder marker
	before := scrapeGauges(t, "http://"+addr+"/metrics", put, swept)
	put1("/order.edi")
	after := scrapeGauges(t, "http://"+addr+"/metrics", put, swept)
	if n := after[put] - before[put]; n != 1 {
		t.Errorf("%s grew by %v for one small upload, want 1", put, n)
	}
	if v, ok := after[swept]; !ok || v != 0 {
		t.Errorf("%s = %v (present %v), want 0 on a fresh bucket", swept, v, ok)
	}
}

package s3store

import (
	"testing"

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

package s3store

import (
	"testing"

	"github.com/wharf-sftp/wharf/internal/s3test"
	"github.com/wharf-sftp/wharf/internal/vfs"
	"github.com/wharf-sftp/wharf/internal/vfs/storetest"
)

// The s3 store passes the conformance suite every store must, against a
// real versitygw: each subtest gets a bucket of its own on one server. A
// bucket keeps whole parts only (ShortPartials) and holds objects, whose
// sizes change only by uploads and whose modes and times are its own
// (Objects).
func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	isolateAWS(t)
	machineBundle(t)
	storetest.RunWith(t, storetest.Options{ShortPartials: true, Objects: true}, func(t *testing.T) vfs.Store {
		cfg := serverConfig(t, srv, srv.NewBucket(t))
		cfg.PartSize, cfg.UploadConcurrency, cfg.Prefix = MinPartSize, 3, "wharf"
		b, err := NewBackend(testContext(t), cfg, Options{SpoolDir: t.TempDir()})
		if err != nil {
			t.Fatalf("NewBackend: %v", err)
		}
		t.Cleanup(func() { b.Close() })
		home, err := b.Home("/partners/acme")
		if err != nil {
			t.Fatalf("Home: %v", err)
		}
		return home
	})
}

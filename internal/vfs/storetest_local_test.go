package vfs_test

import (
	"testing"

	"github.com/wharf-sftp/wharf/internal/vfs"
	"github.com/wharf-sftp/wharf/internal/vfs/storetest"
)

// The local store passes the conformance suite every store must, with
// atomic uploads and in place (uploads.atomic off), each with and without
// fsync.
func TestLocalConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    vfs.LocalOptions
	}{
		{"atomic", vfs.LocalOptions{Atomic: true}},
		{"atomic+fsync", vfs.LocalOptions{Atomic: true, Fsync: true}},
		{"in place", vfs.LocalOptions{}},
		{"in place+fsync", vfs.LocalOptions{Fsync: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.RunWith(t, storetest.Options{InPlace: !tc.o.Atomic}, func(t *testing.T) vfs.Store {
				b, err := vfs.NewLocal(t.TempDir(), tc.o)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { b.Close() })
				s, err := b.Home("/partners/acme")
				if err != nil {
					t.Fatal(err)
				}
				return s
			})
		})
	}
}

package storetest_test

import (
	"io/fs"
	"testing"

	"github.com/wharf-sftp/wharf/internal/vfs"
	"github.com/wharf-sftp/wharf/internal/vfs/storetest"
)

func memory(t *testing.T) vfs.Store {
	s, err := vfs.NewMemory().Home("/home")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bare hides every optional capability of a store and of its uploads, as
// a store with none would have: the suite must skip what needs them and
// pass the rest.
type bare struct{ s vfs.Store }

func (b bare) Stat(name string) (fs.FileInfo, error)         { return b.s.Stat(name) }
func (b bare) List(name string) (vfs.Lister, error)          { return b.s.List(name) }
func (b bare) Open(name string, off int64) (vfs.File, error) { return b.s.Open(name, off) }
func (b bare) Remove(name string) error                      { return b.s.Remove(name) }
func (b bare) Mkdir(name string) error                       { return b.s.Mkdir(name) }
func (b bare) Rmdir(name string) error                       { return b.s.Rmdir(name) }
func (b bare) Close() error                                  { return b.s.Close() }
func (b bare) Create(name string, o vfs.CreateOptions) (vfs.Upload, error) {
	u, err := b.s.Create(name, o)
	if err != nil {
		return nil, err
	}
	return bareUpload{u}, nil
}

type bareUpload struct{ u vfs.Upload }

func (b bareUpload) WriteAt(p []byte, off int64) (int, error) { return b.u.WriteAt(p, off) }
func (b bareUpload) Stat() (fs.FileInfo, error)               { return b.u.Stat() }
func (b bareUpload) Commit() error                            { return b.u.Commit() }
func (b bareUpload) Abort(cause error) error                  { return b.u.Abort(cause) }

func TestSuiteOnAStoreWithoutCapabilities(t *testing.T) {
	storetest.Run(t, func(t *testing.T) vfs.Store { return bare{memory(t)} })
}

func TestSuiteWithShortPartials(t *testing.T) {
	storetest.RunWith(t, storetest.Options{ShortPartials: true}, memory)
}

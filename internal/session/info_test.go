package session

import (
	"io"
	"os"
	"testing"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

func TestInfos(t *testing.T) {
	f := newFixture(t)
	a, aConn := f.open(t, "alice", vfs.PermAll)
	b, _ := f.open(t, "bob", vfs.PermAll)

	w, err := a.FS.Create("/f", os.O_CREATE|os.O_TRUNC|os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(make([]byte, 100), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := a.FS.Open("/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	r.Close()
	w, err = a.FS.Create("/g", os.O_CREATE|os.O_TRUNC|os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort(nil)
	if _, err := w.WriteAt(make([]byte, 7), 0); err != nil {
		t.Fatal(err)
	}

	infos := f.mgr.Infos()
	if len(infos) != 2 || infos[0].ID != a.ID || infos[1].ID != b.ID {
		t.Fatalf("Infos = %+v; want alice's then bob's", infos)
	}
	in := infos[0]
	if in.User != "alice" || in.Protocol != "sftp" || in.Method != "publickey" || in.Started.IsZero() ||
		in.BytesUp != 107 || in.BytesDown != 100 || len(in.Transfers) != 1 || in.Transfers[0].Path != "/g" {
		t.Errorf("alice's Info = %+v", in)
	}
	if f.mgr.CloseSession("nope") {
		t.Error("CloseSession of an unknown id reported a session")
	}
	if !f.mgr.CloseSession(a.ID) || aConn.closed.Load() != 1 {
		t.Errorf("CloseSession did not close alice's connection (%d closes)", aConn.closed.Load())
	}
	// Until the front end ends it, the session is closing: not listed,
	// not closed twice.
	if f.mgr.CloseSession(a.ID) || aConn.closed.Load() != 1 {
		t.Errorf("a second CloseSession closed again (%d closes)", aConn.closed.Load())
	}
	if infos := f.mgr.Infos(); len(infos) != 1 || infos[0].ID != b.ID {
		t.Errorf("Infos after the close = %+v", infos)
	}
}

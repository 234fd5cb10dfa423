package vfs

import (
	"io"
	"os"
	"testing"
)

func TestTransfers(t *testing.T) {
	h := newHome(t, storeKinds()[0])
	f := h.fs
	if got := f.Transfers(); len(got) != 0 {
		t.Fatalf("idle session: %+v", got)
	}
	w, err := f.Create("/up", os.O_CREATE|os.O_TRUNC|os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	w, err = f.Create("/up2", os.O_CREATE|os.O_TRUNC|os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("abc"), 0); err != nil {
		t.Fatal(err)
	}
	r, err := f.Open("/up", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	got := f.Transfers()
	if len(got) != 2 || got[0].Path != "/up2" || got[0].Direction != "up" || got[0].Bytes != 3 ||
		got[1].Path != "/up" || got[1].Direction != "down" || got[1].Bytes != 2 || got[1].Since.Before(got[0].Since) {
		t.Fatalf("Transfers = %+v", got)
	}
	r.Close()
	if err := w.Abort(nil); err != nil {
		t.Fatal(err)
	}
	if got := f.Transfers(); len(got) != 0 {
		t.Fatalf("after the transfers ended: %+v", got)
	}
}

package vfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"
)

func sum(data string) string {
	s := sha256.Sum256([]byte(data))
	return hex.EncodeToString(s[:])
}

// Every change and every finished transfer is logged with its outcome and
// recorded for the events, with its client path; setstat is logged but is
// no event.
func TestAuditLogsAndRecords(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		s := h.fs
		w, err := s.Create("/a", trunc)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteAt(make([]byte, 1000), 0)
		if h.fs.active.Load() != 1 {
			t.Errorf("%d transfers active during an upload, want 1", h.fs.active.Load())
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		w, err = s.Create("/broken", trunc)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteAt([]byte("12345"), 0)
		w.Abort(io.ErrUnexpectedEOF)
		r, err := s.Open("/a", 0)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(r)
		r.Close()
		r, err = s.Open("/a", 0)
		if err != nil {
			t.Fatal(err)
		}
		r.Checksum()
		io.ReadAll(r)
		r.Close()
		r, err = s.Open("/a", 0)
		if err != nil {
			t.Fatal(err)
		}
		r.ReadAt(make([]byte, 100), 0)
		r.Fail(io.ErrUnexpectedEOF)
		r.Close()
		if err := s.Mkdir("/d"); err != nil {
			t.Fatal(err)
		}
		if err := s.Rmdir("/d"); err != nil {
			t.Fatal(err)
		}
		if err := s.Rename("/a", "/b"); err != nil {
			t.Fatal(err)
		}
		if err := s.Chmod("/b", 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.Chtimes("/b", time.Now(), time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := s.Truncate("/b", 10); err != nil {
			t.Fatal(err)
		}
		if err := s.Remove("/b"); err != nil {
			t.Fatal(err)
		}
		if err := s.Remove("/b"); err == nil {
			t.Fatal("second remove succeeded")
		}
		if h.fs.active.Load() != 0 {
			t.Errorf("%d transfers active after they ended", h.fs.active.Load())
		}

		out := h.logs.String()
		for _, want := range []string{
			`"msg":"transfer","op":"upload","path":"/a","bytes":1000,`,
			`"msg":"transfer","op":"upload","path":"/broken","bytes":5,`,
			`"msg":"transfer","op":"download","path":"/a","bytes":1000,`,
			`"msg":"transfer","op":"checksum","path":"/a","bytes":1000,`,
			`"msg":"transfer","op":"download","path":"/a","bytes":100,`,
			`"msg":"change","op":"mkdir","path":"/d","outcome":"ok"`,
			`"msg":"change","op":"rmdir","path":"/d","outcome":"ok"`,
			`"msg":"change","op":"rename","path":"/a","target":"/b","outcome":"ok"`,
			`"msg":"change","op":"setstat","path":"/b","mode":"-rw-------","outcome":"ok"`,
			`"msg":"change","op":"setstat","path":"/b","mtime":`,
			`"msg":"change","op":"setstat","path":"/b","size":10,"outcome":"ok"`,
			`"msg":"change","op":"remove","path":"/b","outcome":"ok"`,
			`"msg":"change","op":"remove","path":"/b","outcome":"failed","err":"remove /b: `,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %s", want)
			}
		}
		if n := len(h.logs.Lines(`"msg":"transfer"`, `"outcome":"ok"`)); n != 3 {
			t.Errorf("%d transfers logged ok, want 3 (the upload, a download, a checksum)", n)
		}
		if n := len(h.logs.Lines(`"msg":"transfer"`, `"outcome":"failed"`)); n != 2 {
			t.Errorf("%d transfers logged failed, want 2 (the broken upload and download)", n)
		}

		type rec struct {
			typ, path, target string
			size, bytes       int64
			failed            bool
		}
		want := []rec{
			{"upload", "/a", "", 1000, 1000, false},
			{"upload", "/broken", "", 5, 5, true},
			{"download", "/a", "", 1000, 1000, false},
			{"checksum", "/a", "", 1000, 1000, false},
			{"download", "/a", "", 100, 100, true},
			{"mkdir", "/d", "", 0, 0, false},
			{"rmdir", "/d", "", 0, 0, false},
			{"rename", "/a", "/b", 0, 0, false},
			{"delete", "/b", "", 0, 0, false},
			{"delete", "/b", "", 0, 0, true},
		}
		got := h.ops.all()
		if len(got) != len(want) {
			t.Fatalf("recorded %d ops, want %d: %+v", len(got), len(want), got)
		}
		for i, o := range got {
			w := want[i]
			if o.Type != w.typ || o.Path != w.path || o.Target != w.target || o.Size != w.size || o.Bytes != w.bytes || (o.Err != nil) != w.failed {
				t.Errorf("op %d = %+v, want %+v", i, o, w)
			}
			if w.typ == "upload" || w.typ == "download" || w.typ == "checksum" {
				if o.Duration <= 0 {
					t.Errorf("op %d has no duration", i)
				}
			}
		}
		if !errors.Is(got[9].Err, fs.ErrNotExist) {
			t.Errorf("the failed delete recorded %v", got[9].Err)
		}
	})
}

// An upload the store refuses outright (full, read-only, no parent) is a
// failed transfer all the same: logged and recorded.
func TestRefusedUploadRecorded(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		if _, err := h.fs.Create("/missing/f", trunc); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("create without a parent: %v", err)
		}
		ups := h.ops.of("upload", "/missing/f")
		if len(ups) != 1 || !errors.Is(ups[0].Err, fs.ErrNotExist) || ups[0].Bytes != 0 {
			t.Errorf("recorded %+v, want one failed upload", h.ops.all())
		}
		if n := len(h.logs.Lines(`"msg":"transfer"`, `"path":"/missing/f"`, `"bytes":0`, `"outcome":"failed"`)); n != 1 {
			t.Errorf("%d failed transfer lines:\n%s", n, h.logs.String())
		}
		if h.fs.active.Load() != 0 {
			t.Errorf("a refused upload left %d transfers active", h.fs.active.Load())
		}
	})
}

// With HashUploads, an upload written from offset 0 without a gap, in
// order or not, records its SHA-256; one with a gap, a rewrite or a resume
// records none rather than a wrong one. Size is the file's: a resume
// moved fewer bytes than the file holds.
func TestUploadHash(t *testing.T) {
	const whole = "0123456789abcdefghijklmnopqrstuvwxyz"
	type write struct {
		off  int64
		data string
	}
	for _, tc := range []struct {
		name   string
		writes []write
		hashed bool
	}{
		{"in order", []write{{0, whole[:10]}, {10, whole[10:20]}, {20, whole[20:]}}, true},
		{"out of order", []write{{20, whole[20:]}, {0, whole[:10]}, {10, whole[10:20]}}, true},
		{"one write", []write{{0, whole}}, true},
		{"gap", []write{{0, whole[:10]}, {20, whole[20:]}}, false},
		{"rewrite", []write{{0, whole}, {5, "X"}}, false},
		{"not from zero", []write{{1, whole[1:]}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range storeKinds() {
				t.Run(k.name, func(t *testing.T) {
					h := newHome(t, k, homeOptions{hash: true})
					w, err := h.fs.Create("/f", trunc)
					if err != nil {
						t.Fatal(err)
					}
					var n int64
					for _, wr := range tc.writes {
						if _, err := w.WriteAt([]byte(wr.data), wr.off); err != nil {
							t.Fatal(err)
						}
						n += int64(len(wr.data))
					}
					if err := w.Commit(); err != nil {
						t.Fatal(err)
					}
					fi, err := h.fs.Stat("/f")
					if err != nil {
						t.Fatal(err)
					}
					ups := h.ops.of("upload", "/f")
					if len(ups) != 1 {
						t.Fatalf("recorded %+v", h.ops.all())
					}
					o := ups[0]
					if o.Size != fi.Size() || o.Bytes != n || o.Err != nil {
						t.Errorf("recorded size %d, bytes %d, err %v; want the file's %d, %d moved", o.Size, o.Bytes, o.Err, fi.Size(), n)
					}
					want := ""
					if tc.hashed {
						want = sum(content(t, h.fs, "/f"))
					}
					if o.SHA256 != want {
						t.Errorf("recorded sha256 %q, want %q", o.SHA256, want)
					}
				})
			}
		})
	}
	t.Run("resume", func(t *testing.T) {
		forEachStore(t, atomicKinds(), func(t *testing.T, h *home) {
			s := h.session(t, homeOptions{hash: true})
			broken(t, s, "/f", whole[:13])
			w, err := s.Create("/f", create)
			if err != nil {
				t.Fatal(err)
			}
			w.WriteAt([]byte(whole[13:]), 13)
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			ups := h.ops.of("upload", "/f")
			if len(ups) != 2 {
				t.Fatalf("recorded %+v", h.ops.all())
			}
			if o := ups[1]; o.Size != int64(len(whole)) || o.Bytes != int64(len(whole)-13) || o.SHA256 != "" || o.Err != nil {
				t.Errorf("the resume recorded %+v; want the file's size, the bytes moved, no hash", o)
			}
		})
	})
	t.Run("failed", func(t *testing.T) {
		forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
			s := h.session(t, homeOptions{hash: true})
			h.setMaxSize(5)
			w, err := s.Create("/f", trunc)
			if err != nil {
				t.Fatal(err)
			}
			w.WriteAt([]byte("123"), 0)
			w.WriteAt([]byte("456"), 3)
			if err := w.Commit(); err != nil {
				t.Fatalf("commit: %v", err)
			}
			if ups := h.ops.of("upload", "/f"); len(ups) != 1 || ups[0].SHA256 != "" || ups[0].Err == nil {
				t.Errorf("recorded %+v; want a failed upload without a hash", ups)
			}
		})
	})
}

// A failed operation's paths reach the log and the events shown as in an
// error reply: control characters escaped, so that a name forges no line.
func TestRecordedPathsShown(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		bad := "/x\r\n{\"msg\":\"forged\"}"
		if err := h.fs.Rename(bad, "/ok"); err == nil {
			t.Fatal("rename succeeded")
		}
		if err := h.fs.Remove(bad); err == nil {
			t.Fatal("remove succeeded")
		}
		ops := h.ops.all()
		if len(ops) != 2 {
			t.Fatalf("recorded %+v, want the rename and the remove", ops)
		}
		for _, o := range ops {
			if o.Err == nil || strings.ContainsAny(o.Path+o.Target+o.Err.Error(), "\r\n") {
				t.Errorf("recorded %q -> %q: %v", o.Path, o.Target, o.Err)
			}
			if o.Path != `/x\r\n{"msg":"forged"}` {
				t.Errorf("recorded the path as %q", o.Path)
			}
		}
		for _, l := range h.logs.Lines() {
			if !strings.HasPrefix(l, `{"time":`) {
				t.Errorf("the log took a forged line: %s", l)
			}
		}
	})
}

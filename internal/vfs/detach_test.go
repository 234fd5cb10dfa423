package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The scenario (issue 13): one session opens a file for writing, a
// write fails (past the size cap), the client removes the name without
// ending the upload, uploads the name again, and only then ends the
// abandoned upload: by Commit, as pkg/sftp's Close does, or by Abort, as a
// dropped connection does. Every store must answer each step as a POSIX
// file server does (OpenSSH's sftp-server, or local with uploads.atomic
// off). Each check goes on after a failure, so that a run shows every
// symptom at once.
func TestNameRemovedUnderAnOpenUpload(t *testing.T) {
	for _, end := range []string{"commit", "abort"} {
		t.Run(end, func(t *testing.T) {
			forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
				nameRemovedUnderAnOpenUpload(t, h, end)
			})
		})
	}
}

func nameRemovedUnderAnOpenUpload(t *testing.T, h *home, end string) {
	s := h.fs
	h.setMaxSize(16)
	wantSize := func(name string, want int64) {
		t.Helper()
		if got, err := size(s, name); err != nil || got != want {
			t.Errorf("stat %s: %d bytes, %v; want %d bytes", name, got, err, want)
		}
	}
	if err := s.Mkdir("/d"); err != nil {
		t.Fatal(err)
	}

	// The failed upload, left open.
	old, err := s.Create("/d/f", trunc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.WriteAt([]byte("old"), 0); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, err := old.WriteAt([]byte(strings.Repeat("x", 20)), 3); !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("write past the cap: %v, want EFBIG", err)
	}
	wantSize("/d/f", 3) // the session's live upload is the file, as on a plain server

	// The client removes the name: it goes, whatever the store held.
	if err := s.Remove("/d/f"); err != nil {
		t.Errorf("remove under an open upload: %v, want success", err)
	}
	absent(t, s, "/d/f")
	if err := s.Remove("/d/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second remove: %v, want no such file", err)
	}

	// And uploads it again: the new file is what the name shows.
	put(t, s, "/d/f", trunc, "new!")
	wantSize("/d/f", 4)

	// Ending the abandoned upload brings nothing back.
	switch end {
	case "commit":
		// A failed write turns the Commit into an Abort; the client
		// heard of the failure at the write, and close(2) succeeds.
		if err := old.Commit(); err != nil {
			t.Errorf("commit of the abandoned upload: %v", err)
		}
	case "abort":
		if err := old.Abort(io.ErrUnexpectedEOF); err != nil {
			t.Errorf("abort of the abandoned upload: %v", err)
		}
	}
	wantSize("/d/f", 4)
	if got := content(t, s, "/d/f"); got != "new!" {
		t.Errorf("after ending the abandoned upload: %q, want the new upload", got)
	}
	noPartial(t, h, "/d/f")

	// Recorded and logged: the new upload ok, the abandoned one failed.
	ups := h.ops.of("upload", "/d/f")
	if len(ups) != 2 || ups[0].Err != nil || ups[0].Size != 4 || ups[1].Err == nil {
		t.Errorf("uploads recorded: %+v; want the new one ok (4 bytes), then the abandoned one failed", ups)
	}
	if n := len(h.logs.Lines(`"msg":"transfer"`, `"path":"/d/f"`, `"outcome":"failed"`)); n != 1 {
		t.Errorf("%d failed transfer lines for /d/f, want 1", n)
	}

	// The folder empties for good: no internal name keeps it.
	if err := s.Remove("/d/f"); err != nil {
		t.Errorf("remove the new file: %v", err)
	}
	if err := s.Rmdir("/d"); err != nil {
		t.Errorf("rmdir: %v, want success", err)
	}
	absent(t, s, "/d")
	if names := rawNames(t, h, "/"); len(names) != 0 {
		t.Errorf("left in the home: %v", names)
	}
}

// A healthy upload whose name is removed ends as close(2) of an unlinked
// file does: its Commit succeeds and lands nowhere, its writes go nowhere,
// and it is recorded as failed, since no file came of it.
func TestRemovedUploadLandsNowhere(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		s := h.fs
		w, err := s.Create("/f", trunc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt([]byte("before"), 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Remove("/f"); err != nil {
			t.Fatalf("remove: %v", err)
		}
		if n, err := w.WriteAt([]byte("after"), 6); n != 5 || err != nil {
			t.Errorf("write after the remove: %d, %v; want it taken and dropped", n, err)
		}
		if _, err := w.ReadAt(make([]byte, 4), 0); err != io.EOF && !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("read back after the remove: %v, want EOF", err)
		}
		absent(t, s, "/f")
		if err := w.Commit(); err != nil {
			t.Errorf("commit of a removed upload: %v, want nil as close(2) gives", err)
		}
		absent(t, s, "/f")
		if err := w.Commit(); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("second commit: %v, want ErrClosed", err)
		}
		if names := rawNames(t, h, "/"); len(names) != 0 {
			t.Errorf("left in the home: %v", names)
		}
		ups := h.ops.of("upload", "/f")
		if len(ups) != 1 || ups[0].Err == nil || ups[0].Bytes != 6 {
			t.Errorf("recorded %+v; want one failed upload of the 6 bytes written before the remove", ups)
		}
	})
}

// A rename onto a name detaches the session's open upload of it: the name
// is the renamed file's, and the upload's Commit lands nowhere.
func TestRenameOntoAnOpenUploadDetachesIt(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		s := h.fs
		w, err := s.Create("/g", trunc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt([]byte("the open upload"), 0); err != nil {
			t.Fatal(err)
		}
		put(t, s, "/h", trunc, "renamed")
		if err := s.Rename("/h", "/g"); err != nil {
			t.Fatalf("rename onto an open upload: %v", err)
		}
		if got, err := size(s, "/g"); got != 7 || err != nil {
			t.Errorf("stat after the rename: %d, %v; want the renamed file's 7 bytes", got, err)
		}
		if err := w.Commit(); err != nil {
			t.Errorf("commit of the renamed-over upload: %v", err)
		}
		if got := content(t, s, "/g"); got != "renamed" {
			t.Errorf("after the rename and the commit: %q, want the renamed file", got)
		}
		absent(t, s, "/h")
		if ups := h.ops.of("upload", "/g"); len(ups) != 1 || ups[0].Err == nil {
			t.Errorf("recorded %+v; want the detached upload failed", ups)
		}
		if hidden := hiddenNames(t, h, "/"); len(hidden) != 0 {
			t.Errorf("left behind: %v", hidden)
		}
	})
}

// A rename that fails detaches nothing.
func TestFailedRenameKeepsTheUpload(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		s := h.fs
		w, err := s.Create("/g", trunc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt([]byte("kept"), 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Rename("/missing", "/g"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("rename of nothing: %v", err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := content(t, s, "/g"); got != "kept" {
			t.Errorf("after a failed rename onto it: %q", got)
		}
	})
}

// A completed upload of a name detaches the session's older open uploads
// of it: they would otherwise replace a newer file on their Commit.
func TestCommitDetachesOlderUploadsOfTheName(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		s := h.fs
		older, err := s.Create("/o", trunc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := older.WriteAt([]byte("older data"), 0); err != nil {
			t.Fatal(err)
		}
		put(t, s, "/o", trunc, "newer")
		if n, err := older.WriteAt([]byte("late"), 10); n != 4 || err != nil {
			t.Errorf("write to the overtaken upload: %d, %v", n, err)
		}
		if err := older.Commit(); err != nil {
			t.Errorf("commit of the overtaken upload: %v", err)
		}
		if got := content(t, s, "/o"); got != "newer" {
			t.Errorf("after the overtaken upload's commit: %q, want the newer upload", got)
		}
		ups := h.ops.of("upload", "/o")
		if len(ups) != 2 || ups[0].Err != nil || ups[1].Err == nil {
			t.Errorf("recorded %+v; want the newer ok, the overtaken failed", ups)
		}
	})
}

// Another session's uploads are its own: a remove, a rename or a commit
// in this session detaches none of them. On an atomic store the last to
// commit wins; written in place, the other session's writes still reach
// the file it has open, as on a POSIX server.
func TestOtherSessionsUploadsAreNotDetached(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		s, other := h.fs, h.session(t, homeOptions{})
		start := func(name, data string) *Writer {
			t.Helper()
			w, err := other.Create(name, trunc)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.WriteAt([]byte(data), 0); err != nil {
				t.Fatal(err)
			}
			return w
		}
		if !h.kind.atomic {
			w := start("/c", "theirs")
			put(t, s, "/c", trunc, "mine")
			if _, err := w.WriteAt([]byte("THEIRS"), 0); err != nil {
				t.Fatal(err)
			}
			if got := content(t, s, "/c"); got != "THEIRS" {
				t.Errorf("the other session's write after a commit here: %q, want it in the file", got)
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			if ups := h.ops.of("upload", "/c"); len(ups) != 2 || ups[0].Err != nil || ups[1].Err != nil {
				t.Errorf("recorded %+v; want both uploads ok", ups)
			}
			return
		}

		// A rename onto the name in this session.
		w := start("/k", "other session")
		put(t, s, "/m", trunc, "m")
		if err := s.Rename("/m", "/k"); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatalf("the other session's commit: %v", err)
		}
		if got := content(t, s, "/k"); got != "other session" {
			t.Errorf("after the rename here and the commit there: %q, want the other session's upload", got)
		}

		// An upload of the name committed in this session.
		w = start("/c", "theirs, later")
		put(t, s, "/c", trunc, "mine")
		if err := w.Commit(); err != nil {
			t.Fatalf("the other session's commit: %v", err)
		}
		if got := content(t, s, "/c"); got != "theirs, later" {
			t.Errorf("after two sessions' uploads: %q, want the last to commit", got)
		}

		// A remove in this session, of a name that has nothing under it
		// yet.
		w = start("/n", "still coming")
		if err := s.Remove("/n"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("remove of another session's upload: %v, want no such file", err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := content(t, s, "/n"); got != "still coming" {
			t.Errorf("after a remove here and the commit there: %q", got)
		}
		for _, o := range h.ops.all() {
			if o.Type == "upload" && o.Err != nil {
				t.Errorf("an upload failed: %+v", o)
			}
		}
	})
}

// An exclusive upload (O_EXCL, or any upload of a user who may not
// overwrite) is told fs.ErrExist at Commit when another upload took the
// name meanwhile, in this session or another, and the name keeps the
// first. Written in place, the first upload's file is there at once: the
// second is refused when it opens (a user who may not overwrite is denied
// it).
func TestExclusiveUploadToldAtCommit(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		other := h.session(t, homeOptions{})
		for _, tc := range []struct {
			name  string
			first *FS
			flag  int
			perms Perms
		}{
			{"same session, O_EXCL", h.fs, excl, PermAll},
			{"other session, O_EXCL", other, excl, PermAll},
			{"same session, upload only", h.fs, trunc, PermUpload | PermDownload},
			{"other session, upload only", other, trunc, PermUpload | PermDownload},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h.setPerms(tc.perms)
				defer h.setPerms(PermAll)
				name := "/" + strings.ReplaceAll(tc.name, " ", "-")
				first, err := tc.first.Create(name, tc.flag)
				if err != nil {
					t.Fatal(err)
				}
				second, err := h.fs.Create(name, tc.flag)
				if !h.kind.atomic {
					if !errors.Is(err, fs.ErrExist) && !errors.Is(err, fs.ErrPermission) {
						t.Errorf("a second exclusive open in place: %v, want file exists or permission denied", err)
					}
					first.WriteAt([]byte("first"), 0)
					if err := first.Commit(); err != nil {
						t.Fatal(err)
					}
					if got := content(t, h.fs, name); got != "first" {
						t.Errorf("after the refused open: %q, want the first", got)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				first.WriteAt([]byte("first"), 0)
				second.WriteAt([]byte("second"), 0)
				if err := first.Commit(); err != nil {
					t.Fatal(err)
				}
				if err := second.Commit(); !errors.Is(err, fs.ErrExist) {
					t.Errorf("the second exclusive commit: %v, want file exists", err)
				}
				if got := content(t, h.fs, name); got != "first" {
					t.Errorf("after the race: %q, want the first", got)
				}
				if hidden := hiddenNames(t, h, "/"); len(hidden) != 0 {
					t.Errorf("left behind: %v", hidden)
				}
			})
		}
	})
}

// Stat of a name describes what the session would continue: its own open
// upload of it, else the partial a broken upload left, else the file.
// Another session sees the partial or the file, not this one's upload.
func TestStatOrder(t *testing.T) {
	forEachStore(t, atomicKinds(), func(t *testing.T, h *home) {
		s, other := h.fs, h.session(t, homeOptions{})
		want := func(f *FS, who string, n int64) {
			t.Helper()
			fi, err := f.Stat("/f")
			if err != nil || fi.Size() != n || fi.Name() != "f" || fi.IsDir() {
				t.Errorf("%s: stat = %v, %v; want f of %d bytes", who, fi, err, n)
			}
		}
		put(t, s, "/f", trunc, "0123456789")
		want(s, "the file", 10)

		broken(t, s, "/f", "abcd")
		want(s, "the partial", 4)
		want(other, "the partial, from another session", 4)
		if got := content(t, s, "/f"); got != "0123456789" {
			t.Errorf("download beside a partial: %q, want the complete file", got)
		}

		w, err := s.Create("/f", trunc)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteAt([]byte("1234567"), 0)
		want(s, "the open upload", 7)
		want(other, "another session's view of it", 4)
		if err := w.Abort(io.ErrUnexpectedEOF); err != nil {
			t.Fatal(err)
		}
		want(s, "the new partial", 7)

		// A resume: the offset from Stat, an open without O_TRUNC, the
		// rest written there.
		fi, _ := s.Stat("/f")
		w, err = s.Create("/f", create)
		if err != nil {
			t.Fatal(err)
		}
		want(s, "the resumed upload", 7)
		w.WriteAt([]byte("89"), fi.Size())
		want(s, "the resumed upload, grown", 9)
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		want(s, "the completed file", 9)
		want(other, "the completed file, from another session", 9)
		if got := content(t, s, "/f"); got != "123456789" {
			t.Errorf("after the resume: %q", got)
		}
		noPartial(t, h, "/f")
	})
}

// pkg/sftp serves a session's requests on several goroutines: the REMOVE
// of a name and the CLOSE of its upload may run at once. Whichever goes
// first, both succeed and the name is gone afterwards.
func TestRemoveRacesCommitOfItsUpload(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		for i := range 50 {
			w, err := h.fs.Create("/race", trunc)
			if err != nil {
				t.Fatal(err)
			}
			w.WriteAt([]byte("data"), 0)
			start := make(chan struct{})
			var removeErr, commitErr error
			var wg sync.WaitGroup
			wg.Go(func() { <-start; removeErr = h.fs.Remove("/race") })
			wg.Go(func() { <-start; commitErr = w.Commit() })
			close(start)
			wg.Wait()
			if removeErr != nil || commitErr != nil {
				t.Fatalf("round %d: remove %v, commit %v", i, removeErr, commitErr)
			}
			absent(t, h.fs, "/race")
			if names := rawNames(t, h, "/"); len(names) != 0 {
				t.Fatalf("round %d: left %v", i, names)
			}
		}
	})
}

// Writes keep coming while the name is removed: none reaches the store
// after the remove, and none fails.
func TestWritesRaceRemove(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		w, err := h.fs.Create("/w", trunc)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 50 {
					off := int64(g*50+i) * 8
					if _, err := w.WriteAt([]byte("12345678"), off); err != nil {
						t.Errorf("write at %d: %v", off, err)
						return
					}
				}
			})
		}
		if err := h.fs.Remove("/w"); err != nil {
			t.Errorf("remove: %v", err)
		}
		wg.Wait()
		if err := w.Commit(); err != nil {
			t.Errorf("commit: %v", err)
		}
		absent(t, h.fs, "/w")
		if names := rawNames(t, h, "/"); len(names) != 0 {
			t.Errorf("left %v", names)
		}
	})
}

// pkg/sftp answers FSTAT and FSETSTAT on an open handle by path: they must
// reach the session's upload (OpenSSH's put -p sets mode and times before
// it closes; a client may truncate through the name).
func TestAttributesOfAnOpenUpload(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		s := h.fs
		mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
		w, err := s.Create("/f", trunc)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteAt([]byte("12345"), 0)
		if fi, err := w.Stat(); err != nil || fi.Size() != 5 || fi.Name() != "f" {
			t.Errorf("Stat of the upload = %v, %v", fi, err)
		}
		if err := s.Chmod("/f", 0o600); err != nil {
			t.Errorf("chmod of the open upload: %v", err)
		}
		if err := s.Chtimes("/f", mtime, mtime); err != nil {
			t.Errorf("chtimes of the open upload: %v", err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		fi, err := s.Stat("/f")
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("after commit: mode %v, want 0600", fi.Mode().Perm())
		}
		if !fi.ModTime().Equal(mtime) {
			t.Errorf("after commit: mtime %v, want %v", fi.ModTime(), mtime)
		}

		// A size set through the name reaches the open upload.
		w, err = s.Create("/g", trunc)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteAt([]byte("123456789"), 0)
		if err := s.Truncate("/g", 3); err != nil {
			t.Fatal(err)
		}
		if got, _ := size(s, "/g"); got != 3 {
			t.Errorf("stat after a truncate of the open upload: %d", got)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := content(t, s, "/g"); got != "123" {
			t.Errorf("truncated upload: %q", got)
		}
		absent(t, s, "/missing")
		for what, err := range map[string]error{
			"chmod":    s.Chmod("/missing", 0o600),
			"chtimes":  s.Chtimes("/missing", mtime, mtime),
			"truncate": s.Truncate("/missing", 0),
		} {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s of nothing: %v", what, err)
			}
		}
	})
}

// Every upload ends once: a second Commit or Abort, in either order, is
// fs.ErrClosed and records nothing more.
func TestUploadEndsOnce(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		for i, ends := range [][2]string{{"commit", "commit"}, {"commit", "abort"}, {"abort", "commit"}, {"abort", "abort"}} {
			name := fmt.Sprintf("/f%d", i)
			w, err := h.fs.Create(name, trunc)
			if err != nil {
				t.Fatal(err)
			}
			w.WriteAt([]byte("x"), 0)
			for j, end := range ends {
				var err error
				if end == "commit" {
					err = w.Commit()
				} else {
					err = w.Abort(io.ErrUnexpectedEOF)
				}
				if j == 1 && !errors.Is(err, fs.ErrClosed) {
					t.Errorf("%s then %s: %v, want ErrClosed", ends[0], end, err)
				}
			}
			if n := len(h.ops.of("upload", name)); n != 1 {
				t.Errorf("%s then %s: %d uploads recorded, want 1", ends[0], ends[1], n)
			}
		}
	})
}

// REMOVE of a directory fails (EISDIR) and leaves the session's uploads
// beneath it alone.
func TestRemoveOfADirectoryKeepsUploadsBeneath(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		s := h.fs
		if err := s.Mkdir("/d"); err != nil {
			t.Fatal(err)
		}
		w, err := s.Create("/d/x", trunc)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteAt([]byte("kept"), 0)
		if err := s.Remove("/d"); !errors.Is(err, syscall.EISDIR) {
			t.Errorf("remove of a directory: %v, want EISDIR", err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := content(t, s, "/d/x"); got != "kept" {
			t.Errorf("after a refused remove of its directory: %q", got)
		}
	})
}

// RMDIR of a folder with an upload in progress fails as on a POSIX server,
// where the growing file is in it; the upload goes on.
func TestRmdirUnderAnOpenUpload(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		s := h.fs
		for _, d := range []string{"/busy", "/busy/deeper"} {
			if err := s.Mkdir(d); err != nil {
				t.Fatal(err)
			}
		}
		w, err := s.Create("/busy/deeper/x", trunc)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteAt([]byte("growing"), 0)
		if err := s.Rmdir("/busy/deeper"); !errors.Is(err, syscall.ENOTEMPTY) {
			t.Errorf("rmdir during an upload: %v, want ENOTEMPTY", err)
		}
		if err := w.Commit(); err != nil {
			t.Fatalf("commit after the refused rmdir: %v", err)
		}
		if got := content(t, s, "/busy/deeper/x"); got != "growing" {
			t.Errorf("after the refused rmdir: %q", got)
		}
	})
}

// A folder with the session's upload in progress beneath is not renamed:
// the upload would land under a path that no longer exists.
func TestRenameOfAFolderUnderAnOpenUpload(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			f := newHome(t, k).fs
			if err := f.Mkdir("/in"); err != nil {
				t.Fatal(err)
			}
			w, err := f.Create("/in/a.edi", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Rename("/in", "/done"); !errors.Is(err, syscall.EBUSY) {
				t.Fatalf("rename of a folder under an open upload: %v, want EBUSY", err)
			}
			if _, err := w.WriteAt([]byte("UNB+"), 0); err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := f.Rename("/in", "/done"); err != nil {
				t.Fatalf("rename once the upload ended: %v", err)
			}
			if fi, err := f.Stat("/done/a.edi"); err != nil || fi.Size() != 4 {
				t.Fatalf("stat /done/a.edi: %v, %v", fi, err)
			}
		})
	}
}

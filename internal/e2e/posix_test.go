package e2e

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/pkg/sftp"
)

// TestNameChangesUnderAnOpenUpload drives the real binary with pkg/sftp's
// client, which keeps a handle open across other requests as a client
// that cleans up before it closes does (issue 13): in one session it opens
// a file for writing, a write fails (the user's max_upload_size), it
// removes the name without closing the handle, uploads the name again,
// and closes the old handle last. Every store answers as OpenSSH's
// sftp-server does, and as wharf with uploads.atomic off: the remove
// succeeds, STAT shows what is stored, the old handle's close brings
// nothing back, and the folder can be removed.
func TestNameChangesUnderAnOpenUpload(t *testing.T) {
	for _, tc := range []struct{ name, backend, extra string }{
		{"local/atomic", "local", ""},
		// The reference, as OpenSSH's sftp-server would answer.
		{"local/plain", "local", "uploads:\n  atomic: false\n"},
		{"memory/atomic", "memory", ""},
		{"memory/plain", "memory", "uploads:\n  atomic: false\n"},
		{"s3", "s3", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUser(t, "posix")
			d := startDaemon(t, daemonOpts{Users: []*testUser{u}, Backend: tc.backend, Extra: tc.extra})
			setUserKeys(t, d.ConfigPath, u.Name, map[string]any{"max_upload_size": "16B"})
			d.Restart(t)
			nameChangesUnderAnOpenUpload(t, d, u)
		})
	}
}

func nameChangesUnderAnOpenUpload(t *testing.T, d *daemon, u *testUser) {
	conn, err := reloadDial(t, d, u)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer conn.Close()
	c, err := sftp.NewClient(conn)
	if err != nil {
		t.Fatalf("sftp: %v", err)
	}
	defer c.Close()

	// Each check goes on after a failure, so that a run shows every
	// symptom at once.
	ok := func(step string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v, want success", step, err)
		}
	}
	size := func(name string, want int64) {
		t.Helper()
		if fi, err := c.Stat(name); err != nil {
			t.Errorf("stat %s: %v; want %d bytes", name, err, want)
		} else if fi.Size() != want {
			t.Errorf("stat %s: %d bytes, want %d", name, fi.Size(), want)
		}
	}
	gone := func(name string) {
		t.Helper()
		if fi, err := c.Stat(name); err == nil {
			t.Errorf("stat %s: %d bytes, want no such file", name, fi.Size())
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat %s: %v, want no such file", name, err)
		}
	}
	upload := func(name, data string) {
		t.Helper()
		f, err := c.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		_, err = io.WriteString(f, data)
		ok("write "+name, err)
		ok("close "+name, f.Close())
	}
	// brokenUpload opens name, writes 3 bytes and then a write past the
	// cap, which fails, and leaves the handle open.
	brokenUpload := func(name string) *sftp.File {
		t.Helper()
		f, err := c.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		if _, err := f.WriteAt([]byte("old"), 0); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
		if _, err := f.WriteAt([]byte(strings.Repeat("x", 20)), 3); err == nil {
			t.Fatalf("write past the cap of %s succeeded", name)
		}
		return f
	}
	read := func(name string) string {
		t.Helper()
		f, err := c.Open(name)
		if err != nil {
			t.Errorf("open %s: %v", name, err)
			return ""
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		ok("read "+name, err)
		return string(b)
	}

	ok("mkdir", c.Mkdir("/d"))

	old := brokenUpload("/d/f")
	size("/d/f", 3) // the open upload is the file, as on a plain server
	ok("remove under an open upload", c.Remove("/d/f"))
	gone("/d/f")

	upload("/d/f", "new!")
	size("/d/f", 4)

	older := brokenUpload("/d/f")
	upload("/d/f", "newer")
	size("/d/f", 5)

	ok("close the removed upload", old.Close())
	ok("close the overtaken upload", older.Close())
	size("/d/f", 5)
	if got := read("/d/f"); got != "newer" {
		t.Errorf("after closing the old handles: %q, want the last upload", got)
	}

	renamed := brokenUpload("/d/g")
	upload("/d/h", "renamed")
	ok("posix-rename onto an open upload", c.PosixRename("/d/h", "/d/g"))
	ok("close the renamed-over upload", renamed.Close())
	if got := read("/d/g"); got != "renamed" {
		t.Errorf("after the rename and the close: %q, want the renamed file", got)
	}

	ok("remove f", c.Remove("/d/f"))
	ok("remove g", c.Remove("/d/g"))
	last := brokenUpload("/d/x")
	ok("remove x", c.Remove("/d/x"))
	ok("rmdir under a removed open upload", c.RemoveDirectory("/d"))
	gone("/d")
	ok("close the upload of the removed folder", last.Close())
	gone("/d")

	if home := d.HomeDir(u); home != "" {
		entries, err := os.ReadDir(home)
		if err != nil {
			t.Fatalf("read home: %v", err)
		}
		for _, e := range entries {
			t.Errorf("left on disk: %s", e.Name())
		}
	}
}

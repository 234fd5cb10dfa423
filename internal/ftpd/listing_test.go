package ftpd_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A name with a CR or LF, written on the disk directly (vfs refuses to
// create one), must not forge lines in a listing or a reply.
func TestControlCharacterNamesStayOutOfReplies(t *testing.T) {
	d, addr := startFTPD(t, nil, "alice")
	home := filepath.Join(d.Config.Storage.Root, "alice")
	if err := os.MkdirAll(home, 0o750); err != nil {
		t.Fatal(err)
	}
	forged := "x\r\n-rw-r--r-- 1 ftp ftp 999 Jan 01 00:00 forged.txt"
	for _, name := range []string{"good.txt", forged, "cr\rname", "bell\x07", "esc\x1b[2J"} {
		if err := os.WriteFile(filepath.Join(home, name), []byte("data"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	c := loggedIn(t, addr, "alice")

	for _, cmd := range []string{"LIST", "NLST", "MLSD", "LIST -la"} {
		got, code, text := c.transfer(cmd, nil)
		if code != 226 {
			t.Fatalf("%s: %d %q", cmd, code, text)
		}
		lines := strings.Split(strings.TrimSuffix(string(got), "\r\n"), "\r\n")
		if len(lines) != 1 || !strings.HasSuffix(lines[0], "good.txt") {
			t.Errorf("%s listed %q, want good.txt alone", cmd, lines)
		}
		if strings.ContainsAny(string(got), "\x07\x1b") || strings.Count(string(got), "\r") != strings.Count(string(got), "\r\n") {
			t.Errorf("%s sent a control character: %q", cmd, got)
		}
	}
	if !slices.ContainsFunc(d.LogLines(), func(l map[string]any) bool {
		return l["msg"] == "names with control characters left out of a listing"
	}) {
		t.Error("no log line says that names were left out")
	}

	// A name with a bare CR can be named in a command: the reply shows it
	// escaped, on one line.
	for _, cmd := range []string{"MLST cr\rname", "STAT cr\rname", "SIZE cr\rname", "MDTM cr\rname"} {
		code, text := c.cmd(cmd)
		if code >= 400 {
			t.Errorf("%q: %d %q", cmd, code, text)
		}
		if body := strings.ReplaceAll(text, "STAT cr\rname", ""); strings.Contains(body, "\r") {
			t.Errorf("%q: the reply carries a raw CR: %q", cmd, text)
		}
	}
	if got, code, text := c.transfer("LIST cr\rname", nil); code != 226 || strings.Count(string(got), "\r") != 1 || !strings.Contains(string(got), `cr\rname`) {
		t.Errorf("LIST of the file: %d %q, data %q: want one line naming cr\\rname", code, text, got)
	}
	// It can still be renamed to a good name.
	c.must("RNFR", "RNFR cr\rname", 350)
	c.must("RNTO", "RNTO renamed.txt", 250)
	if _, err := os.Stat(filepath.Join(home, "renamed.txt")); err != nil {
		t.Errorf("rename of the bad name: %v", err)
	}
}

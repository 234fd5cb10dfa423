package vfs

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestShowPath(t *testing.T) {
	long := "/" + strings.Repeat("a", 249_999)
	euro := "/" + strings.Repeat("€", 400) // 3 bytes each: 1201 bytes
	for _, tc := range []struct {
		name, in, want string
	}{
		{"short path unchanged", "/a/b.txt", "/a/b.txt"},
		{"exactly the limit", "/" + strings.Repeat("x", 1023), "/" + strings.Repeat("x", 1023)},
		{"one byte over", "/" + strings.Repeat("x", 1024), "/" + strings.Repeat("x", 1023) + "…[truncated 1 bytes]"},
		{"250,000 bytes", long, long[:1024] + "…[truncated 248976 bytes]"},
		{"never cuts a rune", euro, "/" + strings.Repeat("€", 341) + "…[truncated 177 bytes]"},
		{"CR LF escaped", "/a\r\nb", `/a\r\nb`},
		{"C0 and DEL escaped", "/x\x01\x1b[2J\x7f", `/x\x01\x1b[2J\x7f`},
		{"invalid UTF-8 kept", "/a\xffb", "/a\xffb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ShowPath(tc.in)
			if got != tc.want {
				t.Errorf("ShowPath = %.80q... (%d bytes), want %.80q... (%d bytes)", got, len(got), tc.want, len(tc.want))
			}
			if kept, _, _ := strings.Cut(got, "…[truncated"); len(kept) > maxShownPath {
				t.Errorf("shows %d bytes of the path, more than %d", len(kept), maxShownPath)
			}
			if utf8.ValidString(tc.in) && !utf8.ValidString(got) {
				t.Errorf("cut a UTF-8 sequence: %q", got)
			}
		})
	}
	// Escapes count towards the limit: a path of control characters shows
	// no more than a plain one.
	if got := ShowPath("/" + strings.Repeat("\x01", 5000)); len(got) > maxShownPath+40 {
		t.Errorf("a path of control characters shows %d bytes", len(got))
	}
}

func TestShowError(t *testing.T) {
	long := "/" + strings.Repeat("a", 5000)
	pe := ShowError(&fs.PathError{Op: "open", Path: long, Err: fs.ErrNotExist})
	if !errors.Is(pe, fs.ErrNotExist) || len(pe.Error()) > 1100 || !strings.Contains(pe.Error(), "truncated 3977 bytes") {
		t.Errorf("PathError shown as %.100q (%d bytes)", pe.Error(), len(pe.Error()))
	}
	le := ShowError(&os.LinkError{Op: "rename", Old: long, New: long, Err: fs.ErrExist})
	if !errors.Is(le, fs.ErrExist) || len(le.Error()) > 2200 {
		t.Errorf("LinkError shown as %.100q (%d bytes)", le.Error(), len(le.Error()))
	}
	short := &fs.PathError{Op: "open", Path: "/a", Err: fs.ErrNotExist}
	if ShowError(short) != error(short) {
		t.Error("a short path's error was rebuilt")
	}
}

// Every way to create a name refuses a control character, with ErrBadName,
// and creates nothing; renaming an old bad name to a good one and entering
// a directory whose name predates the rule still work.
func TestBadNamesRefusedAtCreation(t *testing.T) {
	all := PermUpload | PermOverwrite | PermDownload | PermMkdir | PermRename | PermDelete | PermList
	for _, bad := range []string{"a\r\nb", "x\x01", "nul\x00", "tab\t", "del\x7f", "esc\x1b[31m"} {
		t.Run(ShowPath(bad), func(t *testing.T) {
			inner := openHome(t, NewMemory(), "/u")
			var logs bytes.Buffer
			r := Restrict(inner, func() Perms { return all }, slog.New(slog.NewJSONHandler(&logs, nil)))
			if err := inner.Mkdir("/dir", 0o750); err != nil {
				t.Fatal(err)
			}
			if f, err := inner.Create("/good"); err != nil {
				t.Fatal(err)
			} else {
				f.Close()
			}
			attempts := map[string]func() error{
				"create": func() error { _, err := r.Create("/dir/" + bad); return err },
				"openfile": func() error {
					_, err := r.OpenFile("/"+bad, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
					return err
				},
				"mkdir":         func() error { return r.Mkdir("/"+bad, 0o750) },
				"mkdirall":      func() error { return r.MkdirAll("/"+bad+"/sub", 0o750) },
				"rename target": func() error { return r.Rename("/good", "/dir/"+bad) },
				"rename dir":    func() error { return r.Rename("/dir", "/"+bad) },
			}
			for name, try := range attempts {
				err := try()
				if !errors.Is(err, ErrBadName) {
					t.Errorf("%s: err = %v, want ErrBadName", name, err)
					continue
				}
				if strings.ContainsAny(err.Error(), "\r\n\x00\x01\x1b\x7f") {
					t.Errorf("%s: error text carries a control character: %q", name, err.Error())
				}
			}
			for _, p := range []string{"/" + bad, "/dir/" + bad} {
				if _, err := inner.Stat(p); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%q exists after the refusals (stat: %v)", p, err)
				}
			}
			if _, err := inner.Stat("/good"); err != nil {
				t.Errorf("the rename source is gone: %v", err)
			}
			if strings.ContainsAny(logs.String(), "\r\x01\x1b\x7f") || !strings.Contains(logs.String(), `"msg":"refused"`) {
				t.Errorf("refusals logged as:\n%s", logs.String())
			}
		})
	}

	// A name made before the rule (straight on the store) stays usable:
	// entered, renamed to a good name, removed.
	inner := openHome(t, NewMemory(), "/u")
	r := Restrict(inner, func() Perms { return all }, slog.New(slog.DiscardHandler))
	if err := inner.Mkdir("/old\nname", 0o750); err != nil {
		t.Fatal(err)
	}
	if f, err := r.Create("/old\nname/f"); err != nil {
		t.Errorf("create beneath an old bad name: %v", err)
	} else {
		f.Close()
	}
	if err := r.Rename("/old\nname", "/fixed"); err != nil {
		t.Errorf("rename an old bad name to a good one: %v", err)
	}
	if err := r.RemoveAll("/fixed"); err != nil {
		t.Errorf("remove: %v", err)
	}
}

// A client path of 250,000 bytes reaches the log, the recorded event and
// the error at most 1 KiB long.
func TestLongPathShownShort(t *testing.T) {
	long := "/" + strings.Repeat("p", 249_999)
	var logs bytes.Buffer
	var ops []Op
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	all := PermUpload | PermOverwrite | PermDownload | PermMkdir | PermRename | PermDelete | PermList
	b, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	h := Restrict(Audit(openHome(t, b, "/u"), log, AuditOptions{Record: func(o Op) { ops = append(ops, o) }}), func() Perms { return all }, log)
	denied := Restrict(h, func() Perms { return 0 }, log)

	var errs []error
	_, err = h.OpenFile(long, os.O_WRONLY|os.O_CREATE, 0o640)
	errs = append(errs, err)
	errs = append(errs, h.Mkdir(long, 0o750), h.Remove(long), h.Rename(long, long+"x"))
	_, err = h.Stat(long)
	errs = append(errs, err)
	_, err = h.Open(long)
	errs = append(errs, err)
	errs = append(errs, denied.Mkdir(long, 0o750))
	for i, err := range errs {
		if err == nil {
			t.Errorf("operation %d on a 250,000-byte path succeeded", i)
			continue
		}
		if n := len(err.Error()); n > 2*maxShownPath+100 {
			t.Errorf("operation %d: error of %d bytes: %.120q", i, n, err.Error())
		}
	}
	if len(ops) == 0 {
		t.Fatal("no operation recorded")
	}
	for _, o := range ops {
		size := len(o.Path) + len(o.Target) + len(o.Err.Error())
		if size > 4*maxShownPath {
			t.Errorf("recorded %s holds %d bytes of path: %.120q", o.Type, size, o.Path)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if len(line) > 4*maxShownPath {
			t.Errorf("log line of %d bytes: %.200s", len(line), line)
		}
	}
}

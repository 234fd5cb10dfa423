package vfs

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"
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
// and creates nothing; a name that predates the rule can still be entered,
// renamed to a good name and removed.
func TestBadNamesRefusedAtCreation(t *testing.T) {
	for _, bad := range []string{"a\r\nb", "x\x01", "nul\x00", "tab\t", "del\x7f", "esc\x1b[31m"} {
		t.Run(ShowPath(bad), func(t *testing.T) {
			forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
				s := h.fs
				if err := s.Mkdir("/dir"); err != nil {
					t.Fatal(err)
				}
				put(t, s, "/good", trunc, "good")
				attempts := map[string]func() error{
					"create":           func() error { return second(s.Create("/dir/"+bad, trunc)) },
					"create, no trunc": func() error { return second(s.Create("/"+bad, create)) },
					"create, rdwr":     func() error { return second(s.Create("/"+bad, os.O_RDWR|os.O_CREATE)) },
					"mkdir":            func() error { return s.Mkdir("/" + bad) },
					"rename target":    func() error { return s.Rename("/good", "/dir/"+bad) },
					"rename dir":       func() error { return s.Rename("/dir", "/"+bad) },
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
					if _, err := h.raw.Stat(p); !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.EINVAL) {
						t.Errorf("%q exists after the refusals (stat: %v)", p, err)
					}
				}
				if got := content(t, s, "/good"); got != "good" {
					t.Errorf("the rename source: %q", got)
				}
				if n := len(h.logs.Lines(`"msg":"refused"`)); n != len(attempts) {
					t.Errorf("%d refusals logged, want %d", n, len(attempts))
				}
				if strings.ContainsAny(h.logs.String(), "\r\x01\x1b\x7f") {
					t.Errorf("refusals logged with a control character:\n%s", h.logs.String())
				}
			})
		})
	}

	// A name made before the rule (straight on the store) stays usable:
	// entered, renamed to a good name, removed.
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		s := h.fs
		if err := h.raw.Mkdir("/old\nname"); err != nil {
			t.Fatal(err)
		}
		put(t, s, "/old\nname/f", trunc, "x")
		if err := s.Rename("/old\nname", "/fixed"); err != nil {
			t.Errorf("rename an old bad name to a good one: %v", err)
		}
		if err := s.Remove("/fixed/f"); err != nil {
			t.Errorf("remove: %v", err)
		}
		if err := s.Rmdir("/fixed"); err != nil {
			t.Errorf("rmdir: %v", err)
		}
	})
}

// A client path of 250,000 bytes reaches the log, the recorded event and
// the error at most 1 KiB long.
func TestLongPathShownShort(t *testing.T) {
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		long := "/" + strings.Repeat("p", 249_999)
		s := h.fs
		errs := []error{
			second(s.Create(long, trunc)),
			s.Mkdir(long), s.Remove(long), s.Rename(long, long+"x"), s.Rmdir(long),
			second(s.Stat(long)), second(s.Open(long, 0)), s.Chmod(long, 0o600), s.Truncate(long, 0),
		}
		h.setPerms(0)
		errs = append(errs, s.Mkdir(long), s.Remove(long), second(s.Create(long, trunc)))
		for i, err := range errs {
			if err == nil {
				t.Errorf("operation %d on a 250,000-byte path succeeded", i)
				continue
			}
			if n := len(err.Error()); n > 2*maxShownPath+100 {
				t.Errorf("operation %d: error of %d bytes: %.120q", i, n, err.Error())
			}
		}
		ops := h.ops.all()
		if len(ops) == 0 {
			t.Fatal("no operation recorded")
		}
		for _, o := range ops {
			if n := len(o.Path) + len(o.Target) + len(o.Err.Error()); n > 4*maxShownPath {
				t.Errorf("recorded %s holds %d bytes of path: %.120q", o.Type, n, o.Path)
			}
		}
		for _, line := range h.logs.Lines() {
			if len(line) > 4*maxShownPath {
				t.Errorf("log line of %d bytes: %.200s", len(line), line)
			}
		}
	})
}

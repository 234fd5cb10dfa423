package s3store

import (
	"errors"
	"io/fs"
	"path"
	"strings"
	"testing"
)

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		prefix, path, want string
	}{
		{"", "/a", "a"},
		{"", "a/b", "a/b"},
		{"", "/a/b/", "a/b"},
		{"", "/a/./b//c", "a/b/c"},
		{"", "/../../x", "x"},
		{"", "a/../../../etc/passwd", "etc/passwd"},
		{"wharf", "/alice/f", "wharf/alice/f"},
		{"wharf/", "/alice/f", "wharf/alice/f"},
		{"p/q", "/../f", "p/q/f"},
		{"pfx9", "/..", ""}, // the root: no key
		{"", "/", ""},
		{"", "", ""},
		{"", "/a\x00b", ""},
		{"", "/\xff", ""},
		{"", "/" + strings.Repeat("a", MaxKeyLen+1), ""},
		{"", "/" + strings.Repeat("a", MaxKeyLen), strings.Repeat("a", MaxKeyLen)},
		{"pfx9", "/" + strings.Repeat("a", MaxKeyLen-1), ""},
	} {
		got, err := Key(tc.prefix, tc.path)
		if tc.want == "" {
			if err == nil || !errors.Is(err, ErrName) || !errors.Is(err, fs.ErrInvalid) {
				t.Errorf("Key(%q, %q) = %q, %v; want an ErrName", tc.prefix, tc.path, got, err)
			}
			if err != nil && tc.prefix != "" && strings.Contains(err.Error(), tc.prefix) {
				t.Errorf("Key(%q, %q): error %q names the prefix", tc.prefix, tc.path, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Key(%q, %q) = %q, %v; want %q", tc.prefix, tc.path, got, err, tc.want)
		}
	}
}

func TestBadPrefix(t *testing.T) {
	for _, p := range []string{"/", "/a", "a//b", "a/./b", "../a", "a/..", "a//", "\xff", "a\x00", strings.Repeat("a", MaxKeyLen)} {
		if k, err := Key(p, "/f"); err == nil {
			t.Errorf("Key(%q, /f) = %q; want an error", p, k)
		}
		if _, err := DirPrefix(p, "/"); err == nil {
			t.Errorf("DirPrefix(%q, /): no error", p)
		}
		if got, ok := Path(p, p+"/f"); ok {
			t.Errorf("Path(%q, ...) = %q; want refused", p, got)
		}
		c := DefaultConfig()
		c.Bucket, c.Prefix = "bucket", p
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "prefix:") {
			t.Errorf("Validate with prefix %q: %v; want a prefix error", p, err)
		}
	}
}

func TestDirPrefix(t *testing.T) {
	for _, tc := range []struct{ prefix, path, want string }{
		{"", "/", ""},
		{"", "/..", ""},
		{"w", "/", "w/"},
		{"w/", "", "w/"},
		{"w", "/a/b/", "w/a/b/"},
		{"", "/a", "a/"},
	} {
		if got, err := DirPrefix(tc.prefix, tc.path); err != nil || got != tc.want {
			t.Errorf("DirPrefix(%q, %q) = %q, %v; want %q", tc.prefix, tc.path, got, err, tc.want)
		}
	}
	if got, err := DirPrefix("", "/"+strings.Repeat("a", MaxKeyLen)); err == nil {
		t.Errorf("DirPrefix of a 1,024-byte folder key = %q; want an error", got)
	}
}

// Keys that other tools write into a shared bucket: each that is no clean
// path must be refused, never mapped to something else.
func TestPath(t *testing.T) {
	for _, tc := range []struct {
		prefix, key, want string
	}{
		{"", "a", "/a"},
		{"", "a/b", "/a/b"},
		{"w", "w/a/b", "/a/b"},
		{"w/", "w/a", "/a"},
		{"", "a b/..c/.d", "/a b/..c/.d"},
		// refused
		{"", "", ""},
		{"", "/a", ""},
		{"", "a//b", ""},
		{"", "a/", ""},
		{"", "../x", ""},
		{"", "a/../x", ""},
		{"", "./", ""},
		{"", ".", ""},
		{"", "a/./b", ""},
		{"", "..", ""},
		{"", "a\x00b", ""},
		{"", "\xffa", ""},
		{"", strings.Repeat("a", MaxKeyLen+1), ""},
		{"w", "w/", ""},    // the prefix's own marker
		{"w", "w", ""},     // the prefix without its slash
		{"w", "wx/a", ""},  // beside the prefix, not under it
		{"w", "x/w/a", ""}, // elsewhere
		{"w", "a", ""},
		{"w", "w//a", ""},
		{"w", "w/../a", ""},
	} {
		got, ok := Path(tc.prefix, tc.key)
		if want := tc.want != ""; ok != want || got != tc.want {
			t.Errorf("Path(%q, %q) = %q, %v; want %q, %v", tc.prefix, tc.key, got, ok, tc.want, want)
		}
	}
}

var fuzzPrefixes = []string{"", "w", "w/", "a/b", "a//b", "../x", "/", "wharf/homes/"}

// FuzzKey: whatever a client sends, a key it produces lies under the
// prefix and maps back to the cleaned path; a bad prefix produces nothing.
func FuzzKey(f *testing.F) {
	for _, p := range fuzzPrefixes {
		for _, s := range []string{"", "/", "a", "/a/b", "../../x", "a/../..", "a//b/", ".", "/./..", "\x00", "\xff", "a/.../b"} {
			f.Add(p, s)
		}
	}
	f.Fuzz(func(t *testing.T, prefix, clientPath string) {
		key, err := Key(prefix, clientPath)
		np, perr := normPrefix(prefix)
		if perr != nil {
			if err == nil {
				t.Fatalf("Key(%q, %q) = %q with a bad prefix", prefix, clientPath, key)
			}
			return
		}
		clean := path.Clean("/" + clientPath)
		if err != nil {
			if !errors.Is(err, ErrName) {
				t.Fatalf("Key(%q, %q): %v is not ErrName", prefix, clientPath, err)
			}
			return
		}
		if !strings.HasPrefix(key, np) || len(key) <= len(np) || len(key) > MaxKeyLen {
			t.Fatalf("Key(%q, %q) = %q: not strictly under %q or too long", prefix, clientPath, key, np)
		}
		back, ok := Path(prefix, key)
		if !ok || back != clean {
			t.Fatalf("Path(%q, Key(%q)) = %q, %v; want %q", prefix, clientPath, back, ok, clean)
		}
		dir, err := DirPrefix(prefix, clientPath)
		if err == nil && dir != key+"/" {
			t.Fatalf("DirPrefix(%q, %q) = %q; want %q", prefix, clientPath, dir, key+"/")
		}
	})
}

// FuzzPath: whatever key is in the bucket, a path Path accepts is clean,
// and Key maps it back to exactly that key, so no two keys share a path and
// no key is reached by a path that means another.
func FuzzPath(f *testing.F) {
	for _, p := range fuzzPrefixes {
		for _, k := range []string{"", "a", "a/b", "a//b", "../x", "./", "a/", "/a", "w/a", "w/../a", "\xff", "a\x00"} {
			f.Add(p, k)
			f.Add(p, p+k)
		}
	}
	f.Fuzz(func(t *testing.T, prefix, key string) {
		p, ok := Path(prefix, key)
		if !ok {
			return
		}
		if p != path.Clean(p) || !strings.HasPrefix(p, "/") || p == "/" {
			t.Fatalf("Path(%q, %q) = %q: not a clean rooted non-root path", prefix, key, p)
		}
		back, err := Key(prefix, p)
		if err != nil || back != key {
			t.Fatalf("Key(%q, Path(%q) = %q) = %q, %v; want the key back", prefix, key, p, back, err)
		}
	})
}

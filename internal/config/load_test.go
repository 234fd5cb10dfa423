package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		doc      string
		wantErrs []string // prefixes of each error's text; nil: success
	}{
		{"valid", "users:\n  - name: alice\n    home: /alice\n", nil},
		{"invalid", "log: {level: loud}\nusers:\n  - name: alice\n    home: alice\n",
			[]string{":1: log.level: unknown level", ":4: users[0].home: must be absolute"}},
		{"syntax error", "log:\n\tlevel: debug\n", []string{":2: invalid YAML"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".yaml")
			if err := os.WriteFile(path, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if tt.wantErrs == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if c.File != path || c.Users[0].Src.File != path {
					t.Errorf("File = %q, Users[0].Src.File = %q; want %q", c.File, c.Users[0].Src.File, path)
				}
				if e := c.Users[0].Src.Errorf("home", "x"); e.Error() != path+":3: users[0].home: x" {
					t.Errorf("Src.Errorf = %q", e)
				}
				if err := c.Validate(); err != nil {
					t.Errorf("Validate after Load: %v", err)
				}
				return
			}
			if c != nil {
				t.Error("Load returned a config with the error")
			}
			got := fieldErrors(t, err)
			if len(got) != len(tt.wantErrs) {
				t.Fatalf("got %d errors, want %d: %v", len(got), len(tt.wantErrs), err)
			}
			for i, fe := range got {
				if fe.File != path || !strings.HasPrefix(fe.Error(), path+tt.wantErrs[i]) {
					t.Errorf("error %d = %q (File %q), want prefix %q", i, fe, fe.File, path+tt.wantErrs[i])
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yaml")
	c, err := Load(path)
	if c != nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(absent) = %v, %v; want fs.ErrNotExist", c, err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
}

package configedit

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wharf-sftp/wharf/internal/config"
)

func ptr[T any](v T) *T { return &v }

func TestUpdate(t *testing.T) {
	path, orig := commented(t)
	e := &Editor{Path: path}
	res, err := e.Update("acme", Change{
		Home:        ptr("/acme-corp"),
		Permissions: ptr[[]string](nil),
		Protocols:   ptr([]string{"sftp"}),
		AllowedIPs:  ptr([]string{"192.0.2.0/24", "2001:db8::1"}),
		Disabled:    ptr(true),
	})
	if err != nil || !res.Changed || res.File != path {
		t.Fatalf("Update = %+v, %v", res, err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	u := cfg.Users[slices.IndexFunc(cfg.Users, func(u config.User) bool { return u.Name == "acme" })]
	if u.Home != "/acme-corp" || u.Permissions != nil || !slices.Equal(u.Protocols, []string{"sftp"}) ||
		!slices.Equal(u.AllowedIPs, []string{"192.0.2.0/24", "2001:db8::1"}) || !u.Disabled || len(u.PublicKeys) != 2 {
		t.Errorf("acme after Update = %+v", u)
	}
	got := readFile(t, path)
	for _, c := range []string{"# ACME Corp, contact ops@acme.example", "# ACME rotates keys every year", "# Globex only picks reports up."} {
		if !strings.Contains(got, c) {
			t.Errorf("comment %q lost:\n%s", c, got)
		}
	}
	if strings.Contains(got, "no delete: ACME") {
		t.Errorf("the comment of the removed permissions stayed:\n%s", got)
	}
	if strings.Count(got, "\n") > strings.Count(orig, "\n")+4 {
		t.Errorf("the file grew more than the new keys:\n%s", got)
	}

	// What already is: nothing written.
	before := readFile(t, path)
	res, err = e.Update("acme", Change{Home: ptr("/acme-corp"), Disabled: ptr(true), AllowedIPs: ptr([]string{"192.0.2.0/24", "2001:db8::1"})})
	if err != nil || res.Changed || readFile(t, path) != before {
		t.Errorf("a no-op Update = %+v, %v (file changed: %v)", res, err, readFile(t, path) != before)
	}
	// An empty allowed_ips removes the key: anywhere.
	if _, err := e.Update("acme", Change{AllowedIPs: ptr([]string{})}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(readFile(t, path), "allowed_ips") {
		t.Errorf("allowed_ips: [] kept the key:\n%s", readFile(t, path))
	}
	if _, err := e.Update("nobody", Change{Disabled: ptr(true)}); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("Update of an unknown user = %v", err)
	}
}

func TestUpdateInvalid(t *testing.T) {
	path, _ := commented(t)
	e := &Editor{Path: path}
	before := readFile(t, path)
	tests := []struct {
		c    Change
		want []Problem
	}{
		{Change{Home: ptr("acme")}, []Problem{{"home", "must be absolute"}}},
		{Change{Home: ptr("/a/../b")}, []Problem{{"home", `must not contain ".."`}}},
		{Change{Permissions: ptr([]string{"list", "erase"})}, []Problem{{"permissions[1]", `unknown permission "erase"`}}},
		{Change{Protocols: ptr([]string{})}, []Problem{{"protocols", "empty: the user could never log in"}}},
		{Change{Protocols: ptr([]string{"ftp"})}, []Problem{{"protocols[0]", `unknown protocol "ftp"`}}},
		{Change{AllowedIPs: ptr([]string{"10.0.0.0/8", "partner.example"})}, []Problem{{"allowed_ips[1]", "partner.example"}}},
	}
	for _, tt := range tests {
		_, err := e.Update("acme", tt.c)
		var ie *InputError
		if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) || len(ie.Problems) != len(tt.want) {
			t.Errorf("Update(%v) = %v; want %v", tt.c.Fields(), err, tt.want)
			continue
		}
		for i, w := range tt.want {
			if p := ie.Problems[i]; p.Field != w.Field || !strings.Contains(p.Msg, w.Msg) {
				t.Errorf("Update(%v) problem %d = %+v; want %+v", tt.c.Fields(), i, p, w)
			}
		}
		if !strings.HasPrefix(err.Error(), "invalid input: ") {
			t.Errorf("text %q", err)
		}
	}
	if readFile(t, path) != before {
		t.Error("a refused Update changed the file")
	}
}

func TestNewUserValidate(t *testing.T) {
	if err := (NewUser{Name: "bob", Home: "/bob", PublicKeys: []string{acme1Key}}).Validate(); err != nil {
		t.Errorf("a valid user: %v", err)
	}
	err := NewUser{Name: "-bob", Home: "bob", PublicKeys: []string{acme1Key, "ssh-ed25519 AAAA"}, PasswordHash: "hunter2"}.Validate()
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("Validate = %v", err)
	}
	var fields []string
	for _, p := range ie.Problems {
		fields = append(fields, p.Field)
	}
	if want := []string{"name", "home", "password_hash"}; !slices.Equal(fields, want) {
		t.Errorf("fields = %v, want %v (%v)", fields, want, err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error quotes the hash: %v", err)
	}
	// Keys are parsed (package auth) once the rest passes, as at start-up.
	err = NewUser{Name: "bob", Home: "/bob", PublicKeys: []string{acme1Key, "ssh-ed25519 AAAA"}}.Validate()
	if !errors.As(err, &ie) || len(ie.Problems) != 1 || ie.Problems[0].Field != "public_keys[1]" {
		t.Errorf("Validate of a bad key = %v", err)
	}
}

// A file rewritten behind the lock's back is ErrChanged: the API answers
// 409 for it, as for a bucket's lost conditional write.
func TestFileChangedIsErrChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.yaml")
	writeFile(t, path, "new\n", 0o640)
	err := replaceFile(path, []byte("mine\n"), []byte("old\n"))
	if !errors.Is(err, ErrChanged) {
		t.Errorf("replaceFile over a changed file = %v; want ErrChanged", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

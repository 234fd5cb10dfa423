package auth

import (
	"crypto/elliptic"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// src places user i at a fixed spot of a pretend file, so that tests can check
// the line a FieldError points at.
func src(i int) config.Source {
	base := 10 * (i + 1)
	return config.Source{
		File:   "wharf.yaml",
		Prefix: fmt.Sprintf("users[%d]", i),
		Lines: map[string]int{
			"": base, "name": base, "home": base + 1, "password_hash": base + 2,
			"public_keys": base + 3, "public_keys[0]": base + 4, "public_keys[1]": base + 5,
			"permissions": base + 6,
		},
	}
}

func sshKey(t testing.TB, pub any) ssh.PublicKey {
	t.Helper()
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// countingHash records that a verification ran; the stand-in for measuring
// time, which unit tests never do.
type countingHash struct {
	inner passwordHash
	n     atomic.Int32
}

func (c *countingHash) verify(p []byte) bool {
	c.n.Add(1)
	return c.inner.verify(p)
}

func (c *countingHash) cost() int64 { return c.inner.cost() }

type fixture struct {
	dir                     *Directory
	aliceKey, aliceKey2     ssh.PublicKey
	carolKey, strangerKey   ssh.PublicKey
	alicePW, bobPW, carolPW string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		aliceKey:    sshKey(t, newED25519(t)),
		aliceKey2:   sshKey(t, newECDSA(t, elliptic.P256())),
		carolKey:    sshKey(t, newED25519(t)),
		strangerKey: sshKey(t, newED25519(t)),
		alicePW:     "alice-secret-pw",
		bobPW:       "bob-secret-pw",
		carolPW:     "carol-secret-pw",
	}
	users := []config.User{
		{
			Name: "alice", Home: "/alice",
			PublicKeys:   config.Keys(authorizedLine(t, f.aliceKey)+" alice@laptop", `no-pty `+authorizedLine(t, f.aliceKey2)),
			PasswordHash: cheapArgon(f.alicePW),
			Permissions:  []string{"list", "download"},
			Src:          src(0),
		},
		{Name: "bob", Home: "/bob", PasswordHash: cheapBcrypt(t, f.bobPW, "$2b$"), Src: src(1)},
		{
			Name: "carol", Home: "/carol", Disabled: true,
			PublicKeys:   config.Keys(authorizedLine(t, f.carolKey)),
			PasswordHash: cheapArgon(f.carolPW),
			Src:          src(2),
		},
		{Name: "dave", Home: "/dave", PublicKeys: config.Keys(authorizedLine(t, f.strangerKey)), Permissions: []string{}, Src: src(3)},
	}
	d, err := NewDirectory(users)
	if err != nil {
		t.Fatalf("NewDirectory: %v", err)
	}
	// Every password check counts; the dummy also becomes cheap.
	d.dummy = &countingHash{inner: newArgonHash([]byte("unused"), 64, 1, 1)}
	for _, e := range d.users {
		if e.password != nil {
			e.password = &countingHash{inner: e.password}
		}
	}
	f.dir = d
	return f
}

func TestDirectoryUsers(t *testing.T) {
	f := newFixture(t)
	want := []string{"alice", "bob", "carol", "dave"}
	got := f.dir.Users()
	if !slices.Equal(got, want) {
		t.Errorf("Users() = %q, want %q", got, want)
	}
	got[0] = "mallory"
	if f.dir.Users()[0] != "alice" {
		t.Error("Users() exposes the directory's own slice")
	}
	if f.dir.Len() != len(want) {
		t.Errorf("Len() = %d, want %d", f.dir.Len(), len(want))
	}
	empty, err := NewDirectory(nil)
	if err != nil || empty.Len() != 0 || len(empty.Users()) != 0 {
		t.Errorf("NewDirectory(nil) = %v users, %v", empty.Users(), err)
	}
}

func TestVerifyKey(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name      string
		user      string
		key       ssh.PublicKey
		wantPerms vfs.Perms
		wantErr   string // "" for success
	}{
		{"first key", "alice", f.aliceKey, vfs.PermList | vfs.PermDownload, ""},
		{"second key with options", "alice", f.aliceKey2, vfs.PermList | vfs.PermDownload, ""},
		{"empty permissions list", "dave", f.strangerKey, 0, ""},
		{"another user's key", "alice", f.strangerKey, 0, "not authorized"},
		{"user without keys", "bob", f.aliceKey, 0, "not authorized"},
		{"unknown user", "mallory", f.aliceKey, 0, "unknown user"},
		{"empty user name", "", f.aliceKey, 0, "unknown user"},
		{"disabled user", "carol", f.carolKey, 0, "user disabled"},
		{"nil key", "alice", nil, 0, "no key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := f.dir.VerifyKey(Attempt{Protocol: "sftp", User: tt.user}, tt.key)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidCredentials) {
					t.Fatalf("err = %v, want ErrInvalidCredentials", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %q, want detail %q", err, tt.wantErr)
				}
				if p != nil {
					t.Errorf("principal %+v returned with an error", p)
				}
				return
			}
			if err != nil {
				t.Fatalf("VerifyKey: %v", err)
			}
			want := Principal{
				User: tt.user, Home: "/" + tt.user, Perms: tt.wantPerms,
				Method: MethodPublicKey, Fingerprint: ssh.FingerprintSHA256(tt.key), Protocol: "sftp",
			}
			if *p != want {
				t.Errorf("principal = %+v, want %+v", *p, want)
			}
		})
	}
}

func TestVerifyPassword(t *testing.T) {
	tests := []struct {
		name      string
		user      string
		password  func(*fixture) string
		wantErr   string // "" for success
		wantDummy bool   // the dummy hash, not the user's, must have run
	}{
		{"argon2id", "alice", func(f *fixture) string { return f.alicePW }, "", false},
		{"bcrypt", "bob", func(f *fixture) string { return f.bobPW }, "", false},
		{"wrong password", "alice", func(f *fixture) string { return f.bobPW }, "wrong password", false},
		{"empty password", "alice", func(*fixture) string { return "" }, "wrong password", false},
		{"unknown user", "mallory", func(f *fixture) string { return f.alicePW }, "unknown user", true},
		{"disabled user, right password", "carol", func(f *fixture) string { return f.carolPW }, "user disabled", true},
		{"user without password", "dave", func(*fixture) string { return "anything-at-all" }, "no password set", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			pw := tt.password(f)
			p, err := f.dir.VerifyPassword(Attempt{Protocol: "sftp", User: tt.user}, pw)

			// Exactly one hash verification per attempt, whoever asks.
			dummy := f.dir.dummy.(*countingHash).n.Load()
			var own int32
			if e := f.dir.users[tt.user]; e != nil && e.password != nil {
				own = e.password.(*countingHash).n.Load()
			}
			if dummy+own != 1 {
				t.Errorf("%d dummy + %d own verifications, want exactly 1", dummy, own)
			}
			if tt.wantDummy != (dummy == 1) {
				t.Errorf("dummy verifications = %d, want dummy used = %v", dummy, tt.wantDummy)
			}

			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidCredentials) {
					t.Fatalf("err = %v, want ErrInvalidCredentials", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %q, want detail %q", err, tt.wantErr)
				}
				if pw != "" && strings.Contains(err.Error(), pw) {
					t.Errorf("err = %q quotes the password", err)
				}
				if p != nil {
					t.Errorf("principal %+v returned with an error", p)
				}
				return
			}
			if err != nil {
				t.Fatalf("VerifyPassword: %v", err)
			}
			if p.User != tt.user || p.Home != "/"+tt.user || p.Method != MethodPassword || p.Fingerprint != "" {
				t.Errorf("principal = %+v", *p)
			}
		})
	}
}

func TestVerifyPrincipalIsACopy(t *testing.T) {
	f := newFixture(t)
	p, err := f.dir.VerifyKey(Attempt{Protocol: "sftp", User: "alice"}, f.aliceKey)
	if err != nil {
		t.Fatal(err)
	}
	p.Perms = vfs.PermAll
	p.Home = "/"
	again, err := f.dir.VerifyKey(Attempt{Protocol: "sftp", User: "alice"}, f.aliceKey)
	if err != nil {
		t.Fatal(err)
	}
	if again.Perms != vfs.PermList|vfs.PermDownload || again.Home != "/alice" {
		t.Errorf("changing one principal changed the next: %+v", *again)
	}
}

func TestDirectoryConcurrentUse(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 5 {
				if _, err := f.dir.VerifyKey(Attempt{Protocol: "sftp", User: "alice"}, f.aliceKey); err != nil {
					errs <- err
					return
				}
				if _, err := f.dir.VerifyPassword(Attempt{Protocol: "sftp", User: "bob"}, f.bobPW); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNewDirectoryErrors(t *testing.T) {
	ed := authorizedLine(t, newED25519(t))
	rsa1024 := authorizedLine(t, newRSA(t, 1024))
	dss := authorizedLine(t, fakeDSA(t))
	badArgon := "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$" + strings.Repeat("Q", 43) + "=="
	hugeArgon := "$argon2id$v=19$m=4194304,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$" + strings.Repeat("Q", 43)

	tests := []struct {
		name  string
		user  config.User // Src is set to src(0)
		field string      // full field path
		line  int
		msg   string
		// secret is text that must not appear in the error.
		secret string
	}{
		{"garbage key", config.User{Name: "a", PublicKeys: config.Keys(ed, "not a key at all, just words")},
			"users[0].public_keys[1]", 15, "not a valid authorized_keys line", "just words"},
		{"rsa 1024", config.User{Name: "a", PublicKeys: config.Keys(rsa1024)},
			"users[0].public_keys[0]", 14, "1024 bits", strings.Fields(rsa1024)[1]},
		{"dss", config.User{Name: "a", PublicKeys: config.Keys(ed, dss)},
			"users[0].public_keys[1]", 15, "ssh-dss (DSA)", strings.Fields(dss)[1]},
		{"two keys in one entry", config.User{Name: "a", PublicKeys: config.Keys(ed + "\n" + rsa1024)},
			"users[0].public_keys[0]", 14, "several lines", strings.Fields(ed)[1]},
		{"same key twice", config.User{Name: "a", PublicKeys: config.Keys(ed, ed+" again")},
			"users[0].public_keys[1]", 15, "same key as public_keys[0]", strings.Fields(ed)[1]},
		{"key line unknown falls back to public_keys", config.User{Name: "a", PublicKeys: config.Keys(ed, authorizedLine(t, newED25519(t)), "x")},
			"users[0].public_keys[2]", 13, "not a valid authorized_keys line", ""},
		{"malformed argon2id", config.User{Name: "a", PasswordHash: badArgon},
			"users[0].password_hash", 12, "malformed argon2id hash", "c29tZXNhbHRzb21lc2FsdA"},
		{"absurd argon2id memory", config.User{Name: "a", PasswordHash: hugeArgon},
			"users[0].password_hash", 12, "memory m=4194304", "c29tZXNhbHRzb21lc2FsdA"},
		{"plaintext in password_hash", config.User{Name: "a", PasswordHash: "hunter2-plain"},
			"users[0].password_hash", 12, "unsupported password hash format", "hunter2"},
		{"bcrypt truncated", config.User{Name: "a", PasswordHash: cheapBcrypt(t, "pw", "$2b$")[:50]},
			"users[0].password_hash", 12, "malformed bcrypt hash", cheapBcrypt(t, "pw", "$2b$")[7:29]},
		{"unknown permission", config.User{Name: "a", Permissions: []string{"list", "chmod"}},
			"users[0].permissions[1]", 16, `unknown permission "chmod"`, ""},
		{"empty name", config.User{Name: "", PublicKeys: config.Keys(ed)},
			"users[0].name", 10, "user name is empty", ""},
		{"disabled users are checked too", config.User{Name: "a", Disabled: true, PublicKeys: config.Keys(dss)},
			"users[0].public_keys[0]", 14, "ssh-dss", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.user.Src = src(0)
			d, err := NewDirectory([]config.User{tt.user})
			if err == nil {
				t.Fatalf("NewDirectory succeeded with %d users", d.Len())
			}
			if d != nil {
				t.Error("a directory returned with an error")
			}
			fes := fieldErrors(t, err)
			if len(fes) != 1 {
				t.Fatalf("got %d errors, want 1: %v", len(fes), err)
			}
			fe := fes[0]
			if fe.Field != tt.field || fe.Line != tt.line || fe.File != "wharf.yaml" {
				t.Errorf("error at %s:%d %s, want wharf.yaml:%d %s", fe.File, fe.Line, fe.Field, tt.line, tt.field)
			}
			if !strings.Contains(fe.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", fe.Msg, tt.msg)
			}
			if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Errorf("error %q quotes %q", err, tt.secret)
			}
		})
	}
}

// Every problem in every user is reported at once.
func TestNewDirectoryAllErrors(t *testing.T) {
	ed := authorizedLine(t, newED25519(t))
	users := []config.User{
		{Name: "alice", PublicKeys: config.Keys("junk", ed), PasswordHash: "$argon2id$", Permissions: []string{"fly"}, Src: src(0)},
		{Name: "bob", PublicKeys: config.Keys(ed), Src: src(1)},
		{Name: "alice", PublicKeys: config.Keys("junk"), Src: src(2)},
	}
	_, err := NewDirectory(users)
	var got []string
	for _, fe := range fieldErrors(t, err) {
		got = append(got, fe.Field)
	}
	want := []string{
		"users[0].permissions[0]", "users[0].public_keys[0]", "users[0].password_hash",
		"users[2].public_keys[0]", "users[2].name",
	}
	if !slices.Equal(got, want) {
		t.Errorf("error fields = %q, want %q", got, want)
	}
	if !strings.Contains(err.Error(), `duplicate user name "alice"`) {
		t.Errorf("error %q does not report the duplicate", err)
	}
}

// fieldErrors unpacks NewDirectory's joined error, failing the test on any
// error that is not a *config.FieldError.
func fieldErrors(t *testing.T, err error) []*config.FieldError {
	t.Helper()
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %T is not a joined error: %v", err, err)
	}
	var out []*config.FieldError
	for _, e := range j.Unwrap() {
		var fe *config.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("error %T is not a *config.FieldError: %v", e, e)
		}
		out = append(out, fe)
	}
	return out
}

func TestProtocols(t *testing.T) {
	key := sshKey(t, newED25519(t))
	hash := cheapArgon("pw")
	d, err := NewDirectory([]config.User{
		{Name: "ftponly", Home: "/f", PasswordHash: hash, PublicKeys: config.Keys(authorizedLine(t, key)), Protocols: []string{"ftps"}, Src: src(0)},
		{Name: "both", Home: "/b", PasswordHash: hash, Src: src(1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		proto, user string
		ok          bool
	}{
		{"ftps", "ftponly", true},
		{"sftp", "ftponly", false},
		{"sftp", "both", true},
		{"ftps", "both", true},
	} {
		p, err := d.VerifyPassword(Attempt{Protocol: tt.proto, User: tt.user}, "pw")
		if tt.ok != (err == nil) {
			t.Errorf("VerifyPassword(%s, %s) = %v, want ok=%v", tt.proto, tt.user, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("error %v does not wrap ErrInvalidCredentials", err)
		}
		if p != nil && p.Protocol != tt.proto {
			t.Errorf("principal protocol = %q, want %q", p.Protocol, tt.proto)
		}
	}
	if _, err := d.VerifyKey(Attempt{Protocol: "sftp", User: "ftponly"}, key); err == nil {
		t.Error("key login over a protocol the user may not use succeeded")
	}
	if _, err := d.VerifyKey(Attempt{Protocol: "ftps", User: "ftponly"}, key); err != nil {
		t.Errorf("key login over an allowed protocol: %v", err)
	}
}

func TestAllowedIPs(t *testing.T) {
	key := sshKey(t, newED25519(t))
	d, err := NewDirectory([]config.User{{
		Name: "edi", Home: "/edi", PasswordHash: cheapArgon("pw"), PublicKeys: config.Keys(authorizedLine(t, key)),
		AllowedIPs: []string{"203.0.113.0/24", "2001:db8::1"}, Src: src(0),
	}})
	if err != nil {
		t.Fatal(err)
	}
	for addr, ok := range map[string]bool{
		"203.0.113.9": true, "::ffff:203.0.113.9": true, "2001:db8::1": true,
		"198.51.100.1": false, "2001:db8::2": false, "127.0.0.1": false,
	} {
		a := Attempt{Protocol: "sftp", User: "edi", Remote: netip.MustParseAddr(addr)}
		if _, err := d.VerifyPassword(a, "pw"); ok != (err == nil) {
			t.Errorf("password from %s: %v, want ok=%v", addr, err, ok)
		}
		p, err := d.VerifyKey(a, key)
		if ok != (err == nil) {
			t.Errorf("key from %s: %v, want ok=%v", addr, err, ok)
		}
		if err == nil {
			if _, err := d.Recheck(p); err != nil {
				t.Errorf("recheck from %s: %v", addr, err)
			}
		}
	}
	if _, err := NewDirectory([]config.User{{Name: "x", Home: "/", AllowedIPs: []string{"nonsense"}, Src: src(0)}}); err == nil {
		t.Error("a malformed allowed_ips entry was accepted")
	}
}

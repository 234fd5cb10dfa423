package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// recheckFixture is a config and the principals logged in under it: alice by
// key (she has two), bob by password, both on sftp.
type recheckFixture struct {
	users          []config.User
	key1, key2     ssh.PublicKey
	alice, bob     *Principal
	bobHash, bobPW string
}

func newRecheckFixture(t *testing.T) *recheckFixture {
	t.Helper()
	f := &recheckFixture{
		key1:  sshKey(t, newED25519(t)),
		key2:  sshKey(t, newED25519(t)),
		bobPW: "bob-pw-1",
	}
	f.bobHash = cheapArgon(f.bobPW)
	f.users = []config.User{
		{Name: "alice", Home: "/alice", PublicKeys: config.Keys(authorizedLine(t, f.key1), authorizedLine(t, f.key2)), Permissions: []string{"list", "download"}},
		{Name: "bob", Home: "/bob", PasswordHash: f.bobHash, PublicKeys: config.Keys(authorizedLine(t, f.key2))},
	}
	d := mustDirectory(t, f.users)
	var err error
	if f.alice, err = d.VerifyKey(Attempt{Protocol: "sftp", User: "alice"}, f.key1); err != nil {
		t.Fatal(err)
	}
	if f.bob, err = d.VerifyPassword(Attempt{Protocol: "sftp", User: "bob"}, f.bobPW); err != nil {
		t.Fatal(err)
	}
	return f
}

func mustDirectory(t *testing.T, users []config.User) *Directory {
	t.Helper()
	d, err := NewDirectory(users)
	if err != nil {
		t.Fatalf("NewDirectory: %v", err)
	}
	return d
}

// edited returns a deep enough copy of the fixture's users with edit applied.
func (f *recheckFixture) edited(edit func(u []config.User) []config.User) []config.User {
	u := slices.Clone(f.users)
	for i := range u {
		u[i].PublicKeys = slices.Clone(u[i].PublicKeys)
		u[i].Permissions = slices.Clone(u[i].Permissions)
	}
	return edit(u)
}

func TestRecheck(t *testing.T) {
	f := newRecheckFixture(t)
	tests := []struct {
		name      string
		edit      func(u []config.User) []config.User
		who       func(f *recheckFixture) *Principal
		wantErr   string    // "" when the session may stay
		wantPerms vfs.Perms // when it may
	}{
		{"unchanged key login", func(u []config.User) []config.User { return u }, alice, "", vfs.PermList | vfs.PermDownload},
		{"unchanged password login", func(u []config.User) []config.User { return u }, bob, "", vfs.PermAll},
		{"user removed", func(u []config.User) []config.User { return u[1:] }, alice, "user removed", 0},
		{"user disabled", func(u []config.User) []config.User { u[0].Disabled = true; return u }, alice, "user disabled", 0},
		{"key used removed", func(u []config.User) []config.User { u[0].PublicKeys = u[0].PublicKeys[1:]; return u }, alice, "key " + ssh.FingerprintSHA256(f.key1) + " removed", 0},
		{"other key removed", func(u []config.User) []config.User { u[0].PublicKeys = u[0].PublicKeys[:1]; return u }, alice, "", vfs.PermList | vfs.PermDownload},
		{"key comment changed", func(u []config.User) []config.User { u[0].PublicKeys[0].Key += " new-comment"; return u }, alice, "", vfs.PermList | vfs.PermDownload},
		{"permissions changed", func(u []config.User) []config.User { u[0].Permissions = []string{"upload"}; return u }, alice, "", vfs.PermUpload},
		{"permissions to none", func(u []config.User) []config.User { u[0].Permissions = []string{}; return u }, alice, "", 0},
		{"protocol no longer allowed", func(u []config.User) []config.User { u[0].Protocols = []string{"ftps"}; return u }, alice, "protocol sftp no longer allowed", 0},
		{"protocol still allowed", func(u []config.User) []config.User { u[0].Protocols = []string{"sftp"}; return u }, alice, "", vfs.PermList | vfs.PermDownload},
		{"home changed", func(u []config.User) []config.User { u[0].Home = "/elsewhere"; return u }, alice, "home changed from /alice to /elsewhere", 0},
		{"password changed", func(u []config.User) []config.User { u[1].PasswordHash = cheapArgon("bob-pw-2"); return u }, bob, "password changed", 0},
		{"same password rehashed", func(u []config.User) []config.User { u[1].PasswordHash = cheapArgon(f.bobPW); return u }, bob, "password changed", 0},
		{"password removed", func(u []config.User) []config.User { u[1].PasswordHash = ""; return u }, bob, "password removed", 0},
		{"password hash reindented", func(u []config.User) []config.User { u[1].PasswordHash = "  " + f.bobHash + "\n"; return u }, bob, "", vfs.PermAll},
		{"password login survives its user's key change", func(u []config.User) []config.User { u[1].PublicKeys = nil; return u }, bob, "", vfs.PermAll},
		{"removed then re-added under another name", func(u []config.User) []config.User { u[1].Name = "bobby"; return u }, bob, "user removed", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustDirectory(t, f.edited(tt.edit))
			p := tt.who(f)
			before := *p
			got, err := d.Recheck(p)
			if *p != before {
				t.Errorf("Recheck modified its argument: %+v, was %+v", *p, before)
			}
			if tt.wantErr != "" {
				if !errors.Is(err, ErrRevoked) || err.Error() != tt.wantErr {
					t.Fatalf("Recheck = %v, %v; want ErrRevoked %q", got, err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("principal %+v returned with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Recheck: %v", err)
			}
			want := before
			want.Perms = tt.wantPerms
			if *got != want {
				t.Errorf("Recheck = %+v, want %+v", *got, want)
			}
		})
	}
}

func alice(f *recheckFixture) *Principal { return f.alice }
func bob(f *recheckFixture) *Principal   { return f.bob }

func TestRecheckNoSecrets(t *testing.T) {
	f := newRecheckFixture(t)
	if strings.Contains(fmt.Sprintf("%+v", *f.bob), f.bobHash) {
		t.Errorf("a password principal prints its hash: %+v", *f.bob)
	}
	d := mustDirectory(t, f.edited(func(u []config.User) []config.User { u[1].PasswordHash = cheapArgon("x"); return u }))
	_, err := d.Recheck(f.bob)
	if err == nil || strings.Contains(err.Error(), "$argon2id$") {
		t.Errorf("Recheck = %v, want a refusal quoting no hash", err)
	}
	if _, err := d.Recheck(nil); !errors.Is(err, ErrRevoked) {
		t.Errorf("Recheck(nil) = %v, want ErrRevoked", err)
	}
}

func TestDiff(t *testing.T) {
	f := newRecheckFixture(t)
	fp1, fp2 := ssh.FingerprintSHA256(f.key1), ssh.FingerprintSHA256(f.key2)
	key3 := sshKey(t, newED25519(t))
	fp3 := ssh.FingerprintSHA256(key3)
	tests := []struct {
		name string
		edit func(u []config.User) []config.User
		want []UserChange
	}{
		{"nothing", func(u []config.User) []config.User { return u }, nil},
		{"reordered, comments and hash whitespace", func(u []config.User) []config.User {
			u[0].PublicKeys = config.Keys(u[0].PublicKeys[1].Key+" laptop", u[0].PublicKeys[0].Key)
			u[1].PasswordHash += "\n"
			return []config.User{u[1], u[0]}
		}, nil},
		{"removed", func(u []config.User) []config.User { return u[:1] }, []UserChange{{User: "bob", Removed: true}}},
		{"added", func(u []config.User) []config.User {
			return append(u, config.User{Name: "carol", Home: "/c", PublicKeys: config.Keys(authorizedLine(t, key3)), PasswordHash: cheapArgon("c"), Protocols: []string{"ftps"}, Disabled: true})
		}, []UserChange{{
			User: "carol", Added: true, HomeAfter: "/c", DisabledAfter: true, KeysAdded: []string{fp3},
			PasswordAfter: true, PermsAfter: vfs.PermAll, ProtocolsAfter: []string{"ftps"},
		}}},
		{"key rotated, permissions, protocols", func(u []config.User) []config.User {
			u[0].PublicKeys = config.Keys(authorizedLine(t, f.key2), authorizedLine(t, key3))
			u[0].Permissions = nil
			u[0].Protocols = []string{"sftp"}
			return u
		}, []UserChange{{
			User: "alice", HomeBefore: "/alice", HomeAfter: "/alice", KeysAdded: []string{fp3}, KeysRemoved: []string{fp1},
			PermsBefore: vfs.PermList | vfs.PermDownload, PermsAfter: vfs.PermAll, ProtocolsAfter: []string{"sftp"},
		}}},
		{"disabled, password changed, home moved", func(u []config.User) []config.User {
			u[1].Disabled = true
			u[1].PasswordHash = cheapArgon("new")
			u[1].Home = "/b2"
			return u
		}, []UserChange{{
			User: "bob", HomeBefore: "/bob", HomeAfter: "/b2", DisabledAfter: true, PasswordBefore: true, PasswordAfter: true, PasswordChanged: true,
			PermsBefore: vfs.PermAll, PermsAfter: vfs.PermAll,
		}}},
		{"password removed, key removed", func(u []config.User) []config.User {
			u[1].PasswordHash = ""
			u[1].PublicKeys = nil
			return u
		}, []UserChange{{
			User: "bob", HomeBefore: "/bob", HomeAfter: "/bob", KeysRemoved: []string{fp2}, PasswordBefore: true,
			PermsBefore: vfs.PermAll, PermsAfter: vfs.PermAll,
		}}},
	}
	prev := mustDirectory(t, f.users)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(prev, mustDirectory(t, f.edited(tt.edit)))
			if len(got) != len(tt.want) {
				t.Fatalf("Diff = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if !equalChange(got[i], tt.want[i]) {
					t.Errorf("Diff[%d] =\n %+v\nwant\n %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func equalChange(a, b UserChange) bool {
	return a.User == b.User && a.Added == b.Added && a.Removed == b.Removed &&
		a.HomeBefore == b.HomeBefore && a.HomeAfter == b.HomeAfter &&
		a.DisabledBefore == b.DisabledBefore && a.DisabledAfter == b.DisabledAfter &&
		slices.Equal(a.KeysAdded, b.KeysAdded) && slices.Equal(a.KeysRemoved, b.KeysRemoved) &&
		a.PasswordBefore == b.PasswordBefore && a.PasswordAfter == b.PasswordAfter && a.PasswordChanged == b.PasswordChanged &&
		a.PermsBefore == b.PermsBefore && a.PermsAfter == b.PermsAfter &&
		slices.Equal(a.ProtocolsBefore, b.ProtocolsBefore) && slices.Equal(a.ProtocolsAfter, b.ProtocolsAfter) &&
		(a.ProtocolsBefore == nil) == (b.ProtocolsBefore == nil) && (a.ProtocolsAfter == nil) == (b.ProtocolsAfter == nil)
}

func TestProtocolsChanged(t *testing.T) {
	tests := []struct {
		before, after []string
		want          bool
	}{
		{nil, nil, false},
		{nil, []string{"sftp", "ftps"}, true},
		{[]string{"sftp"}, nil, true},
		{[]string{"sftp", "ftps"}, []string{"ftps", "sftp"}, false},
		{[]string{"sftp"}, []string{"ftps"}, true},
	}
	for _, tt := range tests {
		c := UserChange{ProtocolsBefore: tt.before, ProtocolsAfter: tt.after}
		if got := c.ProtocolsChanged(); got != tt.want {
			t.Errorf("ProtocolsChanged(%q -> %q) = %v, want %v", tt.before, tt.after, got, tt.want)
		}
	}
	if FormatProtocols(nil) != "all" || FormatProtocols([]string{"sftp", "ftps"}) != "sftp,ftps" {
		t.Errorf("FormatProtocols: %q, %q", FormatProtocols(nil), FormatProtocols([]string{"sftp", "ftps"}))
	}
}

package auth

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
)

// TestKeyExpiryBoundary: a key works until the instant of its expires_at,
// and from that instant on is refused with a reason naming it.
func TestKeyExpiryBoundary(t *testing.T) {
	old, cur := sshKey(t, newED25519(t)), sshKey(t, newED25519(t))
	until := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	d := mustDirectory(t, []config.User{{Name: "acme", Home: "/acme", PublicKeys: []config.PublicKey{
		{Key: authorizedLine(t, old), Comment: "ETL server", ExpiresAt: until},
		{Key: authorizedLine(t, cur)},
	}}})
	at := func(tm time.Time) Attempt { return Attempt{Protocol: "sftp", User: "acme", At: tm} }

	if p, err := d.VerifyKey(at(until.Add(-time.Nanosecond)), old); err != nil || p.Fingerprint != Fingerprint(old) {
		t.Fatalf("just before expiry: %v, %v", p, err)
	}
	for _, tm := range []time.Time{until, until.Add(time.Hour)} {
		_, err := d.VerifyKey(at(tm), old)
		if !errors.Is(err, ErrInvalidCredentials) || !errors.Is(err, ErrKeyExpired) {
			t.Fatalf("at %v: %v; want invalid credentials and key expired", tm, err)
		}
		want := "invalid credentials: key expired: " + Fingerprint(old) + " expired at 2027-03-01T00:00:00Z"
		if err.Error() != want {
			t.Errorf("at %v: %q, want %q", tm, err, want)
		}
		if _, err := d.VerifyKey(at(tm), cur); err != nil {
			t.Errorf("the key without expiry at %v: %v", tm, err)
		}
	}
	// A zero At is now: the 2027 key still works today (the test's
	// clock permitting), and one that expired yesterday does not.
	if _, err := d.VerifyKey(Attempt{Protocol: "sftp", User: "acme"}, old); time.Now().Before(until) && err != nil {
		t.Errorf("now: %v", err)
	}
	past := mustDirectory(t, []config.User{{Name: "acme", Home: "/acme", PublicKeys: []config.PublicKey{
		{Key: authorizedLine(t, old), ExpiresAt: time.Now().Add(-24 * time.Hour)}}}})
	if _, err := past.VerifyKey(Attempt{Protocol: "sftp", User: "acme"}, old); !errors.Is(err, ErrKeyExpired) {
		t.Errorf("a key expired yesterday, now: %v", err)
	}
}

func TestPasswordExpiry(t *testing.T) {
	const pw = "acme-pw"
	until := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	d := mustDirectory(t, []config.User{{Name: "acme", Home: "/acme", PasswordHash: cheapArgon(pw), PasswordExpiresAt: until}})
	at := func(tm time.Time) Attempt { return Attempt{Protocol: "ftps", User: "acme", At: tm} }
	if _, err := d.VerifyPassword(at(until.Add(-time.Second)), pw); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	_, err := d.VerifyPassword(at(until), pw)
	if !errors.Is(err, ErrInvalidCredentials) || !errors.Is(err, ErrPasswordExpired) ||
		err.Error() != "invalid credentials: password expired at 2027-03-01T12:00:00Z" {
		t.Errorf("at expiry: %v", err)
	}
	// A wrong password is a wrong password, expired or not: the expiry is
	// told only to whoever knows the password (and only in the log).
	if _, err := d.VerifyPassword(at(until), "guess"); errors.Is(err, ErrPasswordExpired) || !strings.Contains(err.Error(), "wrong password") {
		t.Errorf("a wrong password after expiry: %v", err)
	}
}

// TestRecheckExpiry: a reload ends the sessions of a key or password now
// past its expiry (a rotation's grace cut short), not the others.
func TestRecheckExpiry(t *testing.T) {
	f := newRecheckFixture(t)
	now := time.Now()
	users := f.edited(func(u []config.User) []config.User {
		u[0].PublicKeys = slices.Clone(u[0].PublicKeys)
		u[0].PublicKeys[0].ExpiresAt = now.Add(-time.Second) // key1, alice's login
		u[0].PublicKeys[1].ExpiresAt = now.Add(time.Hour)
		u[1].PasswordExpiresAt = now.Add(-time.Second)
		return u
	})
	d := mustDirectory(t, users)
	if _, err := d.Recheck(f.alice); !errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), "key "+Fingerprint(f.key1)+" expired at ") {
		t.Errorf("alice, key expired: %v", err)
	}
	if _, err := d.Recheck(f.bob); !errors.Is(err, ErrRevoked) || !strings.HasPrefix(err.Error(), "password expired at ") {
		t.Errorf("bob, password expired: %v", err)
	}
	// Expiring later changes nothing now.
	users[0].PublicKeys[0].ExpiresAt = now.Add(time.Hour)
	users[1].PasswordExpiresAt = now.Add(time.Hour)
	d = mustDirectory(t, users)
	for _, p := range []*Principal{f.alice, f.bob} {
		if _, err := d.Recheck(p); err != nil {
			t.Errorf("%s, expiring in an hour: %v", p.User, err)
		}
	}
}

func TestExpiries(t *testing.T) {
	k1, k2, k3 := sshKey(t, newED25519(t)), sshKey(t, newED25519(t)), sshKey(t, newED25519(t))
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	d := mustDirectory(t, []config.User{
		{Name: "acme", Home: "/acme", PasswordHash: cheapArgon("x"), PasswordExpiresAt: now.Add(3 * day), PublicKeys: []config.PublicKey{
			{Key: authorizedLine(t, k1), Comment: "old", ExpiresAt: now.Add(7 * day)},
			{Key: authorizedLine(t, k2)},
		}},
		{Name: "beta", Home: "/beta", PublicKeys: []config.PublicKey{{Key: authorizedLine(t, k3), ExpiresAt: now.Add(-day)}}},
		{Name: "gone", Home: "/gone", Disabled: true, PublicKeys: []config.PublicKey{{Key: authorizedLine(t, k2), ExpiresAt: now.Add(day)}}},
		// A password expiry without a password expires nothing.
		{Name: "keyonly", Home: "/k", PasswordExpiresAt: now.Add(day)},
	})
	want := []Expiry{
		{User: "beta", Fingerprint: Fingerprint(k3), At: now.Add(-day)},
		{User: "acme", At: now.Add(3 * day)},
		{User: "acme", Fingerprint: Fingerprint(k1), Comment: "old", At: now.Add(7 * day)},
	}
	if got := d.Expiries(); !slices.Equal(got, want) {
		t.Errorf("Expiries:\n got %+v\nwant %+v", got, want)
	}
	if !want[1].Password() || want[2].Password() {
		t.Error("Password()")
	}
	if got := d.Expiring(now, 14*day); !slices.Equal(got, want[1:]) {
		t.Errorf("Expiring(14d) = %+v", got)
	}
	if got := d.Expiring(now, 5*day); !slices.Equal(got, want[1:2]) {
		t.Errorf("Expiring(5d) = %+v", got)
	}
	if got := d.Expiring(now, 0); len(got) != 0 {
		t.Errorf("Expiring(0) = %+v", got)
	}
}

// TestDiffExpiry: a rotation (a key added, the old one given an expiry)
// and a password expiry are changes a reload logs.
func TestDiffExpiry(t *testing.T) {
	k1, k2 := sshKey(t, newED25519(t)), sshKey(t, newED25519(t))
	until := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	before := mustDirectory(t, []config.User{{Name: "acme", Home: "/acme", PasswordHash: cheapArgon("x"), PublicKeys: config.Keys(authorizedLine(t, k1))}})
	after := mustDirectory(t, []config.User{{Name: "acme", Home: "/acme", PasswordHash: cheapArgon("x"), PasswordExpiresAt: until,
		PublicKeys: []config.PublicKey{{Key: authorizedLine(t, k1), ExpiresAt: until}, {Key: authorizedLine(t, k2)}}}})
	ch := Diff(before, after)
	if len(ch) != 1 {
		t.Fatalf("Diff = %+v", ch)
	}
	c := ch[0]
	if !slices.Equal(c.KeysAdded, []string{Fingerprint(k2)}) || !slices.Equal(c.KeysExpiry, []string{Fingerprint(k1) + " until 2027-03-01T00:00:00Z"}) ||
		!c.PasswordExpiryBefore.IsZero() || !c.PasswordExpiryAfter.Equal(until) {
		t.Errorf("Diff = %+v", c)
	}
	if back := Diff(after, before); len(back) != 1 || !slices.Equal(back[0].KeysExpiry, []string{Fingerprint(k1) + " never"}) {
		t.Errorf("Diff back = %+v", back)
	}
	if same := Diff(after, after); len(same) != 0 {
		t.Errorf("Diff of a directory with itself = %+v", same)
	}
}

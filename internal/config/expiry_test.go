package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30s":   30 * time.Second,
		"1m30s": 90 * time.Second,
		"7d":    7 * 24 * time.Hour,
		"0d":    0,
		"1d12h": 36 * time.Hour,
		"14d":   DefaultKeyExpiryWarning,
		" 2d ":  48 * time.Hour,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "-1d", "+1d", "1.5d", "7dd", "1d-1h", "99999999d", "secret-pw d", "7 days"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		} else if len(in) > 4 && strings.Contains(err.Error(), in) {
			t.Errorf("ParseDuration(%q): the error quotes the input: %v", in, err)
		}
	}
}

func TestExpiryFrom(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 123, time.UTC)
	for in, want := range map[string]time.Time{
		"2027-03-01":                time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC),
		"2027-03-01T01:00:00+01:00": time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC),
		"90d":                       time.Date(2027, 3, 3, 10, 0, 1, 0, time.UTC), // rounded up: never sooner than asked
		"36h":                       time.Date(2026, 12, 4, 22, 0, 1, 0, time.UTC),
	} {
		got, err := ExpiryFrom(in, now)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ExpiryFrom(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"soon", "0d", "-1h", "2027-02-30"} {
		if got, err := ExpiryFrom(in, now); err == nil {
			t.Errorf("ExpiryFrom(%q) = %v, want an error", in, got)
		}
	}
	// What FormatTime writes, ParseTime reads back identical (not just
	// Equal): configedit compares users with reflect.DeepEqual.
	exp, _ := ExpiryFrom("7d", time.Now())
	back, err := ParseTime(FormatTime(exp))
	if err != nil || back != exp {
		t.Errorf("FormatTime/ParseTime round trip: %v -> %q -> %v (%v)", exp, FormatTime(exp), back, err)
	}
}

func TestKeyExpiryWarning(t *testing.T) {
	c, err := Parse([]byte("state_dir: /s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.KeyExpiryWarning != DefaultKeyExpiryWarning {
		t.Errorf("default key_expiry_warning = %v", c.KeyExpiryWarning)
	}
	if c, err = Parse([]byte("state_dir: /s\nkey_expiry_warning: 30d\n")); err != nil || c.KeyExpiryWarning != 30*24*time.Hour {
		t.Errorf("key_expiry_warning: 30d: %v, %v", c, err)
	}
	if c, err = Parse([]byte("state_dir: /s\nkey_expiry_warning: 0s\n")); err != nil || c.KeyExpiryWarning != 0 {
		t.Errorf("key_expiry_warning: 0s: %v", err)
	}
	_, err = Parse([]byte("state_dir: /s\nkey_expiry_warning: -1h\n"))
	if err == nil || !strings.Contains(err.Error(), "config:2: key_expiry_warning: must not be negative") {
		t.Errorf("a negative warning: %v", err)
	}
}

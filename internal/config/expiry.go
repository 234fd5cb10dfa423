package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultKeyExpiryWarning is key_expiry_warning when the key is absent:
// keys and passwords expiring within two weeks are logged once a day.
const DefaultKeyExpiryWarning = 14 * 24 * time.Hour

// maxDays bounds the days of a duration, so that "d" cannot overflow
// time.Duration (about 292 years).
const maxDays = 100 * 366

// ParseDuration reads a duration as the config writes them: Go's syntax
// ("30s", "1m30s", "36h"), optionally after a number of whole days ("7d",
// "1d12h"), as credential lifetimes are spoken of in days. A day is 24
// hours. The error never quotes s.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	days, rest, ok := strings.Cut(s, "d")
	if !ok {
		return time.ParseDuration(s)
	}
	n, err := strconv.Atoi(days)
	if err != nil || n < 0 || n > maxDays || strings.HasPrefix(days, "+") {
		return 0, fmt.Errorf("invalid number of days: want 0 to %d before \"d\"", maxDays)
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest == "" {
		return d, nil
	}
	r, err := time.ParseDuration(rest)
	if err != nil || r < 0 {
		return 0, errors.New("invalid duration after the days: want e.g. \"7d\" or \"1d12h\"")
	}
	return d + r, nil
}

// ParseTime reads a point in time as the config writes it: RFC 3339
// (2027-03-01T00:00:00Z, any offset) or a date alone (2027-03-01,
// midnight UTC). The result is in UTC, without a monotonic reading, so
// that it compares equal to the same time read back from a file.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t, err = time.Parse(time.DateOnly, s)
	}
	if err != nil {
		return time.Time{}, errors.New("invalid time: want e.g. 2027-03-01T00:00:00Z or 2027-03-01")
	}
	return t.UTC(), nil
}

// FormatTime writes t as the config reads it back: RFC 3339 in UTC, to
// the second.
func FormatTime(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// ExpiryFrom reads an expiry given on a command line: a time (ParseTime)
// or a duration from now (ParseDuration: "90d"). A duration's end is
// rounded up to the second (FormatTime writes seconds): never sooner than
// asked.
func ExpiryFrom(s string, now time.Time) (time.Time, error) {
	if t, err := ParseTime(s); err == nil {
		return t, nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return time.Time{}, errors.New("want a time (2027-03-01T00:00:00Z, 2027-03-01) or a duration from now (90d, 36h)")
	}
	if d <= 0 {
		return time.Time{}, errors.New("the duration must be positive")
	}
	return CeilSecond(now.Add(d)), nil
}

// CeilSecond is t in UTC rounded up to the whole second, without a
// monotonic reading: an expiry as FormatTime writes it, never before t.
func CeilSecond(t time.Time) time.Time {
	c := t.UTC().Truncate(time.Second)
	if c.Before(t) {
		c = c.Add(time.Second)
	}
	return c
}

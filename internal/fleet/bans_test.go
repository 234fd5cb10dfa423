package fleet

import (
	"net/netip"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/guard"
)

func TestBanNames(t *testing.T) {
	until := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)
	for _, tt := range []struct {
		ban  guard.Ban
		name string
	}{
		{guard.Ban{Addr: netip.MustParseAddr("192.0.2.1"), Until: until, Offences: 1}, "bans/192.0.2.1/2026-03-01T12:30:00Z_1"},
		{guard.Ban{Addr: netip.MustParseAddr("2001:db8::7"), Until: until, Offences: 12}, "bans/2001:db8::7/2026-03-01T12:30:00Z_12"},
		{guard.Ban{Addr: netip.MustParseAddr("fe80::1%eth0"), Until: until, Offences: 2}, "bans/fe80::1%eth0/2026-03-01T12:30:00Z_2"},
		// Whole seconds, never earlier, and in UTC whatever the zone.
		{guard.Ban{Addr: netip.MustParseAddr("192.0.2.1"), Until: until.Add(-time.Millisecond), Offences: 1}, "bans/192.0.2.1/2026-03-01T12:30:00Z_1"},
		{guard.Ban{Addr: netip.MustParseAddr("192.0.2.1"), Until: until.In(time.FixedZone("CET", 3600)), Offences: 1}, "bans/192.0.2.1/2026-03-01T12:30:00Z_1"},
	} {
		name := banName(tt.ban)
		if name != tt.name {
			t.Errorf("banName(%v) = %q, want %q", tt.ban, name, tt.name)
		}
		b, ok := parseBanName(name)
		if !ok || b.Addr != tt.ban.Addr || !b.Until.Equal(until) || b.Offences != tt.ban.Offences {
			t.Errorf("parseBanName(%q) = %v, %v", name, b, ok)
		}
	}
	for _, name := range []string{
		"bans/README", "bans/192.0.2.1", "bans/192.0.2.1/", "bans/192.0.2.1/2026-03-01T12:30:00Z",
		"bans/host.example/2026-03-01T12:30:00Z_1", "bans/192.0.2.1/yesterday_1", "bans/192.0.2.1/2026-03-01T12:30:00Z_-1",
		"bans/192.0.2.1/2026-03-01T12:30:00Z_x", "identity/ssh_host_rsa_key",
	} {
		if b, ok := parseBanName(name); ok {
			t.Errorf("parseBanName(%q) = %v, want no ban", name, b)
		}
	}
}

func TestCurrent(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, b := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.1")
	got := Current([]BanObject{
		{Ban: guard.Ban{Addr: a, Until: now.Add(time.Hour), Offences: 2}},
		{Ban: guard.Ban{Addr: a, Until: now.Add(-time.Hour), Offences: 1}}, // older ban of a
		{Ban: guard.Ban{Addr: b, Until: now.Add(-time.Minute), Offences: 1}},
		{Ban: guard.Ban{Addr: b, Until: now.Add(time.Minute), Offences: 3}},
		{Ban: guard.Ban{Addr: netip.MustParseAddr("192.0.2.3"), Until: now, Offences: 1}}, // ends now
	}, now)
	if len(got) != 2 || got[0].Addr != b || got[0].Offences != 3 || got[1].Addr != a || got[1].Offences != 2 {
		t.Errorf("Current = %v", got)
	}
}

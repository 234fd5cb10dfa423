package console

import (
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/api"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/events"
)

func TestHourly(t *testing.T) {
	now := time.Date(2026, 12, 3, 17, 40, 0, 0, time.UTC)
	ev := func(typ, outcome string, ago time.Duration, n int64) events.Event {
		return events.Event{Type: typ, Outcome: outcome, Time: now.Add(-ago), Bytes: n}
	}
	l := api.EventList{Events: []events.Event{
		ev("upload", "ok", 0, 100),                         // this hour: the last bar
		ev("download", "ok", 30*time.Minute, 50),           // 17:10, this hour
		ev("upload", "ok", 41*time.Minute, 7),              // 16:59, the hour before
		ev("upload", "failed", 0, 1000),                    // failed: not counted
		ev("login", "ok", 0, 0),                            // not a transfer
		ev("upload", "ok", 24*time.Hour, 9),                // yesterday 17:40: out of the 24 hours
		ev("upload", "ok", 23*time.Hour+39*time.Minute, 3), // 18:01 yesterday: the first bar
	}}
	b, f := hourly(l, now)
	if b[23] != 150 || f[23] != 2 || b[22] != 7 || f[22] != 1 || b[0] != 3 || f[0] != 1 {
		t.Errorf("bytes %v files %v", b, f)
	}
	var total int64
	for _, v := range f {
		total += v
	}
	if total != 4 {
		t.Errorf("%d files counted, want 4", total)
	}
	c := newChart("Bytes per hour", b, now, config.FormatByteSize)
	if len(c.Bars) != chartHours || c.Bars[23].H != chartHeight || c.Bars[0].H != 2 || c.Bars[5].H != 0 || c.Max != "150 B" {
		t.Errorf("chart %+v", c)
	}
	if c.Bars[23].Label != "17:00–18:00 UTC: 150 B" || c.Bars[0].Label != "18:00–19:00 UTC: 3 B" {
		t.Errorf("labels %q, %q", c.Bars[0].Label, c.Bars[23].Label)
	}
}

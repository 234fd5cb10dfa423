package console

import (
	"fmt"
	"time"

	"github.com/wharf-sftp/wharf/internal/api"
)

// The transfers page's charts: bytes and files moved per hour over the
// last 24 hours, drawn on the server as SVG (no script; colours from the
// stylesheet, so the CSP needs no inline style).

const (
	chartHours  = 24
	chartWidth  = 480
	chartHeight = 120
	chartBar    = chartWidth / chartHours
)

// chartEvents are the event types the charts count.
const chartEvents = "upload,download"

// chart is one bar chart, ready for the template.
type chart struct {
	Title  string
	Max    string // the top of the scale, in words
	Width  int
	Height int
	Bars   []bar
	Ticks  []tick
}

type bar struct {
	X, Y, W, H int
	Label      string // shown on hover
}

type tick struct {
	X     int
	Label string
}

// hourly sums the successful transfers of evs into the chartHours hours
// that end with the hour of now: bytes and files per hour, oldest first.
func hourly(l api.EventList, now time.Time) (bytes, files [chartHours]int64) {
	end := now.UTC().Truncate(time.Hour).Add(time.Hour)
	for _, e := range l.Events {
		if e.Outcome != "ok" || (e.Type != "upload" && e.Type != "download") {
			continue
		}
		if !e.Time.Before(end) {
			continue
		}
		i := chartHours - 1 - int(end.Sub(e.Time)/time.Hour)
		if i < 0 {
			continue
		}
		bytes[i] += e.Bytes
		files[i]++
	}
	return bytes, files
}

// newChart draws values (oldest hour first, the last ending at end).
func newChart(title string, values [chartHours]int64, end time.Time, unit func(int64) string) chart {
	c := chart{Title: title, Width: chartWidth, Height: chartHeight}
	var top int64
	for _, v := range values {
		top = max(top, v)
	}
	c.Max = unit(top)
	start := end.UTC().Truncate(time.Hour).Add(time.Hour - chartHours*time.Hour)
	for i, v := range values {
		h := 0
		if top > 0 {
			h = int(v * chartHeight / top)
			if v > 0 && h == 0 {
				h = 1 // a little is not nothing
			}
		}
		from := start.Add(time.Duration(i) * time.Hour)
		c.Bars = append(c.Bars, bar{X: i * chartBar, Y: chartHeight - h, W: chartBar - 2, H: h,
			Label: fmt.Sprintf("%s–%s UTC: %s", from.Format("15:04"), from.Add(time.Hour).Format("15:04"), unit(v))})
		if i%6 == 0 {
			c.Ticks = append(c.Ticks, tick{X: i * chartBar, Label: from.Format("15h")})
		}
	}
	c.Ticks = append(c.Ticks, tick{X: chartWidth, Label: "now"})
	return c
}

func filesWord(n int64) string {
	if n == 1 {
		return "1 file"
	}
	return fmt.Sprintf("%d files", n)
}

package main

import (
	"context"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/events"
)

// A /metrics page as wharf's admin listener serves it (client_golang's
// text format), trimmed to the families the row reads and a few it skips.
const metricsPage = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
# HELP wharf_hook_deliveries_total Hook deliveries by hook and outcome (delivered, failed attempt, dropped).
# TYPE wharf_hook_deliveries_total counter
wharf_hook_deliveries_total{hook="bench",outcome="delivered"} 200
wharf_hook_deliveries_total{hook="bench",outcome="dropped"} 0
wharf_hook_deliveries_total{hook="bench",outcome="failed"} 3
wharf_hook_deliveries_total{hook="other",outcome="delivered"} 5
# HELP wharf_hook_queue_depth Events waiting for delivery, by hook.
# TYPE wharf_hook_queue_depth gauge
wharf_hook_queue_depth{hook="bench"} 2
wharf_hook_queue_depth{hook="other"} 1
# HELP wharf_s3_requests_total Requests sent to the S3 store, retries included, by operation (PutObject, UploadPart, ...).
# TYPE wharf_s3_requests_total counter
wharf_s3_requests_total{op="DeleteObject"} 200
wharf_s3_requests_total{op="HeadObject"} 1.2e+03
wharf_s3_requests_total{op="PutObject"} 401
process_start_time_seconds 1.7e+09 1700000000000
`

func TestParseMetrics(t *testing.T) {
	samples, err := parseMetrics(strings.NewReader(metricsPage))
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 11 {
		t.Fatalf("%d samples, want 11: %+v", len(samples), samples)
	}
	if s := samples[0]; s.name != "go_goroutines" || s.value != 42 || len(s.labels) != 0 {
		t.Errorf("first sample %+v", s)
	}
	if s := samples[10]; s.name != "process_start_time_seconds" || s.value != 1.7e9 {
		t.Errorf("sample with a timestamp %+v", s)
	}
	got := readScrape(samples)
	want := wharfScrape{requests: opCounts{"DeleteObject": 200, "HeadObject": 1200, "PutObject": 401}, depth: 3, delivered: 205, failed: 3}
	if got.depth != want.depth || got.delivered != want.delivered || got.failed != want.failed || got.dropped != 0 ||
		got.requests.minus(want.requests).format("%+.2f") != "none" || len(got.requests) != 3 {
		t.Errorf("scrape %+v, want %+v", got, want)
	}

	// Label values as the format escapes them; a trailing comma; NaN.
	s, err := parseSample(`m{a="x\"y",b="1\\2",c="line\nbreak",} NaN`)
	if err != nil {
		t.Fatal(err)
	}
	if s.labels["a"] != `x"y` || s.labels["b"] != `1\2` || s.labels["c"] != "line\nbreak" || !math.IsNaN(s.value) {
		t.Errorf("escapes: %+v", s)
	}
	if s, err := parseSample(`m{a="}{ ,="} 7`); err != nil || s.labels["a"] != "}{ ,=" || s.value != 7 {
		t.Errorf("braces inside a value: %+v, %v", s, err)
	}
	for _, bad := range []string{
		`m`, `m{a="1"}`, `m{a="1" 2`, `m{a=1} 2`, `m{a="1} 2`, `m 1 2 3`, `m x`, `{a="1"} 2`,
	} {
		if s, err := parseSample(bad); err == nil {
			t.Errorf("%q accepted: %+v", bad, s)
		}
	}
	if _, err := parseMetrics(strings.NewReader("ok 1\nbroken{\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a broken line: %v, want its number", err)
	}
}

func TestOpCounts(t *testing.T) {
	a := opCounts{"PutObject": 2, "HeadObject": 4}
	b := opCounts{"PutObject": 1, "ListObjectsV2": 1}
	d := a.minus(b)
	if d["PutObject"] != 1 || d["HeadObject"] != 4 || d["ListObjectsV2"] != -1 || d.total() != 4 {
		t.Errorf("minus: %v", d)
	}
	if p := a.plus(b); p["PutObject"] != 3 || p["ListObjectsV2"] != 1 || p.total() != 8 {
		t.Errorf("plus: %v", p)
	}
	if a["PutObject"] != 2 || len(a) != 2 {
		t.Errorf("minus or plus changed its receiver: %v", a)
	}
	if got, want := d.format("%+.2f"), "HeadObject +4.00, ListObjectsV2 -1.00, PutObject +1.00"; got != want {
		t.Errorf("format(signed) = %q, want %q (largest first, ties by name)", got, want)
	}
	if got, want := a.times(0.5).format("%.2f"), "HeadObject 2.00, PutObject 1.00"; got != want {
		t.Errorf("format = %q, want %q", got, want)
	}
	if got, want := (opCounts{"ListObjectsV2": 16, "PutObject": 1, "HeadObject": 0}).format("%.0f"), "ListObjectsV2 16, PutObject 1"; got != want {
		t.Errorf("counts = %q, want %q", got, want)
	}
	for _, c := range []opCounts{{"PutObject": 0.001}, {"PutObject": -0.004}, {}} {
		if got := c.format("%+.2f"); got != "none" {
			t.Errorf("%v shows as %q, want none", c, got)
		}
	}
}

// TestRequestArithmetic: per upload is the uploads' window less the idle
// one, op by op, over the uploads; the runs add up before dividing.
func TestRequestArithmetic(t *testing.T) {
	plain := reqRun{n: 100,
		uploads: reqWindow{requests: opCounts{"HeadObject": 400, "ListObjectsV2": 200, "PutObject": 100}, length: 2 * time.Second},
		idle:    reqWindow{requests: opCounts{}, length: 2 * time.Second}}
	// The fleet's: two more a upload, and per-time lists in both windows.
	fleet := reqRun{n: 100,
		uploads: reqWindow{requests: opCounts{"HeadObject": 400, "ListObjectsV2": 203, "PutObject": 201, "DeleteObject": 100}, length: 10 * time.Second},
		idle:    reqWindow{requests: opCounts{"ListObjectsV2": 3, "PutObject": 1}, length: 10 * time.Second}}
	if got := perMinute(fleet.idle); got != 24 {
		t.Errorf("fleet idle: %v a minute, want 24", got)
	}
	if got := fleetBackgroundPerMinute(2 * time.Minute); got != 46 {
		t.Errorf("design at the default lease: %v a minute, want 40 ban and failure lists + 2 heartbeats + 4 looks' listings", got)
	}
	if got := plain.perUpload().total(); got != 7 {
		t.Errorf("plain: %v a upload, want 7", got)
	}
	fp := fleet.perUpload()
	if fp.total() != 9 || fp["ListObjectsV2"] != 2 || fp["PutObject"] != 2 {
		t.Errorf("fleet: %v, want 9 a upload, the idle window taken out", fp)
	}
	if got, want := fp.minus(plain.perUpload()).format("%+.2f"), "DeleteObject +1.00, PutObject +1.00"; got != want {
		t.Errorf("difference %q, want %q", got, want)
	}

	other := fleet
	other.n = 300
	other.uploads.requests = other.uploads.requests.times(3)
	s := sumRuns([]reqRun{fleet, other})
	if s.n != 400 || s.uploads.length != 20*time.Second || s.idle.requests["ListObjectsV2"] != 6 {
		t.Errorf("sum %+v", s)
	}
	// 400 deletes over 400 uploads: each run weighs by its uploads.
	if got := s.perUpload()["DeleteObject"]; got != 1 {
		t.Errorf("sum: DeleteObject %v a upload, want 1", got)
	}

	for _, tt := range []struct {
		extra float64
		ok    bool
	}{{2, true}, {3, true}, {3.01, false}, {-0.5, true}} {
		ok, text := withinBound(tt.extra)
		if ok != tt.ok || (ok != !strings.Contains(text, "OVER")) {
			t.Errorf("withinBound(%v) = %v, %q", tt.extra, ok, text)
		}
	}
}

// TestReportRequests: the row carries its verdict, a worst run over the
// bound fails it, and the notes show the breakdown.
func TestReportRequests(t *testing.T) {
	r := &s3Runner{b: &bench{o: options{files: 100, fileSize: 64 << 10}}}
	run := func(extraPuts float64) reqRun {
		return reqRun{n: 100, uploads: reqWindow{requests: opCounts{"PutObject": 100 + extraPuts}}, idle: reqWindow{requests: opCounts{}}}
	}
	plain := []reqRun{run(0), run(0)}

	row := result{name: "row"}
	r.reportRequests(&row, plain, []reqRun{run(200), run(200)})
	if row.failed != "" || !strings.Contains(row.name, "+2.00 a upload, within the bound of 3") {
		t.Errorf("within: name %q, failed %q", row.name, row.failed)
	}
	notes := strings.Join(row.notes, "\n")
	for _, want := range []string{"over 2 run(s) of 100 uploads", "fleet machinery: +2.00 a upload", "PutObject +2.00", "idle window"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}

	// One run over: the row fails on its worst run, though the mean is
	// within.
	row = result{name: "row"}
	r.reportRequests(&row, plain, []reqRun{run(200), run(350)})
	if row.failed == "" || !strings.Contains(row.name, "OVER THE BOUND") || !strings.Contains(row.failed, "3.50") {
		t.Errorf("over: name %q, failed %q", row.name, row.failed)
	}
	if err := failedRows([]result{{name: "fine"}, row}); err == nil || !strings.Contains(err.Error(), "over the bound of 3") {
		t.Errorf("failedRows: %v", err)
	}
	if err := failedRows([]result{{name: "fine"}}); err != nil {
		t.Errorf("failedRows without a failure: %v", err)
	}
}

func TestHookReceiver(t *testing.T) {
	h, err := startHookReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer h.stop()
	if !strings.HasPrefix(h.url(), "http://127.0.0.1:") {
		t.Errorf("url %q: want loopback", h.url())
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	send := func(method, id string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(context.Background(), method, h.url(), strings.NewReader(`{"type":"upload"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(events.HeaderDelivery, id)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, id := range []string{"a", "b", "a"} {
		if code := send(http.MethodPost, id); code != http.StatusOK {
			t.Errorf("POST: %d", code)
		}
	}
	if code := send(http.MethodGet, "c"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", code)
	}
	if posts, ids := h.counts(); posts != 3 || ids != 2 {
		t.Errorf("counts %d POSTs, %d ids; want 3, 2 (a retry counts once)", posts, ids)
	}
	h.reset()
	if posts, ids := h.counts(); posts != 0 || ids != 0 {
		t.Errorf("after reset: %d, %d", posts, ids)
	}
}

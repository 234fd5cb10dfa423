package main

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// summary is the outcome of one run, printed as the last line of stdout in
// JSON. Durations are in seconds, latencies in milliseconds, sizes in bytes.
type summary struct {
	Mode    string `json:"mode"`
	Addr    string `json:"addr"`
	User    string `json:"user"`
	FDLimit uint64 `json:"fd_limit"`
	// Interrupted says why the run stopped before its end: "timeout" or
	// "signal"; empty when it ran to completion.
	Interrupted string `json:"interrupted,omitempty"`
	// ClientRSS is wharf-load's own resident memory at the end, to tell
	// whether the generator itself was the bottleneck.
	ClientRSS int64         `json:"client_rss_bytes,omitempty"`
	Idle      *idleResult   `json:"idle,omitempty"`
	Logins    *loginsResult `json:"logins,omitempty"`
}

// batch is what a set of logins came to. Latency is from the dial to the
// answer to the first SFTP request, over the logins that succeeded.
type batch struct {
	Attempted int          `json:"attempted"`
	Succeeded int          `json:"succeeded"`
	Failed    int          `json:"failed"`
	LatencyMS latency      `json:"latency_ms"`
	Errors    []errorCount `json:"errors,omitempty"`
}

type latency struct {
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
	P99    float64 `json:"p99"`
	Max    float64 `json:"max"`
}

type errorCount struct {
	Error string `json:"error"`
	Count int    `json:"count"`
}

type idleResult struct {
	Wanted           int     `json:"wanted"`
	Establish        batch   `json:"establish"`
	EstablishSeconds float64 `json:"establish_seconds"`
	HoldSeconds      float64 `json:"hold_seconds"`
	// Probes are the fresh logins made while every session was held.
	Probes batch `json:"probes"`
	// AliveAfterHold counts the held sessions that still answered a
	// request at the end of the hold.
	AliveAfterHold int `json:"alive_after_hold"`
	// ServerRSS is the -server-pid's VmRSS once every session was open,
	// ServerPeakRSS its VmHWM at the end of the hold; 0 when not measured.
	ServerRSS     int64 `json:"server_rss_bytes,omitempty"`
	ServerPeakRSS int64 `json:"server_peak_rss_bytes,omitempty"`
}

type loginsResult struct {
	TargetRate      float64 `json:"target_rate"`
	DurationSeconds float64 `json:"duration_seconds"`
	MaxInFlight     int     `json:"max_in_flight"`
	batch
	// WallSeconds runs from the first start to the last close.
	WallSeconds float64 `json:"wall_seconds"`
	// Rate is logins that succeeded per second of WallSeconds.
	Rate float64 `json:"rate"`
	// MaxStartLagMS is how late the most delayed login started against its
	// schedule: large when -max-inflight was reached or the generator
	// could not keep up.
	MaxStartLagMS float64 `json:"max_start_lag_ms"`
}

// recorder collects the outcomes of concurrent logins.
type recorder struct {
	mu     sync.Mutex
	lat    []time.Duration
	failed int
	errs   errTally
}

func (r *recorder) ok(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat = append(r.lat, d)
}

func (r *recorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed++
	r.errs.add(err)
}

func (r *recorder) counts() (succeeded, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lat), r.failed
}

func (r *recorder) batch() batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return batch{
		Attempted: len(r.lat) + r.failed,
		Succeeded: len(r.lat),
		Failed:    r.failed,
		LatencyMS: latencyOf(r.lat),
		Errors:    r.errs.list(),
	}
}

// latencyOf uses nearest-rank percentiles: every figure is one that was
// measured.
func latencyOf(ds []time.Duration) latency {
	if len(ds) == 0 {
		return latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) float64 {
		i := max(int(math.Ceil(p*float64(len(s))))-1, 0)
		return ms(s[i])
	}
	return latency{Median: rank(0.5), P90: rank(0.9), P99: rank(0.99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func (l latency) String() string {
	if l == (latency{}) {
		return "n/a (none succeeded)"
	}
	return fmt.Sprintf("median %s ms, p90 %s ms, p99 %s ms, max %s ms",
		formatMS(l.Median), formatMS(l.P90), formatMS(l.P99), formatMS(l.Max))
}

func formatMS(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// errTally counts errors by message, keeping the first few distinct ones:
// ten thousand copies of one refusal say no more than one with a count.
type errTally struct {
	order  []string
	counts map[string]int
	other  int
}

const maxDistinctErrors = 8

// localPort matches the client's own port in messages such as
// "read tcp 127.0.0.1:41234->127.0.0.1:2022: ...", which would make every
// copy of one error distinct.
var localPort = regexp.MustCompile(`:\d+->`)

func (t *errTally) add(err error) {
	msg := localPort.ReplaceAllString(err.Error(), ":*->")
	if t.counts == nil {
		t.counts = map[string]int{}
	}
	if _, seen := t.counts[msg]; !seen && len(t.order) >= maxDistinctErrors {
		t.other++
		return
	}
	if t.counts[msg] == 0 {
		t.order = append(t.order, msg)
	}
	t.counts[msg]++
}

func (t *errTally) list() []errorCount {
	var out []errorCount
	for _, m := range t.order {
		out = append(out, errorCount{Error: m, Count: t.counts[m]})
	}
	if t.other > 0 {
		out = append(out, errorCount{Error: "(other errors)", Count: t.other})
	}
	return out
}

func (b batch) errorLines() string {
	var s strings.Builder
	for _, e := range b.Errors {
		fmt.Fprintf(&s, "  %d× %s\n", e.Count, e.Error)
	}
	return s.String()
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

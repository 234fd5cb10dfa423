package e2e

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRuntimePacing checks what `wharf serve` does to Go's runtime, as an
// operator sees it on the metrics endpoint: GOGC raised by the headroom
// floor, and GOMAXPROCS down to one while the daemon is idle, unless the
// environment sets it.
func TestRuntimePacing(t *testing.T) {
	d := startDaemon(t, daemonOpts{Extra: "admin:\n  listen: 127.0.0.1:0\n"})
	l := d.WaitLogSince(t, 0, logMatch("msg", "listening", "proto", "http"), startTimeout)
	addr, _ := l["addr"].(string)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("admin listening line has addr %q", addr)
	}
	pacing := d.WaitLogSince(t, 0, logMatch("msg", "cpu pacing"), startTimeout)

	// The daemon inherits this process's environment, and with it an
	// operator's choice.
	if v, ok := os.LookupEnv("GOMAXPROCS"); ok {
		if pacing["policy"] != "GOMAXPROCS from the environment" {
			t.Fatalf("GOMAXPROCS=%s in the environment, yet the cpu pacing line says %v", v, pacing)
		}
		want, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("GOMAXPROCS=%q in the environment: %v", v, err)
		}
		time.Sleep(4 * time.Second) // longer than the policy waits to lower
		if got := scrapeGauges(t, "http://"+addr+"/metrics", "go_sched_gomaxprocs_threads")["go_sched_gomaxprocs_threads"]; got != want {
			t.Fatalf("GOMAXPROCS=%s in the environment, yet the daemon runs on %v processors", v, got)
		}
		return
	}
	// The daemon's own default is what the runtime gives this machine;
	// this test process sees the same CPUs.
	if runtime.NumCPU() == 1 {
		if pacing["policy"] != "one processor available" {
			t.Fatalf("one CPU, yet the cpu pacing line says %v", pacing)
		}
		return
	}
	if pacing["policy"] != "follow demand" {
		t.Fatalf("cpu pacing line: %v; want policy \"follow demand\"", pacing)
	}
	// Lowered after three idle seconds; the bound leaves room for a slow
	// CI machine.
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := scrapeGauges(t, "http://"+addr+"/metrics", "go_sched_gomaxprocs_threads", "go_gc_gogc_percent")
		if m["go_gc_gogc_percent"] < 100 {
			t.Fatalf("GOGC is %v: the headroom floor never sets it below 100", m["go_gc_gogc_percent"])
		}
		if m["go_sched_gomaxprocs_threads"] == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("an idle daemon still runs on %v processors after 30 s", m["go_sched_gomaxprocs_threads"])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// scrapeGauges reads the named unlabelled samples from a Prometheus text
// exposition; each must be present.
func scrapeGauges(t *testing.T, url string, names ...string) map[string]float64 {
	t.Helper()
	all := scrapeSeries(t, url)
	got := map[string]float64{}
	for _, n := range names {
		v, ok := all[n]
		if !ok {
			t.Fatalf("%s has no %s sample", url, n)
		}
		got[n] = v
	}
	return got
}

package main

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		addr    string
		wantErr string
	}{
		{addr: "127.0.0.1:2022"},
		{addr: "127.3.4.5:22"},
		{addr: "[::1]:2022"},
		{addr: "[::ffff:127.0.0.1]:2022"},
		{addr: "10.0.0.1:22", wantErr: "not a loopback address"},
		{addr: "0.0.0.0:22", wantErr: "not a loopback address"},
		{addr: "[::]:22", wantErr: "not a loopback address"},
		{addr: "[2001:db8::1]:22", wantErr: "not a loopback address"},
		{addr: "[::ffff:10.0.0.1]:22", wantErr: "not a loopback address"},
		{addr: "localhost:22", wantErr: "not a name"},
		{addr: "example.com:22", wantErr: "not a name"},
		{addr: "127.0.0.1", wantErr: "missing port"},
		{addr: "127.0.0.1:0", wantErr: "port must be"},
		{addr: "127.0.0.1:ssh", wantErr: "port must be"},
		{addr: "127.0.0.1:70000", wantErr: "port must be"},
	}
	for _, tt := range tests {
		err := checkLoopback(tt.addr)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.addr, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error %v, want one containing %q", tt.addr, err, tt.wantErr)
		}
	}
}

func TestParseArgs(t *testing.T) {
	base := []string{"-addr", "127.0.0.1:2022", "-user", "u", "-key", "k"}
	with := func(mode string, extra ...string) []string {
		return append(append([]string{mode}, base...), extra...)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, o options)
	}{
		{name: "idle defaults", args: with("idle"), check: func(t *testing.T, o options) {
			if o.mode != "idle" || o.sessions != 10000 || o.concurrency != 64 || o.probes != 20 || o.timeout != 10*time.Minute {
				t.Errorf("%+v", o)
			}
			if fdsNeeded(o) < 10000 {
				t.Errorf("fds needed %d, want at least one per session", fdsNeeded(o))
			}
		}},
		{name: "logins defaults", args: with("logins"), check: func(t *testing.T, o options) {
			if o.rate != 200 || o.duration != 10*time.Second || o.logins() != 2000 {
				t.Errorf("rate %g, duration %s, logins %d", o.rate, o.duration, o.logins())
			}
		}},
		{name: "algorithm lists", args: with("logins", "-kex", " curve25519-sha256 ,", "-host-key-algos", "ssh-ed25519"), check: func(t *testing.T, o options) {
			if len(o.kex) != 1 || o.kex[0] != "curve25519-sha256" || len(o.hostKeyAlgos) != 1 {
				t.Errorf("kex %q, host key algorithms %q", o.kex, o.hostKeyAlgos)
			}
		}},
		{name: "no mode", args: base, wantErr: "missing mode"},
		{name: "nothing", wantErr: "missing mode"},
		{name: "unknown mode", args: with("storm"), wantErr: `unknown mode "storm"`},
		{name: "no addr", args: []string{"idle", "-user", "u", "-key", "k"}, wantErr: "-addr is required"},
		{name: "no user", args: []string{"idle", "-addr", "127.0.0.1:1", "-key", "k"}, wantErr: "-user is required"},
		{name: "no key", args: []string{"idle", "-addr", "127.0.0.1:1", "-user", "u"}, wantErr: "-key is required"},
		{name: "remote target", args: []string{"logins", "-addr", "192.0.2.1:22", "-user", "u", "-key", "k"}, wantErr: "not a loopback address"},
		{name: "too many sessions", args: with("idle", "-sessions", "100001"), wantErr: "-sessions"},
		{name: "no session", args: with("idle", "-sessions", "0"), wantErr: "-sessions"},
		{name: "zero concurrency", args: with("idle", "-concurrency", "0"), wantErr: "-concurrency"},
		{name: "negative hold", args: with("idle", "-hold", "-1s"), wantErr: "-hold"},
		{name: "zero rate", args: with("logins", "-rate", "0"), wantErr: "-rate"},
		{name: "NaN rate", args: with("logins", "-rate", "NaN"), wantErr: "-rate"},
		{name: "unbounded logins", args: with("logins", "-rate", "10000", "-duration", "2h"), wantErr: "at most"},
		{name: "less than one login", args: with("logins", "-rate", "1", "-duration", "100ms"), wantErr: "less than one login"},
		{name: "zero timeout", args: with("idle", "-timeout", "0s"), wantErr: "-timeout"},
		{name: "stray argument", args: with("idle", "extra"), wantErr: "unexpected arguments"},
		{name: "unknown flag", args: with("idle", "-nope"), wantErr: "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseArgs(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

func TestEnsureFDs(t *testing.T) {
	soft, hard, err := ensureFDs(64)
	if err != nil || soft < 64 || hard < soft {
		t.Fatalf("soft %d, hard %d, err %v", soft, hard, err)
	}
	if hard == ^uint64(0) {
		return // unlimited: nothing is too many
	}
	_, _, err = ensureFDs(hard + 1)
	if err == nil || !strings.Contains(err.Error(), "file descriptors") {
		t.Fatalf("asking for more than the hard limit: error %v", err)
	}
}

func TestLatencyOf(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := latencyOf(ds)
	want := latency{Median: 50, P90: 90, P99: 99, Max: 100}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := latencyOf(nil); got != (latency{}) {
		t.Errorf("no samples: %+v", got)
	}
	if got := latencyOf([]time.Duration{1500 * time.Microsecond}); got != (latency{1.5, 1.5, 1.5, 1.5}) {
		t.Errorf("one sample: %+v", got)
	}
}

func TestErrTally(t *testing.T) {
	var tally errTally
	for port := range 5 {
		tally.add(errors.New("read tcp 127.0.0.1:" + string(rune('1'+port)) + "4321->127.0.0.1:2022: connection reset by peer"))
	}
	for i := range maxDistinctErrors + 3 {
		tally.add(errors.New("distinct " + string(rune('a'+i))))
	}
	got := tally.list()
	if len(got) != maxDistinctErrors+1 {
		t.Fatalf("%d entries, want %d distinct and one for the rest: %+v", len(got), maxDistinctErrors+1, got)
	}
	if got[0].Count != 5 || got[0].Error != "read tcp 127.0.0.1:*->127.0.0.1:2022: connection reset by peer" {
		t.Errorf("first entry %+v: the local port must not make errors distinct", got[0])
	}
	if last := got[len(got)-1]; last.Error != "(other errors)" || last.Count != 4 {
		t.Errorf("last entry %+v, want the 4 errors beyond the first %d distinct ones", last, maxDistinctErrors)
	}
}

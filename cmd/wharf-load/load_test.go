package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
)

// writeKey writes a new ed25519 private key in OpenSSH format and returns
// its path and authorized_keys line.
func writeKey(t *testing.T) (path, authorized string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "wharf-load-test")
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return path, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}

// runMode runs wharf-load as main does and checks that its last output
// line is the summary it returned.
func runMode(t *testing.T, args ...string) summary {
	t.Helper()
	o, err := parseArgs(args, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s, err := run(context.Background(), o, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	var printed summary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &printed); err != nil {
		t.Fatalf("last line is not the JSON summary: %v", err)
	}
	a, _ := json.Marshal(printed)
	b, _ := json.Marshal(s)
	if !bytes.Equal(a, b) {
		t.Errorf("printed summary %s\ndiffers from the returned one %s", a, b)
	}
	if s.Interrupted != "" {
		t.Errorf("interrupted: %s", s.Interrupted)
	}
	return s
}

func checkLatency(t *testing.T, what string, l latency) {
	t.Helper()
	if !(l.Median > 0 && l.Median <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("%s latency %+v: want 0 < median <= p90 <= p99 <= max", what, l)
	}
}

// TestAgainstDaemon drives the real daemon, in-process on 127.0.0.1, with
// both modes at a small size, and checks that the counts add up. It
// asserts no timing.
func TestAgainstDaemon(t *testing.T) {
	const sessions, probes, logins = 50, 3, 20
	key, authorized := writeKey(t)
	cfg := config.Default()
	cfg.Storage.Backend = "memory"
	// One user from one address holds every session: the default
	// per-user and per-address limits (10, 20) would refuse most.
	cfg.Limits.MaxConnections = 1000
	cfg.Limits.MaxConnectionsPerIP = 1000
	cfg.Limits.MaxConnectionsPerUser = 1000
	cfg.Users = []config.User{{Name: "load", Home: "/load", PublicKeys: config.Keys(authorized)}}
	d := daemontest.Start(t, cfg)
	common := []string{"-addr", d.Addr, "-user", "load", "-key", key, "-timeout", "2m",
		"-kex", "curve25519-sha256", "-host-key-algos", "ssh-ed25519"}

	t.Run("idle", func(t *testing.T) {
		// The daemon runs in this process: its RSS is ours.
		s := runMode(t, append([]string{"idle", "-sessions", strconv.Itoa(sessions), "-concurrency", "8",
			"-hold", "600ms", "-probes", strconv.Itoa(probes), "-server-pid", strconv.Itoa(os.Getpid())}, common...)...)
		r := s.Idle
		if r == nil || s.Logins != nil || s.Mode != "idle" {
			t.Fatalf("summary %+v", s)
		}
		if e := r.Establish; r.Wanted != sessions || e.Attempted != sessions || e.Succeeded != sessions || e.Failed != 0 || len(e.Errors) != 0 {
			t.Errorf("establish %+v, want all %d sessions", e, sessions)
		}
		checkLatency(t, "establish", r.Establish.LatencyMS)
		if p := r.Probes; p.Attempted != probes || p.Succeeded != probes || p.Failed != 0 {
			t.Errorf("probes %+v, want %d that succeeded", p, probes)
		}
		checkLatency(t, "probe", r.Probes.LatencyMS)
		if r.AliveAfterHold != sessions {
			t.Errorf("%d sessions alive after the hold, want %d", r.AliveAfterHold, sessions)
		}
		if r.HoldSeconds < 0.6 || r.EstablishSeconds <= 0 {
			t.Errorf("hold %gs (want at least -hold), establish %gs", r.HoldSeconds, r.EstablishSeconds)
		}
		if r.ServerRSS <= 0 || r.ServerPeakRSS < r.ServerRSS || s.ClientRSS <= 0 {
			t.Errorf("server RSS %d, peak %d, client RSS %d", r.ServerRSS, r.ServerPeakRSS, s.ClientRSS)
		}
	})

	t.Run("logins", func(t *testing.T) {
		s := runMode(t, append([]string{"logins", "-rate", strconv.Itoa(logins), "-duration", "1s",
			"-max-inflight", "8"}, common...)...)
		r := s.Logins
		if r == nil || s.Idle != nil || s.Mode != "logins" {
			t.Fatalf("summary %+v", s)
		}
		if r.Attempted != logins || r.Succeeded != logins || r.Failed != 0 || len(r.Errors) != 0 {
			t.Errorf("%+v, want all %d logins", r.batch, logins)
		}
		checkLatency(t, "login", r.LatencyMS)
		if r.TargetRate != logins || r.DurationSeconds != 1 || r.MaxInFlight != 8 {
			t.Errorf("settings echoed as %+v", r)
		}
		// The last start is due 0.95 s in: the run cannot be shorter, and
		// the rate is what succeeded over the run's wall time.
		if r.WallSeconds < 0.95 || math.Abs(r.Rate-float64(r.Succeeded)/r.WallSeconds) > 1e-9 {
			t.Errorf("wall %gs, rate %g for %d logins", r.WallSeconds, r.Rate, r.Succeeded)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		other, _ := writeKey(t)
		args := append([]string{"idle", "-sessions", "4", "-concurrency", "2", "-hold", "0s", "-probes", "0"}, common...)
		args = append(args, "-key", other) // the last -key wins
		s := runMode(t, args...)
		e := s.Idle.Establish
		if e.Attempted != 4 || e.Failed != 4 || e.Succeeded != 0 {
			t.Fatalf("establish %+v, want 4 failures", e)
		}
		if len(e.Errors) != 1 || e.Errors[0].Count != 4 || !strings.Contains(e.Errors[0].Error, "unable to authenticate") {
			t.Errorf("errors %+v, want one refusal counted 4 times", e.Errors)
		}
		if s.Idle.AliveAfterHold != 0 || s.Idle.Probes.Attempted != 0 {
			t.Errorf("nothing to hold, yet %+v", s.Idle)
		}
	})

	// Every session the runs opened was closed: the daemon lets go of them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		open := 0
		for _, l := range d.LogLines() {
			switch l["msg"] {
			case "login":
				if l["outcome"] == "ok" {
					open++
				}
			case "logout":
				open--
			}
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still open on the daemon after the runs", open)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

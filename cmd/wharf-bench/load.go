package main

// The loginrate and idle rows (issue 7, targets 4 and 5) drive
// cmd/wharf-load, a Go load generator, rather than the OpenSSH client: one
// sftp process per login cannot start 200 logins a second on two cores, nor
// hold 10,000 sessions. They run against a wharf of their own, since the
// table's main wharf keeps the default limits partners meet (20 connections
// per address, 10 sessions per user), which refuse such load by design.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wharf-sftp/wharf/internal/procstat"
)

const (
	// loadProbes fresh logins are timed while the idle row holds its
	// sessions, evenly spread over the hold.
	loadProbes = 20
	// loadConcurrency bounds the logins in progress while the idle row
	// opens its sessions.
	loadConcurrency = 64
	// loadMaxInFlight bounds the logins in progress in the loginrate row;
	// the load daemon admits twice as many unauthenticated connections.
	loadMaxInFlight = 256
	// loadHostKeyAlgo is pinned because x/crypto's client prefers RSA host
	// keys and wharf has one: each login would then cost wharf an
	// RSA-3072 signature, where the OpenSSH client of the other rows (and
	// sshd, which only has an ed25519 key here) costs an Ed25519 one.
	loadHostKeyAlgo = "ssh-ed25519"
)

// loadRunner builds wharf-load once per benchmark run and starts the load
// daemons.
type loadRunner struct {
	b        *bench
	sessions int    // what the idle row holds: -idle-sessions, or what fits (fitSessions)
	bin      string // built wharf-load; "" until first needed
	daemons  int    // load daemons started so far, to name their logs
}

// loadTests returns the selected rows driven by wharf-load.
func (b *bench) loadTests() []test {
	lr := &loadRunner{b: b}
	var ts []test
	if b.o.has("loginrate") {
		t := test{
			name: fmt.Sprintf("%d logins/s for %s, x/crypto clients, at most %d in flight",
				b.o.loginRate, b.o.loginDuration, loadMaxInFlight),
			unit: "logins/s achieved", cpuUnit: "ms/login",
		}
		t.measure = func(ctx context.Context, servers []*server) (result, error) {
			return lr.loginRate(ctx, servers, newResult(t))
		}
		ts = append(ts, t)
	}
	if b.o.has("idle") {
		lr.sessions = lr.fitSessions(b.o.idleSessions)
		t := test{
			name: fmt.Sprintf("%s idle SFTP sessions held, %d fresh logins meanwhile",
				thousands(lr.sessions), loadProbes),
			unit: "fresh login ms, p90", cpuUnit: "ms/session",
		}
		t.measure = func(ctx context.Context, servers []*server) (result, error) {
			return lr.idle(ctx, servers, newResult(t))
		}
		ts = append(ts, t)
	}
	return ts
}

// idleHold is how long the idle row holds its sessions.
func (lr *loadRunner) idleHold() time.Duration {
	if lr.b.o.quick {
		return 3 * time.Second
	}
	return 10 * time.Second
}

// idle opens -idle-sessions sessions on a freshly started load daemon per
// repetition (so that its RSS is theirs, not a previous repetition's
// garbage), holds them while timing fresh logins, and reports the daemon's
// memory and CPU for them. wharf only: OpenSSH would need three processes
// per session.
func (lr *loadRunner) idle(ctx context.Context, servers []*server, r result) (result, error) {
	for i := range lr.b.o.runs {
		s, err := lr.startDaemon(ctx, servers, lr.sessions+loadConcurrency+1)
		if err != nil {
			return r, err
		}
		err = lr.idleOnce(ctx, s, &r, i)
		s.stop()
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

func (lr *loadRunner) idleOnce(ctx context.Context, s *server, r *result, run int) error {
	n, pid := lr.sessions, s.pid()
	if err := lr.warmUp(ctx, s); err != nil {
		return err
	}
	fdsBefore, err := countFDs(pid)
	if err != nil {
		return err
	}
	if err := resetPeakRSS(pid); err != nil {
		return err
	}
	rssBefore, _, err := procstat.Mem(pid)
	if err != nil {
		return err
	}
	cpuBefore, err := lr.b.proc.treeCPU(ctx, pid)
	if err != nil {
		return err
	}
	hold := lr.idleHold()
	sum, err := lr.run(ctx, s, false, "idle",
		"-sessions", strconv.Itoa(n), "-concurrency", strconv.Itoa(loadConcurrency),
		"-hold", hold.String(), "-probes", strconv.Itoa(loadProbes), "-server-pid", strconv.Itoa(pid),
		"-timeout", (2*time.Minute + hold + time.Duration(n)*20*time.Millisecond).String())
	if err != nil {
		return err
	}
	// The teardown of every session is part of its cost.
	lr.waitClosed(ctx, s, fdsBefore)
	cpuAfter, err := lr.b.proc.treeCPU(ctx, pid)
	if err != nil {
		return err
	}
	_, hwm, err := procstat.Mem(pid)
	if err != nil {
		return err
	}
	if err := s.alive(); err != nil {
		return err
	}

	idle := sum.Idle
	if sum.Interrupted != "" || idle == nil {
		return fmt.Errorf("wharf-load idle did not finish (%s)", sum.Interrupted)
	}
	if idle.Establish.Succeeded != n || idle.AliveAfterHold != n ||
		idle.Probes.Succeeded != loadProbes {
		return fmt.Errorf("%d of %d sessions opened, %d still answering after the hold, %d of %d fresh logins succeeded; errors:\n%s%s",
			idle.Establish.Succeeded, n, idle.AliveAfterHold, idle.Probes.Succeeded, loadProbes,
			idle.Establish.errorLines(), idle.Probes.errorLines())
	}
	cpu := (cpuAfter - cpuBefore).Seconds() * 1e3 / float64(n)
	growth := float64(max(hwm-rssBefore, 0)) / (1 << 20)
	r.values[s.name] = append(r.values[s.name], idle.Probes.LatencyMS.P90)
	r.cpu[s.name] = append(r.cpu[s.name], cpu)
	r.rss[s.name] = append(r.rss[s.name], growth)
	fmt.Fprintf(lr.b.progress, "%-45s %-8s run %d/%d: %s sessions open in %.1fs; RSS %.1f MiB with all open, %.1f KiB per session above %.1f MiB at rest, peak %.1f MiB; fresh logins meanwhile: median %.1f ms, p90 %.1f ms, max %.1f ms; server CPU %s ms/session\n",
		"idle sessions", s.name, run+1, lr.b.o.runs, thousands(n), idle.EstablishSeconds,
		float64(idle.ServerRSS)/(1<<20), float64(idle.ServerRSS-rssBefore)/1024/float64(n), float64(rssBefore)/(1<<20),
		float64(hwm)/(1<<20), idle.Probes.LatencyMS.Median, idle.Probes.LatencyMS.P90, idle.Probes.LatencyMS.Max,
		formatFigure(cpu))
	return nil
}

// loginRate starts -login-rate logins per second for -login-duration
// against one load daemon and against the reference sshd, alternating
// which goes first, and reports the rate achieved and the server CPU per
// login that succeeded.
func (lr *loadRunner) loginRate(ctx context.Context, servers []*server, r result) (result, error) {
	w, err := lr.startDaemon(ctx, servers, loadMaxInFlight)
	if err != nil {
		return r, err
	}
	defer w.stop()
	if err := lr.warmUp(ctx, w); err != nil {
		return r, err
	}
	targets := []*server{w}
	for _, s := range servers {
		if s.name == "openssh" {
			targets = append(targets, s)
		}
	}
	for i := range lr.b.o.runs {
		order := targets
		if i%2 == 1 && len(targets) == 2 {
			order = []*server{targets[1], targets[0]}
		}
		for _, s := range order {
			if err := lr.loginRateOnce(ctx, s, &r, i); err != nil {
				return r, err
			}
		}
	}
	return r, nil
}

func (lr *loadRunner) loginRateOnce(ctx context.Context, s *server, r *result, run int) error {
	if err := s.alive(); err != nil {
		return err
	}
	fdsBefore := -1
	if s.sessionsInProcess {
		var err error
		if fdsBefore, err = countFDs(s.pid()); err != nil {
			return err
		}
	}
	cpuBefore, err := lr.b.proc.treeCPU(ctx, s.pid())
	if err != nil {
		return err
	}
	sum, err := lr.run(ctx, s, false, "logins",
		"-rate", strconv.Itoa(lr.b.o.loginRate), "-duration", lr.b.o.loginDuration.String(),
		"-max-inflight", strconv.Itoa(loadMaxInFlight),
		"-timeout", (2*time.Minute + 3*lr.b.o.loginDuration).String())
	if err != nil {
		return err
	}
	if fdsBefore >= 0 {
		lr.waitClosed(ctx, s, fdsBefore)
	}
	cpuAfter, err := lr.b.proc.treeCPU(ctx, s.pid())
	if err != nil {
		return err
	}
	l := sum.Logins
	if sum.Interrupted != "" || l == nil {
		return fmt.Errorf("wharf-load logins against %s did not finish (%s)", s.name, sum.Interrupted)
	}
	if l.Succeeded == 0 {
		return fmt.Errorf("no login to %s succeeded; errors:\n%s", s.name, l.errorLines())
	}
	// Refused connections cost the server little, and the logins that got
	// through are what it did the work for.
	cpu := (cpuAfter - cpuBefore).Seconds() * 1e3 / float64(l.Succeeded)
	r.values[s.name] = append(r.values[s.name], l.Rate)
	r.cpu[s.name] = append(r.cpu[s.name], cpu)
	// wharf-load's own lines above listed the errors, if any.
	fmt.Fprintf(lr.b.progress, "%-45s %-8s run %d/%d: %8.1f logins/s achieved (%d of %d succeeded), latency median %.1f ms, p99 %.1f ms, max %.1f ms; server CPU %s ms/login\n",
		"login rate", s.name, run+1, lr.b.o.runs, l.Rate, l.Succeeded, l.Attempted,
		l.LatencyMS.Median, l.LatencyMS.P99, l.LatencyMS.Max, formatFigure(cpu))
	return nil
}

// startDaemon starts a wharf for the load rows, admitting conns
// connections at once (and as many per address and per user) plus
// headroom.
func (lr *loadRunner) startDaemon(ctx context.Context, servers []*server, conns int) (*server, error) {
	bin := ""
	for _, s := range servers {
		if s.name == "wharf" {
			// The binary the table's main wharf runs: the one under test.
			bin = s.proc.cmd.Path
		}
	}
	if bin == "" {
		return nil, fmt.Errorf("no wharf among the servers to take the binary from")
	}
	need := daemonFDs(conns)
	if err := lr.ensureChildFDs(need); err != nil {
		return nil, err
	}
	ws, c := lr.b.ws, lr.b.client
	data, err := ws.mkdir("load", "data")
	if err != nil {
		return nil, err
	}
	// Shared by every load daemon: the RSA host key is generated once.
	state, err := ws.mkdir("load", "state")
	if err != nil {
		return nil, err
	}
	cfgPath := ws.path("load", "wharf.yaml")
	if err := os.WriteFile(cfgPath, []byte(loadConfig(state, data, c.user, c.publicKey, conns)), 0o600); err != nil {
		return nil, fmt.Errorf("write load wharf config: %w", err)
	}
	lr.daemons++
	p, err := startProcess("wharf (load)", ws.path("load", fmt.Sprintf("wharf-%d.log", lr.daemons)), bin, "serve", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	line, err := p.waitForLog(ctx, func(line string) bool {
		return strings.Contains(line, `"msg":"listening"`) && strings.Contains(line, `"proto":"sftp"`)
	})
	if err != nil {
		p.stop()
		return nil, err
	}
	port, err := listeningPort(line)
	if err != nil {
		p.stop()
		return nil, err
	}
	s := &server{name: "wharf", port: port, dataDir: data, proc: p, sessionsInProcess: true}
	if limit, err := openFilesLimit(s.pid()); err != nil || limit < need {
		p.stop()
		return nil, fmt.Errorf("load daemon's file descriptor limit is %d (%v), want %d", limit, err, need)
	}
	return s, nil
}

// daemonFDs is how many descriptors a load daemon holding conns
// connections needs: one per session (its connection; the sessions of one
// home share its os.Root, and the load is one user's), and some for the
// listener, logs and state.
func daemonFDs(conns int) uint64 { return uint64(conns) + fdSpare }

const fdSpare = 64

// fitSessions returns how many sessions the idle row can hold: want, if
// the load daemon may open the descriptors they need (the limit is raised
// when it can be), else as many as fit, with a warning, so that a machine
// with a low hard limit still gets a figure, under a row name that says
// what it is.
func (lr *loadRunner) fitSessions(want int) int {
	err := lr.ensureChildFDs(daemonFDs(want + loadConcurrency + 1))
	if err == nil {
		return want
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil || rl.Max < daemonFDs(loadConcurrency+2) {
		return want // the row fails at its start and says why
	}
	fit := int(rl.Max-fdSpare) - loadConcurrency - 1
	fmt.Fprintf(lr.b.progress, "warning: %v; the idle row holds %s sessions instead of %s\n", err, thousands(fit), thousands(want))
	return fit
}

// ensureChildFDs makes sure that the processes started from now on may
// open need descriptors. Go programs (wharf, wharf-load) raise their soft
// limit to the hard one by themselves, so the hard limit is what counts;
// only root may raise it. This process's own limit is raised, since
// children inherit it (and os/exec stops restoring the original soft limit
// in them once the program set it).
func (lr *loadRunner) ensureChildFDs(need uint64) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("read the file descriptor limit: %w", err)
	}
	if rl.Cur >= need {
		return nil
	}
	old := rl
	rl.Cur, rl.Max = need, max(rl.Max, need)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("the load daemon needs about %d file descriptors (one per session), "+
			"above the limit of %d (hard %d), which could not be raised (%w): raise the hard limit (ulimit -Hn as root) or lower -idle-sessions",
			need, old.Cur, old.Max, err)
	}
	fmt.Fprintf(lr.b.progress, "raised the file descriptor limit from %d (hard %d) to %d for the load daemon: one per session\n", old.Cur, old.Max, need)
	return nil
}

// openFilesLimit is the soft RLIMIT_NOFILE of pid, from /proc/PID/limits.
func openFilesLimit(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return 0, fmt.Errorf("read limits of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 && f[0] == "unlimited" {
				return math.MaxUint64, nil
			}
			if len(f) > 0 {
				return strconv.ParseUint(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("limits of pid %d: no \"Max open files\" line", pid)
}

// loadConfig is the main wharf's config (see startWharf) with limits that
// admit one user holding conns connections from one address, plus the
// load generator's logins in flight.
func loadConfig(state, data, user, publicKey string, conns int) string {
	limit := conns + 2*loadMaxInFlight + 100
	return fmt.Sprintf(`# written by wharf-bench for the loginrate and idle rows
state_dir: %s
shutdown_grace: 5s
log: {level: info, format: json}
sftp:
  listen: "127.0.0.1:0"
  host_keys: []
storage: {backend: local, root: %s}
limits:
  max_connections: %d
  max_connections_per_ip: %d
  max_connections_per_user: %d
  max_unauthenticated: %d
  idle_timeout: 30m
# Defender stays on, as an operator runs it, but cannot ban the generator.
defender: {allow: ["127.0.0.0/8", "::1/128"]}
users:
  - name: %s
    home: /
    public_keys: [%s]
`, strconv.Quote(state), strconv.Quote(data), limit, limit, limit, 2*loadMaxInFlight,
		strconv.Quote(user), strconv.Quote(publicKey))
}

// warmUp makes one login, so that what the daemon sets up on its first
// login is not counted to the load, and a broken setup fails fast.
func (lr *loadRunner) warmUp(ctx context.Context, s *server) error {
	sum, err := lr.run(ctx, s, true, "logins", "-rate", "1", "-duration", "1s", "-timeout", "1m")
	if err != nil {
		return err
	}
	if sum.Logins == nil || sum.Logins.Succeeded != 1 {
		var errs string
		if sum.Logins != nil {
			errs = sum.Logins.errorLines()
		}
		return fmt.Errorf("first login to the load daemon failed:\n%s", errs)
	}
	return nil
}

// waitClosed waits, up to 30 s, until the daemon holds no more file
// descriptors than before the run: it has then let every connection go.
func (lr *loadRunner) waitClosed(ctx context.Context, s *server, before int) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := countFDs(s.pid())
		if err != nil || n <= before {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			fmt.Fprintf(lr.b.progress, "%s still holds %d file descriptors more than before the run\n", s.name, n-before)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countFDs is the number of open file descriptors of pid.
func countFDs(pid int) (int, error) {
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0, fmt.Errorf("count file descriptors of pid %d: %w", pid, err)
	}
	return len(entries), nil
}

// build compiles cmd/wharf-load into the work dir, once per run.
func (lr *loadRunner) build(ctx context.Context) (string, error) {
	if lr.bin != "" {
		return lr.bin, nil
	}
	fmt.Fprintln(lr.b.progress, "building wharf-load ...")
	bin, err := buildCommand(ctx, lr.b.ws.path("bin"), "wharf-load")
	if err != nil {
		return "", err
	}
	lr.bin = bin
	return bin, nil
}

// loadSummary is the part of wharf-load's JSON summary the rows use.
type loadSummary struct {
	Interrupted string `json:"interrupted"`
	Idle        *struct {
		Establish        loadBatch `json:"establish"`
		EstablishSeconds float64   `json:"establish_seconds"`
		Probes           loadBatch `json:"probes"`
		AliveAfterHold   int       `json:"alive_after_hold"`
		ServerRSS        int64     `json:"server_rss_bytes"`
	} `json:"idle"`
	Logins *struct {
		loadBatch
		Rate float64 `json:"rate"`
	} `json:"logins"`
}

type loadBatch struct {
	Attempted int `json:"attempted"`
	Succeeded int `json:"succeeded"`
	LatencyMS struct {
		Median float64 `json:"median"`
		P90    float64 `json:"p90"`
		P99    float64 `json:"p99"`
		Max    float64 `json:"max"`
	} `json:"latency_ms"`
	Errors []struct {
		Error string `json:"error"`
		Count int    `json:"count"`
	} `json:"errors"`
}

func (b loadBatch) errorLines() string {
	var s strings.Builder
	for _, e := range b.Errors {
		fmt.Fprintf(&s, "    %d× %s\n", e.Count, e.Error)
	}
	return s.String()
}

// run runs wharf-load in mode against s as the benchmark's client user,
// shows its progress lines unless quiet, and returns its summary, its last
// line.
func (lr *loadRunner) run(ctx context.Context, s *server, quiet bool, mode string, args ...string) (*loadSummary, error) {
	bin, err := lr.build(ctx)
	if err != nil {
		return nil, err
	}
	full := []string{mode, "-addr", "127.0.0.1:" + strconv.Itoa(s.port), "-user", lr.b.client.user,
		"-key", lr.b.client.key, "-host-key-algos", loadHostKeyAlgo}
	if lr.b.o.kex != "" {
		full = append(full, "-kex", lr.b.o.kex)
	}
	cmd := exec.CommandContext(ctx, bin, append(full, args...)...)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("wharf-load %s: %w", mode, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start wharf-load %s: %w", mode, err)
	}
	var last string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "{") {
			last = line
			continue
		}
		if quiet {
			continue
		}
		fmt.Fprintf(lr.b.progress, "    %s: %s\n", s.name, line)
	}
	scanErr := sc.Err()
	if err := cmd.Wait(); err != nil && last == "" {
		return nil, fmt.Errorf("wharf-load %s against %s: %w\n%s", mode, s.name, err, strings.TrimSpace(errOut.String()))
	}
	if scanErr != nil {
		return nil, fmt.Errorf("read wharf-load output: %w", scanErr)
	}
	var sum loadSummary
	if err := json.Unmarshal([]byte(last), &sum); err != nil {
		return nil, fmt.Errorf("parse wharf-load summary %q: %w", last, err)
	}
	return &sum, nil
}

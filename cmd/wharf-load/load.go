package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"github.com/wharf-sftp/wharf/internal/procstat"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

const (
	// closeTimeout bounds a graceful close: a server that never answers
	// the channel close must not hang the end of a run.
	closeTimeout = 5 * time.Second
	// giveUpAfter failed logins with none succeeding means a setup
	// mistake (wrong key, wrong port), not load: stop dialling.
	giveUpAfter = 100
	// progressEvery is how often a long phase reports how far it got.
	progressEvery = 5 * time.Second
)

// loginer makes one login: TCP, SSH handshake, public-key authentication,
// the sftp subsystem and one request, as a partner's client does before
// its first transfer.
type loginer struct {
	addr    string
	cfg     *ssh.ClientConfig
	timeout time.Duration
	dialer  net.Dialer
}

func newLoginer(o options) (*loginer, error) {
	data, err := os.ReadFile(o.key)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("key %s is encrypted: wharf-load needs an unencrypted key", o.key)
		}
		return nil, fmt.Errorf("parse key %s: %w", o.key, err)
	}
	// The target is a loopback address (checkLoopback), a server on this
	// machine that the operator of the run started: nobody can sit between
	// the client and it, so any host key is accepted unless -known-hosts
	// asks for the check.
	hostKey := ssh.InsecureIgnoreHostKey()
	if o.knownHosts != "" {
		if hostKey, err = knownhosts.New(o.knownHosts); err != nil {
			return nil, fmt.Errorf("read known hosts: %w", err)
		}
	}
	algs, insecure := ssh.SupportedAlgorithms(), ssh.InsecureAlgorithms()
	for _, k := range o.kex {
		if !slices.Contains(algs.KeyExchanges, k) && !slices.Contains(insecure.KeyExchanges, k) {
			return nil, fmt.Errorf("-kex: x/crypto/ssh does not implement %q (it does: %v)", k, algs.KeyExchanges)
		}
	}
	for _, a := range o.hostKeyAlgos {
		if !slices.Contains(algs.HostKeys, a) && !slices.Contains(insecure.HostKeys, a) {
			return nil, fmt.Errorf("-host-key-algos: x/crypto/ssh does not implement %q (it does: %v)", a, algs.HostKeys)
		}
	}
	return &loginer{
		addr: o.addr,
		cfg: &ssh.ClientConfig{
			User:              o.user,
			Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback:   hostKey,
			HostKeyAlgorithms: o.hostKeyAlgos,
			Config:            ssh.Config{KeyExchanges: o.kex},
		},
		timeout: o.loginTimeout,
		// No TCP keepalives: on loopback a peer cannot vanish silently,
		// and ten thousand sockets' probes would only add to what the
		// server is measured doing.
		dialer: net.Dialer{KeepAlive: -1},
	}, nil
}

// held is a logged-in session.
type held struct {
	nc     net.Conn
	client *ssh.Client
	sftp   *sftp.Client
}

// close ends the session as OpenSSH's sftp does (EOF on the channel, wait
// for the server to close it, then disconnect), bounded by closeTimeout.
func (h *held) close() {
	_ = h.nc.SetDeadline(time.Now().Add(closeTimeout))
	_ = h.sftp.Close()
	_ = h.client.Close()
}

// alive reports whether the session still answers a request.
func (h *held) alive(timeout time.Duration) bool {
	_ = h.nc.SetDeadline(time.Now().Add(timeout))
	defer func() { _ = h.nc.SetDeadline(time.Time{}) }()
	_, err := h.sftp.Getwd()
	return err == nil
}

// errInterrupted marks a login cut short by the end of the run (-timeout
// or a signal): not the server's doing, so not counted as a failure.
var errInterrupted = errors.New("login interrupted by the end of the run")

// ended reports whether ctx is done or past its deadline: a dial bounded by
// ctx's deadline can fail just before ctx itself reports it.
func ended(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ctx.Err() != nil || (ok && !time.Now().Before(d))
}

// login logs in and returns the session and how long that took, from the
// dial to the answer to the first request. It gives up after l.timeout,
// and at once, with errInterrupted, when ctx ends.
func (l *loginer) login(ctx context.Context) (*held, time.Duration, error) {
	start := time.Now()
	nc, err := l.dialer.DialContext(ctx, "tcp", l.addr)
	if err != nil {
		if ended(ctx) {
			return nil, 0, errInterrupted
		}
		return nil, 0, fmt.Errorf("dial: %w", err)
	}
	_ = nc.SetDeadline(start.Add(l.timeout))
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	h, err := l.establish(nc)
	if !stop() { // ctx ended and closed nc: whatever err says, that is why
		if h != nil {
			h.close()
		}
		return nil, 0, errInterrupted
	}
	if err != nil {
		nc.Close()
		return nil, 0, err
	}
	elapsed := time.Since(start)
	_ = nc.SetDeadline(time.Time{})
	return h, elapsed, nil
}

func (l *loginer) establish(nc net.Conn) (*held, error) {
	c, chans, reqs, err := ssh.NewClientConn(nc, l.addr, l.cfg)
	if err != nil {
		return nil, fmt.Errorf("handshake and authentication: %w", err)
	}
	client := ssh.NewClient(c, chans, reqs)
	sc, err := sftp.NewClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("start sftp subsystem: %w", err)
	}
	if _, err := sc.Getwd(); err != nil {
		client.Close() // first, so that sc.Close need not wait for the server
		sc.Close()
		return nil, fmt.Errorf("first sftp request (realpath .): %w", err)
	}
	return &held{nc: nc, client: client, sftp: sc}, nil
}

// sleepUntil waits for t and reports false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// every calls f every period until the returned stop is called.
func every(period time.Duration, f func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// parallel runs f(i) for i in [0, n) on at most workers goroutines.
func parallel(n, workers int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}

// runIdle opens o.sessions sessions, holds them while timing fresh logins,
// checks they still answer and closes them.
func runIdle(ctx context.Context, o options, l *loginer, out io.Writer) idleResult {
	res := idleResult{Wanted: o.sessions}
	var (
		est      recorder
		mu       sync.Mutex
		sessions = make([]*held, 0, o.sessions)
	)
	defer func() {
		start := time.Now()
		parallel(len(sessions), o.concurrency, func(i int) { sessions[i].close() })
		if len(sessions) > 0 {
			fmt.Fprintf(out, "closed %d sessions in %s\n", len(sessions), time.Since(start).Round(time.Millisecond))
		}
	}()

	fmt.Fprintf(out, "opening %d sessions, %d logins at a time ...\n", o.sessions, o.concurrency)
	dialCtx, stopDialing := context.WithCancel(ctx)
	defer stopDialing()
	start := time.Now()
	stopProgress := every(progressEvery, func() {
		ok, failed := est.counts()
		fmt.Fprintf(out, "  %d/%d sessions open, %d failed, %s\n", ok, o.sessions, failed, time.Since(start).Round(time.Second))
	})
	parallel(o.sessions, o.concurrency, func(int) {
		if dialCtx.Err() != nil {
			return
		}
		h, d, err := l.login(dialCtx)
		if err != nil {
			if errors.Is(err, errInterrupted) {
				return
			}
			est.fail(err)
			if ok, failed := est.counts(); ok == 0 && failed >= giveUpAfter {
				stopDialing()
			}
			return
		}
		est.ok(d)
		mu.Lock()
		sessions = append(sessions, h)
		mu.Unlock()
	})
	stopProgress()
	gaveUp := dialCtx.Err() != nil && ctx.Err() == nil
	res.EstablishSeconds = time.Since(start).Seconds()
	res.Establish = est.batch()
	fmt.Fprintf(out, "%d of %d sessions open in %.1fs, %d failed; login latency %s\n%s",
		res.Establish.Succeeded, o.sessions, res.EstablishSeconds, res.Establish.Failed,
		res.Establish.LatencyMS, res.Establish.errorLines())
	if gaveUp {
		fmt.Fprintf(out, "gave up: the first %d logins all failed\n", giveUpAfter)
		return res
	}
	if ctx.Err() != nil || len(sessions) == 0 {
		return res
	}

	if o.serverPID > 0 {
		if rss, _, err := procstat.Mem(o.serverPID); err != nil {
			fmt.Fprintf(out, "server RSS not measured: %v\n", err)
		} else {
			res.ServerRSS = rss
			fmt.Fprintf(out, "server RSS with %d sessions open: %.1f MiB (%.1f KiB per session, its baseline included)\n",
				len(sessions), mib(rss), float64(rss)/1024/float64(len(sessions)))
		}
	}

	fmt.Fprintf(out, "holding %d sessions for %s, with %d fresh logins meanwhile ...\n", len(sessions), o.hold, o.probes)
	var probes recorder
	holdStart := time.Now()
	if o.probes > 0 {
		// Evenly spaced, one at a time: each sees the server with every
		// session held and no other login competing.
		interval := o.hold / time.Duration(o.probes)
		for i := range o.probes {
			if !sleepUntil(ctx, holdStart.Add(interval*time.Duration(i)+interval/2)) {
				break
			}
			h, d, err := l.login(ctx)
			if err != nil {
				if errors.Is(err, errInterrupted) {
					break
				}
				probes.fail(err)
				continue
			}
			probes.ok(d)
			h.close()
		}
	}
	sleepUntil(ctx, holdStart.Add(o.hold))
	res.HoldSeconds = time.Since(holdStart).Seconds()
	res.Probes = probes.batch()
	if o.probes > 0 {
		fmt.Fprintf(out, "fresh logins while holding: %d of %d succeeded; latency %s\n%s",
			res.Probes.Succeeded, res.Probes.Attempted, res.Probes.LatencyMS, res.Probes.errorLines())
	}
	if ctx.Err() != nil {
		return res
	}

	var alive atomic.Int64
	parallel(len(sessions), o.concurrency, func(i int) {
		if sessions[i].alive(o.loginTimeout) {
			alive.Add(1)
		}
	})
	res.AliveAfterHold = int(alive.Load())
	fmt.Fprintf(out, "after the hold, %d of %d sessions still answer\n", res.AliveAfterHold, len(sessions))
	if o.serverPID > 0 {
		if _, hwm, err := procstat.Mem(o.serverPID); err == nil {
			res.ServerPeakRSS = hwm
			fmt.Fprintf(out, "server peak RSS (VmHWM): %.1f MiB\n", mib(hwm))
		}
	}
	return res
}

// runLogins starts o.rate logins per second for o.duration, at most
// o.maxInFlight at once, each one login, one request and a close.
func runLogins(ctx context.Context, o options, l *loginer, out io.Writer) loginsResult {
	total := o.logins()
	res := loginsResult{TargetRate: o.rate, DurationSeconds: o.duration.Seconds(), MaxInFlight: o.maxInFlight}
	fmt.Fprintf(out, "starting %d logins, %g per second for %s, at most %d in flight ...\n", total, o.rate, o.duration, o.maxInFlight)
	var (
		rec      recorder
		wg       sync.WaitGroup
		started  atomic.Int64
		maxLag   time.Duration
		slots    = make(chan struct{}, o.maxInFlight)
		interval = float64(time.Second) / o.rate
	)
	start := time.Now()
	stopProgress := every(progressEvery, func() {
		ok, failed := rec.counts()
		fmt.Fprintf(out, "  %d started, %d succeeded, %d failed, %d in flight, %s\n",
			started.Load(), ok, failed, len(slots), time.Since(start).Round(time.Second))
	})
schedule:
	for i := range total {
		// Each start is due on a fixed schedule, not a fixed gap after the
		// previous one, so that a slow start does not lower the rate.
		due := start.Add(time.Duration(float64(i) * interval))
		if !sleepUntil(ctx, due) {
			break
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break schedule
		}
		maxLag = max(maxLag, time.Since(due))
		started.Add(1)
		wg.Go(func() {
			defer func() { <-slots }()
			h, d, err := l.login(ctx)
			if err != nil {
				if !errors.Is(err, errInterrupted) {
					rec.fail(err)
				}
				return
			}
			rec.ok(d)
			h.close()
		})
	}
	wg.Wait()
	stopProgress()
	wall := time.Since(start)
	res.batch = rec.batch()
	res.WallSeconds = wall.Seconds()
	res.Rate = float64(res.Succeeded) / wall.Seconds()
	res.MaxStartLagMS = ms(maxLag)
	fmt.Fprintf(out, "%d logins attempted, %d succeeded, %d failed in %.2fs: %.1f logins/s (target %g); latency %s; latest start %.1f ms behind schedule\n%s",
		res.Attempted, res.Succeeded, res.Failed, res.WallSeconds, res.Rate, o.rate, res.LatencyMS, res.MaxStartLagMS, res.errorLines())
	return res
}

// Command wharf-load is the load generator of issue 7's targets 4 and 5:
// many SSH logins per second, and thousands of authenticated SFTP sessions
// held open at once, from one process of x/crypto/ssh and pkg/sftp clients.
// It measures and prints; it judges nothing.
//
//	wharf-load idle   -addr 127.0.0.1:2022 -user demo -key var/demo_ed25519 [-sessions 10000] [-hold 30s] [-probes 20]
//	wharf-load logins -addr 127.0.0.1:2022 -user demo -key var/demo_ed25519 [-rate 200] [-duration 10s]
//
// idle opens -sessions sessions (each: TCP, SSH handshake, public-key
// login, sftp subsystem, one request), holds them for -hold while timing
// -probes fresh logins, checks that every held session still answers, and
// closes them. logins starts -rate logins per second for -duration, each
// one login, one request and a close, and times them.
//
// It only ever connects to a loopback address: it is meant for a daemon on
// the same machine, and thousands of logins per second at somebody else's
// server would be an attack. Every run is bounded in count (-sessions,
// -rate × -duration) and in time (-timeout).
//
// It prints progress lines and, as its last line on stdout, the whole
// outcome as one JSON object (see summary), which wharf-bench parses.
// Exit status: 0 when the run completed (failed logins are counted in the
// summary, not fatal), 1 on a setup error or a run cut short by -timeout
// or a signal (the summary is still printed), 2 on a usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wharf-sftp/wharf/internal/procstat"
)

// options are the command line; see parseArgs for their meaning.
type options struct {
	mode         string // "idle" or "logins"
	addr         string
	user         string
	key          string
	knownHosts   string
	kex          []string
	hostKeyAlgos []string
	loginTimeout time.Duration
	timeout      time.Duration
	serverPID    int

	// idle
	sessions    int
	concurrency int
	hold        time.Duration
	probes      int

	// logins
	rate        float64
	duration    time.Duration
	maxInFlight int
}

const (
	maxSessions = 100000
	maxRate     = 10000
	maxLogins   = 1000000 // -rate × -duration
)

func main() {
	o, err := parseArgs(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wharf-load:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wharf-load:", err)
		stop()
		os.Exit(1)
	}
	if s.Interrupted != "" {
		stop()
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: wharf-load idle|logins -addr 127.0.0.1:PORT -user NAME -key FILE [flags]

  idle    hold -sessions authenticated SFTP sessions open for -hold and time
          -probes fresh logins meanwhile (issue 7, target 5)
  logins  start -rate logins per second for -duration and time each (target 4)

flags:
`)
}

func parseArgs(args []string, errOut io.Writer) (options, error) {
	var o options
	var kex, hostKeyAlgos string
	fs := flag.NewFlagSet("wharf-load", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() { usage(errOut); fs.PrintDefaults() }
	fs.StringVar(&o.addr, "addr", "", "server address, host:port; the host must be a loopback IP literal (127.0.0.0/8 or ::1)")
	fs.StringVar(&o.user, "user", "", "user to log in as")
	fs.StringVar(&o.key, "key", "", "unencrypted private key file of the user (OpenSSH or PEM format)")
	fs.StringVar(&o.knownHosts, "known-hosts", "", "known_hosts file to check the server's host key against (default: accept any host key, loopback only)")
	fs.StringVar(&kex, "kex", "", "comma-separated key exchanges offered, in order (default: x/crypto's)")
	fs.StringVar(&hostKeyAlgos, "host-key-algos", "", "comma-separated host key algorithms accepted, in order (default: x/crypto's, which prefers RSA)")
	fs.DurationVar(&o.loginTimeout, "login-timeout", 30*time.Second, "bound on one login: dial, handshake, authentication, subsystem and first request")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound on the whole run; it stops by itself, closes everything and reports")
	fs.IntVar(&o.serverPID, "server-pid", 0, "pid of the server on this machine: idle reports its RSS with every session held (0: not measured)")
	fs.IntVar(&o.sessions, "sessions", 10000, "idle: sessions to open and hold")
	fs.IntVar(&o.concurrency, "concurrency", 64, "idle: logins in progress at once while opening the sessions")
	fs.DurationVar(&o.hold, "hold", 30*time.Second, "idle: how long to hold the sessions once all are open")
	fs.IntVar(&o.probes, "probes", 20, "idle: fresh logins timed while holding, spread evenly over -hold")
	fs.Float64Var(&o.rate, "rate", 200, "logins: logins started per second")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "logins: how long to keep starting them")
	fs.IntVar(&o.maxInFlight, "max-inflight", 256, "logins: bound on logins in progress at once; a start waits for a free slot")

	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fs.Usage()
			return o, flag.ErrHelp
		}
		return o, errors.New("missing mode: idle or logins (wharf-load -h for help)")
	}
	o.mode = args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	o.kex = splitList(kex)
	o.hostKeyAlgos = splitList(hostKeyAlgos)
	return o, o.validate()
}

func (o options) validate() error {
	switch {
	case o.mode != "idle" && o.mode != "logins":
		return fmt.Errorf("unknown mode %q: want idle or logins", o.mode)
	case o.addr == "":
		return errors.New("-addr is required")
	case o.user == "":
		return errors.New("-user is required")
	case o.key == "":
		return errors.New("-key is required")
	case o.loginTimeout <= 0:
		return errors.New("-login-timeout must be positive")
	case o.timeout <= 0:
		return errors.New("-timeout must be positive")
	case o.serverPID < 0:
		return errors.New("-server-pid must not be negative")
	}
	if err := checkLoopback(o.addr); err != nil {
		return err
	}
	switch o.mode {
	case "idle":
		switch {
		case o.sessions < 1 || o.sessions > maxSessions:
			return fmt.Errorf("-sessions must be in 1..%d", maxSessions)
		case o.concurrency < 1 || o.concurrency > 4096:
			return errors.New("-concurrency must be in 1..4096")
		case o.hold < 0:
			return errors.New("-hold must not be negative")
		case o.probes < 0 || o.probes > 10000:
			return errors.New("-probes must be in 0..10000")
		}
	case "logins":
		switch {
		case !(o.rate > 0 && o.rate <= maxRate): // also refuses NaN
			return fmt.Errorf("-rate must be in (0, %d]", maxRate)
		case o.duration <= 0:
			return errors.New("-duration must be positive")
		case o.maxInFlight < 1 || o.maxInFlight > 4096:
			return errors.New("-max-inflight must be in 1..4096")
		case o.rate*o.duration.Seconds() > maxLogins:
			return fmt.Errorf("-rate × -duration is %.0f logins; at most %d", o.rate*o.duration.Seconds(), maxLogins)
		case o.logins() < 1:
			return errors.New("-rate × -duration is less than one login")
		}
	}
	return nil
}

// logins is how many logins the logins mode starts.
func (o options) logins() int { return int(o.rate*o.duration.Seconds() + 0.5) }

// checkLoopback refuses any target but a loopback IP literal. Names are
// refused rather than resolved: what a name resolves to may change between
// this check and the thousands of dials that follow.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("-addr %q: port must be a number in 1..65535", addr)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("-addr %q: host must be a loopback IP address (127.0.0.0/8 or ::1), not a name", addr)
	}
	if !ip.Unmap().IsLoopback() {
		return fmt.Errorf("-addr %q: %s is not a loopback address; wharf-load only loads a server on this machine (127.0.0.0/8 or ::1)", addr, ip)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// run sets up the clients, runs the mode and prints the summary as the last
// line on out. A setup error returns before anything was dialled; after
// that, the summary is always printed.
func run(ctx context.Context, o options, out io.Writer) (summary, error) {
	need := fdsNeeded(o)
	soft, hard, err := ensureFDs(need)
	if err != nil {
		return summary{}, err
	}
	fmt.Fprintf(out, "wharf-load %s: %s as %s; file descriptors: limit %d (hard %d), need about %d\n",
		o.mode, o.addr, o.user, soft, hard, need)
	l, err := newLoginer(o)
	if err != nil {
		return summary{}, err
	}

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	s := summary{Mode: o.mode, Addr: o.addr, User: o.user, FDLimit: soft}
	switch o.mode {
	case "idle":
		r := runIdle(ctx, o, l, out)
		s.Idle = &r
	case "logins":
		r := runLogins(ctx, o, l, out)
		s.Logins = &r
	}
	s.Interrupted = interruption(ctx)
	if rss, _, err := procstat.Mem(0); err == nil {
		s.ClientRSS = rss
	}
	if s.Interrupted != "" {
		fmt.Fprintf(out, "run cut short: %s\n", s.Interrupted)
	}
	line, err := json.Marshal(s)
	if err != nil {
		return s, fmt.Errorf("encode summary: %w", err)
	}
	fmt.Fprintf(out, "%s\n", line)
	return s, nil
}

// interruption says why ctx ended early, or "" if it did not.
func interruption(ctx context.Context) string {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "timeout"
	case ctx.Err() != nil:
		return "signal"
	}
	return ""
}

// fdsNeeded is one descriptor per connection held at once, plus room for
// what the runtime and the standard streams hold.
func fdsNeeded(o options) uint64 {
	const spare = 32
	if o.mode == "idle" {
		// The sessions, the logins still in progress while they open,
		// one probe.
		return uint64(o.sessions+o.concurrency+1) + spare
	}
	return uint64(o.maxInFlight) + spare
}

// ensureFDs makes sure need descriptors fit under RLIMIT_NOFILE. Go already
// raises the soft limit to the hard one when a program starts (go1.19+);
// raising it here again covers a runtime where that was turned off, and
// checking it turns thousands of "too many open files" into one clear
// error before anything is dialled.
func ensureFDs(need uint64) (soft, hard uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, fmt.Errorf("read the file descriptor limit: %w", err)
	}
	if rl.Cur < need && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, 0, fmt.Errorf("raise the file descriptor limit to %d: %w", rl.Max, err)
		}
	}
	if rl.Cur < need {
		return rl.Cur, rl.Max, fmt.Errorf("need about %d file descriptors (one per connection), but the limit is %d (hard %d): raise the hard limit (ulimit -Hn as root, LimitNOFILE= in a unit) or ask for fewer connections", need, rl.Cur, rl.Max)
	}
	return rl.Cur, rl.Max, nil
}

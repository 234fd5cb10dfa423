package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
)

// server is one server under test, as the client and the verifier see it.
type server struct {
	name    string // "wharf", "openssh" or "vsftpd": the table's column
	port    int
	dataDir string // the on-disk directory a session starts in
	proc    *process
	// sessionsInProcess is true when sessions run inside proc itself (wharf)
	// rather than in processes it forks (sshd, vsftpd): proc's memory is
	// then theirs.
	sessionsInProcess bool
	// user and password log in over FTPS; SFTP logins use the client's key.
	user, password string
	// ftps is wharf's explicit FTPS listener when the ftps rows run: the
	// same process as the SFTP server it hangs on, another port. It is not
	// in the server list, so the SFTP rows and the load rows never see it.
	ftps *server
	// chachaPort is wharf's second SFTP listener, the only one offering
	// chacha20-poly1305@openssh.com: the default offer leaves it out (see
	// the README's "Choice of ciphers"), so forcing it on the main port
	// fails. Same process, so its CPU is counted the same way.
	chachaPort int
	// listener is set when proc is a subreaper (runSubreaper) around the
	// real listener, vsftpd, whose pid it is; 0 when proc is the server.
	listener int
}

func (s *server) stop() { s.proc.stop() }

// chachaCipher is the one cipher wharf serves on a listener of its own.
const chachaCipher = "chacha20-poly1305@openssh.com"

// forCipher is the server a client forcing cipher connects to: wharf's
// ChaCha20 listener for ChaCha20, else s itself.
func (s *server) forCipher(cipher string) *server {
	if cipher != chachaCipher || s.chachaPort == 0 {
		return s
	}
	c := *s
	c.port = s.chachaPort
	return &c
}

// pid is the server's main process: wharf, the listening sshd, or the
// subreaper around vsftpd.
func (s *server) pid() int { return s.proc.cmd.Process.Pid }

// cpuTime is the server's CPU time so far, every finished session's
// included (see treeCPU and reapedTreeCPU).
func (s *server) cpuTime(ctx context.Context, p procfs) (time.Duration, error) {
	if s.listener == 0 {
		return p.treeCPU(ctx, s.pid())
	}
	return p.reapedTreeCPU(ctx, s.pid(), s.listener)
}

// alive reports an error, with the end of the server's log, once it has died.
func (s *server) alive() error {
	select {
	case <-s.proc.exited:
		return fmt.Errorf("%s exited unexpectedly (%v); end of its log:\n%s", s.name, s.proc.err, s.proc.logTail(20))
	default:
		return nil
	}
}

// startServers starts wharf and the reference sshd, both serving the same
// kind of storage to a user named like the current OS user, so one sftp
// command line (but the port) works on both. When the ftps rows are
// selected, wharf also listens for FTPS (see server.ftps); their vsftpd is
// started by the rows themselves. On error nothing is left running.
func startServers(ctx context.Context, o options, ws *workspace, wharfBin string, c client) ([]*server, error) {
	var acct *ftpsAccount
	if o.has("ftps") {
		// Before anything starts: a missing vsftpd or curl should cost
		// seconds, not a run that fails at its last rows.
		var err error
		if acct, err = prepareFTPS(ctx); err != nil {
			return nil, err
		}
	}
	w, err := startWharf(ctx, ws, wharfBin, c, acct)
	if err != nil {
		return nil, err
	}
	s, err := startSSHD(ctx, ws, o.sshd, c)
	if err != nil {
		w.stop()
		return nil, err
	}
	return []*server{w, s}, nil
}

// startWharf starts wharf with an SFTP listener and, when acct is not nil,
// an explicit FTPS listener on which acct logs in (the result's ftps).
func startWharf(ctx context.Context, ws *workspace, bin string, c client, acct *ftpsAccount) (*server, error) {
	return startWharfVariant(ctx, ws, bin, c, acct, "wharf", "")
}

// startWharfVariant starts a wharf named name (the table's column, and its
// directory in the work dir) whose config is wharfConfig's plus extra,
// top-level YAML keys that wharfConfig does not write.
func startWharfVariant(ctx context.Context, ws *workspace, bin string, c client, acct *ftpsAccount, name, extra string) (*server, error) {
	dir := strings.ReplaceAll(name, " ", "-")
	data, err := ws.mkdir(dir, "data")
	if err != nil {
		return nil, err
	}
	state, err := ws.mkdir(dir, "state")
	if err != nil {
		return nil, err
	}
	cfgPath := ws.path(dir, "wharf.yaml")
	if err := os.WriteFile(cfgPath, []byte(wharfConfig(state, data, c, acct)+extra), 0o600); err != nil {
		return nil, fmt.Errorf("write %s config: %w", name, err)
	}

	p, err := startProcess(name, ws.path(dir, "wharf.log"), bin, "serve", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	port, err := waitForListener(ctx, p, "sftp")
	if err != nil {
		p.stop()
		return nil, err
	}
	w := &server{name: name, port: port, dataDir: data, proc: p, sessionsInProcess: true}
	line, err := p.waitForLog(ctx, func(line string) bool {
		return strings.Contains(line, `"msg":"listening"`) && strings.Contains(line, `"listener":"legacy"`)
	})
	if err == nil {
		w.chachaPort, err = listeningPort(line)
	}
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("wharf's chacha20 listener: %w", err)
	}
	if acct == nil {
		return w, nil
	}
	ftpsPort, err := waitForListener(ctx, p, "ftps")
	if err != nil {
		p.stop()
		return nil, err
	}
	w.ftps = &server{name: "wharf", port: ftpsPort, dataDir: data, proc: p, sessionsInProcess: true,
		user: acct.user, password: acct.password}
	return w, nil
}

// wharfConfig is the daemon's config: SFTP for the client's key and, with
// acct, an explicit FTPS listener for acct's password, both on loopback
// with wharf's defaults otherwise (generated host keys and self-signed
// ECDSA certificate, atomic uploads, TLS session reuse required on data
// connections).
func wharfConfig(state, data string, c client, acct *ftpsAccount) string {
	// Info level is what an operator runs: one log line per transfer is part
	// of the cost being measured.
	cfg := fmt.Sprintf(`# written by wharf-bench
state_dir: %s
shutdown_grace: 5s
log: {level: info, format: json}
sftp:
  listen: "127.0.0.1:0"
  host_keys: []
  legacy:
    listen: "127.0.0.1:0"
    ciphers: [%s]
    users: [%s]
storage: {backend: local, root: %s}
users:
  - name: %s
    home: /
    public_keys: [%s]
`, strconv.Quote(state), chachaCipher, strconv.Quote(c.user), strconv.Quote(data), strconv.Quote(c.user), strconv.Quote(c.publicKey))
	if acct == nil {
		return cfg
	}
	// The data port is left to the kernel ("" passive_ports): a fixed range
	// could collide with whatever else runs on the machine.
	return cfg + fmt.Sprintf(`  - name: %s
    home: /
    password_hash: %s
    protocols: [ftps]
ftps:
  listen: "127.0.0.1:0"
  passive_ports: ""
`, strconv.Quote(acct.user), strconv.Quote(acct.hash))
}

// waitForListener waits for wharf's `"msg":"listening"` line of proto
// ("sftp", or "ftps" for the explicit FTPS listener) and returns its port.
// isMainListener reports whether a wharf log line announces its main
// listener for proto. The ChaCha20 listener (sftp.legacy) also logs proto
// "sftp", and may do so first; FTPS has an implicit listener too.
func isMainListener(line, proto string) bool {
	return strings.Contains(line, `"msg":"listening"`) && strings.Contains(line, `"proto":"`+proto+`"`) &&
		!strings.Contains(line, `"listener":"legacy"`) &&
		(proto != "ftps" || strings.Contains(line, `"mode":"explicit"`))
}

func waitForListener(ctx context.Context, p *process, proto string) (int, error) {
	line, err := p.waitForLog(ctx, func(line string) bool { return isMainListener(line, proto) })
	if err != nil {
		return 0, err
	}
	return listeningPort(line)
}

// listeningPort parses the daemon's `{"msg":"listening",...,"addr":"127.0.0.1:PORT"}` line.
func listeningPort(line string) (int, error) {
	var rec struct {
		Addr string `json:"addr"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		return 0, fmt.Errorf("parse wharf listening line %q: %w", line, err)
	}
	_, portStr, err := net.SplitHostPort(rec.Addr)
	if err != nil {
		return 0, fmt.Errorf("parse wharf listening address %q: %w", rec.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return 0, fmt.Errorf("parse wharf listening port %q: %w", portStr, err)
	}
	return port, nil
}

func startSSHD(ctx context.Context, ws *workspace, sshd string, c client) (*server, error) {
	if _, err := os.Stat(sshd); err != nil {
		return nil, fmt.Errorf("reference sshd (Debian package openssh-server): %w", err)
	}
	dir, err := ws.mkdir("openssh")
	if err != nil {
		return nil, err
	}
	data, err := ws.mkdir("openssh", "data")
	if err != nil {
		return nil, err
	}
	hostKey := ws.path("openssh", "ssh_host_ed25519_key")
	if _, err := writeKeyPair(hostKey, "wharf-bench-sshd"); err != nil {
		return nil, fmt.Errorf("sshd host key: %w", err)
	}
	authKeys := ws.path("openssh", "authorized_keys")
	if err := os.WriteFile(authKeys, []byte(c.publicKey+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write authorized_keys: %w", err)
	}
	if err := ensurePrivsepDir(); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	for _, p := range []string{dir, data} {
		if strings.ContainsAny(p, " \t\"'") {
			return nil, fmt.Errorf("work dir %q: sshd_config paths must not contain spaces or quotes", p)
		}
	}

	cfgPath := ws.path("openssh", "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(sshdConfig(port, hostKey, authKeys, data)), 0o600); err != nil {
		return nil, fmt.Errorf("write sshd_config: %w", err)
	}
	p, err := startProcess("openssh", ws.path("openssh", "sshd.log"), sshd, "-D", "-e", "-f", cfgPath)
	if err != nil {
		return nil, err
	}
	if _, err := p.waitForLog(ctx, func(line string) bool {
		return strings.Contains(line, "Server listening on")
	}); err != nil {
		p.stop()
		return nil, err
	}
	return &server{name: "openssh", port: port, dataDir: data, proc: p}, nil
}

// sshdConfig is a reference sshd as close to wharf as sshd gets: loopback,
// public keys only, the in-process SFTP server starting in the data dir, no
// shell comfort and no forwarding.
func sshdConfig(port int, hostKey, authKeys, data string) string {
	rootLogin := "no"
	if os.Geteuid() == 0 {
		rootLogin = "prohibit-password"
	}
	lines := []string{
		"# written by wharf-bench",
		"ListenAddress 127.0.0.1:" + strconv.Itoa(port),
		"AddressFamily inet",
		"HostKey " + hostKey,
		"PidFile none",
		"StrictModes no",
		"UsePAM no",
		"AuthorizedKeysFile " + authKeys,
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin " + rootLogin,
		"AllowTcpForwarding no",
		"AllowAgentForwarding no",
		"X11Forwarding no",
		"PermitTTY no",
		"PrintMotd no",
		"UseDNS no",
		// The loginrate row keeps up to 256 logins in flight; the default
		// 10:30:100 would refuse most of them rather than measure them.
		"MaxStartups 512",
		"LogLevel INFO",
		"Subsystem sftp internal-sftp -d " + data,
	}
	return strings.Join(lines, "\n") + "\n"
}

// ensurePrivsepDir creates the directory sshd chroots its unprivileged child
// into. Debian's service unit creates it at boot; a machine where the sshd
// service never ran (a container, CI) lacks it, and sshd refuses to start.
func ensurePrivsepDir() error {
	const dir = "/run/sshd"
	if os.Geteuid() != 0 {
		return nil // an unprivileged sshd does not use it
	}
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create sshd privilege separation dir: %w", err)
	}
	return nil
}

// freePort asks the kernel for an unused loopback port. Another process may
// take it before sshd binds it; then sshd fails to start and says so.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// process is a long-running child in its own process group, so that a
// terminal's Ctrl-C reaches only the benchmark, which then stops it in order.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once Wait returned; err is then set
	err     error
}

func startProcess(name, logPath, bin string, args ...string) (*process, error) {
	return startProcessEnv(nil, name, logPath, bin, args...)
}

// startProcessEnv is startProcess with env added to the benchmark's own
// environment.
func startProcessEnv(env []string, name, logPath, bin string, args ...string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	return p, nil
}

// waitForLog polls the process's log until a line matches, the process
// exits, or startTimeout passes.
func (p *process) waitForLog(ctx context.Context, match func(string) bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if data, err := os.ReadFile(p.logPath); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if match(line) {
					return line, nil
				}
			}
		}
		select {
		case <-p.exited:
			return "", fmt.Errorf("%s exited at start-up (%v); end of its log:\n%s", p.name, p.err, p.logTail(20))
		case <-ctx.Done():
			return "", fmt.Errorf("%s not ready: %w; end of its log:\n%s", p.name, ctx.Err(), p.logTail(20))
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM to the process group, waits for a graceful exit, and
// kills the group after stopTimeout. It is safe to call more than once.
func (p *process) stop() {
	pgid := p.cmd.Process.Pid
	select {
	case <-p.exited:
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // reap stragglers, e.g. sshd's per-connection children
		return
	default:
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	}
}

func (p *process) logTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return tail(string(data), n)
}

// client is the one OpenSSH sftp invocation used against both servers: only
// the port differs.
type client struct {
	sftp       string
	key        string
	publicKey  string // authorized_keys line of key
	knownHosts string
	user       string
	kex        string
	extra      []string // -sftp-args
}

func newClient(o options, ws *workspace) (client, error) {
	if _, err := exec.LookPath(o.sftp); err != nil {
		return client{}, fmt.Errorf("sftp client (Debian package openssh-client): %w", err)
	}
	u, err := user.Current()
	if err != nil {
		return client{}, fmt.Errorf("current user: %w", err)
	}
	key := ws.path("client_ed25519")
	pub, err := writeKeyPair(key, "wharf-bench-client")
	if err != nil {
		return client{}, fmt.Errorf("client key: %w", err)
	}
	return client{
		sftp:       o.sftp,
		key:        key,
		publicKey:  pub,
		knownHosts: ws.path("known_hosts"),
		user:       u.Username,
		kex:        o.kex,
		extra:      o.sftpArgs,
	}, nil
}

// run executes one `sftp -b batch` session against s and returns its wall
// time: process start to exit, login included.
func (c client) run(ctx context.Context, s *server, batch string, timeout time.Duration, extra ...string) (timing, error) {
	t, _, err := c.runOutput(ctx, s, batch, timeout, extra...)
	return t, err
}

// timing is one client run: wall time from start to exit, and the CPU
// time (user + system) of the client process with every descendant it
// waited for (sftp waits for its ssh: wait4 reports both).
type timing struct{ wall, cpu time.Duration }

// runCommand runs cmd, which must have been made with exec.CommandContext,
// and times it.
func runCommand(cmd *exec.Cmd) (timing, error) {
	start := time.Now()
	err := cmd.Run()
	t := timing{wall: time.Since(start)}
	if cmd.ProcessState != nil {
		t.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return t, err
}

// runOutput is run that also returns what sftp printed.
func (c client) runOutput(ctx context.Context, s *server, batch string, timeout time.Duration, extra ...string) (timing, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := []string{
		"-b", batch,
		"-P", strconv.Itoa(s.port),
		"-i", c.key,
		"-F", "none",
		"-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=accept-new",
		"-o", "UserKnownHostsFile=" + c.knownHosts,
		"-o", "LogLevel=ERROR",
	}
	if c.kex != "" {
		args = append(args, "-o", "KexAlgorithms="+c.kex)
	}
	args = append(args, c.extra...)
	args = append(args, extra...)
	args = append(args, c.user+"@127.0.0.1")

	cmd := exec.CommandContext(ctx, c.sftp, args...)
	// Two pipes, not one: ssh, sftp's child, inherits stderr and makes it
	// non-blocking; on a pipe shared with stdout, sftp's stdio then meets
	// EAGAIN and silently drops output (a long listing loses entries).
	var out, errOut bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errOut
	// sftp runs ssh as its child: on timeout or Ctrl-C, kill both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	t, err := runCommand(cmd)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w after %s (%v)", ctxErr, t.wall.Round(time.Millisecond), err)
		}
		return timing{}, "", fmt.Errorf("sftp to %s: %w; output:\n%s\nerrors:\n%s", s.name, err, tail(out.String(), 15), tail(errOut.String(), 15))
	}
	return t, out.String(), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

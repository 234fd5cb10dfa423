package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"
)

// Behind a load balancer: a real HAProxy (Debian's, TCP mode,
// send-proxy-v2) on loopback in front of one wharf with
// proxy_protocol.trusted: [127.0.0.1/32]. HAProxy connects to wharf from
// 127.0.0.1; partners connect to HAProxy from other loopback addresses
// (127.0.0.2, 127.0.0.3), so the address wharf sees tells whether it read
// the header.

// haproxyStart bounds the wait from exec to HAProxy answering.
const haproxyStart = 10 * time.Second

// proxyTrusted is the proxy_protocol section of every daemon here: only
// 127.0.0.1, where HAProxy connects from, may send a header.
const proxyTrusted = "proxy_protocol:\n  trusted: [127.0.0.1/32]\n"

// haproxyBin finds haproxy, which Debian installs in /usr/sbin (not on
// every user's PATH). Missing: skipped, or failed when CI=true.
func haproxyBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	}
	missingClient(t, "haproxy not found (Debian package haproxy)")
	return ""
}

// freePortOn returns a port free on ip right now.
func freePortOn(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startHAProxy runs `haproxy -db` (foreground) with the proxies in body
// after a common header, and waits until it accepts. t.Cleanup stops it.
func startHAProxy(t *testing.T, body string) {
	t.Helper()
	bin := haproxyBin(t)
	ready := freePortOn(t, "127.0.0.1")
	// A frontend of its own answers the start-up poll, so that polling
	// opens no connection to wharf. It comes last and the poll waits for
	// an HTTP answer: HAProxy binds its frontends one after another, and
	// answers only once all are bound.
	cfg := `global
    maxconn 256

defaults
    mode tcp
    timeout connect 5s
    timeout client 2m
    timeout server 2m

` + body + fmt.Sprintf(`
frontend ready
    mode http
    bind 127.0.0.1:%d
    monitor-uri /ready
`, ready)
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// A config error reads better from -c than as a start-up timeout.
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg)
	}
	var h *bgClient
	t.Cleanup(func() { // after startBackground's own, which kills it
		if t.Failed() && h != nil {
			t.Logf("haproxy config:\n%s\nhaproxy output:\n%s", cfg, h.output())
		}
	})
	h = startBackground(t, nil, bin, "-db", "-f", path)
	deadline := time.Now().Add(haproxyStart)
	client := http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", ready))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-h.done:
			t.Fatalf("haproxy exited at start:\n%s", h.output())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy not accepting after %v:\n%s", haproxyStart, h.output())
		}
	}
}

// viaBalancer are the OpenSSH options to reach d through a balancer on
// 127.0.0.1:front from the address from: the host key is still d's.
func viaBalancer(d *daemon, front int, from string) []string {
	return []string{"-P", strconv.Itoa(front), "-o", "BindAddress=" + from, "-o", "HostKeyAlias=" + knownhosts.Normalize(d.Addr)}
}

// loginFrom matches the login line of user with outcome from address ip.
func loginFrom(user, outcome, ip string) func(map[string]any) bool {
	return func(l map[string]any) bool {
		remote, _ := l["remote"].(string)
		host, _, err := net.SplitHostPort(remote)
		return l["msg"] == "login" && l["user"] == user && l["outcome"] == outcome && err == nil && host == ip
	}
}

// TestProxyProtocolSFTP: logins through HAProxy show the partner's address
// in the log and the login event; a partner banned through the balancer is
// that partner, not the balancer nor the other partners; allowed_ips is
// checked against the partner; a header from an untrusted address, and a
// trusted connection without one, are refused.
func TestProxyProtocolSFTP(t *testing.T) {
	requireClient(t, "sshpass")
	sftp := requireClient(t, "sftp")
	alice := newUser(t, "alice")
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}, Extra: proxyTrusted +
		"defender:\n  threshold: 10\n  allow: []\n" + "audit_log:\n  path: " + audit + "\n"})
	d.WaitLog(t, logMatch("msg", "proxy protocol", "component", "proxyproto"), startTimeout)
	front := freePortOn(t, "127.0.0.1")
	startHAProxy(t, fmt.Sprintf(`frontend sftp
    bind 127.0.0.1:%d
    default_backend wharf

backend wharf
    server w1 %s send-proxy-v2 source 127.0.0.1 check inter 500ms
`, front, d.Addr))

	// A partner on 127.0.0.2 logs in through the balancer.
	args := append(append(viaBalancer(d, front, "127.0.0.2"), opensshArgs(d, alice)...), "-b", writeBatch(t, "pwd\n"), target(alice))
	if out, stderr, err := runCmd(t, clientTimeout, sftp, args...); err != nil {
		t.Fatalf("sftp through haproxy: %v\n%s\n%s", err, out, stderr)
	}
	d.WaitLog(t, loginFrom("alice", "ok", "127.0.0.2"), 10*time.Second)
	if ev := auditLogin(t, audit, "alice", "ok"); ev["remote"] != "127.0.0.2" {
		t.Errorf("login event remote = %v, want 127.0.0.2: %v", ev["remote"], ev)
	}

	// Ten wrong passwords through the balancer from 127.0.0.3 ban 127.0.0.3.
	sshpass := requireClient(t, "sshpass")
	wrong := "not-" + alice.Password
	for i := range 10 {
		args := append([]string{"-e", sftp}, viaBalancer(d, front, "127.0.0.3")...)
		args = append(append(args, opensshPasswordArgs(d)...), "-b", writeBatch(t, "pwd\n"), target(alice))
		if _, _, err := runCmdOpts(t, clientTimeout, cmdOpts{Env: []string{"SSHPASS=" + wrong}}, sshpass, args...); err == nil {
			t.Fatalf("wrong password %d accepted", i)
		}
	}
	d.WaitLog(t, logMatch("msg", "ban", "addr", "127.0.0.3"), 10*time.Second)
	mark := d.LogMark()
	args = append(append(viaBalancer(d, front, "127.0.0.3"), opensshArgs(d, alice)...), "-b", writeBatch(t, "pwd\n"), target(alice))
	if _, _, err := runCmd(t, clientTimeout, sftp, args...); err == nil {
		t.Fatal("banned partner logged in through the balancer with the right key")
	}
	args = append(append(viaBalancer(d, front, "127.0.0.2"), opensshArgs(d, alice)...), "-b", writeBatch(t, "pwd\n"), target(alice))
	if out, stderr, err := runCmd(t, clientTimeout, sftp, args...); err != nil {
		t.Fatalf("another partner after the ban: %v\n%s\n%s", err, out, stderr)
	}
	d.WaitLogSince(t, mark, loginFrom("alice", "ok", "127.0.0.2"), 10*time.Second)
	out, stderr, err := runCmd(t, 20*time.Second, wharfBin, "defender", "list", "--config", d.ConfigPath)
	if err != nil || !strings.Contains(out, "127.0.0.3") || strings.Contains(out, "127.0.0.1") || strings.Contains(out, "127.0.0.2") {
		t.Fatalf("defender list should hold 127.0.0.3 alone: %v\n%s\n%s", err, out, stderr)
	}

	// allowed_ips sees the partner too: 127.0.0.2 only, through the
	// balancer, admits 127.0.0.2 and refuses 127.0.0.6.
	mark = d.LogMark()
	setUserKeys(t, d.ConfigPath, "alice", map[string]any{"allowed_ips": []string{"127.0.0.2/32"}})
	d.WaitLogSince(t, mark, logMatch("msg", "config reloaded"), 10*time.Second)
	args = append(append(viaBalancer(d, front, "127.0.0.6"), opensshArgs(d, alice)...), "-b", writeBatch(t, "pwd\n"), target(alice))
	if _, _, err := runCmd(t, clientTimeout, sftp, args...); err == nil {
		t.Fatal("a partner outside allowed_ips logged in through the balancer")
	}
	d.WaitLogSince(t, mark, loginFrom("alice", "failed", "127.0.0.6"), 10*time.Second)
	args = append(append(viaBalancer(d, front, "127.0.0.2"), opensshArgs(d, alice)...), "-b", writeBatch(t, "pwd\n"), target(alice))
	if out, stderr, err := runCmd(t, clientTimeout, sftp, args...); err != nil {
		t.Fatalf("the partner in allowed_ips: %v\n%s\n%s", err, out, stderr)
	}
	d.WaitLogSince(t, mark, loginFrom("alice", "ok", "127.0.0.2"), 10*time.Second)

	// HAProxy's health checks (a v2 LOCAL header, then a close) went
	// through unremarked all along.
	checks := 0
	for _, l := range d.Logs() {
		if l["component"] == "proxyproto" && (l["level"] == "WARN" || l["level"] == "ERROR") {
			t.Errorf("PROXY protocol complaint before any bad header was sent: %v", l)
		}
		if r, _ := l["remote"].(string); l["msg"] == "proxied" && strings.HasPrefix(r, "127.0.0.1:") {
			checks++
		}
	}
	if checks == 0 {
		t.Error("no health check of HAProxy's reached wharf")
	}

	// A header straight from an untrusted address (127.0.0.4) claiming to
	// be someone else: refused, and logged with the sender's address.
	got := rawSession(t, "127.0.0.4", d.Addr, "PROXY TCP4 203.0.113.9 127.0.0.1 5555 22\r\nSSH-2.0-OpenSSH_9.2\r\n")
	if strings.Contains(got, "Protocol mismatch") || strings.Count(got, "\n") > 1 {
		t.Errorf("untrusted header got past the version exchange: %q", got)
	}
	l := d.WaitLog(t, logMatch("msg", "PROXY header from an address that is not a trusted load balancer", "level", "WARN", "reason", "untrusted"), 10*time.Second)
	if r, _ := l["remote"].(string); !strings.HasPrefix(r, "127.0.0.4:") {
		t.Errorf("refusal logged remote %q, want 127.0.0.4", r)
	}

	// The balancer's address without a header: refused before SSH starts.
	got = rawSession(t, "127.0.0.1", d.Addr, "SSH-2.0-OpenSSH_9.2\r\n")
	if got != "" {
		t.Errorf("a trusted connection without a header was answered %q", got)
	}
	d.WaitLog(t, logMatch("msg", "no PROXY header from a trusted address: does the load balancer send one (HAProxy: send-proxy-v2)?", "level", "ERROR"), 10*time.Second)
	for _, l := range d.Logs() {
		if r, _ := l["remote"].(string); strings.HasPrefix(r, "203.0.113.9") {
			t.Errorf("the untrusted header's address reached the log: %v", l)
		}
	}
}

// rawSession connects from the address from to addr, sends what, and
// returns what the server sent until it closed the connection (at most 10 s).
func rawSession(t *testing.T, from, addr, what string) string {
	t.Helper()
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := dialer.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, what); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(io.LimitReader(c, 4096))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection from %s still open after 10s; got %q", from, got)
	}
	return string(got)
}

// auditLogin returns the first login event of user with outcome in the
// audit log, waiting up to 10 s for it.
func auditLogin(t *testing.T, path, user, outcome string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if data, err := os.ReadFile(path); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				var ev map[string]any
				if json.Unmarshal(sc.Bytes(), &ev) == nil && ev["type"] == "login" && ev["user"] == user && ev["outcome"] == outcome {
					return ev
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s login event for %s in %s", outcome, user, path)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestProxyProtocolFTPS: a real FTPS client through HAProxy in each of the
// README's passive setups, logging in from 127.0.0.2 to a balancer on
// 127.0.0.5: an upload, and its download identical. Each data connection
// must pass ftpserverlib's check that it comes from the control
// connection's address, which for both is the partner's.
func TestProxyProtocolFTPS(t *testing.T) {
	t.Run("own address", testProxyFTPSOwnAddress)
	t.Run("forwarded range", testProxyFTPSForwardedRange)
}

// balancerFTPS starts a daemon for FTPS behind the PROXY protocol and a
// HAProxy on 127.0.0.5 for its explicit listener, plus extra proxies.
func balancerFTPS(t *testing.T, ftps string, extra func(f *ftpsDaemon) string) (*ftpsDaemon, *testUser, string) {
	t.Helper()
	alice := newUser(t, "alice")
	f := startFTPS(t, []*testUser{alice}, ftpsOpts{Extra: proxyTrusted, FTPS: ftps})
	front := net.JoinHostPort("127.0.0.5", strconv.Itoa(freePortOn(t, "127.0.0.5")))
	body := fmt.Sprintf(`frontend ftps
    bind %s
    default_backend wharf

backend wharf
    server w1 %s send-proxy-v2 source 127.0.0.1
`, front, f.Explicit)
	if extra != nil {
		body += extra(f)
	}
	startHAProxy(t, body)
	return f, alice, front
}

// The daemon announces its own address (public_host; here 127.0.0.1) and
// the partner's data connection goes straight to it, from the partner's
// address. curl with PASV (--disable-epsv) and the announced address
// (--no-ftp-skip-pasv-ip: curl ignores it by default).
func testProxyFTPSOwnAddress(t *testing.T) {
	f, alice, front := balancerFTPS(t, "  public_host: 127.0.0.1\n", nil)
	local := filepath.Join(t.TempDir(), "order.edi")
	sum := writeRandomFile(t, local, 3<<20)
	url := "ftp://" + front + "/order.edi"
	args := []string{"--interface", "127.0.0.2", "--disable-epsv", "--no-ftp-skip-pasv-ip"}
	curlFTPSOK(t, f, alice, append(args, "-T", local, url)...)
	back := filepath.Join(t.TempDir(), "back.edi")
	curlFTPSOK(t, f, alice, append(args, "-o", back, url)...)
	checkSum(t, "download through the balancer", back, sum)
	checkSum(t, "stored file", filepath.Join(f.HomeDir(alice), "order.edi"), sum)
	f.WaitLog(t, loginFrom("alice", "ok", "127.0.0.2"), 10*time.Second)
	noDataRefusals(t, f)
}

// The balancer forwards the daemon's passive range to it with a header on
// each data connection, and the daemon (no public_host) announces the
// address the partner connected to: the header's destination, the
// balancer. On one machine the balancer cannot hold the daemon's own
// passive ports (ftpserverlib binds them on the wildcard address first), so
// it listens on the range shifted by an offset and forwards each port to
// the unshifted one; the client adds the offset to the port it is
// announced, as if the balancer sat on a host of its own. Python's ftplib,
// which lets a test change that port, and resumes the TLS session as
// tls_session_reuse: required wants.
func testProxyFTPSForwardedRange(t *testing.T) {
	var offset int
	f, alice, front := balancerFTPS(t, "", func(f *ftpsDaemon) string {
		lo, hi := freePassiveRange(t, f.PassiveHi-f.PassiveLo+1)
		offset = lo - f.PassiveLo
		return fmt.Sprintf(`
frontend ftps_passive
    bind 127.0.0.5:%d-%d
    default_backend wharf_passive

backend wharf_passive
    server w1 127.0.0.1:%+d send-proxy-v2 source 127.0.0.1
`, lo, hi, -offset)
	})
	python := requireSystemPython(t)
	local := filepath.Join(t.TempDir(), "order.edi")
	sum := writeRandomFile(t, local, 3<<20)
	host, port, _ := net.SplitHostPort(front)
	env := cmdOpts{Env: []string{"WHARF_E2E_PASSWORD=" + alice.Password}}
	stdout, stderr, err := runCmdOpts(t, clientTimeout, env, python, "-c", ftplibThroughBalancer,
		host, port, strconv.Itoa(offset), alice.Name, local, "/order.edi")
	if err != nil {
		t.Fatalf("ftplib through the balancer: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, redact(stderr, alice.Password))
	}
	var res struct {
		PasvHosts []string `json:"pasv_hosts"`
		SHA256    string   `json:"sha256"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("ftplib printed %q: %v", stdout, err)
	}
	if res.SHA256 != sum {
		t.Errorf("download through the balancer has sha256 %s, want %s", res.SHA256, sum)
	}
	checkSum(t, "stored file", filepath.Join(f.HomeDir(alice), "order.edi"), sum)
	if len(res.PasvHosts) != 2 || res.PasvHosts[0] != "127.0.0.5" || res.PasvHosts[1] != "127.0.0.5" {
		t.Errorf("PASV announced %v, want the balancer's 127.0.0.5 twice", res.PasvHosts)
	}
	f.WaitLog(t, loginFrom("alice", "ok", "127.0.0.2"), 10*time.Second)
	noDataRefusals(t, f)
}

// noDataRefusals fails the test if ftpserverlib refused a data connection
// for its address.
func noDataRefusals(t *testing.T, f *ftpsDaemon) {
	t.Helper()
	for _, l := range f.Logs() {
		if l["msg"] == "Could not validate passive data connection requirement" {
			t.Errorf("a data connection failed the address check: %v", l)
		}
	}
}

// ftplibThroughBalancer uploads a file and downloads it again over FTPS,
// from 127.0.0.2, adding an offset to each announced passive port.
// Arguments: HOST PORT OFFSET USER LOCAL REMOTE; the password is in
// WHARF_E2E_PASSWORD. Prints {"pasv_hosts": [...], "sha256": ...}.
const ftplibThroughBalancer = `
import ftplib, hashlib, json, os, ssl, sys

host, port, offset, user, local, remote = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # self-signed; the other FTPS tests pin it
announced = []

class Client(ftplib.FTP_TLS):
    def makepasv(self):
        h, p = ftplib.parse227(self.sendcmd("PASV"))
        announced.append(h)
        return self.host, p + offset

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size

ftp = Client(context=ctx, timeout=30, source_address=("127.0.0.2", 0))
ftp.connect(host, port)
ftp.login(user, os.environ["WHARF_E2E_PASSWORD"])
ftp.prot_p()
with open(local, "rb") as f:
    ftp.storbinary("STOR " + remote, f)
h = hashlib.sha256()
ftp.retrbinary("RETR " + remote, h.update)
ftp.quit()
print(json.dumps({"pasv_hosts": announced, "sha256": h.hexdigest()}))
`

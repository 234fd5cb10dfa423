package ftpd_test

// Malformed FTP: raw command lines sent to a real daemon over explicit
// FTPS, each answered with an error reply or the end of that connection,
// while another user's session keeps transferring files and nothing lands
// outside the home.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
)

const replyTimeout = 10 * time.Second

// ctl is one raw control connection.
type ctl struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	conf *tls.Config
}

// clientTLS accepts the daemon's self-signed certificate; the session cache
// lets data connections resume the control connection's session, as the
// daemon requires by default.
func clientTLS() *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // a test certificate generated into t.TempDir()
		ServerName:         "wharf-test",
		ClientSessionCache: tls.NewLRUClientSessionCache(4),
		MinVersion:         tls.VersionTLS12,
	}
}

func dialCtl(t *testing.T, addr string) *ctl {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, replyTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &ctl{t: t, conn: conn, r: bufio.NewReader(conn), conf: clientTLS()}
	if code, text := c.reply(); code != 220 {
		t.Fatalf("greeting %d %q", code, text)
	}
	return c
}

// replyErr reads one reply, multi-line ones included.
func (c *ctl) replyErr() (int, string, error) {
	if err := c.conn.SetReadDeadline(time.Now().Add(replyTimeout)); err != nil {
		return 0, "", err
	}
	var lines []string
	code := 0
	for range 1000 {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, strings.Join(lines, "\n"), err
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 {
			continue
		}
		n, err := strconv.Atoi(line[:3])
		if err != nil {
			continue
		}
		if code == 0 {
			code = n
		}
		if n == code && line[3] == ' ' {
			return code, strings.Join(lines, "\n"), nil
		}
	}
	return 0, strings.Join(lines, "\n"), errors.New("reply longer than 1000 lines")
}

func (c *ctl) reply() (int, string) {
	c.t.Helper()
	code, text, err := c.replyErr()
	if err != nil {
		c.t.Fatalf("read reply: %v (so far %q)", err, text)
	}
	if strings.Contains(strings.ToLower(text), "internal error") {
		c.t.Errorf("reply reports an internal error (a recovered panic): %q", text)
	}
	return code, text
}

func (c *ctl) send(raw string) {
	c.t.Helper()
	if err := c.conn.SetWriteDeadline(time.Now().Add(replyTimeout)); err != nil {
		c.t.Fatal(err)
	}
	if _, err := io.WriteString(c.conn, raw); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// flood writes raw bytes the server may stop reading half way: it closes
// the connection on a line over 4096 bytes, and the rest of the write then
// fails, which is what the case expects.
func (c *ctl) flood(raw string) {
	_ = c.conn.SetWriteDeadline(time.Now().Add(replyTimeout))
	_, _ = io.WriteString(c.conn, raw)
}

func (c *ctl) cmd(line string) (int, string) {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.reply()
}

// must sends line and fails unless the reply code is want. what names the
// command, so that a password never reaches a message.
func (c *ctl) must(what, line string, want int) string {
	c.t.Helper()
	code, text := c.cmd(line)
	if code != want {
		c.t.Fatalf("%s: %d %q, want %d", what, code, text, want)
	}
	return text
}

// refused sends line and fails unless the reply is an error (4xx or 5xx;
// 5xx only when permanent is set).
func (c *ctl) refused(line string, permanent bool) string {
	c.t.Helper()
	code, text := c.cmd(line)
	low := 400
	if permanent {
		low = 500
	}
	if code < low || code > 599 {
		c.t.Fatalf("%.80q: %d %q, want an error reply (>= %d)", line, code, text, low)
	}
	return text
}

// expectClosed waits for the server to end the connection; replies sent
// before that must be errors.
func (c *ctl) expectClosed() {
	c.t.Helper()
	for range 10 {
		code, text, err := c.replyErr()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("connection still open after %v", replyTimeout)
			}
			return
		}
		if code < 400 {
			c.t.Fatalf("got %d %q, want the connection closed", code, text)
		}
	}
	c.t.Fatal("connection still answering")
}

func (c *ctl) authTLS() {
	c.t.Helper()
	c.must("AUTH TLS", "AUTH TLS", 234)
	tc := tls.Client(c.conn, c.conf)
	if err := tc.SetDeadline(time.Now().Add(replyTimeout)); err != nil {
		c.t.Fatal(err)
	}
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("tls handshake: %v", err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
}

func (c *ctl) login(user, password string) {
	c.t.Helper()
	c.must("USER", "USER "+user, 331)
	c.must("PASS", "PASS "+password, 230)
	c.must("PBSZ", "PBSZ 0", 200)
	c.must("PROT", "PROT P", 200)
}

var epsvPort = regexp.MustCompile(`\(\|\|\|(\d+)\|\)`)

// transfer runs one data command (STOR, RETR, LIST) on a passive TLS data
// connection: it uploads upload, or returns what the server sent, and the
// final reply. A refusal before the data connection opens is returned as is.
func (c *ctl) transfer(line string, upload []byte) ([]byte, int, string) {
	c.t.Helper()
	text := c.must("EPSV", "EPSV", 229)
	m := epsvPort.FindStringSubmatch(text)
	if m == nil {
		c.t.Fatalf("EPSV reply %q", text)
	}
	raw, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", m[1]), replyTimeout)
	if err != nil {
		c.t.Fatalf("dial data port: %v", err)
	}
	defer raw.Close()
	code, text := c.cmd(line)
	if code != 150 && code != 125 {
		return nil, code, text
	}
	dc := tls.Client(raw, c.conf)
	if err := dc.SetDeadline(time.Now().Add(replyTimeout)); err != nil {
		c.t.Fatal(err)
	}
	var got []byte
	if upload != nil {
		_, err = dc.Write(upload)
	} else {
		got, err = io.ReadAll(io.LimitReader(dc, 1<<20))
	}
	if err != nil {
		c.t.Logf("data connection: %v", err)
	}
	dc.Close()
	code, text = c.reply()
	return got, code, text
}

type badCase struct {
	name  string
	stage int // 0: plain TCP after the greeting, 1: after AUTH TLS, 2: logged in
	keep  bool
	run   func(t *testing.T, c *ctl, e *env)
}

// env is what cases need beyond their connection.
type env struct {
	d        *daemontest.Daemon
	backend  string
	password string
}

// home is alice's home on disk; "" for the memory backend.
func (e *env) home() string {
	if e.backend != "local" {
		return ""
	}
	return filepath.Join(e.d.Config.Storage.Root, "alice")
}

var nulNames = []string{"a\x00b", "\x00", "/../../etc/passwd\x00.txt", "dir\x00/x"}

var badCases = []badCase{
	{"garbage before TLS", 0, true, func(t *testing.T, c *ctl, _ *env) {
		c.refused("\x00\xff\xfe\x01 \x7f\x80garbage", true)
		c.refused("", true)
		c.refused(strings.Repeat("\xc3\x28", 500), true)
	}},
	{"overlong line before TLS", 0, false, func(t *testing.T, c *ctl, _ *env) {
		c.flood(strings.Repeat("A", 64<<10))
		c.expectClosed()
	}},
	{"USER before TLS", 0, false, func(t *testing.T, c *ctl, e *env) {
		c.refused("USER alice", true)
		c.expectClosed()
	}},
	{"commands before TLS", 0, true, func(t *testing.T, c *ctl, _ *env) {
		// (PBSZ and PROT are answered "200 Whatever" by ftpserverlib: harmless.)
		for _, line := range []string{"LIST", "RETR x", "STOR x", "EPSV", "PASV", "CWD /", "MKD x", "SIZE x"} {
			c.refused(line, true)
		}
	}},
	{"PASS before TLS", 0, false, func(t *testing.T, c *ctl, _ *env) {
		c.refused("PASS x", true)
		c.expectClosed()
	}},
	{"not TLS after AUTH TLS", 0, false, func(t *testing.T, c *ctl, _ *env) {
		c.must("AUTH TLS", "AUTH TLS", 234)
		c.flood(strings.Repeat("\x16\x03\x01\x00\x05hello", 100) + "\r\n")
		c.expectClosed()
	}},
	{"commands before login", 1, true, func(t *testing.T, c *ctl, e *env) {
		for _, line := range []string{
			"LIST", "NLST", "RETR hello", "STOR before-login", "APPE before-login", "MKD before-login",
			"RMD x", "DELE x", "RNFR x", "RNTO y", "SIZE x", "MDTM x", "MLST /", "MLSD", "CWD /etc",
			"CDUP", "PWD", "PASV", "EPSV", "PORT 127,0,0,1,0,21", "EPRT |1|127.0.0.1|21|", "REST 5",
			"HASH x", "SITE CHMOD 777 x", "STAT /", "ABOR",
		} {
			c.refused(line, true)
		}
		if home := e.home(); home != "" {
			for _, name := range []string{"before-login"} {
				if _, err := os.Stat(filepath.Join(home, name)); err == nil {
					t.Errorf("%s was created before login", name)
				}
			}
		}
	}},
	{"PASS without USER", 1, false, func(t *testing.T, c *ctl, e *env) {
		c.refused("PASS "+e.password, true)
		c.expectClosed()
	}},
	{"overlong line after TLS", 1, false, func(t *testing.T, c *ctl, _ *env) {
		c.flood(strings.Repeat("B", 64<<10))
		c.expectClosed()
	}},
	{"binary garbage after TLS", 1, true, func(t *testing.T, c *ctl, _ *env) {
		for i := range 256 {
			if i == '\r' || i == '\n' || 255-i == '\r' || 255-i == '\n' {
				continue // a line break would make two commands
			}
			c.refused(string([]byte{byte(i), 0xff, 0, byte(255 - i), '\t', 0x1b, '[', '2', 'J'}), true)
		}
	}},
	{"overlong line after login", 2, false, func(t *testing.T, c *ctl, _ *env) {
		c.flood("STOR " + strings.Repeat("C", 64<<10))
		c.expectClosed()
	}},
	// Active mode is off: ftpserverlib answers every PORT and EPRT, well
	// formed or not, with 421 "command is disabled" (a 4xx) and keeps the
	// connection.
	{"bad PORT and EPRT", 2, true, func(t *testing.T, c *ctl, _ *env) {
		for _, line := range []string{
			"PORT", "PORT 1,2,3", "PORT 999,999,999,999,999,999", "PORT 127,0,0,1,0,21", "PORT a,b,c,d,e,f",
			"PORT -1,-1,-1,-1,-1,-1", "PORT 10,0,0,1,300,1", "PORT " + strings.Repeat("1,", 1000) + "1",
			"EPRT", "EPRT |1|127.0.0.1|21|", "EPRT |2|::1|65536|", "EPRT garbage", "EPRT |9|x|y|",
			"EPRT ||||", "EPRT |1|127.0.0.1|-5|",
		} {
			c.refused(line, false)
		}
		c.must("NOOP", "NOOP", 200)
	}},
	{"huge and negative REST", 2, true, func(t *testing.T, c *ctl, e *env) {
		if _, code, text := c.transfer("STOR rest.bin", []byte("0123456789")); code != 226 {
			t.Fatalf("STOR: %d %q", code, text)
		}
		c.refused("REST 99999999999999999999", true)
		c.refused("REST abc", true)
		// Accepted as a number; the transfer that uses it must fail.
		for _, rest := range []string{"-5", "-9223372036854775808"} {
			c.must("REST", "REST "+rest, 350)
			if _, code, text := c.transfer("RETR rest.bin", nil); code < 400 {
				t.Fatalf("RETR after REST %s: %d %q", rest, code, text)
			}
		}
		offsets := []string{"9223372036854775807", "4611686018427387904"}
		if e.backend == "memory" {
			offsets = append(offsets, "1099511627776") // a hole memory would allocate
		}
		for _, rest := range offsets {
			c.must("REST", "REST "+rest, 350)
			if _, code, text := c.transfer("STOR rest.bin", []byte("x")); code < 400 {
				t.Fatalf("STOR after REST %s: %d %q", rest, code, text)
			}
		}
		c.must("SIZE", "SIZE rest.bin", 213)
		got, code, text := c.transfer("RETR rest.bin", nil)
		if code != 226 || string(got) != "0123456789" {
			t.Fatalf("RETR after the refused resumes: %d %q, data %q", code, text, got)
		}
	}},
	{"NUL bytes in paths", 2, true, func(t *testing.T, c *ctl, e *env) {
		for _, name := range nulNames {
			for _, verb := range []string{"MLST", "SIZE", "MDTM", "CWD", "MKD", "DELE", "RMD", "RNFR", "HASH"} {
				c.refused(verb+" "+name, false)
			}
			if _, code, text := c.transfer("RETR "+name, nil); code < 400 {
				t.Fatalf("RETR %q: %d %q", name, code, text)
			}
			if _, code, text := c.transfer("STOR "+name, []byte("nul")); code < 400 {
				t.Fatalf("STOR %q: %d %q", name, code, text)
			}
		}
		if _, code, text := c.transfer("STOR plain", []byte("plain")); code != 226 {
			t.Fatalf("STOR plain: %d %q", code, text)
		}
		c.must("RNFR", "RNFR plain", 350)
		c.refused("RNTO re\x00named", false)
		c.must("PWD", "PWD", 257)
	}},
	{"long names", 2, true, func(t *testing.T, c *ctl, _ *env) {
		long := strings.Repeat("n", 4000) // a line under the 4096-byte limit
		c.refused("MKD "+long, false)
		c.refused("CWD "+long, false)
		c.refused("SIZE "+long, false)
		if _, code, text := c.transfer("STOR "+long, []byte("x")); code < 400 {
			t.Fatalf("STOR with a 4000-byte name: %d %q", code, text)
		}
	}},
	{"paths that climb out", 2, true, func(t *testing.T, c *ctl, _ *env) {
		if _, code, text := c.transfer("STOR ../../../../climbed.txt", []byte("x")); code != 226 {
			t.Fatalf("STOR: %d %q", code, text)
		}
		c.must("CWD", "CWD ../../../..", 250)
		if text := c.must("PWD", "PWD", 257); !strings.Contains(text, `"/"`) {
			t.Fatalf("PWD after climbing: %q", text)
		}
		c.must("SIZE", "SIZE /climbed.txt", 213)
	}},
	{"transfers without a data connection", 2, true, func(t *testing.T, c *ctl, _ *env) {
		for _, line := range []string{"RETR nothing", "STOR nothing", "LIST", "MLSD"} {
			c.refused(line, false)
		}
	}},
}

func TestMalformedFTP(t *testing.T) {
	for _, backend := range []string{"local", "memory"} {
		t.Run(backend, func(t *testing.T) {
			before := runtime.NumGoroutine()
			d := runMalformedFTP(t, backend)
			daemontest.CheckGoroutines(t, before)
			logs := strings.ToLower(d.Logs())
			for _, s := range []string{"panic", "internal command handling error"} {
				if strings.Contains(logs, s) {
					t.Errorf("the daemon logged %q:\n%s", s, d.Logs())
				}
			}
		})
	}
}

func runMalformedFTP(t *testing.T, backend string) *daemontest.Daemon {
	const alicePW, bobPW = "alice-secret-pw", "bob-secret-pw"
	cfg := config.Default()
	cfg.Storage.Backend = backend
	cfg.FTPS.Listen = "127.0.0.1:0"
	cfg.FTPS.PassivePorts = ""
	// Failed logins are part of the bad input; a ban of 127.0.0.1 would
	// only test the defender.
	cfg.Defender.Enabled = false
	for _, u := range []struct{ name, pw string }{{"alice", alicePW}, {"bob", bobPW}} {
		h, err := auth.HashPassword(u.pw)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Users = append(cfg.Users, config.User{Name: u.name, Home: "/" + u.name, PasswordHash: h})
	}
	d := daemontest.Start(t, cfg)
	addr := d.FTPSAddr().String()
	e := &env{d: d, backend: backend, password: alicePW}

	bob := dialCtl(t, addr)
	bob.authTLS()
	bob.login("bob", bobPW)

	for i, c := range badCases {
		t.Run(c.name, func(t *testing.T) {
			a := dialCtl(t, addr)
			if c.stage >= 1 {
				a.authTLS()
			}
			if c.stage >= 2 {
				a.login("alice", alicePW)
			}
			c.run(t, a, e)
			if c.keep {
				a.must("NOOP", "NOOP", 200)
			}
			a.conn.Close()

			// Another user's session is unaffected.
			data := []byte(fmt.Sprintf("bob's file after case %d", i))
			name := fmt.Sprintf("bob-%d", i)
			if _, code, text := bob.transfer("STOR "+name, data); code != 226 {
				t.Fatalf("bob STOR: %d %q", code, text)
			}
			got, code, text := bob.transfer("RETR "+name, nil)
			if code != 226 || !bytes.Equal(got, data) {
				t.Fatalf("bob RETR: %d %q, data %q", code, text, got)
			}
		})
	}

	if backend == "local" {
		daemontest.CheckConfined(t, d.Config.Storage.Root, "alice", "bob")
		if _, err := os.Stat(filepath.Join(d.Config.Storage.Root, "alice", "climbed.txt")); err != nil {
			t.Errorf("STOR ../../climbed.txt did not land in the home: %v", err)
		}
	}
	bob.must("QUIT", "QUIT", 221)
	bob.conn.Close()
	if err := d.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if strings.Contains(d.Logs(), alicePW) || strings.Contains(d.Logs(), bobPW) {
		t.Errorf("a password reached the log")
	}
	return d
}

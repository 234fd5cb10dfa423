package main

// The ftps rows: curl uploads and downloads the big file over explicit FTPS
// to wharf's FTPS listener and to a vsftpd the benchmark starts itself.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wharf-sftp/wharf/internal/ftpd"
	"golang.org/x/crypto/bcrypt"
)

const (
	vsftpdBin = "/usr/sbin/vsftpd"
	// ftpsUser logs in on both servers. For vsftpd it is a system account:
	// vsftpd logs local users in through PAM and runs their session under
	// their uid, and a dedicated account is the one thing it can do that to
	// without touching anybody's files.
	ftpsUser = "wharfbench"
	// ftpsUserComment marks the account as the benchmark's own.
	ftpsUserComment = "wharf-bench vsftpd user"
	// ftpsHome is its home: empty, root's, and never written; vsftpd
	// only changes into it before it chroots to local_root.
	ftpsHome = "/var/lib/wharf-bench"
	// vsftpdPAMService is a PAM service of the benchmark's own. Debian's
	// "vsftpd" service also requires a shell listed in /etc/shells
	// (pam_shells) and consults /etc/ftpusers: passing it would mean giving
	// the account a login shell.
	vsftpdPAMService = "wharf-bench-vsftpd"
	vsftpdPAMFile    = "/etc/pam.d/" + vsftpdPAMService
	generatedHeader  = "# written by wharf-bench"
)

// vsftpdPAM checks the password with pam_unix, as Debian's own service
// does, and nothing else.
const vsftpdPAM = generatedHeader + ` for its vsftpd, used only while the benchmark runs
auth	required	pam_unix.so
account	required	pam_unix.so
`

// ftpsAccount is the one FTPS login, the same on both servers.
type ftpsAccount struct {
	user, password string
	hash           string // for wharf's config
}

// prepareFTPS checks what the ftps rows need and creates their account.
func prepareFTPS(ctx context.Context) (*ftpsAccount, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the ftps rows need root: vsftpd logs a system user in through PAM (leave ftps out of -rows to run without)")
	}
	if _, err := os.Stat(vsftpdBin); err != nil {
		return nil, fmt.Errorf("the ftps rows need vsftpd (apt-get install vsftpd): %w", err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		return nil, fmt.Errorf("the ftps rows need curl (apt-get install curl): %w", err)
	}
	if err := ensureSystemUser(ctx, ftpsUser); err != nil {
		return nil, err
	}
	if err := writePAMService(vsftpdPAMFile); err != nil {
		return nil, err
	}
	return newFTPSAccount()
}

// newFTPSAccount makes a fresh password for this run only.
func newFTPSAccount() (*ftpsAccount, error) {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("ftps password: %w", err)
	}
	password := hex.EncodeToString(raw)
	// The cheapest cost wharf accepts, about a millisecond: each transfer
	// logs in once, and a login's KDF is not what the rows compare.
	// vsftpd's pam_unix checks the yescrypt hash chpasswd writes on Debian
	// 12, about 15 ms: under 0.02 s per GB either way.
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return nil, fmt.Errorf("hash ftps password: %w", err)
	}
	return &ftpsAccount{user: ftpsUser, password: password, hash: string(hash)}, nil
}

// ensureSystemUser makes sure an account for vsftpd's sessions exists,
// with no shell and with a home that exists: vsftpd changes into the
// user's home at login, before local_root, and a missing home ends every
// session right after the password with "500 OOPS: cannot change
// directory" (which curl, mid-TLS, reports as "wrong version number").
// An account this benchmark created before with the home /nonexistent is
// moved to ftpsHome; anybody else's account is left alone.
func ensureSystemUser(ctx context.Context, name string) error {
	if err := os.MkdirAll(ftpsHome, 0o755); err != nil {
		return fmt.Errorf("home of the ftps rows' system user: %w", err)
	}
	u, err := user.Lookup(name)
	if err != nil {
		if _, err := commandOutput(ctx, "useradd", "--system", "--no-create-home", "--home-dir", ftpsHome,
			"--shell", "/usr/sbin/nologin", "--comment", ftpsUserComment, name); err != nil {
			return fmt.Errorf("create the ftps rows' system user: %w", err)
		}
		return nil
	}
	if fi, err := os.Stat(u.HomeDir); err == nil && fi.IsDir() {
		return nil
	}
	if u.Name != ftpsUserComment {
		return fmt.Errorf("user %s exists, not made by wharf-bench, and its home %q is no directory: vsftpd would refuse its sessions (500 OOPS: cannot change directory); give it a home or remove it", name, u.HomeDir)
	}
	if _, err := commandOutput(ctx, "usermod", "--home", ftpsHome, name); err != nil {
		return fmt.Errorf("give the ftps rows' system user a home: %w", err)
	}
	return nil
}

// writePAMService installs the benchmark's PAM service, refusing to
// overwrite a file it did not write.
func writePAMService(path string) error {
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, []byte(vsftpdPAM)):
		return nil
	case err == nil && !bytes.HasPrefix(old, []byte(generatedHeader)):
		return fmt.Errorf("%s exists and was not written by wharf-bench; not overwriting it", path)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("read PAM service: %w", err)
	}
	if err := os.WriteFile(path, []byte(vsftpdPAM), 0o644); err != nil {
		return fmt.Errorf("write PAM service: %w", err)
	}
	return nil
}

// setSystemPassword gives the account its password for as long as vsftpd
// runs; lockSystemPassword takes it away again.
func setSystemPassword(ctx context.Context, name, password string) error {
	cmd := exec.CommandContext(ctx, "chpasswd")
	cmd.Stdin = strings.NewReader(name + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("set %s's password with chpasswd: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func lockSystemPassword(ctx context.Context, name string) error {
	if _, err := commandOutput(ctx, "usermod", "--lock", name); err != nil {
		return fmt.Errorf("lock %s's password: %w", name, err)
	}
	return nil
}

// vsftpdSetup is what vsftpdConfig needs to know.
type vsftpdSetup struct {
	port                   int
	data, empty            string // local_root, secure_chroot_dir
	certFile, keyFile, pam string
}

// vsftpdConfig is Debian's vsftpd reduced to what the benchmark needs:
// local users only, on loopback, TLS required for logins and data, the
// session chrooted into the data dir, no transfer log.
func vsftpdConfig(s vsftpdSetup) (string, error) {
	for _, p := range []string{s.data, s.empty, s.certFile, s.keyFile, s.pam} {
		if strings.ContainsAny(p, "\n\r") || strings.TrimSpace(p) != p || p == "" {
			return "", fmt.Errorf("vsftpd config value %q: empty, or with a line break or surrounding spaces", p)
		}
	}
	lines := []string{
		generatedHeader,
		"listen=YES",
		"listen_ipv6=NO",
		"listen_address=127.0.0.1",
		"listen_port=" + strconv.Itoa(s.port),
		"background=NO",
		"anonymous_enable=NO",
		"local_enable=YES",
		"write_enable=YES",
		"local_umask=077",
		"pam_service_name=" + s.pam,
		"local_root=" + s.data,
		"chroot_local_user=YES",
		// The data dir belongs to the user, like a wharf home: vsftpd
		// otherwise refuses a chroot its user can write to.
		"allow_writeable_chroot=YES",
		"secure_chroot_dir=" + s.empty,
		"ssl_enable=YES",
		"rsa_cert_file=" + s.certFile,
		"rsa_private_key_file=" + s.keyFile,
		// Debian builds vsftpd with a single RSA suite for TLS 1.2 and below,
		// which an ECDSA certificate cannot serve. TLS 1.3 suites do not
		// depend on this list; curl and OpenSSL 3 negotiate TLS 1.3.
		"ssl_ciphers=HIGH",
		"force_local_logins_ssl=YES",
		"force_local_data_ssl=YES",
		// Required, as wharf requires it by default (tls_session_reuse):
		// both servers then do a resumed handshake per data connection.
		// vsftpd's check is known to reject some clients; curl 7.88 with
		// OpenSSL 3.0 resumes its TLS 1.3 session and passes.
		"require_ssl_reuse=YES",
		"pasv_enable=YES",
		"pasv_address=127.0.0.1",
		// No pasv_min_port/pasv_max_port: vsftpd then binds a random port
		// and retries one in use, where a fixed range could collide with
		// whatever else runs here. wharf's passive_ports is "" likewise.
		"port_enable=NO",
		"connect_from_port_20=NO",
		"xferlog_enable=NO",
		"dual_log_enable=NO",
		"syslog_enable=NO",
		"use_localtime=NO",
		// seccomp_sandbox stays at its default (YES): Debian 12's vsftpd
		// runs with it in this container. A "500 OOPS" from curl after
		// login would be the sign to set it to NO on another kernel or
		// container runtime.
	}
	return strings.Join(lines, "\n") + "\n", nil
}

// startVsftpd starts vsftpd under a subreaper (see reapedTreeCPU), with a
// fresh self-signed certificate, serving the data dir to acct.
func startVsftpd(ctx context.Context, ws *workspace, acct *ftpsAccount) (*server, error) {
	dir, err := ws.mkdir("vsftpd")
	if err != nil {
		return nil, err
	}
	data, err := ws.mkdir("vsftpd", "data")
	if err != nil {
		return nil, err
	}
	empty, err := ws.mkdir("vsftpd", "empty")
	if err != nil {
		return nil, err
	}
	u, err := user.Lookup(acct.user)
	if err != nil {
		return nil, fmt.Errorf("ftps user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The session runs as the user and changes into the data dir as the
	// user: every directory above it must let others through. Only the
	// names beneath are exposed, not listings (0711).
	for _, d := range []string{ws.dir, dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, fmt.Errorf("open %s to vsftpd's user: %w", d, err)
		}
	}
	if err := os.Chown(data, uid, gid); err != nil {
		return nil, fmt.Errorf("give vsftpd's data dir to %s: %w", acct.user, err)
	}
	if err := os.Chmod(empty, 0o555); err != nil {
		return nil, fmt.Errorf("vsftpd's secure_chroot_dir: %w", err)
	}
	if err := checkTraversable(data); err != nil {
		return nil, err
	}
	setup := vsftpdSetup{data: data, empty: empty, pam: vsftpdPAMService,
		certFile: ws.path("vsftpd", "cert.pem"), keyFile: ws.path("vsftpd", "key.pem")}
	// The kind of certificate wharf makes for itself: both servers sign
	// the same way.
	if err := ftpd.EnsureSelfSigned(setup.certFile, setup.keyFile); err != nil {
		return nil, err
	}
	if setup.port, err = freePort(); err != nil {
		return nil, err
	}
	cfg, err := vsftpdConfig(setup)
	if err != nil {
		return nil, err
	}
	// vsftpd, run as root, insists that its config belongs to root.
	cfgPath := ws.path("vsftpd", "vsftpd.conf")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, fmt.Errorf("write vsftpd config: %w", err)
	}
	if err := setSystemPassword(ctx, acct.user, acct.password); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the benchmark's binary for the subreaper: %w", err)
	}
	p, err := startProcessEnv([]string{subreaperEnv + "=1"}, "vsftpd", ws.path("vsftpd", "vsftpd.log"), self, vsftpdBin, cfgPath)
	if err != nil {
		return nil, err
	}
	v := &server{name: "vsftpd", port: setup.port, dataDir: data, proc: p, user: acct.user, password: acct.password}
	line, err := p.waitForLog(ctx, func(line string) bool { return strings.HasPrefix(line, subreaperStarted) })
	if err == nil {
		v.listener, err = strconv.Atoi(strings.TrimPrefix(line, subreaperStarted))
	}
	if err == nil {
		err = waitForBanner(ctx, p, setup.port)
	}
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("start vsftpd: %w", err)
	}
	return v, nil
}

// checkTraversable reports an error unless every directory above dir lets
// other users through: vsftpd's session would fail with a bare "500 OOPS".
func checkTraversable(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("check vsftpd's path: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("vsftpd's user cannot reach %s through %s (mode %v): pass a -dir every user may traverse, such as /dev/shm or /tmp", dir, d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// waitForBanner waits until vsftpd answers on port: it says nothing in its
// log when it is ready.
func waitForBanner(ctx context.Context, p *process, port int) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for {
		line, err := readBanner(ctx, addr)
		if err == nil {
			if strings.HasPrefix(line, "220") {
				return nil
			}
			return fmt.Errorf("vsftpd greets with %q; end of its log:\n%s", line, p.logTail(20))
		}
		select {
		case <-p.exited:
			return fmt.Errorf("vsftpd exited at start-up (%v); end of its log:\n%s", p.err, p.logTail(20))
		case <-ctx.Done():
			return fmt.Errorf("vsftpd not ready: %w (%v); end of its log:\n%s", ctx.Err(), err, p.logTail(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func readBanner(ctx context.Context, addr string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	_, _ = c.Write([]byte("QUIT\r\n"))
	return strings.TrimSpace(line), nil
}

// ftpsTests are the ftps rows: one upload and one download of the big
// file, each against wharf's FTPS listener and a vsftpd of its own.
func (b *bench) ftpsTests() []test {
	if !b.o.has("ftps") {
		return nil
	}
	size := formatBytes(int64(b.o.size))
	var ts []test
	for _, up := range []bool{true, false} {
		dir := "download"
		if up {
			dir = "upload"
		}
		t := test{name: "FTPS " + dir + " " + size + ", curl", unit: "MB/s", cpuUnit: "s/GB",
			cpuWork: float64(b.o.size) / 1e9}
		t.measure = func(ctx context.Context, servers []*server) (result, error) {
			return b.measureFTPS(ctx, servers, t, up)
		}
		ts = append(ts, t)
	}
	return ts
}

// measureFTPS runs t's transfer on wharf's FTPS listener and on a vsftpd
// it starts, through measureRuns as the SFTP rows do; the download row then
// measures curl's ceiling as many times.
func (b *bench) measureFTPS(ctx context.Context, servers []*server, t test, upload bool) (result, error) {
	r := newResult(t)
	var w *server
	for _, s := range servers {
		if s.ftps != nil {
			w = s.ftps
		}
	}
	if w == nil {
		return r, errors.New("wharf was started without its FTPS listener")
	}
	// The account may log in only while its vsftpd runs; deferred first,
	// so that it also runs when vsftpd failed to start.
	defer func() {
		if err := lockSystemPassword(context.WithoutCancel(ctx), w.user); err != nil {
			fmt.Fprintf(b.progress, "wharf-bench: %v\n", err)
		}
	}()
	v, err := startVsftpd(ctx, b.ws, &ftpsAccount{user: w.user, password: w.password})
	if err != nil {
		return r, err
	}
	defer v.stop()
	pair := []*server{w, v}
	netrc := b.ws.path("ftps.netrc")
	if err := os.WriteFile(netrc, []byte(fmt.Sprintf("machine 127.0.0.1 login %s password %s\n", w.user, w.password)), 0o600); err != nil {
		return r, fmt.Errorf("write curl's netrc: %w", err)
	}
	run := b.ftpsDownload
	if upload {
		run = b.ftpsUpload
	} else {
		for _, s := range pair {
			dst := filepath.Join(s.dataDir, "ftps-down.bin")
			if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return r, fmt.Errorf("stage FTPS download: %w", err)
			}
			if err := linkOrCopy(b.big, dst); err != nil {
				return r, err
			}
			// vsftpd reads it as its user. A link shares the mode with the
			// benchmark's own copy, which nobody else reads anyway.
			if err := os.Chmod(dst, 0o644); err != nil {
				return r, fmt.Errorf("stage FTPS download: %w", err)
			}
		}
	}
	// The negotiated TLS parameters go into the row's name: curl's
	// preference and each server's decide them, and they differ.
	var tlsParams []string
	for _, s := range pair {
		p, err := b.ftpsProbe(ctx, s, netrc)
		if err != nil {
			return r, err
		}
		tlsParams = append(tlsParams, s.name+" "+p)
	}
	r.name += " (" + strings.Join(tlsParams, "; ") + ")"
	fmt.Fprintf(b.progress, "%s: %s\n", t.name, strings.Join(tlsParams, "; "))

	t.run = func(ctx context.Context, s *server) (sample, error) { return run(ctx, s, netrc) }
	if err := b.measureRuns(ctx, t, pair, &r); err != nil {
		return r, err
	}
	if !upload {
		for range b.o.runs {
			rate, err := b.curlCeiling(ctx)
			if err != nil {
				return r, err
			}
			fmt.Fprintf(b.progress, "%-45s %-8s %8.1f %s\n", t.name, "ceiling", rate, t.unit)
			r.ceiling = append(r.ceiling, rate)
		}
	}
	return r, nil
}

func (b *bench) ftpsUpload(ctx context.Context, s *server, netrc string) (sample, error) {
	remote := filepath.Join(s.dataDir, "ftps-up.bin")
	defer os.Remove(remote)
	run, _, err := runCurl(ctx, s, netrc, "ftps-up.bin", b.transferTimeout(), "--upload-file", b.big)
	if err != nil {
		return sample{}, err
	}
	if err := sameContent(b.big, remote); err != nil {
		return sample{}, fmt.Errorf("%s FTPS upload: %w", s.name, err)
	}
	return sample{rate: megabytesPerSecond(int64(b.o.size), run.wall), rssGrowth: -1, client: run}, nil
}

func (b *bench) ftpsDownload(ctx context.Context, s *server, netrc string) (sample, error) {
	local := b.ws.path("ftps-down.bin")
	defer os.Remove(local)
	run, _, err := runCurl(ctx, s, netrc, "ftps-down.bin", b.transferTimeout(), "--output", local)
	if err != nil {
		return sample{}, err
	}
	if err := sameContent(b.big, local); err != nil {
		return sample{}, fmt.Errorf("%s FTPS download: %w", s.name, err)
	}
	return sample{rate: megabytesPerSecond(int64(b.o.size), run.wall), rssGrowth: -1, client: run}, nil
}

// ftpsProbe lists the server's root with curl -v: it proves the login and
// returns the negotiated TLS version and cipher suite.
func (b *bench) ftpsProbe(ctx context.Context, s *server, netrc string) (string, error) {
	_, errOut, err := runCurl(ctx, s, netrc, "", loginTimeout, "--verbose", "--output", os.DevNull)
	if err != nil {
		return "", fmt.Errorf("first FTPS login: %w", err)
	}
	return tlsParameters(errOut)
}

// tlsParameters finds curl -v's "* SSL connection using TLSv1.3 /
// TLS_AES_128_GCM_SHA256" line (OpenSSL builds) and returns its version
// and suite.
func tlsParameters(verbose string) (string, error) {
	const marker = "SSL connection using "
	for _, line := range strings.Split(verbose, "\n") {
		if _, rest, ok := strings.Cut(line, marker); ok {
			return strings.Join(strings.Fields(strings.ReplaceAll(rest, " / ", " ")), " "), nil
		}
	}
	return "", fmt.Errorf("curl -v printed no %q line; its output:\n%s", marker, tail(verbose, 20))
}

// runCurl runs curl once against s over explicit FTPS and returns its wall
// time (start to exit, TLS handshake and login included) and its stderr.
func runCurl(ctx context.Context, s *server, netrc, remote string, timeout time.Duration, extra ...string) (timing, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := []string{
		"--disable", // no ~/.curlrc: the same client for both servers
		"--silent", "--show-error",
		"--ssl-reqd", // AUTH TLS, and fail rather than fall back to plain FTP
		"--insecure", // self-signed certificates on both servers
		"--netrc-file", netrc,
	}
	args = append(args, extra...)
	args = append(args, fmt.Sprintf("ftp://127.0.0.1:%d/%s", s.port, remote))
	cmd := exec.CommandContext(ctx, "curl", args...)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	t, err := runCommand(cmd)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w after %s (%v)", ctxErr, t.wall.Round(time.Millisecond), err)
		}
		return timing{}, "", fmt.Errorf("curl to %s: %w; errors:\n%s", s.name, err, tail(errOut.String(), 15))
	}
	return t, errOut.String(), nil
}

package e2e

// The harness: users with real keys, a real `wharf serve` process, and helpers
// to run client binaries against it. Every test file in this package builds on
// these functions; keep their signatures stable.
//
// Typical use:
//
//	alice := newUser(t, "alice")
//	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}})
//	local := filepath.Join(t.TempDir(), "f")
//	sum := writeRandomFile(t, local, 1<<20)
//	if _, stderr, err := sftpBatch(t, d, alice, "put "+local+" /f\n"); err != nil {
//		t.Fatalf("put: %v\n%s", err, stderr)
//	}
//	if got := sha256File(t, filepath.Join(d.HomeDir(alice), "f")); got != sum { ... }

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/wharf-sftp/wharf/internal/s3test"
)

const (
	startTimeout  = 20 * time.Second // from exec to the "listening" log line
	stopTimeout   = 15 * time.Second // from SIGTERM to exit; above shutdown_grace (5s)
	clientTimeout = 2 * time.Minute  // default for one client invocation
)

// requireClient returns the absolute path of a client binary. It skips the
// test when the binary is missing, except when CI=true: there it fails
// (t.Fatalf), because CI must never hide a missing client behind a skip.
func requireClient(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		if abs, aerr := filepath.Abs(p); aerr == nil {
			return abs
		}
		return p
	}
	missingClient(t, fmt.Sprintf("client %q not found on PATH: %v", name, err))
	return ""
}

// missingClient skips the test on a developer's machine and fails it when
// CI=true: CI must never hide a missing client behind a skip.
func missingClient(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: a missing client is a failure: %s", msg)
	}
	t.Skip(msg)
}

// requirePythonModules returns the system interpreter if it imports the
// modules (e.g. "paramiko"), else skips or fails as requireClient does.
func requirePythonModules(t *testing.T, modules, pkg string) string {
	t.Helper()
	_, stderr, err := runCmd(t, 30*time.Second, systemPython, "-c", "import "+modules)
	if err == nil {
		return systemPython
	}
	missingClient(t, fmt.Sprintf("%s cannot import %s (Debian package %s): %v\n%s", systemPython, modules, pkg, err, stderr))
	return ""
}

// brokenTransfer writes size random bytes to src and plants their first
// part bytes at dst: what an upload that broke off leaves behind. It
// returns the SHA-256 of src and its content.
func brokenTransfer(t *testing.T, src, dst string, size, part int64) (string, []byte) {
	t.Helper()
	sum := writeRandomFile(t, src, size)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data[:part], 0o644); err != nil {
		t.Fatal(err)
	}
	return sum, data
}

// testUser is one account, with its secrets in plaintext for the tests.
type testUser struct {
	Name, Home      string   // Home as in config, e.g. "/alice"
	KeyFile, PubKey string   // private key path (OpenSSH format, 0600; KeyFile+".pub" too) and the authorized_keys line
	Password        string   // plaintext; hashed into the config via `wharf hash-password`
	Permissions     []string // nil = absent from config (all); []string{} = "permissions: []" (none)

	// PasswordHash overrides hashing Password, for a test that supplies a hash
	// made another way (e.g. `wharf hash-password --bcrypt`). Set before
	// startDaemon. Empty: the harness runs `wharf hash-password` once.
	PasswordHash string

	pub ssh.PublicKey
}

// newUser generates an ed25519 key pair in t.TempDir() and a random password.
// A test may clear PubKey or Password to leave that credential out of the
// config, or set Home/Permissions before startDaemon.
func newUser(t *testing.T, name string) *testUser {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	comment := name + "@wharf-e2e"
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		t.Fatalf("marshal private key: %v", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatalf("ssh public key: %v", err)
	}
	keyFile := filepath.Join(t.TempDir(), "id_ed25519_"+name)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatalf("write key: %v", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + comment
	if err := os.WriteFile(keyFile+".pub", []byte(line+"\n"), 0o644); err != nil {
		t.Fatalf("write public key: %v", err)
	}
	var pw [16]byte
	if _, err := rand.Read(pw[:]); err != nil {
		t.Fatalf("random password: %v", err)
	}
	return &testUser{
		Name:     name,
		Home:     "/" + name,
		KeyFile:  keyFile,
		PubKey:   line,
		Password: "pw-" + hex.EncodeToString(pw[:]),
		pub:      sshPub,
	}
}

// Fingerprint is the SHA256 fingerprint of the user's key, as the daemon logs it.
func (u *testUser) Fingerprint() string { return ssh.FingerprintSHA256(u.pub) }

// daemonOpts configures startDaemon.
type daemonOpts struct {
	Users   []*testUser
	Backend string // "local" (default) | "memory" | "s3" (a versitygw of the test's own)
	// Extra is raw YAML appended at the top level. It must not repeat a key the
	// harness writes (state_dir, shutdown_grace, log, sftp, storage, users).
	// Unless Extra has a top-level defender section, the harness adds one
	// that trusts loopback: tests fail logins from 127.0.0.1 on purpose.
	Extra string
	// Ciphers is sftp.ciphers; nil: the default offer.
	Ciphers []string
	// S3Endpoint, for the s3 backend, maps the store's endpoint to the one
	// written into storage.s3.endpoint: a test puts a proxy between the
	// daemon and the store this way. nil: the store's own.
	S3Endpoint func(store string) string
	// S3Setstat is storage.s3.setstat; "": absent (the default, ignore).
	S3Setstat string
	// S3Shared and S3Bucket, for the s3 backend, point the daemon at an
	// existing store and bucket instead of its own: a fleet shares one.
	S3Shared *s3test.Server
	S3Bucket string
	// S3Prefix is storage.s3.prefix; "": absent (the bucket's root).
	S3Prefix string
	// S3UploadLease is storage.s3.upload_lease; "": absent (the default).
	S3UploadLease string
	// StatePrefix is the key prefix in the bucket of the daemon's
	// state_url's identity folder: known_hosts is then made of the fleet's host keys there,
	// not state_dir's (a daemon with state_url writes none there).
	StatePrefix string
	// Deferred: startDaemon writes the config and returns the daemon
	// unstarted; the test calls launch and then awaitListening, so that
	// several daemons start at once.
	Deferred bool
}

// daemon is one running `wharf serve`. Port, Addr, HostKeyFP and KnownHosts
// change on Restart; Restart must not run concurrently with subtests that read them.
type daemon struct {
	Port int
	Addr string // 127.0.0.1:PORT
	Root string // storage root on disk; "" for the memory and s3 backends
	// S3 is the store and Bucket the bucket of the s3 backend; nil and "" otherwise.
	S3         *s3test.Server
	Bucket     string
	StateDir   string
	ConfigPath string
	HostKeyFP  string // ed25519 host key "SHA256:..." from the log
	KnownHosts string // known_hosts with the host keys read from state_dir

	dir     string // every host path the daemon knows lies beneath it
	users   []*testUser
	ciphers []string
	s3conf  yamlS3   // what the test chose of storage.s3: the endpoint the daemon uses, setstat
	secrets []string // strings no log line may contain
	// statePrefix: known_hosts from the bucket's keys under it (StatePrefix).
	statePrefix string
	launched    int // the log mark at the last launch

	proc *process

	mu     sync.Mutex
	raw    bytes.Buffer     // stderr, verbatim
	stdout bytes.Buffer     // stdout, verbatim
	lines  []map[string]any // stderr lines that parsed as JSON objects
	errs   int              // stderr lines that did not
	part   []byte           // an unterminated last stderr line
}

type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed after cmd.Wait returned
	err    error         // cmd.Wait's result, readable once exited is closed
}

// startDaemon writes a config into t.TempDir(), starts `wharf serve` and waits
// for its "listening" log line. t.Cleanup stops it with SIGTERM, fails the
// test unless it exits 0 in time, fails it if any log line contains a user's
// password, and prints the daemon's log when the test failed.
func startDaemon(t *testing.T, o daemonOpts) *daemon {
	t.Helper()
	if wharfBin == "" {
		t.Fatal("wharf binary not built (TestMain did not run)")
	}
	dir := t.TempDir()
	d := &daemon{
		dir:        dir,
		StateDir:   filepath.Join(dir, "state"),
		ConfigPath: filepath.Join(dir, "wharf.yaml"),
		KnownHosts: filepath.Join(dir, "known_hosts"),
		users:      o.Users,
	}
	backend := o.Backend
	if backend == "" {
		backend = "local"
	}
	if backend == "local" {
		d.Root = filepath.Join(dir, "data")
		if err := os.MkdirAll(d.Root, 0o755); err != nil {
			t.Fatalf("create storage root: %v", err)
		}
	}
	if backend == "s3" && o.S3Shared != nil {
		d.S3, d.Bucket = o.S3Shared, o.S3Bucket
		d.secrets = append(d.secrets, d.S3.SecretKey)
	} else if backend == "s3" {
		d.S3 = s3test.Start(t)
		d.Bucket = d.S3.NewBucket(t)
		d.secrets = append(d.secrets, d.S3.SecretKey)
	}
	for _, u := range o.Users {
		if u.Password != "" {
			d.secrets = append(d.secrets, u.Password)
		}
	}
	d.ciphers = o.Ciphers
	if d.S3 != nil {
		d.s3conf = yamlS3{Endpoint: d.S3.Endpoint, Setstat: o.S3Setstat, Prefix: o.S3Prefix, UploadLease: o.S3UploadLease}
		if o.S3Endpoint != nil {
			d.s3conf.Endpoint = o.S3Endpoint(d.S3.Endpoint)
		}
	}
	d.statePrefix = o.StatePrefix
	d.writeConfig(t, backend, o.Extra)
	t.Cleanup(func() {
		d.stop(t)
		d.checkSecrets(t)
		if t.Failed() {
			t.Logf("wharf log (tail):\n%s", d.logTail(200))
		}
	})
	if !o.Deferred {
		d.start(t)
	}
	return d
}

type yamlUser struct {
	Name         string    `yaml:"name"`
	Home         string    `yaml:"home"`
	PublicKeys   []string  `yaml:"public_keys,omitempty"`
	PasswordHash string    `yaml:"password_hash,omitempty"`
	Permissions  *[]string `yaml:"permissions,omitempty"` // nil: absent; &[]string{}: "[]"
}

type yamlConfig struct {
	StateDir      string `yaml:"state_dir"`
	ShutdownGrace string `yaml:"shutdown_grace"`
	Log           struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
	SFTP struct {
		Listen  string   `yaml:"listen"`
		Ciphers []string `yaml:"ciphers,omitempty"`
	} `yaml:"sftp"`
	Storage struct {
		Backend string  `yaml:"backend"`
		Root    string  `yaml:"root,omitempty"`
		S3      *yamlS3 `yaml:"s3,omitempty"`
	} `yaml:"storage"`
	Users []yamlUser `yaml:"users"`
}

type yamlS3 struct {
	Bucket              string `yaml:"bucket"`
	Region              string `yaml:"region"`
	Endpoint            string `yaml:"endpoint"`
	PathStyle           bool   `yaml:"path_style"`
	AccessKeyID         string `yaml:"access_key_id"`
	SecretAccessKeyFile string `yaml:"secret_access_key_file"`
	// The smallest part S3 allows, so that a few MiB already take the
	// multipart path.
	PartSize    string `yaml:"part_size"`
	Setstat     string `yaml:"setstat,omitempty"`
	Prefix      string `yaml:"prefix,omitempty"`
	UploadLease string `yaml:"upload_lease,omitempty"`
}

// writeConfig marshals the config rather than templating it, so that no key,
// hash or path can break the YAML quoting.
func (d *daemon) writeConfig(t *testing.T, backend, extra string) {
	t.Helper()
	var c yamlConfig
	c.StateDir = d.StateDir
	c.ShutdownGrace = "5s"
	c.Log.Level = "debug"
	c.Log.Format = "json"
	c.SFTP.Listen = "127.0.0.1:0"
	c.SFTP.Ciphers = d.ciphers
	c.Storage.Backend = backend
	c.Storage.Root = d.Root
	if d.S3 != nil {
		secret := filepath.Join(d.dir, "s3.secret")
		if err := os.WriteFile(secret, []byte(d.S3.SecretKey), 0o600); err != nil {
			t.Fatalf("write s3 secret: %v", err)
		}
		c.Storage.S3 = &yamlS3{Bucket: d.Bucket, Region: d.S3.Region, Endpoint: d.s3conf.Endpoint, PathStyle: true,
			AccessKeyID: d.S3.AccessKey, SecretAccessKeyFile: secret, PartSize: "5MiB", Setstat: d.s3conf.Setstat, Prefix: d.s3conf.Prefix,
			UploadLease: d.s3conf.UploadLease}
	}
	for _, u := range d.users {
		yu := yamlUser{Name: u.Name, Home: u.Home}
		if u.PubKey != "" {
			yu.PublicKeys = []string{u.PubKey}
		}
		if u.Password != "" {
			if u.PasswordHash == "" {
				u.PasswordHash = hashPassword(t, u.Password)
			}
			yu.PasswordHash = u.PasswordHash
		}
		if u.Permissions != nil {
			p := append([]string{}, u.Permissions...)
			yu.Permissions = &p
		}
		c.Users = append(c.Users, yu)
	}
	data, err := yaml.Marshal(&c)
	if err != nil {
		t.Fatalf("marshal config: %v", err)
	}
	if !strings.HasPrefix(extra, "defender:") && !strings.Contains(extra, "\ndefender:") {
		extra += "\ndefender:\n  allow: [127.0.0.0/8, \"::1/128\"]\n"
	}
	data = append(data, '\n')
	data = append(data, extra...)
	data = append(data, '\n')
	if err := os.WriteFile(d.ConfigPath, data, 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
}

// hashPassword runs `wharf hash-password`, as an operator would.
func hashPassword(t *testing.T, password string, flags ...string) string {
	t.Helper()
	args := append([]string{"hash-password"}, flags...)
	stdout, stderr, err := runCmdOpts(t, 30*time.Second, cmdOpts{Stdin: password + "\n"}, wharfBin, args...)
	if err != nil {
		t.Fatalf("wharf hash-password: %v\n%s", err, redact(stderr, password))
	}
	h := strings.TrimSpace(stdout)
	if h == "" || strings.Contains(stdout+stderr, password) {
		t.Fatalf("wharf hash-password printed no hash, or echoed the password: %q", redact(stdout, password))
	}
	return h
}

func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "<password>")
}

// start execs the daemon and waits until it listens. The storage root, state
// dir and config are the daemon's fields, so a restart reuses them.
func (d *daemon) start(t *testing.T) {
	t.Helper()
	d.launch(t)
	d.awaitListening(t)
}

// launch execs the daemon without waiting for it.
func (d *daemon) launch(t *testing.T) {
	t.Helper()
	cmd := exec.Command(wharfBin, "serve", "--config", d.ConfigPath)
	cmd.Dir = d.dir
	cmd.Stdout = lockedWriter{d, &d.stdout}
	cmd.Stderr = logWriter{d}
	// The daemon owns no child processes, so a pipe still open after exit is a bug; do not hang on it.
	cmd.WaitDelay = 5 * time.Second
	mark := d.LogMark()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start wharf serve: %v", err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	d.proc = p
	d.launched = mark
}

// awaitListening waits for the launched daemon's "listening" line and
// reads its port and host key.
func (d *daemon) awaitListening(t *testing.T) {
	t.Helper()
	mark := d.launched
	l := d.WaitLogSince(t, mark, logMatch("msg", "listening", "proto", "sftp"), startTimeout)
	addr, _ := l["addr"].(string)
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("listening line has addr %q; want 127.0.0.1:PORT", addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 {
		t.Fatalf("listening line has port %q", portStr)
	}
	d.Port, d.Addr = port, addr
	d.HostKeyFP = ""
	for _, l := range d.logsSince(mark) {
		if logMatch("msg", "host key", "type", "ssh-ed25519")(l) {
			d.HostKeyFP, _ = l["fingerprint"].(string)
		}
	}
	if !strings.HasPrefix(d.HostKeyFP, "SHA256:") {
		t.Fatalf("no ssh-ed25519 \"host key\" log line with a SHA256 fingerprint before \"listening\"")
	}
	d.writeKnownHosts(t)
}

// writeKnownHosts trusts the keys found in state_dir, not the ones the server
// offers (as ssh-keyscan would), so that StrictHostKeyChecking=yes really
// checks that the daemon serves the keys it persisted.
func (d *daemon) writeKnownHosts(t *testing.T) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(d.StateDir, "ssh_host_*_key"))
	if err != nil {
		t.Fatalf("glob host keys: %v", err)
	}
	read := os.ReadFile
	if d.statePrefix != "" {
		files, read = d.sharedHostKeys(t)
	}
	var b strings.Builder
	for _, f := range files {
		data, err := read(f)
		if err != nil {
			t.Fatalf("read host key: %v", err)
		}
		signer, err := ssh.ParsePrivateKey(data)
		if err != nil {
			t.Fatalf("parse host key %s: %v", filepath.Base(f), err)
		}
		b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(d.Addr)}, signer.PublicKey()))
		b.WriteByte('\n')
	}
	if b.Len() == 0 {
		t.Fatalf("no host key files ssh_host_*_key in state_dir")
	}
	if err := os.WriteFile(d.KnownHosts, []byte(b.String()), 0o644); err != nil {
		t.Fatalf("write known_hosts: %v", err)
	}
}

// sharedHostKeys lists the host key objects under statePrefix in d.Bucket
// and returns their keys and a reader of them.
func (d *daemon) sharedHostKeys(t *testing.T) ([]string, func(string) ([]byte, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := d.S3.Client()
	out, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &d.Bucket, Prefix: aws.String(d.statePrefix + "ssh_host_")})
	if err != nil {
		t.Fatalf("list shared host keys: %v", err)
	}
	var keys []string
	for _, o := range out.Contents {
		if strings.HasSuffix(*o.Key, "_key") {
			keys = append(keys, *o.Key)
		}
	}
	return keys, func(key string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		o, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: &d.Bucket, Key: &key})
		if err != nil {
			return nil, err
		}
		defer o.Body.Close()
		return io.ReadAll(io.LimitReader(o.Body, 1<<20))
	}
}

// stop sends SIGTERM and waits; the daemon must exit 0 within stopTimeout.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	p := d.proc
	if p == nil {
		return
	}
	d.proc = nil
	select {
	case <-p.exited:
		t.Errorf("wharf serve exited before it was stopped: %v", p.err)
		return
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("send SIGTERM: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("wharf serve did not exit within %v of SIGTERM; killed", stopTimeout)
		return
	}
	if p.err != nil {
		t.Errorf("wharf serve after SIGTERM: %v (want exit status 0)", p.err)
	}
}

// Restart stops the daemon (which must exit 0) and starts it again with the
// same config, state dir and storage root. The port changes; the host keys
// must not.
func (d *daemon) Restart(t *testing.T) {
	t.Helper()
	d.stop(t)
	d.start(t)
}

// KillAndRestart kills the daemon with SIGKILL (no drain, no cleanup: a
// crash) and starts it again on the same config, state dir and storage.
func (d *daemon) KillAndRestart(t *testing.T) {
	t.Helper()
	d.Kill()
	d.start(t)
}

// Kill kills the daemon with SIGKILL and waits for it to be gone; the
// test's cleanup then has nothing to stop.
func (d *daemon) Kill() {
	p := d.proc
	d.proc = nil
	if p != nil {
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// ForbidInLogs adds a string (e.g. a wrong password a test typed) that no log
// line may contain; checked when the daemon stops.
func (d *daemon) ForbidInLogs(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.secrets = append(d.secrets, s)
}

func (d *daemon) checkSecrets(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	all := d.raw.String() + d.stdout.String()
	for _, s := range d.secrets {
		if strings.Contains(all, s) {
			t.Errorf("the daemon's output contains a password (redacted here)")
		}
	}
	for _, u := range d.users {
		if u.PasswordHash != "" && strings.Contains(all, u.PasswordHash) {
			t.Errorf("the daemon's output contains %s's password hash", u.Name)
		}
	}
	if strings.Contains(all, "PRIVATE KEY") {
		t.Errorf("the daemon's output contains a private key")
	}
}

func (d *daemon) logTail(n int) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := strings.TrimRight(d.raw.String(), "\n")
	if lines := strings.Split(s, "\n"); len(lines) > n {
		s = fmt.Sprintf("... %d lines omitted ...\n%s", len(lines)-n, strings.Join(lines[len(lines)-n:], "\n"))
	}
	if d.stdout.Len() > 0 {
		s += "\n--- stdout ---\n" + d.stdout.String()
	}
	return s
}

// RawLog is the daemon's stderr so far, verbatim.
func (d *daemon) RawLog() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.raw.String()
}

type lockedWriter struct {
	d *daemon
	b *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	return w.b.Write(p)
}

// logWriter keeps stderr verbatim and parses each complete line as JSON.
type logWriter struct{ d *daemon }

func (w logWriter) Write(p []byte) (int, error) {
	d := w.d
	d.mu.Lock()
	defer d.mu.Unlock()
	d.raw.Write(p)
	d.part = append(d.part, p...)
	for {
		i := bytes.IndexByte(d.part, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimSpace(d.part[:i])
		d.part = d.part[i+1:]
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			d.errs++
			continue
		}
		d.lines = append(d.lines, m)
	}
	return len(p), nil
}

// Logs returns the JSON log lines so far, across restarts. Safe to call
// concurrently; callers must not modify the maps.
func (d *daemon) Logs() []map[string]any { return d.logsSince(0) }

// LogMark returns a position in the log, for WaitLogSince: "a line logged
// after this point".
func (d *daemon) LogMark() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.lines)
}

func (d *daemon) logsSince(mark int) []map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	if mark > len(d.lines) {
		mark = len(d.lines)
	}
	return append([]map[string]any(nil), d.lines[mark:]...)
}

// WaitLog returns the first log line (since the first start) that matches,
// waiting up to timeout; it fails the test when none appears or the daemon
// exits first. Lines are logged asynchronously (a transfer line after the
// client closed the file), so assert on logs with WaitLog, not Logs.
func (d *daemon) WaitLog(t *testing.T, match func(map[string]any) bool, timeout time.Duration) map[string]any {
	t.Helper()
	return d.WaitLogSince(t, 0, match, timeout)
}

// WaitLogSince is WaitLog restricted to lines after a LogMark.
func (d *daemon) WaitLogSince(t *testing.T, mark int, match func(map[string]any) bool, timeout time.Duration) map[string]any {
	t.Helper()
	if l, ok := d.pollLog(mark, match, timeout); ok {
		return l
	}
	t.Fatalf("no matching log line within %v\nwharf log (tail):\n%s", timeout, d.logTail(60))
	return nil
}

// pollLog is WaitLogSince without failing; it returns early when the daemon exits.
func (d *daemon) pollLog(mark int, match func(map[string]any) bool, timeout time.Duration) (map[string]any, bool) {
	deadline := time.Now().Add(timeout)
	var exited <-chan struct{}
	if d.proc != nil {
		exited = d.proc.exited
	}
	for {
		for _, l := range d.logsSince(mark) {
			if match(l) {
				return l, true
			}
		}
		if time.Now().After(deadline) {
			return nil, false
		}
		select {
		case <-exited:
			// One last look: the writer may have flushed the final lines just now.
			exited = nil
			deadline = time.Now()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// logMatch returns a matcher for lines whose fields equal the given values,
// as key, value pairs. Numbers compare numerically (JSON numbers decode as
// float64), everything else by its fmt.Sprint form.
func logMatch(kv ...any) func(map[string]any) bool {
	if len(kv)%2 != 0 {
		panic("logMatch: odd number of arguments")
	}
	return func(l map[string]any) bool {
		for i := 0; i < len(kv); i += 2 {
			k, _ := kv[i].(string)
			got, ok := l[k]
			if !ok || !valueEqual(got, kv[i+1]) {
				return false
			}
		}
		return true
	}
}

func valueEqual(got, want any) bool {
	if g, ok := got.(float64); ok {
		switch w := want.(type) {
		case int:
			return g == float64(w)
		case int64:
			return g == float64(w)
		case float64:
			return g == w
		}
	}
	return fmt.Sprint(got) == fmt.Sprint(want)
}

// HomeDir is the user's home on disk (Root + Home); "" for the memory backend.
func (d *daemon) HomeDir(u *testUser) string {
	if d.Root == "" {
		return ""
	}
	return filepath.Join(d.Root, filepath.FromSlash(u.Home))
}

// hostPaths are strings that reveal where the daemon keeps data; no client
// output may contain them.
func (d *daemon) hostPaths() []string {
	p := []string{d.dir}
	if d.Root != "" {
		p = append(p, d.Root)
	}
	return p
}

// sha256File returns the hex SHA-256 of a file.
func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open for hashing: %v", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("hash %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeRandomFile writes size pseudo-random bytes (ChaCha8 seeded from the
// file's base name and size, so reruns are reproducible) and returns their
// hex SHA-256. Parent directories are created.
func writeRandomFile(t *testing.T, path string, size int64) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	seed := sha256.Sum256([]byte(filepath.Base(path) + "/" + strconv.FormatInt(size, 10)))
	rng := mrand.NewChaCha8(seed)
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	if _, err := io.CopyN(w, rng, size); err != nil {
		f.Close()
		t.Fatalf("write %s: %v", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		t.Fatalf("write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// cmdOpts are the less common knobs of runCmdOpts.
type cmdOpts struct {
	Env   []string // appended to os.Environ(), e.g. "SSHPASS=..."
	Stdin string   // "" = /dev/null
	Dir   string   // "" = the test's working directory
}

// runCmd runs a command with stdin from /dev/null and returns its output. err
// is the exec error (non-nil for a non-zero exit; check with exitCode) and
// says so when the timeout killed the command.
func runCmd(t *testing.T, timeout time.Duration, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runCmdOpts(t, timeout, cmdOpts{}, name, args...)
}

// runCmdOpts is runCmd with an environment, stdin or working directory.
func runCmdOpts(t *testing.T, timeout time.Duration, o cmdOpts, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(append(os.Environ(), "LC_ALL=C"), o.Env...)
	if o.Stdin != "" {
		cmd.Stdin = strings.NewReader(o.Stdin)
	}
	cmd.Dir = o.Dir
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%s timed out after %v: %w", filepath.Base(name), timeout, err)
	}
	return out.String(), errb.String(), err
}

// exitCode is the process exit status in err from runCmd: 0 for nil, -1 when
// the process did not exit normally (killed, not found).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// target is the USER@HOST argument of the OpenSSH tools.
func target(u *testUser) string { return u.Name + "@127.0.0.1" }

// opensshCommon are the options that keep OpenSSH from reading the developer's
// config, agent or known_hosts and from ever prompting; the host key is
// checked strictly against d.KnownHosts.
func opensshCommon(d *daemon) []string {
	return []string{
		"-F", "none",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + d.KnownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "IdentityAgent=none",
		"-o", "ConnectTimeout=10",
		"-o", "LogLevel=ERROR",
	}
}

// opensshArgs are the key-authentication options shared by ssh, sftp and scp,
// without the port (which is -p for ssh, -P for sftp and scp: use sshArgs or
// sftpArgs).
func opensshArgs(d *daemon, u *testUser) []string {
	return append(opensshCommon(d),
		"-i", u.KeyFile,
		"-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes",
		"-o", "PreferredAuthentications=publickey",
		"-o", "PasswordAuthentication=no",
		"-o", "KbdInteractiveAuthentication=no",
	)
}

// opensshPasswordArgs authenticate by password only (with sshpass -e).
// BatchMode=no comes first because ssh keeps the first value of an option and
// `sftp -b` appends "-oBatchMode yes", which would disable password prompts.
func opensshPasswordArgs(d *daemon) []string {
	return append([]string{"-o", "BatchMode=no"}, append(opensshCommon(d),
		"-o", "PubkeyAuthentication=no",
		"-o", "PreferredAuthentications=password",
		"-o", "NumberOfPasswordPrompts=1",
	)...)
}

// sftpArgs are opensshArgs with the port for sftp and scp (-P).
func sftpArgs(d *daemon, u *testUser) []string {
	return append([]string{"-P", strconv.Itoa(d.Port)}, opensshArgs(d, u)...)
}

// sshArgs are opensshArgs with the port for ssh (-p).
func sshArgs(d *daemon, u *testUser) []string {
	return append([]string{"-p", strconv.Itoa(d.Port)}, opensshArgs(d, u)...)
}

// sftpBatch runs OpenSSH `sftp -b` with the user's key. The batch (one command
// per line; a leading "-" lets the batch continue past that command's
// failure) goes through a file. sftp echoes each command to stdout as
// "sftp> CMD". err is non-nil when any unprefixed command failed.
func sftpBatch(t *testing.T, d *daemon, u *testUser, batch string) (stdout, stderr string, err error) {
	t.Helper()
	return sftpBatchTimeout(t, d, u, batch, clientTimeout)
}

// sftpBatchTimeout is sftpBatch with a timeout other than two minutes.
func sftpBatchTimeout(t *testing.T, d *daemon, u *testUser, batch string, timeout time.Duration) (stdout, stderr string, err error) {
	t.Helper()
	sftp := requireClient(t, "sftp")
	args := append(sftpArgs(d, u), "-b", writeBatch(t, batch), target(u))
	return runCmd(t, timeout, sftp, args...)
}

// sftpPasswordBatch runs `sshpass -e sftp -b` logging in as u with password
// (which need not be u.Password: pass a wrong one to test refusal).
func sftpPasswordBatch(t *testing.T, d *daemon, u *testUser, password, batch string) (stdout, stderr string, err error) {
	t.Helper()
	sshpass := requireClient(t, "sshpass")
	sftp := requireClient(t, "sftp")
	args := []string{"-e", sftp, "-P", strconv.Itoa(d.Port)}
	args = append(args, opensshPasswordArgs(d)...)
	args = append(args, "-b", writeBatch(t, batch), target(u))
	return runCmdOpts(t, clientTimeout, cmdOpts{Env: []string{"SSHPASS=" + password}}, sshpass, args...)
}

func writeBatch(t *testing.T, batch string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(f, []byte(batch), 0o644); err != nil {
		t.Fatalf("write batch: %v", err)
	}
	return f
}

// assertNoHostPath fails the test when client output reveals where the daemon
// keeps its data.
func assertNoHostPath(t *testing.T, d *daemon, what string, outputs ...string) {
	t.Helper()
	for _, out := range outputs {
		for _, p := range d.hostPaths() {
			if strings.Contains(out, p) {
				t.Errorf("%s: client output contains the host path %q:\n%s", what, p, out)
			}
		}
	}
}

// sftpOK runs sftpBatch and fails the test unless sftp exits 0; it returns stdout.
func sftpOK(t *testing.T, d *daemon, u *testUser, batch string) string {
	t.Helper()
	stdout, stderr, err := sftpBatch(t, d, u, batch)
	if err != nil {
		t.Fatalf("sftp batch failed: %v\nbatch:\n%s\nstdout:\n%s\nstderr:\n%s", err, batch, stdout, stderr)
	}
	return stdout
}

// sftpFails runs sftpBatch, fails the test unless sftp exits non-zero (a
// refused command, not a timeout), checks that the output reveals no host
// path, and returns stdout and stderr joined.
func sftpFails(t *testing.T, d *daemon, u *testUser, batch string) string {
	t.Helper()
	stdout, stderr, err := sftpBatch(t, d, u, batch)
	if code := exitCode(err); code <= 0 {
		t.Errorf("sftp batch should have failed, got exit %d (%v)\nbatch:\n%s\nstdout:\n%s\nstderr:\n%s", code, err, batch, stdout, stderr)
	}
	assertNoHostPath(t, d, "sftp "+strings.TrimSpace(batch), stdout, stderr)
	return stdout + stderr
}

// exists reports whether path exists on disk, without following a final symlink.
func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err == nil {
		return true
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lstat: %v", err)
	}
	return false
}

// sftpListing returns the lines sftp printed for its commands, without the
// "sftp> CMD" echo lines.
func sftpListing(stdout string) []string {
	var out []string
	for _, l := range strings.Split(stdout, "\n") {
		if l == "" || strings.HasPrefix(l, "sftp> ") {
			continue
		}
		out = append(out, l)
	}
	return out
}

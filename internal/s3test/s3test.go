// Package s3test runs a real S3 server for tests: versitygw 1.8.0 with its
// posix backend, on a free 127.0.0.1 port, with its IAM and data folders in
// t.TempDir(), stopped by t.Cleanup.
//
// The binary comes from `go install
// github.com/versity/versitygw/cmd/versitygw@v1.8.0` (.ci/run does it). A test
// on a machine without it is skipped, except when CI=true: there it fails,
// because CI must never hide a missing server behind a skip.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"debug/buildinfo"
	"encoding/hex"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	// Module and Version name the server these tests were written against;
	// docs/s3.md records how it behaves.
	Module  = "github.com/versity/versitygw"
	Version = "v1.8.0"

	binary       = "versitygw"
	startTimeout = 30 * time.Second // exec to the first HTTP answer
	stopTimeout  = 10 * time.Second // SIGTERM to exit; it exits 0 within milliseconds
	startTries   = 3                // a free port can be taken between probe and bind
	logTail      = 32 << 10         // bytes of its output kept for a failure report
)

// Server is a running versitygw and what a client needs to reach it.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT, or https:// from StartTLS
	AccessKey string
	SecretKey string
	Region    string
	// DataDir is the posix backend's root: bucket B's object K is the file
	// DataDir/B/K. A test may look there to see what reached the disk.
	DataDir string
	// CAFile is the PEM certificate a client must trust to reach a server
	// from StartTLS (self-signed, for 127.0.0.1); empty for plain HTTP.
	CAFile string

	roots *x509.CertPool // CAFile's certificate, nil for plain HTTP
	cmd   *exec.Cmd
	logs  *tailBuffer
	done  chan struct{} // closed when the process has exited
	err   error         // its exit status, once done is closed
}

// Start launches versitygw and waits until it answers HTTP. It is stopped,
// and the test failed if it crashed or exited with an error, by t.Cleanup;
// its output's last 32 KiB are logged when the test failed.
func Start(t testing.TB) *Server {
	t.Helper()
	return startServer(t, false)
}

// StartTLS is Start with HTTPS, on a fresh self-signed certificate for
// 127.0.0.1 (in CAFile): what an operator's store behind a private CA looks
// like.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return startServer(t, true)
}

func startServer(t testing.TB, useTLS bool) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	iam, data := filepath.Join(dir, "iam"), filepath.Join(dir, "data")
	for _, d := range []string{iam, data} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatalf("s3test: %v", err)
		}
	}
	var cert *tlsFiles
	if useTLS {
		var err error
		if cert, err = writeCert(dir); err != nil {
			t.Fatalf("s3test: %v", err)
		}
	}
	var lastErr error
	for range startTries {
		s, err := start(bin, iam, data, cert)
		if err == nil {
			t.Cleanup(func() { s.stop(t) })
			return s
		}
		lastErr = err
	}
	t.Fatalf("s3test: start %s: %v", bin, lastErr)
	return nil
}

func start(bin, iam, data string, cert *tlsFiles) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if cert != nil {
		scheme = "https"
	}
	s := &Server{
		Endpoint:  scheme + "://127.0.0.1:" + strconv.Itoa(port),
		AccessKey: "wharf-test-" + randomHex(4),
		SecretKey: randomHex(20),
		Region:    "us-east-1",
		DataDir:   data,
		logs:      &tailBuffer{max: logTail},
		done:      make(chan struct{}),
	}
	args := []string{"--port", "127.0.0.1:" + strconv.Itoa(port), "--region", s.Region, "--iam-dir", iam}
	if cert != nil {
		args = append(args, "--cert", cert.certFile, "--key", cert.keyFile)
		s.CAFile, s.roots = cert.certFile, cert.roots
	}
	s.cmd = exec.Command(bin, append(args, "posix", data)...)
	// versitygw reads dozens of VGW_* variables (and LOGFILE, WEBHOOK, …):
	// the server sees only what this package chose, never the developer's
	// environment.
	s.cmd.Env = []string{
		"PATH=/usr/bin:/bin",
		"HOME=" + iam,
		"ROOT_ACCESS_KEY=" + s.AccessKey,
		"ROOT_SECRET_KEY=" + s.SecretKey,
	}
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	// A test binary killed by -timeout runs no cleanup: the kernel then
	// kills the server with it, rather than leave it listening.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	if err := s.waitReady(); err != nil {
		s.kill()
		return nil, fmt.Errorf("%w\n%s", err, s.logs.String())
	}
	return s, nil
}

// waitReady polls until the server answers any HTTP request (an anonymous
// GET / is refused with 403, which is an answer), it exits, or the start
// timeout passes. The answer must name versitygw: if another process took
// the port first, that one answers while ours is still failing to bind.
func (s *Server) waitReady() error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: s.roots},
	}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("exited before answering: %v", s.err)
		default:
		}
		resp, err := client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			if server := resp.Header.Get("Server"); server != "VERSITYGW" {
				return fmt.Errorf("%s is answered by %q, not versitygw", s.Endpoint, server)
			}
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer on %s within %v", s.Endpoint, startTimeout)
}

// stop sends SIGTERM and waits; a server that had already exited, that
// exits with an error, or that needs SIGKILL fails the test.
func (s *Server) stop(t testing.TB) {
	t.Helper()
	select {
	case <-s.done:
		t.Errorf("s3test: versitygw exited during the test: %v", s.err)
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
			if s.err != nil {
				t.Errorf("s3test: versitygw: %v", s.err)
			}
		case <-time.After(stopTimeout):
			s.kill()
			t.Errorf("s3test: versitygw did not exit within %v of SIGTERM", stopTimeout)
		}
	}
	if t.Failed() {
		t.Logf("s3test: versitygw output (last %d KiB):\n%s", logTail>>10, s.logs.String())
	}
}

func (s *Server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Client returns an S3 client of the server's root user, independent of
// the code under test, for a test to set up and check the bucket with. It
// is built without the SDK's config loader, so no AWS_* variable of the
// environment reaches it; it trusts CAFile, and nothing else, over HTTPS.
func (s *Server) Client() *s3.Client {
	roots := s.roots
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.Proxy = nil
		tr.TLSClientConfig = &tls.Config{RootCAs: roots}
	})
	return s3.New(s3.Options{
		HTTPClient:                 httpClient,
		BaseEndpoint:               aws.String(s.Endpoint),
		Region:                     s.Region,
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

var bucketSeq atomic.Uint64

// NewBucket creates an empty bucket with a name no other test uses, valid
// under S3's rules (3 to 63 lowercase letters, digits and hyphens).
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("wharf-%d-%s", bucketSeq.Add(1), randomHex(4))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", name, err)
	}
	return name
}

// Binary returns the path of versitygw v1.8.0: $VERSITYGW if set (and
// then only that one), else the one on PATH, else $(go env
// GOPATH)/bin/versitygw, where `go install` puts it. Missing (or another version) skips the test, or fails it when
// CI=true.
func Binary(t testing.TB) string {
	t.Helper()
	var tried, candidates []string
	if p := os.Getenv("VERSITYGW"); p != "" {
		candidates = []string{p} // named: that one or none
	} else {
		if p, err := exec.LookPath(binary); err == nil {
			candidates = append(candidates, p)
		}
		candidates = append(candidates, filepath.Join(build.Default.GOPATH, "bin", binary))
	}
	for _, p := range candidates {
		err := checkVersion(p)
		if err == nil {
			return p
		}
		tried = append(tried, err.Error())
	}
	missing(t, fmt.Sprintf("versitygw %s not found (install it with `go install %s/cmd/versitygw@%s`): %s",
		Version, Module, Version, strings.Join(tried, "; ")))
	return ""
}

// checkVersion reads the Go build information of p: `go install` stamps
// the module version there, while versitygw's own --version reports "git".
// A binary built from a source checkout reports "(devel)" and is trusted.
func checkVersion(p string) error {
	info, err := buildinfo.ReadFile(p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if info.Main.Path != Module {
		return fmt.Errorf("%s: main module is %q, want %s", p, info.Main.Path, Module)
	}
	if v := info.Main.Version; v != Version && v != "(devel)" {
		return fmt.Errorf("%s: version %s, want %s", p, v, Version)
	}
	return nil
}

// missing skips the test on a developer's machine and fails it when
// CI=true (the rule of internal/e2e's requireClient).
func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: a missing S3 server is a failure: %s", msg)
	}
	t.Skip(msg)
}

// freePort asks the kernel for a free loopback port. Another process can
// take it before versitygw binds it; Start retries for that.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}

// tailBuffer keeps the last max bytes written to it: the server logs every
// request, and a long test must not grow the test's memory with it.
type tailBuffer struct {
	mu      sync.Mutex
	buf     []byte
	max     int
	dropped bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.dropped = true
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped {
		return "…" + string(bytes.Clone(b.buf))
	}
	return string(b.buf)
}

package sftpd_test

// In-process integration tests: the real daemon on 127.0.0.1:0 and Go
// clients (x/crypto/ssh, pkg/sftp). Real client binaries are in internal/e2e.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
)

type user struct {
	name   string
	signer ssh.Signer
}

func newUser(t *testing.T, name string) (user, config.User) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	return user{name, signer}, config.User{Name: name, Home: "/" + name, PublicKeys: config.Keys(line)}
}

func start(t *testing.T, backend string, users ...config.User) *daemontest.Daemon {
	t.Helper()
	cfg := config.Default()
	cfg.Storage.Backend = backend
	cfg.Users = users
	return daemontest.Start(t, cfg)
}

func dial(t *testing.T, d *daemontest.Daemon, name string, methods ...ssh.AuthMethod) (*ssh.Client, error) {
	t.Helper()
	return ssh.Dial("tcp", d.Addr, &ssh.ClientConfig{
		User:            name,
		Auth:            methods,
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // host key pinning is covered by the e2e tests
		Timeout:         10 * time.Second,
	})
}

func sftpClient(t *testing.T, d *daemontest.Daemon, u user) *sftp.Client {
	t.Helper()
	conn, err := dial(t, d, u.name, ssh.PublicKeys(u.signer))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c, err := sftp.NewClient(conn)
	if err != nil {
		t.Fatalf("sftp: %v", err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	return c
}

func put(t *testing.T, c *sftp.Client, name string, data []byte) {
	t.Helper()
	f, err := c.Create(name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", name, err)
	}
}

func get(t *testing.T, c *sftp.Client, name string) []byte {
	t.Helper()
	f, err := c.Open(name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return data
}

// statusCode extracts the SFTP status code of a client-side error.
func statusCode(err error) uint32 {
	var se *sftp.StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// isDenied reports SSH_FX_PERMISSION_DENIED, which pkg/sftp's client
// turns into fs.ErrPermission for some requests and not others.
func isDenied(err error) bool {
	return errors.Is(err, fs.ErrPermission) || statusCode(err) == 3
}

const (
	fxFailure     = 4
	fxUnsupported = 8
)

// TestOperations is the conformance table, run against both backends.
func TestOperations(t *testing.T) {
	for _, backend := range []string{"local", "memory"} {
		t.Run(backend, func(t *testing.T) {
			alice, cu := newUser(t, "alice")
			d := start(t, backend, cu)
			c := sftpClient(t, d, alice)

			data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16+1) // 1 MiB + 16
			put(t, c, "/in/../a.bin", data)
			if got := get(t, c, "a.bin"); !bytes.Equal(got, data) {
				t.Fatalf("round trip: %d bytes back, want %d", len(got), len(data))
			}

			// Writes at offsets (resume), and reads at offsets.
			f, err := c.OpenFile("/a.bin", os.O_WRONLY)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("XY"), 4); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if got := get(t, c, "/a.bin")[:8]; string(got) != "0123XY67" {
				t.Fatalf("after WriteAt: %q", got)
			}

			// Rename must not replace; posix-rename does.
			put(t, c, "/b.txt", []byte("b"))
			if err := c.Rename("/a.bin", "/b.txt"); statusCode(err) != fxFailure {
				t.Fatalf("rename onto an existing file: %v, want SSH_FX_FAILURE", err)
			}
			if err := c.PosixRename("/a.bin", "/b.txt"); err != nil {
				t.Fatalf("posix-rename: %v", err)
			}
			if fi, err := c.Stat("/b.txt"); err != nil || fi.Size() != int64(len(data)) {
				t.Fatalf("after posix-rename: %v %v", fi, err)
			}

			// setstat: size, mode, times.
			if err := c.Truncate("/b.txt", 10); err != nil {
				t.Fatal(err)
			}
			if err := c.Chmod("/b.txt", 0o600|fs.ModeSetuid); err != nil {
				t.Fatal(err)
			}
			mtime := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
			if err := c.Chtimes("/b.txt", mtime, mtime); err != nil {
				t.Fatal(err)
			}
			fi, err := c.Stat("/b.txt")
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != 10 || fi.Mode() != 0o600 || !fi.ModTime().Equal(mtime) {
				t.Fatalf("after setstat: size %d mode %v mtime %v", fi.Size(), fi.Mode(), fi.ModTime())
			}

			// Directories.
			if err := c.Mkdir("/dir"); err != nil {
				t.Fatal(err)
			}
			if err := c.Mkdir("/dir"); statusCode(err) != fxFailure {
				t.Fatalf("mkdir existing: %v", err)
			}
			put(t, c, "/dir/x", nil)
			if err := c.RemoveDirectory("/dir"); err == nil {
				t.Fatal("rmdir of a non-empty directory succeeded")
			}
			if err := c.Remove("/dir"); err == nil {
				t.Fatal("remove (not rmdir) of a directory succeeded")
			}
			if err := c.RemoveDirectory("/dir/x"); err == nil {
				t.Fatal("rmdir of a file succeeded")
			}
			if err := c.Remove("/dir/x"); err != nil {
				t.Fatal(err)
			}
			if err := c.RemoveDirectory("/dir"); err != nil {
				t.Fatal(err)
			}

			// Errors: codes and no host path.
			_, err = c.Open("/missing")
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("open missing: %v", err)
			}
			if err := c.Symlink("/b.txt", "/link"); !isDenied(err) {
				t.Fatalf("symlink: %v, want permission denied", err)
			}
			if _, err := c.ReadLink("/b.txt"); !isDenied(err) {
				t.Fatalf("readlink: %v, want permission denied", err)
			}
			if p, err := c.RealPath("../../.."); err != nil || p != "/" {
				t.Fatalf("realpath: %q %v", p, err)
			}
			if cwd, err := c.Getwd(); err != nil || cwd != "/" {
				t.Fatalf("getwd: %q %v", cwd, err)
			}

			st, err := c.StatVFS("/")
			if backend == "local" {
				if err != nil || st.Blocks == 0 || st.Bsize == 0 {
					t.Fatalf("statvfs: %+v %v", st, err)
				}
			} else if statusCode(err) != fxUnsupported {
				t.Fatalf("statvfs on memory: %v, want op unsupported", err)
			}

			if root := d.Config.Storage.Root; backend == "local" && strings.Contains(d.Logs(), "\"err\":\""+root) {
				t.Errorf("log carries the storage root in an error")
			}
		})
	}
}

func TestLargeDirectoryStreams(t *testing.T) {
	alice, cu := newUser(t, "alice")
	d := start(t, "local", cu)
	home := filepath.Join(d.Config.Storage.Root, "alice")
	if err := os.MkdirAll(home+"/big", 0o750); err != nil {
		t.Fatal(err)
	}
	const n = 5000
	for i := range n {
		if err := os.WriteFile(fmt.Sprintf("%s/big/f%05d", home, i), nil, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	c := sftpClient(t, d, alice)
	entries, err := c.ReadDir("/big")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Fatalf("listed %d entries, want %d", len(entries), n)
	}
}

func TestPermissionsDenied(t *testing.T) {
	bob, cu := newUser(t, "bob")
	cu.Permissions = []string{"list", "download"}
	d := start(t, "memory", cu)
	c := sftpClient(t, d, bob)
	for name, err := range map[string]error{
		"create": func() error { _, err := c.Create("/x"); return err }(),
		"mkdir":  c.Mkdir("/d"),
	} {
		if !isDenied(err) {
			t.Errorf("%s: %v, want SSH_FX_PERMISSION_DENIED", name, err)
		}
	}
	if _, err := c.ReadDir("/"); err != nil {
		t.Errorf("list: %v", err)
	}
	if !strings.Contains(d.Logs(), `"msg":"denied"`) {
		t.Errorf("no denied log line")
	}
}

func TestOnlySFTP(t *testing.T) {
	alice, cu := newUser(t, "alice")
	d := start(t, "memory", cu)
	conn, err := dial(t, d, "alice", ssh.PublicKeys(alice.signer))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	s, err := conn.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	s.Stderr = &stderr
	err = s.Run("cat /etc/passwd")
	var exit *ssh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() == 0 {
		t.Fatalf("exec: %v, want a non-zero exit", err)
	}
	if !strings.Contains(stderr.String(), "SFTP only") {
		t.Fatalf("exec stderr = %q", stderr.String())
	}

	if _, err := conn.Dial("tcp", "127.0.0.1:1"); err == nil {
		t.Fatal("direct-tcpip forwarding was accepted")
	}
	if _, err := conn.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Fatal("tcpip-forward was accepted")
	}
}

func TestLogin(t *testing.T) {
	alice, cu := newUser(t, "alice")
	hash, err := auth.HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	cu.PasswordHash = hash
	_, other := newUser(t, "mallory")
	d := start(t, "memory", cu)
	otherSigner, _ := newUser(t, "x")

	interactive := func(pw string) ssh.AuthMethod {
		return ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
			return []string{pw}, nil
		})
	}
	for _, tc := range []struct {
		name   string
		user   string
		method ssh.AuthMethod
		ok     bool
	}{
		{"key", "alice", ssh.PublicKeys(alice.signer), true},
		{"password", "alice", ssh.Password("correct horse"), true},
		{"keyboard-interactive", "alice", interactive("correct horse"), true},
		{"wrong password", "alice", ssh.Password("wrong"), false},
		{"wrong key", "alice", ssh.PublicKeys(otherSigner.signer), false},
		{"unknown user", other.Name, ssh.Password("correct horse"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := dial(t, d, tc.user, tc.method)
			if tc.ok != (err == nil) {
				t.Fatalf("login: %v, want ok=%v", err, tc.ok)
			}
			if conn != nil {
				conn.Close()
			}
		})
	}
	if logs := d.Logs(); strings.Contains(logs, "correct horse") || strings.Contains(logs, hash) {
		t.Fatal("a password or its hash reached the log")
	}
}

// TestShutdownDrains checks that a transfer running at shutdown finishes,
// and that new connections are refused meanwhile.
func TestShutdownDrains(t *testing.T) {
	alice, cu := newUser(t, "alice")
	d := start(t, "memory", cu)
	c := sftpClient(t, d, alice)
	f, err := c.Create("/slow")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("first half ")); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- d.Stop() }()
	// Wait until the listener is closed, then finish the transfer.
	deadline := time.Now().Add(5 * time.Second)
	for {
		nc, err := net.DialTimeout("tcp", d.Addr, time.Second)
		if err != nil {
			break
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still open after Stop")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := f.Write([]byte("second half")); err != nil {
		t.Fatalf("write during drain: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close during drain: %v", err)
	}
	c.Close()
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v (want a clean drain)", err)
	}
	if !strings.Contains(d.Logs(), `"op":"upload","path":"/slow","bytes":22`) {
		t.Fatalf("transfer not logged as complete:\n%s", d.Logs())
	}
}

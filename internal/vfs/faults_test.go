package vfs_test

// Storage faults (disk full, a read-only store, a vanished home, I/O
// errors) injected beneath the real session stack and served by the real
// SFTP front end: the client must get a clear status naming only its own
// path, the daemon must keep serving, and nothing may name a host path.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"

	"github.com/pkg/sftp"
	"github.com/spf13/afero"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/session"
	"github.com/wharf-sftp/wharf/internal/sftpd"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// SFTP status codes (filexfer-02).
const (
	fxNoSuchFile = 2
	fxFailure    = 4
)

// faultServer is sftpd over a local store wrapped in a faultBackend.
type faultServer struct {
	addr  string
	root  string // storage root on disk
	f     *faults
	logs  *daemontest.SyncBuffer
	users map[string]ssh.Signer
}

// startFaultServer serves SFTP over a faulty local store; atomic puts
// uploads through vfs.Atomic, as uploads.atomic does.
func startFaultServer(t *testing.T, atomic bool) *faultServer {
	t.Helper()
	root := t.TempDir()
	local, err := vfs.NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	s := &faultServer{root: root, f: newFaults(), logs: &daemontest.SyncBuffer{}, users: map[string]ssh.Signer{}}
	var users []config.User
	for _, name := range []string{"alice", "bob"} {
		signer := newSigner(t)
		s.users[name] = signer
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
		users = append(users, config.User{Name: name, Home: "/" + name, PublicKeys: []string{line}})
	}
	dir, err := auth.NewDirectory(users)
	if err != nil {
		t.Fatal(err)
	}
	sessions := session.NewManager(faultBackend{Backend: local, f: s.f})
	sessions.SetAtomicUploads(atomic)
	srv, err := sftpd.New(sftpd.Config{
		HostKeys: []ssh.Signer{newSigner(t)},
		Gate:     session.NewGate(session.GateConfig{Users: func() *auth.Directory { return dir }, Sessions: sessions}),
		Log:      slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, sftpd.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		local.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	return s
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

// login opens an SFTP session as user; the error is the client's.
func (s *faultServer) login(t *testing.T, user string) (*sftp.Client, error) {
	t.Helper()
	conn, err := ssh.Dial("tcp", s.addr, &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(s.users[user])},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // a host key made for this test
		Timeout:         10 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("ssh: %w", err)
	}
	c, err := sftp.NewClient(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("sftp: %w", err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	return c, nil
}

func (s *faultServer) mustLogin(t *testing.T, user string) *sftp.Client {
	t.Helper()
	c, err := s.login(t, user)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// status returns the SFTP status code and message the client saw.
func status(err error) (uint32, string) {
	var se *sftp.StatusError
	if errors.As(err, &se) {
		return se.Code, se.Error()
	}
	if errors.Is(err, fs.ErrNotExist) {
		// pkg/sftp's client turns SSH_FX_NO_SUCH_FILE into fs.ErrNotExist.
		return fxNoSuchFile, err.Error()
	}
	return 0, fmt.Sprint(err)
}

func put(c *sftp.Client, name string, data []byte) error {
	f, err := c.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func get(c *sftp.Client, name string) ([]byte, error) {
	f, err := c.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// errnoOn fails the listed operations with errno.
func errnoOn(errno syscall.Errno, ops ...string) func(op, name string) syscall.Errno {
	return func(op, _ string) syscall.Errno {
		for _, o := range ops {
			if o == op {
				return errno
			}
		}
		return 0
	}
}

// faultCase is one operation run while the store fails.
type faultCase struct {
	name  string
	fail  func(op, name string) syscall.Errno
	space int64 // bytes writes may still add; -1: unlimited
	// act runs the operation under the fault and returns its error.
	act      func(c *sftp.Client) error
	wantCode uint32
	wantMsg  string
}

var payload = bytes.Repeat([]byte("wharf "), 50000) // 300,000 bytes

var faultCases = []faultCase{
	{"disk full on create", errnoOn(syscall.ENOSPC, "create"), -1,
		func(c *sftp.Client) error { _, err := c.Create("/new.txt"); return err },
		fxFailure, "/new.txt: no space left on device"},
	{"disk full during upload", nil, 100_000,
		func(c *sftp.Client) error { return put(c, "/big.bin", payload) },
		fxFailure, "/big.bin: no space left on device"},
	{"disk full on close", errnoOn(syscall.ENOSPC, "close"), -1,
		func(c *sftp.Client) error { return put(c, "/closing.bin", payload) },
		fxFailure, "/closing.bin: no space left on device"},
	{"disk full on mkdir", errnoOn(syscall.ENOSPC, "mkdir"), -1,
		func(c *sftp.Client) error { return c.Mkdir("/dir") },
		fxFailure, "/dir: no space left on device"},
	{"read-only store: upload", errnoOn(syscall.EROFS, "create", "mkdir", "remove", "rename", "chmod", "chtimes", "truncate"), -1,
		func(c *sftp.Client) error { return put(c, "/ro.txt", payload) },
		fxFailure, "/ro.txt: read-only file system"},
	{"read-only store: mkdir", errnoOn(syscall.EROFS, "mkdir"), -1,
		func(c *sftp.Client) error { return c.Mkdir("/ro-dir") },
		fxFailure, "/ro-dir: read-only file system"},
	{"read-only store: remove", errnoOn(syscall.EROFS, "remove"), -1,
		func(c *sftp.Client) error { return c.Remove("/existing.txt") },
		fxFailure, "/existing.txt: read-only file system"},
	{"read-only store: rename", errnoOn(syscall.EROFS, "rename"), -1,
		func(c *sftp.Client) error { return c.PosixRename("/existing.txt", "/moved.txt") },
		fxFailure, "/existing.txt: read-only file system"},
	{"read-only store: setstat", errnoOn(syscall.EROFS, "chmod"), -1,
		func(c *sftp.Client) error { return c.Chmod("/existing.txt", 0o600) },
		fxFailure, "/existing.txt: read-only file system"},
	{"read-only store: truncate", errnoOn(syscall.EROFS, "truncate"), -1,
		func(c *sftp.Client) error { return c.Truncate("/existing.txt", 1) },
		fxFailure, "/existing.txt: read-only file system"},
	{"I/O error on read", errnoOn(syscall.EIO, "read"), -1,
		func(c *sftp.Client) error { _, err := get(c, "/existing.txt"); return err },
		fxFailure, "/existing.txt: input/output error"},
	{"I/O error on listing", errnoOn(syscall.EIO, "readdir"), -1,
		func(c *sftp.Client) error { _, err := c.ReadDir("/"); return err },
		fxFailure, "input/output error"},
	{"home gone: list", errnoOn(syscall.ENOENT, "open", "stat"), -1,
		func(c *sftp.Client) error { _, err := c.ReadDir("/"); return err },
		fxNoSuchFile, ""},
	{"home gone: upload", errnoOn(syscall.ENOENT, "create"), -1,
		func(c *sftp.Client) error { return put(c, "/gone.txt", payload) },
		fxNoSuchFile, ""},
}

// TestStorageFaults runs each fault with uploads written in place and
// through vfs.Atomic (the default).
func TestStorageFaults(t *testing.T) {
	for _, tc := range faultCases {
		for _, atomic := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/atomic=%v", tc.name, atomic), func(t *testing.T) {
				testStorageFault(t, atomic, tc)
			})
		}
	}
}

func testStorageFault(t *testing.T, atomic bool, tc faultCase) {
	s := startFaultServer(t, atomic)
	c := s.mustLogin(t, "alice")
	if err := put(c, "/existing.txt", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	bob := s.mustLogin(t, "bob")

	s.f.set(tc.fail, tc.space)
	err := tc.act(c)
	s.f.set(nil, -1)
	code, msg := status(err)
	if err == nil || code != tc.wantCode || !strings.Contains(msg, tc.wantMsg) {
		t.Fatalf("got %v (code %d), want code %d with %q", err, code, tc.wantCode, tc.wantMsg)
	}
	if strings.Contains(msg, ".wharf-") {
		t.Errorf("the client was told a temporary name: %q", msg)
	}
	if strings.Contains(msg, s.root) {
		t.Errorf("the client was told a host path: %q", msg)
	}

	// The same session, and another user's, carry on.
	for who, cl := range map[string]*sftp.Client{"alice": c, "bob": bob} {
		if err := put(cl, "/after.txt", []byte(who)); err != nil {
			t.Fatalf("%s: upload after the fault: %v", who, err)
		}
		if got, err := get(cl, "/after.txt"); err != nil || string(got) != who {
			t.Fatalf("%s: download after the fault: %q, %v", who, got, err)
		}
	}
	if got, err := get(c, "/existing.txt"); err != nil || string(got) != "kept" {
		t.Fatalf("existing file after the fault: %q, %v", got, err)
	}
	if logs := s.logs.String(); strings.Contains(logs, s.root) {
		t.Errorf("the log names the storage root:\n%s", logs)
	}
}

// TestDiskFullPartialUpload checks what an upload cut short by a full disk
// leaves: with atomic uploads nothing under the final name (the bytes are
// kept aside for a resume); written in place, the bytes that fitted, under
// the final name. Either way a failed transfer is logged with the reason.
func TestDiskFullPartialUpload(t *testing.T) {
	for _, atomic := range []bool{false, true} {
		t.Run(fmt.Sprintf("atomic=%v", atomic), func(t *testing.T) {
			s := startFaultServer(t, atomic)
			c := s.mustLogin(t, "alice")
			s.f.set(nil, 100_000)
			err := put(c, "/big.bin", bytes.Repeat([]byte("x"), 300_000))
			s.f.set(nil, -1)
			if code, _ := status(err); code != fxFailure {
				t.Fatalf("upload onto a full disk: %v, want SSH_FX_FAILURE", err)
			}
			fi, err := os.Stat(filepath.Join(s.root, "alice", "big.bin"))
			switch {
			case atomic && err == nil:
				t.Errorf("a half upload of %d bytes sits under the final name", fi.Size())
			case atomic && !errors.Is(err, fs.ErrNotExist):
				t.Fatal(err)
			case !atomic && err != nil:
				t.Fatalf("no partial file: %v", err)
			case !atomic && fi.Size() > 100_000:
				t.Fatalf("partial file has %d bytes, more than the %d that fitted", fi.Size(), 100_000)
			}
			if _, err := c.Stat("/big.bin"); atomic && err == nil {
				// Stat shows the partial so that a client can resume; a
				// listing must not.
				entries, err := c.ReadDir("/")
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					if strings.Contains(e.Name(), "big.bin") {
						t.Errorf("the listing shows %q after a failed atomic upload", e.Name())
					}
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(s.logs.String(), `"msg":"transfer"`) || !strings.Contains(s.logs.String(), `"outcome":"failed"`) {
				if time.Now().After(deadline) {
					t.Fatalf("no failed transfer line:\n%s", s.logs.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if !strings.Contains(s.logs.String(), "no space left on device") {
				t.Errorf("the failed transfer does not say why")
			}
		})
	}
}

// TestHomeUnavailableAtLogin: a home that cannot be opened (a store
// mounted read-only before the user's first login) refuses the session, the
// daemon keeps serving, and the next login works once the store is back.
func TestHomeUnavailableAtLogin(t *testing.T) {
	s := startFaultServer(t, true)
	s.f.set(func(op, name string) syscall.Errno {
		if op == "home" && name == "/alice" {
			return syscall.EROFS
		}
		return 0
	}, -1)
	_, err := s.login(t, "alice")
	if err == nil {
		t.Fatal("login succeeded with an unusable home")
	}
	// What the client is told today: the connection just ends.
	t.Logf("alice with an unusable home: %v", err)
	bob := s.mustLogin(t, "bob")
	if err := put(bob, "/bob.txt", []byte("bob")); err != nil {
		t.Fatalf("bob, whose home is fine: %v", err)
	}
	s.f.set(nil, -1)
	c := s.mustLogin(t, "alice")
	if err := put(c, "/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, `"msg":"open session"`) || !strings.Contains(logs, "read-only file system") {
		t.Errorf("no log line says why the session was refused:\n%s", logs)
	}
	if strings.Contains(logs, s.root) {
		t.Errorf("the log names the storage root")
	}
}

// TestVanishedHome deletes a user's home on disk while the session is
// open: every operation fails with a status naming only the client's path,
// and the next login creates the home again.
func TestVanishedHome(t *testing.T) {
	s := startFaultServer(t, true)
	c := s.mustLogin(t, "alice")
	if err := put(c, "/before.txt", []byte("before")); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(s.root, "alice")
	if err := os.RemoveAll(home); err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"list":     func() error { _, err := c.ReadDir("/"); return err }(),
		"download": func() error { _, err := get(c, "/before.txt"); return err }(),
		"upload":   put(c, "/after.txt", []byte("after")),
		"mkdir":    c.Mkdir("/d"),
		"stat":     func() error { _, err := c.Stat("/before.txt"); return err }(),
	} {
		// The session's os.Root still holds the deleted directory, in which
		// the kernel finds nothing, not even ".".
		code, msg := status(err)
		if code != fxNoSuchFile {
			t.Errorf("%s in a vanished home: %v (code %d), want SSH_FX_NO_SUCH_FILE", what, err, code)
		}
		if strings.Contains(msg, s.root) {
			t.Errorf("%s: the client was told a host path: %q", what, msg)
		}
	}
	if _, err := os.Stat(home); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the old session recreated the home: %v", err)
	}

	again := s.mustLogin(t, "alice")
	if err := put(again, "/new.txt", []byte("new")); err != nil {
		t.Fatalf("upload in a fresh session: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(home, "new.txt")); err != nil || string(got) != "new" {
		t.Fatalf("home not recreated on disk: %q, %v", got, err)
	}
}

// TestMemoryBackendBounds: the memory backend refuses what a disk refuses,
// where afero's MemMapFs would panic (a negative offset), allocate a hole
// at once (a write or truncate far past the end), or accept a name no disk
// takes.
func TestMemoryBackendBounds(t *testing.T) {
	h, err := vfs.NewMemory().Home("/alice")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := afero.WriteFile(h, "/f", []byte("12345"), 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := h.OpenFile("/f", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 8)
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"write at a negative offset", second(f.WriteAt([]byte("x"), -1)), syscall.EINVAL},
		{"write at 2^63-1", second(f.WriteAt([]byte("xy"), math.MaxInt64)), syscall.EFBIG},
		{"write 1 TiB past the end", second(f.WriteAt([]byte("x"), 1<<40)), syscall.EFBIG},
		{"read at a negative offset", second(f.ReadAt(buf, -5)), syscall.EINVAL},
		{"read past the end", second(f.ReadAt(buf, 100)), io.EOF},
		{"seek before the start", second(f.Seek(-1, io.SeekStart)), syscall.EINVAL},
		{"seek past 2^63", second(f.Seek(math.MaxInt64, io.SeekEnd)), syscall.EINVAL},
		{"truncate to 1 TiB", f.Truncate(1 << 40), syscall.EFBIG},
		{"truncate to -1", h.Truncate("/f", -1), syscall.EINVAL},
		{"create with a NUL byte", second(h.OpenFile("/a\x00b", os.O_CREATE|os.O_WRONLY, 0o640)), syscall.EINVAL},
		{"create a 256-byte name", second(h.OpenFile("/"+strings.Repeat("n", 256), os.O_CREATE|os.O_WRONLY, 0o640)), syscall.ENAMETOOLONG},
		{"mkdir a 4097-byte path", h.MkdirAll(strings.Repeat("/d", 2049), 0o750), syscall.ENAMETOOLONG},
		{"create in a missing directory", second(h.OpenFile("/missing/x", os.O_CREATE|os.O_WRONLY, 0o640)), fs.ErrNotExist},
		{"create under a file", second(h.OpenFile("/f/x", os.O_CREATE|os.O_WRONLY, 0o640)), syscall.ENOTDIR},
		{"mkdir under a file", h.Mkdir("/f/d", 0o750), syscall.ENOTDIR},
		{"mkdir -p through a file", h.MkdirAll("/f/d/e", 0o750), syscall.ENOTDIR},
		{"rename into a missing directory", h.Rename("/f", "/missing/f"), fs.ErrNotExist},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	// A sparse write within bounds still works, and the file is intact.
	if _, err := f.WriteAt([]byte("!"), 10); err != nil {
		t.Fatal(err)
	}
	if got, err := afero.ReadFile(h, "/f"); err != nil || string(got) != "12345\x00\x00\x00\x00\x00!" {
		t.Fatalf("file after the refusals: %q, %v", got, err)
	}
	if fi, err := h.Stat("/missing"); err == nil {
		t.Errorf("a refused create made the directory /missing (%v)", fi.Mode())
	}
}

// second returns the error of a two-result call.
func second[T any](_ T, err error) error { return err }

package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/syncbuf"
)

// listening returns the addresses of the "listening" lines in logs, by
// proto (and mode for FTPS).
func listening(logs string) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != "listening" {
			continue
		}
		name, _ := m["proto"].(string)
		if mode, ok := m["mode"].(string); ok {
			name += "-" + mode
		}
		if name == "" {
			name, _ = m["component"].(string)
		}
		out[name], _ = m["addr"].(string)
	}
	return out
}

// TestServeOwnsEveryGoroutine runs `wharf serve` in-process with every
// listener (SFTP, explicit and implicit FTPS, admin), holds an SFTP session
// and an FTPS control connection open across the shutdown, and checks that
// when serve returns, every goroutine it started has ended: the
// listeners' Serve loops, the drain, the tuners and the second-signal
// watcher (which used to block for ever when Run ended without a signal).
func TestServeOwnsEveryGoroutine(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	signer, _ := ssh.NewSignerFromKey(priv)
	dir := t.TempDir()
	doc := fmt.Sprintf(`state_dir: %q
shutdown_grace: 1s
log: {format: json, level: info}
sftp: {listen: "127.0.0.1:0"}
ftps: {listen: "127.0.0.1:0", implicit_listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
storage: {backend: local, root: %q}
users:
  - name: alice
    home: /alice
    public_keys: [%q]
`, filepath.Join(dir, "state"), filepath.Join(dir, "data"), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))))
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o750); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, doc)

	// os/signal starts one goroutine for the life of the process on its
	// first Notify: start it now, so that it counts in before.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT)
	signal.Stop(sigs)
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		cmd := New("test")
		cmd.SetArgs([]string{"serve", "--config", path})
		cmd.SetOut(logs)
		cmd.SetErr(logs)
		done <- cmd.ExecuteContext(ctx)
	}()
	var addrs map[string]string
	for deadline := time.Now().Add(20 * time.Second); len(addrs) < 4; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("listeners not up after 20s: %v\n%s", addrs, logs.String())
		}
		addrs = listening(logs.String())
	}

	// An SFTP session held open, a file being listed.
	conn, err := ssh.Dial("tcp", addrs["sftp"], &ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("ssh login: %v\n%s", err, logs.String())
	}
	defer conn.Close()
	client, err := sftp.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.ReadDir("/"); err != nil {
		t.Fatal(err)
	}
	// An FTPS control connection that never logs in.
	ftp, err := net.DialTimeout("tcp", addrs["ftps-explicit"], 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ftp.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Logf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not return 30s after its context ended\n%s", logs.String())
	}
	// serve has returned: whatever it started has ended, apart from
	// goroutines that are still unwinding their last deferred calls.
	var after int
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if after = runtime.NumGoroutine(); after <= before || time.Now().After(deadline) {
			break
		}
	}
	if after > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before serve, %d after it returned:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

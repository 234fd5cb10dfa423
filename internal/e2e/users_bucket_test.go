package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// usersPoll is the users_poll of these tests' daemons.
const usersPoll = time.Second

// startBucketDaemon starts an s3 daemon whose users_dir is a folder of a
// second bucket of the same store, polled every usersPoll. It returns the
// users_dir. The harness writes the config without users_dir; it is added
// and the daemon restarted, as an operator moving users to a bucket does.
func startBucketDaemon(t *testing.T, users ...*testUser) (*daemon, string) {
	t.Helper()
	d := startDaemon(t, daemonOpts{Users: users, Backend: "s3"})
	url := "s3://" + d.S3.NewBucket(t) + "/wharf/users/"
	f, err := os.OpenFile(d.ConfigPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(f, "users_dir: %s\nusers_poll: %s\n", url, usersPoll); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	d.Restart(t)
	return d, url
}

// liveSFTP is OpenSSH sftp reading commands from a pipe: a session that
// stays open until the server closes it.
type liveSFTP struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	exited chan struct{}
}

func openLiveSFTP(t *testing.T, d *daemon, u *testUser, opts ...string) *liveSFTP {
	t.Helper()
	args := append(append(sftpArgs(d, u), opts...), "-b", "-", target(u))
	cmd := exec.Command(requireClient(t, "sftp"), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &liveSFTP{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), exited: make(chan struct{})}
	// Read pwd's answer before Wait may close stdout.
	if _, err := fmt.Fprintln(stdin, "pwd"); err != nil {
		t.Fatal(err)
	}
	answered := make(chan string, 1)
	go func() {
		var got strings.Builder
		for {
			line, err := s.out.ReadString('\n')
			got.WriteString(line)
			if err != nil || strings.HasPrefix(line, "Remote working directory") {
				answered <- got.String()
				_, _ = io.Copy(io.Discard, s.out)
				_ = cmd.Wait()
				close(s.exited)
				return
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-s.exited
		}
	})
	select {
	case got := <-answered:
		if !strings.Contains(got, "Remote working directory: /") {
			t.Fatalf("live sftp session of %s: %q", u.Name, got)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("live sftp session of %s did not answer pwd", u.Name)
	}
	return s
}

// closedWithin reports whether the session ended within d. sftp notices
// that its connection is gone only when it next sends a request, so it is
// given one every 100ms.
func (s *liveSFTP) closedWithin(d time.Duration) bool {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(d)
	for {
		select {
		case <-s.exited:
			return true
		case <-deadline:
			return false
		case <-tick.C:
			_, _ = fmt.Fprintln(s.stdin, "ls") // a request (pwd is answered locally); fails once sftp has exited
		}
	}
}

// open reports whether the session is still up, after a request.
func (s *liveSFTP) open() bool {
	_, _ = fmt.Fprintln(s.stdin, "ls")
	return !s.closedWithin(300 * time.Millisecond)
}

// canLogIn reports whether OpenSSH sftp logs u in and lists its home.
func canLogIn(t *testing.T, d *daemon, u *testUser) bool {
	t.Helper()
	_, _, err := sftpBatchTimeout(t, d, u, "ls\n", 30*time.Second)
	return err == nil
}

// TestUsersBucket: a daemon whose users are objects of a bucket, edited
// with the real `wharf user`: an added user logs in with OpenSSH within
// users_poll and a margin; a removed key stops working and its live
// session is closed; a malformed object is reported with its key and line
// by the daemon and by `wharf config check`, while the users in force keep
// working.
func TestUsersBucket(t *testing.T) {
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	d, url := startBucketDaemon(t, alice)

	start := time.Now()
	out := wharfUser(t, d.ConfigPath, "", "add", "bob", "--home", "/bob", "--key-file", bob.KeyFile+".pub")
	if want := url + "bob.yaml: added user \"bob\" (new object)"; !strings.Contains(out, want) {
		t.Errorf("wharf user add printed %q, want %q", out, want)
	}
	added := time.Now()
	limit := usersPoll + 3*time.Second
	for !canLogIn(t, d, bob) {
		if time.Since(added) > limit {
			t.Fatalf("bob cannot log in %v after `wharf user add`", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("`wharf user add` took %v; from its exit to bob's first OpenSSH login: %v (users_poll %v)",
		added.Sub(start).Round(time.Millisecond), time.Since(added).Round(time.Millisecond), usersPoll)
	if u := listUsers(t, d.ConfigPath)["bob"]; u.File != url+"bob.yaml" || u.Line != 1 || u.Keys != 1 {
		t.Errorf("wharf user list: bob = %+v", u)
	}

	// The key removed: the live session ends, the key no longer logs in.
	live := openLiveSFTP(t, d, bob)
	mark := d.LogMark()
	wharfUser(t, d.ConfigPath, "", "key", "remove", "bob", bob.Fingerprint())
	removed := time.Now()
	if !live.closedWithin(limit) {
		t.Fatalf("bob's live session is open %v after his key was removed", limit)
	}
	t.Logf("from `wharf user key remove`'s exit to the end of bob's live OpenSSH session: %v", time.Since(removed).Round(time.Millisecond))
	d.WaitLogSince(t, mark, logMatch("msg", "session revoked", "user", "bob"), 5*time.Second)
	if canLogIn(t, d, bob) {
		t.Error("bob's removed key still logs in")
	}

	// A malformed object, written by another tool: named with its line by
	// the daemon and by `wharf config check`; alice keeps working.
	mark = d.LogMark()
	bucket, _, _ := strings.Cut(strings.TrimPrefix(url, "s3://"), "/")
	key := "wharf/users/carol.yaml"
	if _, err := d.S3.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: &key,
		Body: strings.NewReader("name: carol\nhome: /carol\npublic_keys:\n  - not a key\n")}); err != nil {
		t.Fatal(err)
	}
	l := d.WaitLogSince(t, mark, logMatch("msg", "invalid config"), limit)
	if want := url + "carol.yaml:4: public_keys[0]"; !strings.Contains(fmt.Sprint(l["err"]), want) {
		t.Errorf("the daemon logged %v, want %q", l["err"], want)
	}
	_, stderr, err := runCmd(t, time.Minute, wharfBin, "config", "check", "--config", d.ConfigPath)
	if err == nil || !strings.Contains(stderr, url+"carol.yaml:4: public_keys[0]") {
		t.Errorf("wharf config check: %v\n%s", err, stderr)
	}
	if !canLogIn(t, d, alice) {
		t.Error("alice cannot log in while a user object is malformed")
	}
}

// TestUsersBucketConcurrentCLI: two operators, each with a copy of the
// config file on their own machine, run `wharf user key add` on one user
// at once, round after round. An edit either lands or is refused with
// "changed concurrently, try again"; none is ever lost by being
// overwritten. (internal/configedit forces the overlap deterministically.)
func TestUsersBucketConcurrentCLI(t *testing.T) {
	alice := newUser(t, "alice")
	d, url := startBucketDaemon(t, alice)
	wharfUser(t, d.ConfigPath, "", "add", "bob", "--home", "/bob")
	configs := []string{d.ConfigPath, filepath.Join(t.TempDir(), "wharf.yaml")}
	data, err := os.ReadFile(d.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(configs[1], data, 0o600); err != nil {
		t.Fatal(err)
	}
	conflicts := 0
	const rounds = 6
	for round := range rounds {
		keys := []*testUser{newUser(t, fmt.Sprintf("k%da", round)), newUser(t, fmt.Sprintf("k%db", round))}
		type result struct {
			stdout, stderr string
			err            error
		}
		res := make([]result, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				r := &res[i]
				r.stdout, r.stderr, r.err = runCmd(t, time.Minute, wharfBin, "user", "key", "add", "bob", keys[i].PubKey, "--config", configs[i])
			})
		}
		wg.Wait()
		fps := listUsers(t, d.ConfigPath)["bob"].Fingerprints
		for i, r := range res {
			has := strings.Contains(strings.Join(fps, " "), keys[i].Fingerprint())
			switch {
			case r.err == nil && !has:
				t.Errorf("round %d: operator %d's edit succeeded but its key is not there (overwritten): %v", round, i, fps)
			case r.err != nil && !strings.Contains(r.stderr, url+"bob.yaml: changed concurrently, try again"):
				t.Errorf("round %d: operator %d: %v\n%s", round, i, r.err, r.stderr)
			case r.err != nil && has:
				t.Errorf("round %d: operator %d was refused but its key is there", round, i)
			case r.err != nil:
				conflicts++
			}
		}
		if res[0].err != nil && res[1].err != nil {
			t.Errorf("round %d: both edits refused", round)
		}
	}
	t.Logf("%d of %d rounds of two simultaneous `wharf user key add` had one refused as changed concurrently; no edit was lost", conflicts, rounds)
}

package e2e

// The credential lifecycle through the real binary and real clients: keys
// that expire while the daemon runs, a rotation with a grace, keys and
// passwords `wharf user` issues, a password that expires over FTPS.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/events"
)

// keyExpiry returns the expires_at of user's key fp, from `wharf user list
// --json`: what the CLI wrote, to the second.
func keyExpiry(t *testing.T, path, user, fp string) time.Time {
	t.Helper()
	var infos []struct {
		Name       string `json:"name"`
		PublicKeys []struct {
			Fingerprint string    `json:"fingerprint"`
			ExpiresAt   time.Time `json:"expires_at"`
		} `json:"public_keys"`
	}
	out := wharfUser(t, path, "", "list", "--json")
	if err := json.Unmarshal([]byte(out), &infos); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	for _, u := range infos {
		for _, k := range u.PublicKeys {
			if u.Name == user && k.Fingerprint == fp {
				return k.ExpiresAt
			}
		}
	}
	t.Fatalf("list --json has no key %s of %s:\n%s", fp, user, out)
	return time.Time{}
}

// untilPast sleeps until t has passed (by a margin for the daemon's clock
// reading).
func untilPast(t time.Time) { time.Sleep(time.Until(t) + 100*time.Millisecond) }

// auditEvents reads the audit log's events of one type.
func auditEvents(t *testing.T, path, typ string) []events.Event {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		var e events.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// TestKeyExpiresWhileRunning: a key added with `wharf user key add
// --expires 8s` logs in with OpenSSH before its expiry and is refused from
// then on, with a log line and a login_failed event naming it and "key
// expired", while the user's other key keeps working.
func TestKeyExpiresWhileRunning(t *testing.T) {
	requireClient(t, "sftp")
	alice := newUser(t, "alice")
	expiring := newUser(t, "alice") // a second key of alice's, given an expiry
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}, Extra: "audit_log:\n  path: " + audit + "\n"})

	mark := d.LogMark()
	wharfUser(t, d.ConfigPath, "", "key", "add", "alice", expiring.PubKey, "--expires", "8s", "--comment", "laptop")
	until := keyExpiry(t, d.ConfigPath, "alice", expiring.Fingerprint())
	d.WaitLogSince(t, mark, logMatch("msg", "config reloaded"), 5*time.Second)
	sftpOK(t, d, expiring, "ls\n")
	if time.Now().After(until) {
		t.Fatalf("the login before the expiry finished after it (%v): the machine is too slow for this test", until)
	}
	d.WaitLogSince(t, mark, logMatch("msg", "login", "outcome", "ok", "fingerprint", expiring.Fingerprint()), 5*time.Second)

	untilPast(until)
	mark = d.LogMark()
	out := sftpFails(t, d, expiring, "ls\n")
	if !strings.Contains(out, "Permission denied") {
		t.Errorf("OpenSSH's refusal: %s", out)
	}
	l := d.WaitLogSince(t, mark, logMatch("msg", "login", "outcome", "failed", "user", "alice", "fingerprint", expiring.Fingerprint()), 5*time.Second)
	if e, _ := l["err"].(string); !strings.Contains(e, "key expired: "+expiring.Fingerprint()+" expired at "+until.UTC().Format(time.RFC3339)) {
		t.Errorf("login failed line: %v", l)
	}
	sftpOK(t, d, alice, "ls\n")

	waitFor(t, 5*time.Second, "the login_failed event in the audit log", func() bool {
		for _, e := range auditEvents(t, audit, events.LoginFailed) {
			if e.User == "alice" && e.Method == "publickey" && strings.Contains(e.Error, "key expired: "+expiring.Fingerprint()) {
				return true
			}
		}
		return false
	})
}

// TestKeyRotationGrace: `wharf user key rotate --grace 3s` on a running
// daemon: old and new key both log in with OpenSSH during the grace, only
// the new one after it.
func TestKeyRotationGrace(t *testing.T) {
	requireClient(t, "sftp")
	old := newUser(t, "acme")
	next := newUser(t, "acme")
	d := startDaemon(t, daemonOpts{Users: []*testUser{old}})
	sftpOK(t, d, old, "ls\n")
	if _, _, err := sftpBatch(t, d, next, "ls\n"); err == nil {
		t.Fatal("the new key logs in before the rotation")
	}

	// A session with the old key, open through the rotation: it lasts
	// the grace, and ends with it, without a reload.
	live := openLiveSFTP(t, d, old)
	mark := d.LogMark()
	start := time.Now()
	out := wharfUser(t, d.ConfigPath, "", "key", "rotate", "acme", "--key-file", next.KeyFile+".pub", "--grace", "3s")
	if !strings.Contains(out, "new key "+next.Fingerprint()) || !strings.Contains(out, "old key "+old.Fingerprint()+" expires ") {
		t.Errorf("rotate printed:\n%s", out)
	}
	until := keyExpiry(t, d.ConfigPath, "acme", old.Fingerprint())
	changed := d.WaitLogSince(t, mark, logMatch("msg", "user changed", "user", "acme"), 5*time.Second)
	if fmt.Sprint(changed["keys_added"]) != "["+next.Fingerprint()+"]" ||
		fmt.Sprint(changed["keys_expiry"]) != "["+old.Fingerprint()+" until "+until.UTC().Format(time.RFC3339)+"]" {
		t.Errorf("user changed line: %v", changed)
	}
	reloaded := time.Since(start)

	// Both keys, at once: the grace is short.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, u := range []*testUser{old, next} {
		wg.Go(func() {
			_, stderr, err := sftpBatch(t, d, u, "ls\n")
			if err != nil {
				errs[i] = fmt.Errorf("%w: %s", err, stderr)
			}
		})
	}
	wg.Wait()
	both := time.Since(start)
	if time.Now().After(until) {
		t.Fatalf("the logins during the grace ended after it (%v): the machine is too slow for this test", until)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("during the grace, key %d: %v", i, err)
		}
	}

	if !live.open() {
		t.Error("the old key's session ended during the grace")
	}
	untilPast(until)
	if !live.closedWithin(3 * time.Second) {
		t.Error("the old key's session is open 3s after the grace ended")
	}
	cut := time.Since(until)
	mark = d.LogMark()
	sftpFails(t, d, old, "ls\n")
	refused := time.Since(start)
	d.WaitLogSince(t, mark, logMatch("msg", "login", "outcome", "failed", "fingerprint", old.Fingerprint()), 5*time.Second)
	sftpOK(t, d, next, "ls\n")
	t.Logf("rotate: reloaded %v after the command, both keys logged in by %v; old key (grace ending %v after it) refused at %v, its live session closed %v after the grace",
		reloaded.Round(time.Millisecond), both.Round(time.Millisecond), until.Sub(start).Round(time.Millisecond), refused.Round(time.Millisecond), cut.Round(time.Millisecond))
}

// TestIssuedKeys: users added with `--generate-key` log in with the files
// wharf wrote: the OpenSSH key with OpenSSH sftp (StrictHostKeyChecking=yes),
// the .ppk, which Debian's puttygen reads as the same key, with PuTTY's
// psftp; ed25519 and rsa.
func TestIssuedKeys(t *testing.T) {
	requireClient(t, "sftp")
	puttygen := requireClient(t, "puttygen")
	requireClient(t, "psftp")
	d := startDaemon(t, daemonOpts{})
	out := filepath.Join(t.TempDir(), "issued")
	mark := d.LogMark()
	for _, u := range []struct{ name, typ string }{{"acme", "ed25519"}, {"initech", "rsa"}} {
		stdout := wharfUser(t, d.ConfigPath, "", "add", u.name, "--home", "/"+u.name, "--generate-key", "--key-type", u.typ, "--out", out)
		if !strings.Contains(stdout, "generated an "+u.typ+" key for user \""+u.name+"\"") {
			t.Errorf("user add printed:\n%s", stdout)
		}
	}
	waitFor(t, 5*time.Second, "both users loaded", func() bool {
		return d.pollLogCount(mark, logMatch("msg", "user added")) == 2
	})

	for _, name := range []string{"acme_ed25519", "initech_rsa"} {
		user, _, _ := strings.Cut(name, "_")
		priv := filepath.Join(out, name)
		for path, mode := range map[string]os.FileMode{priv: 0o600, priv + ".ppk": 0o600, priv + ".pub": 0o644} {
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
				t.Errorf("%s: %v, %v; want %v", path, fi, err, mode)
			}
		}
		pubLine, err := os.ReadFile(priv + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey(pubLine)
		if err != nil {
			t.Fatal(err)
		}
		fp := ssh.FingerprintSHA256(pub)
		u := &testUser{Name: user, Home: "/" + user, KeyFile: priv, pub: pub}

		// PuTTYgen reads the .ppk (its MAC holds) as the same key.
		got, stderr, err := runCmd(t, 30*time.Second, puttygen, priv+".ppk", "-O", "public-openssh")
		if err != nil || strings.TrimSpace(got) != strings.TrimSpace(string(pubLine)) {
			t.Errorf("puttygen %s.ppk -O public-openssh: %v %s\n%q\nwant %q", name, err, stderr, got, pubLine)
		}
		if got, stderr, err = runCmd(t, 30*time.Second, puttygen, "-l", priv+".ppk"); err != nil || !strings.Contains(got, fp) {
			t.Errorf("puttygen -l %s.ppk: %v %s\n%s", name, err, stderr, got)
		}

		local := filepath.Join(t.TempDir(), "f")
		sum := writeRandomFile(t, local, 100_000)
		sftpOK(t, d, u, "put "+local+" /by-openssh\n")
		checkSum(t, "sftp put with the issued OpenSSH key", filepath.Join(d.HomeDir(u), "by-openssh"), sum)
		stdout := psftpOK(t, d, u, priv+".ppk", fmt.Sprintf("put %q /by-psftp\n", local))
		if !strings.Contains(stdout, psftpLoggedIn) {
			t.Errorf("psftp printed:\n%s", stdout)
		}
		checkSum(t, "psftp put with the issued .ppk", filepath.Join(d.HomeDir(u), "by-psftp"), sum)
		d.WaitLog(t, logMatch("msg", "login", "user", user, "outcome", "ok", "fingerprint", fp), 5*time.Second)
	}
}

// pollLogCount counts the lines after mark that match.
func (d *daemon) pollLogCount(mark int, match func(map[string]any) bool) int {
	n := 0
	for _, l := range d.logsSince(mark) {
		if match(l) {
			n++
		}
	}
	return n
}

// generatedPassword is what `--generate-password` prints.
var generatedPassword = regexp.MustCompile(`\(shown once; wharf stores only its hash\): ([A-Z2-7]{26})\n`)

// TestPasswordExpiresFTPS: a password set with `wharf user passwd
// --generate-password --expires 8s` logs in over explicit FTPS with curl
// and lftp until then, and is refused from then on with a log line; the
// old password stopped at once.
func TestPasswordExpiresFTPS(t *testing.T) {
	requireClient(t, "curl")
	requireClient(t, "lftp")
	bob := newUser(t, "bob")
	f := startFTPS(t, []*testUser{bob}, ftpsOpts{})
	curlFTPSOK(t, f, bob, "--list-only", ftpsURL(f, "/"))

	mark := f.LogMark()
	out := wharfUser(t, f.ConfigPath, "", "passwd", "bob", "--generate-password", "--expires", "8s")
	m := generatedPassword.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("passwd printed no password:\n%s", out)
	}
	f.ForbidInLogs(m[1])
	var infos []struct {
		Name              string    `json:"name"`
		PasswordExpiresAt time.Time `json:"password_expires_at"`
	}
	if err := json.Unmarshal([]byte(wharfUser(t, f.ConfigPath, "", "list", "--json")), &infos); err != nil || len(infos) != 1 {
		t.Fatalf("list --json: %v %+v", err, infos)
	}
	until := infos[0].PasswordExpiresAt
	f.WaitLogSince(t, mark, logMatch("msg", "user changed", "user", "bob", "password", "changed"), 5*time.Second)

	fresh := *bob
	fresh.Password = m[1]
	curlFTPSOK(t, f, &fresh, "--list-only", ftpsURL(f, "/"))
	lftpOK(t, f, &fresh, false, "ls\n")
	if _, _, err := curlFTPS(t, f, bob, bob.Password, "--list-only", ftpsURL(f, "/")); exitCode(err) != curlLoginDenied {
		t.Errorf("the old password after passwd: curl exit %d (%v), want %d", exitCode(err), err, curlLoginDenied)
	}
	if time.Now().After(until) {
		t.Fatalf("the logins before the expiry ended after it (%v): the machine is too slow for this test", until)
	}

	untilPast(until)
	mark = f.LogMark()
	if _, _, err := curlFTPS(t, f, &fresh, fresh.Password, "--list-only", ftpsURL(f, "/")); exitCode(err) != curlLoginDenied {
		t.Errorf("curl after the expiry: exit %d (%v), want %d (login denied)", exitCode(err), err, curlLoginDenied)
	}
	l := f.WaitLogSince(t, mark, logMatch("msg", "login", "outcome", "failed", "user", "bob", "method", "password"), 5*time.Second)
	if e, _ := l["err"].(string); !strings.Contains(e, "password expired at "+until.UTC().Format(time.RFC3339)) {
		t.Errorf("login failed line: %v", l)
	}
	if _, _, err := lftpRun(t, f, &fresh, false, "ls\n"); err == nil {
		t.Error("lftp logged in with the expired password")
	}
}

// TestExpiryWarningAndMetric: a key expiring in 3 days is in
// wharf_key_expiry_seconds at once (a reload) and logged as expiring soon
// when the daemon starts.
func TestExpiryWarningAndMetric(t *testing.T) {
	alice := newUser(t, "alice")
	soon := newUser(t, "alice")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}, Extra: adminExtra})
	mark := d.LogMark()
	wharfUser(t, d.ConfigPath, "", "key", "add", "alice", soon.PubKey, "--expires", "3d")
	d.WaitLogSince(t, mark, logMatch("msg", "config reloaded"), 5*time.Second)
	until := keyExpiry(t, d.ConfigPath, "alice", soon.Fingerprint())

	admin := d.WaitLog(t, logMatch("msg", "listening", "proto", "http"), startTimeout)
	series := fmt.Sprintf(`wharf_key_expiry_seconds{fingerprint=%q,user="alice"}`, soon.Fingerprint())
	v, ok := scrapeSeries(t, fmt.Sprintf("http://%s/metrics", admin["addr"]))[series]
	if left := time.Until(until).Seconds(); !ok || v < left-60 || v > left+60 {
		t.Errorf("%s = %v (present %v), want about %.0f", series, v, ok, left)
	}

	mark = d.LogMark()
	d.Restart(t)
	l := d.WaitLogSince(t, mark, logMatch("msg", "key expires soon", "user", "alice", "fingerprint", soon.Fingerprint()), 5*time.Second)
	if l["in"] != "3d" || l["expires_at"] != until.UTC().Format(time.RFC3339) || l["level"] != "WARN" {
		t.Errorf("key expires soon line: %v", l)
	}
	if n := d.pollLogCount(mark, logMatch("msg", "key expires soon")); n != 1 {
		t.Errorf("%d key expires soon lines, want 1 (alice's other key has no expiry)", n)
	}
}

// scrapeSeries reads every sample of a /metrics page, by its full series
// name (labels included).
func scrapeSeries(t *testing.T, url string) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return out
}

package e2e

import (
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/s3test"
)

// A fleet on loopback: three wharf daemons on one versitygw bucket
// (storage, users_dir and state_url all in it), behind a real HAProxy run
// with deploy/haproxy/haproxy.cfg, its example addresses replaced by the
// daemons'. HAProxy connects from 127.0.0.1, the one trusted PROXY
// protocol sender; partners connect from 127.0.0.2 and 127.0.0.3, to the
// balancer or to a daemon directly (a direct connection from 127.0.0.1
// would be refused for its missing header).

// fleetSize is the number of daemons in the fleet test.
const fleetSize = 3

// fleetWithin bounds what the fleet must agree on: a user added or
// removed, a ban (issue 14: within 10 s).
const fleetWithin = 10 * time.Second

// haproxyExample is the HAProxy example the README points to.
const haproxyExample = "../../deploy/haproxy/haproxy.cfg"

// fleet is three daemons sharing a bucket, and the balancer before them.
type fleet struct {
	daemons []*daemon
	front   int    // the balancer's port on 127.0.0.1
	ready   string // the balancer's statistics, in CSV (balancerReady)
	haproxy *bgClient
}

// fleetOpts is what a test changes of the fleet startFleet starts.
type fleetOpts struct {
	UploadLease string // storage.s3.upload_lease; "": the default
}

// startFleet starts the daemons at once on an empty state prefix, then
// HAProxy from the example config.
func startFleet(t *testing.T, users ...*testUser) *fleet {
	t.Helper()
	return startFleetOpts(t, fleetOpts{}, users...)
}

func startFleetOpts(t *testing.T, o fleetOpts, users ...*testUser) *fleet {
	t.Helper()
	store := s3test.Start(t)
	bucket := store.NewBucket(t)
	// The default failure threshold, 10: each daemon counts the failures
	// it sees and reports its count to the others through the bucket, so
	// that ten attempts the balancer spreads over three daemons (4+3+3)
	// ban. 127.0.9.0/24 is exempt: the polls for a user's arrival and
	// removal fail logins on purpose.
	extra := fmt.Sprintf(`users_dir: s3://%[1]s/fleet/users/
users_poll: 1s
state_url: s3://%[1]s/fleet/state/
admin:
  listen: 127.0.0.1:0
defender:
  allow: [127.0.9.0/24]
`, bucket) + proxyTrusted
	f := &fleet{}
	for range fleetSize {
		f.daemons = append(f.daemons, startDaemon(t, daemonOpts{Users: users, Backend: "s3", S3Shared: store, S3Bucket: bucket, S3Prefix: "homes/",
			S3UploadLease: o.UploadLease, StatePrefix: "fleet/state/identity/", Deferred: true, Extra: extra}))
	}
	for _, d := range f.daemons {
		d.launch(t)
	}
	cfg, err := os.ReadFile(haproxyExample)
	if err != nil {
		t.Fatal(err)
	}
	f.front = freePortOn(t, "127.0.0.1")
	text := string(cfg)
	subst := func(old, new string) {
		if strings.Count(text, old) != 1 {
			t.Fatalf("%s: %q is not there once; the fleet test substitutes it", haproxyExample, old)
		}
		text = strings.Replace(text, old, new, 1)
	}
	subst("bind :22\n", fmt.Sprintf("bind 127.0.0.1:%d\n", f.front))
	for i, d := range f.daemons {
		d.awaitListening(t)
		l := d.WaitLog(t, logMatch("msg", "listening", "proto", "http"), startTimeout)
		_, admin, err := net.SplitHostPort(fmt.Sprint(l["addr"]))
		if err != nil {
			t.Fatalf("admin listening line: %v", l)
		}
		subst(fmt.Sprintf("10.0.0.1%d:2022 port 9090\n", i+1), d.Addr+" port "+admin+"\n")
	}
	f.ready, f.haproxy = startHAProxyConfig(t, text)
	return f
}

// startHAProxyConfig runs HAProxy with cfg, a whole config, plus a
// frontend of HAProxy's statistics in CSV; it waits until every daemon of
// backend wharf_sftp has passed a /readyz check (L7OK), and returns the
// statistics' URL.
func startHAProxyConfig(t *testing.T, cfg string) (string, *bgClient) {
	t.Helper()
	bin := haproxyBin(t)
	port := freePortOn(t, "127.0.0.1")
	cfg += fmt.Sprintf(`
frontend stats
    mode http
    bind 127.0.0.1:%d
    stats enable
    stats uri /stats
`, port)
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmdErr(bin, "-c", "-f", path); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg)
	}
	var h *bgClient
	t.Cleanup(func() {
		if t.Failed() && h != nil {
			t.Logf("haproxy config:\n%s\nhaproxy output:\n%s", cfg, h.output())
		}
	})
	h = startBackground(t, nil, bin, "-db", "-f", path)
	url := fmt.Sprintf("http://127.0.0.1:%d/stats;csv", port)
	deadline := time.Now().Add(haproxyStart)
	for balancerReady(url) != "" {
		select {
		case <-h.done:
			t.Fatalf("haproxy exited at start:\n%s", h.output())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy's checks of /readyz not all passed after %v: %s\n%s", haproxyStart, balancerReady(url), h.output())
		}
	}
	return url, h
}

// balancerReady reads HAProxy's statistics at url and returns "" when
// each of the fleet's daemons is UP in backend wharf_sftp with its last
// check an HTTP one that passed (L7OK: /readyz answered 200), else what
// is not.
func balancerReady(url string) string {
	client := http.Client{Timeout: time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	rows, err := csv.NewReader(io.LimitReader(resp.Body, 1<<20)).ReadAll()
	if err != nil || len(rows) == 0 {
		return fmt.Sprintf("stats: %v", err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[strings.TrimPrefix(name, "# ")] = i
	}
	ok := 0
	var not []string
	for _, r := range rows[1:] {
		if r[col["pxname"]] != "wharf_sftp" || !strings.HasPrefix(r[col["svname"]], "wharf") {
			continue
		}
		if r[col["status"]] == "UP" && r[col["check_status"]] == "L7OK" {
			ok++
		} else {
			not = append(not, r[col["svname"]]+": "+r[col["status"]]+" "+r[col["check_status"]])
		}
	}
	if ok != fleetSize {
		return fmt.Sprintf("%d of %d daemons UP with /readyz passed; %v", ok, fleetSize, not)
	}
	return ""
}

// runCmdErr runs a short command (haproxy -c) and returns its output.
func runCmdErr(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// sftpDirect runs an sftp batch as u against d directly, from the address
// from, and reports whether it succeeded.
func sftpDirect(t *testing.T, d *daemon, u *testUser, from, batch string) (string, string, error) {
	t.Helper()
	args := append(sftpArgs(d, u), "-o", "BindAddress="+from, "-b", writeBatch(t, batch), target(u))
	return runCmd(t, 30*time.Second, requireClient(t, "sftp"), args...)
}

// sftpBalanced runs an sftp batch as u through the balancer from the address from.
func (f *fleet) sftpBalanced(t *testing.T, u *testUser, from, batch string) (string, string, error) {
	t.Helper()
	d := f.daemons[0] // the host key is the fleet's: any daemon's known_hosts will do
	args := append(append(viaBalancer(d, f.front, from), opensshArgs(d, u)...), "-b", writeBatch(t, batch), target(u))
	return runCmd(t, 30*time.Second, requireClient(t, "sftp"), args...)
}

// eachWithin waits until ok holds for every daemon, within limit from
// since, polling each in turn; it returns how long the last one took.
func (f *fleet) eachWithin(t *testing.T, what string, since time.Time, limit time.Duration, ok func(d *daemon) bool) time.Duration {
	t.Helper()
	var last time.Duration
	for i, d := range f.daemons {
		for !ok(d) {
			if time.Since(since) > limit {
				t.Fatalf("daemon %d: %s not true %v after the change", i+1, what, limit)
			}
			time.Sleep(200 * time.Millisecond)
		}
		last = max(last, time.Since(since))
	}
	return last
}

// TestFleet: three daemons on one bucket behind HAProxy running the
// example config. One host key for all; an upload through the balancer
// reads back identical from each daemon; a user added or a key removed
// with `wharf user` is in force on all three within 10 s; failed logins
// through the balancer ban the partner's (PROXY protocol) address on all
// three within 10 s, and another address still logs in.
func TestFleet(t *testing.T) {
	requireClient(t, "sshpass")
	haproxyBin(t)
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	began := time.Now()
	f := startFleet(t, alice)
	t.Logf("fleet of %d up and healthy behind HAProxy in %v", fleetSize, time.Since(began).Round(time.Millisecond))

	// (a) Started at once on an empty state prefix: one host key. Each
	// daemon's known_hosts holds the keys in the bucket, and OpenSSH
	// checks them strictly below.
	for i, d := range f.daemons {
		if d.HostKeyFP != f.daemons[0].HostKeyFP {
			t.Errorf("daemon %d presents %s, daemon 1 %s", i+1, d.HostKeyFP, f.daemons[0].HostKeyFP)
		}
	}

	// (b) A partner's upload through the balancer, downloaded from each
	// daemon directly.
	local := filepath.Join(t.TempDir(), "order.edi")
	sum := writeRandomFile(t, local, 3<<20)
	if out, stderr, err := f.sftpBalanced(t, alice, "127.0.0.2", "put "+local+" /order.edi\n"); err != nil {
		t.Fatalf("upload through the balancer: %v\n%s\n%s", err, out, stderr)
	}
	for i, d := range f.daemons {
		back := filepath.Join(t.TempDir(), "back.edi")
		if out, stderr, err := sftpDirect(t, d, alice, "127.0.0.2", "get /order.edi "+back+"\n"); err != nil {
			t.Fatalf("download from daemon %d: %v\n%s\n%s", i+1, err, out, stderr)
		}
		checkSum(t, fmt.Sprintf("download from daemon %d", i+1), back, sum)
	}

	// (c) A user added against the bucket logs in through all three; a
	// removed key stops working on all three. The polls come from
	// 127.0.9.1, in defender.allow: their failures ban nobody.
	cfg := f.daemons[0].ConfigPath
	added := time.Now()
	wharfUser(t, cfg, "", "add", "bob", "--home", "/bob", "--key-file", bob.KeyFile+".pub")
	took := f.eachWithin(t, "bob logs in", added, fleetWithin, func(d *daemon) bool {
		_, _, err := sftpDirect(t, d, bob, "127.0.9.1", "ls\n")
		return err == nil
	})
	t.Logf("`wharf user add`: bob logs in on all %d daemons %v after it started", fleetSize, took.Round(time.Millisecond))
	// bob's live session on the last daemon ends with his key.
	live := openLiveSFTP(t, f.daemons[fleetSize-1], bob, "-o", "BindAddress=127.0.9.1")
	removed := time.Now()
	wharfUser(t, cfg, "", "key", "remove", "bob", bob.Fingerprint())
	if !live.closedWithin(fleetWithin) {
		t.Fatalf("bob's live session on daemon %d is open %v after his key was removed", fleetSize, fleetWithin)
	}
	t.Logf("`wharf user key remove`: bob's live session on daemon %d closed %v after it started", fleetSize, time.Since(removed).Round(time.Millisecond))
	took = f.eachWithin(t, "bob's removed key refused", removed, fleetWithin, func(d *daemon) bool {
		_, _, err := sftpDirect(t, d, bob, "127.0.9.1", "ls\n")
		return err != nil
	})
	t.Logf("`wharf user key remove`: bob's key refused on all %d daemons %v after it started", fleetSize, took.Round(time.Millisecond))

	// (d) Ten wrong passwords through the balancer from 127.0.0.3.
	sftp, sshpass := requireClient(t, "sftp"), requireClient(t, "sshpass")
	wrong := "not-" + alice.Password
	first := time.Now()
	for i := range 10 {
		args := append([]string{"-e", sftp}, viaBalancer(f.daemons[0], f.front, "127.0.0.3")...)
		args = append(append(args, opensshPasswordArgs(f.daemons[0])...), "-b", writeBatch(t, "pwd\n"), target(alice))
		if _, _, err := runCmdOpts(t, clientTimeout, cmdOpts{Env: []string{"SSHPASS=" + wrong}}, sshpass, args...); err == nil {
			t.Fatalf("wrong password %d accepted", i)
		}
	}
	// The ban comes at the tenth failure in all, though no daemon saw ten.
	failed := time.Now()
	took = f.eachWithin(t, "127.0.0.3 banned", failed, fleetWithin, func(d *daemon) bool {
		_, _, err := sftpDirect(t, d, alice, "127.0.0.3", "ls\n")
		return err != nil
	})
	t.Logf("ten failed logins through the balancer (%v): 127.0.0.3 refused by all %d daemons %v after the last",
		failed.Sub(first).Round(time.Millisecond), fleetSize, took.Round(time.Millisecond))
	var seen []int // failed logins from 127.0.0.3 each daemon saw before the ban
	banners := 0   // daemons that made a ban of 127.0.0.3 (from the fleet's count)
	for _, d := range f.daemons {
		n, banned := 0, false
		for _, l := range d.Logs() {
			r, _ := l["remote"].(string)
			if l["msg"] == "login" && l["outcome"] == "failed" && strings.HasPrefix(r, "127.0.0.3:") && !strings.Contains(fmt.Sprint(l["err"]), "too many failed logins") {
				n++
			}
			banned = banned || logMatch("msg", "ban", "addr", "127.0.0.3")(l)
		}
		seen = append(seen, n)
		if banned {
			banners++
		}
	}
	t.Logf("failed logins per daemon %v; %d of %d daemons made the ban, the others read it", seen, banners, fleetSize)
	if slices.Max(seen) >= 10 {
		t.Errorf("failed logins per daemon %v: one daemon saw all ten, the balancer did not spread them", seen)
	}
	if banners == 0 {
		t.Errorf("no daemon made a ban of 127.0.0.3")
	}
	for _, d := range f.daemons { // refused for the ban, not for another reason
		d.WaitLog(t, func(l map[string]any) bool {
			r, _ := l["remote"].(string)
			// At the door, or at the login when the ban arrived in between.
			return (l["msg"] == "refused" || l["msg"] == "login") && strings.HasPrefix(r, "127.0.0.3:") && strings.Contains(fmt.Sprint(l["err"]), "too many failed logins")
		}, time.Second)
	}
	if _, _, err := f.sftpBalanced(t, alice, "127.0.0.3", "ls\n"); err == nil {
		t.Error("banned 127.0.0.3 logged in through the balancer")
	}
	for i, d := range f.daemons {
		if out, stderr, err := sftpDirect(t, d, alice, "127.0.0.2", "ls\n"); err != nil {
			t.Errorf("127.0.0.2 refused by daemon %d after 127.0.0.3's ban: %v\n%s\n%s", i+1, err, out, stderr)
		}
	}
	if out, stderr, err := f.sftpBalanced(t, alice, "127.0.0.2", "ls\n"); err != nil {
		t.Errorf("127.0.0.2 through the balancer after 127.0.0.3's ban: %v\n%s\n%s", err, out, stderr)
	}

	// The health checks on /readyz passed all along: every daemon is
	// still in the balancer.
	if why := balancerReady(f.ready); why != "" || strings.Contains(f.haproxy.output(), " is DOWN") {
		t.Errorf("a daemon failed HAProxy's /readyz check: %s\n%s", why, f.haproxy.output())
	}
	t.Logf("TestFleet ran %v", time.Since(began).Round(time.Millisecond))
}

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAPIPartnerSFTP: a partner created through the admin API with curl,
// as the README shows, logs in with OpenSSH sftp; its session is in the
// API's sessions, is closed through the API, and the client sees the
// connection end. The API key is hashed with `wharf hash-password`, as an
// operator makes one.
func TestAPIPartnerSFTP(t *testing.T) {
	requireClient(t, "sftp")
	requireClient(t, "curl")
	carol := newUser(t, "carol")
	key := "wk-" + strings.TrimPrefix(newUser(t, "key").Password, "pw-")
	hash := hashPassword(t, key)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin.token")
	token := "tok-" + strings.TrimPrefix(newUser(t, "tok").Password, "pw-")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf("admin:\n  listen: \"127.0.0.1:0\"\n  token_file: %q\n  api_keys:\n    - {name: deploy, key_hash: %q, scope: admin}\n", tokenFile, hash)
	d := startDaemon(t, daemonOpts{Extra: extra})
	d.ForbidInLogs(key)
	d.ForbidInLogs(token)
	admin := d.WaitLog(t, logMatch("msg", "listening", "proto", "http"), startTimeout)
	base := fmt.Sprintf("http://%s/api/v1", admin["addr"])
	auth := []string{"-H", "Authorization: Bearer " + key}

	body, err := json.Marshal(map[string]any{"name": "carol", "home": "/carol", "public_keys": []string{carol.PubKey}})
	if err != nil {
		t.Fatal(err)
	}
	out := curlOK(t, append(auth, "-H", "Content-Type: application/json", "--data", string(body), base+"/partners")...)
	var created struct {
		Partner struct {
			Name string
			Keys []struct{ Fingerprint string }
		}
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Partner.Name != "carol" ||
		len(created.Partner.Keys) != 1 || created.Partner.Keys[0].Fingerprint != carol.Fingerprint() {
		t.Fatalf("create: %v\n%s", err, out)
	}
	// The daemon reloads the edited config: carol logs in.
	deadline := time.Now().Add(15 * time.Second)
	for !canLogIn(t, d, carol) {
		if time.Now().After(deadline) {
			t.Fatal("carol cannot log in after her creation through the API")
		}
		time.Sleep(200 * time.Millisecond)
	}
	configCheck(t, d.ConfigPath)

	s := openLiveSFTP(t, d, carol)
	var sessions struct {
		Sessions []struct{ ID, User, Protocol, Remote string }
	}
	out = curlOK(t, append(auth, base+"/sessions?user=carol")...)
	if err := json.Unmarshal([]byte(out), &sessions); err != nil || len(sessions.Sessions) != 1 {
		t.Fatalf("sessions: %v\n%s", err, out)
	}
	sess := sessions.Sessions[0]
	if sess.User != "carol" || sess.Protocol != "sftp" || sess.Remote != "127.0.0.1" || sess.ID == "" {
		t.Errorf("carol's session: %+v", sess)
	}
	d.WaitLog(t, logMatch("msg", "login", "user", "carol", "conn_id", sess.ID), 10*time.Second)

	curlOK(t, append(auth, "-X", "DELETE", base+"/sessions/"+sess.ID)...)
	if !s.closedWithin(10 * time.Second) {
		t.Fatal("carol's sftp is still connected after the API closed her session")
	}
	d.WaitLog(t, logMatch("msg", "logout", "user", "carol", "conn_id", sess.ID), 10*time.Second)

	// The change is an event with the admin's name.
	out = curlOK(t, append(auth, base+"/events?type=session.closed,user.created")...)
	var evs struct{ Events []map[string]any }
	if err := json.Unmarshal([]byte(out), &evs); err != nil || len(evs.Events) != 2 ||
		evs.Events[0]["type"] != "session.closed" || evs.Events[0]["session"] != sess.ID || evs.Events[0]["admin"] != "deploy" ||
		evs.Events[1]["type"] != "user.created" || evs.Events[1]["user"] != "carol" {
		t.Errorf("events: %v\n%s", err, out)
	}
	// A wrong key is refused, and the token works as well.
	if _, _, err := curlRun(t, "-H", "Authorization: Bearer nope", base+"/partners"); exitCode(err) != 22 {
		t.Errorf("curl with a wrong key: %v; want HTTP 401 (curl exit 22)", err)
	}
	curlOK(t, "-H", "Authorization: Bearer "+token, base+"/health")
}

// TestAPIKeyRevokedLive: an operator rotates a leaked API key and a console
// password by editing admin.api_keys and admin.users in the config file, as
// for a partner. The running daemon refuses the old key and takes the new
// one within a reload, and ends the console session logged in with the old
// password while another admin's stays, all without a restart: a partner's
// open sftp session stays up, and the reload names nothing as needing a
// restart.
func TestAPIKeyRevokedLive(t *testing.T) {
	requireClient(t, "curl")
	carol := newUser(t, "carol")
	oldKey := "wk-" + strings.TrimPrefix(newUser(t, "old").Password, "pw-")
	newKey := "wk-" + strings.TrimPrefix(newUser(t, "new").Password, "pw-")
	oldHash, newHash := hashPassword(t, oldKey), hashPassword(t, newKey)
	ops, dev := newUser(t, "ops"), newUser(t, "dev")
	opsHash, devHash := hashPassword(t, ops.Password), hashPassword(t, dev.Password)
	extra := fmt.Sprintf("admin:\n  listen: \"127.0.0.1:0\"\n  api_keys:\n    - {name: deploy, key_hash: %q, scope: admin}\n"+
		"  users:\n    - {name: ops, password_hash: %q}\n    - {name: dev, password_hash: %q}\n", oldHash, opsHash, devHash)
	d := startDaemon(t, daemonOpts{Users: []*testUser{carol}, Extra: extra})
	d.ForbidInLogs(oldKey)
	d.ForbidInLogs(newKey)
	admin := d.WaitLog(t, logMatch("msg", "listening", "proto", "http"), startTimeout)
	console := fmt.Sprintf("http://%s", admin["addr"])
	partners := console + "/api/v1/partners"
	opsJar, devJar := consoleLogin(t, console, ops), consoleLogin(t, console, dev)
	status := func(key string) string {
		out, _, err := curlRun(t, "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer "+key, partners)
		if c := exitCode(err); c != 0 && c != 22 { // 22: an HTTP error status (the harness's --fail)
			t.Fatalf("curl: %v", err)
		}
		return out
	}
	if got := status(oldKey); got != "200" {
		t.Fatalf("the key in the config: HTTP %s", got)
	}
	s := openLiveSFTP(t, d, carol)

	data, err := os.ReadFile(d.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), oldHash) {
		t.Fatal("the config does not hold the key's hash")
	}
	mark := d.LogMark()
	tmp := d.ConfigPath + ".tmp"
	edited := strings.Replace(string(data), oldHash, newHash, 1)
	edited = strings.Replace(edited, opsHash, hashPassword(t, ops.Password+"-2"), 1)
	if err := os.WriteFile(tmp, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, d.ConfigPath); err != nil {
		t.Fatal(err)
	}
	d.WaitLogSince(t, mark, logMatch("msg", "admin access reloaded", "api_keys", float64(1), "console_sessions_ended", float64(1)), 15*time.Second)
	if got := status(oldKey); got != "401" {
		t.Errorf("the revoked key after the reload: HTTP %s, want 401", got)
	}
	if got := status(newKey); got != "200" {
		t.Errorf("the new key: HTTP %s, want 200", got)
	}
	if consoleLoggedIn(t, console, opsJar) {
		t.Error("ops's console session survived the change of ops's password")
	}
	if !consoleLoggedIn(t, console, devJar) {
		t.Error("dev's console session ended, and dev's password did not change")
	}
	if !s.open() {
		t.Error("carol's sftp session ended when the API key changed")
	}
	for _, l := range d.logsSince(mark) {
		if l["msg"] == "restart needed to apply" {
			t.Errorf("the reload asks for a restart: %v", l)
		}
	}
}

// consoleLogin logs u in to the web console at base with curl, as a
// browser does (the login form's CSRF token, then the form), and returns
// the cookie jar that holds the session.
func consoleLogin(t *testing.T, base string, u *testUser) (jar string) {
	t.Helper()
	jar = filepath.Join(t.TempDir(), "cookies")
	page := curlOK(t, "-c", jar, base+"/login")
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the login page:\n%s", page)
	}
	curlOK(t, "-b", jar, "-c", jar, "-o", "/dev/null", "--data-urlencode", "csrf="+m[1],
		"--data-urlencode", "name="+u.Name, "--data-urlencode", "password="+u.Password, base+"/login")
	if !consoleLoggedIn(t, base, jar) {
		t.Fatalf("%s is not logged in to the console", u.Name)
	}
	return jar
}

// consoleLoggedIn reports whether the session in jar still opens the
// partners page (a logged-out one is sent to /login).
func consoleLoggedIn(t *testing.T, base, jar string) bool {
	t.Helper()
	out := curlOK(t, "-b", jar, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", base+"/partners")
	switch {
	case out == "200 ":
		return true
	case strings.HasPrefix(out, "303 ") && strings.HasSuffix(out, "/login"):
		return false
	}
	t.Fatalf("console /partners: %q", out)
	return false
}

// TestAdminTokenRotated: the operator writes a new token into
// admin.token_file. On SIGHUP, and without one within the periodic
// re-check, the running daemon refuses the old token on /metrics and the
// API and takes the new one; an empty file keeps the token in force and
// says why. No token reaches the log.
func TestAdminTokenRotated(t *testing.T) {
	requireClient(t, "curl")
	tokens := make([]string, 3)
	for i := range tokens {
		tokens[i] = "tok-" + strings.TrimPrefix(newUser(t, fmt.Sprint("t", i)).Password, "pw-")
	}
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	write := func(content string) {
		t.Helper()
		tmp := tokenFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, tokenFile); err != nil {
			t.Fatal(err)
		}
	}
	write(tokens[0] + "\n")
	d := startDaemon(t, daemonOpts{Extra: fmt.Sprintf("admin:\n  listen: \"127.0.0.1:0\"\n  token_file: %q\n", tokenFile)})
	for _, tok := range tokens {
		d.ForbidInLogs(tok)
	}
	admin := d.WaitLog(t, logMatch("msg", "listening", "proto", "http"), startTimeout)
	base := fmt.Sprintf("http://%s", admin["addr"])
	status := func(path, token string) string {
		out, _, err := curlRun(t, "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer "+token, base+path)
		if c := exitCode(err); c != 0 && c != 22 {
			t.Fatalf("curl: %v", err)
		}
		return out
	}
	// only checks that good alone opens /metrics, and opens the API while
	// the token before it does not (each wrong token there counts as a
	// failed login in the defender: few, to stay below its threshold).
	only := func(good string) {
		t.Helper()
		i := slices.Index(tokens, good)
		for j, tok := range tokens {
			want := "401"
			if j == i {
				want = "200"
			}
			if got := status("/metrics", tok); got != want {
				t.Errorf("/metrics with token %d: HTTP %s, want %s", j, got, want)
			}
			if j == i || j == i-1 {
				if got := status("/api/v1/health", tok); got != want {
					t.Errorf("/api/v1/health with token %d: HTTP %s, want %s", j, got, want)
				}
			}
		}
	}
	only(tokens[0])

	mark := d.LogMark()
	write(tokens[1] + "\n")
	if err := d.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.WaitLogSince(t, mark, logMatch("msg", "admin token reloaded"), 10*time.Second)
	only(tokens[1])

	// An empty file (a writer midway, or a mistake) keeps the token.
	mark = d.LogMark()
	write("")
	if err := d.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l := d.WaitLogSince(t, mark, logMatch("msg", "admin token not reloaded; the one in force stays"), 10*time.Second)
	if !strings.Contains(fmt.Sprint(l["err"]), "is empty") {
		t.Errorf("the reason: %v", l["err"])
	}
	only(tokens[1])

	// No signal: the periodic re-check (5 s) finds the new token.
	mark = d.LogMark()
	write(tokens[2] + "\n")
	d.WaitLogSince(t, mark, logMatch("msg", "admin token reloaded"), 15*time.Second)
	only(tokens[2])
}

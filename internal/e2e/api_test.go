package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

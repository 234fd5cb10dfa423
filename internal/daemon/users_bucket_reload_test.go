package daemon_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/configedit"
	"github.com/wharf-sftp/wharf/internal/daemon"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
	"github.com/wharf-sftp/wharf/internal/s3test"
)

// bucketEnv is an env whose users_dir is a folder of a versitygw bucket,
// polled every poll, with the daemon's homes under another prefix.
type bucketEnv struct {
	*env
	srv    *s3test.Server
	bucket string
	url    string // the users_dir, s3://BUCKET/wharf/users/
	editor *configedit.Editor
	doc    map[string]any // the config file, as written by write
}

func newBucketEnv(t *testing.T, poll time.Duration, users ...fileUser) *bucketEnv {
	t.Helper()
	srv := s3test.Start(t)
	s3test.IsolateAWS(t)
	bucket := srv.NewBucket(t)
	dir := t.TempDir()
	e := &bucketEnv{env: &env{t: t, dir: dir, path: filepath.Join(dir, "wharf.yaml"), cfg: baseConfig(t)},
		srv: srv, bucket: bucket, url: "s3://" + bucket + "/wharf/users/"}
	secret := filepath.Join(dir, "s3.secret")
	if err := os.WriteFile(secret, []byte(srv.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The harness's fileConfig marshalled, then the keys it lacks.
	var doc map[string]any
	if err := yaml.Unmarshal(e.marshal(e.cfg), &doc); err != nil {
		t.Fatal(err)
	}
	e.doc = doc
	doc["storage"] = map[string]any{"backend": "s3", "s3": map[string]any{
		"bucket": bucket, "prefix": "homes/", "region": srv.Region, "endpoint": srv.Endpoint, "path_style": true,
		"access_key_id": srv.AccessKey, "secret_access_key_file": secret, "part_size": "5MiB",
	}}
	doc["admin"] = map[string]any{"listen": "127.0.0.1:0"}
	doc["users_dir"] = e.url
	doc["users_poll"] = poll.String()
	doc["users"] = users
	e.write()
	e.editor = &configedit.Editor{Path: e.path, Check: func(c *config.Config) error { _, err := daemon.Check(c); return err }}
	return e
}

// write writes e.doc to the config file.
func (e *bucketEnv) write() {
	e.t.Helper()
	data, err := yaml.Marshal(e.doc)
	if err != nil {
		e.t.Fatal(err)
	}
	writeAtomic(e.t, e.path, data)
}

// put writes an object of the users folder directly, as any S3 tool does.
func (e *bucketEnv) put(name, body string) {
	e.t.Helper()
	key := "wharf/users/" + name
	if _, err := e.srv.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: &e.bucket, Key: &key, Body: strings.NewReader(body)}); err != nil {
		e.t.Fatal(err)
	}
}

// s3Requests scrapes wharf_s3_requests_total from /metrics.
func (e *bucketEnv) s3Requests() map[string]int {
	e.t.Helper()
	resp, err := http.Get("http://" + e.d.AdminAddr().String() + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), `wharf_s3_requests_total{op="`)
		if !ok {
			continue
		}
		op, rest, _ := strings.Cut(line, `"} `)
		n, err := strconv.Atoi(rest)
		if err != nil {
			e.t.Fatalf("metrics line %q", sc.Text())
		}
		out[op] = n
	}
	return out
}

// TestUsersBucketReload: a daemon whose users are objects of a bucket,
// edited with `wharf user`'s editor and by hand: new users log in within a
// poll and the stability wait, a removed key closes the live session, a
// malformed object is reported by key and line and the users in force keep
// working, and an unchanged bucket costs one listing a poll and no read.
func TestUsersBucketReload(t *testing.T) {
	const poll = 200 * time.Millisecond
	ka, kb, kb2 := newKey(t), newKey(t), newKey(t)
	e := newBucketEnv(t, poll, keyUser("alice", ka))
	e.start()

	// Added with the editor `wharf user add` runs: logs in within a poll
	// and the reload's stability wait (1s).
	start := time.Now()
	res, err := e.editor.AddUser(configedit.NewUser{Name: "bob", Home: "/bob", PublicKeys: []string{kb.line, kb2.line}})
	if err != nil || !res.Created || res.File != e.url+"bob.yaml" {
		t.Fatalf("AddUser = %+v, %v", res, err)
	}
	added := time.Now()
	if !e.waitLogin("bob", ssh.PublicKeys(kb.signer), poll+3*time.Second) {
		t.Fatalf("bob cannot log in within %v of being added", poll+3*time.Second)
	}
	t.Logf("AddUser took %v; from its return to bob's first login: %v (users_poll %v)",
		added.Sub(start).Round(time.Millisecond), time.Since(added).Round(time.Millisecond), poll)
	if l := e.linesSince(0, daemontest.Msg("config reloaded", "trigger", "bucket")); len(l) != 1 {
		t.Errorf("config reloaded lines with trigger bucket: %v", l)
	}
	if l := e.linesSince(0, daemontest.Msg("user added", "user", "bob")); len(l) != 1 {
		t.Errorf("user added lines: %v", l)
	}

	// A key removed: its live session is closed, the other key still works.
	c := e.login("bob", ssh.PublicKeys(kb.signer))
	mark := e.mark()
	if _, err := e.editor.RemoveKey("bob", kb.fp); err != nil {
		t.Fatal(err)
	}
	if !c.isClosed(poll + 3*time.Second) {
		t.Fatal("bob's session with the removed key is still open")
	}
	if l := e.linesSince(mark, daemontest.Msg("session revoked", "user", "bob")); len(l) != 1 {
		t.Errorf("session revoked lines: %v", l)
	}
	if e.canLogin("bob", ssh.PublicKeys(kb.signer)) || !e.canLogin("bob", ssh.PublicKeys(kb2.signer)) {
		t.Error("after the key's removal: the removed key logs in, or the kept one does not")
	}

	// An unchanged bucket: one listing a poll, no read.
	before := e.s3Requests()
	time.Sleep(10 * poll)
	after := e.s3Requests()
	lists, gets := after["ListObjectsV2"]-before["ListObjectsV2"], after["GetObject"]-before["GetObject"]
	t.Logf("requests in %v of an unchanged bucket, users_poll %v: %d ListObjectsV2, %d GetObject; all: %v -> %v", 10*poll, poll, lists, gets, before, after)
	if gets != 0 || lists < 5 || lists > 11 {
		t.Errorf("in %v of an unchanged bucket: %d listings and %d reads; want about 10 and none", 10*poll, lists, gets)
	}

	// A malformed object: reported by key and line; everyone in force
	// keeps logging in.
	mark = e.mark()
	e.put("carol.yaml", "name: carol\nhome: relative\n")
	l, _ := e.d.WaitLog(t, mark, poll+3*time.Second, daemontest.Msg("invalid config"))
	if want := e.url + "carol.yaml:2: home: must be absolute"; !strings.Contains(fmt.Sprint(l["err"]), want) {
		t.Errorf("invalid config = %v, want %q", l["err"], want)
	}
	if !e.canLogin("alice", ssh.PublicKeys(ka.signer)) || !e.canLogin("bob", ssh.PublicKeys(kb2.signer)) {
		t.Error("a malformed object locked out the users in force")
	}
	if _, err := e.editor.AddUser(configedit.NewUser{Name: "dave", Home: "/dave"}); err == nil || !strings.Contains(err.Error(), "carol.yaml:2") {
		t.Errorf("AddUser with a malformed object in the bucket = %v; want it refused, naming carol.yaml:2", err)
	}
	// Fixed: applied.
	kc := newKey(t)
	carol, err := yaml.Marshal(keyUser("carol", kc))
	if err != nil {
		t.Fatal(err)
	}
	e.put("carol.yaml", string(carol))
	if !e.waitLogin("carol", ssh.PublicKeys(kc.signer), poll+3*time.Second) {
		t.Fatal("carol, fixed, cannot log in")
	}

	// Removed with the editor: the user's sessions end.
	c = e.login("carol", ssh.PublicKeys(kc.signer))
	if res, err := e.editor.RemoveUser("carol"); err != nil || !res.Removed {
		t.Fatalf("RemoveUser = %+v, %v", res, err)
	}
	if !c.isClosed(poll + 3*time.Second) {
		t.Error("carol's session survived her removal")
	}
	if !e.canLogin("alice", ssh.PublicKeys(ka.signer)) {
		t.Error("alice, of the main file, cannot log in")
	}

	// The config file changed: applied as ever, once it reads the same
	// reloadStable apart; users_poll needs a restart.
	kf := newKey(t)
	mark = e.mark()
	e.doc["users"] = []fileUser{keyUser("alice", ka), keyUser("frank", kf)}
	e.doc["users_poll"] = "300ms"
	e.write()
	e.waitReload(mark, 5*time.Second)
	if !e.canLogin("frank", ssh.PublicKeys(kf.signer)) {
		t.Error("frank, added to the main file, cannot log in")
	}
	if l := e.linesSince(mark, daemontest.Msg("restart needed to apply")); len(l) != 1 || !strings.Contains(fmt.Sprint(l[0]["fields"]), "users_poll") {
		t.Errorf("restart needed lines: %v", l)
	}

	// Another users_dir needs a restart: refused, the users in force kept.
	mark = e.mark()
	e.doc["users_dir"] = "s3://" + e.bucket + "/wharf/other/"
	e.write()
	l, _ = e.d.WaitLog(t, mark, 5*time.Second, daemontest.Msg("invalid config"))
	if want := "the users were read from " + e.url + ": a change of a users_dir in a bucket needs a restart"; !strings.Contains(fmt.Sprint(l["err"]), want) {
		t.Errorf("invalid config = %v, want %q", l["err"], want)
	}
	if !e.canLogin("bob", ssh.PublicKeys(kb2.signer)) {
		t.Error("bob, of the bucket, cannot log in after a refused change of users_dir")
	}
}

// TestUsersBucketStart: start-up reads the bucket, and refuses to start on
// a malformed object as on a malformed users_dir file, naming it.
func TestUsersBucketStart(t *testing.T) {
	ka := newKey(t)
	e := newBucketEnv(t, time.Second)
	alice, err := yaml.Marshal(keyUser("alice", ka))
	if err != nil {
		t.Fatal(err)
	}
	e.put("alice.yaml", string(alice))
	e.put("bad.yaml", "name: bad\nhome: /bad\npublic_keys: [\"ssh-ed25519 AAAA\"]\n")
	cfg, err := configedit.LoadConfig(e.path)
	if err == nil {
		_, err = daemon.Check(cfg)
	}
	if want := e.url + "bad.yaml:3: public_keys[0]"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("check = %v; want %q", err, want)
	}
	plain, err := config.Load(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := daemon.New(plain, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), e.url+"bad.yaml:3") {
		t.Fatalf("daemon.New = %v; want it refused, naming bad.yaml:3", err)
	}
	key := "wharf/users/bad.yaml"
	if _, err := e.srv.Client().DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &e.bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}
	e.start()
	if !e.canLogin("alice", ssh.PublicKeys(ka.signer)) {
		t.Error("alice, in the bucket at start-up, cannot log in")
	}
}

package daemon_test

// Hot reload, in-process: the daemon started from a config file that the
// tests edit the ways operators and tools do, and Go SSH/SFTP clients that
// show what the edit changed. The real binary is in internal/e2e.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
)

// fileUser and fileConfig are what the tests write; marshalled, not
// templated, so that no key or hash can break the YAML.
type fileUser struct {
	Name         string    `yaml:"name"`
	Home         string    `yaml:"home"`
	PublicKeys   []string  `yaml:"public_keys,omitempty"`
	PasswordHash string    `yaml:"password_hash,omitempty"`
	Permissions  *[]string `yaml:"permissions,omitempty"`
	Disabled     bool      `yaml:"disabled,omitempty"`
	Protocols    []string  `yaml:"protocols,omitempty"`
}

type fileConfig struct {
	StateDir      string `yaml:"state_dir"`
	ShutdownGrace string `yaml:"shutdown_grace"`
	Log           struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
	SFTP struct {
		Listen   string   `yaml:"listen"`
		HostKeys []string `yaml:"host_keys"`
	} `yaml:"sftp"`
	Storage struct {
		Backend string `yaml:"backend"`
	} `yaml:"storage"`
	// Defender always trusts loopback here: these tests fail logins on
	// purpose, from 127.0.0.1, and must not get banned for it.
	Defender struct {
		Allow []string `yaml:"allow"`
	} `yaml:"defender"`
	UsersDir string     `yaml:"users_dir,omitempty"`
	Users    []fileUser `yaml:"users"`
}

// key is a client key pair.
type key struct {
	signer ssh.Signer
	line   string // authorized_keys line
	fp     string
}

func newKey(t *testing.T) key {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return key{s, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))), ssh.FingerprintSHA256(s.PublicKey())}
}

// cheapHash is a valid bcrypt hash at the minimum cost: logins stay fast.
func cheapHash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func keyUser(name string, k key) fileUser {
	return fileUser{Name: name, Home: "/" + name, PublicKeys: []string{k.line}}
}

func perms(p ...string) *[]string { return &p }

// env is a daemon started from a config file in its own folder.
type env struct {
	t    *testing.T
	dir  string // the config's folder
	path string // the config file
	cfg  fileConfig
	d    *daemontest.Daemon
}

// newEnv writes cfg's users into a config file (with a pre-generated
// ed25519 host key, which is faster than generating RSA), starts the
// daemon from it, and waits until the reload watcher runs.
func newEnv(t *testing.T, users ...fileUser) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	e.path = filepath.Join(e.dir, "wharf.yaml")
	e.cfg = baseConfig(t)
	e.cfg.Users = users
	e.writeRename(e.cfg)
	e.start()
	return e
}

func baseConfig(t *testing.T) fileConfig {
	t.Helper()
	state := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	hostKey := filepath.Join(state, "host_ed25519")
	if err := os.WriteFile(hostKey, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	var c fileConfig
	c.StateDir = state
	c.ShutdownGrace = "2s"
	c.Log.Level, c.Log.Format = "debug", "json"
	c.SFTP.Listen = "127.0.0.1:0"
	c.SFTP.HostKeys = []string{hostKey}
	c.Storage.Backend = "memory"
	c.Defender.Allow = []string{"127.0.0.0/8", "::1/128"}
	return c
}

func (e *env) start() {
	e.t.Helper()
	e.d = daemontest.StartFile(e.t, e.path)
	e.d.WaitLog(e.t, 0, 10*time.Second, daemontest.Msg("watching config"))
}

func (e *env) marshal(c fileConfig) []byte {
	e.t.Helper()
	data, err := yaml.Marshal(&c)
	if err != nil {
		e.t.Fatalf("marshal config: %v", err)
	}
	return data
}

// writeRename replaces the file the way careful tools and many editors do:
// a new file renamed over the old one.
func (e *env) writeRename(c fileConfig) {
	e.t.Helper()
	writeAtomic(e.t, e.path, e.marshal(c))
}

func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// mark is the position in the log before an action.
func (e *env) mark() int { return len(e.d.LogLines()) }

// waitReload waits for the "config reloaded" line after mark.
func (e *env) waitReload(mark int, timeout time.Duration) map[string]any {
	e.t.Helper()
	l, _ := e.d.WaitLog(e.t, mark, timeout, daemontest.Msg("config reloaded"))
	return l
}

// linesSince returns the log lines after mark that match.
func (e *env) linesSince(mark int, match func(map[string]any) bool) []map[string]any {
	var out []map[string]any
	lines := e.d.LogLines()
	for _, l := range lines[min(mark, len(lines)):] {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}

func (e *env) dial(user string, auth ssh.AuthMethod) (*ssh.Client, error) {
	return ssh.Dial("tcp", e.d.Addr, &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{auth},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // host key pinning is covered by the e2e tests
		Timeout:         10 * time.Second,
	})
}

// client is an open SFTP session, and a channel closed when its
// connection ends.
type client struct {
	conn   *ssh.Client
	sftp   *sftp.Client
	closed chan struct{}
}

func (e *env) login(user string, auth ssh.AuthMethod) *client {
	e.t.Helper()
	conn, err := e.dial(user, auth)
	if err != nil {
		e.t.Fatalf("login %s: %v", user, err)
	}
	sc, err := sftp.NewClient(conn)
	if err != nil {
		conn.Close()
		e.t.Fatalf("sftp %s: %v", user, err)
	}
	c := &client{conn: conn, sftp: sc, closed: make(chan struct{})}
	go func() {
		_ = conn.Wait()
		close(c.closed)
	}()
	e.t.Cleanup(func() { sc.Close(); conn.Close() })
	return c
}

// canLogin reports whether user can log in now, and closes the connection.
func (e *env) canLogin(user string, auth ssh.AuthMethod) bool {
	conn, err := e.dial(user, auth)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// waitLogin retries a login until it succeeds or timeout passes.
func (e *env) waitLogin(user string, auth ssh.AuthMethod, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if e.canLogin(user, auth) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *client) isClosed(within time.Duration) bool {
	select {
	case <-c.closed:
		return true
	default:
	}
	if within <= 0 {
		return false
	}
	select {
	case <-c.closed:
		return true
	case <-time.After(within):
		return false
	}
}

// TestReloadRevocation changes each user in its own way in one edit, with
// a session open for every one of them, and checks what happened to each
// session: closed with the reason logged, or kept with the new permissions.
func TestReloadRevocation(t *testing.T) {
	k := map[string]key{}
	for _, n := range []string{"removed", "disabled", "keyRemoved", "keyRemoved2", "keyAdded", "keyAdded2", "protocol", "home", "narrowed", "unchanged", "keyUserPW", "keyUserPW2"} {
		k[n] = newKey(t)
	}
	pwHash := map[string]string{"pwChanged": cheapHash(t, "pw-1"), "pwRemoved": cheapHash(t, "pw-2"), "keyUserPW": cheapHash(t, "pw-3")}
	type row struct {
		user   string
		auth   ssh.AuthMethod
		before fileUser
		after  *fileUser // nil: removed
		// reason is the expected "session revoked" reason; "" when the
		// session must stay.
		reason string
	}
	rows := []row{
		{"removed", ssh.PublicKeys(k["removed"].signer), keyUser("removed", k["removed"]), nil, "user removed"},
		{"disabled", ssh.PublicKeys(k["disabled"].signer), keyUser("disabled", k["disabled"]),
			ptr(with(keyUser("disabled", k["disabled"]), func(u *fileUser) { u.Disabled = true })), "user disabled"},
		{"key-removed", ssh.PublicKeys(k["keyRemoved"].signer),
			fileUser{Name: "key-removed", Home: "/key-removed", PublicKeys: []string{k["keyRemoved"].line, k["keyRemoved2"].line}},
			&fileUser{Name: "key-removed", Home: "/key-removed", PublicKeys: []string{k["keyRemoved2"].line}}, "key " + k["keyRemoved"].fp + " removed"},
		{"key-added", ssh.PublicKeys(k["keyAdded"].signer), keyUser("key-added", k["keyAdded"]),
			ptr(with(keyUser("key-added", k["keyAdded"]), func(u *fileUser) { u.PublicKeys = append(u.PublicKeys, k["keyAdded2"].line) })), ""},
		{"pw-changed", ssh.Password("pw-1"), fileUser{Name: "pw-changed", Home: "/pw-changed", PasswordHash: pwHash["pwChanged"]},
			&fileUser{Name: "pw-changed", Home: "/pw-changed", PasswordHash: cheapHash(t, "pw-1b")}, "password changed"},
		{"pw-removed", ssh.Password("pw-2"), fileUser{Name: "pw-removed", Home: "/pw-removed", PasswordHash: pwHash["pwRemoved"], PublicKeys: []string{k["removed"].line}},
			&fileUser{Name: "pw-removed", Home: "/pw-removed", PublicKeys: []string{k["removed"].line}}, "password removed"},
		{"key-user-pw", ssh.PublicKeys(k["keyUserPW"].signer), fileUser{Name: "key-user-pw", Home: "/key-user-pw", PublicKeys: []string{k["keyUserPW"].line}, PasswordHash: pwHash["keyUserPW"]},
			&fileUser{Name: "key-user-pw", Home: "/key-user-pw", PublicKeys: []string{k["keyUserPW"].line}, PasswordHash: cheapHash(t, "pw-3b")}, ""},
		{"protocol", ssh.PublicKeys(k["protocol"].signer), keyUser("protocol", k["protocol"]),
			ptr(with(keyUser("protocol", k["protocol"]), func(u *fileUser) { u.Protocols = []string{"ftps"} })), "protocol sftp no longer allowed"},
		{"home", ssh.PublicKeys(k["home"].signer), keyUser("home", k["home"]),
			ptr(with(keyUser("home", k["home"]), func(u *fileUser) { u.Home = "/moved" })), "home changed from /home to /moved"},
		{"narrowed", ssh.PublicKeys(k["narrowed"].signer), keyUser("narrowed", k["narrowed"]),
			ptr(with(keyUser("narrowed", k["narrowed"]), func(u *fileUser) { u.Permissions = perms("list", "download") })), ""},
		{"unchanged", ssh.PublicKeys(k["unchanged"].signer), keyUser("unchanged", k["unchanged"]), ptr(keyUser("unchanged", k["unchanged"])), ""},
	}
	var before, after []fileUser
	for _, r := range rows {
		before = append(before, r.before)
		if r.after != nil {
			after = append(after, *r.after)
		}
	}
	e := newEnv(t, before...)
	clients := map[string]*client{}
	for _, r := range rows {
		clients[r.user] = e.login(r.user, r.auth)
	}
	// The unchanged user is mid-upload across the reload.
	data := bytes.Repeat([]byte("wharf reload "), 1<<17)
	f, err := clients["unchanged"].sftp.Create("/upload.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}

	mark := e.mark()
	edited := time.Now()
	e.cfg.Users = after
	e.writeRename(e.cfg)
	e.waitReload(mark, 5*time.Second)

	if _, err := f.Write(data[len(data)/2:]); err != nil {
		t.Fatalf("unchanged user's upload after the reload: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close upload: %v", err)
	}

	logins := e.linesSince(0, daemontest.Msg("login", "outcome", "ok"))
	for _, r := range rows {
		t.Run(r.user, func(t *testing.T) {
			c := clients[r.user]
			revoked := e.linesSince(mark, daemontest.Msg("session revoked", "user", r.user))
			if r.reason != "" {
				if !c.isClosed(5*time.Second - time.Since(edited)) {
					t.Fatalf("session not closed within 5s of the edit")
				}
				if len(revoked) != 1 || revoked[0]["reason"] != r.reason {
					t.Fatalf("session revoked lines = %v, want one with reason %q", revoked, r.reason)
				}
				var connID any
				for _, l := range logins {
					if l["user"] == r.user {
						connID = l["conn_id"]
					}
				}
				if connID == nil || revoked[0]["conn_id"] != connID {
					t.Errorf("revoked line conn_id = %v, want the login's %v", revoked[0]["conn_id"], connID)
				}
				return
			}
			if len(revoked) != 0 {
				t.Fatalf("session revoked: %v", revoked)
			}
			if _, err := c.sftp.ReadDir("/"); err != nil {
				t.Fatalf("list after the reload: %v", err)
			}
			err := c.sftp.Mkdir("/newdir")
			switch r.user {
			case "narrowed":
				if !errors.Is(err, fs.ErrPermission) && !isStatus(err, 3) {
					t.Errorf("mkdir after losing the permission: %v, want permission denied", err)
				}
			default:
				if err != nil {
					t.Errorf("mkdir: %v", err)
				}
			}
		})
	}
	got, err := clients["unchanged"].sftp.Open("/upload.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	var back bytes.Buffer
	if _, err := got.WriteTo(&back); err != nil || !bytes.Equal(back.Bytes(), data) {
		t.Errorf("upload across the reload: %d bytes back (%v), want %d identical", back.Len(), err, len(data))
	}
	if n := len(e.linesSince(mark, daemontest.Msg("permissions changed"))); n != 1 {
		t.Errorf("%d permissions changed lines, want 1 (narrowed only)", n)
	}
	// New logins follow the new table.
	if e.canLogin("removed", ssh.PublicKeys(k["removed"].signer)) || e.canLogin("key-removed", ssh.PublicKeys(k["keyRemoved"].signer)) ||
		e.canLogin("pw-changed", ssh.Password("pw-1")) {
		t.Error("a revoked credential still logs in")
	}
	if !e.canLogin("key-removed", ssh.PublicKeys(k["keyRemoved2"].signer)) || !e.canLogin("pw-changed", ssh.Password("pw-1b")) ||
		!e.canLogin("key-added", ssh.PublicKeys(k["keyAdded2"].signer)) {
		t.Error("a credential the edit configured does not log in")
	}
}

func ptr[T any](v T) *T { return &v }

func isStatus(err error, code uint32) bool {
	var se *sftp.StatusError
	return errors.As(err, &se) && se.Code == code
}

// TestReloadLogsChanges checks the log lines that say what changed, and
// that none of them carries a secret.
func TestReloadLogsChanges(t *testing.T) {
	ka, ka2, kb, kc := newKey(t), newKey(t), newKey(t), newKey(t)
	oldHash, newHash := cheapHash(t, "old-pw"), cheapHash(t, "new-pw")
	e := newEnv(t,
		fileUser{Name: "alice", Home: "/alice", PublicKeys: []string{ka.line}, PasswordHash: oldHash, Permissions: perms("list", "download")},
		keyUser("bob", kb),
	)
	mark := e.mark()
	e.cfg.Users = []fileUser{
		{Name: "alice", Home: "/alice", PublicKeys: []string{ka2.line}, PasswordHash: newHash, Permissions: perms("list", "upload"), Protocols: []string{"sftp"}},
		{Name: "carol", Home: "/carol", PublicKeys: []string{kc.line}, Permissions: perms()},
		with(keyUser("bob", kb), func(u *fileUser) { u.Disabled = true }),
	}
	e.writeRename(e.cfg)
	done := e.waitReload(mark, 5*time.Second)
	if done["trigger"] != "watch" || done["changed_users"] != float64(3) || done["users"] != float64(3) {
		t.Errorf("config reloaded line = %v", done)
	}

	added := e.linesSince(mark, daemontest.Msg("user added", "user", "carol"))
	if len(added) != 1 || fmt.Sprint(added[0]["keys"]) != fmt.Sprint([]any{kc.fp}) || added[0]["permissions"] != "none" ||
		added[0]["password"] != false || added[0]["protocols"] != "all" || added[0]["disabled"] != false {
		t.Errorf("user added lines = %v", added)
	}
	changedAlice := e.linesSince(mark, daemontest.Msg("user changed", "user", "alice"))
	if len(changedAlice) != 1 {
		t.Fatalf("user changed lines for alice = %v", changedAlice)
	}
	want := map[string]any{
		"keys_added": []any{ka2.fp}, "keys_removed": []any{ka.fp}, "password": "changed",
		"permissions": "list,download -> list,upload", "protocols": "all -> sftp",
	}
	for k, v := range want {
		if fmt.Sprint(changedAlice[0][k]) != fmt.Sprint(v) {
			t.Errorf("alice's change: %s = %v, want %v", k, changedAlice[0][k], v)
		}
	}
	if _, ok := changedAlice[0]["disabled"]; ok {
		t.Errorf("alice's change mentions disabled, which did not change: %v", changedAlice[0])
	}
	if l := e.linesSince(mark, daemontest.Msg("user changed", "user", "bob", "disabled", true)); len(l) != 1 {
		t.Errorf("no user changed line disabling bob")
	}
	if l := e.linesSince(mark, daemontest.Msg("restart needed to apply")); len(l) != 0 {
		t.Errorf("restart needed for a users-only edit: %v", l)
	}
	logs := e.d.Logs()
	for _, secret := range []string{oldHash, newHash, "old-pw", "new-pw", ka.line, kc.line} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains a secret or key material: %.20q...", secret)
		}
	}
}

func with(u fileUser, edit func(*fileUser)) fileUser { edit(&u); return u }

// TestReloadInvalidKeepsOld: a broken edit changes nothing, says why with
// file and line, and is reported once however often it is seen.
func TestReloadInvalidKeepsOld(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	e := newEnv(t, keyUser("alice", ka))
	good := e.marshal(e.cfg)

	tests := []struct {
		name  string
		data  func() []byte
		wants []string // substrings of the "invalid config" errors
	}{
		{"unknown key and bad key", func() []byte {
			bad := strings.Replace(string(good), "users:\n", "users:\n    - name: bob\n      home: /bob\n      public_keys: [\"ssh-ed25519 AAAAnot-base64!\"]\n      pasword_hash: x\n", 1)
			return []byte(bad)
		}, []string{e.path + ":", "pasword_hash"}},
		{"broken yaml", func() []byte { return append(slices.Clone(good), "users: [\n"...) }, []string{e.path + ":"}},
		{"semantic error with line", func() []byte {
			c := e.cfg
			c.Users = append(slices.Clone(c.Users), fileUser{Name: "bob", Home: "relative", PublicKeys: []string{kb.line}})
			return e.marshal(c)
		}, []string{e.path + ":", "users[1].home"}},
		{"empty file", func() []byte { return nil }, []string{"empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mark := e.mark()
			writeAtomic(t, e.path, tt.data())
			e.d.WaitLog(t, mark, 5*time.Second, daemontest.Msg("reload failed, keeping the previous config"))
			errs := e.linesSince(mark, daemontest.Msg("invalid config"))
			if len(errs) == 0 {
				t.Fatal("no invalid config line")
			}
			for _, l := range errs {
				if l["level"] != "ERROR" {
					t.Errorf("invalid config logged at %v, want ERROR", l["level"])
				}
			}
			for _, want := range tt.wants {
				if !slices.ContainsFunc(errs, func(l map[string]any) bool { return strings.Contains(fmt.Sprint(l["err"]), want) }) {
					t.Errorf("no invalid config line mentions %q: %v", want, errs)
				}
			}
			if tt.name != "empty file" && tt.name != "broken yaml" {
				// file:line:field, the line being a number.
				if !slices.ContainsFunc(errs, func(l map[string]any) bool {
					rest, ok := strings.CutPrefix(fmt.Sprint(l["err"]), e.path+":")
					n := 0
					_, err := fmt.Sscanf(rest, "%d:", &n)
					return ok && err == nil && n > 0
				}) {
					t.Errorf("no error with file:line: %v", errs)
				}
			}
			if err := e.d.Reload(); err == nil {
				t.Error("Reload of the broken file returned nil")
			}
			if !e.canLogin("alice", ssh.PublicKeys(ka.signer)) {
				t.Error("alice cannot log in after a broken edit")
			}
			if e.canLogin("bob", ssh.PublicKeys(kb.signer)) {
				t.Error("bob, added by the broken edit, logs in")
			}
			if got := e.d.Directory().Users(); !slices.Equal(got, []string{"alice"}) {
				t.Errorf("users in force = %v, want [alice]", got)
			}
			// The same broken bytes again: no new error lines.
			again := e.mark()
			writeAtomic(t, e.path, tt.data())
			time.Sleep(600 * time.Millisecond)
			if l := e.linesSince(again, daemontest.Msg("invalid config")); len(l) != 0 {
				t.Errorf("the same broken content was reported again: %v", l)
			}
		})
	}

	// Fixed: the next edit applies.
	mark := e.mark()
	e.cfg.Users = append(e.cfg.Users, keyUser("bob", kb))
	e.writeRename(e.cfg)
	e.waitReload(mark, 5*time.Second)
	if !e.canLogin("bob", ssh.PublicKeys(kb.signer)) {
		t.Error("bob cannot log in after the fix")
	}
}

// TestReloadReturnsFieldErrors: Reload's error is every problem, each a
// FieldError pointing at the file and line.
func TestReloadReturnsFieldErrors(t *testing.T) {
	e := newEnv(t, keyUser("alice", newKey(t)))
	e.cfg.Users = append(e.cfg.Users,
		fileUser{Name: "bob", Home: "bob", PublicKeys: []string{newKey(t).line}},
		fileUser{Name: "carol", Home: "/carol", PasswordHash: "hunter2-typed-here"})
	// Written through a hard link in another folder, so the watcher does not
	// see it and Reload is the first to load it.
	e.writeHardLinked(e.marshal(e.cfg))
	err := e.d.Reload()
	var fields []*config.FieldError
	for _, x := range flatten(err) {
		var fe *config.FieldError
		if errors.As(x, &fe) {
			fields = append(fields, fe)
		}
	}
	if len(fields) != 2 {
		t.Fatalf("Reload = %v; want 2 field errors", err)
	}
	for _, fe := range fields {
		if fe.File != e.path || fe.Line <= 0 || !strings.HasPrefix(fe.Field, "users[") {
			t.Errorf("field error %+v: want file %s, a line and a users field", fe, e.path)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error quotes the password field's value: %v", err)
	}
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// writeHardLinked rewrites the config in place through a hard link in
// another folder: inotify reports the write to that folder's watchers
// only, so the watcher must find the change by SIGHUP or by its re-check.
func (e *env) writeHardLinked(data []byte) {
	e.t.Helper()
	alias := filepath.Join(e.t.TempDir(), "alias.yaml")
	if err := os.Link(e.path, alias); err != nil {
		e.t.Fatal(err)
	}
	f, err := os.OpenFile(alias, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		e.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		e.t.Fatal(err)
	}
}

// TestReloadIdenticalBytes: rewriting the same bytes, touching the file or
// calling Reload changes nothing and logs no reload.
func TestReloadIdenticalBytes(t *testing.T) {
	ka := newKey(t)
	e := newEnv(t, keyUser("alice", ka))
	c := e.login("alice", ssh.PublicKeys(ka.signer))
	dir := e.d.Directory()
	mark := e.mark()

	e.writeRename(e.cfg)
	if err := os.Chtimes(e.path, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	e.d.WaitLog(t, mark, 5*time.Second, daemontest.Msg("config unchanged", "trigger", "watch"))
	if err := e.d.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if l := e.linesSince(mark, daemontest.Msg("config reloaded")); len(l) != 0 {
		t.Errorf("identical bytes reloaded: %v", l)
	}
	if e.d.Directory() != dir {
		t.Error("identical bytes swapped the directory")
	}
	if c.isClosed(0) {
		t.Error("identical bytes closed a session")
	}
}

// TestReloadBurst: 100 edits in about a second, in place and by rename,
// end in the final state, in a few reloads, without disturbing a user
// every edit keeps.
func TestReloadBurst(t *testing.T) {
	ka := newKey(t)
	keys := make([]key, 100)
	for i := range keys {
		keys[i] = newKey(t)
	}
	e := newEnv(t, keyUser("alice", ka))
	c := e.login("alice", ssh.PublicKeys(ka.signer))
	mark := e.mark()
	start := time.Now()
	for i := range 100 {
		cfg := e.cfg
		cfg.Users = []fileUser{keyUser("alice", ka), keyUser(fmt.Sprintf("user%02d", i), keys[i])}
		data := e.marshal(cfg)
		if i%2 == 0 {
			if err := os.WriteFile(e.path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		} else {
			writeAtomic(t, e.path, data)
		}
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * 10 * time.Millisecond)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(e.d.Directory().Users(), []string{"alice", "user99"}) {
		if time.Now().After(deadline) {
			t.Fatalf("users in force = %v, want [alice user99]", e.d.Directory().Users())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !e.waitLogin("user99", ssh.PublicKeys(keys[99].signer), 2*time.Second) {
		t.Error("the last user of the burst cannot log in")
	}
	if e.canLogin("user98", ssh.PublicKeys(keys[98].signer)) {
		t.Error("a user of an earlier edit logs in")
	}
	time.Sleep(500 * time.Millisecond) // let a trailing reload, if any, finish
	n := len(e.linesSince(mark, daemontest.Msg("config reloaded")))
	if n == 0 || n > 20 {
		t.Errorf("%d reloads for a burst of 100 edits, want a few", n)
	}
	if c.isClosed(0) {
		t.Error("the burst closed the session of a user every edit keeps")
	}
	if _, err := c.sftp.ReadDir("/"); err != nil {
		t.Errorf("alice after the burst: %v", err)
	}
}

// TestReloadEditorStyles: the ways a file gets replaced are all caught by
// the watcher, well before the periodic re-check.
func TestReloadEditorStyles(t *testing.T) {
	tests := []struct {
		name  string
		write func(e *env, data []byte)
	}{
		{"rename over", func(e *env, data []byte) { writeAtomic(e.t, e.path, data) }},
		{"in place", func(e *env, data []byte) {
			if err := os.WriteFile(e.path, data, 0o600); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"backup then new file", func(e *env, data []byte) { // vim's default
			if err := os.Rename(e.path, e.path+"~"); err != nil {
				e.t.Fatal(err)
			}
			if err := os.WriteFile(e.path, data, 0o600); err != nil {
				e.t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka, kb := newKey(t), newKey(t)
			e := newEnv(t, keyUser("alice", ka))
			for i := range 2 { // twice: the watch must survive the first replacement
				k := newKey(t)
				if i == 0 {
					k = kb
				}
				name := fmt.Sprintf("bob%d", i)
				e.cfg.Users = append(e.cfg.Users, keyUser(name, k))
				edited := time.Now()
				tt.write(e, e.marshal(e.cfg))
				if !e.waitLogin(name, ssh.PublicKeys(k.signer), 3*time.Second) {
					t.Fatalf("edit %d: %s cannot log in within 3s", i, name)
				}
				t.Logf("edit %d applied after %v", i, time.Since(edited).Round(time.Millisecond))
			}
		})
	}
}

// TestReloadSymlinkSwap is a Kubernetes ConfigMap volume: wharf.yaml ->
// ..data/wharf.yaml, ..data -> a timestamped folder, and an update swaps
// ..data atomically to a new folder and deletes the old one.
func TestReloadSymlinkSwap(t *testing.T) {
	ka := newKey(t)
	dir := t.TempDir()
	e := &env{t: t, dir: dir, path: filepath.Join(dir, "wharf.yaml"), cfg: baseConfig(t)}
	e.cfg.Users = []fileUser{keyUser("alice", ka)}
	version := func(i int, data []byte) string {
		name := fmt.Sprintf("..2026_01_0%d_00_00_00.%d", i+1, i)
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "wharf.yaml"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		return name
	}
	current := version(0, e.marshal(e.cfg))
	if err := os.Symlink(current, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "wharf.yaml"), e.path); err != nil {
		t.Fatal(err)
	}
	e.start()

	for i := 1; i <= 2; i++ {
		k := newKey(t)
		name := fmt.Sprintf("bob%d", i)
		e.cfg.Users = append(e.cfg.Users, keyUser(name, k))
		next := version(i, e.marshal(e.cfg))
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(next, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		// The swap alone must be noticed: the old folder is deleted only
		// afterwards, since its deletion is an event of its own.
		if !e.waitLogin(name, ssh.PublicKeys(k.signer), 3*time.Second) {
			t.Fatalf("swap %d: %s cannot log in within 3s", i, name)
		}
		if err := os.RemoveAll(filepath.Join(dir, current)); err != nil {
			t.Fatal(err)
		}
		current = next
	}
	if !e.canLogin("alice", ssh.PublicKeys(ka.signer)) {
		t.Error("alice cannot log in after the swaps")
	}
}

// TestReloadSIGHUP: a change the watcher cannot see is applied at once on
// SIGHUP, and a SIGHUP with nothing changed is harmless.
func TestReloadSIGHUP(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	e := newEnv(t, keyUser("alice", ka))
	// newEnv waited for "watching config", logged after signal.Notify: the
	// signal cannot reach the default action (terminating the test binary).
	mark := e.mark()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.d.WaitLog(t, mark, 5*time.Second, daemontest.Msg("config unchanged", "trigger", "signal"))

	e.cfg.Users = append(e.cfg.Users, keyUser("bob", kb))
	e.writeHardLinked(e.marshal(e.cfg))
	mark = e.mark()
	sent := time.Now()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l := e.waitReload(mark, 5*time.Second)
	if l["trigger"] != "signal" {
		t.Errorf("reload trigger = %v, want signal", l["trigger"])
	}
	if d := time.Since(sent); d > 2*time.Second {
		t.Errorf("SIGHUP reload took %v", d)
	}
	if !e.canLogin("bob", ssh.PublicKeys(kb.signer)) {
		t.Error("bob cannot log in after SIGHUP")
	}
}

// TestReloadPoll: with no event and no signal, the periodic re-check
// finds the change within its interval (5s).
func TestReloadPoll(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	e := newEnv(t, keyUser("alice", ka))
	e.cfg.Users = append(e.cfg.Users, keyUser("bob", kb))
	mark := e.mark()
	e.writeHardLinked(e.marshal(e.cfg))
	l := e.waitReload(mark, 7*time.Second)
	if l["trigger"] != "watch" {
		t.Errorf("reload trigger = %v, want watch", l["trigger"])
	}
	if !e.canLogin("bob", ssh.PublicKeys(kb.signer)) {
		t.Error("bob cannot log in after the re-check")
	}
}

// TestReloadRestartNeeded: settings that cannot change live are reported
// and keep their old values, while the rest of the same edit applies.
func TestReloadRestartNeeded(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	e := newEnv(t, keyUser("alice", ka))
	mark := e.mark()
	e.cfg.SFTP.Listen = "127.0.0.1:1"
	e.cfg.Storage.Backend = "local"
	e.cfg.Log.Level = "info"
	e.cfg.ShutdownGrace = "3s"
	e.cfg.Users = append(e.cfg.Users, keyUser("bob", kb))
	e.writeRename(e.cfg)
	e.waitReload(mark, 5*time.Second)

	warn := e.linesSince(mark, daemontest.Msg("restart needed to apply"))
	if len(warn) != 1 || warn[0]["level"] != "WARN" ||
		fmt.Sprint(warn[0]["fields"]) != fmt.Sprint([]any{"log.level", "sftp.listen", "storage.backend", "storage.root"}) {
		t.Fatalf("restart needed lines = %v", warn)
	}
	// Still listening where it was, at debug level; and the new grace applies.
	if !e.canLogin("bob", ssh.PublicKeys(kb.signer)) {
		t.Error("bob, added with the restart-only changes, cannot log in")
	}
	// Identical bytes are logged at debug level: still logged, so the
	// level did not change live.
	again := e.mark()
	e.writeRename(e.cfg)
	e.d.WaitLog(t, again, 5*time.Second, daemontest.Msg("config unchanged", "level", "DEBUG"))

	// Reverting brings the in-force values back: nothing needs a restart.
	mark = e.mark()
	e.cfg.SFTP.Listen, e.cfg.Storage.Backend, e.cfg.Log.Level = "127.0.0.1:0", "memory", "debug"
	e.writeRename(e.cfg)
	e.waitReload(mark, 5*time.Second)
	if l := e.linesSince(mark, daemontest.Msg("restart needed to apply")); len(l) != 0 {
		t.Errorf("restart needed after reverting: %v", l)
	}
}

// TestReloadUsersDir: one file per user in users_dir, dropped, replaced and
// removed by configuration management.
func TestReloadUsersDir(t *testing.T) {
	ka, kb, kb2 := newKey(t), newKey(t), newKey(t)
	usersDir := t.TempDir()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, path: filepath.Join(dir, "wharf.yaml"), cfg: baseConfig(t)}
	e.cfg.UsersDir = usersDir
	e.cfg.Users = []fileUser{keyUser("alice", ka)}
	e.writeRename(e.cfg)
	e.start()

	userFile := func(u fileUser) []byte {
		data, err := yaml.Marshal(&u)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	bobFile := filepath.Join(usersDir, "bob.yaml")
	writeAtomic(t, bobFile, userFile(keyUser("bob", kb)))
	if !e.waitLogin("bob", ssh.PublicKeys(kb.signer), 3*time.Second) {
		t.Fatal("bob, dropped into users_dir, cannot log in within 3s")
	}
	c := e.login("bob", ssh.PublicKeys(kb.signer))

	// A file that is not *.yaml is not a user.
	mark := e.mark()
	if err := os.WriteFile(filepath.Join(usersDir, "notes.txt"), []byte("not a user"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if l := e.linesSince(mark, daemontest.Msg("config reloaded")); len(l) != 0 {
		t.Errorf("a non-user file caused a reload: %v", l)
	}

	// Key rotated in bob's file: the old key's session ends.
	mark = e.mark()
	writeAtomic(t, bobFile, userFile(keyUser("bob", kb2)))
	e.waitReload(mark, 5*time.Second)
	if !c.isClosed(5 * time.Second) {
		t.Error("bob's session with the rotated-out key is still open")
	}
	if !e.canLogin("bob", ssh.PublicKeys(kb2.signer)) || e.canLogin("bob", ssh.PublicKeys(kb.signer)) {
		t.Error("bob's key rotation did not apply")
	}

	// A broken user file keeps the previous users.
	mark = e.mark()
	if err := os.WriteFile(filepath.Join(usersDir, "carol.yaml"), []byte("name: carol\nhome: relative\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, _ := e.d.WaitLog(t, mark, 5*time.Second, daemontest.Msg("invalid config"))
	if !strings.Contains(fmt.Sprint(l["err"]), "carol.yaml:2") {
		t.Errorf("invalid config = %v, want it to point at carol.yaml:2", l["err"])
	}
	if err := os.Remove(filepath.Join(usersDir, "carol.yaml")); err != nil {
		t.Fatal(err)
	}

	// Removing the file removes the user.
	c2 := e.login("bob", ssh.PublicKeys(kb2.signer))
	mark = e.mark()
	if err := os.Remove(bobFile); err != nil {
		t.Fatal(err)
	}
	e.waitReload(mark, 5*time.Second)
	if !c2.isClosed(5 * time.Second) {
		t.Error("bob's session survived the removal of his file")
	}
	if l := e.linesSince(mark, daemontest.Msg("session revoked", "user", "bob", "reason", "user removed")); len(l) != 1 {
		t.Errorf("session revoked lines = %v", l)
	}
	if !e.canLogin("alice", ssh.PublicKeys(ka.signer)) {
		t.Error("alice cannot log in")
	}

	// users_dir moved to another folder, the old one deleted: the new one
	// is loaded, then watched.
	kd, ke := newKey(t), newKey(t)
	moved := t.TempDir()
	writeAtomic(t, filepath.Join(moved, "dave.yaml"), userFile(keyUser("dave", kd)))
	if err := os.RemoveAll(usersDir); err != nil {
		t.Fatal(err)
	}
	e.cfg.UsersDir = moved
	e.writeRename(e.cfg)
	// Two rounds of the 1s stability rule: the new folder's files must
	// read the same twice as well.
	if !e.waitLogin("dave", ssh.PublicKeys(kd.signer), 4*time.Second) {
		t.Fatal("dave, in the new users_dir, cannot log in within 4s")
	}
	writeAtomic(t, filepath.Join(moved, "erin.yaml"), userFile(keyUser("erin", ke)))
	if !e.waitLogin("erin", ssh.PublicKeys(ke.signer), 3*time.Second) {
		t.Fatal("erin, dropped into the new users_dir, cannot log in within 3s")
	}
}

// writePaused rewrites the config in place the way a slow writer does:
// truncate, everything before "users:", a pause, then the rest.
func (e *env) writePaused(data []byte, pause time.Duration) {
	e.t.Helper()
	cut := bytes.Index(data, []byte("users:"))
	if cut < 0 {
		e.t.Fatal("no users: in the config")
	}
	f, err := os.OpenFile(e.path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data[:cut]); err != nil {
		e.t.Fatal(err)
	}
	time.Sleep(pause)
	if _, err := f.Write(data[cut:]); err != nil {
		e.t.Fatal(err)
	}
}

// writeLines rewrites the config in place one line at a time, every
// interval.
func (e *env) writeLines(data []byte, interval time.Duration) {
	e.t.Helper()
	f, err := os.OpenFile(e.path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	for line := range bytes.Lines(data) {
		time.Sleep(interval)
		if _, err := f.Write(line); err != nil {
			e.t.Fatal(err)
		}
	}
}

// TestReloadPausedWriter: a config rewritten in place by a writer that
// pauses mid-file (up to 0.9s), or writes it line by line, is never applied
// half written: the half has no users, and applying it would remove every
// user and cut their sessions. Only the whole file is applied.
func TestReloadPausedWriter(t *testing.T) {
	for _, tt := range []struct {
		name  string
		write func(e *env, data []byte)
	}{
		{"pause 500ms", func(e *env, data []byte) { e.writePaused(data, 500*time.Millisecond) }},
		{"pause 900ms", func(e *env, data []byte) { e.writePaused(data, 900*time.Millisecond) }},
		{"line by line", func(e *env, data []byte) { e.writeLines(data, 120*time.Millisecond) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ka, kb := newKey(t), newKey(t)
			e := newEnv(t, keyUser("alice", ka))
			c := e.login("alice", ssh.PublicKeys(ka.signer))
			mark := e.mark()
			e.cfg.Users = append(e.cfg.Users, keyUser("bob", kb))
			tt.write(e, e.marshal(e.cfg))
			e.waitReload(mark, 5*time.Second)
			if l := e.linesSince(mark, daemontest.Msg("user removed")); len(l) != 0 {
				t.Errorf("a half-written config was applied: %v", l)
			}
			if l := e.linesSince(mark, daemontest.Msg("session revoked")); len(l) != 0 {
				t.Errorf("sessions revoked: %v", l)
			}
			if c.isClosed(0) {
				t.Error("alice's session was cut")
			}
			if !e.canLogin("bob", ssh.PublicKeys(kb.signer)) {
				t.Error("bob, in the whole file, cannot log in")
			}
		})
	}
}

// TestReloadNotARegularFile: the config replaced by a link to a FIFO, to
// /dev/zero, or by a file over 16 MiB is refused with a line naming the
// file (the reload goroutine neither blocks nor reads without end); the old
// config keeps serving, SIGHUP still answers, and the next good file is
// applied.
func TestReloadNotARegularFile(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	e := newEnv(t, keyUser("alice", ka))
	c := e.login("alice", ssh.PublicKeys(ka.signer))
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, config.MaxFileSize+1); err != nil {
		t.Fatal(err)
	}
	replaceByLink := func(target string) {
		tmp := e.path + ".link"
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, e.path); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct{ name, target, want string }{
		{"fifo", fifo, "not a regular file: a FIFO"},
		{"dev zero", "/dev/zero", "not a regular file: a device"},
		{"over 16 MiB", big, "larger than 16 MiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mark := e.mark()
			replaceByLink(tt.target)
			e.d.WaitLog(t, mark, 5*time.Second, daemontest.Msg("reload failed, keeping the previous config"))
			errs := e.linesSince(mark, daemontest.Msg("invalid config"))
			if len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]["err"]), e.path+": "+tt.want) {
				t.Errorf("invalid config lines = %v; want one naming %s: %s", errs, e.path, tt.want)
			}
			// SIGHUP is answered: the reload goroutine is not stuck.
			mark = e.mark()
			if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			e.d.WaitLog(t, mark, 5*time.Second, daemontest.Msg("reload failed, keeping the previous config", "trigger", "signal"))
			if !e.canLogin("alice", ssh.PublicKeys(ka.signer)) {
				t.Error("alice cannot log in while the config is refused")
			}
		})
	}
	if c.isClosed(0) {
		t.Error("alice's session was cut")
	}
	// A regular file again: applied.
	if err := os.Remove(e.path); err != nil {
		t.Fatal(err)
	}
	mark := e.mark()
	e.cfg.Users = append(e.cfg.Users, keyUser("bob", kb))
	e.writeRename(e.cfg)
	e.waitReload(mark, 5*time.Second)
	if !e.canLogin("bob", ssh.PublicKeys(kb.signer)) {
		t.Error("bob cannot log in after the config is a regular file again")
	}
}

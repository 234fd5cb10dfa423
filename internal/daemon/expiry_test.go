package daemon_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
)

// withExpiry writes cfg with each key of until in the mapping form,
// expiring then.
func (e *env) withExpiry(c fileConfig, until map[key]time.Time) {
	e.t.Helper()
	data := string(e.marshal(c))
	for k, at := range until {
		if !strings.Contains(data, "- "+k.line+"\n") {
			e.t.Fatalf("the marshalled config does not hold the key as a plain list item:\n%s", data)
		}
		data = strings.ReplaceAll(data, "- "+k.line+"\n", fmt.Sprintf("- {key: %q, expires_at: %s}\n", k.line, config.FormatTime(at)))
	}
	writeAtomic(e.t, e.path, []byte(data))
}

// TestReloadKeyExpiry: a rotation's edit (the old key given an expiry) is
// logged as such and keeps the old key's session; an expiry moved to the
// past (the grace cut short) ends it, and the old key no longer logs in
// while the new one does.
func TestReloadKeyExpiry(t *testing.T) {
	oldKey, newKey := newKey(t), newKey(t)
	e := newEnv(t, fileUser{Name: "acme", Home: "/acme", PublicKeys: []string{oldKey.line}})
	c := e.login("acme", ssh.PublicKeys(oldKey.signer))

	e.cfg.Users[0].PublicKeys = []string{oldKey.line, newKey.line}
	grace := time.Now().Add(7 * 24 * time.Hour)
	mark := e.mark()
	e.withExpiry(e.cfg, map[key]time.Time{oldKey: grace})
	e.waitReload(mark, 10*time.Second)
	changed := e.linesSince(mark, daemontest.Msg("user changed", "user", "acme"))
	want := []any{oldKey.fp + " until " + config.FormatTime(grace)}
	if len(changed) != 1 || !slices.Equal(changed[0]["keys_added"].([]any), []any{newKey.fp}) ||
		!slices.Equal(changed[0]["keys_expiry"].([]any), want) {
		t.Fatalf("user changed lines: %v; want keys_added [%s] and keys_expiry %v", changed, newKey.fp, want)
	}
	if c.isClosed(200 * time.Millisecond) {
		t.Fatal("the old key's session was closed by a rotation with a grace")
	}
	if !e.canLogin("acme", ssh.PublicKeys(newKey.signer)) || !e.canLogin("acme", ssh.PublicKeys(oldKey.signer)) {
		t.Fatal("during the grace, both keys must log in")
	}

	mark = e.mark()
	e.withExpiry(e.cfg, map[key]time.Time{oldKey: time.Now().Add(-time.Second)})
	e.waitReload(mark, 10*time.Second)
	if !c.isClosed(5 * time.Second) {
		t.Fatal("the expired key's session is still open after the reload")
	}
	revoked := e.linesSince(mark, daemontest.Msg("session revoked", "user", "acme"))
	if len(revoked) != 1 || !strings.HasPrefix(fmt.Sprint(revoked[0]["reason"]), "key "+oldKey.fp+" expired at ") {
		t.Errorf("session revoked lines: %v", revoked)
	}
	if e.canLogin("acme", ssh.PublicKeys(oldKey.signer)) {
		t.Error("the expired key still logs in")
	}
	failed := e.linesSince(mark, daemontest.Msg("login", "outcome", "failed", "fingerprint", oldKey.fp))
	if len(failed) == 0 || !strings.Contains(fmt.Sprint(failed[0]["err"]), "key expired: "+oldKey.fp) {
		t.Errorf("no login failed line naming the expired key: %v", failed)
	}
	if !e.canLogin("acme", ssh.PublicKeys(newKey.signer)) {
		t.Error("the new key no longer logs in")
	}
}

package console

import (
	"net/http"
	"net/netip"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/wharf-sftp/wharf/internal/api"
	"github.com/wharf-sftp/wharf/internal/config"
)

func hash(t *testing.T, secret string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// A reload of admin.users and admin.api_keys (the API's SetKeys, then
// SetUsers) ends exactly the console sessions whose access it removed or
// changed, and the next login sees the new secrets.
func TestSetUsersEndsChangedSessions(t *testing.T) {
	opsHash, devHash, ciHash, botHash := hash(t, "ops-pw"), hash(t, "dev-pw"), hash(t, "ci-key"), hash(t, "bot-key")
	a, err := api.New(api.Options{Keys: []config.APIKey{
		{Name: "ci", KeyHash: ciHash, Scope: config.ScopeRead},
		{Name: "bot", KeyHash: botHash, Scope: config.ScopeAdmin},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{API: a, Users: []config.AdminUser{{Name: "ops", PasswordHash: opsHash}, {Name: "dev", PasswordHash: devHash}}})
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr("127.0.0.1")
	logins := map[string]*session{}
	for name, pw := range map[string]string{"ops": "ops-pw", "dev": "dev-pw"} {
		cred, err := s.checkPassword(t.Context(), name, pw)
		if err != nil || cred == "" {
			t.Fatalf("%s's password: %q, %v", name, cred, err)
		}
		logins[name] = s.newSession(api.Admin{Name: name, Scope: config.ScopeAdmin, Addr: addr, Credential: cred})
	}
	for name, key := range map[string]string{"ci": "ci-key", "bot": "bot-key"} {
		adm, err := a.Login(t.Context(), addr, key)
		if err != nil {
			t.Fatal(err)
		}
		logins[name] = s.newSession(adm)
	}
	for name, ss := range logins {
		if ss == nil {
			t.Fatalf("%s could not log in", name)
		}
	}
	loggedIn := func(name string) bool {
		w := serve(s, "GET", "/", logins[name].id, nil)
		return w.Code == http.StatusSeeOther && w.Header().Get("Location") == "/partners"
	}

	// ops's password changes, dev stays; ci's key goes, bot's scope is cut.
	if err := a.SetKeys([]config.APIKey{{Name: "bot", KeyHash: botHash, Scope: config.ScopeRead}}); err != nil {
		t.Fatal(err)
	}
	ended, err := s.SetUsers([]config.AdminUser{{Name: "ops", PasswordHash: hash(t, "ops-pw-2")}, {Name: "dev", PasswordHash: devHash}})
	if err != nil {
		t.Fatal(err)
	}
	if ended != 3 {
		t.Errorf("SetUsers ended %d sessions, want 3 (ops, ci, bot)", ended)
	}
	for name, want := range map[string]bool{"ops": false, "dev": true, "ci": false, "bot": false} {
		if got := loggedIn(name); got != want {
			t.Errorf("%s logged in after the reload: %v, want %v", name, got, want)
		}
	}
	if cred, _ := s.checkPassword(t.Context(), "ops", "ops-pw"); cred != "" {
		t.Error("ops's old password still logs in")
	}
	cred, _ := s.checkPassword(t.Context(), "ops", "ops-pw-2")
	if cred == "" {
		t.Fatal("ops's new password does not log in")
	}
	if s.newSession(api.Admin{Name: "ops", Scope: config.ScopeAdmin, Addr: addr, Credential: cred}) == nil {
		t.Error("no session for the new password")
	}
	// A login checked against the old version and finished after the
	// reload gets no session.
	if s.newSession(logins["ci"].admin) != nil {
		t.Error("a session was opened with a key the reload removed")
	}
	if _, err := s.SetUsers([]config.AdminUser{{Name: "x", PasswordHash: "nonsense"}}); err == nil {
		t.Error("SetUsers took a malformed hash")
	}
	if !loggedIn("dev") {
		t.Error("a refused SetUsers ended a session")
	}
}

package api

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/wharf-sftp/wharf/internal/config"
)

func hashKey(t *testing.T, key string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(key), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// SetKeys (a reload of admin.api_keys) takes effect on the next request:
// a removed key and a key whose hash changed stop working at once, even
// when the old version had already verified them (and so knew their
// digest); a new key works; what stayed the same keeps working.
func TestSetKeys(t *testing.T) {
	ciKeyHash, opsKeyHash := hashKey(t, "ci-key"), hashKey(t, "ops-key")
	s, err := New(Options{Control: oneSession{}, Keys: []config.APIKey{
		{Name: "ci", KeyHash: ciKeyHash, Scope: config.ScopeRead},
		{Name: "ops", KeyHash: opsKeyHash, Scope: config.ScopeAdmin},
	}})
	if err != nil {
		t.Fatal(err)
	}
	status := func(key string) int {
		r := httptest.NewRequest("GET", "/api/v1/sessions", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w.Code
	}
	for _, k := range []string{"ci-key", "ops-key"} {
		if got := status(k); got != http.StatusOK {
			t.Fatalf("%s before the reload: %d, want 200", k, got)
		}
	}
	ops, err := s.Login(t.Context(), netip.MustParseAddr("127.0.0.1"), "ops-key")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := s.Login(t.Context(), netip.MustParseAddr("127.0.0.1"), "ci-key")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Current(ops) || !s.Current(ci) {
		t.Fatal("Current is false for keys in force")
	}

	// ci is rotated to a new secret, ops stays, new arrives.
	if err := s.SetKeys([]config.APIKey{
		{Name: "ci", KeyHash: hashKey(t, "ci-key-2"), Scope: config.ScopeRead},
		{Name: "ops", KeyHash: opsKeyHash, Scope: config.ScopeAdmin},
		{Name: "new", KeyHash: hashKey(t, "new-key"), Scope: config.ScopeRead},
	}); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]int{"ci-key": http.StatusUnauthorized, "ci-key-2": http.StatusOK,
		"ops-key": http.StatusOK, "new-key": http.StatusOK} {
		if got := status(key); got != want {
			t.Errorf("%s after the reload: %d, want %d", key, got, want)
		}
	}
	if s.Current(ci) {
		t.Error("Current is true for a key whose hash a reload changed")
	}
	if !s.Current(ops) {
		t.Error("Current is false for a key a reload kept")
	}

	// ops's scope is cut to read: the same secret is another access.
	if err := s.SetKeys([]config.APIKey{{Name: "ops", KeyHash: opsKeyHash, Scope: config.ScopeRead}}); err != nil {
		t.Fatal(err)
	}
	if s.Current(ops) {
		t.Error("Current is true for a key whose scope a reload changed")
	}
	if got := status("new-key"); got != http.StatusUnauthorized {
		t.Errorf("a removed key: %d, want 401", got)
	}
	if err := s.SetKeys([]config.APIKey{{Name: "bad", KeyHash: "not-a-hash", Scope: config.ScopeRead}}); err == nil {
		t.Error("SetKeys took a malformed hash")
	}
	if got := status("ops-key"); got != http.StatusOK {
		t.Errorf("after a refused SetKeys the keys in force changed: %d, want 200", got)
	}
}

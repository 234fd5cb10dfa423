package config

import (
	"strings"
	"testing"
)

const (
	testArgon  = `"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"`
	testBcrypt = `"$2b$12$C6UzMDM.H6dfI/f/IKcEeO5p6ZWV9QnJ1fCaqM/Z.QbK9e9a.jK2K"`
)

func TestAdminAccess(t *testing.T) {
	tests := []parseCase{
		{"absent", "", nil},
		{"keys and users", "admin:\n  listen: 127.0.0.1:9090\n  users:\n    - {name: ops, password_hash: " + testArgon + "}\n" +
			"  api_keys:\n    - {name: ci, key_hash: " + testBcrypt + ", scope: read}\n    - {name: deploy, key_hash: " + testArgon + ", scope: admin}\n" +
			"  recent_events: 500\n", nil},
		{"missing fields", "admin:\n  users:\n    - {}\n  api_keys:\n    - {}\n", []want{
			{3, "admin.users[0].name", "required"},
			{3, "admin.users[0].password_hash", "required"},
			{5, "admin.api_keys[0].name", "required"},
			{5, "admin.api_keys[0].key_hash", "required"},
			{5, "admin.api_keys[0].scope", "required: read"},
		}},
		{"bad values", "admin:\n  api_keys:\n    - name: -ci\n      key_hash: hunter2\n      scope: write\n", []want{
			{3, "admin.api_keys[0].name", `invalid name "-ci"`},
			{4, "admin.api_keys[0].key_hash", "plaintext or unsupported hash"},
			{5, "admin.api_keys[0].scope", `unknown scope "write" (want read or admin)`},
		}},
		{"duplicate across lists", "admin:\n  users:\n    - {name: ops, password_hash: " + testArgon + "}\n" +
			"  api_keys:\n    - {name: ops, key_hash: " + testArgon + ", scope: admin}\n", []want{
			{5, "admin.api_keys[0].name", `duplicate admin name "ops" (also admin.users[0])`},
		}},
		{"reserved name", "admin:\n  api_keys:\n    - {name: token, key_hash: " + testArgon + ", scope: read}\n", []want{
			{3, "admin.api_keys[0].name", "(also the bearer of admin.token_file)"},
		}},
		{"recent events", "admin:\n  recent_events: -1\n", []want{{2, "admin.recent_events", "must not be negative"}}},
		{"too many recent events", "admin:\n  recent_events: 2000000\n", []want{{2, "admin.recent_events", "is above 1000000"}}},
		{"unknown key", "admin:\n  api_keys:\n    - {name: ci, key: x, scope: read}\n", []want{
			{3, "admin.api_keys[0].key", "unknown key"},
			{3, "admin.api_keys[0].key_hash", "required"},
		}},
	}
	runParseCases(t, tests)
}

// A key_hash may be the key itself, pasted by mistake: no error repeats it.
func TestAPIKeyNeverEchoed(t *testing.T) {
	const secret = "k3y-Tr0ub4dor-correct-horse"
	_, err := Parse([]byte("admin:\n  api_keys:\n    - {name: ci, key_hash: " + secret + ", scope: admin}\n  users:\n    - {name: ops, password_hash: " + secret + "}\n"))
	if err == nil || strings.Contains(err.Error(), "Tr0ub") {
		t.Fatalf("Parse = %v; want errors that do not repeat the secret", err)
	}
}

func TestRecentEventsDefault(t *testing.T) {
	if n := mustParse(t, "").Admin.RecentEventsOrDefault(); n != DefaultRecentEvents {
		t.Errorf("default = %d, want %d", n, DefaultRecentEvents)
	}
	if n := mustParse(t, "admin: {recent_events: 7}\n").Admin.RecentEventsOrDefault(); n != 7 {
		t.Errorf("recent_events 7 = %d", n)
	}
}

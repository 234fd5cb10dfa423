package daemon

import (
	"strings"
	"testing"

	"github.com/wharf-sftp/wharf/internal/config"
)

// TestCheckAdminHashes: `wharf config check` parses the hashes of
// admin.api_keys and admin.users as the API uses them, and points at the
// line of a malformed one without quoting it.
func TestCheckAdminHashes(t *testing.T) {
	const doc = "storage: {backend: memory}\nadmin:\n  api_keys:\n" +
		"    - name: ci\n      key_hash: \"$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5\"\n      scope: read\n" +
		"  users:\n    - name: ops\n      password_hash: \"$2b$12$short\"\n"
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	_, err = Check(cfg)
	if err == nil {
		t.Fatal("malformed hashes passed the check")
	}
	got := err.Error()
	for _, want := range []string{
		"config:5: admin.api_keys[0].key_hash: argon2id hash: memory m=1 KiB out of range",
		"config:9: admin.users[0].password_hash: malformed bcrypt hash",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors %q; want one with %q", got, want)
		}
	}
	if strings.Contains(got, "c2FsdHNhbHRz") || strings.Contains(got, "short") {
		t.Errorf("an error quotes a hash: %v", got)
	}
}

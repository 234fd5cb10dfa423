package daemon

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportRules keeps the layering of ../shared/ARCHITECTURE.md true:
// the core never imports a protocol library, even indirectly, and front
// ends never import each other or the config schema directly (they reach
// it only through auth). afero, which ftpserverlib requires, stays in ftpd.
func TestImportRules(t *testing.T) {
	const mod = "github.com/wharf-sftp/wharf/internal/"
	rules := []struct {
		pkg       string
		direct    bool // only the package's own imports, not all dependencies
		forbidden []string
	}{
		{"config", false, []string{"github.com/pkg/sftp", "github.com/fclairamb/ftpserverlib", "golang.org/x/crypto/ssh", mod + "auth", mod + "session"}},
		// afero is the adapter ftpserverlib needs at the ftpd edge, never the core's interface.
		{"vfs", false, []string{"github.com/pkg/sftp", "github.com/fclairamb/ftpserverlib", "github.com/spf13/afero", mod + "config", mod + "auth", mod + "session"}},
		{"sftpd", false, []string{"github.com/spf13/afero"}},
		{"s3store", false, []string{"github.com/pkg/sftp", "github.com/fclairamb/ftpserverlib", "github.com/spf13/afero", mod + "auth", mod + "session"}},
		{"auth", false, []string{"github.com/pkg/sftp", "github.com/fclairamb/ftpserverlib", mod + "session"}},
		{"session", false, []string{"github.com/pkg/sftp", "github.com/fclairamb/ftpserverlib", mod + "sftpd", mod + "ftpd"}},
		{"sftpd", true, []string{"github.com/fclairamb/ftpserverlib", mod + "config", mod + "ftpd", mod + "daemon"}},
		{"ftpd", true, []string{"github.com/pkg/sftp", mod + "config", mod + "sftpd", mod + "daemon"}},
		// The fleet's shared state knows the bucket and the guard, not who
		// uses its identity: sftpd and ftpd take it through an interface.
		{"fleet", true, []string{"github.com/pkg/sftp", "github.com/fclairamb/ftpserverlib", mod + "sftpd", mod + "ftpd", mod + "session", mod + "daemon", mod + "config"}},
		// The doctor's checks run from the CLI and, later, the admin API,
		// which the daemon builds: they must not need the daemon.
		{"doctor", true, []string{mod + "daemon", mod + "admin", mod + "sftpd", mod + "ftpd", mod + "session"}},
		// The admin API edits users through configedit and reads the
		// sessions; it never reaches into a protocol.
		{"api", false, []string{"github.com/pkg/sftp", "github.com/fclairamb/ftpserverlib", mod + "sftpd", mod + "ftpd", mod + "daemon"}},
		// The console changes things only through the API's operations, so
		// that each change is the API's, checked and recorded the same way:
		// it never edits the config itself nor reaches into the sessions.
		{"console", true, []string{mod + "configedit", mod + "session", mod + "guard", mod + "events", mod + "sftpd", mod + "ftpd", mod + "daemon"}},
		// The PROXY protocol wrapper is a leaf: listeners in, listeners out.
		{"proxyproto", true, []string{"github.com/pkg/sftp", "github.com/fclairamb/ftpserverlib", mod + "config", mod + "guard", mod + "session"}},
	}
	for _, r := range rules {
		args := []string{"list", "-deps", "./../" + r.pkg}
		if r.direct {
			args = []string{"list", "-f", `{{join .Imports "\n"}}`, "./../" + r.pkg}
		}
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "directory not found") || strings.Contains(string(out), "no Go files") {
				continue // package not written yet
			}
			t.Fatalf("go list %s: %v\n%s", r.pkg, err, out)
		}
		deps := strings.Fields(string(out))
		for _, f := range r.forbidden {
			for _, d := range deps {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s imports %s", r.pkg, d)
				}
			}
		}
	}
}

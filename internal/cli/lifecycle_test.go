package cli

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/configedit"
)

// printedPassword is the password `--generate-password` printed.
var printedPassword = regexp.MustCompile(`\(shown once; wharf stores only its hash\): ([A-Z2-7]{26})\n`)

func mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	stdout, stderr, err := run(t, stdin, args...)
	if err != nil {
		t.Fatalf("wharf %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout
}

func userNamed(t *testing.T, path, name string) config.User {
	t.Helper()
	for _, u := range checkConfig(t, path).Users {
		if u.Name == name {
			return u
		}
	}
	t.Fatalf("no user %q", name)
	return config.User{}
}

// TestUserAddIssued: `user add --generate-key --generate-password` writes
// the key files, records only the public key and the password's hash, and
// prints the password once.
func TestUserAddIssued(t *testing.T) {
	path := writeConfig(t, baseConfig)
	out := filepath.Join(t.TempDir(), "issued")
	stdout := mustRun(t, "", "user", "add", "acme", "--home", "/acme", "--generate-key", "--out", out,
		"--generate-password", "--password-expires", "90d", "--config", path)
	m := printedPassword.FindStringSubmatch(stdout)
	if m == nil || strings.Count(stdout, m[1]) != 1 {
		t.Fatalf("the password is not printed once:\n%s", stdout)
	}
	pw := m[1]
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), pw) || strings.Contains(string(data), "PRIVATE") {
		t.Fatal("the config holds the password or a private key")
	}
	acme := userNamed(t, path, "acme")
	dir, err := auth.NewDirectory([]config.User{acme})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dir.VerifyPassword(auth.Attempt{Protocol: "ftps", User: "acme"}, pw); err != nil {
		t.Errorf("the printed password does not log in: %v", err)
	}
	if d := time.Until(acme.PasswordExpiresAt); d < 89*24*time.Hour || d > 90*24*time.Hour+time.Second {
		t.Errorf("password_expires_at %v, want 90 days from now", acme.PasswordExpiresAt)
	}

	priv := filepath.Join(out, "acme_ed25519")
	for path, mode := range map[string]fs.FileMode{priv: 0o600, priv + ".pub": 0o644, priv + ".ppk": 0o600, out: 0o700 | fs.ModeDir} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, %v; want %v", path, fi.Mode(), err, mode)
		}
	}
	pem, _ := os.ReadFile(priv)
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	if len(acme.PublicKeys) != 1 || !strings.HasPrefix(acme.PublicKeys[0].Key, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))+" acme issued by wharf ") {
		t.Errorf("the config's key %+v is not the generated one", acme.PublicKeys)
	}
	fp := ssh.FingerprintSHA256(signer.PublicKey())
	for _, want := range []string{`added user "acme"`, "generated an ed25519 key for user \"acme\", " + fp, priv + "  ", priv + ".ppk", "WinSCP"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}

	// rsa, key only.
	mustRun(t, "", "user", "add", "rsa-user", "--home", "/r", "--generate-key", "--key-type", "rsa", "--out", out, "--config", path)
	if k := userNamed(t, path, "rsa-user").PublicKeys; len(k) != 1 || !strings.HasPrefix(k[0].Key, "ssh-rsa ") {
		t.Errorf("rsa-user's keys: %+v", k)
	}
	if _, err := os.Stat(filepath.Join(out, "rsa-user_rsa.ppk")); err != nil {
		t.Error(err)
	}
}

func TestUserIssueErrors(t *testing.T) {
	path := writeConfig(t, baseConfig)
	out := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "add", "bob", "--home", "/b", "--generate-key"}, "--generate-key needs --out"},
		{[]string{"user", "add", "bob", "--home", "/b", "--out", out}, "go with --generate-key"},
		{[]string{"user", "add", "bob", "--home", "/b", "--generate-key", "--key-type", "dsa", "--out", out}, `unknown key type "dsa"`},
		{[]string{"user", "add", "bob", "--home", "/b", "--generate-password", "--password-stdin"}, "none of the others can be"},
		{[]string{"user", "add", "bob", "--home", "/b", "--password-expires", "90d"}, "--password-expires goes with"},
		{[]string{"user", "add", "bob", "--home", "/b", "--generate-password", "--password-expires", "2001-01-01"}, "not in the future"},
		// The user exists: the key files written for it are removed again.
		{[]string{"user", "add", "alice", "--home", "/a", "--generate-key", "--out", out}, "user already exists"},
		{[]string{"user", "key", "rotate", "alice"}, "[key key-file generate-key] is required"},
		{[]string{"user", "key", "rotate", "alice", "--generate-key", "--out", out, "--grace", "soon"}, "--grace: want a duration"},
		{[]string{"user", "key", "rotate", "nobody", "--generate-key", "--out", out}, "no such user"},
		{[]string{"user", "key", "add", "alice", "ssh-ed25519 AAAA", "--expires", "someday"}, "--expires: want a time"},
		{[]string{"user", "passwd", "alice", "--stdin", "--generate-password"}, "none of the others can be"},
	} {
		before, _ := os.ReadFile(path)
		_, stderr, err := run(t, "pw\n", append(tc.args, "--config", path)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("wharf %s: %v (stderr %q), want an error with %q", strings.Join(tc.args, " "), err, stderr, tc.want)
		}
		if after, _ := os.ReadFile(path); string(after) != string(before) {
			t.Errorf("wharf %s changed the config", strings.Join(tc.args, " "))
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("refused commands left key files behind: %v", entries)
	}
}

// TestUserKeyRotate: rotate with the default grace, then with a generated
// key and no grace; `user list` shows each key's expiry.
func TestUserKeyRotate(t *testing.T) {
	path := writeConfig(t, baseConfig)
	k1, fp1 := newKey(t, "alice@2025")
	k2, fp2 := newKey(t, "alice@2026")
	mustRun(t, "", "user", "key", "add", "alice", k1, "--config", path)

	start := time.Now()
	stdout := mustRun(t, "", "user", "key", "rotate", "alice", "--key", k2, "--comment", "ETL server", "--config", path)
	for _, want := range []string{`rotated the keys of user "alice"`, "new key " + fp2, "old key " + fp1 + " expires ", "(in 7d)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("rotate printed:\n%s\nwant %q", stdout, want)
		}
	}
	keys := userNamed(t, path, "alice").PublicKeys
	if len(keys) != 2 || keys[0].Key != k1 || keys[1].Key != k2 || keys[1].Comment != "ETL server" || !keys[1].ExpiresAt.IsZero() {
		t.Fatalf("keys after the rotation: %+v", keys)
	}
	if d := keys[0].ExpiresAt.Sub(start); d < 7*24*time.Hour-2*time.Second || d > 7*24*time.Hour+2*time.Second {
		t.Errorf("the old key expires %v after the rotation, want 7d", d)
	}

	// The table: every key with its expiry and time left.
	stdout = mustRun(t, "", "user", "list", "--config", path)
	tables := strings.Split(strings.TrimSpace(stdout), "\n\n")
	if len(tables) != 2 {
		t.Fatalf("list printed:\n%s", stdout)
	}
	rows := strings.Split(tables[1], "\n")
	want := [][]string{
		{"USER", "KEY", "EXPIRES", "LEFT", "COMMENT"},
		{"alice", fp1, config.FormatTime(keys[0].ExpiresAt), "7d"},
		{"alice", fp2, "never", "-", "ETL", "server"},
	}
	if len(rows) != len(want) {
		t.Fatalf("keys table:\n%s", tables[1])
	}
	for i, r := range rows {
		if got := strings.Fields(r); !slices.Equal(got, want[i]) {
			t.Errorf("keys table row %d = %q, want %q", i, got, want[i])
		}
	}
	var infos []configedit.UserInfo
	if err := json.Unmarshal([]byte(mustRun(t, "", "user", "list", "--json", "--config", path)), &infos); err != nil {
		t.Fatal(err)
	}
	if k := infos[0].PublicKeys; len(k) != 2 || !k[0].ExpiresAt.Equal(keys[0].ExpiresAt) || k[1].Comment != "ETL server" {
		t.Errorf("list --json keys: %+v", k)
	}

	// A generated key and no grace: the older keys stop now.
	out := t.TempDir()
	stdout = mustRun(t, "", "user", "key", "rotate", "alice", "--generate-key", "--out", out, "--grace", "0", "--config", path)
	if !strings.Contains(stdout, "old key "+fp1+" expired ") || !strings.Contains(stdout, "old key "+fp2+" expired ") {
		t.Errorf("rotate --grace 0 printed:\n%s", stdout)
	}
	keys = userNamed(t, path, "alice").PublicKeys
	if len(keys) != 3 || time.Until(keys[0].ExpiresAt) > 0 || time.Until(keys[1].ExpiresAt) > 0 || !keys[2].ExpiresAt.IsZero() {
		t.Errorf("keys after rotate --grace 0: %+v", keys)
	}
	if _, err := os.Stat(filepath.Join(out, "alice_ed25519.ppk")); err != nil {
		t.Error(err)
	}
}

func TestUserPasswdIssued(t *testing.T) {
	path := writeConfig(t, baseConfig)
	stdout := mustRun(t, "", "user", "passwd", "alice", "--generate-password", "--expires", "2099-01-01", "--config", path)
	m := printedPassword.FindStringSubmatch(stdout)
	if m == nil || !strings.Contains(stdout, "expiring 2099-01-01T00:00:00Z") {
		t.Fatalf("passwd --generate-password printed:\n%s", stdout)
	}
	alice := userNamed(t, path, "alice")
	if !alice.PasswordExpiresAt.Equal(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("password_expires_at = %v", alice.PasswordExpiresAt)
	}
	dir, err := auth.NewDirectory([]config.User{alice})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dir.VerifyPassword(auth.Attempt{Protocol: "ftps", User: "alice"}, m[1]); err != nil {
		t.Errorf("the printed password: %v", err)
	}
	stdout = mustRun(t, "", "user", "list", "--config", path)
	if !strings.Contains(stdout, " expires:2099-01-01T00:00:00Z ") {
		t.Errorf("list does not show the password's expiry:\n%s", stdout)
	}
	// A password typed on stdin, without --expires: the old deadline goes.
	mustRun(t, "typed-Password-1\n", "user", "passwd", "alice", "--stdin", "--config", path)
	if alice = userNamed(t, path, "alice"); !alice.PasswordExpiresAt.IsZero() {
		t.Errorf("password_expires_at after a new password: %v", alice.PasswordExpiresAt)
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

func TestUserKeyAddExpiry(t *testing.T) {
	path := writeConfig(t, baseConfig)
	k, fp := newKey(t, "alice@ci")
	mustRun(t, "", "user", "key", "add", "alice", k, "--comment", "CI", "--expires", "2099-03-01", "--config", path)
	if keys := userNamed(t, path, "alice").PublicKeys; len(keys) != 1 || keys[0].Comment != "CI" ||
		!keys[0].ExpiresAt.Equal(time.Date(2099, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("keys: %+v", keys)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `    public_keys:
      - {key: "`+k+`", comment: "CI", expires_at: "2099-03-01T00:00:00Z"}
`) {
		t.Errorf("the config:\n%s", data)
	}
	if stdout := mustRun(t, "", "user", "list", "--config", path); !strings.Contains(stdout, fp+"  2099-03-01T00:00:00Z  ") {
		t.Errorf("list:\n%s", stdout)
	}
}

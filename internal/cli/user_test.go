package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/configedit"
	"github.com/wharf-sftp/wharf/internal/daemon"
)

// run executes the command line args with stdin, as main does.
func run(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := New("test")
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// newKey returns a fresh ed25519 authorized_keys line and its fingerprint.
func newKey(t *testing.T, comment string) (line, fp string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " " + comment, ssh.FingerprintSHA256(k)
}

const baseConfig = `# test config
storage: {backend: memory}   # nothing on disk

users:
  # the first partner
  - name: alice
    home: /alice
`

func writeConfig(t *testing.T, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wharf.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

func checkConfig(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err == nil {
		_, err = daemon.Check(cfg)
	}
	if err != nil {
		t.Fatalf("the edited config fails the start-up checks: %v", err)
	}
	return cfg
}

func TestUserCommands(t *testing.T) {
	path := writeConfig(t, baseConfig)
	k1, fp1 := newKey(t, "bob@laptop")
	k2, fp2 := newKey(t, "bob@ci")
	k3, fp3 := newKey(t, "bob@new")
	keyFile := filepath.Join(t.TempDir(), "bob.pub")
	if err := os.WriteFile(keyFile, []byte("# bob's CI key\n\n"+k2+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const password = "correct-Horse-battery-7"

	steps := []struct {
		stdin string
		args  []string
		out   string // stdout must contain it
	}{
		{password + "\n", []string{"user", "add", "bob", "--home", "/bob", "--key", k1, "--key-file", keyFile,
			"--permissions", "list, download", "--protocols", "sftp", "--password-stdin"}, path + `: added user "bob"`},
		{"", []string{"user", "key", "add", "bob", k3}, `added a key to user "bob"`},
		{"", []string{"user", "key", "remove", "bob", fp1}, "removed key " + fp1},
		{"", []string{"user", "disable", "bob"}, `disabled user "bob"`},
		{"", []string{"user", "disable", "bob"}, `user "bob" is already disabled; nothing changed`},
		{"", []string{"user", "enable", "bob"}, `enabled user "bob"`},
		{password + "2\n", []string{"user", "passwd", "bob", "--stdin"}, `set the password of user "bob"`},
	}
	for _, s := range steps {
		args := append(slices.Clone(s.args), "--config", path)
		stdout, stderr, err := run(t, s.stdin, args...)
		if err != nil {
			t.Fatalf("wharf %s: %v\n%s", strings.Join(s.args[:3], " "), err, stderr)
		}
		if !strings.Contains(stdout, s.out) {
			t.Errorf("wharf %s printed %q, want %q", strings.Join(s.args[:3], " "), stdout, s.out)
		}
		if strings.Contains(stdout+stderr, password) || strings.Contains(stdout+stderr, "$argon2id$") {
			t.Errorf("wharf %s printed the password or its hash", strings.Join(s.args[:3], " "))
		}
		checkConfig(t, path)
	}
	if data, _ := os.ReadFile(path); strings.Contains(string(data), password) {
		t.Fatal("the config holds the plaintext password")
	}

	cfg := checkConfig(t, path)
	bob := cfg.Users[1]
	if bob.Name != "bob" || bob.Home != "/bob" || !slices.Equal(config.Lines(bob.PublicKeys), []string{k2, k3}) || bob.Disabled ||
		!slices.Equal(bob.Permissions, []string{"list", "download"}) || !slices.Equal(bob.Protocols, []string{"sftp"}) ||
		!strings.HasPrefix(bob.PasswordHash, "$argon2id$") {
		t.Errorf("bob = %+v", bob)
	}

	// list: a table, and JSON.
	stdout, _, err := run(t, "", "user", "list", "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	// The users, then after a blank line their keys.
	tables := strings.Split(strings.TrimSpace(stdout), "\n\n")
	lines := strings.Split(tables[0], "\n")
	if len(tables) != 2 || len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME ") || !strings.Contains(lines[0], "SOURCE") {
		t.Fatalf("list printed:\n%s", stdout)
	}
	if got := strings.Fields(lines[2]); !slices.Equal(got, []string{"bob", "/bob", "2", "yes", "list,download", "sftp", "no", path + ":8"}) {
		t.Errorf("bob's row = %q", got)
	}
	if got := strings.Fields(lines[1]); !slices.Equal(got, []string{"alice", "/alice", "0", "no", "all", "all", "no", path + ":6"}) {
		t.Errorf("alice's row = %q", got)
	}
	if strings.Index(lines[1], "/alice") != strings.Index(lines[0], "HOME") {
		t.Errorf("the table is not aligned:\n%s", stdout)
	}
	stdout, _, err = run(t, "", "user", "list", "--json", "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	var infos []configedit.UserInfo
	if err := json.Unmarshal([]byte(stdout), &infos); err != nil {
		t.Fatalf("list --json: %v\n%s", err, stdout)
	}
	if len(infos) != 2 || infos[1].Name != "bob" || !slices.Equal(infos[1].Fingerprints, []string{fp2, fp3}) || !infos[1].Password {
		t.Errorf("list --json = %+v", infos)
	}
	if strings.Contains(stdout, "$argon2id$") {
		t.Error("list --json printed a hash")
	}

	// Removing bob brings back the file as it was, byte for byte.
	if _, stderr, err := run(t, "", "user", "remove", "bob", "--config", path); err != nil {
		t.Fatalf("remove: %v\n%s", err, stderr)
	}
	if got, _ := os.ReadFile(path); string(got) != baseConfig {
		t.Errorf("after add and remove the file is\n%s\nwant\n%s", got, baseConfig)
	}
}

func TestUserCommandErrors(t *testing.T) {
	k1, _ := newKey(t, "x")
	_, fpOther := newKey(t, "other")
	dir := t.TempDir()
	privFile := filepath.Join(dir, "id_ed25519")
	const privBody = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"
	if err := os.WriteFile(privFile, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n"+privBody+"\n-----END OPENSSH PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty.pub")
	if err := os.WriteFile(emptyFile, []byte("# nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		stdin  string
		args   []string
		want   string // in the error
		secret string // never in the output or the error
	}{
		{"duplicate user", "", []string{"user", "add", "alice", "--home", "/a2"}, "user already exists", ""},
		{"no home", "", []string{"user", "add", "bob"}, `"home" not set`, ""},
		{"malformed key", "", []string{"user", "add", "bob", "--home", "/bob", "--key", k1, "--key", "ssh-ed25519 bm90IGEga2V5 x"}, "--key #2", "bm90IGEga2V5"},
		{"private key file", "", []string{"user", "add", "bob", "--home", "/bob", "--key-file", privFile}, "line 1: invalid input: key: looks like a PEM block", privBody},
		{"key file without keys", "", []string{"user", "add", "bob", "--home", "/bob", "--key-file", emptyFile}, "no key in the file", ""},
		{"missing key file", "", []string{"user", "add", "bob", "--home", "/bob", "--key-file", filepath.Join(dir, "absent")}, "no such file", ""},
		{"unknown permission", "", []string{"user", "add", "bob", "--home", "/bob", "--permissions", "list,delet"}, `unknown permission "delet"`, ""},
		{"unknown protocol", "", []string{"user", "add", "bob", "--home", "/bob", "--protocols", "scp"}, `unknown protocol "scp"`, ""},
		{"empty password", "\n", []string{"user", "add", "bob", "--home", "/bob", "--password-stdin"}, "empty password", ""},
		{"bad name", "", []string{"user", "add", "bob/x", "--home", "/bob"}, "user name: invalid name", ""},
		{"remove unknown", "", []string{"user", "remove", "bob"}, `no such user: "bob"`, ""},
		{"key add malformed", "", []string{"user", "key", "add", "alice", "ssh-rsa AAAA"}, "not a valid authorized_keys line", ""},
		{"key add unknown user", "", []string{"user", "key", "add", "bob", k1}, "no such user", ""},
		{"key remove unknown", "", []string{"user", "key", "remove", "alice", fpOther}, "no such key", ""},
		{"key remove not a fingerprint", "", []string{"user", "key", "remove", "alice", "MD5:aa:bb"}, "want SHA256:", ""},
		{"disable unknown", "", []string{"user", "disable", "bob"}, "no such user", ""},
		{"enable unknown", "", []string{"user", "enable", "bob"}, "no such user", ""},
		{"passwd without --stdin", "pw\n", []string{"user", "passwd", "alice"}, `[stdin generate-password] is required`, ""},
		{"passwd unknown user", "Secret-pw-1\n", []string{"user", "passwd", "bob", "--stdin"}, "no such user", "Secret-pw-1"},
		{"passwd empty", "", []string{"user", "passwd", "alice", "--stdin"}, "empty password", ""},
		{"extra argument", "", []string{"user", "disable", "alice", "bob"}, "accepts 1 arg", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, baseConfig)
			stdout, stderr, err := run(t, tt.stdin, append(tt.args, "--config", path)...)
			if err == nil {
				t.Fatalf("succeeded; stdout:\n%s", stdout)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if tt.secret != "" && strings.Contains(stdout+stderr+err.Error(), tt.secret) {
				t.Errorf("the output or error quotes %q", tt.secret)
			}
			if got, _ := os.ReadFile(path); string(got) != baseConfig {
				t.Errorf("the config changed:\n%s", got)
			}
			if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
				t.Errorf("files left beside the config: %v", entries)
			}
		})
	}
}

func TestUserCommandsUsersDir(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "users.d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "wharf.yaml")
	doc := "storage: {backend: memory}\nusers_dir: " + dir + "\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	// --config defaults to $WHARF_CONFIG, as for every command.
	t.Setenv("WHARF_CONFIG", path)
	k, _ := newKey(t, "carol")
	file := filepath.Join(dir, "carol.yaml")
	stdout, stderr, err := run(t, "", "user", "add", "carol", "--home", "/carol", "--key", k, "--permissions", "")
	if err != nil {
		t.Fatalf("add: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, file+`: added user "carol" (new file)`) {
		t.Errorf("add printed %q", stdout)
	}
	cfg := checkConfig(t, path)
	if len(cfg.Users) != 1 || cfg.Users[0].Src.File != file || cfg.Users[0].Permissions == nil || len(cfg.Users[0].Permissions) != 0 {
		t.Errorf("users = %+v", cfg.Users)
	}
	if got, _ := os.ReadFile(path); string(got) != doc {
		t.Errorf("the main file changed")
	}
	stdout, _, err = run(t, "", "user", "remove", "carol")
	if err != nil || !strings.Contains(stdout, "(file deleted)") {
		t.Fatalf("remove printed %q (%v)", stdout, err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("carol.yaml still exists (%v)", err)
	}
}

func TestSplitList(t *testing.T) {
	for in, want := range map[string][]string{
		"":                 {},
		"  ":               {},
		"list":             {"list"},
		"list, download ,": {"list", "download", ""},
	} {
		if got := splitList(in); !slices.Equal(got, want) || got == nil {
			t.Errorf("splitList(%q) = %#v, want %#v", in, got, want)
		}
	}
}

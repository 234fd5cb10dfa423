package configedit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
)

// Keys and hashes of testdata/commented.yaml, and a key it does not hold.
const (
	acme1Key  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIijoFkY+BG10ohtwKGLrs39pRgkTFTw+YAAMbmdgwym acme1@example.com"
	acme1FP   = "SHA256:dma95gGM6mvusf/hBVl2oXvNxByaCVBFBQqAs+qoiKE"
	acme2Key  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGbYFLjTsrM6NrOtG1F8xlVdRr60ZFgiB81ZZjEqRV6P acme2@example.com"
	acme2FP   = "SHA256:N3MhQR4TxXuH0d3noUEh3OnBRg3y2kOBSoUKl/ZR/hg"
	globexKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvJh/8y/GPYAKXYtMwtm1q4o4AQ9Ogdum8hv3FB3Cwk globex@example.com"
	globexFP  = "SHA256:ZI1DyBeKCv5qZYuRl/PJMz21r5+Swg1c6SGngqNDa4g"
	initechFP = "SHA256:pHrDrDdrOt++YpA8bJgpRR+MTfEGPSA/6hsGKn9W4VM"
	newKey    = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFJ3EXCJ1pH38CXooP+Clu7GQEsg5RXm1rNVEHy+96KdNMoFC5xCVPomGsPBWaLY8vjHd4wDN8NOwZ5KyKL7wFw= new@example.com"
	newFP     = "SHA256:dozdHpFb5ZkPfdZE1LBCuPLnMeqKJfn4f8gbv9PLXh4"
	// Well-formed argon2id hashes (random salt and tag: no password known).
	globexHash = "$argon2id$v=19$m=65536,t=3,p=2$t4yFts7IvpjAABO562ioDg$xBCdrkPVKL/O3VMjK5cHnl9f1MvbqkGRzhZvCzCFEnI"
	otherHash  = "$argon2id$v=19$m=65536,t=3,p=2$c2FsdHNhbHRzYWx0c2FsdA$4v0sUzJ1fZq3Yq9m8zQk7bJcVnK0a2yR8xWbE6pHkUo"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func writeFile(t *testing.T, path, data string, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// commented copies testdata/commented.yaml into a new folder and returns
// its path there and its text.
func commented(t *testing.T) (path, orig string) {
	t.Helper()
	orig = readFile(t, filepath.Join("testdata", "commented.yaml"))
	path = filepath.Join(t.TempDir(), "wharf.yaml")
	writeFile(t, path, orig, 0o640)
	return path, orig
}

// replaceOnce replaces the one occurrence of old in s.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("%q occurs %d times in the fixture, want 1", old, n)
	}
	return strings.Replace(s, old, new, 1)
}

// commentLines returns the comments of a YAML text: whole comment lines and
// the comments beside values (text from " #" on, outside quotes).
func commentLines(text string) []string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		body := strings.TrimSpace(line)
		if strings.HasPrefix(body, "#") {
			out = append(out, body)
			continue
		}
		quoted := false
		for i := 0; i+1 < len(line); i++ {
			switch {
			case line[i] == '"':
				quoted = !quoted
			case !quoted && line[i] == ' ' && line[i+1] == '#':
				out = append(out, strings.TrimSpace(line[i+1:]))
				i = len(line)
			}
		}
	}
	return out
}

// mustLoad loads and checks path as start-up does.
func mustLoad(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("the edited config does not load: %v\n%s", err, readFile(t, path))
	}
	if _, err := auth.NewDirectory(cfg.Users); err != nil {
		t.Fatalf("the edited config fails the start-up check: %v", err)
	}
	return cfg
}

// assertOnlyFiles fails unless dir holds exactly names (no temporary file
// left behind).
func assertOnlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

// TestEditsKeepFormatting runs every edit on a commented config: the result
// must be the original with exactly the lines the edit touches changed, so
// every comment, blank line and alignment elsewhere is byte-identical.
func TestEditsKeepFormatting(t *testing.T) {
	const initechDisabled = "    disabled: true              # until their security review is done\n"
	const acmePerms = "    permissions: [list, download, upload]   # no delete: ACME must not lose files\n"
	acmeBlock := "  - name: acme\n" +
		"    home: /acme                 # ACME Corp, contact ops@acme.example\n" +
		"    # ACME rotates keys every year; both are valid during the overlap.\n" +
		"    public_keys:\n" +
		"      # 2025 key\n" +
		"      - \"" + acme1Key + "\"\n" +
		"      # 2026 key\n" +
		"      - \"" + acme2Key + "\"\n" +
		acmePerms
	globexBlock := "  # Globex only picks reports up.\n" +
		"  - name: globex\n" +
		"    home: /globex\n" +
		"    public_keys:\n" +
		"      - " + globexKey + "\n" +
		"    password_hash: \"" + globexHash + "\"  # set 2026-01\n" +
		"    permissions:\n" +
		"      - list\n" +
		"      - download\n" +
		"    protocols: [sftp]\n\n"

	tests := []struct {
		name    string
		edit    func(e *Editor) (Result, error)
		want    func(t *testing.T, orig string) string
		gone    []string // comments that go with what the edit removes
		changed bool
	}{
		{
			name: "add user",
			edit: func(e *Editor) (Result, error) {
				return e.AddUser(NewUser{Name: "hooli", Home: "/hooli", PublicKeys: []string{newKey}, PasswordHash: otherHash,
					Permissions: []string{"list", "upload"}, Protocols: []string{"sftp"}})
			},
			want: func(t *testing.T, orig string) string {
				return replaceOnce(t, orig, initechDisabled, initechDisabled+
					"  - name: hooli\n"+
					"    home: /hooli\n"+
					"    public_keys:\n"+
					"      - "+newKey+"\n"+
					"    password_hash: \""+otherHash+"\"\n"+
					"    permissions: [list, upload]\n"+
					"    protocols: [sftp]\n")
			},
			changed: true,
		},
		{
			name: "add user with no permissions",
			edit: func(e *Editor) (Result, error) {
				return e.AddUser(NewUser{Name: "1984", Home: "/", Permissions: []string{}})
			},
			want: func(t *testing.T, orig string) string {
				return replaceOnce(t, orig, initechDisabled, initechDisabled+
					"  - name: \"1984\"\n"+ // quoted, or it would be a number
					"    home: /\n"+
					"    permissions: []\n")
			},
			changed: true,
		},
		{
			name: "remove first user",
			edit: func(e *Editor) (Result, error) { return e.RemoveUser("acme") },
			want: func(t *testing.T, orig string) string { return replaceOnce(t, orig, acmeBlock, "") },
			// The comment above the first entry describes the list: it stays.
			gone:    []string{"# ACME Corp, contact ops@acme.example", "# ACME rotates keys every year; both are valid during the overlap.", "# 2025 key", "# 2026 key", "# no delete: ACME must not lose files"},
			changed: true,
		},
		{
			name:    "remove middle user",
			edit:    func(e *Editor) (Result, error) { return e.RemoveUser("globex") },
			want:    func(t *testing.T, orig string) string { return replaceOnce(t, orig, globexBlock, "") },
			gone:    []string{"# Globex only picks reports up.", "# set 2026-01"},
			changed: true,
		},
		{
			name: "remove last user",
			edit: func(e *Editor) (Result, error) { return e.RemoveUser("initech") },
			want: func(t *testing.T, orig string) string {
				start := strings.Index(orig, "  - name: initech")
				return orig[:start] + orig[start+strings.Index(orig[start:], initechDisabled)+len(initechDisabled)+1:]
			},
			gone:    []string{"# legacy RSA client, upgrade pending", "# until their security review is done"},
			changed: true,
		},
		{
			name: "add key",
			edit: func(e *Editor) (Result, error) { return e.AddKey("globex", newKey) },
			want: func(t *testing.T, orig string) string {
				return replaceOnce(t, orig, "      - "+globexKey+"\n", "      - "+globexKey+"\n      - "+newKey+"\n")
			},
			changed: true,
		},
		{
			name: "add key, quoted like the others",
			edit: func(e *Editor) (Result, error) { return e.AddKey("acme", newKey) },
			want: func(t *testing.T, orig string) string {
				return replaceOnce(t, orig, "      - \""+acme2Key+"\"\n", "      - \""+acme2Key+"\"\n      - \""+newKey+"\"\n")
			},
			changed: true,
		},
		{
			name: "add key to a flow list",
			edit: func(e *Editor) (Result, error) { return e.AddKey("initech", newKey) },
			want: func(t *testing.T, orig string) string {
				return replaceOnce(t, orig, " initech@example.com\"]\n", " initech@example.com\", \""+newKey+"\"]\n")
			},
			changed: true,
		},
		{
			name: "remove first key",
			edit: func(e *Editor) (Result, error) { return e.RemoveKey("acme", acme1FP) },
			want: func(t *testing.T, orig string) string {
				return replaceOnce(t, orig, "      # 2025 key\n      - \""+acme1Key+"\"\n", "")
			},
			gone:    []string{"# 2025 key"},
			changed: true,
		},
		{
			name: "remove last key",
			edit: func(e *Editor) (Result, error) { return e.RemoveKey("acme", acme2FP) },
			want: func(t *testing.T, orig string) string {
				return replaceOnce(t, orig, "      # 2026 key\n      - \""+acme2Key+"\"\n", "")
			},
			gone:    []string{"# 2026 key"},
			changed: true,
		},
		{
			name: "remove only key",
			edit: func(e *Editor) (Result, error) { return e.RemoveKey("globex", globexFP) },
			want: func(t *testing.T, orig string) string {
				return replaceOnce(t, orig, "    public_keys:\n      - "+globexKey+"\n", "    public_keys: []\n")
			},
			changed: true,
		},
		{
			name: "disable",
			edit: func(e *Editor) (Result, error) { return e.SetDisabled("acme", true) },
			want: func(t *testing.T, orig string) string {
				return replaceOnce(t, orig, acmePerms, acmePerms+"    disabled: true\n")
			},
			changed: true,
		},
		{
			name: "enable keeps the comment and its column",
			edit: func(e *Editor) (Result, error) { return e.SetDisabled("initech", false) },
			want: func(t *testing.T, orig string) string {
				return replaceOnce(t, orig, initechDisabled, "    disabled: false             # until their security review is done\n")
			},
			changed: true,
		},
		{
			name: "disable a disabled user",
			edit: func(e *Editor) (Result, error) { return e.SetDisabled("initech", true) },
			want: func(t *testing.T, orig string) string { return orig },
		},
		{
			name: "enable an enabled user",
			edit: func(e *Editor) (Result, error) { return e.SetDisabled("globex", false) },
			want: func(t *testing.T, orig string) string { return orig },
		},
		{
			name: "set a password",
			edit: func(e *Editor) (Result, error) { return e.SetPasswordHash("acme", otherHash) },
			want: func(t *testing.T, orig string) string {
				return replaceOnce(t, orig, acmePerms, "    password_hash: \""+otherHash+"\"\n"+acmePerms)
			},
			changed: true,
		},
		{
			name: "change a password",
			edit: func(e *Editor) (Result, error) { return e.SetPasswordHash("globex", otherHash) },
			want: func(t *testing.T, orig string) string {
				return replaceOnce(t, orig, globexHash+"\"  #", otherHash+"\"  #")
			},
			changed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, orig := commented(t)
			res, err := tt.edit(&Editor{Path: path})
			if err != nil {
				t.Fatalf("edit: %v", err)
			}
			if res.File != path || res.Changed != tt.changed || res.Reformatted || res.LostComments != 0 {
				t.Errorf("Result = %+v, want File %s, Changed %v, nothing reformatted or lost", res, path, tt.changed)
			}
			got := readFile(t, path)
			if want := tt.want(t, orig); got != want {
				t.Errorf("edited file differs from the expected one.\ngot:\n%s\nwant:\n%s", got, want)
			}
			have := commentLines(got)
			for _, c := range commentLines(orig) {
				if slices.Contains(tt.gone, c) {
					if slices.Contains(have, c) {
						t.Errorf("comment %q of what was removed is still there", c)
					}
					continue
				}
				if !slices.Contains(have, c) {
					t.Errorf("comment %q was lost", c)
				}
			}
			mustLoad(t, path)
			assertOnlyFiles(t, filepath.Dir(path), "wharf.yaml")
		})
	}
}

// TestEditResults checks what each edit changes in the loaded config.
func TestEditResults(t *testing.T) {
	path, _ := commented(t)
	e := &Editor{Path: path}
	steps := []func() (Result, error){
		func() (Result, error) {
			return e.AddUser(NewUser{Name: "hooli", Home: "/hooli", PublicKeys: []string{newKey}, Permissions: []string{"list"}})
		},
		func() (Result, error) { return e.AddKey("hooli", acme1Key) },
		func() (Result, error) { return e.RemoveKey("hooli", newFP) },
		func() (Result, error) { return e.SetPasswordHash("hooli", otherHash) },
		func() (Result, error) { return e.SetDisabled("hooli", true) },
		func() (Result, error) { return e.RemoveUser("acme") },
	}
	for i, step := range steps {
		if _, err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	cfg := mustLoad(t, path)
	var names []string
	for _, u := range cfg.Users {
		names = append(names, u.Name)
	}
	if want := []string{"globex", "initech", "hooli"}; !slices.Equal(names, want) {
		t.Fatalf("users = %q, want %q", names, want)
	}
	h := cfg.Users[2]
	h.Src = config.Source{}
	want := config.User{Name: "hooli", Home: "/hooli", PublicKeys: config.Keys(acme1Key), PasswordHash: otherHash,
		Permissions: []string{"list"}, Disabled: true}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("hooli = %+v, want %+v", h, want)
	}
}

func TestEditErrorsLeaveFileUntouched(t *testing.T) {
	const pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"
	const plaintext = "hunter2-Plaintext"
	tests := []struct {
		name     string
		edit     func(e *Editor) (Result, error)
		is       error
		contains string
		secret   string // must not appear in the error
	}{
		{"add existing user", func(e *Editor) (Result, error) {
			return e.AddUser(NewUser{Name: "globex", Home: "/g"})
		}, ErrUserExists, "wharf.yaml:31", ""},
		{"add bad key", func(e *Editor) (Result, error) {
			return e.AddUser(NewUser{Name: "n", Home: "/n", PublicKeys: []string{newKey, "ssh-ed25519 AAAAnotbase64!! x@y"}})
		}, ErrInvalid, "key 2: not a valid authorized_keys line", "AAAAnotbase64"},
		{"add private key", func(e *Editor) (Result, error) {
			return e.AddUser(NewUser{Name: "n", Home: "/n", PublicKeys: []string{pem}})
		}, ErrInvalid, "key 1: looks like a PEM block", "b3BlbnNzaC1rZXktdjEAAAAA"},
		{"add unknown permission", func(e *Editor) (Result, error) {
			return e.AddUser(NewUser{Name: "n", Home: "/n", Permissions: []string{"list", "lst"}})
		}, ErrInvalid, `permissions: unknown permission "lst"`, ""},
		{"add unknown protocol", func(e *Editor) (Result, error) {
			return e.AddUser(NewUser{Name: "n", Home: "/n", Protocols: []string{"ftp"}})
		}, ErrInvalid, `protocols: unknown protocol "ftp"`, ""},
		{"add no protocol", func(e *Editor) (Result, error) {
			return e.AddUser(NewUser{Name: "n", Home: "/n", Protocols: []string{}})
		}, ErrInvalid, "protocols: empty", ""},
		{"add relative home", func(e *Editor) (Result, error) {
			return e.AddUser(NewUser{Name: "n", Home: "n"})
		}, ErrInvalid, "home: must be absolute", ""},
		{"add home with ..", func(e *Editor) (Result, error) {
			return e.AddUser(NewUser{Name: "n", Home: "/a/../b"})
		}, ErrInvalid, "home: must not contain", ""},
		{"add bad name", func(e *Editor) (Result, error) {
			return e.AddUser(NewUser{Name: "../etc", Home: "/n"})
		}, ErrInvalid, "user name: invalid name", ""},
		{"add plaintext password", func(e *Editor) (Result, error) {
			return e.AddUser(NewUser{Name: "n", Home: "/n", PasswordHash: plaintext})
		}, ErrInvalid, "password hash: plaintext", plaintext},
		{"remove unknown user", func(e *Editor) (Result, error) { return e.RemoveUser("nobody") }, ErrUnknownUser, `"nobody"`, ""},
		{"add key to unknown user", func(e *Editor) (Result, error) { return e.AddKey("nobody", newKey) }, ErrUnknownUser, "", ""},
		{"add malformed key", func(e *Editor) (Result, error) {
			return e.AddKey("globex", "ssh-ed25519")
		}, ErrInvalid, "key: not a valid authorized_keys line", ""},
		{"add key twice", func(e *Editor) (Result, error) { return e.AddKey("acme", acme1Key) }, ErrDuplicateKey, acme1FP, ""},
		{"add key twice, other comment", func(e *Editor) (Result, error) {
			return e.AddKey("acme", strings.Replace(acme1Key, "acme1@example.com", "copy", 1))
		}, ErrDuplicateKey, acme1FP, ""},
		{"remove unknown key", func(e *Editor) (Result, error) { return e.RemoveKey("acme", newFP) }, ErrUnknownKey, acme1FP + ", " + acme2FP, ""},
		{"remove key by a bad fingerprint", func(e *Editor) (Result, error) { return e.RemoveKey("acme", "dma95gGM6mvusf") }, ErrInvalid, "SHA256:", ""},
		{"remove key of unknown user", func(e *Editor) (Result, error) { return e.RemoveKey("nobody", newFP) }, ErrUnknownUser, "", ""},
		{"disable unknown user", func(e *Editor) (Result, error) { return e.SetDisabled("nobody", true) }, ErrUnknownUser, "", ""},
		{"enable unknown user", func(e *Editor) (Result, error) { return e.SetDisabled("nobody", false) }, ErrUnknownUser, "", ""},
		{"password of unknown user", func(e *Editor) (Result, error) { return e.SetPasswordHash("nobody", otherHash) }, ErrUnknownUser, "", ""},
		{"plaintext as a hash", func(e *Editor) (Result, error) { return e.SetPasswordHash("acme", plaintext) }, ErrInvalid, "", plaintext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, orig := commented(t)
			if err := os.Chmod(path, 0o600); err != nil {
				t.Fatal(err)
			}
			before, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tt.edit(&Editor{Path: path})
			if !errors.Is(err, tt.is) {
				t.Fatalf("error = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not say %q", err, tt.contains)
			}
			if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Errorf("error %q quotes the input %q", err, tt.secret)
			}
			if got := readFile(t, path); got != orig {
				t.Errorf("the file changed:\n%s", got)
			}
			after, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !os.SameFile(before, after) || after.Mode() != before.Mode() || !after.ModTime().Equal(before.ModTime()) {
				t.Errorf("the file was replaced or touched")
			}
			assertOnlyFiles(t, filepath.Dir(path), "wharf.yaml")
		})
	}
}

// TestInvalidConfigIsNotEdited: an edit starts only from a config start-up
// accepts, and says what is wrong with it.
func TestInvalidConfigIsNotEdited(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown key": "users:\n  - name: a\n    home: /a\n    pasword_hash: x\n",
		"bad key":     "users:\n  - name: a\n    home: /a\n    public_keys: [\"ssh-ed25519 AAAA\"]\n",
		"not yaml":    "users: [\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "wharf.yaml")
			writeFile(t, path, doc, 0o600)
			_, err := (&Editor{Path: path}).AddUser(NewUser{Name: "b", Home: "/b"})
			if err == nil || !strings.Contains(err.Error(), "fix it first") || !strings.Contains(err.Error(), path+":") {
				t.Errorf("error = %v, want one naming the problem at %s:LINE", err, path)
			}
			if got := readFile(t, path); got != doc {
				t.Errorf("the file changed:\n%s", got)
			}
		})
	}
	_, err := (&Editor{Path: filepath.Join(t.TempDir(), "absent.yaml")}).SetDisabled("a", true)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("edit of a missing config: %v, want fs.ErrNotExist", err)
	}
}

// TestCheckIsRun: the Check the caller passes (daemon.Check in the CLI)
// decides, before and after the edit.
func TestCheckIsRun(t *testing.T) {
	path, orig := commented(t)
	refuse := errors.New("refused by check")
	e := &Editor{Path: path, Check: func(c *config.Config) error {
		if slices.ContainsFunc(c.Users, func(u config.User) bool { return u.Name == "hooli" }) {
			return refuse
		}
		return nil
	}}
	if _, err := e.AddUser(NewUser{Name: "hooli", Home: "/hooli"}); !errors.Is(err, refuse) {
		t.Errorf("AddUser = %v, want the check's error", err)
	}
	if got := readFile(t, path); got != orig {
		t.Error("the file changed")
	}
}

func TestSharedAnchors(t *testing.T) {
	const doc = "users:\n" +
		"  - name: a\n" +
		"    home: /a\n" +
		"    public_keys: &keys\n" +
		"      - " + acme1Key + "\n" +
		"  - name: b\n" +
		"    home: /b\n" +
		"    public_keys: *keys # same as a\n"
	path := filepath.Join(t.TempDir(), "wharf.yaml")
	writeFile(t, path, doc, 0o600)
	e := &Editor{Path: path}

	// Editing a's list would change b's too: refused.
	if _, err := e.AddKey("a", newKey); err == nil || !strings.Contains(err.Error(), "anchor") {
		t.Errorf("AddKey through an anchor = %v, want a refusal", err)
	}
	if _, err := e.RemoveUser("a"); err == nil {
		t.Errorf("RemoveUser of the anchor's owner succeeded")
	}
	if got := readFile(t, path); got != doc {
		t.Fatalf("the file changed:\n%s", got)
	}

	// b's alias becomes b's own copy.
	if res, err := e.AddKey("b", newKey); err != nil || res.LostComments != 0 {
		t.Fatalf("AddKey through an alias = %+v, %v", res, err)
	}
	cfg := mustLoad(t, path)
	if a, b := config.Lines(cfg.Users[0].PublicKeys), config.Lines(cfg.Users[1].PublicKeys); !slices.Equal(a, []string{acme1Key}) || !slices.Equal(b, []string{acme1Key, newKey}) {
		t.Errorf("a's keys = %q, b's keys = %q", a, b)
	}
	if !strings.Contains(readFile(t, path), "public_keys: &keys\n") || !strings.Contains(readFile(t, path), "# same as a") {
		t.Errorf("anchor or comment lost:\n%s", readFile(t, path))
	}
}

func TestModeAndOwnerKept(t *testing.T) {
	path, _ := commented(t)
	if err := os.Chmod(path, 0o604); err != nil {
		t.Fatal(err)
	}
	root := os.Geteuid() == 0
	if root {
		if err := os.Chown(path, 4321, 4322); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := (&Editor{Path: path}).SetDisabled("acme", true); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o604 {
		t.Errorf("mode = %v, want 0604", fi.Mode())
	}
	if uid, gid := owner(fi); root && (uid != 4321 || gid != 4322) {
		t.Errorf("owner = %d:%d, want 4321:4322", uid, gid)
	}
}

func TestSymlinkedConfig(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.yaml")
	writeFile(t, real, readFile(t, filepath.Join("testdata", "commented.yaml")), 0o600)
	link := filepath.Join(dir, "wharf.yaml")
	if err := os.Symlink("real.yaml", link); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Editor{Path: link}).SetDisabled("acme", true); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the link was replaced by a file (%v)", err)
	}
	if cfg := mustLoad(t, link); !cfg.Users[0].Disabled {
		t.Errorf("the edit did not reach the file the link names")
	}
}

func TestUsersDir(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "users.d")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	mainPath := filepath.Join(root, "wharf.yaml")
	mainDoc := "# main\nstorage: {backend: memory}\nusers_dir: " + dir + "\nusers:\n  - name: main   # defined here\n    home: /main\n"
	writeFile(t, mainPath, mainDoc, 0o640)
	globexPath := filepath.Join(dir, "globex.yaml")
	globexDoc := "# Globex, managed by ansible\nname: globex\nhome: /globex     # reports only\npublic_keys:\n  - " + globexKey + "\n"
	writeFile(t, globexPath, globexDoc, 0o600)
	root0 := os.Geteuid() == 0
	if root0 {
		if err := os.Chown(mainPath, 4321, 4322); err != nil {
			t.Fatal(err)
		}
	}
	e := &Editor{Path: mainPath}

	// add writes a new file, and nothing else.
	res, err := e.AddUser(NewUser{Name: "bob@acme", Home: "/bob", PublicKeys: []string{newKey}, Permissions: []string{"list"}})
	if err != nil {
		t.Fatalf("AddUser: %v", err)
	}
	bobPath := filepath.Join(dir, "bob@acme.yaml")
	if res.File != bobPath || !res.Created || res.Removed {
		t.Errorf("AddUser = %+v, want %s created", res, bobPath)
	}
	if got, want := readFile(t, bobPath), "name: bob@acme\nhome: /bob\npublic_keys:\n  - "+newKey+"\npermissions: [list]\n"; got != want {
		t.Errorf("%s =\n%s\nwant\n%s", bobPath, got, want)
	}
	fi, err := os.Stat(bobPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o640 {
		t.Errorf("new user file mode = %v, want 0640", fi.Mode())
	}
	if uid, gid := owner(fi); root0 && (uid != 4321 || gid != 4322) {
		t.Errorf("new user file owner = %d:%d, want the main file's 4321:4322", uid, gid)
	}
	if readFile(t, mainPath) != mainDoc || readFile(t, globexPath) != globexDoc {
		t.Errorf("AddUser changed another file")
	}
	assertOnlyFiles(t, dir, "globex.yaml", "bob@acme.yaml")

	// Other edits change the file that defines the user.
	if res, err := e.AddKey("bob@acme", acme1Key); err != nil || res.File != bobPath {
		t.Fatalf("AddKey = %+v, %v", res, err)
	}
	if res, err := e.SetDisabled("globex", true); err != nil || res.File != globexPath {
		t.Fatalf("SetDisabled = %+v, %v", res, err)
	}
	if got, want := readFile(t, globexPath), globexDoc+"disabled: true\n"; got != want {
		t.Errorf("%s =\n%s\nwant\n%s", globexPath, got, want)
	}
	if res, err := e.SetDisabled("main", true); err != nil || res.File != mainPath {
		t.Fatalf("SetDisabled(main) = %+v, %v", res, err)
	}
	if got, want := readFile(t, mainPath), mainDoc+"    disabled: true\n"; got != want {
		t.Errorf("%s =\n%s\nwant\n%s", mainPath, got, want)
	}
	cfg := mustLoad(t, mainPath)
	if len(cfg.Users) != 3 || !slices.Equal(config.Lines(cfg.Users[1].PublicKeys), []string{newKey, acme1Key}) || !cfg.Users[2].Disabled {
		t.Errorf("users = %+v", cfg.Users)
	}

	// Names are unique across every file, and a file name is never reused.
	for _, name := range []string{"main", "globex", "bob@acme"} {
		if _, err := e.AddUser(NewUser{Name: name, Home: "/x"}); !errors.Is(err, ErrUserExists) {
			t.Errorf("AddUser(%s) = %v, want ErrUserExists", name, err)
		}
	}
	writeFile(t, filepath.Join(dir, "carol.yaml"), "name: someone\nhome: /someone\n", 0o600)
	if _, err := e.AddUser(NewUser{Name: "carol", Home: "/c"}); err == nil || !strings.Contains(err.Error(), "carol.yaml already exists but does not define") {
		t.Errorf("AddUser over another user's file = %v", err)
	}
	if got := readFile(t, filepath.Join(dir, "carol.yaml")); got != "name: someone\nhome: /someone\n" {
		t.Errorf("carol.yaml was overwritten")
	}

	// remove deletes the user's file, or edits the main file.
	if res, err := e.RemoveUser("bob@acme"); err != nil || res.File != bobPath || !res.Removed {
		t.Fatalf("RemoveUser = %+v, %v", res, err)
	}
	assertOnlyFiles(t, dir, "globex.yaml", "carol.yaml")
	if res, err := e.RemoveUser("main"); err != nil || res.File != mainPath || res.Removed {
		t.Fatalf("RemoveUser(main) = %+v, %v", res, err)
	}
	if got, want := readFile(t, mainPath), "# main\nstorage: {backend: memory}\nusers_dir: "+dir+"\nusers: []\n"; got != want {
		t.Errorf("%s =\n%s\nwant\n%s", mainPath, got, want)
	}
	var names []string
	for _, u := range mustLoad(t, mainPath).Users {
		names = append(names, u.Name)
	}
	if !slices.Equal(names, []string{"someone", "globex"}) {
		t.Errorf("users = %q", names)
	}
	assertOnlyFiles(t, root, "wharf.yaml", "users.d")
}

// TestConcurrentEdits: edits run at once (say, by a provisioning script)
// are serialized by the lock, so none is lost.
func TestConcurrentEdits(t *testing.T) {
	path, _ := commented(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			e := &Editor{Path: path}
			name := fmt.Sprintf("user%d", i)
			if _, err := e.AddUser(NewUser{Name: name, Home: "/" + name}); err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = e.SetDisabled(name, true)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("editor %d: %v", i, err)
		}
	}
	cfg := mustLoad(t, path)
	if len(cfg.Users) != 3+n {
		t.Errorf("%d users after %d concurrent adds, want %d", len(cfg.Users), n, 3+n)
	}
	for _, u := range cfg.Users[3:] {
		if !u.Disabled {
			t.Errorf("user %s lost its disabled edit", u.Name)
		}
	}
	assertOnlyFiles(t, filepath.Dir(path), "wharf.yaml")
}

func TestList(t *testing.T) {
	path, _ := commented(t)
	got, err := (&Editor{Path: path}).List()
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"list", "download", "upload", "overwrite", "delete", "rename", "mkdir"}
	want := []UserInfo{
		{Name: "acme", Home: "/acme", Keys: 2, Fingerprints: []string{acme1FP, acme2FP}, PublicKeys: []KeyInfo{{Fingerprint: acme1FP}, {Fingerprint: acme2FP}},
			Permissions: []string{"list", "download", "upload"}, Protocols: []string{"sftp", "ftps"}, File: path, Line: 20},
		{Name: "globex", Home: "/globex", Keys: 1, Fingerprints: []string{globexFP}, PublicKeys: []KeyInfo{{Fingerprint: globexFP}}, Password: true,
			Permissions: []string{"list", "download"}, Protocols: []string{"sftp"}, File: path, Line: 31},
		{Name: "initech", Home: "/initech", Keys: 1, Fingerprints: []string{initechFP}, PublicKeys: []KeyInfo{{Fingerprint: initechFP}}, Permissions: all,
			Protocols: []string{"sftp", "ftps"}, Disabled: true, File: path, Line: 41},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List =\n%+v\nwant\n%+v", got, want)
	}
}

// TestFileStyles edits files written in other styles than the fixture's.
func TestFileStyles(t *testing.T) {
	dev := readFile(t, filepath.Join("..", "..", "configs", "dev.yaml"))
	tests := []struct {
		name string
		doc  string
		edit func(e *Editor) (Result, error)
		want func(t *testing.T, doc string) string
	}{
		{
			name: "empty file",
			doc:  "",
			edit: func(e *Editor) (Result, error) { return e.AddUser(NewUser{Name: "a", Home: "/a"}) },
			want: func(t *testing.T, doc string) string { return "users:\n  - name: a\n    home: /a\n" },
		},
		{
			name: "no users key",
			doc:  "# dev\nstorage: {backend: memory}   # nothing kept\n",
			edit: func(e *Editor) (Result, error) { return e.AddUser(NewUser{Name: "a", Home: "/a"}) },
			want: func(t *testing.T, doc string) string { return doc + "users:\n  - name: a\n    home: /a\n" },
		},
		{
			name: "empty flow list with a comment",
			doc:  "users: []   # none yet\n",
			edit: func(e *Editor) (Result, error) { return e.AddUser(NewUser{Name: "a", Home: "/a"}) },
			want: func(t *testing.T, doc string) string { return "users: # none yet\n  - name: a\n    home: /a\n" },
		},
		{
			name: "compact lists",
			doc:  "users:\n- name: a   # first\n  home: /a\n  public_keys:\n  - " + acme1Key + "\n\n- name: b\n  home: /b\n",
			edit: func(e *Editor) (Result, error) {
				return e.AddUser(NewUser{Name: "c", Home: "/c", PublicKeys: []string{newKey}})
			},
			want: func(t *testing.T, doc string) string {
				return doc + "- name: c\n  home: /c\n  public_keys:\n  - " + newKey + "\n"
			},
		},
		{
			name: "four spaces",
			doc:  "storage:\n    backend: memory\nusers:\n    - name: a\n      home: /a\n",
			edit: func(e *Editor) (Result, error) { return e.AddKey("a", newKey) },
			want: func(t *testing.T, doc string) string {
				// yaml.v3 indents this list by 2, not 4: valid, if not the file's style.
				return doc + "      public_keys:\n        - " + newKey + "\n"
			},
		},
		{
			name: "document marker and CRLF",
			doc:  "---\r\n# x\r\nusers:\r\n  - name: a\r\n    home: /a\r\n",
			edit: func(e *Editor) (Result, error) { return e.SetDisabled("a", true) },
			want: func(t *testing.T, doc string) string { return doc + "    disabled: true\r\n" },
		},
		{
			name: "null list with comments under it (configs/dev.yaml)",
			doc:  dev,
			edit: func(e *Editor) (Result, error) { return e.AddKey("demo", newKey) },
			want: func(t *testing.T, doc string) string {
				return replaceOnce(t, doc, "    public_keys:\n", "    public_keys:\n      - "+newKey+"\n")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "wharf.yaml")
			writeFile(t, path, tt.doc, 0o600)
			res, err := tt.edit(&Editor{Path: path})
			if err != nil {
				t.Fatalf("edit: %v", err)
			}
			if res.Reformatted || res.LostComments != 0 {
				t.Errorf("Result = %+v, want nothing reformatted or lost", res)
			}
			if got, want := readFile(t, path), tt.want(t, tt.doc); got != want {
				t.Errorf("got:\n%q\nwant:\n%q", got, want)
			}
			mustLoad(t, path)
		})
	}
}

func TestCheckKey(t *testing.T) {
	for key, ok := range map[string]bool{
		newKey:                         true,
		"no-pty " + acme1Key:           true,
		"ssh-ed25519 AAAA":             false,
		"":                             false,
		"# " + acme1Key:                false,
		acme1Key + "\n" + acme2Key:     false,
		"-----BEGIN RSA PRIVATE KEY--": false,
	} {
		err := CheckKey(key)
		if (err == nil) != ok {
			t.Errorf("CheckKey(%.30q) = %v, want ok=%v", key, err, ok)
		}
		if err != nil && (!errors.Is(err, ErrInvalid) || (len(key) > 12 && strings.Contains(err.Error(), key))) {
			t.Errorf("CheckKey(%.30q) = %v: want ErrInvalid, not quoting the key", key, err)
		}
	}
}

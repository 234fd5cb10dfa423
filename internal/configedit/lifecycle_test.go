package configedit

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
)

// TestRotateKeys: the rotation of acme in the commented fixture turns each
// old key into the mapping form with the grace's expiry, keeping the
// comments above them, and appends the new key; nothing else changes.
func TestRotateKeys(t *testing.T) {
	path, orig := commented(t)
	e := &Editor{Path: path}
	until := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	res, exp, err := e.RotateKeys("acme", []config.PublicKey{{Key: newKey}}, until)
	if err != nil {
		t.Fatalf("RotateKeys: %v", err)
	}
	if !res.Changed || res.File != path || res.Reformatted || res.LostComments != 0 {
		t.Errorf("RotateKeys = %+v", res)
	}
	if want := []KeyExpiry{{acme1FP, until}, {acme2FP, until}}; !slices.Equal(exp, want) {
		t.Errorf("expiring = %+v, want %+v", exp, want)
	}
	want := replaceOnce(t, orig,
		"      # 2025 key\n"+
			"      - \""+acme1Key+"\"\n"+
			"      # 2026 key\n"+
			"      - \""+acme2Key+"\"\n",
		"      # 2025 key\n"+
			"      - {key: \""+acme1Key+"\", expires_at: \"2027-03-01T00:00:00Z\"}\n"+
			"      # 2026 key\n"+
			"      - {key: \""+acme2Key+"\", expires_at: \"2027-03-01T00:00:00Z\"}\n"+
			"      - "+newKey+"\n")
	if got := readFile(t, path); got != want {
		t.Errorf("after the rotation:\n%s\nwant\n%s", got, want)
	}
	acme := mustLoad(t, path).Users[0]
	if got := acme.PublicKeys; len(got) != 3 || !got[0].ExpiresAt.Equal(until) || !got[1].ExpiresAt.Equal(until) || !got[2].ExpiresAt.IsZero() {
		t.Errorf("loaded keys: %+v", got)
	}

	// A second rotation, sooner: the new key of the first gets the expiry,
	// the old keys are shortened to it, never lengthened.
	sooner := until.Add(-24 * time.Hour)
	_, exp, err = e.RotateKeys("acme", []config.PublicKey{{Key: globexKey, Comment: "second"}}, sooner)
	if err != nil {
		t.Fatal(err)
	}
	if want := []KeyExpiry{{acme1FP, sooner}, {acme2FP, sooner}, {newFP, sooner}}; !slices.Equal(exp, want) {
		t.Errorf("second rotation: expiring = %+v, want %+v", exp, want)
	}
	later := sooner.Add(48 * time.Hour)
	_, exp, err = e.RotateKeys("acme", []config.PublicKey{{Key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHvmldnLEMwQDq8w8lnwlwe62Xy+71JvPE4X4OeHemEo third"}}, later)
	if err != nil {
		t.Fatal(err)
	}
	if want := []KeyExpiry{{acme1FP, sooner}, {acme2FP, sooner}, {newFP, sooner}, {globexFP, later}}; !slices.Equal(exp, want) {
		t.Errorf("third rotation (later): expiring = %+v, want %+v", exp, want)
	}
	text := readFile(t, path)
	if !strings.Contains(text, "      - {key: \""+globexKey+"\", comment: \"second\", expires_at: \""+config.FormatTime(later)+"\"}\n") {
		t.Errorf("the second key's mapping:\n%s", text)
	}
	if got := commentLines(text); !slices.Equal(got, commentLines(orig)) {
		t.Errorf("comments after three rotations: %q", got)
	}
}

func TestRotateKeysRefused(t *testing.T) {
	path, orig := commented(t)
	e := &Editor{Path: path}
	until := time.Now().Add(time.Hour)
	for name, add := range map[string][]config.PublicKey{
		"a key the user has": {{Key: acme2Key}},
		"no key":             nil,
		"the same key twice": {{Key: newKey}, {Key: newKey}},
		"a broken key":       {{Key: "ssh-ed25519 AAAA"}},
		"a two-line comment": {{Key: newKey, Comment: "a\nb"}},
		"a private key":      {{Key: "-----BEGIN OPENSSH PRIVATE KEY-----"}},
	} {
		if _, _, err := e.RotateKeys("acme", add, until); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name == "a key the user has" && !errors.Is(err, ErrDuplicateKey) {
			t.Errorf("%s: %v, want ErrDuplicateKey", name, err)
		}
	}
	if _, _, err := e.RotateKeys("nobody", []config.PublicKey{{Key: newKey}}, until); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("unknown user: %v", err)
	}
	if got := readFile(t, path); got != orig {
		t.Errorf("a refused rotation changed the file:\n%s", got)
	}
}

// TestRotateKeysOtherForms: a flow list of keys (initech), a user with no
// key yet (rotation is then an add), a block mapping entry, a users_dir
// file.
func TestRotateKeysOtherForms(t *testing.T) {
	path, _ := commented(t)
	e := &Editor{Path: path}
	until := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, _, err := e.RotateKeys("initech", []config.PublicKey{{Key: newKey}}, until); err != nil {
		t.Fatalf("initech: %v", err)
	}
	initech := mustLoad(t, path).Users[2]
	if len(initech.PublicKeys) != 2 || !initech.PublicKeys[0].ExpiresAt.Equal(until) || initech.PublicKeys[1].Key != newKey {
		t.Errorf("initech after the rotation: %+v\n%s", initech.PublicKeys, readFile(t, path))
	}

	root := t.TempDir()
	dir := filepath.Join(root, "users.d")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(root, "wharf.yaml")
	writeFile(t, main, "storage: {backend: memory}\nusers_dir: "+dir+"\nusers:\n  - name: bare\n    home: /bare\n", 0o640)
	user := filepath.Join(dir, "acme.yaml")
	writeFile(t, user, "name: acme\nhome: /acme\npublic_keys:\n  - key: "+acme1Key+"\n    comment: laptop   # theirs\n    expires_at: 2030-01-01\n", 0o640)
	e = &Editor{Path: main}
	if _, exp, err := e.RotateKeys("acme", []config.PublicKey{{Key: newKey}}, until); err != nil || !slices.Equal(exp, []KeyExpiry{{acme1FP, until}}) {
		t.Fatalf("acme in users_dir: %v, %+v", err, exp)
	}
	want := "name: acme\nhome: /acme\npublic_keys:\n  - key: " + acme1Key + "\n    comment: laptop   # theirs\n    expires_at: \"2027-01-02T03:04:05Z\"\n  - " + newKey + "\n"
	if got := readFile(t, user); got != want {
		t.Errorf("%s:\n%s\nwant\n%s", user, got, want)
	}
	if _, exp, err := e.RotateKeys("bare", []config.PublicKey{{Key: newKey}}, until); err != nil || len(exp) != 0 {
		t.Fatalf("bare: %v, %+v", err, exp)
	}
	if cfg := mustLoad(t, main); len(cfg.Users[0].PublicKeys) != 1 || cfg.Users[0].PublicKeys[0].Key != newKey {
		t.Errorf("bare after the rotation: %+v", cfg.Users[0])
	}

	// A plain line with options holding ", " and quotes stays one string
	// in the flow mapping.
	opts := `from="10.0.0.1, 10.0.0.2",no-pty ` + globexKey
	writeFile(t, user, "name: acme\nhome: /acme\npublic_keys:\n  - "+opts+"\n", 0o640)
	if _, _, err := e.RotateKeys("acme", []config.PublicKey{{Key: newKey}}, until); err != nil {
		t.Fatalf("a key with options: %v", err)
	}
	if k := mustLoad(t, main).Users[1].PublicKeys; len(k) != 2 || k[0].Key != opts || !k[0].ExpiresAt.Equal(until) {
		t.Errorf("a key with options after the rotation: %+v\n%s", k, readFile(t, user))
	}
}

func TestAddPublicKeyAndList(t *testing.T) {
	path, orig := commented(t)
	e := &Editor{Path: path}
	until := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	if _, err := e.AddPublicKey("globex", config.PublicKey{Key: newKey, Comment: "ETL server", ExpiresAt: until}); err != nil {
		t.Fatal(err)
	}
	want := replaceOnce(t, orig, "      - "+globexKey+"\n",
		"      - "+globexKey+"\n      - {key: \""+newKey+"\", comment: \"ETL server\", expires_at: \"2027-03-01T00:00:00Z\"}\n")
	if got := readFile(t, path); got != want {
		t.Errorf("after AddPublicKey:\n%s", got)
	}
	if _, err := e.AddPublicKey("globex", config.PublicKey{Key: newKey}); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("the same key again: %v", err)
	}
	pwUntil := time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)
	if _, err := e.SetPassword("globex", otherHash, pwUntil); err != nil {
		t.Fatal(err)
	}
	users, err := e.List()
	if err != nil {
		t.Fatal(err)
	}
	g := users[1]
	if !slices.Equal(g.PublicKeys, []KeyInfo{{Fingerprint: globexFP}, {Fingerprint: newFP, Comment: "ETL server", ExpiresAt: until}}) ||
		!g.PasswordExpiresAt.Equal(pwUntil) {
		t.Errorf("List: globex = %+v", g)
	}
	if text := readFile(t, path); !strings.Contains(text, " # set 2026-01\n    password_expires_at: \"2027-06-01T12:00:00Z\"\n    permissions:\n") {
		t.Errorf("password_expires_at is not beside the hash:\n%s", text)
	}

	// A new password without expiry removes the old deadline.
	if _, err := e.SetPasswordHash("globex", globexHash); err != nil {
		t.Fatal(err)
	}
	if text := readFile(t, path); strings.Contains(text, "password_expires_at") {
		t.Errorf("password_expires_at stays after a new password without one:\n%s", text)
	}
	if u := mustLoad(t, path).Users[1]; u.PasswordHash != globexHash || !u.PasswordExpiresAt.IsZero() {
		t.Errorf("globex after SetPasswordHash: %+v", u)
	}
}

func TestAddUserPasswordExpiry(t *testing.T) {
	path, _ := commented(t)
	e := &Editor{Path: path}
	until := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	if _, err := e.AddUser(NewUser{Name: "hooli", Home: "/hooli", PasswordHash: otherHash, PasswordExpiresAt: until}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(readFile(t, path), "  - name: hooli\n    home: /hooli\n    password_hash: \""+otherHash+"\"\n    password_expires_at: \"2027-03-01T00:00:00Z\"\n") {
		t.Errorf("hooli:\n%s", readFile(t, path))
	}
	if u := mustLoad(t, path).Users[3]; !u.PasswordExpiresAt.Equal(until) {
		t.Errorf("hooli loaded: %+v", u)
	}
}

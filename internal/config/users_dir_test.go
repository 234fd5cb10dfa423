package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// testKey is a public_keys entry; config does not parse keys (auth does).
const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@laptop"

func TestParseUser(t *testing.T) {
	u, err := ParseUser([]byte(strings.Join([]string{
		"# acme's account",
		"name: acme",
		"home: /acme",
		"public_keys:",
		"  - " + testKey,
		"password_hash: \"$argon2id$v=19$m=65536,t=3,p=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo\"",
		"permissions: [list, download]",
		"protocols: [sftp]",
		"disabled: true",
		"",
	}, "\n")))
	if err != nil {
		t.Fatalf("ParseUser: %v", err)
	}
	want := User{
		Name:         "acme",
		Home:         "/acme",
		PublicKeys:   Keys(testKey),
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
		Permissions:  []string{"list", "download"},
		Protocols:    []string{"sftp"},
		Disabled:     true,
	}
	src := u.Src
	u.Src = Source{}
	if !reflect.DeepEqual(*u, want) {
		t.Errorf("ParseUser = %+v, want %+v", *u, want)
	}
	if src.File != "" || src.Prefix != "" {
		t.Errorf("Src = %+v, want no File and no Prefix", src)
	}
	for field, line := range map[string]int{"": 2, "name": 2, "home": 3, "public_keys": 4, "public_keys[0]": 5, "disabled": 9} {
		if src.Lines[field] != line {
			t.Errorf("Src.Lines[%q] = %d, want %d", field, src.Lines[field], line)
		}
	}
	if e := src.Errorf("public_keys[0]", "bad"); e.Error() != "config:5: public_keys[0]: bad" {
		t.Errorf("Src.Errorf = %q", e)
	}
}

func TestParseUserPermissionsNilVersusEmpty(t *testing.T) {
	absent, err := ParseUser([]byte("name: a\nhome: /a\n"))
	if err != nil {
		t.Fatal(err)
	}
	none, err := ParseUser([]byte("name: a\nhome: /a\npermissions: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if absent.Permissions != nil || none.Permissions == nil || len(none.Permissions) != 0 {
		t.Errorf("absent = %#v, [] = %#v; want nil and empty", absent.Permissions, none.Permissions)
	}
}

func TestParseUserErrors(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		wants []want
	}{
		{"empty", "", []want{{1, "", "empty"}}},
		{"comment only", "# nothing\n", []want{{1, "", "empty"}}},
		{"list", "- name: a\n", []want{{1, "", "must be a mapping"}}},
		{"two documents", "name: a\nhome: /a\n---\nname: b\n", []want{{3, "", "second YAML document"}}},
		{"syntax", "name: a\n\thome: /a\n", []want{{2, "", "invalid YAML"}}},
		{"unknown key", "name: a\nhome: /a\npasword_hash: x\n", []want{{3, "pasword_hash", `did you mean "password_hash"`}}},
		{"main-file layout", "users:\n  - name: a\n", []want{
			{1, "users", "unknown key"},
			{1, "name", "required"},
			{1, "home", "required"},
		}},
		{"every problem", "name: -a\nhome: a\npublic_keys: [\"\", \" \"]\npermissions: [lst]\nprotocols: [ftp]\n", []want{
			{1, "name", "invalid name"},
			{2, "home", "must be absolute"},
			{3, "public_keys[0]", "empty key"},
			{3, "public_keys[1]", "empty key"},
			{4, "permissions[0]", "unknown permission"},
			{5, "protocols[0]", "unknown protocol"},
		}},
		{"type errors are not repeated", "name: [a]\nhome: {x: 1}\ndisabled: maybe\n", []want{
			{1, "name", "want a string"},
			{2, "home", "want a string"},
			{3, "disabled", "want true or false"},
		}},
		{"null permissions", "name: a\nhome: /a\npermissions:\n", []want{{3, "permissions", "write []"}}},
		{"duplicate key", "name: a\nhome: /a\nname: b\n", []want{{3, "name", "duplicate key"}}},
		{"plaintext password", "name: a\nhome: /a\npassword_hash: hunter2\n", []want{{3, "password_hash", "plaintext"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := ParseUser([]byte(tt.doc))
			if u != nil {
				t.Fatalf("ParseUser returned a user with the error")
			}
			checkErrors(t, err, tt.wants)
			for _, fe := range fieldErrors(t, err) {
				if fe.File != "" || strings.HasPrefix(fe.Field, "users[") {
					t.Errorf("FieldError %#v: want no File and a path relative to the user", fe)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error quotes the plaintext password: %v", err)
			}
		})
	}
}

func TestIsUserFile(t *testing.T) {
	for name, want := range map[string]bool{
		"acme.yaml":           true,
		"a.b@c.yaml":          true,
		".acme.yaml":          false,
		".acme.yaml.tmp-1234": false,
		"acme.yml":            false,
		"acme.yaml~":          false,
		"acme.yaml.bak":       false,
		".yaml":               false,
		"README":              false,
	} {
		if got := IsUserFile(name); got != want {
			t.Errorf("IsUserFile(%q) = %v, want %v", name, got, want)
		}
	}
}

// usersDirFixture writes a main file naming users_dir and the given user files.
func usersDirFixture(t *testing.T, main string, files map[string]string) (mainPath, dir string) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "users.d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, doc := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mainPath = filepath.Join(root, "wharf.yaml")
	if err := os.WriteFile(mainPath, []byte(strings.ReplaceAll(main, "DIR", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	return mainPath, dir
}

func TestLoadUsersDir(t *testing.T) {
	main := "storage: {backend: memory}\nusers_dir: DIR\nusers:\n  - name: main\n    home: /main\n"
	mainPath, dir := usersDirFixture(t, main, map[string]string{
		"b.yaml":              "name: bob\nhome: /bob\n",
		"a.yaml":              "# first by file name\nname: alice\nhome: /alice\npermissions: []\n",
		".hidden.yaml":        "not: a user\n",
		".a.yaml.tmp-123":     "garbage: [",
		"notes.txt":           "garbage: [",
		"c.yml":               "garbage: [",
		"README":              "garbage: [",
		"carol.yaml.disabled": "garbage: [",
	})
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A ConfigMap-style link: the file lives elsewhere.
	target := filepath.Join(t.TempDir(), "dave")
	if err := os.WriteFile(target, []byte("name: dave\nhome: /dave\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "d.yaml")); err != nil {
		t.Fatal(err)
	}

	c, err := Load(mainPath)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var got []string
	for _, u := range c.Users {
		got = append(got, u.Name+"@"+u.Src.File+":"+strconv.Itoa(u.Src.Lines["name"]))
	}
	want := []string{
		"main@" + mainPath + ":4",
		"alice@" + filepath.Join(dir, "a.yaml") + ":2",
		"bob@" + filepath.Join(dir, "b.yaml") + ":1",
		"dave@" + filepath.Join(dir, "d.yaml") + ":1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("users =\n%q\nwant\n%q", got, want)
	}
	if c.Users[1].Permissions == nil || len(c.Users[1].Permissions) != 0 {
		t.Errorf("alice's permissions: [] became %#v", c.Users[1].Permissions)
	}
	if e := c.Users[1].Src.Errorf("home", "x").Error(); e != filepath.Join(dir, "a.yaml")+":3: home: x" {
		t.Errorf("alice's Src.Errorf = %q", e)
	}
	files, err := UserFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml"), filepath.Join(dir, "d.yaml")}; !reflect.DeepEqual(files, want) {
		t.Errorf("UserFiles = %q, want %q", files, want)
	}
}

func TestLoadUsersDirRelative(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "conf", "users"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, doc string) {
		if err := os.WriteFile(filepath.Join(root, name), []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Relative to the working directory, not to the main file's folder.
	write("conf/wharf.yaml", "storage: {backend: memory}\nusers_dir: conf/users\n")
	write("conf/users/a.yaml", "name: a\nhome: /a\n")
	t.Chdir(root)
	c, err := Load("conf/wharf.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(c.Users) != 1 || c.Users[0].Src.File != filepath.Join("conf", "users", "a.yaml") {
		t.Errorf("users = %+v", c.Users)
	}
}

func TestLoadUsersDirErrors(t *testing.T) {
	const okMain = "storage: {backend: memory}\nusers_dir: DIR\nusers:\n  - name: alice\n    home: /alice\n"
	tests := []struct {
		name  string
		main  string
		files map[string]string
		// wants are "FILE:LINE: FIELD: MSG" fragments, FILE being "main" or a
		// users_dir file name; each error must contain its fragment.
		wants []string
	}{
		{
			name:  "unknown key",
			main:  okMain,
			files: map[string]string{"b.yaml": "name: bob\nhome: /bob\npubkeys: []\n"},
			wants: []string{"b.yaml:3: pubkeys: unknown key"},
		},
		{
			name:  "empty file",
			main:  okMain,
			files: map[string]string{"b.yaml": ""},
			wants: []string{"b.yaml:1: empty"},
		},
		{
			name:  "defined in the main file too",
			main:  okMain,
			files: map[string]string{"x.yaml": "home: /alice2\nname: alice\n"},
			wants: []string{"x.yaml:2: name: duplicate user \"alice\" (also defined at MAIN:4)"},
		},
		{
			name: "defined in two files",
			main: okMain,
			files: map[string]string{
				"a.yaml": "name: bob\nhome: /bob\n",
				"b.yaml": "\nname: bob\nhome: /bob\n",
			},
			wants: []string{"b.yaml:2: name: duplicate user \"bob\" (also defined at DIR/a.yaml:1)"},
		},
		{
			name: "every problem at once",
			main: okMain,
			files: map[string]string{
				"a.yaml": "name: a\nhome: a\n",
				"b.yaml": "name: b\nhome: /b\npermissions: [lst]\n",
				"c.yaml": "name: c\nhome: /c\n",
			},
			wants: []string{"a.yaml:2: home: must be absolute", "b.yaml:3: permissions[0]: unknown permission"},
		},
		{
			name:  "main file broken too",
			main:  "log: {level: loud}\nusers_dir: DIR\n",
			files: map[string]string{"a.yaml": "name: a\nhome: a\n"},
			wants: []string{"MAIN:1: log.level: unknown level", "a.yaml:2: home: must be absolute"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mainPath, dir := usersDirFixture(t, tt.main, tt.files)
			c, err := Load(mainPath)
			if c != nil {
				t.Fatal("Load returned a config with the error")
			}
			got := fieldErrors(t, err)
			if len(got) != len(tt.wants) {
				t.Fatalf("got %d errors, want %d:\n%v", len(got), len(tt.wants), err)
			}
			for i, w := range tt.wants {
				w = strings.ReplaceAll(w, "MAIN", mainPath)
				w = strings.ReplaceAll(w, "DIR", dir)
				if !strings.HasPrefix(w, "/") {
					w = filepath.Join(dir, w)
				}
				if !strings.Contains(got[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestLoadUsersDirMissing(t *testing.T) {
	mainPath, dir := usersDirFixture(t, "storage: {backend: memory}\n\nusers_dir: DIR/absent\n", nil)
	_, err := Load(mainPath)
	got := fieldErrors(t, err)
	want := mainPath + `:3: users_dir: cannot read folder "` + filepath.Join(dir, "absent") + `": no such file or directory`
	if len(got) != 1 || got[0].Error() != want {
		t.Errorf("Load = %v, want %q", err, want)
	}
}

func TestLoadOverlay(t *testing.T) {
	main := "storage: {backend: memory}\nusers_dir: DIR\n"
	mainPath, dir := usersDirFixture(t, main, map[string]string{
		"a.yaml": "name: a\nhome: /a\n",
		"b.yaml": "name: b\nhome: /b\n",
	})
	before, err := os.ReadFile(mainPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadOverlay(mainPath, map[string][]byte{
		mainPath + "/../wharf.yaml":      append(before, "users:\n  - name: m\n    home: /m\n"...),
		filepath.Join(dir, "b.yaml"):     nil,
		filepath.Join(dir, "c.yaml"):     []byte("name: c\nhome: /c\n"),
		filepath.Join(dir, ".c.yaml"):    []byte("garbage: ["),
		filepath.Join(dir, "sub/x.yaml"): []byte("garbage: ["),
	})
	if err != nil {
		t.Fatalf("LoadOverlay: %v", err)
	}
	var names []string
	for _, u := range c.Users {
		names = append(names, u.Name)
	}
	if want := []string{"m", "a", "c"}; !reflect.DeepEqual(names, want) {
		t.Errorf("users = %q, want %q", names, want)
	}
	if after, err := os.ReadFile(mainPath); err != nil || string(after) != string(before) {
		t.Errorf("LoadOverlay changed the file on disk (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "c.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadOverlay created a file: %v", err)
	}

	// A removed main file reads as absent.
	if _, err := LoadOverlay(mainPath, map[string][]byte{mainPath: nil}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadOverlay with the main file removed = %v, want fs.ErrNotExist", err)
	}
}

// FuzzParseUser checks that ParseUser never panics, returns exactly one of a
// user and an error, reports failures as FieldErrors relative to the user,
// and only returns users that validate.
func FuzzParseUser(f *testing.F) {
	for _, doc := range []string{
		"",
		"name: a\nhome: /a\n",
		"name: acme\nhome: /acme\npublic_keys:\n  - " + testKey + "\npermissions: [list]\nprotocols: [sftp]\ndisabled: true\n",
		"name: a\nhome: /a\npermissions: []\n",
		"name: a\nhome: /a\npermissions:\n",
		"k: &k [list]\nname: a\n",
		"name: a\nhome: a/../b\npasword_hash: x\n",
		"- a\n",
		"name: a\n---\nname: b\n",
		"<<: {name: a}\n",
		"? [a]\n: 1\n",
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := ParseUser(data)
		if (u == nil) == (err == nil) {
			t.Fatalf("ParseUser returned user %v and error %v; want exactly one", u != nil, err)
		}
		if err != nil {
			for _, fe := range fieldErrors(t, err) {
				if fe.Msg == "" || fe.Line < 0 || fe.File != "" || strings.HasPrefix(fe.Field, "users[") {
					t.Errorf("malformed FieldError %#v", fe)
				}
			}
			return
		}
		if errs := validateUser(u, u.Src); len(errs) > 0 {
			t.Errorf("ParseUser succeeded but the user does not validate: %v", errs)
		}
		if u.Src.Lines[""] <= 0 || u.Src.Prefix != "" || u.Src.File != "" {
			t.Errorf("Src = %+v", u.Src)
		}
	})
}

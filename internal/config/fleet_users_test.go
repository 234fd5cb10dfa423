package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// bucketMain is a main config file with users_dir in a bucket.
const bucketMain = `state_dir: /var/lib/wharf
storage:
  backend: s3
  s3:
    bucket: partner-files
    prefix: homes/
users_dir: s3://partner-files/wharf/users/
users_poll: 2s
users:
  - name: admin
    home: /
`

func writeMain(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "wharf.yaml")
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUsersBucketSchema(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       string // "" valid; else a substring of the error, with its line
	}{
		{"valid", bucketMain, ""},
		{"bucket root", strings.Replace(bucketMain, "s3://partner-files/wharf/users/", "s3://other-bucket", 1), ""},
		{"no trailing slash", strings.Replace(bucketMain, "wharf/users/", "wharf/users", 1), ""},
		{"poll absent", strings.Replace(bucketMain, "users_poll: 2s\n", "", 1), ""},
		{"poll too short", strings.Replace(bucketMain, "users_poll: 2s", "users_poll: 10ms", 1), ":8: users_poll: 10ms is below 100ms"},
		{"poll negative", strings.Replace(bucketMain, "users_poll: 2s", "users_poll: -1s", 1), ":8: users_poll: must not be negative"},
		{"poll with a local folder", strings.Replace(bucketMain, "s3://partner-files/wharf/users/", "/etc/wharf/users", 1), ":8: users_poll: applies only to a users_dir in a bucket"},
		{"bad bucket", strings.Replace(bucketMain, "s3://partner-files/", "s3://Partner_Files/", 1), `:7: users_dir: bucket "Partner_Files": only lowercase`},
		{"bad prefix", strings.Replace(bucketMain, "wharf/users/", "wharf//users/", 1), `:7: users_dir: prefix must be empty or folder names`},
		{"query", strings.Replace(bucketMain, "wharf/users/", "wharf/users/?x=1", 1), ":7: users_dir: want s3://BUCKET/PREFIX/"},
		{"user info", strings.Replace(bucketMain, "s3://partner-files/", "s3://key:secret@partner-files/", 1), ":7: users_dir: want s3://BUCKET/PREFIX/"},
		{"not the s3 backend", strings.Replace(strings.Replace(bucketMain, "backend: s3", "backend: memory", 1), "  s3:\n    bucket: partner-files\n    prefix: homes/\n", "", 1), ":4: users_dir: a users_dir in a bucket is read with storage.s3's endpoint and credentials"},
		{"inside the homes", strings.Replace(bucketMain, "prefix: homes/", "prefix: wharf/", 1), `:7: users_dir: "s3://partner-files/wharf/users/" overlaps the homes`},
		{"homes at the root", strings.Replace(bucketMain, "    prefix: homes/\n", "", 1), `overlaps the homes`},
		{"homes inside", strings.Replace(bucketMain, "prefix: homes/", "prefix: wharf/users/homes", 1), `overlaps the homes`},
		{"same prefix", strings.Replace(bucketMain, "prefix: homes/", "prefix: wharf/users", 1), `overlaps the homes`},
		{"sibling prefix", strings.Replace(bucketMain, "prefix: homes/", "prefix: wharf/users2/", 1), ""},
		{"extra key", strings.Replace(bucketMain, "users:\n", "users_pol: 1s\nusers:\n", 1), `users_pol: unknown key (did you mean "users_poll"?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want an error with %q", err, tc.want)
			}
		})
	}
	c, err := Parse([]byte(bucketMain))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.UsersPollInterval(); got != 2*time.Second {
		t.Errorf("UsersPollInterval = %v", got)
	}
	c.UsersPoll = 0
	if got := c.UsersPollInterval(); got != DefaultUsersPoll {
		t.Errorf("UsersPollInterval of an absent users_poll = %v", got)
	}
}

func TestBucketFolder(t *testing.T) {
	for in, want := range map[string][3]string{
		"s3://b-1/wharf/users/": {"b-1", "wharf/users/", "s3://b-1/wharf/users/"},
		"s3://b-1/wharf/users":  {"b-1", "wharf/users/", "s3://b-1/wharf/users/"},
		"s3://b-1/":             {"b-1", "", "s3://b-1/"},
		"s3://b-1":              {"b-1", "", "s3://b-1/"},
	} {
		b, p, canon, msg := BucketFolder(in)
		if msg != "" || [3]string{b, p, canon} != want {
			t.Errorf("BucketFolder(%q) = %q %q %q %q, want %q", in, b, p, canon, msg, want)
		}
	}
	for _, in := range []string{"s3:/b-1/x", "s3:b-1", "http://b-1/x", "s3://b/x", "s3://b-1/../x", "s3://b-1/x#y"} {
		if _, _, _, msg := BucketFolder(in); msg == "" {
			t.Errorf("BucketFolder(%q) accepted", in)
		}
	}
}

// TestLoadUserObjects: the objects of a bucket users_dir are loaded as a
// local users_dir's files are, each named by its URL.
func TestLoadUserObjects(t *testing.T) {
	path := writeMain(t, bucketMain)
	const url = "s3://partner-files/wharf/users/"
	objs := &UserObjects{URL: url, Objects: map[string][]byte{
		"acme.yaml":        []byte("# acme\nname: acme\nhome: /acme\npublic_keys:\n  - " + testKey + "\n"),
		"beta.yaml":        []byte("name: beta\nhome: /beta\n"),
		"notes.txt":        []byte("not a user"),
		".acme.yaml.tmp":   []byte("name: ghost\nhome: /ghost\n"),
		"old/ghost.yaml":   []byte("name: ghost\nhome: /ghost\n"),
		"archive/old.yaml": []byte("garbage: ["),
	}}

	// Without objects, Load reads none: the main file's users only.
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Users) != 1 || c.Users[0].Name != "admin" {
		t.Fatalf("Load without objects: users %v", names(c.Users))
	}

	c, err = LoadWith(path, LoadOptions{Objects: objs})
	if err != nil {
		t.Fatalf("LoadWith: %v", err)
	}
	if got := names(c.Users); !reflect.DeepEqual(got, []string{"admin", "acme", "beta"}) {
		t.Fatalf("users = %v", got)
	}
	acme := c.Users[1]
	if acme.Src.File != url+"acme.yaml" {
		t.Errorf("acme's file = %q", acme.Src.File)
	}
	if e := acme.Src.Errorf("public_keys[0]", "bad"); e.Error() != url+"acme.yaml:5: public_keys[0]: bad" {
		t.Errorf("an error about acme's key reads %q", e)
	}

	// WithUserObjects on Load's result is LoadWith.
	plain, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := WithUserObjects(plain, objs)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w.Users, c.Users) {
		t.Errorf("WithUserObjects users differ from LoadWith's:\n%+v\n%+v", w.Users, c.Users)
	}
	// Applied again (to a config that has them), the users are not doubled.
	again, err := WithUserObjects(w, objs)
	if err != nil || !reflect.DeepEqual(again.Users, c.Users) {
		t.Errorf("WithUserObjects twice: %v, users %v", err, names(again.Users))
	}
	if len(plain.Users) != 1 {
		t.Errorf("WithUserObjects changed its argument: %v", names(plain.Users))
	}

	// Errors name the object and line, as for files.
	bad := &UserObjects{URL: url, Objects: map[string][]byte{
		"acme.yaml":  []byte("name: acme\nhome: /acme\npublic_keys:\n  - \"\"\n"),
		"admin.yaml": []byte("name: admin\nhome: /admin\n"),
		"bad.yaml":   []byte("name: bad\nhome: relative\n"),
		"junk.yaml":  []byte("name: [\n"),
	}}
	_, err = LoadWith(path, LoadOptions{Objects: bad})
	for _, want := range []string{
		url + "acme.yaml:4: public_keys[0]: empty key",
		url + `admin.yaml:1: name: duplicate user "admin" (also defined at ` + path + ":10)",
		url + "bad.yaml:2: home: must be absolute",
		url + "junk.yaml:",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadWith of bad objects = %v\nwant %q", err, want)
		}
	}

	// Objects read from another folder are not this users_dir's.
	_, err = LoadWith(path, LoadOptions{Objects: &UserObjects{URL: "s3://partner-files/other/"}})
	if err == nil || !strings.Contains(err.Error(), "a change of a users_dir in a bucket needs a restart") {
		t.Errorf("LoadWith of another folder's objects = %v", err)
	}
	// Every user of an invalid main file is still reported, the objects too.
	broken := writeMain(t, strings.Replace(bucketMain, "home: /\n", "home: relative\n", 1))
	_, err = LoadWith(broken, LoadOptions{Objects: bad})
	if err == nil || !strings.Contains(err.Error(), broken+":11: users[0].home") || !strings.Contains(err.Error(), url+"bad.yaml:2") {
		t.Errorf("LoadWith of a broken main file = %v", err)
	}
}

func TestSnapshotUserObjects(t *testing.T) {
	path := writeMain(t, bucketMain)
	const url = "s3://partner-files/wharf/users/"
	objs := func(home string) LoadOptions {
		return LoadOptions{Objects: &UserObjects{URL: url, Objects: map[string][]byte{"acme.yaml": []byte("name: acme\nhome: " + home + "\n")}}}
	}
	a := ReadSnapshotWith(path, url, objs("/acme"))
	if b := ReadSnapshotWith(path, url, objs("/acme")); b != a {
		t.Error("two reads of the same objects differ")
	}
	if b := ReadSnapshotWith(path, url, objs("/acme2")); b.Sum == a.Sum {
		t.Error("a changed object leaves the snapshot as it was")
	}
	_, snap, err := LoadSnapshotWith(path, objs("/acme"))
	if err != nil || snap != a {
		t.Errorf("LoadSnapshotWith = %+v, %v; want the snapshot ReadSnapshotWith took, %+v", snap, err, a)
	}
	if plain := ReadSnapshot(path, url); plain.Sum == a.Sum {
		t.Error("ReadSnapshot without objects equals one with")
	}
}

func names(users []User) []string {
	var out []string
	for _, u := range users {
		out = append(out, u.Name)
	}
	return out
}

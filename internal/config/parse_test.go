package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fieldErrors returns the problems joined in err, failing the test unless
// err is an errors.Join of *FieldError only.
func fieldErrors(t *testing.T, err error) []*FieldError {
	t.Helper()
	if err == nil {
		t.Fatal("got no error")
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %T is not a joined error: %v", err, err)
	}
	var out []*FieldError
	errs := j.Unwrap()
	for i, e := range errs {
		if _, ok := e.(*MoreErrors); ok && i == len(errs)-1 && i == MaxErrors {
			continue // the count of the errors not listed
		}
		fe, ok := e.(*FieldError)
		if !ok {
			t.Fatalf("joined error %T is not a *FieldError: %v", e, e)
		}
		out = append(out, fe)
	}
	return out
}

// want is one expected problem; Msg must appear in the FieldError's Msg.
type want struct {
	Line  int
	Field string
	Msg   string
}

// parseCase is a document and the errors Parse must give for it.
type parseCase struct {
	name string
	doc  string
	want []want // nil: valid
}

// runParseCases parses each case's document as a subtest: a case without
// wants must parse, the others must fail with exactly those errors.
func runParseCases(t *testing.T, tests []parseCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			checkErrors(t, err, tt.want)
		})
	}
}

func checkErrors(t *testing.T, err error, wants []want) {
	t.Helper()
	got := fieldErrors(t, err)
	if len(got) != len(wants) {
		t.Fatalf("got %d errors, want %d:\n%v", len(got), len(wants), err)
	}
	for i, w := range wants {
		g := got[i]
		if g.Line != w.Line || g.Field != w.Field || !strings.Contains(g.Msg, w.Msg) {
			t.Errorf("error %d = line %d field %q msg %q; want line %d field %q msg containing %q",
				i, g.Line, g.Field, g.Msg, w.Line, w.Field, w.Msg)
		}
	}
}

func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	c, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c == nil {
		t.Fatal("Parse returned neither a config nor an error")
	}
	return c
}

func TestParseEmptyMeansDefaults(t *testing.T) {
	for _, doc := range []string{"", "\n\n", "# only a comment\n", "---\n", "~\n", "null\n", "--- # start\n...\n"} {
		t.Run(doc, func(t *testing.T) {
			c := mustParse(t, doc)
			c.lines = nil
			if d := Default(); !reflect.DeepEqual(c, d) {
				t.Errorf("Parse(%q) = %+v, want the defaults %+v", doc, c, d)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	d := Default()
	if d.StateDir != "./var/state" || d.ShutdownGrace != 30*time.Second ||
		d.Log != (Log{Level: "info", Format: "text"}) || d.SFTP.Listen != "127.0.0.1:2022" ||
		d.Storage != (Storage{Backend: "local", Root: "./var/data", S3: DefaultS3()}) || d.Users != nil {
		t.Errorf("Default() = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

const fullDoc = `# a complete file
state_dir: /var/lib/wharf
shutdown_grace: 1m30s
log:
  level: debug
  format: json
sftp:
  listen: "[::1]:0"
  host_keys: [/etc/wharf/ed25519, /etc/wharf/rsa]
storage:
  backend: local
  root: /srv/sftp
users:
  - name: alice
    home: /alice
    public_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@laptop
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB alice@phone
    password_hash: $argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA
  - name: bob
    home: /
    permissions: []
    disabled: true
  - name: carol@example.com
    home: /shared/carol
    password_hash: "$2b$10$abcdefghijklmnopqrstuv"
    permissions: [list, download]
`

func TestParseFull(t *testing.T) {
	c := mustParse(t, fullDoc)
	if c.StateDir != "/var/lib/wharf" || c.ShutdownGrace != 90*time.Second ||
		c.Log != (Log{Level: "debug", Format: "json"}) || c.SFTP.Listen != "[::1]:0" ||
		!reflect.DeepEqual(c.SFTP.HostKeys, []string{"/etc/wharf/ed25519", "/etc/wharf/rsa"}) ||
		c.Storage != (Storage{Backend: "local", Root: "/srv/sftp", S3: DefaultS3()}) || c.File != "" {
		t.Errorf("top level = %+v", c)
	}
	if len(c.Users) != 3 {
		t.Fatalf("got %d users, want 3", len(c.Users))
	}
	alice, bob, carol := c.Users[0], c.Users[1], c.Users[2]
	if alice.Name != "alice" || alice.Home != "/alice" || len(alice.PublicKeys) != 2 ||
		alice.PublicKeys[1].Key != "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB alice@phone" ||
		!strings.HasPrefix(alice.PasswordHash, "$argon2id$") || alice.Permissions != nil || alice.Disabled {
		t.Errorf("alice = %+v", alice)
	}
	if bob.Permissions == nil || len(bob.Permissions) != 0 || !bob.Disabled || bob.Home != "/" {
		t.Errorf("bob = %+v", bob)
	}
	if !reflect.DeepEqual(carol.Permissions, []string{"list", "download"}) || carol.Name != "carol@example.com" {
		t.Errorf("carol = %+v", carol)
	}

	wantSrc := Source{Prefix: "users[0]", Lines: map[string]int{
		"": 14, "name": 14, "home": 15, "public_keys": 16, "public_keys[0]": 17, "public_keys[1]": 18,
		"password_hash": 19,
	}}
	if !reflect.DeepEqual(alice.Src, wantSrc) {
		t.Errorf("alice.Src = %+v\nwant %+v", alice.Src, wantSrc)
	}
	if got := carol.Src.Lines; got["permissions[1]"] != 27 || got[""] != 24 || carol.Src.Prefix != "users[2]" {
		t.Errorf("carol.Src = %+v", carol.Src)
	}
	if e := alice.Src.Errorf("public_keys[1]", "not a key"); e.Error() != "config:18: users[0].public_keys[1]: not a key" {
		t.Errorf("Src.Errorf = %q", e)
	}
}

func TestParseSFTPListen(t *testing.T) {
	tests := []struct {
		doc  string
		want string
	}{
		{"state_dir: x\n", "127.0.0.1:2022"},
		{"sftp:\n", "127.0.0.1:2022"},
		{"sftp: {host_keys: [k]}\n", "127.0.0.1:2022"},
		{"sftp: {listen: ~}\n", "127.0.0.1:2022"},
		{"sftp: {listen: \"\"}\n", ""},
		{"sftp:\n  listen: ''\n", ""},
		{"sftp: {listen: \"0.0.0.0:22\"}\n", "0.0.0.0:22"},
		{"sftp: {listen: \":2222\"}\n", ":2222"},
	}
	for _, tt := range tests {
		if c := mustParse(t, tt.doc); c.SFTP.Listen != tt.want {
			t.Errorf("Parse(%q).SFTP.Listen = %q, want %q", tt.doc, c.SFTP.Listen, tt.want)
		}
	}
}

func TestParseStorageRoot(t *testing.T) {
	tests := []struct {
		doc  string
		want Storage
	}{
		{"", Storage{"local", "./var/data", DefaultS3()}},
		{"storage: {backend: local}\n", Storage{"local", "./var/data", DefaultS3()}},
		{"storage: {root: /srv}\n", Storage{"local", "/srv", DefaultS3()}},
		{"storage: {backend: memory}\n", Storage{"memory", "", DefaultS3()}},
		{"storage: {backend: memory, root: /ignored}\n", Storage{"memory", "/ignored", DefaultS3()}},
	}
	for _, tt := range tests {
		if c := mustParse(t, tt.doc); c.Storage != tt.want {
			t.Errorf("Parse(%q).Storage = %+v, want %+v", tt.doc, c.Storage, tt.want)
		}
	}
}

// Absent permissions mean every permission and [] means none: decoding must
// keep the two apart, or `permissions: []` would grant everything.
func TestParsePermissionsNilVersusEmpty(t *testing.T) {
	tests := []struct {
		doc     string
		wantNil bool
		want    []string
	}{
		{"users: [{name: a, home: /}]\n", true, nil},
		{"users: [{name: a, home: /, permissions: []}]\n", false, []string{}},
		{"users:\n- name: a\n  home: /\n  permissions: [ ]\n", false, []string{}},
		{"users: [{name: a, home: /, permissions: [list]}]\n", false, []string{"list"}},
	}
	for _, tt := range tests {
		c := mustParse(t, tt.doc)
		got := c.Users[0].Permissions
		if (got == nil) != tt.wantNil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) permissions = %#v, want %#v", tt.doc, got, tt.want)
		}
	}

	_, err := Parse([]byte("users:\n- name: a\n  home: /\n  permissions:\n"))
	checkErrors(t, err, []want{{4, "users[0].permissions", "write [] for no permissions"}})
}

func TestParseAliases(t *testing.T) {
	doc := `users:
  - name: a
    home: /a
    permissions: &ro [list, download]
  - name: b
    home: /b
    permissions: *ro
`
	c := mustParse(t, doc)
	if !reflect.DeepEqual(c.Users[1].Permissions, []string{"list", "download"}) {
		t.Errorf("aliased permissions = %#v", c.Users[1].Permissions)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []want
	}{
		{"unknown top-level key", "stat_dir: /x\n",
			[]want{{1, "stat_dir", `unknown key (did you mean "state_dir"?)`}}},
		{"unknown key without a near match", "log: {}\nfrobnicate: 1\n",
			[]want{{2, "frobnicate", "unknown key"}}},
		{"unknown nested key", "sftp:\n  listn: \":22\"\n",
			[]want{{2, "sftp.listn", `unknown key (did you mean "listen"?)`}}},
		{"unknown key in a user", "users:\n  - name: a\n    home: /\n  - name: b\n    home: /\n    pasword_hash: x\n",
			[]want{{6, "users[1].pasword_hash", `unknown key (did you mean "password_hash"?)`}}},
		// Only a plain name is repeated; any other key is shown by its line.
		{"unknown key that is not a plain name", "\"a b\": 1\n",
			[]want{{1, "", "unknown key (not a plain name"}}},
		{"overlong unknown key", strings.Repeat("k", 100) + ": 1\n",
			[]want{{1, "", "unknown key (not a plain name"}}},
		{"unknown key with dots", "sftp:\n  a.b-c_d: 1\n",
			[]want{{2, "sftp.a.b-c_d", "unknown key"}}},
		{"duplicate key that is not a plain name", "\"a b\": 1\n\"a b\": 2\n",
			[]want{{1, "", "unknown key (not a plain name"}, {2, "", "duplicate key (not a plain name, so not repeated here) (first written at line 1)"}}},
		{"duplicate key", "log:\n  level: info\n  level: debug\n",
			[]want{{3, "log.level", "duplicate key (first written at line 2)"}}},
		{"merge key", "base: &b {level: info}\nlog:\n  <<: *b\n",
			[]want{{1, "base", "unknown key"}, {3, "log", "merge keys (<<) are not supported"}}},
		{"mapping as a key", "? [a]\n: 1\n",
			[]want{{1, "", "keys must be plain names, got a list"}}},
		{"invalid duration", "shutdown_grace: \"abc\"\n",
			[]want{{1, "shutdown_grace", `invalid duration "abc"`}}},
		{"duration without unit", "shutdown_grace: 30\n",
			[]want{{1, "shutdown_grace", "invalid duration"}}},
		{"duration as a list", "shutdown_grace: [1s]\n",
			[]want{{1, "shutdown_grace", "got a list"}}},
		{"not a boolean", "users:\n- name: a\n  home: /\n  disabled: maybe\n",
			[]want{{4, "users[0].disabled", "want true or false"}}},
		{"mapping where a string goes", "state_dir: {a: b}\n",
			[]want{{1, "state_dir", "want a string, got a mapping"}}},
		{"list where a mapping goes", "log: [debug]\n",
			[]want{{1, "log", "want a mapping, got a list"}}},
		{"mapping where a list goes", "users: {name: a}\n",
			[]want{{1, "users", "want a list, got a mapping"}}},
		{"string where a user goes", "users:\n  - alice\n",
			[]want{{2, "users[0]", "want a mapping, got a scalar"}}},
		{"null user", "users:\n  -\n  - name: b\n    home: /\n",
			[]want{{2, "users[0]", "want a mapping, got null"}}},
		{"list inside a key list", "users:\n- name: a\n  home: /\n  public_keys:\n    - [x]\n",
			[]want{{5, "users[0].public_keys[0]", "want an authorized_keys line or a mapping {key, comment, expires_at}, got a list"}}},
		{"two documents", "log: {}\n---\nlog: {}\n",
			[]want{{2, "", "second YAML document"}}},
		{"top level is a list", "- a\n- b\n",
			[]want{{1, "", "top level must be a mapping"}}},
		{"top level is a string", "hello\n",
			[]want{{1, "", "top level must be a mapping"}}},
		// The parser's own line numbers are only exact for some errors
		// (it reports where the enclosing node began): test two exact ones.
		{"syntax error", "log: {}\nsftp: listen: x\n",
			[]want{{2, "", "invalid YAML: mapping values are not allowed in this context"}}},
		{"tab indentation", "log:\n\tlevel: debug\n",
			[]want{{2, "", "invalid YAML: found character that cannot start any token"}}},
		{"unknown anchor", "log: *nope\n",
			[]want{{0, "", "invalid YAML: unknown anchor"}}},
		{"type error hides the validation error it causes", "users:\n- name: a\n  home: [x]\n",
			[]want{{3, "users[0].home", "want a string, got a list"}}},
		{"errors in document order", "users:\n- name: a\n  home: relative\nlog: {level: loud}\nstat_dir: x\n",
			[]want{{3, "users[0].home", "must be absolute"}, {4, "log.level", `unknown level "loud"`}, {5, "stat_dir", "unknown key"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc))
			if c != nil {
				t.Errorf("Parse returned a config with the error")
			}
			checkErrors(t, err, tt.want)
		})
	}
}

// A file with three problems of three kinds yields three FieldErrors, all
// reachable through errors.As and the Unwrap() []error of errors.Join.
func TestParseReportsEveryProblem(t *testing.T) {
	doc := "sftp:\n  listn: x\nshutdown_grace: soon\nusers:\n- name: a\n  home: a/b\n"
	_, err := Parse([]byte(doc))
	checkErrors(t, err, []want{
		{2, "sftp.listn", "unknown key"},
		{3, "shutdown_grace", "invalid duration"},
		{6, "users[0].home", "must be absolute"},
	})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "sftp.listn" {
		t.Errorf("errors.As found %v, want the first problem", fe)
	}
	if got := strings.Count(err.Error(), "\n") + 1; got != 3 {
		t.Errorf("error text has %d lines, want 3:\n%v", got, err)
	}
	if !strings.HasPrefix(err.Error(), "config:2: sftp.listn: unknown key") {
		t.Errorf("error text = %q", err)
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"listn", "listen", 1},
		{"pasword_hash", "password_hash", 1}, {"kitten", "sitting", 3}, {"name", "home", 2},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// Aliases let a few kilobytes name one list millions of times: the walk must
// stop, not expand them all.
func TestParseAliasBomb(t *testing.T) {
	const n = 2000
	var b strings.Builder
	b.WriteString("keys: &k [" + strings.Repeat("x, ", n) + "x]\nusers:\n  - &u {name: a, home: /, public_keys: *k}\n")
	for range n {
		b.WriteString("  - *u\n")
	}
	_, err := Parse([]byte(b.String()))
	var found bool
	for _, fe := range fieldErrors(t, err) {
		found = found || strings.Contains(fe.Msg, "repeats aliases too often")
	}
	if !found {
		t.Errorf("no error about the aliases in %d errors", len(fieldErrors(t, err)))
	}
}

func TestParseStorageS3(t *testing.T) {
	c := mustParse(t, "storage:\n  backend: s3\n  s3:\n    bucket: partner-files\n    endpoint: http://127.0.0.1:7070\n    path_style: true\n    part_size: 8MiB\n    upload_lease: 30s\nuploads:\n  partial_ttl: 48h\n")
	want := DefaultS3()
	want.Bucket, want.Endpoint, want.PathStyle, want.PartSize = "partner-files", "http://127.0.0.1:7070", true, 8<<20
	want.UploadLease = 30 * time.Second
	if c.Storage.S3 != want || c.Storage.Root != "" {
		t.Errorf("storage = %+v, want s3 %+v and no root", c.Storage, want)
	}
	if c.Uploads.PartialTTL != 48*time.Hour {
		t.Errorf("partial_ttl = %v", c.Uploads.PartialTTL)
	}
}

// A public_keys entry is a line or a mapping with an expiry; a password
// may expire too.
func TestKeyForms(t *testing.T) {
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB alice@phone"
	doc := `storage: {backend: memory}
users:
  - name: alice
    home: /alice
    password_hash: "$2a$10$abcdefghijklmnopqrstuuJ3Yj3f8m6vTDbqkqYFY1Pq5n7Yq7m6a"
    password_expires_at: 2027-01-15
    public_keys:
      - ` + key + `
      - {key: "` + key + ` 2", comment: ETL server, expires_at: 2027-03-01T00:00:00Z}
      - key: "` + key + ` 3"
        expires_at: 2027-03-01T12:00:00+02:00
`
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	u := cfg.Users[0]
	wantKeys := []PublicKey{
		{Key: key},
		{Key: key + " 2", Comment: "ETL server", ExpiresAt: time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)},
		{Key: key + " 3", ExpiresAt: time.Date(2027, 3, 1, 10, 0, 0, 0, time.UTC)},
	}
	if !reflect.DeepEqual(u.PublicKeys, wantKeys) {
		t.Errorf("public_keys = %+v\nwant %+v", u.PublicKeys, wantKeys)
	}
	if !u.PasswordExpiresAt.Equal(time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("password_expires_at = %v", u.PasswordExpiresAt)
	}

	bad := `storage: {backend: memory}
users:
  - name: alice
    home: /alice
    password_expires_at: next tuesday
    public_keys:
      - {key: "` + key + `", expires: 2027-03-01}
      - {comment: no key here}
      - {key: "` + key + `", expires_at: [2027]}
      - [` + key + `]
`
	_, err = Parse([]byte(bad))
	checkErrors(t, err, []want{
		{5, "users[0].password_expires_at", `(want e.g. 2027-03-01T00:00:00Z or 2027-03-01)`},
		{7, "users[0].public_keys[0].expires", `unknown key (did you mean "expires_at"?)`},
		{8, "users[0].public_keys[1].key", "empty key"},
		{9, "users[0].public_keys[2].expires_at", "want a time such as 2027-03-01T00:00:00Z, got a list"},
		{10, "users[0].public_keys[3]", "want an authorized_keys line or a mapping {key, comment, expires_at}, got a list"},
	})
}

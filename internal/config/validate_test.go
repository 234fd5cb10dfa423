package config

import (
	"strings"
	"testing"
	"time"
)

func TestValidateRules(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []want // nil: valid
	}{
		{"empty state_dir", "state_dir: \"\"\n", []want{{1, "state_dir", "required"}}},
		{"negative grace", "shutdown_grace: -1s\n", []want{{1, "shutdown_grace", "must not be negative"}}},
		{"zero grace", "shutdown_grace: 0s\n", nil},
		{"bare zero grace", "shutdown_grace: 0\n", nil},
		{"log levels", "log: {level: warn}\n", nil},
		{"unknown level", "log:\n  level: verbose\n", []want{{2, "log.level", `unknown level "verbose"`}}},
		{"empty level", "log:\n  format: json\n  level: \"\"\n", []want{{3, "log.level", `unknown level ""`}}},
		{"unknown format", "log:\n  format: xml\n", []want{{2, "log.format", `unknown format "xml"`}}},
		{"listen port 0", "sftp: {listen: \"127.0.0.1:0\"}\n", nil},
		{"listen any host", "sftp: {listen: \":65535\"}\n", nil},
		{"listen ipv6", "sftp: {listen: \"[::]:22\"}\n", nil},
		{"listen without port", "sftp:\n  listen: localhost\n", []want{{2, "sftp.listen", `invalid address "localhost"`}}},
		{"listen port too big", "sftp:\n  listen: \"localhost:65536\"\n", []want{{2, "sftp.listen", `invalid port "65536"`}}},
		{"listen port negative", "sftp:\n  listen: \"localhost:-1\"\n", []want{{2, "sftp.listen", `invalid port "-1"`}}},
		{"listen port signed", "sftp:\n  listen: \"localhost:+22\"\n", []want{{2, "sftp.listen", `invalid port (value not shown)`}}},
		{"listen port by name", "sftp:\n  listen: \"localhost:ssh\"\n", []want{{2, "sftp.listen", `invalid port "ssh"`}}},
		{"empty host key", "sftp:\n  host_keys:\n    - /k\n    - \"\"\n", []want{{4, "sftp.host_keys[1]", "empty path"}}},
		{"memory backend", "storage: {backend: memory}\n", nil},
		{"ftps defaults", "ftps: {listen: \"127.0.0.1:0\"}\n", nil},
		{"ftps bad listen", "ftps:\n  implicit_listen: \"990\"\n", []want{{2, "ftps.implicit_listen", `invalid address "990"`}}},
		{"ftps passive range", "ftps: {passive_ports: \"50000-50010\"}\n", nil},
		{"ftps passive any", "ftps: {passive_ports: \"\"}\n", nil},
		{"ftps passive reversed", "ftps:\n  passive_ports: \"6000-5000\"\n", []want{{2, "ftps.passive_ports", `invalid range "6000-5000"`}}},
		{"ftps passive privileged", "ftps:\n  passive_ports: \"20-21\"\n", []want{{2, "ftps.passive_ports", "invalid range"}}},
		{"ftps public host name", "ftps:\n  public_host: ftp.example.com\n", []want{{2, "ftps.public_host", "want an IP address"}}},
		{"ftps cert without key", "ftps:\n  cert_file: /c.pem\n", []want{{2, "ftps.cert_file", "go together"}}},
		{"ftps reuse", "ftps:\n  tls_session_reuse: sometimes\n", []want{{2, "ftps.tls_session_reuse", `unknown value "sometimes"`}}},
		{"ftps passive timeout", "ftps:\n  passive_timeout: 0s\n", []want{{2, "ftps.passive_timeout", "must be positive"}}},
		{"ftps passive per user", "ftps:\n  max_passive_per_user: -1\n", []want{{2, "ftps.max_passive_per_user", "must not be negative"}}},
		{"ftps passive limits", "ftps: {passive_timeout: 5s, max_passive_per_user: 3}\n", nil},
		{"protocols", "users:\n  - {name: a, home: /, protocols: [ftps]}\n", nil},
		{"limits", "limits: {max_connections: 5, idle_timeout: 0s}\n", nil},
		{"limits zero", "limits:\n  max_connections_per_ip: 0\n", []want{{2, "limits.max_connections_per_ip", "at least 1"}}},
		{"login timeout", "limits:\n  login_timeout: 0s\n", []want{{2, "limits.login_timeout", "positive"}}},
		{"defender off", "defender: {enabled: false, threshold: 0}\n", nil},
		{"defender threshold", "defender:\n  threshold: 0\n", []want{{2, "defender.threshold", "at least 1"}}},
		{"defender ban times", "defender:\n  ban_time: 2h\n  max_ban_time: 1h\n", []want{{3, "defender.max_ban_time", "shorter"}}},
		{"defender allow", "defender:\n  allow: [10.0.0.0/8, \"::1\", nonsense]\n", []want{{2, "defender.allow[2]", `invalid network "nonsense"`}}},
		{"legacy", "sftp:\n  legacy: {listen: \"127.0.0.1:0\", users: [old]}\nusers:\n  - {name: old, home: /}\n", nil},
		{"legacy unknown user", "sftp:\n  legacy:\n    listen: \"127.0.0.1:0\"\n    users: [ghost]\n", []want{{4, "sftp.legacy.users[0]", `unknown user "ghost"`}}},
		{"legacy without users", "sftp:\n  legacy:\n    listen: \"127.0.0.1:0\"\n", []want{{2, "sftp.legacy.users", "required"}}},
		{"allowed ips", "users:\n  - {name: a, home: /, allowed_ips: [203.0.113.0/24, 192.0.2.7]}\n", nil},
		{"bad allowed ip", "users:\n  - name: a\n    home: /\n    allowed_ips: [203.0.113.0/33]\n", []want{{4, "users[0].allowed_ips[0]", "invalid network"}}},
		{"upload size", "users:\n  - {name: a, home: /, max_upload_size: 10GiB}\n", nil},
		{"unknown protocol", "users:\n  - name: a\n    home: /\n    protocols: [sftp, ftp]\n", []want{{4, "users[0].protocols[1]", `unknown protocol "ftp"`}}},
		{"no protocols", "users:\n  - name: a\n    home: /\n    protocols: []\n", []want{{4, "users[0].protocols", "empty"}}},
		{"unknown backend", "storage:\n  backend: gcs\n", []want{{2, "storage.backend", `unknown backend "gcs"`}}},
		{"s3 without bucket", "storage:\n  backend: s3\n", []want{{1, "storage.s3.bucket", "required for the s3 backend"}}},
		{"s3", "storage:\n  backend: s3\n  s3: {bucket: partner-files, endpoint: \"http://127.0.0.1:7070\", path_style: true}\n", nil},
		{"s3 bad values", "storage:\n  backend: s3\n  s3:\n    bucket: Partner_Files\n    endpoint: \"ftp://x\"\n    prefix: /a\n    access_key_id: AK\n    part_size: 1MiB\n    upload_concurrency: 0\n    setstat: maybe\n    max_rename_objects: 0\n",
			[]want{{4, "storage.s3.bucket", "only lowercase"}, {5, "storage.s3.endpoint", "scheme must be http or https"}, {6, "storage.s3.prefix", "folder names"},
				{7, "storage.s3.access_key_id", "go together"}, {8, "storage.s3.part_size", "outside S3's 5MiB to 5GiB"}, {9, "storage.s3.upload_concurrency", "outside 1 to 64"},
				{10, "storage.s3.setstat", `unknown value "maybe"`}, {11, "storage.s3.max_rename_objects", "at least 1"}}},
		{"s3 upload lease", "storage:\n  backend: s3\n  s3: {bucket: abc, upload_lease: 3s}\n", nil},
		{"s3 short upload lease", "storage:\n  backend: s3\n  s3:\n    bucket: abc\n    upload_lease: 1500ms\n",
			[]want{{5, "storage.s3.upload_lease", "1.5s is below 3s"}}},
		{"s3 zero upload lease", "storage:\n  backend: s3\n  s3:\n    bucket: abc\n    upload_lease: 0s\n",
			[]want{{5, "storage.s3.upload_lease", "0s is below 3s"}}},
		{"s3 endpoint with secret", "storage:\n  backend: s3\n  s3: {bucket: abc, endpoint: \"https://ak:sk@s3.example\"}\n", []want{{3, "storage.s3.endpoint", "user info"}}},
		{"partial ttl", "uploads: {partial_ttl: 0s}\n", []want{{1, "uploads.partial_ttl", "must be positive"}}},
		{"local without root", "storage:\n  backend: local\n  root: \"\"\n", []want{{3, "storage.root", "required for the local backend"}}},
		{"no users and no listener", "sftp: {listen: \"\"}\n", nil},
		{"user without name", "users:\n  - home: /a\n", []want{{2, "users[0].name", "required"}}},
		{"user with empty name", "users:\n  - home: /a\n    name: \"\"\n", []want{{3, "users[0].name", "required"}}},
		{"name with space", "users:\n  - name: a b\n    home: /\n", []want{{2, "users[0].name", `invalid name (value not shown)`}}},
		{"name starting with dot", "users:\n  - name: .a\n    home: /\n", []want{{2, "users[0].name", "invalid name"}}},
		{"name too long", "users:\n  - name: " + strings.Repeat("a", 65) + "\n    home: /\n", []want{{2, "users[0].name", "invalid name"}}},
		{"name of 64", "users:\n  - name: " + strings.Repeat("a", 64) + "\n    home: /\n", nil},
		{"name with slash", "users:\n  - name: a/b\n    home: /\n", []want{{2, "users[0].name", "invalid name"}}},
		{"duplicate user", "users:\n  - name: alice\n    home: /a\n  - home: /b\n    name: alice\n",
			[]want{{5, "users[1].name", `duplicate user "alice" (also defined at line 2)`}}},
		{"user without home", "users:\n  - name: a\n", []want{{2, "users[0].home", "required"}}},
		{"relative home", "users:\n  - name: a\n    home: a\n", []want{{3, "users[0].home", "must be absolute"}}},
		{"home with dotdot", "users:\n  - name: a\n    home: /a/../../b\n", []want{{3, "users[0].home", `must not contain ".."`}}},
		{"home not clean", "users:\n  - name: a\n    home: /a//b/\n", []want{{3, "users[0].home", `not clean: write "/a/b"`}}},
		{"home with dot", "users:\n  - name: a\n    home: /a/./b\n", []want{{3, "users[0].home", `not clean: write "/a/b"`}}},
		{"home with NUL", "users:\n  - name: a\n    home: \"/a\\0b\"\n", []want{{3, "users[0].home", "NUL"}}},
		{"root home", "users:\n  - name: a\n    home: /\n", nil},
		{"bcrypt hashes", "users:\n  - {name: a, home: /, password_hash: $2a$x}\n  - {name: b, home: /, password_hash: $2y$x}\n", nil},
		{"plaintext password", "users:\n  - name: a\n    home: /\n    password_hash: hunter2\n",
			[]want{{4, "users[0].password_hash", "plaintext or unsupported password hash; store an argon2id or bcrypt hash (see `wharf hash-password`)"}}},
		{"argon2i is not argon2id", "users:\n  - name: a\n    home: /\n    password_hash: $argon2i$v=19$x\n",
			[]want{{4, "users[0].password_hash", "unsupported password hash"}}},
		{"unknown permission", "users:\n  - name: a\n    home: /\n    permissions:\n      - list\n      - chmod\n",
			[]want{{6, "users[0].permissions[1]", `unknown permission "chmod"`}}},
		{"empty public key", "users:\n  - name: a\n    home: /\n    public_keys: [\"ssh-ed25519 AAAA\", \"  \"]\n",
			[]want{{4, "users[0].public_keys[1]", "empty key"}}},
		{"public key syntax is not checked here", "users:\n  - name: a\n    home: /\n    public_keys: [not a key]\n", nil},
		{"user who cannot log in yet", "users:\n  - name: a\n    home: /\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if err := c.Validate(); err != nil {
					t.Errorf("Validate after a successful Parse: %v", err)
				}
				return
			}
			checkErrors(t, err, tt.want)
		})
	}
}

// The value of password_hash may be the password itself: no error may repeat
// it, wherever it was written.
func TestPasswordNeverEchoed(t *testing.T) {
	const secret = "Tr0ub4dor&3-correct-horse"
	docs := []string{
		"users:\n  - name: a\n    home: /\n    password_hash: " + secret + "\n",
		"users:\n  - name: a\n    home: /\n    password_hash: [" + secret + "]\n",
		"users:\n  - name: a\n    home: /\n    password_hash: {" + secret + ": 1}\n",
		"users:\n  - name: a\n    home: /\n    disabled: " + secret + "\n",
		"users:\n  - name: a\n    home: /\n    password_hash: \"" + secret + "\"\n    password_hash: x\n",
	}
	for _, doc := range docs {
		_, err := Parse([]byte(doc))
		if err == nil {
			t.Fatalf("Parse(%q) succeeded", doc)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "Tr0ub") {
			t.Errorf("error repeats the secret: %v", err)
		}
	}
}

// A Config built in Go code has no lines: its errors carry line 0 and still
// name the user by index.
func TestValidateBuiltInGo(t *testing.T) {
	c := Default()
	c.File = "wharf.yaml"
	c.Users = []User{
		{Name: "alice", Home: "/a"},
		{Name: "alice", Home: "b", PasswordHash: "secret"},
	}
	c.ShutdownGrace = -time.Second
	err := c.Validate()
	checkErrors(t, err, []want{
		{0, "shutdown_grace", "must not be negative"},
		{0, "users[1].home", "must be absolute"},
		{0, "users[1].password_hash", "plaintext"},
		{0, "users[1].name", "duplicate user \"alice\" (also defined as users[0])"},
	})
	for _, fe := range fieldErrors(t, err) {
		if fe.File != "wharf.yaml" {
			t.Errorf("%v: File = %q, want the config's", fe, fe.File)
		}
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error repeats the password: %v", err)
	}

	if err := (&Config{}).Validate(); err == nil {
		t.Error("zero Config validated; want errors for its empty required fields")
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"a", true}, {"A9", true}, {"alice.smith@example.com", true}, {"a_b-c", true},
		{"", false}, {"-a", false}, {"_a", false}, {"@a", false}, {"a b", false}, {"a:b", false},
		{"é", false}, {strings.Repeat("x", 64), true}, {strings.Repeat("x", 65), false},
	}
	for _, tt := range tests {
		if got := validName(tt.name); got != tt.want {
			t.Errorf("validName(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPassivePerUser(t *testing.T) {
	for _, c := range []struct {
		ports string
		max   int
		want  int
	}{
		{"50000-50100", 0, 25}, // the default range: a quarter of 101 ports
		{"50000-50009", 0, 2},
		{"50000-50002", 0, 1}, // at least 1
		{"50000-50009", 7, 7}, // set: as written
		{"", 0, 0},            // kernel-chosen ports: no bound
	} {
		f := FTPS{PassivePorts: c.ports, MaxPassivePerUser: c.max}
		if got := f.PassivePerUser(); got != c.want {
			t.Errorf("passive_ports %q, max_passive_per_user %d: %d, want %d", c.ports, c.max, got, c.want)
		}
	}
}

package auth

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/wharf-sftp/wharf/internal/config"
)

// cheapArgon returns an argon2id PHC string with the smallest valid
// parameters, so that tests about everything but the KDF's cost stay fast.
func cheapArgon(password string) string {
	return newArgonHash([]byte(password), 64, 1, 1).String()
}

// cheapBcrypt returns a bcrypt hash at the minimum cost, with the given prefix.
func cheapBcrypt(t testing.TB, password, prefix string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return prefix + string(h[4:])
}

func TestArgon2idReferenceVectors(t *testing.T) {
	// From the Argon2 reference implementation's tests (phc-winner-argon2,
	// src/test.c): hashes made by another encoder must verify here.
	tests := []string{
		"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
	}
	for _, s := range tests {
		h, err := parsePasswordHash(s)
		if err != nil {
			t.Fatalf("parsePasswordHash(%q): %v", s, err)
		}
		if !h.verify([]byte("password")) {
			t.Errorf("%s: reference password does not verify", s)
		}
		if h.verify([]byte("passwore")) {
			t.Errorf("%s: wrong password verifies", s)
		}
		if got := h.(*argonHash).String(); got != s {
			t.Errorf("re-encoded as %q, want %q", got, s)
		}
	}
}

func TestHashPassword(t *testing.T) {
	const pw = "correct horse battery staple"
	s, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	wantPrefix := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$", argonMemory, argonTime, argonThreads)
	if !strings.HasPrefix(s, wantPrefix) {
		t.Fatalf("HashPassword = %q, want prefix %q", s, wantPrefix)
	}
	h, err := parsePasswordHash(s)
	if err != nil {
		t.Fatalf("own hash does not parse: %v", err)
	}
	a := h.(*argonHash)
	if len(a.salt) != argonSaltLen || len(a.key) != argonKeyLen {
		t.Errorf("salt %d bytes, key %d bytes; want %d, %d", len(a.salt), len(a.key), argonSaltLen, argonKeyLen)
	}
	if !h.verify([]byte(pw)) {
		t.Error("right password does not verify")
	}
	if h.verify([]byte(pw + " ")) {
		t.Error("wrong password verifies")
	}
	if again, _ := HashPassword(pw); again == s {
		t.Error("two hashes of one password are equal: salt not random")
	}
	if _, err := HashPassword(""); err == nil {
		t.Error("HashPassword(\"\") succeeded")
	}
}

func TestHashPasswordBcrypt(t *testing.T) {
	const pw = "tr0ub4dor&3"
	// One hash at the real cost (seconds under -race); the round trip below
	// runs the same code at the minimum cost.
	s, err := HashPasswordBcrypt(pw)
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost([]byte(s)); err != nil || cost != bcryptCost {
		t.Fatalf("bcrypt.Cost = %d, %v; want %d", cost, err, bcryptCost)
	}
	if _, err := parsePasswordHash(s); err != nil {
		t.Fatalf("own hash does not parse: %v", err)
	}

	cheap, err := hashBcrypt(pw, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h, err := parsePasswordHash(cheap)
	if err != nil {
		t.Fatalf("own hash does not parse: %v", err)
	}
	if !h.verify([]byte(pw)) {
		t.Error("right password does not verify")
	}
	if h.verify([]byte("tr0ub4dor&4")) {
		t.Error("wrong password verifies")
	}

	if _, err := HashPasswordBcrypt(""); err == nil {
		t.Error("HashPasswordBcrypt(\"\") succeeded")
	}
	long := strings.Repeat("x", bcryptMaxPassword+1)
	if _, err := HashPasswordBcrypt(long); err == nil {
		t.Error("HashPasswordBcrypt accepted a password bcrypt would truncate")
	} else if strings.Contains(err.Error(), long) {
		t.Error("error quotes the password")
	}
}

func TestBcryptVariants(t *testing.T) {
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		t.Run(prefix, func(t *testing.T) {
			h, err := parsePasswordHash(cheapBcrypt(t, "secret", prefix))
			if err != nil {
				t.Fatal(err)
			}
			if !h.verify([]byte("secret")) {
				t.Error("right password does not verify")
			}
			if h.verify([]byte("Secret")) {
				t.Error("wrong password verifies")
			}
		})
	}
}

// bcrypt ignores input past 72 bytes; a longer password must not log in on
// the strength of its first 72 bytes.
func TestBcryptRefusesTruncation(t *testing.T) {
	pw72 := strings.Repeat("a", bcryptMaxPassword)
	h, err := parsePasswordHash(cheapBcrypt(t, pw72, "$2b$"))
	if err != nil {
		t.Fatal(err)
	}
	if !h.verify([]byte(pw72)) {
		t.Fatal("72-byte password does not verify")
	}
	if h.verify([]byte(pw72 + "b")) {
		t.Error("73-byte password verifies against the hash of its first 72 bytes")
	}
}

func TestParsePasswordHashErrors(t *testing.T) {
	b64 := base64.RawStdEncoding.EncodeToString
	salt16, key32 := b64(make([]byte, 16)), b64([]byte(strings.Repeat("k", 32)))
	argon := func(params, salt, key string) string {
		return "$argon2id$v=19$" + params + "$" + salt + "$" + key
	}
	good := cheapBcrypt(t, "pw", "$2b$")

	tests := []struct {
		name, hash, wantErr string
	}{
		{"plaintext password", "hunter2hunter2", "unsupported password hash format"},
		{"md5crypt", "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", "unsupported password hash format"},
		{"sha512crypt", "$6$rounds=5000$saltsaltsalt$" + strings.Repeat("x", 86), "unsupported password hash format"},
		{"argon2i", "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG", "only the argon2id variant"},
		{"argon2d", "$argon2d$v=19$m=65536,t=2,p=4$" + salt16 + "$" + key32, "only the argon2id variant"},
		{"bcrypt 2x", "$2x$" + good[4:], "unsupported password hash format"},
		{"interior newline", good[:30] + "\n" + good[30:], "whitespace"},
		{"non-ascii", good + "é", "non-ASCII"},

		{"argon too few fields", "$argon2id$v=19$m=65536,t=3,p=4$" + salt16, "malformed argon2id hash"},
		{"argon too many fields", argon("m=65536,t=3,p=4", salt16, key32) + "$x", "malformed argon2id hash"},
		{"argon no version", "$argon2id$m=65536,t=3,p=4$" + salt16 + "$" + key32, "malformed argon2id hash"},
		{"argon v16", "$argon2id$v=16$m=65536,t=3,p=4$" + salt16 + "$" + key32, "only version v=19"},
		{"argon params reordered", argon("t=3,m=65536,p=4", salt16, key32), "in that order"},
		{"argon extra param", argon("m=65536,t=3,p=4,keyid=x", salt16, key32), "in that order"},
		{"argon param not number", argon("m=lots,t=3,p=4", salt16, key32), "parameter m is not a number"},
		{"argon param negative", argon("m=65536,t=-3,p=4", salt16, key32), "parameter t is not a number"},
		{"argon param overflows uint32", argon("m=4294967296,t=3,p=4", salt16, key32), "parameter m is not a number"},
		{"argon memory 2 GiB", argon("m=2097152,t=1,p=4", salt16, key32), "memory m=2097152"},
		{"argon memory below 8 per lane", argon("m=16,t=1,p=4", salt16, key32), "memory m=16"},
		{"argon time 0", argon("m=65536,t=0,p=4", salt16, key32), "passes t=0"},
		{"argon time 101", argon("m=65536,t=101,p=4", salt16, key32), "passes t=101"},
		{"argon threads 0", argon("m=65536,t=3,p=0", salt16, key32), "parallelism p=0"},
		{"argon threads 65", argon("m=65536,t=3,p=65", salt16, key32), "parallelism p=65"},
		{"argon threads beyond uint8", argon("m=65536,t=3,p=257", salt16, key32), "parallelism p=257"},
		{"argon work 1 GiB x 100", argon("m=1048576,t=100,p=4", salt16, key32), "m*t"},
		{"argon salt 4 bytes", argon("m=65536,t=3,p=4", b64([]byte("salt")), key32), "salt is 4 bytes"},
		{"argon salt 65 bytes", argon("m=65536,t=3,p=4", b64(make([]byte, 65)), key32), "salt is 65 bytes"},
		{"argon hash 8 bytes", argon("m=65536,t=3,p=4", salt16, b64([]byte("shorthsh"))), "hash is 8 bytes"},
		{"argon hash 65 bytes", argon("m=65536,t=3,p=4", salt16, b64(make([]byte, 65))), "hash is 65 bytes"},
		{"argon padded salt", argon("m=65536,t=3,p=4", base64.StdEncoding.EncodeToString(make([]byte, 16)), key32), "salt is not unpadded"},
		{"argon bad hash b64", argon("m=65536,t=3,p=4", salt16, "!!"+key32[2:]), "hash is not unpadded"},

		{"bcrypt truncated", good[:59], "malformed bcrypt hash"},
		{"bcrypt too long", good + "x", "malformed bcrypt hash"},
		{"bcrypt bad char", good[:40] + "+" + good[41:], "invalid character"},
		{"bcrypt cost sign", good[:4] + "+4" + good[6:], "malformed bcrypt hash"},
		{"bcrypt cost 31", good[:4] + "31" + good[6:], "cost 31 out of range"},
		{"bcrypt cost 17", good[:4] + "17" + good[6:], "cost 17 out of range"},
		{"bcrypt cost 3", good[:4] + "03" + good[6:], "malformed bcrypt hash: bad cost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parsePasswordHash(tt.hash)
			if err == nil {
				t.Fatalf("parsePasswordHash accepted it as %T", h)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) {
				t.Errorf("error %q does not contain %q", msg, tt.wantErr)
			}
			if strings.Contains(msg, tt.hash) || strings.Contains(msg, strings.TrimSpace(tt.hash)) {
				t.Errorf("error %q quotes the hash", msg)
			}
			// Salts and tags are the secret-ish parts; none may appear.
			for _, part := range strings.Split(tt.hash, "$") {
				if len(part) >= 16 && strings.Contains(msg, part) {
					t.Errorf("error %q quotes hash part %q", msg, part)
				}
			}
		})
	}
}

func TestParsePasswordHashAccepts(t *testing.T) {
	salt16, key32 := strings.Repeat("A", 22), strings.Repeat("B", 43)
	tests := []string{
		cheapArgon("pw"),
		"  " + cheapArgon("pw") + "\n", // a YAML block scalar's newline
		"$argon2id$v=19$m=1048576,t=4,p=64$" + salt16 + "$" + key32, // every bound at its limit
		"$argon2id$v=19$m=8,t=1,p=1$" + strings.Repeat("A", 11) + "$" + strings.Repeat("B", 22),
		cheapBcrypt(t, "pw", "$2y$"),
		cheapBcrypt(t, "pw", "$2b$")[:4] + "16" + cheapBcrypt(t, "pw", "$2b$")[6:],
	}
	for _, s := range tests {
		if _, err := parsePasswordHash(s); err != nil {
			t.Errorf("parsePasswordHash(%q): %v", s, err)
		}
	}
}

func TestDummyHashUsesDefaults(t *testing.T) {
	h := dummyHash()
	if h.memory != argonMemory || h.time != argonTime || h.threads != argonThreads ||
		len(h.salt) != argonSaltLen || len(h.key) != argonKeyLen {
		t.Errorf("dummy hash %s does not use the default parameters", h)
	}
	if g := dummyHash(); string(g.key) == string(h.key) || string(g.salt) == string(h.salt) {
		t.Error("two dummy hashes share a salt or tag")
	}
}

// TestPasswordCheckCost: a check costs what its hash's parameters
// allocate, so that the login gate can budget memory before hashing: the
// configured hash for a user with one, the dummy's otherwise.
func TestPasswordCheckCost(t *testing.T) {
	heavy := newArgonHash([]byte("pw"), 64*1024, 1, 4).String()
	bc, err := hashBcrypt("pw", 4)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDirectory([]config.User{
		{Name: "heavy", Home: "/heavy", PasswordHash: heavy},
		{Name: "bc", Home: "/bc", PasswordHash: bc},
		{Name: "new", Home: "/new", PasswordHash: mustHash(t, "pw")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]int64{
		"heavy":   64 << 20,
		"bc":      bcryptCostBytes,
		"new":     19 << 20, // OWASP's minimum, what hash-password makes now
		"unknown": 19 << 20, // the dummy, at the defaults
	} {
		if got := d.PasswordCheck(Attempt{Protocol: "sftp", User: user}).Cost(); got != want {
			t.Errorf("%s: cost %d, want %d", user, got, want)
		}
	}
	if _, err := d.PasswordCheck(Attempt{Protocol: "sftp", User: "heavy"}).Verify("pw"); err != nil {
		t.Errorf("a 64 MiB hash from before the new defaults no longer verifies: %v", err)
	}
}

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Defaults for new argon2id hashes: OWASP's argon2id minimum (Password
// Storage Cheat Sheet: m=19 MiB, t=2, p=1), a 128-bit salt and a 256-bit tag.
// Every failed login from the internet costs one such verification, so its
// memory is what an attacker can make the server hold per attempt: 19 MiB
// keeps a full budget of concurrent checks (see session.Gate) small, where
// RFC 9106's 64 MiB option (wharf's default before) held 64 MiB per attempt.
// Hashes made with heavier parameters still verify, within the same budget.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Bounds on argon2id parameters read from a config. Without them a hostile or
// careless hash (m=4 GiB, t=10000) turns every login attempt into a
// denial of service.
const (
	maxArgonMemory  = 1 << 20 // KiB = 1 GiB
	maxArgonTime    = 100
	maxArgonThreads = 64
	// maxArgonWork bounds memory*passes: 1 GiB with t=100 would pass the two
	// bounds above yet take a minute per login. 4 GiB-passes is 21 times the
	// defaults and admits RFC 9106's options scaled down to 1 GiB.
	maxArgonWork   = 4 << 20 // KiB*passes
	minArgonSalt   = 8
	maxArgonSalt   = 64
	minArgonKey    = 16
	maxArgonKey    = 64
	argonVersionIn = "v=19" // 0x13, the only version x/crypto implements
)

// bcryptCost for new hashes is 12, not the library's 10: 2^12 rounds take about
// 250 ms on a current core, in line with the argon2id defaults and OWASP's
// guidance, while 10 dates from hardware a decade older.
const bcryptCost = 12

// maxBcryptCost bounds configured bcrypt hashes: each step doubles the work, so
// cost 31 (allowed by bcrypt) would take days per login.
const maxBcryptCost = 16

// bcryptMaxPassword is bcrypt's input limit; longer passwords are silently
// truncated by the algorithm, so verification refuses them.
const bcryptMaxPassword = 72

// passwordHash is a stored hash, parsed once. verify runs the full KDF every
// time, whatever the input.
type passwordHash interface {
	verify(password []byte) bool
	// cost is the memory one verification allocates, in bytes: what a
	// concurrent check holds against the budget.
	cost() int64
}

// argonHash is a parsed "$argon2id$v=19$m=...,t=...,p=...$salt$key".
type argonHash struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

func (h *argonHash) verify(password []byte) bool {
	got := argon2.IDKey(password, h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

func (h *argonHash) cost() int64 { return int64(h.memory) << 10 }

func (h *argonHash) String() string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$%s$m=%d,t=%d,p=%d$%s$%s",
		argonVersionIn, h.memory, h.time, h.threads, b64.EncodeToString(h.salt), b64.EncodeToString(h.key))
}

// bcryptHash is a validated "$2b$12$<22 salt><31 hash>" string.
type bcryptHash []byte

func (h bcryptHash) verify(password []byte) bool {
	// The comparison runs even for an over-long password so that its cost
	// does not tell a bcrypt user apart from an unknown one.
	ok := bcrypt.CompareHashAndPassword(h, password) == nil
	return ok && len(password) <= bcryptMaxPassword
}

// bcryptCostBytes is what one bcrypt verification allocates: its 4 KiB
// state, rounded up. bcrypt costs time, not memory.
const bcryptCostBytes = 8 << 10

func (h bcryptHash) cost() int64 { return bcryptCostBytes }

// newArgonHash derives a hash of password with a fresh salt.
func newArgonHash(password []byte, memory, time uint32, threads uint8) *argonHash {
	salt := make([]byte, argonSaltLen)
	rand.Read(salt) // never fails since Go 1.24
	return &argonHash{
		memory:  memory,
		time:    time,
		threads: threads,
		salt:    salt,
		key:     argon2.IDKey(password, salt, time, memory, threads, argonKeyLen),
	}
}

// dummyHash is what unknown, disabled and password-less users are checked
// against, so that their failure costs one full default-parameter KDF run
// like a wrong password does. Its tag is random rather than derived from a
// password: verifying costs the same, building it costs nothing, and no
// password can match it.
func dummyHash() *argonHash {
	h := &argonHash{
		memory:  argonMemory,
		time:    argonTime,
		threads: argonThreads,
		salt:    make([]byte, argonSaltLen),
		key:     make([]byte, argonKeyLen),
	}
	rand.Read(h.salt)
	rand.Read(h.key)
	return h
}

// HashPassword returns an argon2id hash of password in PHC string format,
// with the package defaults, for the password_hash config field.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("empty password")
	}
	return newArgonHash([]byte(password), argonMemory, argonTime, argonThreads).String(), nil
}

// HashPasswordBcrypt returns a bcrypt hash (cost 12, see bcryptCost) for
// operators whose other tools only speak bcrypt. Prefer HashPassword.
func HashPasswordBcrypt(password string) (string, error) {
	if password == "" {
		return "", errors.New("empty password")
	}
	return hashBcrypt(password, bcryptCost)
}

func hashBcrypt(password string, cost int) (string, error) {
	if len(password) > bcryptMaxPassword {
		return "", fmt.Errorf("password longer than %d bytes, bcrypt's limit; use argon2id", bcryptMaxPassword)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("bcrypt: %w", err)
	}
	return string(h), nil
}

// parsePasswordHash validates a configured hash and returns it ready to
// verify. Errors describe what is wrong without quoting the hash: an operator
// may have pasted a plaintext password into the field.
func parsePasswordHash(s string) (passwordHash, error) {
	s = strings.TrimSpace(s)
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return nil, errors.New("password hash contains whitespace or non-ASCII characters")
		}
	}
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		return parseBcrypt(s)
	case strings.HasPrefix(s, "$argon2i$"), strings.HasPrefix(s, "$argon2d$"):
		return nil, errors.New("only the argon2id variant of argon2 is supported; rehash with wharf hash-password")
	default:
		return nil, errors.New("unsupported password hash format: want argon2id ($argon2id$...) or bcrypt ($2a$, $2b$, $2y$); make one with wharf hash-password")
	}
}

func parseArgon2id(s string) (*argonHash, error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	parts := strings.Split(s, "$")
	if len(parts) != 6 {
		return nil, errors.New("malformed argon2id hash: want $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>")
	}
	if parts[2] != argonVersionIn {
		return nil, errors.New("malformed argon2id hash: only version v=19 is supported")
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return nil, errors.New("malformed argon2id hash: want parameters m=<KiB>,t=<passes>,p=<lanes> in that order")
	}
	var vals [3]uint64
	for i, name := range [3]string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(params[i], name+"=")
		if !ok {
			return nil, errors.New("malformed argon2id hash: want parameters m=<KiB>,t=<passes>,p=<lanes> in that order")
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("malformed argon2id hash: parameter %s is not a number in range", name)
		}
		vals[i] = n
	}
	m, t, p := vals[0], vals[1], vals[2]
	switch {
	case p < 1 || p > maxArgonThreads:
		return nil, fmt.Errorf("argon2id hash: parallelism p=%d out of range [1, %d]", p, maxArgonThreads)
	case t < 1 || t > maxArgonTime:
		return nil, fmt.Errorf("argon2id hash: passes t=%d out of range [1, %d]", t, maxArgonTime)
	case m < 8*p || m > maxArgonMemory:
		// Argon2 needs 8 KiB per lane; x/crypto would silently raise m.
		return nil, fmt.Errorf("argon2id hash: memory m=%d KiB out of range [8*p, %d]", m, maxArgonMemory)
	case m*t > maxArgonWork:
		return nil, fmt.Errorf("argon2id hash: memory*passes m*t=%d exceeds %d; lower t or m", m*t, maxArgonWork)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return nil, errors.New("malformed argon2id hash: salt is not unpadded standard base64")
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return nil, errors.New("malformed argon2id hash: hash is not unpadded standard base64")
	}
	if len(salt) < minArgonSalt || len(salt) > maxArgonSalt {
		return nil, fmt.Errorf("argon2id hash: salt is %d bytes, want %d to %d", len(salt), minArgonSalt, maxArgonSalt)
	}
	if len(key) < minArgonKey || len(key) > maxArgonKey {
		return nil, fmt.Errorf("argon2id hash: hash is %d bytes, want %d to %d", len(key), minArgonKey, maxArgonKey)
	}
	return &argonHash{memory: uint32(m), time: uint32(t), threads: uint8(p), salt: salt, key: key}, nil
}

// bcryptAlphabet is bcrypt's own base64 alphabet.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func parseBcrypt(s string) (bcryptHash, error) {
	// "$2b$" + 2-digit cost + "$" + 22 salt + 31 hash characters. x/crypto
	// checks only the header and a minimum length, so a truncated or
	// corrupted body would otherwise surface as every login failing.
	const bcryptLen = 60
	if len(s) != bcryptLen || !isDigit(s[4]) || !isDigit(s[5]) || s[6] != '$' {
		return nil, errors.New("malformed bcrypt hash: want $2b$<cost>$ followed by 53 characters")
	}
	for i := 7; i < len(s); i++ {
		if strings.IndexByte(bcryptAlphabet, s[i]) < 0 {
			return nil, errors.New("malformed bcrypt hash: invalid character in salt or hash")
		}
	}
	cost, err := bcrypt.Cost([]byte(s))
	if err != nil {
		return nil, errors.New("malformed bcrypt hash: bad cost")
	}
	if cost < bcrypt.MinCost || cost > maxBcryptCost {
		return nil, fmt.Errorf("bcrypt hash: cost %d out of range [%d, %d]", cost, bcrypt.MinCost, maxBcryptCost)
	}
	return bcryptHash(s), nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

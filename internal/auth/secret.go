package auth

// Secret is the stored hash of a secret that is not a partner's password:
// an admin API key, an admin's console password. It has the formats,
// bounds and cost of a password_hash (argon2id or bcrypt, made with
// `wharf hash-password`), so an operator makes both the same way.
type Secret struct{ h passwordHash }

// ParseSecret parses a configured hash. The error never quotes it: an
// operator may have pasted the secret itself.
func ParseSecret(hash string) (*Secret, error) {
	h, err := parsePasswordHash(hash)
	if err != nil {
		return nil, err
	}
	return &Secret{h: h}, nil
}

// Verify reports whether secret matches. It runs the full hash every time.
func (s *Secret) Verify(secret string) bool { return s.h.verify([]byte(secret)) }

// Cost is the memory one verification allocates, in bytes.
func (s *Secret) Cost() int64 { return s.h.cost() }

// DummySecret matches nothing and costs what a default hash costs: what
// a caller checks when there is nothing to check against, so that its
// answer takes as long as a wrong secret's.
func DummySecret() *Secret { return &Secret{h: dummyHash()} }

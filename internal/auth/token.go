package auth

import (
	"crypto/subtle"
	"sync/atomic"
)

// Token is a bearer token that may be replaced while requests check it:
// admin.token_file's, which the daemon reads again on SIGHUP and on its
// periodic re-check, so that a leaked token is revoked without a restart.
// The zero Token, and a nil one, hold none.
type Token struct {
	v atomic.Pointer[string]
}

// NewToken holds s ("": none).
func NewToken(s string) *Token {
	t := &Token{}
	t.Set(s)
	return t
}

// Set replaces the token: the next check compares against s.
func (t *Token) Set(s string) { t.v.Store(&s) }

// Get is the token in force ("": none).
func (t *Token) Get() string {
	if t == nil {
		return ""
	}
	if p := t.v.Load(); p != nil {
		return *p
	}
	return ""
}

// Matches reports, in constant time for a given length, whether presented
// is the token in force. It is false when there is none.
func (t *Token) Matches(presented string) bool {
	want := t.Get()
	return want != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(want)) == 1
}

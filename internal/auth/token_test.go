package auth

import "testing"

func TestToken(t *testing.T) {
	var none *Token
	if none.Matches("") || none.Matches("x") || none.Get() != "" {
		t.Error("a nil Token matches or holds something")
	}
	if (&Token{}).Matches("") || NewToken("").Matches("") {
		t.Error("an empty Token matches the empty string")
	}
	tok := NewToken("first")
	if !tok.Matches("first") || tok.Matches("firs") || tok.Matches("first ") || tok.Matches("") {
		t.Error("Matches is not exact")
	}
	tok.Set("second")
	if tok.Matches("first") || !tok.Matches("second") || tok.Get() != "second" {
		t.Error("after Set the old token still matches, or the new one does not")
	}
}

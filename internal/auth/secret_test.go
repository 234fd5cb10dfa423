package auth

import (
	"strings"
	"testing"
)

func TestSecret(t *testing.T) {
	for _, hash := range []func(string) (string, error){HashPassword, HashPasswordBcrypt} {
		h, err := hash("an-api-key")
		if err != nil {
			t.Fatal(err)
		}
		s, err := ParseSecret(h)
		if err != nil {
			t.Fatalf("ParseSecret: %v", err)
		}
		if !s.Verify("an-api-key") || s.Verify("an-api-kez") || s.Verify("") {
			t.Errorf("Verify of %.10s... is wrong", h)
		}
		if s.Cost() <= 0 {
			t.Errorf("Cost = %d", s.Cost())
		}
	}
	if _, err := ParseSecret("an-api-key"); err == nil || strings.Contains(err.Error(), "an-api-key") {
		t.Errorf("ParseSecret(plaintext) = %v; want an error that does not quote it", err)
	}
	if d := DummySecret(); d.Verify("") || d.Verify("x") || d.Cost() != argonMemory<<10 {
		t.Errorf("DummySecret matched, or costs %d", d.Cost())
	}
}

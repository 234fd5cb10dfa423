package api

import (
	"context"
	"net/netip"
	"testing"

	"github.com/wharf-sftp/wharf/internal/configedit"
	"github.com/wharf-sftp/wharf/internal/guard"
	"github.com/wharf-sftp/wharf/internal/session"
)

type noControl struct{}

func (noControl) Editor() *configedit.Editor     { return nil }
func (noControl) Sessions() []session.Info       { return nil }
func (noControl) CloseSession(string) bool       { return false }
func (noControl) Bans() []guard.Ban              { return nil }
func (noControl) Health(context.Context) []Check { return nil }
func (noControl) LiftBan(context.Context, netip.Addr) (Lifted, error) {
	return Lifted{}, nil
}

// Every operation of the document has a handler and every handler an
// operation: New refuses anything else.
func TestOperationsHaveHandlers(t *testing.T) {
	if _, err := New(Options{Control: noControl{}}); err != nil {
		t.Fatal(err)
	}
	ops, err := Operations()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, op := range ops {
		if seen[op.ID] {
			t.Errorf("operationId %s twice", op.ID)
		}
		seen[op.ID] = true
		if op.Method != "GET" && op.Scope != "admin" {
			t.Errorf("%s %s changes something but has scope %s", op.Method, op.Path, op.Scope)
		}
	}
}

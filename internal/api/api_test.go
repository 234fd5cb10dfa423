package api

import (
	"context"
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/configedit"
	"github.com/wharf-sftp/wharf/internal/events"
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

// The document's Event schema is the events.Event JSON, and its types are
// the types hooks accept: a field or a type added on one side only fails
// here.
func TestDocumentEvent(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []string `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	ev := doc.Components.Schemas["Event"]
	var fields []string
	typ := reflect.TypeFor[events.Event]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		fields = append(fields, name)
	}
	var props []string
	for p := range ev.Properties {
		props = append(props, p)
	}
	slices.Sort(fields)
	slices.Sort(props)
	if !slices.Equal(fields, props) {
		t.Errorf("Event schema properties %v; events.Event has %v", props, fields)
	}
	if got := ev.Properties["type"].Enum; !slices.Equal(got, config.EventTypes) {
		t.Errorf("Event type enum %v; config.EventTypes %v", got, config.EventTypes)
	}
}

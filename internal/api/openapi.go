package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/wharf-sftp/wharf/internal/config"
)

// openapiJSON is the API's contract, written by hand: New serves exactly
// the operations it lists, and the daemon's tests check every response
// against its schemas.
//
//go:embed openapi.json
var openapiJSON []byte

// OpenAPI returns the OpenAPI 3.1 document (a copy).
func OpenAPI() []byte { return slices.Clone(openapiJSON) }

// ScopeNone is the x-wharf-scope of an operation anyone may call.
const ScopeNone = "none"

// Operation is one method on one path of the document.
type Operation struct {
	Method string // GET, POST, ...
	Path   string // /api/v1/partners/{name}: http.ServeMux's wildcards are OpenAPI's
	ID     string // operationId: the handler
	// Scope is x-wharf-scope: ScopeNone, or the API key scope it needs
	// (config.ScopeRead, config.ScopeAdmin).
	Scope string
}

// Operations lists the document's operations, sorted by path and method.
func Operations() ([]Operation, error) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		return nil, fmt.Errorf("openapi.json: openapi %q, want 3.1.x", doc.OpenAPI)
	}
	var ops []Operation
	for path, item := range doc.Paths {
		for method, raw := range item {
			m := strings.ToUpper(method)
			if !slices.Contains([]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}, m) {
				continue // parameters, summary...
			}
			var op struct {
				ID    string `json:"operationId"`
				Scope string `json:"x-wharf-scope"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				return nil, fmt.Errorf("openapi.json: %s %s: %w", m, path, err)
			}
			if op.ID == "" || !slices.Contains([]string{ScopeNone, config.ScopeRead, config.ScopeAdmin}, op.Scope) {
				return nil, fmt.Errorf("openapi.json: %s %s: want an operationId and x-wharf-scope none, read or admin", m, path)
			}
			ops = append(ops, Operation{Method: m, Path: path, ID: op.ID, Scope: op.Scope})
		}
	}
	slices.SortFunc(ops, func(a, b Operation) int {
		return strings.Compare(a.Path+" "+a.Method, b.Path+" "+b.Method)
	})
	return ops, nil
}

func (s *Server) getOpenAPI(w http.ResponseWriter, _ *http.Request, _ *caller) (int, any, error) {
	return http.StatusOK, json.RawMessage(openapiJSON), nil
}

package daemon_test

// The admin API's test bench: a daemon started from a config file with an
// admin listener, a token, a read key and an admin key, and a client that
// checks every answer against the OpenAPI document and counts the
// operations it called.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wharf-sftp/wharf/internal/api"
	"github.com/wharf-sftp/wharf/internal/api/apitest"
)

type apiEnv struct {
	*env
	base     string // http://127.0.0.1:PORT
	token    string // admin.token_file's
	readKey  string // admin.api_keys "ci", scope read
	adminKey string // admin.api_keys "deploy", scope admin
	usersDir string
	audit    string // audit_log.path
	hookOut  string // where the command hook appends its events
	doc      *apitest.Doc
	ops      map[string]api.Operation

	mu     sync.Mutex
	called map[string]bool // operationIds called
}

func randomSecret(t *testing.T) string {
	t.Helper()
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// newAPIEnv starts the daemon. Loopback is trusted by the defender except
// 127.0.0.2, the address the ban tests fail from; 3 failures ban.
func newAPIEnv(t *testing.T, users ...fileUser) *apiEnv {
	t.Helper()
	e := &apiEnv{env: &env{t: t, dir: t.TempDir()}, token: randomSecret(t), readKey: randomSecret(t), adminKey: randomSecret(t), called: map[string]bool{}}
	e.path = filepath.Join(e.dir, "wharf.yaml")
	e.usersDir = filepath.Join(e.dir, "users.d")
	if err := os.Mkdir(e.usersDir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.cfg = baseConfig(t)
	e.cfg.Users = users
	e.cfg.UsersDir = e.usersDir
	tokenFile := filepath.Join(e.dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(e.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.audit = filepath.Join(e.dir, "audit.jsonl")
	e.hookOut = filepath.Join(e.dir, "hook.jsonl")

	// The file the tests write: baseConfig's, with the admin API, a
	// defender that bans 127.0.0.2 fast, the audit log and a hook on the
	// API's events.
	var doc map[string]any
	if err := yaml.Unmarshal(e.marshal(e.cfg), &doc); err != nil {
		t.Fatal(err)
	}
	doc["admin"] = map[string]any{
		"listen":     "127.0.0.1:0",
		"token_file": tokenFile,
		"api_keys": []map[string]any{
			{"name": "ci", "key_hash": cheapHash(t, e.readKey), "scope": "read"},
			{"name": "deploy", "key_hash": cheapHash(t, e.adminKey), "scope": "admin"},
		},
		"users": []map[string]any{{"name": "ops", "password_hash": cheapHash(t, "console")}},
	}
	doc["defender"] = map[string]any{"allow": []string{"127.0.0.1/32", "::1/128"}, "threshold": 3}
	doc["audit_log"] = map[string]any{"path": e.audit}
	doc["hooks"] = []map[string]any{{
		"name":    "partners",
		"events":  []string{"user.created", "user.deleted"},
		"command": map[string]any{"argv": []string{"/bin/sh", "-c", "cat >> " + e.hookOut + "; echo >> " + e.hookOut}},
	}}
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, e.path, data)
	e.start()
	e.base = "http://" + e.d.AdminAddr().String()

	if e.doc, err = apitest.Load(api.OpenAPI()); err != nil {
		t.Fatal(err)
	}
	ops, err := api.Operations()
	if err != nil {
		t.Fatal(err)
	}
	e.ops = map[string]api.Operation{}
	for _, op := range ops {
		e.ops[op.ID] = op
	}
	return e
}

// req is one call of an operation.
type req struct {
	op     string   // operationId
	params []string // the path's parameters, in order
	query  url.Values
	body   any    // nil: none; []byte or string: as is; else marshalled
	ctype  string // "": application/json when there is a body
	auth   string // the bearer token; "": none
	from   string // the local address to send from; "": any
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

// call makes the request and checks the answer against the document.
func (e *apiEnv) call(t *testing.T, r req) resp {
	t.Helper()
	op, ok := e.ops[r.op]
	if !ok {
		t.Fatalf("no operation %s in the document", r.op)
	}
	path := op.Path
	for _, p := range r.params {
		i, j := strings.IndexByte(path, '{'), strings.IndexByte(path, '}')
		if i < 0 || j < i {
			t.Fatalf("%s: more parameters than %s has", r.op, op.Path)
		}
		path = path[:i] + url.PathEscape(p) + path[j+1:]
	}
	if strings.Contains(path, "{") {
		t.Fatalf("%s: parameters missing for %s", r.op, op.Path)
	}
	got := e.do(t, op.Method, path, r)
	if err := e.doc.CheckResponse(op.Method, op.Path, got.status, got.header.Get("Content-Type"), got.body); err != nil {
		t.Errorf("%s: the answer does not match the document: %v\n%s", r.op, err, got.body)
	}
	e.mu.Lock()
	e.called[r.op] = true
	e.mu.Unlock()
	return got
}

// do sends a request to any path, unchecked.
func (e *apiEnv) do(t *testing.T, method, path string, r req) resp {
	t.Helper()
	var body io.Reader
	switch b := r.body.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(b)
	case string:
		body = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(data)
	}
	u := e.base + path
	if r.query != nil {
		u += "?" + r.query.Encode()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.body != nil {
		ct := r.ctype
		if ct == "" {
			ct = "application/json"
		}
		hr.Header.Set("Content-Type", ct)
	}
	if r.auth != "" {
		hr.Header.Set("Authorization", "Bearer "+r.auth)
	}
	client := http.DefaultClient
	if r.from != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(r.from)}}
		client = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
		defer client.CloseIdleConnections()
	}
	res, err := client.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: data}
}

func (r resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// apiErr is the error object of an error answer.
type apiErr struct {
	Code    string       `json:"code"`
	Message string       `json:"message"`
	Field   string       `json:"field"`
	Details []api.Detail `json:"details"`
}

func (r resp) err(t *testing.T) apiErr {
	t.Helper()
	var b struct {
		Error apiErr `json:"error"`
	}
	r.decode(t, &b)
	return b.Error
}

// wantErr checks an error answer: its status, code, field, and that its
// message holds msg.
func (r resp) wantErr(t *testing.T, status int, code, field, msg string) apiErr {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d: %s", r.status, status, r.body)
		return apiErr{}
	}
	e := r.err(t)
	if e.Code != code || e.Field != field || !strings.Contains(e.Message, msg) {
		t.Errorf("error %+v; want code %q, field %q, a message with %q", e, code, field, msg)
	}
	return e
}

func (r resp) want(t *testing.T, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
}

// events returns the API's events that match q, newest first.
func (e *apiEnv) events(t *testing.T, q url.Values) []map[string]any {
	t.Helper()
	r := e.call(t, req{op: "listEvents", auth: e.readKey, query: q})
	r.want(t, http.StatusOK)
	var b struct {
		Events []map[string]any `json:"events"`
	}
	r.decode(t, &b)
	return b.Events
}

// waitEvent waits for an event of type typ about user (an address for
// ban.lifted) in what the API lists.
func (e *apiEnv) waitEvent(t *testing.T, typ, user string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, ev := range e.events(t, url.Values{"type": {typ}}) {
			if ev["user"] == user || ev["addr"] == user {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event for %s", typ, user)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fileLines returns the JSON objects of a JSON-lines file (blank lines
// skipped), waiting up to timeout for one that match accepts.
func fileLines(t *testing.T, path string, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data, _ := os.ReadFile(path)
		for line := range strings.SplitSeq(string(data), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && match(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no matching line in %s within %s:\n%s", path, timeout, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// covered fails the test for each operation of the document never called.
func (e *apiEnv) covered(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, op := range e.ops {
		if !e.called[id] {
			t.Errorf("operation %s (%s %s) was never called", id, op.Method, op.Path)
		}
	}
}

package apitest

import (
	"strings"
	"testing"

	"github.com/wharf-sftp/wharf/internal/api"
)

func TestCheckResponse(t *testing.T) {
	d, err := Load(api.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	good := `{"bans":[{"addr":"192.0.2.1","until":"2026-12-03T10:00:00Z","offences":2}]}`
	if err := d.CheckResponse("GET", "/api/v1/bans", 200, "application/json", []byte(good)); err != nil {
		t.Errorf("a good body: %v", err)
	}
	for _, tt := range []struct {
		status int
		ctype  string
		body   string
		want   string
	}{
		{200, "application/json", `{"bans":[{"addr":"192.0.2.1","until":"2026-12-03","offences":2}]}`, "not an RFC 3339"},
		{200, "application/json", `{"bans":[{"addr":"192.0.2.1","until":"2026-12-03T10:00:00Z","offences":-1}]}`, "beyond minimum"},
		{200, "application/json", `{"bans":[{"addr":"192.0.2.1","until":"2026-12-03T10:00:00Z","offences":1.5}]}`, "want type [integer]"},
		{200, "application/json", `{"bans":[{"addr":"192.0.2.1","until":"2026-12-03T10:00:00Z"}]}`, `required property "offences"`},
		{200, "application/json", `{"bans":[],"extra":1}`, `property "extra" is not in the schema`},
		{200, "text/plain", good, "Content-Type"},
		{200, "application/json", good + "{}", "more than one value"},
		{418, "application/json", good, "status 418 is not documented"},
		{401, "application/json", `{"error":{"code":"unauthorized"}}`, `required property "message"`},
	} {
		err := d.CheckResponse("GET", "/api/v1/bans", tt.status, tt.ctype, []byte(tt.body))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%d %s: %v; want an error containing %q", tt.status, tt.body, err, tt.want)
		}
	}
	// oneOf and type lists.
	p := `{"name":"a","home":"/a","keys":[],"password":false,"password_expires_at":null,"permissions":[],"protocols":[],"allowed_ips":[],"disabled":false,"max_upload_size":0,"source":{"file":"f","line":1},"last_login":%s}`
	for _, ll := range []string{"null", `{"time":"2026-12-03T10:00:00Z","protocol":"sftp","method":"publickey","remote":"127.0.0.1"}`} {
		if err := d.CheckResponse("GET", "/api/v1/partners/{name}", 200, "application/json", []byte(strings.Replace(p, "%s", ll, 1))); err != nil {
			t.Errorf("last_login %s: %v", ll, err)
		}
	}
	if err := d.CheckResponse("GET", "/api/v1/partners/{name}", 200, "application/json", []byte(strings.Replace(p, "%s", "3", 1))); err == nil {
		t.Error("last_login 3 passed oneOf")
	}
	if err := d.CheckResponse("DELETE", "/api/v1/sessions/{id}", 204, "", []byte("{}")); err == nil {
		t.Error("a body on a 204 passed")
	}
}

func TestLintRefusesUnknownKeywords(t *testing.T) {
	doc := `{"openapi":"3.1.0","paths":{},"components":{"schemas":{"X":{"type":"string","pattern":"^a"}}}}`
	if _, err := Load([]byte(doc)); err == nil || !strings.Contains(err.Error(), `keyword "pattern"`) {
		t.Errorf("Load = %v; want pattern refused", err)
	}
}

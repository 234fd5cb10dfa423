package daemon_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"flag"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/api"
	"github.com/wharf-sftp/wharf/internal/config"
)

// partner is the API's Partner, as the tests read it.
type partner struct {
	Name        string    `json:"name"`
	Home        string    `json:"home"`
	Keys        []api.Key `json:"keys"`
	Password    bool      `json:"password"`
	Permissions []string  `json:"permissions"`
	Protocols   []string  `json:"protocols"`
	AllowedIPs  []string  `json:"allowed_ips"`
	Disabled    bool      `json:"disabled"`
	Source      struct {
		File string `json:"file"`
		Line int    `json:"line"`
	} `json:"source"`
	LastLogin *api.Login `json:"last_login"`
}

// TestAPI drives every route of the admin API over HTTP against a daemon
// started from a config file, checking each answer against the OpenAPI
// document, and ends by checking that every operation the document lists
// was called.
func TestAPI(t *testing.T) {
	alice := newKey(t)
	e := newAPIEnv(t, keyUser("alice", alice))
	// Run whole (not narrowed to some subtests), it calls every operation.
	if f := flag.Lookup("test.run"); f == nil || !strings.Contains(f.Value.String(), "/") {
		t.Cleanup(func() { e.covered(t) })
	}

	t.Run("openapi", func(t *testing.T) {
		r := e.call(t, req{op: "getOpenAPI"})
		r.want(t, http.StatusOK)
		if string(r.body) == "" || !strings.Contains(string(r.body), `"openapi":"3.1.0"`) {
			t.Errorf("document: %.200s", r.body)
		}
	})

	t.Run("health", func(t *testing.T) {
		r := e.call(t, req{op: "getHealth", auth: e.readKey})
		r.want(t, http.StatusOK)
		var h api.Health
		r.decode(t, &h)
		if !h.Ready || len(h.Checks) != 2 || h.Checks[0].Name != "listeners" || h.Checks[1].Name != "storage" || !h.Checks[1].OK {
			t.Errorf("health = %+v", h)
		}
	})

	t.Run("scopes", func(t *testing.T) {
		for _, op := range e.opsSorted() {
			if op.Scope == api.ScopeNone {
				continue
			}
			r := e.call(t, req{op: op.ID, params: e.someParams(op)})
			r.wantErr(t, http.StatusUnauthorized, "unauthorized", "", "missing bearer token")
			if r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: Cache-Control %q", op.ID, r.header.Get("Cache-Control"))
			}
			r = e.call(t, req{op: op.ID, params: e.someParams(op), auth: "not-a-key"})
			r.wantErr(t, http.StatusUnauthorized, "unauthorized", "", "invalid bearer token")
			if op.Scope == config.ScopeAdmin {
				r = e.call(t, req{op: op.ID, params: e.someParams(op), auth: e.readKey, body: map[string]any{}})
				r.wantErr(t, http.StatusForbidden, "forbidden", "", `API key "ci" has scope read; `+op.ID+" needs scope admin")
			}
		}
		// The token and the admin key may read as well.
		for _, k := range []string{e.token, e.adminKey, e.readKey} {
			e.call(t, req{op: "listBans", auth: k}).want(t, http.StatusOK)
		}
	})

	t.Run("list and get", func(t *testing.T) {
		r := e.call(t, req{op: "listPartners", auth: e.readKey})
		r.want(t, http.StatusOK)
		var l struct{ Partners []partner }
		r.decode(t, &l)
		if len(l.Partners) != 1 {
			t.Fatalf("partners = %+v", l.Partners)
		}
		a := l.Partners[0]
		if a.Name != "alice" || a.Home != "/alice" || len(a.Keys) != 1 || a.Keys[0].Fingerprint != alice.fp || a.Keys[0].Type != "ssh-ed25519" ||
			len(a.Permissions) != 7 || !slices.Equal(a.Protocols, []string{"sftp", "ftps"}) || a.Source.File != e.path || a.Source.Line == 0 || a.LastLogin != nil {
			t.Errorf("alice = %+v", a)
		}
		e.login("alice", ssh.PublicKeys(alice.signer))
		var p partner
		deadline := time.Now().Add(5 * time.Second)
		for p.LastLogin == nil && time.Now().Before(deadline) {
			r := e.call(t, req{op: "getPartner", params: []string{"alice"}, auth: e.readKey})
			r.want(t, http.StatusOK)
			r.decode(t, &p)
		}
		if p.LastLogin == nil || p.LastLogin.Protocol != "sftp" || p.LastLogin.Method != "publickey" || p.LastLogin.Remote != "127.0.0.1" {
			t.Errorf("alice's last login = %+v", p.LastLogin)
		}
		e.call(t, req{op: "getPartner", params: []string{"nobody"}, auth: e.readKey}).wantErr(t, http.StatusNotFound, "not_found", "", "no such partner: nobody")
		r = e.call(t, req{op: "listPartners", auth: e.readKey, query: url.Values{"q": {"LIC"}}})
		r.decode(t, &l)
		if len(l.Partners) != 1 {
			t.Errorf("q=LIC found %d partners", len(l.Partners))
		}
	})

	bob := newKey(t)
	t.Run("create", func(t *testing.T) {
		r := e.call(t, req{op: "createPartner", auth: e.adminKey, body: map[string]any{
			"name": "bob", "home": "/bob", "public_keys": []string{bob.line}, "permissions": []string{"list", "upload"},
		}})
		r.want(t, http.StatusCreated)
		var c struct {
			Partner     partner
			Credentials map[string]string
		}
		r.decode(t, &c)
		if c.Partner.Name != "bob" || !slices.Equal(c.Partner.Permissions, []string{"list", "upload"}) || c.Partner.Keys[0].Fingerprint != bob.fp ||
			c.Partner.Source.File != filepath.Join(e.usersDir, "bob.yaml") || c.Credentials != nil {
			t.Errorf("created %+v", c)
		}
		if loc := r.header.Get("Location"); loc != "/api/v1/partners/bob" {
			t.Errorf("Location %q", loc)
		}
		ev := e.waitEvent(t, "user.created", "bob")
		if ev["admin"] != "deploy" || ev["protocol"] != "api" || ev["remote"] != "127.0.0.1" || ev["outcome"] != "ok" {
			t.Errorf("event %v", ev)
		}
		// The daemon reloads the new file: bob logs in.
		if !e.waitLogin("bob", ssh.PublicKeys(bob.signer), 10*time.Second) {
			t.Error("bob cannot log in after his creation")
		}
		// The audit log and the hook got the event, with the admin's name.
		id := ev["id"]
		fileLines(t, e.audit, 10*time.Second, func(m map[string]any) bool { return m["id"] == id && m["admin"] == "deploy" })
		fileLines(t, e.hookOut, 10*time.Second, func(m map[string]any) bool { return m["id"] == id && m["type"] == "user.created" })

		e.call(t, req{op: "createPartner", auth: e.token, body: map[string]any{"name": "bob", "home": "/elsewhere"}}).
			wantErr(t, http.StatusConflict, "exists", "", `user already exists: "bob"`)
	})

	t.Run("create with issued credentials", func(t *testing.T) {
		r := e.call(t, req{op: "createPartner", auth: e.adminKey, body: map[string]any{
			"name": "dora", "home": "/dora", "generate_key": "ed25519", "generate_password": true,
		}})
		r.want(t, http.StatusCreated)
		var c struct {
			Partner     partner
			Credentials map[string]string
		}
		r.decode(t, &c)
		cr := c.Credentials
		if !strings.HasPrefix(cr["private_key"], "-----BEGIN OPENSSH PRIVATE KEY-----") || !strings.HasPrefix(cr["private_key_ppk"], "PuTTY-User-Key-File-3: ssh-ed25519") ||
			len(cr["password"]) < 20 || len(c.Partner.Keys) != 1 || c.Partner.Keys[0].Fingerprint != cr["fingerprint"] || !c.Partner.Password {
			t.Fatalf("created %+v with credentials %v", c.Partner, slices.Collect(maps.Keys(cr)))
		}
		// The config holds the public half and the hash only.
		data, err := os.ReadFile(filepath.Join(e.usersDir, "dora.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), cr["password"]) || strings.Contains(string(data), "PRIVATE") {
			t.Error("dora.yaml holds a secret")
		}
		signer, err := ssh.ParsePrivateKey([]byte(cr["private_key"]))
		if err != nil {
			t.Fatal(err)
		}
		if !e.waitLogin("dora", ssh.PublicKeys(signer), 10*time.Second) {
			t.Error("dora cannot log in with the issued key")
		}
		if !e.waitLogin("dora", ssh.Password(cr["password"]), 10*time.Second) {
			t.Error("dora cannot log in with the issued password")
		}
		e.call(t, req{op: "createPartner", auth: e.adminKey, body: map[string]any{"name": "eve", "home": "/eve", "generate_key": "dsa"}}).
			wantErr(t, http.StatusBadRequest, "bad_request", "generate_key", "unknown key type")
	})

	t.Run("create refused", func(t *testing.T) {
		before := readDir(t, e.usersDir)
		for _, tt := range []struct {
			body        any
			ctype       string
			status      int
			code, field string
			msg         string
		}{
			// The words of `wharf config check`, each with the field.
			{map[string]any{"name": "-x", "home": "/x"}, "", 422, "invalid", "name", `name: invalid name "-x": want 1 to 64 letters`},
			{map[string]any{"name": "carol", "home": "carol"}, "", 422, "invalid", "home", `home: must be absolute (start with "/"); it is resolved beneath storage.root`},
			{map[string]any{"name": "carol", "home": "/a/../b"}, "", 422, "invalid", "home", `home: must not contain ".."`},
			{map[string]any{"name": "carol"}, "", 422, "invalid", "home", "home: required"},
			{map[string]any{"name": "carol", "home": "/c", "password_hash": "hunter2"}, "", 422, "invalid", "password_hash", "plaintext or unsupported password hash"},
			{map[string]any{"name": "carol", "home": "/c", "public_keys": []string{bob.line, "ssh-ed25519 AAAA"}}, "", 422, "invalid", "public_keys[1]", "public_keys[1]: "},
			{map[string]any{"name": "carol", "home": "/c", "public_keys": []string{bob.line, bob.line}}, "", 422, "invalid", "public_keys[1]", "same key as public_keys[0]"},
			{map[string]any{"name": "carol", "home": "/c", "permissions": []string{"list", "erase"}}, "", 422, "invalid", "permissions[1]", `unknown permission "erase"`},
			{map[string]any{"name": "carol", "home": "/c", "protocols": []string{}}, "", 422, "invalid", "protocols", "empty: the user could never log in"},
			{map[string]any{"name": "carol", "home": "/c", "protocols": []string{"ftp"}}, "", 422, "invalid", "protocols[0]", `unknown protocol "ftp"`},
			// Not the shape of a partner.
			{map[string]any{"nmae": "carol", "home": "/c"}, "", 400, "bad_request", "nmae", `unknown field "nmae"`},
			{map[string]any{"name": 7, "home": "/c"}, "", 400, "bad_request", "name", "want string"},
			{`{"name": "carol",`, "", 400, "bad_request", "", "invalid JSON"},
			{`{"name": "carol", "home": "/c"} {}`, "", 400, "bad_request", "", "more than one value"},
			{``, "", 400, "bad_request", "", "empty body"},
			{`name: carol`, "application/yaml", 415, "unsupported_media_type", "", "application/json"},
			{`{"name": "carol", "home": "/c"}`, "text/plain", 415, "unsupported_media_type", "", "application/json"},
			{`{"name": "carol", "home": "/c", "public_keys": ["` + strings.Repeat("A", 1<<20) + `"]}`, "", 413, "too_large", "", "larger than 1048576 bytes"},
		} {
			r := e.call(t, req{op: "createPartner", auth: e.adminKey, body: tt.body, ctype: tt.ctype})
			r.wantErr(t, tt.status, tt.code, tt.field, tt.msg)
		}
		if after := readDir(t, e.usersDir); !slices.Equal(before, after) {
			t.Errorf("a refused create changed users_dir: %v -> %v", before, after)
		}
		// Several problems at once: each with its field.
		r := e.call(t, req{op: "createPartner", auth: e.adminKey, body: map[string]any{"name": "-x", "home": "x", "permissions": []string{"nope"}}})
		er := r.wantErr(t, 422, "invalid", "name", "name: invalid name")
		var fields []string
		for _, d := range er.Details {
			fields = append(fields, d.Field)
		}
		if !slices.Equal(fields, []string{"name", "home", "permissions[0]"}) {
			t.Errorf("details %+v", er.Details)
		}
	})

	t.Run("pages", func(t *testing.T) {
		var all struct {
			Partners   []partner
			Total      int
			NextOffset *int `json:"next_offset"`
		}
		e.call(t, req{op: "listPartners", auth: e.readKey}).decode(t, &all)
		if len(all.Partners) < 3 || all.Total != len(all.Partners) || all.NextOffset != nil {
			t.Fatalf("the whole list: %d partners, total %d, next_offset %v", len(all.Partners), all.Total, all.NextOffset)
		}
		// Walked a partner a page, the pages are the list, in its order.
		var names []string
		for offset, pages := 0, 0; ; pages++ {
			if pages > all.Total {
				t.Fatal("the pages do not end")
			}
			var page struct {
				Partners   []partner
				Total      int
				NextOffset *int `json:"next_offset"`
			}
			r := e.call(t, req{op: "listPartners", auth: e.readKey, query: url.Values{"limit": {"1"}, "offset": {strconv.Itoa(offset)}}})
			r.want(t, http.StatusOK)
			r.decode(t, &page)
			if len(page.Partners) != 1 || page.Total != all.Total {
				t.Fatalf("page at %d: %d partners, total %d", offset, len(page.Partners), page.Total)
			}
			names = append(names, page.Partners[0].Name)
			if page.NextOffset == nil {
				break
			}
			offset = *page.NextOffset
		}
		var want []string
		for _, p := range all.Partners {
			want = append(want, p.Name)
		}
		if !slices.Equal(names, want) {
			t.Errorf("paged %q, listed %q", names, want)
		}
		// Past the end: an empty page that still counts them; q counts its matches.
		var past struct {
			Partners []partner
			Total    int
		}
		e.call(t, req{op: "listPartners", auth: e.readKey, query: url.Values{"offset": {strconv.Itoa(all.Total)}}}).decode(t, &past)
		if len(past.Partners) != 0 || past.Total != all.Total {
			t.Errorf("past the end: %+v", past)
		}
		e.call(t, req{op: "listPartners", auth: e.readKey, query: url.Values{"q": {"alic"}, "limit": {"5"}}}).decode(t, &past)
		if len(past.Partners) != 1 || past.Total != 1 {
			t.Errorf("q=alic: %d partners, total %d", len(past.Partners), past.Total)
		}
		for _, tt := range []struct{ param, value string }{{"limit", "0"}, {"limit", "1001"}, {"limit", "ten"}, {"offset", "-1"}, {"offset", "1e3"}} {
			r := e.call(t, req{op: "listPartners", auth: e.readKey, query: url.Values{tt.param: {tt.value}}})
			r.wantErr(t, http.StatusBadRequest, "bad_request", tt.param, tt.param+": want a number from ")
		}
	})

	t.Run("update", func(t *testing.T) {
		r := e.call(t, req{op: "updatePartner", params: []string{"bob"}, auth: e.adminKey, ctype: "application/merge-patch+json", body: map[string]any{
			"permissions": nil, "protocols": []string{"sftp"}, "allowed_ips": []string{"127.0.0.0/8", "192.0.2.7"},
		}})
		r.want(t, http.StatusOK)
		var p partner
		r.decode(t, &p)
		if len(p.Permissions) != 7 || !slices.Equal(p.Protocols, []string{"sftp"}) || !slices.Equal(p.AllowedIPs, []string{"127.0.0.0/8", "192.0.2.7"}) || p.Disabled {
			t.Errorf("bob = %+v", p)
		}
		ev := e.waitEvent(t, "user.changed", "bob")
		if ch, _ := ev["changes"].([]any); len(ch) != 3 || ev["admin"] != "deploy" {
			t.Errorf("event %v", ev)
		}
		for _, tt := range []struct {
			name        string
			body        any
			status      int
			code, field string
			msg         string
		}{
			{"bob", map[string]any{"home": "rel"}, 422, "invalid", "home", "home: must be absolute"},
			{"bob", map[string]any{"home": nil}, 422, "invalid", "home", "home: must not be null"},
			{"bob", map[string]any{"allowed_ips": []string{"10.0.0.0/8", "partner.example"}}, 422, "invalid", "allowed_ips[1]", `allowed_ips[1]: invalid network "partner.example"`},
			{"bob", map[string]any{"permissions": []string{"rm"}}, 422, "invalid", "permissions[0]", `unknown permission "rm"`},
			{"bob", map[string]any{"protocols": []string{}}, 422, "invalid", "protocols", "empty: the user could never log in"},
			{"bob", map[string]any{}, 422, "invalid", "", "nothing to change"},
			{"bob", map[string]any{"disabled": "yes"}, 400, "bad_request", "disabled", "want bool"},
			{"bob", map[string]any{"name": "robert"}, 400, "bad_request", "name", `unknown field "name"`},
			{"nobody", map[string]any{"disabled": true}, 404, "not_found", "", `no such user: "nobody"`},
		} {
			e.call(t, req{op: "updatePartner", params: []string{tt.name}, auth: e.adminKey, body: tt.body}).wantErr(t, tt.status, tt.code, tt.field, tt.msg)
		}
		// Disabled: the daemon reloads, and bob's logins are refused.
		e.call(t, req{op: "updatePartner", params: []string{"bob"}, auth: e.token, body: map[string]any{"disabled": true}}).want(t, http.StatusOK)
		deadline := time.Now().Add(10 * time.Second)
		for e.canLogin("bob", ssh.PublicKeys(bob.signer)) {
			if time.Now().After(deadline) {
				t.Fatal("bob still logs in after being disabled")
			}
			time.Sleep(50 * time.Millisecond)
		}
		e.call(t, req{op: "updatePartner", params: []string{"bob"}, auth: e.token, body: map[string]any{"disabled": false}}).want(t, http.StatusOK)
	})

	t.Run("keys", func(t *testing.T) {
		// A fingerprint with a "/" in it, which the path must carry escaped.
		k := newKey(t)
		for !strings.Contains(k.fp, "/") {
			k = newKey(t)
		}
		r := e.call(t, req{op: "addKey", params: []string{"bob"}, auth: e.adminKey, body: map[string]any{"public_key": k.line + " bob-2026"}})
		r.want(t, http.StatusCreated)
		var key api.Key
		r.decode(t, &key)
		if key.Fingerprint != k.fp || key.Comment != "bob-2026" {
			t.Errorf("key %+v", key)
		}
		if ev := e.waitEvent(t, "key.added", "bob"); ev["fingerprint"] != k.fp {
			t.Errorf("event %v", ev)
		}
		e.call(t, req{op: "addKey", params: []string{"bob"}, auth: e.adminKey, body: map[string]any{"public_key": k.line}}).
			wantErr(t, http.StatusConflict, "exists", "", "key already present")
		e.call(t, req{op: "addKey", params: []string{"bob"}, auth: e.adminKey, body: map[string]any{"public_key": "ssh-ed25519 AAAA"}}).
			wantErr(t, 422, "invalid", "public_key", "public_key: ")
		e.call(t, req{op: "addKey", params: []string{"nobody"}, auth: e.adminKey, body: map[string]any{"public_key": k.line}}).
			wantErr(t, http.StatusNotFound, "not_found", "", "no such user")
		e.call(t, req{op: "addKey", params: []string{"bob"}, auth: e.adminKey, body: map[string]any{}}).
			wantErr(t, 422, "invalid", "public_key", "empty key")

		e.call(t, req{op: "removeKey", params: []string{"bob", k.fp}, auth: e.adminKey}).want(t, http.StatusNoContent)
		if ev := e.waitEvent(t, "key.removed", "bob"); ev["fingerprint"] != k.fp {
			t.Errorf("event %v", ev)
		}
		e.call(t, req{op: "removeKey", params: []string{"bob", k.fp}, auth: e.adminKey}).wantErr(t, http.StatusNotFound, "not_found", "", "has no key")
		e.call(t, req{op: "removeKey", params: []string{"bob", "MD5:aa"}, auth: e.adminKey}).wantErr(t, 422, "invalid", "", "is not a key fingerprint")
	})

	t.Run("rotate", func(t *testing.T) {
		old := newKey(t)
		e.call(t, req{op: "createPartner", auth: e.adminKey, body: map[string]any{"name": "rita", "home": "/rita", "public_keys": []string{old.line}}}).
			want(t, http.StatusCreated)
		if !e.waitLogin("rita", ssh.PublicKeys(old.signer), 10*time.Second) {
			t.Fatal("rita cannot log in with her first key")
		}
		const grace = 3 * time.Second
		r := e.call(t, req{op: "rotateKeys", params: []string{"rita"}, auth: e.adminKey, body: map[string]any{"generate_key": "ed25519", "grace": "3s"}})
		r.want(t, http.StatusOK)
		var rot api.Rotated
		r.decode(t, &rot)
		if rot.Key.Fingerprint != rot.Credentials["fingerprint"] || len(rot.Expiring) != 1 || rot.Expiring[0].Fingerprint != old.fp ||
			time.Until(rot.Expiring[0].ExpiresAt) > grace+time.Second {
			t.Fatalf("rotated %+v", rot)
		}
		if ev := e.waitEvent(t, "key.rotated", "rita"); ev["fingerprint"] != rot.Key.Fingerprint || ev["admin"] != "deploy" {
			t.Errorf("event %v", ev)
		}
		signer, err := ssh.ParsePrivateKey([]byte(rot.Credentials["private_key"]))
		if err != nil {
			t.Fatal(err)
		}
		if !e.waitLogin("rita", ssh.PublicKeys(signer), 10*time.Second) {
			t.Fatal("rita cannot log in with the rotated key")
		}
		if time.Now().Before(rot.Expiring[0].ExpiresAt) && !e.waitLogin("rita", ssh.PublicKeys(old.signer), time.Until(rot.Expiring[0].ExpiresAt)) {
			t.Error("the old key stopped before its grace ended")
		}
		time.Sleep(time.Until(rot.Expiring[0].ExpiresAt) + 100*time.Millisecond)
		if e.waitLogin("rita", ssh.PublicKeys(old.signer), 500*time.Millisecond) {
			t.Error("the old key still logs in after its grace")
		}
		if !e.waitLogin("rita", ssh.PublicKeys(signer), 5*time.Second) {
			t.Error("the rotated key stopped")
		}
		e.call(t, req{op: "rotateKeys", params: []string{"rita"}, auth: e.adminKey, body: map[string]any{"generate_key": "ed25519"}}).
			wantErr(t, http.StatusBadRequest, "bad_request", "grace", "want a duration")
		e.call(t, req{op: "rotateKeys", params: []string{"rita"}, auth: e.adminKey, body: map[string]any{"generate_key": "ed25519", "public_key": old.line, "grace": "1d"}}).
			wantErr(t, http.StatusBadRequest, "bad_request", "public_key", "exactly one")
		e.call(t, req{op: "rotateKeys", params: []string{"nobody"}, auth: e.adminKey, body: map[string]any{"public_key": newKey(t).line, "grace": "1d"}}).
			wantErr(t, http.StatusNotFound, "not_found", "", "no such user")
	})

	t.Run("packet", func(t *testing.T) {
		r := e.call(t, req{op: "getPacket", params: []string{"rita"}, auth: e.readKey, query: url.Values{"host": {"sftp.example.com"}}})
		r.want(t, http.StatusOK)
		zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
		if err != nil {
			t.Fatalf("packet: %v", err)
		}
		files := map[string]bool{}
		for _, f := range zr.File {
			files[path.Base(f.Name)] = true
		}
		if !files["README.txt"] || !files["known_hosts"] || !files["ssh_config"] || files["id_rita"] {
			t.Errorf("packet files %v: want the README, known_hosts and ssh_config, and no private key", files)
		}
		if cd := r.header.Get("Content-Disposition"); !strings.Contains(cd, "rita-onboarding.zip") {
			t.Errorf("Content-Disposition %q", cd)
		}
		e.call(t, req{op: "getPacket", params: []string{"rita"}, auth: e.readKey}).wantErr(t, http.StatusBadRequest, "bad_request", "host", "want host")
		e.call(t, req{op: "getPacket", params: []string{"nobody"}, auth: e.readKey, query: url.Values{"host": {"h"}}}).
			wantErr(t, http.StatusNotFound, "not_found", "", "")
	})

	t.Run("doctor", func(t *testing.T) {
		r := e.call(t, req{op: "runDoctor", auth: e.adminKey})
		r.want(t, http.StatusOK)
		var rep struct {
			OK     bool
			Checks []struct{ Check, Status, Message, Fix string }
		}
		r.decode(t, &rep)
		status := map[string]string{}
		for _, c := range rep.Checks {
			if status[c.Check] == "" || c.Status == "fail" {
				status[c.Check] = c.Status
			}
		}
		// The config, lock and host key are this daemon's own; its
		// listeners on port 0 are a failure the doctor names, with its fix,
		// and rita's key that expired in "rotate" a warning.
		if status["config"] != "ok" || status["daemon"] != "ok" || status["host_key"] != "ok" || status["listener"] != "fail" ||
			status["credentials"] != "warn" || rep.OK {
			t.Errorf("doctor report %+v", rep)
		}
		e.call(t, req{op: "runDoctor", auth: e.readKey}).wantErr(t, http.StatusForbidden, "forbidden", "", "")
	})

	t.Run("sessions", func(t *testing.T) {
		c := e.login("alice", ssh.PublicKeys(alice.signer))
		f, err := c.sftp.Create("/big")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(make([]byte, 70000)); err != nil {
			t.Fatal(err)
		}
		var s api.Session
		deadline := time.Now().Add(5 * time.Second)
		for len(s.Transfers) == 0 && time.Now().Before(deadline) {
			r := e.call(t, req{op: "listSessions", auth: e.readKey, query: url.Values{"user": {"alice"}}})
			r.want(t, http.StatusOK)
			var l api.SessionList
			r.decode(t, &l)
			for _, x := range l.Sessions {
				if len(x.Transfers) > 0 {
					s = x
				}
			}
		}
		if s.User != "alice" || s.Protocol != "sftp" || s.Method != "publickey" || !strings.HasPrefix(s.Remote, "127.0.0.1") ||
			len(s.Transfers) != 1 || s.Transfers[0].Path != "/big" || s.Transfers[0].Direction != "up" || s.BytesUp < 70000 || s.Since.IsZero() {
			t.Fatalf("alice's session = %+v", s)
		}
		e.call(t, req{op: "closeSession", params: []string{s.ID}, auth: e.adminKey}).want(t, http.StatusNoContent)
		if !c.isClosed(5 * time.Second) {
			t.Error("the client's connection is still open after the session was closed")
		}
		if ev := e.waitEvent(t, "session.closed", "alice"); ev["session"] != s.ID || ev["admin"] != "deploy" {
			t.Errorf("event %v", ev)
		}
		e.call(t, req{op: "closeSession", params: []string{s.ID}, auth: e.adminKey}).wantErr(t, http.StatusNotFound, "not_found", "", "no live session")
		// The broken upload is an event too, with the path.
		fileLines(t, e.audit, 10*time.Second, func(m map[string]any) bool { return m["type"] == "upload" && m["path"] == "/big" })
	})

	t.Run("events", func(t *testing.T) {
		evs := e.events(t, url.Values{"user": {"alice"}, "type": {"upload,login"}})
		if len(evs) < 2 || evs[0]["type"] != "upload" || evs[len(evs)-1]["type"] != "login" {
			t.Errorf("alice's uploads and logins: %v", evs)
		}
		if evs := e.events(t, url.Values{"path": {"/b*"}}); len(evs) != 1 || evs[0]["path"] != "/big" {
			t.Errorf("path /b*: %v", evs)
		}
		now := time.Now().UTC()
		if evs := e.events(t, url.Values{"since": {now.Add(time.Minute).Format(time.RFC3339)}}); len(evs) != 0 {
			t.Errorf("since a minute from now: %v", evs)
		}
		if evs := e.events(t, url.Values{"until": {now.Add(-time.Hour).Format(time.RFC3339)}}); len(evs) != 0 {
			t.Errorf("until an hour ago: %v", evs)
		}
		r := e.call(t, req{op: "listEvents", auth: e.readKey, query: url.Values{"limit": {"1"}}})
		var l struct {
			Events []map[string]any
			More   bool
		}
		r.decode(t, &l)
		if len(l.Events) != 1 || !l.More {
			t.Errorf("limit 1: %d events, more %v", len(l.Events), l.More)
		}
		for _, tt := range []struct{ q, field, msg string }{
			{"type=upload,upload_done", "type", `unknown event type "upload_done"`},
			{"path=inbox", "path", "invalid glob"},
			{"path=/[", "path", "invalid glob"},
			{"since=yesterday", "since", "RFC 3339"},
			{"until=2026-13-01T00:00:00Z", "until", "RFC 3339"},
			{"limit=0", "limit", "from 1 to 10000"},
			{"limit=10001", "limit", "from 1 to 10000"},
		} {
			q, _ := url.ParseQuery(tt.q)
			e.call(t, req{op: "listEvents", auth: e.readKey, query: q}).wantErr(t, http.StatusBadRequest, "bad_request", tt.field, tt.msg)
		}
	})

	t.Run("bans", func(t *testing.T) {
		const attacker = "127.0.0.2"
		for range 3 {
			e.call(t, req{op: "listSessions", auth: "guess", from: attacker}).wantErr(t, http.StatusUnauthorized, "unauthorized", "", "invalid bearer token")
		}
		// Banned: even the right key is refused from there.
		e.call(t, req{op: "listSessions", auth: e.readKey, from: attacker}).wantErr(t, http.StatusForbidden, "banned", "", "too many failed logins")
		r := e.call(t, req{op: "listBans", auth: e.readKey})
		var l api.BanList
		r.decode(t, &l)
		if len(l.Bans) != 1 || l.Bans[0].Addr != attacker || l.Bans[0].Offences != 1 || !l.Bans[0].Until.After(time.Now()) {
			t.Fatalf("bans = %+v", l.Bans)
		}
		r = e.call(t, req{op: "liftBan", params: []string{attacker}, auth: e.adminKey})
		r.want(t, http.StatusOK)
		var lr api.LiftResult
		r.decode(t, &lr)
		if lr != (api.LiftResult{Addr: attacker, Here: true}) {
			t.Errorf("lift = %+v", lr)
		}
		e.waitEvent(t, "ban.lifted", attacker)
		e.call(t, req{op: "listSessions", auth: e.readKey, from: attacker}).want(t, http.StatusOK)
		e.call(t, req{op: "liftBan", params: []string{attacker}, auth: e.adminKey}).wantErr(t, http.StatusNotFound, "not_found", "", "is not banned")
		e.call(t, req{op: "liftBan", params: []string{"host.example"}, auth: e.adminKey}).wantErr(t, http.StatusBadRequest, "bad_request", "addr", "not an IP address")
		// The ban file `wharf defender list` reads is up to date.
		data, err := os.ReadFile(filepath.Join(e.cfg.StateDir, "defender.json"))
		if err != nil || strings.Contains(string(data), attacker) {
			t.Errorf("defender.json after the lift: %s (%v)", data, err)
		}
	})

	t.Run("concurrent edit", func(t *testing.T) {
		// Another tool rewrites bob's file (renaming a new one over it,
		// without the lock) while the API edits it: an edit that read the
		// file before such a write is refused, and says so.
		file := filepath.Join(e.usersDir, "bob.yaml")
		orig, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var racer sync.WaitGroup
		racer.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// No t.Fatal here: errors only end the race early.
				cur, err := os.ReadFile(file)
				if err != nil {
					return
				}
				tmp := file + ".racer"
				if os.WriteFile(tmp, append(cur, []byte("# touched "+strings.Repeat("x", i%5)+"\n")...), 0o600) != nil || os.Rename(tmp, file) != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
		var conflict apiErr
		i := 0
		for ; i < 300 && conflict.Code == ""; i++ {
			r := e.call(t, req{op: "updatePartner", params: []string{"bob"}, auth: e.adminKey, body: map[string]any{"disabled": i%2 == 0}})
			switch r.status {
			case http.StatusOK:
			case http.StatusConflict:
				conflict = r.err(t)
			default:
				t.Fatalf("status %d: %s", r.status, r.body)
			}
		}
		close(stop)
		racer.Wait()
		t.Logf("a conflict after %d edits", i)
		if conflict.Code != "conflict" || !strings.Contains(conflict.Message, "changed concurrently, try again") || !strings.Contains(conflict.Message, file) {
			t.Errorf("no 409 conflict in 300 edits racing another writer: %+v", conflict)
		}
		writeAtomic(t, file, orig)
	})

	t.Run("config invalid", func(t *testing.T) {
		// A broken file in users_dir: the API says what `wharf config
		// check` says, file and line included, and changes nothing.
		bad := filepath.Join(e.usersDir, "broken.yaml")
		if err := os.WriteFile(bad, []byte("name: broken\nhome: broken\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, want := config.Load(e.path)
		if want == nil {
			t.Fatal("the broken file loads")
		}
		r := e.call(t, req{op: "listPartners", auth: e.readKey})
		er := r.wantErr(t, http.StatusConflict, "config_invalid", "home", want.Error())
		if !strings.Contains(er.Message, bad+":2: home: must be absolute") {
			t.Errorf("message %q", er.Message)
		}
		e.call(t, req{op: "deletePartner", params: []string{"bob"}, auth: e.adminKey}).wantErr(t, http.StatusConflict, "config_invalid", "home", bad+":2")
		if err := os.Remove(bad); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		e.call(t, req{op: "deletePartner", params: []string{"bob"}, auth: e.adminKey}).want(t, http.StatusNoContent)
		if _, err := os.Stat(filepath.Join(e.usersDir, "bob.yaml")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("bob's file: %v", err)
		}
		e.waitEvent(t, "user.deleted", "bob")
		fileLines(t, e.hookOut, 10*time.Second, func(m map[string]any) bool { return m["type"] == "user.deleted" && m["user"] == "bob" })
		e.call(t, req{op: "getPartner", params: []string{"bob"}, auth: e.readKey}).wantErr(t, http.StatusNotFound, "not_found", "", "no such partner")
		e.call(t, req{op: "deletePartner", params: []string{"bob"}, auth: e.adminKey}).wantErr(t, http.StatusNotFound, "not_found", "", "no such user")
	})

	t.Run("routes", func(t *testing.T) {
		r := e.do(t, "GET", "/api/v1/nothing", req{auth: e.token})
		if r.status != http.StatusNotFound || r.err(t).Code != "not_found" {
			t.Errorf("unknown route: %d %s", r.status, r.body)
		}
		r = e.do(t, "PUT", "/api/v1/partners/alice", req{auth: e.token})
		if r.status != http.StatusMethodNotAllowed || r.err(t).Code != "method_not_allowed" || r.header.Get("Allow") == "" {
			t.Errorf("wrong method: %d %s (Allow %q)", r.status, r.body, r.header.Get("Allow"))
		}
		// The metrics stay behind the token alone.
		if r := e.do(t, "GET", "/metrics", req{auth: e.adminKey}); r.status != http.StatusUnauthorized {
			t.Errorf("/metrics with an API key: %d", r.status)
		}
	})
}

// opsSorted lists the document's operations in a stable order.
func (e *apiEnv) opsSorted() []api.Operation {
	ops, _ := api.Operations()
	return ops
}

// someParams fills an operation's path parameters with names that exist
// nowhere: what matters is that authentication comes first.
func (e *apiEnv) someParams(op api.Operation) []string {
	out := make([]string, strings.Count(op.Path, "{"))
	for i := range out {
		out[i] = "x"
	}
	return out
}

func readDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

package daemon_test

// The web console over plain HTTP: security headers on every page, CSRF
// refusals, and failed logins counted by the defender.

import (
	"archive/zip"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/api"
	"github.com/wharf-sftp/wharf/internal/console"
)

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// consoleClient is a browser-like HTTP client of the console: a cookie
// jar, no redirects followed (the tests look at them), calling from
// local (127.0.0.1 when empty).
type consoleClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newConsoleClient(t *testing.T, base, local string) *consoleClient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	return &consoleClient{t: t, base: base, c: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		Transport:     &http.Transport{DialContext: d.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// get returns the answer and its body.
func (c *consoleClient) get(path string) (*http.Response, string) {
	c.t.Helper()
	resp, err := c.c.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c *consoleClient) post(path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	resp, err := c.c.PostForm(c.base+path, form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// csrf is the first CSRF token of the page at path.
func (c *consoleClient) csrf(path string) string {
	c.t.Helper()
	_, body := c.get(path)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("GET %s: no CSRF field in %.300s", path, body)
	}
	return m[1]
}

// login logs in with a name and password and returns the status.
func (c *consoleClient) login(name, password string) int {
	c.t.Helper()
	tok := c.csrf("/login")
	resp, _ := c.post("/login", url.Values{"csrf": {tok}, "name": {name}, "password": {password}})
	return resp.StatusCode
}

func checkSecurityHeaders(t *testing.T, path string, resp *http.Response) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Security-Policy": console.CSP,
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("GET %s: %s = %q, want %q", path, k, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") ||
		!strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("GET %s: CSP %q is not strict", path, csp)
	}
}

func TestConsoleHTTP(t *testing.T) {
	e := newAPIEnv(t, keyUser("alice", newKey(t)))
	c := newConsoleClient(t, e.base, "")

	t.Run("logged out", func(t *testing.T) {
		for _, p := range []string{"/", "/login", "/partners", "/sessions", "/bans", "/transfers", "/health", "/static/console.css", "/nope"} {
			resp, _ := c.get(p)
			checkSecurityHeaders(t, p, resp)
			if p != "/login" && p != "/static/console.css" && p != "/nope" && resp.StatusCode != http.StatusSeeOther {
				t.Errorf("GET %s logged out: %d, want a redirect to /login", p, resp.StatusCode)
			}
		}
		resp, _ := c.post("/login", url.Values{"name": {"ops"}, "password": {"console"}})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("login without its CSRF token: %d, want 403", resp.StatusCode)
		}
	})

	if got := c.login("ops", "console"); got != http.StatusSeeOther {
		t.Fatalf("login: %d", got)
	}
	for _, cookie := range c.c.Jar.Cookies(&url.URL{Scheme: "http", Host: strings.TrimPrefix(e.base, "http://")}) {
		if cookie.Name == "wharf_console" && len(cookie.Value) != 64 {
			t.Errorf("session cookie %q", cookie.Value)
		}
	}

	t.Run("headers", func(t *testing.T) {
		for _, p := range []string{"/partners", "/partners?q=ali", "/partners/alice/delete", "/sessions", "/bans", "/transfers", "/transfers?type=upload", "/health"} {
			resp, body := c.get(p)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s: %d %.200s", p, resp.StatusCode, body)
			}
			checkSecurityHeaders(t, p, resp)
			if strings.Contains(body, "<script") || strings.Contains(body, "style=") {
				t.Errorf("GET %s: inline script or style", p)
			}
		}
	})

	t.Run("health", func(t *testing.T) {
		_, body := c.get("/health")
		if !strings.Contains(body, `data-check="listeners"`) || !strings.Contains(body, "Ready: every check passes") {
			t.Errorf("health page: %.600s", body)
		}
	})

	t.Run("csrf", func(t *testing.T) {
		for _, form := range []url.Values{{"disabled": {"true"}}, {"disabled": {"true"}, "csrf": {strings.Repeat("0", 64)}}} {
			resp, _ := c.post("/partners/alice/disabled", form)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST with csrf %q: %d, want 403", form.Get("csrf"), resp.StatusCode)
			}
		}
		resp, _ := c.post("/logout", nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("logout without CSRF: %d, want 403", resp.StatusCode)
		}
		var p api.Partner
		if r := e.call(t, req{op: "getPartner", params: []string{"alice"}, auth: e.token}); r.status != http.StatusOK {
			t.Fatalf("getPartner: %d", r.status)
		} else {
			r.decode(t, &p)
		}
		if p.Disabled {
			t.Error("a POST without the CSRF token disabled alice")
		}
		// With the token, the change is made, as the admin's event.
		resp, _ = c.post("/partners/alice/disabled", url.Values{"disabled": {"true"}, "csrf": {c.csrf("/partners")}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("disable: %d", resp.StatusCode)
		}
		waitEvent(t, e, "user.changed", "ops")
	})

	t.Run("create and packet", func(t *testing.T) {
		resp, body := c.post("/partners", url.Values{"csrf": {c.csrf("/partners")}, "name": {"initech"}, "home": {"/initech"},
			"generate_key": {"ed25519"}})
		if resp.StatusCode != http.StatusCreated || !strings.Contains(body, "BEGIN OPENSSH PRIVATE KEY") {
			t.Fatalf("create: %d %.500s", resp.StatusCode, body)
		}
		tok := csrfField.FindStringSubmatch(body)[1]
		resp, body = c.post("/partners/initech/packet", url.Values{"csrf": {tok}, "host": {"127.0.0.1"}})
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/zip" {
			_, page := c.get("/partners")
			t.Fatalf("packet: %d %q %.300s\n%s", resp.StatusCode, resp.Header.Get("Location"), body, flashOf(page))
		}
		if _, err := zip.NewReader(strings.NewReader(body), int64(len(body))); err != nil {
			t.Errorf("packet: %v", err)
		}
	})

	t.Run("api key", func(t *testing.T) {
		rc := newConsoleClient(t, e.base, "")
		tok := rc.csrf("/login")
		if resp, _ := rc.post("/login", url.Values{"csrf": {tok}, "api_key": {e.readKey}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("login with the read key: %d", resp.StatusCode)
		}
		_, body := rc.get("/partners")
		if !strings.Contains(body, "ci (read)") || !strings.Contains(body, `data-partner="alice"`) {
			t.Errorf("partners page for the read key: %.300s", body)
		}
		// A read key may look, not change: the API's own scope check.
		rc.post("/partners/alice/delete", url.Values{"csrf": {rc.csrf("/partners")}, "confirm": {"alice"}})
		_, body = rc.get("/partners")
		if msg := flashOf(body); !strings.Contains(msg, "scope read") || !strings.Contains(body, `data-partner="alice"`) {
			t.Errorf("delete with the read key: %q", msg)
		}
		wc := newConsoleClient(t, e.base, "")
		tok = wc.csrf("/login")
		if resp, _ := wc.post("/login", url.Values{"csrf": {tok}, "api_key": {"wrong"}}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("login with a wrong key: %d", resp.StatusCode)
		}
	})

	t.Run("defender", func(t *testing.T) {
		// Two wrong passwords and a wrong API key: the third failure bans.
		bad := newConsoleClient(t, e.base, "127.0.0.2")
		for i := range 2 {
			if got := bad.login("ops", "wrong"); got != http.StatusUnauthorized {
				t.Fatalf("wrong password %d: %d, want 401", i, got)
			}
		}
		if resp, _ := bad.post("/login", url.Values{"csrf": {bad.csrf("/login")}, "api_key": {"wrong"}}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong API key: %d, want 401", resp.StatusCode)
		}
		r := e.call(t, req{op: "listBans", auth: e.token})
		var bans api.BanList
		r.decode(t, &bans)
		if len(bans.Bans) != 1 || bans.Bans[0].Addr != "127.0.0.2" {
			t.Fatalf("bans after 3 failed console logins: %+v", bans)
		}
		if got := bad.login("ops", "console"); got != http.StatusForbidden {
			t.Errorf("right password from a banned address: %d, want 403", got)
		}
	})
}

// banTo fails 3 console logins from c's address: the test daemon's
// defender bans it.
func banTo(t *testing.T, c *consoleClient) {
	t.Helper()
	for i := range 3 {
		if got := c.login("ops", "wrong"); got != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i, got)
		}
	}
}

// waitEvent waits for a recent event of type typ made by admin.
func waitEvent(t *testing.T, e *apiEnv, typ, admin string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.call(t, req{op: "listEvents", auth: e.token, query: url.Values{"type": {typ}}})
		var l api.EventList
		r.decode(t, &l)
		for _, ev := range l.Events {
			if ev.Admin == admin {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event by %s in %+v", typ, admin, l.Events)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var flashPara = regexp.MustCompile(`<p class="(?:flash|error)"[^>]*>([^<]*)</p>`)

// flashOf is a page's flash or error message.
func flashOf(page string) string {
	if m := flashPara.FindStringSubmatch(page); m != nil {
		return m[1]
	}
	return ""
}

// TestConsolePartnerPages: 250 partners show 100 at a time, with links
// that walk every partner once, in the config's order, and keep the
// search.
func TestConsolePartnerPages(t *testing.T) {
	k := newKey(t)
	var users []fileUser
	for i := range 250 {
		users = append(users, keyUser(fmt.Sprintf("p%03d", i), k))
	}
	e := newAPIEnv(t, users...)
	c := newConsoleClient(t, e.base, "")
	if got := c.login("ops", "console"); got != http.StatusSeeOther {
		t.Fatalf("login: %d", got)
	}
	row := regexp.MustCompile(`<tr data-partner="([^"]+)">`)
	link := func(body, id string) string {
		m := regexp.MustCompile(`href="([^"]+)" id="` + id + `"`).FindStringSubmatch(body)
		if m == nil {
			return ""
		}
		return html.UnescapeString(m[1])
	}
	var seen []string
	var firstPage string
	page := "/partners"
	for n := 0; page != ""; n++ {
		if n > 3 {
			t.Fatal("more than 3 pages for 250 partners")
		}
		resp, body := c.get(page)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", page, resp.StatusCode)
		}
		rows := row.FindAllStringSubmatch(body, -1)
		from, to := len(seen)+1, len(seen)+len(rows)
		if want := min(100, 250-len(seen)); len(rows) != want {
			t.Fatalf("GET %s: %d partners, want %d", page, len(rows), want)
		}
		if want := fmt.Sprintf("Partners %d–%d of 250", from, to); !strings.Contains(body, want) {
			t.Errorf("GET %s: no %q", page, want)
		}
		if prev := link(body, "prev"); (n == 0) != (prev == "") {
			t.Errorf("page %d: previous link %q", n+1, prev)
		} else if n == 1 && prev != firstPage {
			t.Errorf("page 2: previous link %q, want %q", prev, firstPage)
		}
		for _, r := range rows {
			seen = append(seen, r[1])
		}
		if n == 0 {
			firstPage = "/partners?offset=0&q="
		}
		page = link(body, "next")
	}
	var want []string
	for _, u := range users {
		want = append(want, u.Name)
	}
	if !slices.Equal(seen, want) {
		t.Errorf("the pages showed %d partners, not the config's %d in order", len(seen), len(want))
	}
	// A search pages its own matches: p1xx are 100, one page, no links.
	_, body := c.get("/partners?q=p1")
	if n := len(row.FindAllString(body, -1)); n != 100 || strings.Contains(body, `id="next"`) || strings.Contains(body, `id="pager"`) {
		t.Errorf("q=p1: %d partners, pager shown: %v", n, strings.Contains(body, `id="pager"`))
	}
	_, body = c.get("/partners?q=p0&offset=50")
	if n := len(row.FindAllString(body, -1)); n != 50 || link(body, "prev") != "/partners?offset=0&q=p0" || link(body, "next") != "" {
		t.Errorf("q=p0 from 50: %d partners, previous %q, next %q", n, link(body, "prev"), link(body, "next"))
	}
	for _, bad := range []string{"/partners?offset=-5", "/partners?offset=x"} {
		if resp, body := c.get(bad); resp.StatusCode != http.StatusOK || len(row.FindAllString(body, -1)) != 100 {
			t.Errorf("GET %s: %d, want the first page", bad, resp.StatusCode)
		}
	}
}

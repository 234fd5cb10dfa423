package console

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/wharf-sftp/wharf/internal/api"
	"github.com/wharf-sftp/wharf/internal/config"
)

func newTestServer(t *testing.T) *Server {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Users: []config.AdminUser{{Name: "ops", PasswordHash: string(h)}}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ops is the test server's admin.users entry "ops", logged in.
func ops(s *Server) api.Admin {
	return api.Admin{Name: "ops", Scope: config.ScopeAdmin, Addr: netip.MustParseAddr("127.0.0.1"),
		Credential: s.users.Load().byName["ops"].credential}
}

// serve runs one request through the console, with cookie as the
// session (""; none).
func serve(s *Server, method, target, cookie string, form url.Values) *httptest.ResponseRecorder {
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	if cookie != "" {
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func TestSessionExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestServer(t)
		loggedIn := func(id string) bool {
			w := serve(s, "GET", "/", id, nil)
			return w.Code == http.StatusSeeOther && w.Header().Get("Location") == "/partners"
		}
		a := ops(s)

		idleOne := s.newSession(a)
		busy := s.newSession(a)
		for range 3 {
			time.Sleep(idle - time.Minute)
			if !loggedIn(busy.id) {
				t.Fatal("a session in use expired")
			}
		}
		if loggedIn(idleOne.id) {
			t.Errorf("a session idle for %v is still valid", 3*(idle-time.Minute))
		}
		for time.Since(busy.started) < lifetime-idle {
			time.Sleep(idle - time.Minute)
			if !loggedIn(busy.id) {
				t.Fatalf("session expired after %v", time.Since(busy.started))
			}
		}
		time.Sleep(idle - time.Minute)
		if loggedIn(busy.id) {
			t.Errorf("session still valid after %v (lifetime %v)", time.Since(busy.started), lifetime)
		}
	})
}

func TestSessionBound(t *testing.T) {
	s := newTestServer(t)
	a := ops(s)
	first := s.newSession(a)
	for range maxSessions + 10 {
		s.newSession(a)
	}
	if n := len(s.sessions); n != maxSessions {
		t.Errorf("%d sessions kept, want %d", n, maxSessions)
	}
	if s.sessions[first.id] != nil {
		t.Error("the oldest session was kept")
	}
}

func TestLoginAndCSRF(t *testing.T) {
	s := newTestServer(t)
	w := serve(s, "GET", "/login", "", nil)
	var loginTok string
	for _, c := range w.Result().Cookies() {
		if c.Name == loginCookie {
			loginTok = c.Value
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure {
				t.Errorf("login cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP", c)
			}
		}
	}
	post := func(form url.Values, cookie string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.AddCookie(&http.Cookie{Name: loginCookie, Value: cookie})
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	if w := post(url.Values{"name": {"ops"}, "password": {"pw"}}, loginTok); w.Code != http.StatusForbidden {
		t.Errorf("login without the CSRF field: %d", w.Code)
	}
	if w := post(url.Values{"name": {"ops"}, "password": {"pw"}, "csrf": {loginTok}}, "other"); w.Code != http.StatusForbidden {
		t.Errorf("login with a CSRF field not matching its cookie: %d", w.Code)
	}
	if w := post(url.Values{"name": {"nobody"}, "password": {"pw"}, "csrf": {loginTok}}, loginTok); w.Code != http.StatusUnauthorized {
		t.Errorf("unknown admin: %d", w.Code)
	}
	w = post(url.Values{"name": {"ops"}, "password": {"pw"}, "csrf": {loginTok}}, loginTok)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	var id string
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			id = c.Value
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("session cookie %+v", c)
			}
		}
	}
	if w := serve(s, "POST", "/logout", id, url.Values{}); w.Code != http.StatusForbidden {
		t.Errorf("logout without CSRF: %d", w.Code)
	}
	ss := s.sessions[id]
	if w := serve(s, "POST", "/logout", id, url.Values{"csrf": {ss.csrf}}); w.Code != http.StatusSeeOther {
		t.Errorf("logout: %d", w.Code)
	}
	if len(s.sessions) != 0 {
		t.Error("the session outlived its logout")
	}
}

func TestSecureCookieOverTLS(t *testing.T) {
	s := newTestServer(t)
	r := httptest.NewRequest("GET", "https://console.example/login", nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		if !c.Secure {
			t.Errorf("cookie %s over TLS is not Secure", c.Name)
		}
	}
}

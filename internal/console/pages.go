package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wharf-sftp/wharf/internal/api"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/onboard"
)

// pageNames are the templates under assets/, each rendered inside
// layout.html.
var pageNames = []string{"login", "partners", "created", "delete", "sessions", "bans", "transfers", "health"}

func (s *Server) parsePages() error {
	s.pages = map[string]*template.Template{}
	funcs := template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		},
		"join": strings.Join,
		"path": url.PathEscape,
	}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "assets/layout.html", "assets/"+name+".html")
		if err != nil {
			return fmt.Errorf("console template %s: %w", name, err)
		}
		s.pages[name] = t
	}
	return nil
}

func (s *Server) routes() {
	css, _ := fs.Sub(assets, "assets")
	s.mux.Handle("GET /static/console.css", http.StripPrefix("/static/", http.FileServerFS(css)))
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.Handle("POST /logout", s.authed(s.logout))
	s.mux.Handle("GET /{$}", s.authed(func(w http.ResponseWriter, r *http.Request, _ *session) {
		http.Redirect(w, r, "/partners", http.StatusSeeOther)
	}))
	s.mux.Handle("GET /partners", s.authed(s.partners))
	s.mux.Handle("POST /partners", s.authed(s.createPartner))
	s.mux.Handle("POST /partners/{name}/disabled", s.authed(s.setDisabled))
	s.mux.Handle("POST /partners/{name}/rotate", s.authed(s.rotateKey))
	s.mux.Handle("GET /partners/{name}/delete", s.authed(s.confirmDelete))
	s.mux.Handle("POST /partners/{name}/delete", s.authed(s.deletePartner))
	s.mux.Handle("POST /partners/{name}/packet", s.authed(s.packet))
	s.mux.Handle("GET /sessions", s.authed(s.sessionsPage))
	s.mux.Handle("POST /sessions/{id}/close", s.authed(s.closeSession))
	s.mux.Handle("GET /bans", s.authed(s.bansPage))
	s.mux.Handle("POST /bans/{addr}/lift", s.authed(s.liftBan))
	s.mux.Handle("GET /transfers", s.authed(s.transfersPage))
	s.mux.Handle("GET /health", s.authed(s.healthPage))
	s.mux.Handle("POST /health/doctor", s.authed(s.runDoctor))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not found", http.StatusNotFound)
	})
}

// page is what layout.html renders around a page's content.
type page struct {
	Title string
	Nav   string // the page's name, to mark it in the menu
	Admin *api.Admin
	CSRF  string
	Flash string
	Error string
	Data  any
}

func (s *Server) render(w http.ResponseWriter, status int, name string, p page) {
	var buf bytes.Buffer
	if err := s.pages[name].Execute(&buf, p); err != nil {
		s.log.Error("render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) pageFor(r *http.Request, ss *session, name, title string) page {
	a := ss.admin
	return page{Title: title, Nav: name, Admin: &a, CSRF: ss.csrf, Flash: s.takeFlash(ss)}
}

// apiErr is the message an API error shows on a page.
func apiErr(err error) string {
	var e *api.Error
	if errors.As(err, &e) {
		msg := e.Message
		for _, d := range e.Details {
			if d.Message != "" && !strings.Contains(msg, d.Message) {
				msg += "; " + d.Field + ": " + d.Message
			}
		}
		return msg
	}
	return err.Error()
}

// done redirects after a change, with msg or the error's message.
func (s *Server) done(w http.ResponseWriter, r *http.Request, ss *session, to string, msg string, err error) {
	if err != nil {
		msg = "Failed: " + apiErr(err)
	}
	s.setFlash(ss, msg)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.session(r) != nil {
		http.Redirect(w, r, "/partners", http.StatusSeeOther)
		return
	}
	s.showLogin(w, r, http.StatusOK, "")
}

func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := randomToken()
	http.SetCookie(w, s.cookie(r, loginCookie, tok, 3600))
	s.render(w, status, "login", page{Title: "Log in", CSRF: tok, Error: msg})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	c, err := r.Cookie(loginCookie)
	if err != nil || !sameToken(r.PostFormValue("csrf"), c.Value) {
		http.Error(w, "forbidden: missing or wrong CSRF token; reload the login page", http.StatusForbidden)
		return
	}
	addr := remoteAddr(r)
	if s.o.Defender != nil && s.o.Defender.Banned(addr) {
		s.showLogin(w, r, http.StatusForbidden, "Too many failed logins from this address; wait for the ban to end.")
		return
	}
	name, password, key := r.PostFormValue("name"), r.PostFormValue("password"), r.PostFormValue("api_key")
	var a api.Admin
	switch {
	case key != "":
		a, err = s.o.API.Login(r.Context(), addr, key)
		if err != nil {
			var e *api.Error
			if errors.As(err, &e) && e.Status == http.StatusUnauthorized {
				s.showLogin(w, r, http.StatusUnauthorized, "Wrong API key.")
				return
			}
			s.showLogin(w, r, http.StatusServiceUnavailable, apiErr(err))
			return
		}
	default:
		cred, err := s.checkPassword(r.Context(), name, password)
		if err != nil {
			s.showLogin(w, r, http.StatusServiceUnavailable, err.Error())
			return
		}
		if cred == "" || name == "" {
			if s.o.Defender != nil {
				s.o.Defender.LoginFailed(addr)
			}
			s.log.Warn("login", "remote", addr.String(), "user", name, "outcome", "failed", "err", "wrong name or password")
			s.showLogin(w, r, http.StatusUnauthorized, "Wrong name or password.")
			return
		}
		a = api.Admin{Name: name, Scope: config.ScopeAdmin, Addr: addr, Credential: cred}
	}
	ss := s.newSession(a)
	if ss == nil {
		s.showLogin(w, r, http.StatusUnauthorized, "Your access was changed while you logged in; log in again.")
		return
	}
	s.log.Info("login", "remote", addr.String(), "admin", a.Name, "scope", a.Scope, "outcome", "ok")
	http.SetCookie(w, s.cookie(r, loginCookie, "", -1))
	http.SetCookie(w, s.cookie(r, sessionCookie, ss.id, int(lifetime/time.Second)))
	http.Redirect(w, r, "/partners", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, ss *session) {
	s.endSession(ss)
	http.SetCookie(w, s.cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

type partnersData struct {
	Q        string
	Host     string
	Partners []api.Partner
	// The page: partners From to To of Total; Prev and Next are the
	// links to the pages around it ("": none).
	From, To, Total int
	Prev, Next      string
}

// partnersPage is how many partners the partners page shows at once.
const partnersPage = 100

func (s *Server) partners(w http.ResponseWriter, r *http.Request, ss *session) {
	p := s.pageFor(r, ss, "partners", "Partners")
	q := r.URL.Query().Get("q")
	offset, err := strconv.Atoi(r.URL.Query().Get("offset"))
	if err != nil || offset < 0 {
		offset = 0
	}
	var list api.PartnerList
	v := url.Values{"q": {q}, "limit": {strconv.Itoa(partnersPage)}, "offset": {strconv.Itoa(offset)}}
	if err := s.o.API.Do(r.Context(), ss.admin, "GET", "/api/v1/partners?"+v.Encode(), nil, &list); err != nil {
		p.Error = apiErr(err)
	}
	d := partnersData{Q: q, Host: hostOf(r), Partners: list.Partners, Total: list.Total}
	if len(list.Partners) > 0 {
		d.From, d.To = offset+1, offset+len(list.Partners)
	}
	link := func(at int) string {
		return "/partners?" + url.Values{"q": {q}, "offset": {strconv.Itoa(at)}}.Encode()
	}
	if offset > 0 {
		d.Prev = link(max(0, min(offset, list.Total)-partnersPage))
	}
	if list.NextOffset != nil {
		d.Next = link(*list.NextOffset)
	}
	p.Data = d
	s.render(w, http.StatusOK, "partners", p)
}

// hostOf is the host name the browser reached the console by: the
// packet's default for where partners connect.
func hostOf(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		return h
	}
	return r.Host
}

type createdData struct {
	Partner     api.Partner
	Credentials map[string]string
	Host        string
	// Expiring, after a rotation: the older keys and when they stop.
	Expiring []api.KeyExpiry
	Rotated  bool
}

func (s *Server) createPartner(w http.ResponseWriter, r *http.Request, ss *session) {
	in := api.NewPartner{Name: strings.TrimSpace(r.PostFormValue("name")), Home: strings.TrimSpace(r.PostFormValue("home")),
		GenerateKey: r.PostFormValue("generate_key"), GeneratePassword: r.PostFormValue("generate_password") == "on"}
	if in.GenerateKey == "none" {
		in.GenerateKey = ""
	}
	if k := strings.TrimSpace(r.PostFormValue("public_key")); k != "" {
		in.PublicKeys = []string{k}
	}
	var out api.Created
	if err := s.o.API.Do(r.Context(), ss.admin, "POST", "/api/v1/partners", in, &out); err != nil {
		s.done(w, r, ss, "/partners", "", err)
		return
	}
	c := out.Credentials
	s.mu.Lock()
	ss.issued = nil
	if c["private_key"] != "" {
		ss.issued = &issued{user: in.Name, openssh: c["private_key"], ppk: c["private_key_ppk"], until: time.Now().Add(issuedFor)}
	}
	s.mu.Unlock()
	p := s.pageFor(r, ss, "partners", "Partner created")
	p.Data = createdData{Partner: out.Partner, Credentials: c, Host: hostOf(r)}
	s.render(w, http.StatusCreated, "created", p)
}

// rotateKey issues a new key for the partner and gives the older ones the
// grace asked for, through the API's rotateKeys: the page shows the
// private key once and offers the packet with it.
func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request, ss *session) {
	name := r.PathValue("name")
	in := api.KeyRotation{GenerateKey: r.PostFormValue("generate_key"), Grace: strings.TrimSpace(r.PostFormValue("grace"))}
	var out api.Rotated
	if err := s.o.API.Do(r.Context(), ss.admin, "POST", "/api/v1/partners/"+url.PathEscape(name)+"/key-rotation", in, &out); err != nil {
		s.done(w, r, ss, "/partners", "", err)
		return
	}
	var pt api.Partner
	if err := s.o.API.Do(r.Context(), ss.admin, "GET", "/api/v1/partners/"+url.PathEscape(name), nil, &pt); err != nil {
		s.done(w, r, ss, "/partners", "", err)
		return
	}
	c := out.Credentials
	s.mu.Lock()
	ss.issued = &issued{user: name, openssh: c["private_key"], ppk: c["private_key_ppk"], until: time.Now().Add(issuedFor)}
	s.mu.Unlock()
	p := s.pageFor(r, ss, "partners", "Key rotated")
	p.Data = createdData{Partner: pt, Credentials: c, Host: hostOf(r), Expiring: out.Expiring, Rotated: true}
	s.render(w, http.StatusOK, "created", p)
}

func (s *Server) setDisabled(w http.ResponseWriter, r *http.Request, ss *session) {
	name := r.PathValue("name")
	disabled := r.PostFormValue("disabled") == "true"
	err := s.o.API.Do(r.Context(), ss.admin, "PATCH", "/api/v1/partners/"+url.PathEscape(name), map[string]bool{"disabled": disabled}, nil)
	word := "enabled"
	if disabled {
		word = "disabled"
	}
	s.done(w, r, ss, "/partners", name+" "+word+".", err)
}

func (s *Server) confirmDelete(w http.ResponseWriter, r *http.Request, ss *session) {
	var pt api.Partner
	if err := s.o.API.Do(r.Context(), ss.admin, "GET", "/api/v1/partners/"+url.PathEscape(r.PathValue("name")), nil, &pt); err != nil {
		s.done(w, r, ss, "/partners", "", err)
		return
	}
	p := s.pageFor(r, ss, "partners", "Delete "+pt.Name)
	p.Data = pt
	s.render(w, http.StatusOK, "delete", p)
}

func (s *Server) deletePartner(w http.ResponseWriter, r *http.Request, ss *session) {
	name := r.PathValue("name")
	if r.PostFormValue("confirm") != name {
		s.done(w, r, ss, "/partners", "Not deleted: type the partner's name to confirm.", nil)
		return
	}
	err := s.o.API.Do(r.Context(), ss.admin, "DELETE", "/api/v1/partners/"+url.PathEscape(name), nil, nil)
	s.done(w, r, ss, "/partners", name+" deleted.", err)
}

// packet sends the partner's onboarding packet as a zip; with the key
// just generated for them when there is one (then dropped: it is
// handed out once).
func (s *Server) packet(w http.ResponseWriter, r *http.Request, ss *session) {
	if s.o.Packet == nil {
		s.done(w, r, ss, "/partners", "", errors.New("onboarding packets need the daemon's config file"))
		return
	}
	// Reading a partner needs the read scope: the same check as the API.
	name := r.PathValue("name")
	if err := s.o.API.Do(r.Context(), ss.admin, "GET", "/api/v1/partners/"+url.PathEscape(name), nil, nil); err != nil {
		s.done(w, r, ss, "/partners", "", err)
		return
	}
	var ids []onboard.Identity
	s.mu.Lock()
	if is := ss.issued; is != nil && is.user == name && time.Now().Before(is.until) {
		if is.openssh != "" {
			ids = append(ids, onboard.Identity{Name: "id_" + name, Data: []byte(is.openssh)},
				onboard.Identity{Name: name + ".ppk", Data: []byte(is.ppk)})
		}
		ss.issued = nil
	}
	s.mu.Unlock()
	host := strings.TrimSpace(r.PostFormValue("host"))
	if host == "" {
		host = hostOf(r)
	}
	pk, err := s.o.Packet(r.Context(), name, host, ids)
	if err != nil {
		s.done(w, r, ss, "/partners", "", err)
		return
	}
	var buf bytes.Buffer
	if err := pk.WriteZip(&buf, time.Now()); err != nil {
		s.done(w, r, ss, "/partners", "", err)
		return
	}
	s.log.Info("packet", "admin", ss.admin.Name, "user", name, "with_key", len(ids) > 0)
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", pk.Name+".zip"))
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) sessionsPage(w http.ResponseWriter, r *http.Request, ss *session) {
	p := s.pageFor(r, ss, "sessions", "Live sessions")
	user := r.URL.Query().Get("user")
	var list api.SessionList
	if err := s.o.API.Do(r.Context(), ss.admin, "GET", "/api/v1/sessions?user="+url.QueryEscape(user), nil, &list); err != nil {
		p.Error = apiErr(err)
	}
	p.Data = list.Sessions
	s.render(w, http.StatusOK, "sessions", p)
}

func (s *Server) closeSession(w http.ResponseWriter, r *http.Request, ss *session) {
	id := r.PathValue("id")
	err := s.o.API.Do(r.Context(), ss.admin, "DELETE", "/api/v1/sessions/"+url.PathEscape(id), nil, nil)
	s.done(w, r, ss, "/sessions", "Session "+id+" closed.", err)
}

func (s *Server) bansPage(w http.ResponseWriter, r *http.Request, ss *session) {
	p := s.pageFor(r, ss, "bans", "Bans")
	var list api.BanList
	if err := s.o.API.Do(r.Context(), ss.admin, "GET", "/api/v1/bans", nil, &list); err != nil {
		p.Error = apiErr(err)
	}
	p.Data = list.Bans
	s.render(w, http.StatusOK, "bans", p)
}

func (s *Server) liftBan(w http.ResponseWriter, r *http.Request, ss *session) {
	addr := r.PathValue("addr")
	err := s.o.API.Do(r.Context(), ss.admin, "DELETE", "/api/v1/bans/"+url.PathEscape(addr), nil, nil)
	s.done(w, r, ss, "/bans", "Ban of "+addr+" lifted.", err)
}

type transfersData struct {
	User, Type, Path, Since string
	Types                   []string
	Events                  api.EventList
	Charts                  []chart
	ChartPartial            bool // more transfers than the charts read
}

func (s *Server) transfersPage(w http.ResponseWriter, r *http.Request, ss *session) {
	p := s.pageFor(r, ss, "transfers", "Transfers and events")
	q := r.URL.Query()
	d := transfersData{User: q.Get("user"), Type: q.Get("type"), Path: q.Get("path"), Since: q.Get("since"), Types: config.EventTypes}
	v := url.Values{"limit": {"200"}}
	for k, val := range map[string]string{"user": d.User, "type": d.Type, "path": d.Path, "since": d.Since} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if err := s.o.API.Do(r.Context(), ss.admin, "GET", "/api/v1/events?"+v.Encode(), nil, &d.Events); err != nil {
		p.Error = apiErr(err)
	}
	// The charts: every transfer of the last 24 hours, whatever the filter.
	now := time.Now()
	var day api.EventList
	cv := url.Values{"type": {chartEvents}, "since": {now.Add(-chartHours * time.Hour).UTC().Format(time.RFC3339)}, "limit": {"10000"}}
	if err := s.o.API.Do(r.Context(), ss.admin, "GET", "/api/v1/events?"+cv.Encode(), nil, &day); err == nil {
		b, f := hourly(day, now)
		d.Charts = []chart{newChart("Bytes per hour", b, now, config.FormatByteSize), newChart("Files per hour", f, now, filesWord)}
		d.ChartPartial = day.More
	}
	p.Data = d
	s.render(w, http.StatusOK, "transfers", p)
}

// healthData is the health page: the readiness checks and, once run from
// the page, the doctor's report.
type healthData struct {
	api.Health
	Doctor *doctorReport
}

// doctorReport is the part of `wharf doctor`'s JSON report the page shows.
type doctorReport struct {
	OK     bool `json:"ok"`
	Checks []struct {
		Check   string `json:"check"`
		Target  string `json:"target"`
		Status  string `json:"status"`
		Message string `json:"message"`
		Fix     string `json:"fix"`
	} `json:"checks"`
}

func (s *Server) healthPage(w http.ResponseWriter, r *http.Request, ss *session) {
	s.renderHealth(w, r, ss, nil)
}

// runDoctor runs the doctor through the API (admin scope) and shows its
// report under the health checks.
func (s *Server) runDoctor(w http.ResponseWriter, r *http.Request, ss *session) {
	var rep doctorReport
	if err := s.o.API.Do(r.Context(), ss.admin, "POST", "/api/v1/doctor", nil, &rep); err != nil {
		s.done(w, r, ss, "/health", "", err)
		return
	}
	s.renderHealth(w, r, ss, &rep)
}

func (s *Server) renderHealth(w http.ResponseWriter, r *http.Request, ss *session, rep *doctorReport) {
	p := s.pageFor(r, ss, "health", "Health")
	var h api.Health
	// A failed check answers 503 with the checks: the page shows them.
	var e *api.Error
	if err := s.o.API.Do(r.Context(), ss.admin, "GET", "/api/v1/health", nil, &h); err != nil &&
		(!errors.As(err, &e) || e.Status != http.StatusServiceUnavailable || len(h.Checks) == 0) {
		p.Error = apiErr(err)
	}
	p.Data = healthData{Health: h, Doctor: rep}
	s.render(w, http.StatusOK, "health", p)
}

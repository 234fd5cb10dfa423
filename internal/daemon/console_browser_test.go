package daemon_test

// The web console end to end in headless Chromium (Debian's chromium,
// driven with chromedp): log in, create a partner with a generated key,
// download the packet, log in over SFTP with the packet's key, rotate the
// key, see the session and close it from the page, see the events, lift a
// ban. A
// screenshot of each page is kept under $WHARF_ARTIFACTS (else a
// temporary folder the test logs).

import (
	"archive/zip"
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/api"
)

// chromiumPath finds Debian's chromium: in CI its absence fails the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found: .ci/run installs the Debian package chromium")
	}
	t.Skip("chromium not installed (apt-get install chromium)")
	return ""
}

// artifacts is where the screenshots go.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if d := os.Getenv("WHARF_ARTIFACTS"); d != "" {
		dir = filepath.Join(d, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

type browserRun struct {
	t    *testing.T
	ctx  context.Context
	base string
	shot string // the screenshots' folder
}

func (b *browserRun) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browserRun) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (b *browserRun) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shot, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func TestConsoleBrowser(t *testing.T) {
	exe := chromiumPath(t)
	e := newAPIEnv(t)
	shots, downloads := artifacts(t), t.TempDir()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 800), chromedp.Flag("disable-gpu", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 3*time.Minute)
	defer cancel()
	b := &browserRun{t: t, ctx: ctx, base: e.base, shot: shots}

	// Downloads land in downloads/GUID; the browser says when one is done.
	done := make(chan string, 4)
	if err := chromedp.ListenBrowser(ctx, func(ev any) {
		if p, ok := ev.(*browser.EventDownloadProgress); ok && p.State == browser.DownloadProgressStateCompleted {
			select {
			case done <- p.GUID:
			default:
			}
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	yes := true
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: &yes}); err != nil {
		t.Fatalf("download behaviour: %v", err)
	}

	// Log in.
	b.do("login page", chromedp.Navigate(e.base+"/login"), chromedp.WaitVisible(chromedp.CSS("#login")))
	b.screenshot("login")
	b.do("log in", chromedp.SendKeys(chromedp.CSS("#name"), "ops"), chromedp.SendKeys(chromedp.CSS("#password"), "console"),
		chromedp.Click(chromedp.CSS("#login-submit")), chromedp.WaitVisible(chromedp.CSS("#create")))
	b.screenshot("partners-empty")

	// Create a partner with a generated key: the key is shown once.
	b.do("create", chromedp.SendKeys(chromedp.CSS("#new-name"), "globex"), chromedp.SendKeys(chromedp.CSS("#new-home"), "/globex"),
		chromedp.Click(chromedp.CSS("#create-submit")), chromedp.WaitVisible(chromedp.CSS("#private-key")))
	b.screenshot("created")
	shown := b.text("#private-key")
	if !strings.Contains(shown, "BEGIN OPENSSH PRIVATE KEY") {
		t.Fatalf("private key shown: %.100q", shown)
	}
	fp := b.text("#fingerprint")

	// The packet downloads, with that key.
	b.do("packet", chromedp.Click(chromedp.CSS("#packet-submit")))
	var guid string
	select {
	case guid = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the packet did not download; the page says %q", b.text("main"))
	}
	data, err := os.ReadFile(filepath.Join(downloads, guid))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("packet is not a zip: %v", err)
	}
	var names []string
	var keyFile []byte
	for _, f := range zr.File {
		names = append(names, f.Name)
		if strings.HasSuffix(f.Name, "/id_globex") || f.Name == "id_globex" {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(rc)
			rc.Close()
			keyFile = buf.Bytes()
		}
	}
	t.Logf("packet %s: %d bytes, %v", guid, len(data), names)
	if keyFile == nil || !slicesContainsSuffix(names, "README.txt") || !slicesContainsSuffix(names, "known_hosts") {
		t.Fatalf("packet files %v: want the key, README.txt and known_hosts", names)
	}
	signer, err := ssh.ParsePrivateKey(keyFile)
	if err != nil {
		t.Fatalf("packet key: %v", err)
	}
	if got := ssh.FingerprintSHA256(signer.PublicKey()); got != fp || strings.TrimSpace(string(keyFile)) != strings.TrimSpace(shown) {
		t.Fatalf("packet key %s, page showed %s", got, fp)
	}

	// Log in over SFTP with it (the daemon applies the new partner within
	// about a second), and upload.
	if !e.waitLogin("globex", ssh.PublicKeys(signer), 10*time.Second) {
		t.Fatal("globex cannot log in with the packet's key")
	}
	c := e.login("globex", ssh.PublicKeys(signer))
	f, err := c.sftp.Create("/hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("hello from the console test\n")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// The partners page lists globex.
	b.do("partners", chromedp.Navigate(e.base+"/partners"), chromedp.WaitVisible(chromedp.CSS(`tr[data-partner="globex"]`)))
	b.screenshot("partners")

	// Rotate globex's key with a day of grace: the page shows the new
	// private key once and when the old one stops; both keys log in.
	b.do("rotate", chromedp.SetValue(chromedp.CSS(`tr[data-partner="globex"] .rotate input[name="grace"]`), "1d"),
		chromedp.Click(chromedp.CSS(`tr[data-partner="globex"] .rotate button`)), chromedp.WaitVisible(chromedp.CSS("#private-key")))
	b.screenshot("rotated")
	rotated, err := ssh.ParsePrivateKey([]byte(b.text("#private-key")))
	if err != nil {
		t.Fatalf("rotated key shown: %v", err)
	}
	if old := b.text(".expiring"); old != fp {
		t.Errorf("the page names %q as the expiring key, want %s", old, fp)
	}
	if !e.waitLogin("globex", ssh.PublicKeys(rotated), 10*time.Second) {
		t.Fatal("globex cannot log in with the rotated key")
	}
	if !e.waitLogin("globex", ssh.PublicKeys(signer), 5*time.Second) {
		t.Error("globex's old key stopped during its grace")
	}
	waitEvent(t, e, "key.rotated", "ops")

	// The session is on the sessions page; closing it there cuts the client.
	b.do("sessions", chromedp.Navigate(e.base+"/sessions"), chromedp.WaitVisible(chromedp.CSS(`tr[data-user="globex"]`)))
	b.screenshot("sessions")
	// Every page fits a phone (390×844) and a laptop (1280×800) without
	// scrolling sideways: wide tables scroll inside their own box.
	for _, vp := range []struct {
		name string
		w, h int64
	}{{"phone", 390, 844}, {"laptop", 1280, 800}} {
		b.do("viewport", chromedp.EmulateViewport(vp.w, vp.h))
		for _, pg := range []string{"partners", "sessions", "transfers", "bans", "health"} {
			b.do(pg, chromedp.Navigate(e.base+"/"+pg), chromedp.WaitVisible(chromedp.CSS("main")))
			fits, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= document.documentElement.clientWidth`))
			if err != nil {
				t.Fatal(err)
			}
			if !fits {
				t.Errorf("%s scrolls sideways at %dx%d", pg, vp.w, vp.h)
			}
			if vp.name == "phone" {
				b.screenshot(pg + "-phone")
			}
		}
	}
	b.do("sessions", chromedp.Navigate(e.base+"/sessions"), chromedp.WaitVisible(chromedp.CSS(`tr[data-user="globex"]`)))
	b.do("close session", chromedp.Click(chromedp.CSS(`tr[data-user="globex"] button.close`)), chromedp.WaitVisible(chromedp.CSS("#flash")))
	if msg := b.text("#flash"); !strings.Contains(msg, "closed") {
		t.Errorf("after close: %q", msg)
	}
	select {
	case <-c.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the SFTP client is still connected after the close")
	}

	// The transfers page shows the upload and the admin's changes.
	b.do("transfers", chromedp.Navigate(e.base+"/transfers"), chromedp.WaitVisible(chromedp.CSS(`tr[data-type="upload"]`)))
	b.screenshot("transfers")
	// Both charts (bytes and files per hour) have this hour's bar.
	drawn, err := chromedp.Run(ctx, chromedp.Evaluate[[]bool](`[...document.querySelectorAll("svg.chart-svg")].map(
		s => Number(s.querySelectorAll("rect.bar")[23].getAttribute("height")) > 0)`))
	if err != nil || len(drawn) != 2 || !drawn[0] || !drawn[1] {
		t.Errorf("charts: %v %v", drawn, err)
	}
	events := b.text("#events")
	for _, want := range []string{"/hello.txt", "user.created", "session.closed", "ops"} {
		if !strings.Contains(events, want) {
			t.Errorf("transfers page lacks %q", want)
		}
	}

	// A ban (three wrong console passwords from 127.0.0.2), lifted on the
	// bans page.
	banTo(t, newConsoleClient(t, e.base, "127.0.0.2"))
	b.do("bans", chromedp.Navigate(e.base+"/bans"), chromedp.WaitVisible(chromedp.CSS(`tr[data-addr="127.0.0.2"]`)))
	b.screenshot("bans")
	b.do("lift", chromedp.Click(chromedp.CSS(`tr[data-addr="127.0.0.2"] button.lift`)), chromedp.WaitVisible(chromedp.CSS("#flash")))
	b.screenshot("bans-lifted")
	var bans api.BanList
	e.call(t, req{op: "listBans", auth: e.token}).decode(t, &bans)
	if len(bans.Bans) != 0 {
		t.Errorf("bans after the lift: %+v", bans.Bans)
	}
	if got := newConsoleClient(t, e.base, "127.0.0.2").login("ops", "console"); got != http.StatusSeeOther {
		t.Errorf("login from 127.0.0.2 after the lift: %d", got)
	}

	// Disable globex, then delete it (typing its name to confirm).
	row := `tr[data-partner="globex"]`
	b.do("disable", chromedp.Navigate(e.base+"/partners"), chromedp.Click(chromedp.CSS(row+" button.disable")),
		chromedp.WaitVisible(chromedp.CSS(row+" button.enable")))
	if e.canLogin("globex", ssh.PublicKeys(signer)) {
		// The daemon applies the edit within about a second.
		deadline := time.Now().Add(10 * time.Second)
		for e.canLogin("globex", ssh.PublicKeys(signer)) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if e.canLogin("globex", ssh.PublicKeys(signer)) {
			t.Error("globex still logs in once disabled")
		}
	}
	b.do("delete page", chromedp.Click(chromedp.CSS(row+" a.danger")), chromedp.WaitVisible(chromedp.CSS("#delete")))
	b.screenshot("delete")
	b.do("delete unconfirmed", chromedp.Click(chromedp.CSS("#delete-submit")), chromedp.WaitVisible(chromedp.CSS(row)))
	b.do("delete", chromedp.Click(chromedp.CSS(row+" a.danger")), chromedp.WaitVisible(chromedp.CSS("#delete")),
		chromedp.SendKeys(chromedp.CSS("#confirm"), "globex"), chromedp.Click(chromedp.CSS("#delete-submit")),
		chromedp.WaitVisible(chromedp.CSS("#flash")), chromedp.WaitNotPresent(chromedp.CSS(row)))

	// The doctor, run from the health page: its checklist, each line with
	// its status.
	b.do("doctor", chromedp.Navigate(e.base+"/health"), chromedp.WaitVisible(chromedp.CSS("#doctor")),
		chromedp.Click(chromedp.CSS("#doctor-run")), chromedp.WaitVisible(chromedp.CSS("#doctor-checks")))
	b.screenshot("doctor")
	if configStatus := b.text(`tr[data-doctor="config"] td:nth-child(2)`); configStatus != "ok" {
		t.Errorf("the doctor's config check says %q on the page", configStatus)
	}

	// Log out: the pages ask for a login again.
	b.do("log out", chromedp.Click(chromedp.CSS(".logout button")), chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.Navigate(e.base+"/sessions"), chromedp.WaitVisible(chromedp.CSS("#login")))

	// Each change is the API's event, naming the console's admin.
	for _, typ := range []string{"user.created", "user.changed", "user.deleted", "session.closed", "ban.lifted"} {
		waitEvent(t, e, typ, "ops")
	}
	var l api.EventList
	e.call(t, req{op: "listEvents", auth: e.token, query: url.Values{"type": {"user.created"}}}).decode(t, &l)
	if len(l.Events) != 1 || l.Events[0].User != "globex" || l.Events[0].Protocol != "api" {
		t.Errorf("user.created events: %+v", l.Events)
	}
}

func slicesContainsSuffix(names []string, suffix string) bool {
	for _, n := range names {
		if n == suffix || strings.HasSuffix(n, "/"+suffix) {
			return true
		}
	}
	return false
}

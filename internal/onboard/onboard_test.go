package onboard

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/testcert"
)

var now = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// rsaHostKey is made once: RSA generation dominates the tests' time, and
// the key is never modified.
var rsaHostKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// fixture is a server and a user to build packets for.
type fixture struct {
	cfg      *config.Config
	hostKeys []ssh.PublicKey
	cert     *x509.Certificate
	// The user's key: its private key in OpenSSH format and a .ppk of it.
	keyPEM, ppk []byte
	pub         ssh.PublicKey
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{}
	_, hk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk := rsaHostKey()
	for _, k := range []any{&rk.PublicKey, hk.Public()} { // RSA first: Build must put Ed25519 first
		pk, err := ssh.NewPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		f.hostKeys = append(f.hostKeys, pk)
	}
	f.cert = selfSigned(t, now.AddDate(1, 0, 0))

	_, uk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(uk, "acme@issued")
	if err != nil {
		t.Fatal(err)
	}
	f.keyPEM = pem.EncodeToMemory(block)
	f.pub, _ = ssh.NewPublicKey(uk.Public())
	f.ppk = fakePPK(f.pub)

	c := config.Default()
	c.SFTP.Listen = "0.0.0.0:2022"
	c.FTPS.Listen = "0.0.0.0:2121"
	c.FTPS.PassivePorts = "50000-50100"
	c.Users = []config.User{{
		Name:         "acme",
		Home:         "/acme",
		PublicKeys:   []config.PublicKey{{Key: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(f.pub))), Comment: "issued", ExpiresAt: now.AddDate(0, 3, 0)}},
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		Permissions:  []string{"list", "download", "upload"},
	}}
	f.cfg = c
	return f
}

func (f *fixture) input() Input {
	return Input{Config: f.cfg, User: "acme", Host: "sftp.example.com", HostKeys: f.hostKeys, Certificate: f.cert, Now: now,
		Identities: []Identity{{Name: "acme_ed25519", Data: f.keyPEM}, {Name: "acme_ed25519.ppk", Data: f.ppk}}}
}

// fakePPK is a PuTTY key file with the real public lines of pub (all
// Build reads of a .ppk) and filler private lines.
func fakePPK(pub ssh.PublicKey) []byte {
	b64 := base64.StdEncoding.EncodeToString(pub.Marshal())
	var lines []string
	for len(b64) > 64 {
		lines, b64 = append(lines, b64[:64]), b64[64:]
	}
	lines = append(lines, b64)
	return []byte("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: acme\nPublic-Lines: " +
		itoa(len(lines)) + "\n" + strings.Join(lines, "\n") + "\nPrivate-Lines: 1\nAAAA\nPrivate-MAC: 00\n")
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

func selfSigned(t *testing.T, notAfter time.Time) *x509.Certificate {
	t.Helper()
	p, err := testcert.New(now.AddDate(-1, 0, 0), notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return p.Cert
}

func build(t *testing.T, in Input) *Packet {
	t.Helper()
	p, err := Build(in)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return p
}

func text(t *testing.T, p *Packet, name string) string {
	t.Helper()
	f := p.File(name)
	if f == nil {
		t.Fatalf("packet has no %s; it has %v", name, names(p))
	}
	return string(f.Data)
}

func names(p *Packet) []string {
	var out []string
	for _, f := range p.Files {
		out = append(out, f.Name)
	}
	return out
}

func TestBuildFiles(t *testing.T) {
	f := newFixture(t)
	p := build(t, f.input())
	want := map[string]uint32{
		ReadmeFile: 0o644, KnownHosts: 0o644, SSHConfig: 0o644, FileZillaFile: 0o644, WinSCPFile: 0o644,
		CommandsFile: 0o644, CertFile: 0o644, "acme_ed25519": 0o600, "acme_ed25519.ppk": 0o600, "acme_ed25519.pub": 0o644,
	}
	if len(p.Files) != len(want) {
		t.Errorf("files %v, want %d", names(p), len(want))
	}
	for _, file := range p.Files {
		if mode, ok := want[file.Name]; !ok || mode != file.Mode {
			t.Errorf("%s: mode %o (in want: %v), want %o", file.Name, file.Mode, ok, mode)
		}
	}
	if !bytes.Equal(p.File("acme_ed25519").Data, f.keyPEM) || !bytes.Equal(p.File("acme_ed25519.ppk").Data, f.ppk) {
		t.Error("issued key files not included as given")
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(p.File("acme_ed25519.pub").Data)
	if err != nil || !bytes.Equal(pub.Marshal(), f.pub.Marshal()) {
		t.Errorf("acme_ed25519.pub is not the user's key: %v", err)
	}
	if p.Name != "acme-sftp.example.com" {
		t.Errorf("Name %q", p.Name)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings: %q", p.Warnings)
	}
}

func TestReadme(t *testing.T) {
	f := newFixture(t)
	p := build(t, f.input())
	readme := text(t, p, ReadmeFile)
	flat := strings.Join(strings.Fields(readme), " ")
	for _, want := range []string{
		"Connecting to sftp.example.com as acme",
		"Server sftp.example.com",
		"User name acme",
		"port 2022", "port 2121, explicit TLS",
		"You may see the list of files, download files and upload new files.",
		"You may not replace or change existing files, delete files and empty folders, rename and move files and create",
		"acme_ed25519 (OpenSSH, curl) and acme_ed25519.ppk (PuTTY, WinSCP, FileZilla)",
		"Fingerprint " + ssh.FingerprintSHA256(f.pub) + ". It works until 2027-03-03 12:00 UTC.",
		"SFTP and FTPS with your password, which we send you separately",
		puttyFingerprint(f.hostKeys[1]), puttyFingerprint(f.hostKeys[0]),
		certSHA256(f.cert),
		"one of the ports 50000-50100",
		"not signed by a public certificate authority",
		"cp acme_ed25519 ~/.ssh/acme_ed25519 && chmod 600 ~/.ssh/acme_ed25519",
		"cat known_hosts >> ~/.ssh/known_hosts",
		"sftp sftp.example.com-acme",
		"keep it to yourself",
	} {
		if !strings.Contains(flat, strings.Join(strings.Fields(want), " ")) {
			t.Errorf("README lacks %q", want)
		}
	}
	// Ed25519 is listed before RSA whatever order the keys came in.
	if strings.Index(readme, "ssh-ed25519 255") > strings.Index(readme, "ssh-rsa 2048") {
		t.Error("README lists the RSA host key first")
	}
	for i, line := range strings.Split(readme, "\n") {
		if len(line) > 100 && !strings.HasPrefix(line, "    ") { // commands may be long
			t.Errorf("README line %d is %d characters long: %q", i+1, len(line), line)
		}
	}
	if strings.Contains(readme, f.cfg.Users[0].PasswordHash) {
		t.Error("README holds the password hash")
	}
}

func TestKnownHosts(t *testing.T) {
	f := newFixture(t)
	f.cfg.SFTP.Legacy = config.Legacy{Listen: "0.0.0.0:2222", Users: []string{"acme"}}
	p := build(t, f.input())
	file := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(file, p.File(KnownHosts).Data, 0o644); err != nil {
		t.Fatal(err)
	}
	check, err := knownhosts.New(file)
	if err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 2022}
	for _, port := range []string{"2022", "2222"} {
		for _, k := range f.hostKeys {
			if err := check("sftp.example.com:"+port, addr, k); err != nil {
				t.Errorf("port %s, %s: %v", port, k.Type(), err)
			}
		}
		if err := check("sftp.example.com:"+port, addr, f.pub); err == nil {
			t.Errorf("port %s: known_hosts accepts a key that is not a host key", port)
		}
	}
	if err := check("other.example.com:2022", addr, f.hostKeys[0]); err == nil {
		t.Error("known_hosts accepts the keys for another host")
	}
	if !strings.Contains(text(t, p, ReadmeFile), "port 2222 as well") {
		t.Error("README does not name the legacy port")
	}
}

func TestSSHConfig(t *testing.T) {
	for _, tc := range []struct {
		dir, identity, knownHosts string
	}{
		{"", "IdentityFile ~/.ssh/acme_ed25519", "UserKnownHostsFile ~/.ssh/known_hosts"},
		{"/home/p/wharf keys", `IdentityFile "/home/p/wharf keys/acme_ed25519"`, `UserKnownHostsFile "/home/p/wharf keys/known_hosts"`},
	} {
		f := newFixture(t)
		in := f.input()
		in.ClientDir = tc.dir
		conf := text(t, build(t, in), SSHConfig)
		for _, want := range []string{"Host sftp.example.com-acme\n", "    HostName sftp.example.com\n", "    Port 2022\n",
			"    User acme\n", "    " + tc.identity + "\n", "    IdentitiesOnly yes\n", "    " + tc.knownHosts + "\n",
			"    StrictHostKeyChecking yes\n"} {
			if !strings.Contains(conf, want) {
				t.Errorf("dir %q: ssh_config lacks %q:\n%s", tc.dir, want, conf)
			}
		}
	}
}

// fzParsed is the part of a Site Manager file the tests read.
type fzParsed struct {
	XMLName xml.Name `xml:"FileZilla3"`
	Servers []struct {
		Host, User, Keyfile, Name, PasvMode string
		Port, Protocol, Logontype           int
	} `xml:"Servers>Server"`
}

func TestFileZilla(t *testing.T) {
	f := newFixture(t)
	f.cfg.FTPS.ImplicitListen = "0.0.0.0:990"
	in := f.input()
	in.ClientDir = `C:\Users\p\keys\`
	data := build(t, in).File(FileZillaFile).Data
	if !bytes.HasPrefix(data, []byte(xml.Header)) {
		t.Error("no XML declaration")
	}
	var got fzParsed
	if err := xml.Unmarshal(data, &got); err != nil {
		t.Fatalf("parse: %v\n%s", err, data)
	}
	type site struct {
		host, user, key, pasv string
		port, proto, logon    int
	}
	want := []site{
		{"sftp.example.com", "acme", `C:\Users\p\keys\acme_ed25519.ppk`, "", 2022, 1, 5},
		{"sftp.example.com", "acme", "", "MODE_PASSIVE", 2121, 4, 2},
		{"sftp.example.com", "acme", "", "MODE_PASSIVE", 990, 3, 2},
	}
	if len(got.Servers) != len(want) {
		t.Fatalf("%d sites, want %d:\n%s", len(got.Servers), len(want), data)
	}
	for i, s := range got.Servers {
		g := site{s.Host, s.User, s.Keyfile, s.PasvMode, s.Port, s.Protocol, s.Logontype}
		if g != want[i] {
			t.Errorf("site %d: %+v, want %+v", i, g, want[i])
		}
		if s.Name == "" {
			t.Errorf("site %d has no name", i)
		}
	}
	if bytes.Contains(data, []byte("<Pass")) {
		t.Error("the FileZilla file stores a password")
	}
}

// parseINI reads an INI file into section -> key -> value, unescaping
// WinSCP's %XX in section names and values.
func parseINI(t *testing.T, data []byte) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	var cur map[string]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case line == "" || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			cur = map[string]string{}
			out[unmunge(line[1:len(line)-1])] = cur
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || cur == nil {
				t.Fatalf("bad INI line %q", line)
			}
			cur[unmunge(k)] = unmunge(v)
		}
	}
	return out
}

func unmunge(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			var c byte
			for _, h := range s[i+1 : i+3] {
				c = c<<4 | byte(strings.IndexRune("0123456789ABCDEF", h))
			}
			b.WriteByte(c)
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestWinSCP(t *testing.T) {
	f := newFixture(t)
	data := build(t, f.input()).File(WinSCPFile).Data
	ini := parseINI(t, data)
	sftp := ini[`Sessions\acme@sftp.example.com (SFTP)`]
	ftps := ini[`Sessions\acme@sftp.example.com (FTPS)`]
	if sftp == nil || ftps == nil {
		t.Fatalf("sessions missing:\n%s", data)
	}
	wantSFTP := map[string]string{"HostName": "sftp.example.com", "PortNumber": "2022", "UserName": "acme", "FSProtocol": "2",
		"PublicKeyFile": "acme_ed25519.ppk",
		"SshHostKey":    winscpFingerprint(f.hostKeys[1]) + ";" + winscpFingerprint(f.hostKeys[0])}
	wantFTPS := map[string]string{"HostName": "sftp.example.com", "PortNumber": "2121", "UserName": "acme", "FSProtocol": "5",
		"Ftps": "3", "FtpPasvMode": "1", "SshHostKey": certSHA256(f.cert)}
	for _, c := range []struct {
		got, want map[string]string
	}{{sftp, wantSFTP}, {ftps, wantFTPS}} {
		for k, v := range c.want {
			if c.got[k] != v {
				t.Errorf("%s = %q, want %q", k, c.got[k], v)
			}
		}
		if _, ok := c.got["Password"]; ok {
			t.Error("a session stores a password")
		}
	}
	if strings.Contains(wantSFTP["SshHostKey"], "SHA256:") {
		t.Error("WinSCP fingerprints must not carry the SHA256: prefix")
	}
	cache := ini["SshHostKeys"]
	if len(cache) != 2 || cache["ssh-ed25519@2022:sftp.example.com"] == "" || !strings.HasPrefix(cache["rsa2@2022:sftp.example.com"], "0x10001,0x") {
		t.Errorf("SshHostKeys: %v", cache)
	}
	if bytes.Contains(data, []byte("\n")) && !bytes.Contains(data, []byte("\r\n")) {
		t.Error("INI lines do not end in CRLF")
	}
}

func TestCommands(t *testing.T) {
	f := newFixture(t)
	p := build(t, f.input())
	cmds := text(t, p, CommandsFile)
	hostPin := base64.StdEncoding.EncodeToString(sha256Sum(f.hostKeys[1].Marshal())) // the Ed25519 key
	for _, want := range []string{
		"sftp -P 2022 -i acme_ed25519 -o IdentitiesOnly=yes -o UserKnownHostsFile=known_hosts -o StrictHostKeyChecking=yes acme@sftp.example.com\n",
		"curl -sS --hostpubsha256 " + hostPin + " --user acme: --key acme_ed25519 --pubkey acme_ed25519.pub -T FILE sftp://sftp.example.com:2022/\n",
		"-o FILE sftp://sftp.example.com:2022/FILE\n",
		"lftp -u acme -p 2121 -e 'set ftp:ssl-force true; set ftp:ssl-protect-data true; set ftp:passive-mode true; set ssl:verify-certificate/" + certSHA1(f.cert) + " no' sftp.example.com\n",
		"curl -sS --ssl-reqd --user acme --insecure --pinnedpubkey " + certPin(f.cert) + " -T FILE ftp://sftp.example.com:2121/\n",
	} {
		if !strings.Contains(cmds, want) {
			t.Errorf("commands.txt lacks %q:\n%s", want, cmds)
		}
	}
	if !strings.Contains(text(t, p, ReadmeFile), "    sftp -P 2022 -i acme_ed25519 ") {
		t.Error("README does not show the commands")
	}
}

func sha256Sum(b []byte) []byte {
	sum := sha256.Sum256(b)
	return sum[:]
}

// TestCertificateVerified: a certificate a CA signed for the host needs
// neither --insecure nor a pin, and the README does not warn.
func TestCertificateVerified(t *testing.T) {
	f := newFixture(t)
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(5, 0, 0)}
	caDER, _ := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(3), DNSNames: []string{"sftp.example.com"}, NotBefore: now.AddDate(0, -1, 0),
		NotAfter: now.AddDate(0, 0, 20), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	in := f.input()
	in.Certificate, _ = x509.ParseCertificate(leafDER)
	in.Roots = x509.NewCertPool()
	in.Roots.AddCert(caCert)
	p := build(t, in)
	cmds := text(t, p, CommandsFile)
	if strings.Contains(cmds, "--insecure") || strings.Contains(cmds, "verify-certificate") {
		t.Errorf("a verified certificate is pinned or unchecked:\n%s", cmds)
	}
	if strings.Contains(text(t, p, ReadmeFile), "not signed by a public certificate authority") {
		t.Error("README warns about a verified certificate")
	}
	if !slices.ContainsFunc(p.Warnings, func(w string) bool { return strings.Contains(w, "FTPS certificate expires on") }) {
		t.Errorf("no warning for a certificate expiring in 20 days: %q", p.Warnings)
	}
}

func TestProtocols(t *testing.T) {
	f := newFixture(t)
	f.cfg.Users[0].Protocols = []string{"sftp"}
	p := build(t, f.input())
	for _, gone := range []string{CertFile} {
		if p.File(gone) != nil {
			t.Errorf("SFTP-only user gets %s", gone)
		}
	}
	if strings.Contains(text(t, p, CommandsFile), "lftp") || strings.Contains(text(t, p, FileZillaFile), "2121") {
		t.Error("SFTP-only user gets FTPS commands or sites")
	}
	if !slices.ContainsFunc(p.Warnings, func(w string) bool { return strings.Contains(w, "FTPS: not among the user's protocols") }) {
		t.Errorf("warnings %q", p.Warnings)
	}

	f = newFixture(t)
	f.cfg.Users[0].Protocols = []string{"ftps"}
	in := f.input()
	in.Identities = nil
	p = build(t, in)
	for _, gone := range []string{KnownHosts, SSHConfig} {
		if p.File(gone) != nil {
			t.Errorf("FTPS-only user gets %s", gone)
		}
	}
	if c := text(t, p, CommandsFile); strings.Contains(c, "sftp -P") || strings.Contains(c, "sftp://") {
		t.Error("FTPS-only user gets SFTP commands")
	}

	// A password only: SFTP by password.
	f = newFixture(t)
	f.cfg.Users[0].PublicKeys = nil
	in = f.input()
	in.Identities = nil
	p = build(t, in)
	if !strings.Contains(text(t, p, SSHConfig), "PreferredAuthentications password,keyboard-interactive") ||
		!strings.Contains(text(t, p, CommandsFile), "--user acme -T FILE sftp://") {
		t.Error("password-only SFTP is not set up for a password")
	}
}

func TestExpiry(t *testing.T) {
	f := newFixture(t)
	u := &f.cfg.Users[0]
	u.PublicKeys = append(u.PublicKeys,
		config.PublicKey{Key: otherKey(t), ExpiresAt: now.Add(-time.Hour)},
		config.PublicKey{Key: otherKey(t), Comment: "ETL", ExpiresAt: now.Add(48 * time.Hour)})
	u.PasswordExpiresAt = now.AddDate(0, 0, 10)
	p := build(t, f.input())
	readme := text(t, p, ReadmeFile)
	if strings.Count(readme, "Fingerprint SHA256:") != 2 {
		t.Errorf("README should list the two keys that have not expired:\n%s", readme)
	}
	for _, want := range []string{`the key whose public half you sent us ("ETL")`, "It works until 2026-12-05 12:00 UTC.", "It works until 2026-12-13 12:00 UTC."} {
		if !strings.Contains(readme, want) {
			t.Errorf("README lacks %q", want)
		}
	}
	for _, want := range []string{"expired on 2026-12-03: it is left out", "expires on 2026-12-05 12:00 UTC", "the password of acme expires on 2026-12-13"} {
		if !slices.ContainsFunc(p.Warnings, func(w string) bool { return strings.Contains(w, want) }) {
			t.Errorf("no warning %q in %q", want, p.Warnings)
		}
	}

	// An issued key that expired is refused.
	u.PublicKeys[0].ExpiresAt = now.Add(-time.Minute)
	if _, err := Build(f.input()); err == nil || !strings.Contains(err.Error(), "not one of user") {
		t.Errorf("expired issued key: %v", err)
	}
}

func otherKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ssh.NewPublicKey(pub)
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func TestBuildRefuses(t *testing.T) {
	otherPEM := func() []byte {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		b, _ := ssh.MarshalPrivateKey(k, "")
		return pem.EncodeToMemory(b)
	}()
	for _, tc := range []struct {
		name string
		mod  func(*Input, *fixture)
		want string
	}{
		{"unknown user", func(in *Input, f *fixture) { in.User = "nobody" }, `no user "nobody"`},
		{"disabled", func(in *Input, f *fixture) { in.Config.Users[0].Disabled = true }, "is disabled"},
		{"no host", func(in *Input, f *fixture) { in.Host = "" }, "no host"},
		{"host with a space", func(in *Input, f *fixture) { in.Host = "a b" }, "not a host name"},
		{"host with a semicolon", func(in *Input, f *fixture) { in.Host = "a;rm" }, "not a host name"},
		{"port 0", func(in *Input, f *fixture) { in.Config.SFTP.Listen = "127.0.0.1:0" }, "--port sftp=N"},
		{"bad override", func(in *Input, f *fixture) { in.Ports.FTPS = 70000 }, "want 1 to 65535"},
		{"no host keys", func(in *Input, f *fixture) { in.HostKeys = nil }, "no host keys"},
		{"no certificate", func(in *Input, f *fixture) { in.Certificate = nil }, "no FTPS certificate"},
		{"no protocol", func(in *Input, f *fixture) {
			in.Config.Users[0].Protocols = []string{"ftps"}
			in.Config.Users[0].PasswordHash = ""
			in.Identities = nil
		}, "cannot connect by any protocol"},
		{"someone else's key", func(in *Input, f *fixture) { in.Identities = []Identity{{Name: "k", Data: otherPEM}} }, "not one of user"},
		{"a public key", func(in *Input, f *fixture) {
			in.Identities = []Identity{{Name: "k.pub", Data: ssh.MarshalAuthorizedKey(f.pub)}}
		}, "is a public key"},
		{"garbage", func(in *Input, f *fixture) { in.Identities = []Identity{{Name: "k", Data: []byte("hello")}} }, "not a private key"},
		{"name of a packet file", func(in *Input, f *fixture) { in.Identities = []Identity{{Name: "README.txt", Data: f.keyPEM}} }, "name of a file of the packet"},
		{"path as name", func(in *Input, f *fixture) { in.Identities = []Identity{{Name: "../k", Data: f.keyPEM}} }, "plain file name"},
		{"twice", func(in *Input, f *fixture) {
			in.Identities = []Identity{{Name: "k", Data: f.keyPEM}, {Name: "k", Data: f.keyPEM}}
		}, "given twice"},
		{"two OpenSSH keys", func(in *Input, f *fixture) {
			in.Identities = []Identity{{Name: "k", Data: f.keyPEM}, {Name: "l", Data: f.keyPEM}}
		}, "two OpenSSH private key files"},
		{"pub name taken", func(in *Input, f *fixture) {
			in.Identities = []Identity{{Name: "k", Data: f.keyPEM}, {Name: "k.pub", Data: f.ppk}}
		}, "already taken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			in := f.input()
			tc.mod(&in, f)
			_, err := Build(in)
			if err == nil || !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one with %q", err, tc.want)
			}
		})
	}
}

// TestLoopbackWarning: a listener only this machine reaches is worth a
// warning, unless the packet is for this machine too.
func TestLoopbackWarning(t *testing.T) {
	f := newFixture(t)
	f.cfg.SFTP.Listen = "127.0.0.1:2022"
	p := build(t, f.input())
	if !slices.ContainsFunc(p.Warnings, func(w string) bool { return strings.Contains(w, "only this machine can reach it") }) {
		t.Errorf("warnings %q", p.Warnings)
	}
	in := f.input()
	in.Host = "localhost"
	if p := build(t, in); len(p.Warnings) != 0 {
		t.Errorf("warnings for localhost: %q", p.Warnings)
	}
}

func TestIPv6Host(t *testing.T) {
	f := newFixture(t)
	in := f.input()
	in.Host = "2001:db8::1"
	p := build(t, in)
	if !strings.Contains(text(t, p, KnownHosts), "[2001:db8::1]:2022 ") {
		t.Errorf("known_hosts:\n%s", text(t, p, KnownHosts))
	}
	if !strings.Contains(text(t, p, CommandsFile), "sftp://[2001:db8::1]:2022/") {
		t.Errorf("commands:\n%s", text(t, p, CommandsFile))
	}
}

// TestEdwardsAffine decodes the base point, whose coordinates RFC 8032
// gives, and checks random keys against the curve equation.
func TestEdwardsAffine(t *testing.T) {
	base, _ := hex.DecodeString("5866666666666666666666666666666666666666666666666666666666666666")
	x, y, err := edwardsAffine(base)
	if err != nil {
		t.Fatal(err)
	}
	wantX, _ := new(big.Int).SetString("15112221349535400772501151409588531511454012693041857206046113283949847762202", 10)
	wantY, _ := new(big.Int).SetString("46316835694926478169428394003475163141307993866256225615783033603165251855960", 10)
	if x.Cmp(wantX) != 0 || y.Cmp(wantY) != 0 {
		t.Errorf("base point: got (%v, %v)", x, y)
	}
	p, d, _ := ed25519Curve()
	for range 50 {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		x, y, err := edwardsAffine(pub)
		if err != nil {
			t.Fatal(err)
		}
		// -x² + y² == 1 + d·x²·y² (mod p)
		xx := new(big.Int).Mul(x, x)
		yy := new(big.Int).Mul(y, y)
		lhs := new(big.Int).Sub(yy, xx)
		lhs.Mod(lhs, p)
		rhs := new(big.Int).Mul(d, new(big.Int).Mul(xx, yy))
		rhs.Add(rhs, big.NewInt(1)).Mod(rhs, p)
		if lhs.Cmp(rhs) != 0 {
			t.Fatalf("(%v, %v) is not on the curve", x, y)
		}
		if x.Bit(0) != uint(pub[31]>>7) {
			t.Fatalf("sign of x does not match the key's top bit")
		}
	}
	if _, _, err := edwardsAffine(make([]byte, 31)); err == nil {
		t.Error("short key accepted")
	}
}

func TestWinscpMunge(t *testing.T) {
	for _, tc := range []struct {
		in    string
		value bool
		want  string
	}{
		{"acme@host (SFTP)", false, "acme@host%20(SFTP)"},
		{`C:\keys\a.ppk`, true, `C:%5Ckeys%5Ca.ppk`},
		{".hidden", false, "%2Ehidden"},
		{"a.b", false, "a.b"},
		{"a*b?c%d", false, "a%2Ab%3Fc%25d"},
		{"a*b", true, "a*b"},
		{"k=v", false, "k%3Dv"},
		{"k=v", true, "k=v"},
		{"é", true, "%EF%BB%BF%C3%A9"},
	} {
		if got := winscpMunge(tc.in, tc.value); got != tc.want {
			t.Errorf("winscpMunge(%q, %v) = %q, want %q", tc.in, tc.value, got, tc.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"acme":                      "acme",
		"sha256//ab+c/d=":           "sha256//ab+c/d=",
		"set a; set b":              "'set a; set b'",
		"it's":                      `'it'\''s'`,
		"":                          "''",
		"[::1]":                     "'[::1]'",
		"~/.ssh/known_hosts":        "'~/.ssh/known_hosts'",
		"UserKnownHostsFile=x y":    "'UserKnownHostsFile=x y'",
		"https://h:1/p?q":           "'https://h:1/p?q'",
		"StrictHostKeyChecking=yes": "StrictHostKeyChecking=yes",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{"~/.ssh": "~/.ssh", "~/my keys/k": "~/'my keys/k'", "/a b": "'/a b'"} {
		if got := shellPath(in); got != want {
			t.Errorf("shellPath(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestWriteDir(t *testing.T) {
	f := newFixture(t)
	p := build(t, f.input())
	dir := filepath.Join(t.TempDir(), "packet")
	if err := p.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("folder mode %v", fi.Mode().Perm())
	}
	for _, file := range p.Files {
		fi, err := os.Stat(filepath.Join(dir, file.Name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != fs.FileMode(file.Mode) {
			t.Errorf("%s: mode %v, want %o", file.Name, fi.Mode().Perm(), file.Mode)
		}
	}
	if err := p.WriteDir(dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("second write into the same folder: %v", err)
	}
}

func TestWriteZip(t *testing.T) {
	f := newFixture(t)
	p := build(t, f.input())
	path := filepath.Join(t.TempDir(), "p.zip")
	if err := p.WriteZipFile(path, now); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("zip mode %v", fi.Mode().Perm())
	}
	if err := p.WriteZipFile(path, now); err == nil {
		t.Error("an existing zip was replaced")
	}
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != len(p.Files) {
		t.Errorf("%d entries, want %d", len(zr.File), len(p.Files))
	}
	for _, zf := range zr.File {
		name, ok := strings.CutPrefix(zf.Name, p.Name+"/")
		file := p.File(name)
		if !ok || file == nil {
			t.Errorf("unexpected entry %s", zf.Name)
			continue
		}
		if zf.Mode().Perm() != fs.FileMode(file.Mode) {
			t.Errorf("%s: mode %v, want %o", zf.Name, zf.Mode().Perm(), file.Mode)
		}
	}
}

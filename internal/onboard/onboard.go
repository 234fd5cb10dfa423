// Package onboard builds the packet a partner needs to connect for the
// first time: a README in plain words, known_hosts lines, an OpenSSH
// config block, a FileZilla Site Manager file, a WinSCP session file,
// copy-paste commands for sftp, curl and lftp, and the key files the
// operator just issued.
//
// Build is pure: the caller reads the config, the server's public
// identity (host keys, FTPS certificate) and any issued key files, and
// gets back the packet's files in memory, to write into a folder
// (WriteDir), a zip (WriteZip), or an HTTP response. It never reads a
// secret of its own accord: a private key enters a packet only when the
// caller passes it as an Identity, and only when its public half is one of
// the user's keys. Passwords never do; the packet says that one is sent
// separately.
package onboard

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
)

// The files every packet may hold, by these names.
const (
	ReadmeFile    = "README.txt"
	KnownHosts    = "known_hosts"
	SSHConfig     = "ssh_config"
	FileZillaFile = "filezilla.xml"
	WinSCPFile    = "winscp.ini"
	CommandsFile  = "commands.txt"
	CertFile      = "ftps_certificate.pem"
)

// fixedNames are the names an issued key file may not take.
var fixedNames = []string{ReadmeFile, KnownHosts, SSHConfig, FileZillaFile, WinSCPFile, CommandsFile, CertFile}

// Input is what a packet is built from.
type Input struct {
	Config *config.Config
	User   string // the user's name in Config
	// Host is the name (or address) partners connect to; the listeners'
	// own addresses are often private or 0.0.0.0.
	Host string
	// Ports overrides the ports of the listen addresses, for a daemon
	// behind NAT or a load balancer; 0: the listen address's port.
	Ports Ports
	// HostKeys are the server's public host keys (required when the user
	// may use SFTP); Certificate is the FTPS certificate (required when
	// the user may use FTPS).
	HostKeys    []ssh.PublicKey
	Certificate *x509.Certificate
	// Identities are key files just issued to the user (a private key in
	// OpenSSH format, a PuTTY .ppk), included as they are.
	Identities []Identity
	// ClientDir is where the partner will keep the packet's files on
	// their machine, written into ssh_config and the FileZilla and WinSCP
	// sessions. "": ~/.ssh for OpenSSH, and the key file's name alone for
	// the graphical clients (the README says to point them at it).
	ClientDir string
	// Now is the time the packet is made, for expiry; zero: time.Now.
	Now time.Time
	// Roots verify the FTPS certificate for Host; nil: the system's.
	Roots *x509.CertPool
}

// Ports are the ports partners connect to.
type Ports struct {
	SFTP, FTPS, FTPSImplicit int
}

// Identity is an issued key file: its name in the packet and its bytes.
type Identity struct {
	Name string
	Data []byte
}

// File is one file of a packet.
type File struct {
	Name string
	Mode uint32 // 0600 for private keys, 0644 otherwise
	Data []byte
}

// Packet is a built packet.
type Packet struct {
	// Name is a folder name for the packet, e.g. "acme-sftp.example.com".
	Name  string
	Files []File
	// Warnings are things the operator should know before sending it:
	// each a sentence (a key that expires soon, a listener on loopback).
	Warnings []string
}

// File returns the packet's file called name, or nil.
func (p *Packet) File(name string) *File {
	for i := range p.Files {
		if p.Files[i].Name == name {
			return &p.Files[i]
		}
	}
	return nil
}

// ErrInput is wrapped by every error Build returns for its input.
var ErrInput = errors.New("cannot build the onboarding packet")

func inputErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInput, fmt.Sprintf(format, args...))
}

// plan is everything the writers of the packet's files need, worked out
// once from the Input.
type plan struct {
	in   Input
	user config.User
	now  time.Time
	host string // as given
	// urlHost is host for URLs and known_hosts: "[::1]" for IPv6.
	urlHost string

	sftp, ftps, implicit int // ports offered; 0: not offered
	legacyPort           int // sftp.legacy port when the user is listed there; 0 none

	keys     []userKey // the user's keys that have not expired
	password bool      // the user has a password that has not expired

	hostKeys []ssh.PublicKey
	cert     *x509.Certificate
	certOK   bool // the certificate verifies for host with the roots

	// Issued key files, matched to the user's keys.
	openssh  string // name of an OpenSSH private key in the packet; "" none
	ppk      string // name of a .ppk in the packet; "" none
	pub      string // name of the .pub of the OpenSSH key; "" none
	issuedFP string // fingerprint of the issued key

	files    []File
	warnings []string
}

// userKey is one of the user's keys.
type userKey struct {
	key       ssh.PublicKey
	fp        string
	line      string // authorized_keys line, key type and base64 only
	comment   string
	expiresAt time.Time
}

// hostPattern is what a host name may be: it goes into commands and
// files verbatim, so nothing a shell or a parser would read differently.
var hostPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)

// Build makes the packet for in.User.
func Build(in Input) (*Packet, error) {
	p, err := newPlan(in)
	if err != nil {
		return nil, err
	}
	if err := p.identities(); err != nil {
		return nil, err
	}
	p.writeFiles()
	return &Packet{Name: safeName(p.user.Name + "-" + p.host), Files: p.files, Warnings: p.warnings}, nil
}

func newPlan(in Input) (*plan, error) {
	if in.Config == nil {
		return nil, inputErr("no config")
	}
	p := &plan{in: in, now: in.Now}
	if p.now.IsZero() {
		p.now = time.Now()
	}
	p.now = p.now.UTC()

	i := slices.IndexFunc(in.Config.Users, func(u config.User) bool { return u.Name == in.User })
	if i < 0 {
		return nil, inputErr("no user %q in the config", in.User)
	}
	p.user = in.Config.Users[i]
	if p.user.Disabled {
		return nil, inputErr("user %q is disabled: enable it first (wharf user enable %s)", in.User, in.User)
	}

	host := strings.TrimSuffix(in.Host, ".")
	switch ip := net.ParseIP(strings.Trim(host, "[]")); {
	case host == "":
		return nil, inputErr("no host: give the name partners connect to (--host)")
	case ip != nil && ip.To4() == nil:
		p.host = ip.String()
		p.urlHost = "[" + p.host + "]"
	case ip != nil:
		p.host, p.urlHost = ip.String(), ip.String()
	case hostPattern.MatchString(host):
		p.host, p.urlHost = strings.ToLower(host), strings.ToLower(host)
	default:
		return nil, inputErr("host %q is not a host name or an IP address", in.Host)
	}

	for _, k := range p.user.PublicKeys {
		key, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(k.Key))
		if err != nil {
			return nil, inputErr("user %q: a public key does not parse (run wharf config check)", in.User)
		}
		uk := userKey{key: key, fp: ssh.FingerprintSHA256(key), comment: k.Comment, expiresAt: k.ExpiresAt}
		uk.line = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
		if uk.comment == "" {
			uk.comment = comment
		}
		if !uk.expiresAt.IsZero() && !uk.expiresAt.After(p.now) {
			p.warn("key %s of %s expired on %s: it is left out of the packet", uk.fp, in.User, day(uk.expiresAt))
			continue
		}
		p.keys = append(p.keys, uk)
	}
	if p.user.PasswordHash != "" {
		exp := p.user.PasswordExpiresAt
		if !exp.IsZero() && !exp.After(p.now) {
			p.warn("the password of %s expired on %s: set a new one (wharf user passwd %s)", in.User, day(exp), in.User)
		} else {
			p.password = true
		}
	}

	if err := p.listeners(); err != nil {
		return nil, err
	}
	if p.sftp != 0 {
		if len(in.HostKeys) == 0 {
			return nil, inputErr("no host keys given for SFTP")
		}
		p.hostKeys = sortHostKeys(in.HostKeys)
	}
	if p.ftps != 0 || p.implicit != 0 {
		if in.Certificate == nil {
			return nil, inputErr("no FTPS certificate given")
		}
		p.cert = in.Certificate
		_, err := p.cert.Verify(x509.VerifyOptions{DNSName: p.host, Roots: in.Roots, CurrentTime: p.now})
		p.certOK = err == nil
		if !p.cert.NotAfter.After(p.now) {
			p.warn("the FTPS certificate expired on %s: FTPS clients will refuse it", day(p.cert.NotAfter))
		} else if p.cert.NotAfter.Sub(p.now) < 30*24*time.Hour {
			p.warn("the FTPS certificate expires on %s", day(p.cert.NotAfter))
		}
	}
	for _, k := range p.keys {
		if !k.expiresAt.IsZero() && k.expiresAt.Sub(p.now) < 14*24*time.Hour {
			p.warn("key %s of %s expires on %s", k.fp, in.User, when(k.expiresAt))
		}
	}
	if p.password && !p.user.PasswordExpiresAt.IsZero() && p.user.PasswordExpiresAt.Sub(p.now) < 14*24*time.Hour {
		p.warn("the password of %s expires on %s", in.User, when(p.user.PasswordExpiresAt))
	}
	return p, nil
}

// listeners decides which protocols and ports the packet offers: a
// listener that is configured, a protocol the user may use, and a
// credential that works with it.
func (p *plan) listeners() error {
	cfg := p.in.Config
	may := func(proto string) bool { return p.user.Protocols == nil || slices.Contains(p.user.Protocols, proto) }
	var why []string
	switch {
	case !may("sftp"):
		why = append(why, "SFTP: not among the user's protocols")
	case cfg.SFTP.Listen == "":
		why = append(why, "SFTP: no sftp.listen")
	case len(p.keys) == 0 && !p.password:
		why = append(why, "SFTP: the user has no key or password that works")
	default:
		port, err := p.port("sftp.listen", cfg.SFTP.Listen, p.in.Ports.SFTP, "sftp")
		if err != nil {
			return err
		}
		p.sftp = port
		if l := cfg.SFTP.Legacy; l.Listen != "" && slices.Contains(l.Users, p.user.Name) {
			if _, ps, err := net.SplitHostPort(l.Listen); err == nil {
				if n, _ := strconv.Atoi(ps); n > 0 {
					p.legacyPort = n
				}
			}
		}
	}
	ftpsWhy := func() string {
		switch {
		case !may("ftps"):
			return "not among the user's protocols"
		case !p.password:
			return "FTPS logs in with a password, and the user has none that works"
		}
		return ""
	}()
	switch {
	case cfg.FTPS.Listen == "" && cfg.FTPS.ImplicitListen == "":
		why = append(why, "FTPS: no ftps.listen")
	case ftpsWhy != "":
		why = append(why, "FTPS: "+ftpsWhy)
	default:
		var err error
		if cfg.FTPS.Listen != "" {
			if p.ftps, err = p.port("ftps.listen", cfg.FTPS.Listen, p.in.Ports.FTPS, "ftps"); err != nil {
				return err
			}
		}
		if cfg.FTPS.ImplicitListen != "" {
			if p.implicit, err = p.port("ftps.implicit_listen", cfg.FTPS.ImplicitListen, p.in.Ports.FTPSImplicit, "ftps-implicit"); err != nil {
				return err
			}
		}
	}
	if p.sftp == 0 && p.ftps == 0 && p.implicit == 0 {
		return inputErr("user %q cannot connect by any protocol (%s)", p.user.Name, strings.Join(why, "; "))
	}
	for _, w := range why {
		if !strings.HasPrefix(w, "FTPS: no ftps.listen") && !strings.HasPrefix(w, "SFTP: no sftp.listen") {
			p.warn("%s: left out of the packet", w)
		}
	}
	return nil
}

// port is the port partners use for the listener at addr: override, else
// addr's. A listener on loopback is reachable only from this machine,
// which the operator is told.
func (p *plan) port(field, addr string, override int, flag string) (int, error) {
	h, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, inputErr("%s %q: %v", field, addr, err)
	}
	if isLoopback(h) && !isLoopback(p.host) {
		p.warn("%s is %s: only this machine can reach it", field, addr)
	}
	if override != 0 {
		if override < 1 || override > 65535 {
			return 0, inputErr("port %d for %s: want 1 to 65535", override, flag)
		}
		return override, nil
	}
	n, err := strconv.Atoi(ps)
	if err != nil || n < 0 || n > 65535 {
		return 0, inputErr("%s %q: bad port", field, addr)
	}
	if n == 0 {
		return 0, inputErr("%s %q has port 0 (the kernel picks one at start): give the port partners use (--port %s=N)", field, addr, flag)
	}
	return n, nil
}

// isLoopback reports whether host names this machine only.
func isLoopback(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	return strings.EqualFold(host, "localhost")
}

func (p *plan) warn(format string, args ...any) {
	p.warnings = append(p.warnings, fmt.Sprintf(format, args...))
}

func (p *plan) add(name string, mode uint32, data []byte) {
	p.files = append(p.files, File{Name: name, Mode: mode, Data: data})
}

// writeFiles makes every file of the packet.
func (p *plan) writeFiles() {
	p.add(ReadmeFile, 0o644, p.readme())
	if p.sftp != 0 {
		p.add(KnownHosts, 0o644, p.knownHosts())
		p.add(SSHConfig, 0o644, p.sshConfig())
	}
	p.add(FileZillaFile, 0o644, p.filezilla())
	p.add(WinSCPFile, 0o644, p.winscp())
	p.add(CommandsFile, 0o644, p.commands())
	if p.cert != nil {
		p.add(CertFile, 0o644, certPEM(p.cert))
	}
	p.addIdentities()
}

// sortHostKeys puts Ed25519 first, then ECDSA, then RSA: the order
// clients prefer, and the key a single pin (curl's --hostpubsha256)
// names first.
func sortHostKeys(keys []ssh.PublicKey) []ssh.PublicKey {
	rank := func(k ssh.PublicKey) int {
		switch t := k.Type(); {
		case t == ssh.KeyAlgoED25519:
			return 0
		case strings.HasPrefix(t, "ecdsa-"):
			return 1
		default:
			return 2
		}
	}
	out := slices.Clone(keys)
	slices.SortStableFunc(out, func(a, b ssh.PublicKey) int { return rank(a) - rank(b) })
	return out
}

// day formats a time as a date in UTC.
func day(t time.Time) string { return t.UTC().Format("2006-01-02") }

// when formats a time in UTC to the minute.
func when(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// safeName keeps letters, digits, '.', '_', '@' and '-' of s.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '@', r == '-':
			return r
		}
		return '_'
	}, s)
}

// clientPath is where the partner keeps the packet file name: in
// ClientDir, else (dflt non-empty) in dflt, else the name alone. A
// ClientDir that looks like a Windows path is joined with a backslash.
func (p *plan) clientPath(name, dflt string) string {
	dir := p.in.ClientDir
	if dir == "" {
		dir = dflt
	}
	switch {
	case dir == "":
		return name
	case strings.Contains(dir, `\`) || (len(dir) >= 2 && dir[1] == ':'):
		return strings.TrimRight(dir, `\`) + `\` + name
	default:
		return path.Join(dir, name)
	}
}

package onboard

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"net"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Placeholders in commands the partner completes.
const (
	// FilePlaceholder stands for the partner's file in transfer commands.
	FilePlaceholder = "FILE"
	// KeyPlaceholder stands for the partner's own private key when no key
	// was issued in the packet.
	KeyPlaceholder = "YOUR_PRIVATE_KEY"
)

// knownHosts is one known_hosts line per host key, for each SFTP port.
func (p *plan) knownHosts() []byte {
	var b bytes.Buffer
	for _, port := range p.sshPorts() {
		addr := knownhosts.Normalize(net.JoinHostPort(p.host, strconv.Itoa(port)))
		for _, k := range p.hostKeys {
			b.WriteString(knownhosts.Line([]string{addr}, k))
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// sshPorts are the SFTP ports the user may connect to: the main one,
// and the legacy listener's when the user is listed there.
func (p *plan) sshPorts() []int {
	ports := []int{p.sftp}
	if p.legacyPort != 0 && p.legacyPort != p.sftp {
		ports = append(ports, p.legacyPort)
	}
	return ports
}

// sshAlias is the Host name of the ssh_config block.
func (p *plan) sshAlias() string { return p.host + "-" + p.user.Name }

// sshConfig is a Host block for ~/.ssh/config.
func (p *plan) sshConfig() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s on %s, made %s. Append this block to ~/.ssh/config, then connect with:\n", p.user.Name, p.host, day(p.now))
	fmt.Fprintf(&b, "#   sftp %s\n", p.sshAlias())
	fmt.Fprintf(&b, "Host %s\n", p.sshAlias())
	fmt.Fprintf(&b, "    HostName %s\n", p.host)
	fmt.Fprintf(&b, "    Port %d\n", p.sftp)
	fmt.Fprintf(&b, "    User %s\n", p.user.Name)
	switch {
	case p.openssh != "":
		fmt.Fprintf(&b, "    IdentityFile %s\n", sshQuote(p.clientPath(p.openssh, "~/.ssh")))
		b.WriteString("    IdentitiesOnly yes\n")
	case len(p.keys) > 0:
		fmt.Fprintf(&b, "    # IdentityFile %s   (your private key: the one whose public half you sent us)\n", sshQuote(p.clientPath(KeyPlaceholder, "~/.ssh")))
	default:
		b.WriteString("    PreferredAuthentications password,keyboard-interactive\n")
	}
	fmt.Fprintf(&b, "    UserKnownHostsFile %s\n", sshQuote(p.clientPath(KnownHosts, "~/.ssh")))
	b.WriteString("    StrictHostKeyChecking yes\n")
	return b.Bytes()
}

// sshQuote quotes a path for ssh_config when it holds a space.
func sshQuote(s string) string {
	if strings.ContainsAny(s, " \t") {
		return `"` + s + `"`
	}
	return s
}

// FileZilla's enums, as its Site Manager stores them (engine/server.h;
// the values never change, or saved sites would break).
const (
	fzSFTP     = 1
	fzFTPS     = 3 // implicit TLS
	fzFTPES    = 4 // explicit TLS (AUTH TLS)
	fzLogonAsk = 2 // ask for the password on connect; none is stored
	fzLogonInt = 3 // interactive: keys from the settings or an agent
	fzLogonKey = 5 // key file
)

type fzFile struct {
	XMLName xml.Name   `xml:"FileZilla3"`
	Servers []fzServer `xml:"Servers>Server"`
}

type fzServer struct {
	Host      string `xml:"Host"`
	Port      int    `xml:"Port"`
	Protocol  int    `xml:"Protocol"`
	Type      int    `xml:"Type"`
	User      string `xml:"User"`
	Keyfile   string `xml:"Keyfile,omitempty"`
	Logontype int    `xml:"Logontype"`
	PasvMode  string `xml:"PasvMode,omitempty"`
	Encoding  string `xml:"EncodingType"`
	Bypass    int    `xml:"BypassProxy"`
	Name      string `xml:"Name"`
	Comments  string `xml:"Comments,omitempty"`
}

// filezilla is a Site Manager import file (File > Import): one site per
// protocol the user may use. It stores no password.
func (p *plan) filezilla() []byte {
	var f fzFile
	site := func(proto string, protocol, port, logon int, keyfile, comments string) {
		s := fzServer{Host: p.host, Port: port, Protocol: protocol, User: p.user.Name, Keyfile: keyfile, Logontype: logon,
			Encoding: "Auto", Name: fmt.Sprintf("%s on %s (%s)", p.user.Name, p.host, proto), Comments: comments}
		if protocol != fzSFTP {
			s.PasvMode = "MODE_PASSIVE"
		}
		f.Servers = append(f.Servers, s)
	}
	if p.sftp != 0 {
		logon, key := fzLogonAsk, ""
		switch {
		case p.ppk != "":
			logon, key = fzLogonKey, p.clientPath(p.ppk, "")
		case p.openssh != "":
			logon, key = fzLogonKey, p.clientPath(p.openssh, "")
		case len(p.keys) > 0:
			logon = fzLogonInt
		}
		site("SFTP", fzSFTP, p.sftp, logon, key, "Host key: "+p.fingerprintList(puttyFingerprint))
	}
	if p.ftps != 0 {
		site("FTPS", fzFTPES, p.ftps, fzLogonAsk, "", "Certificate SHA-256: "+certSHA256(p.cert))
	}
	if p.implicit != 0 {
		site("FTPS implicit", fzFTPS, p.implicit, fzLogonAsk, "", "Certificate SHA-256: "+certSHA256(p.cert))
	}
	out, err := xml.MarshalIndent(f, "", "  ")
	if err != nil {
		panic(err) // plain structs of strings and ints always marshal
	}
	return append(append([]byte(xml.Header), out...), '\n')
}

// WinSCP's enums, as its sessions store them (core/SessionData.h).
const (
	winscpSFTPOnly    = 2 // FSProtocol: SFTP without SCP fallback
	winscpFTP         = 5
	winscpFtpsImplict = 1 // Ftps
	winscpFtpsExplTLS = 3
)

// winscp is an INI file of WinSCP sites (Login > Tools > Import Sites >
// INI file), each with the fingerprints to accept (SshHostKey), and the
// host keys in the form of WinSCP's (and PuTTY's) cache, which an import
// copies too, so that the first connection shows no prompt.
func (p *plan) winscp() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "; WinSCP sites for %s on %s, made %s.\r\n", p.user.Name, p.host, day(p.now))
	b.WriteString("; Import: WinSCP Login dialog > Tools > Import Sites > Import from: INI file.\r\n")
	b.WriteString("; No password is stored: WinSCP asks for it.\r\n")
	session := func(proto string, kv [][2]string) {
		fmt.Fprintf(&b, "\r\n[Sessions\\%s]\r\n", winscpMunge(fmt.Sprintf("%s@%s (%s)", p.user.Name, p.host, proto), false))
		for _, e := range kv {
			fmt.Fprintf(&b, "%s=%s\r\n", e[0], e[1])
		}
	}
	common := func(port int) [][2]string {
		return [][2]string{
			{"HostName", winscpMunge(p.host, true)},
			{"PortNumber", strconv.Itoa(port)},
			{"UserName", winscpMunge(p.user.Name, true)},
		}
	}
	if p.sftp != 0 {
		kv := append(common(p.sftp), [2]string{"FSProtocol", strconv.Itoa(winscpSFTPOnly)})
		if key := p.ppk; key != "" || p.openssh != "" {
			if key == "" {
				key = p.openssh // WinSCP offers to convert it to .ppk
			}
			kv = append(kv, [2]string{"PublicKeyFile", winscpMunge(p.clientPath(key, ""), true)})
		}
		kv = append(kv, [2]string{"SshHostKey", winscpMunge(p.fingerprintList(winscpFingerprint), true)})
		session("SFTP", kv)
	}
	for _, f := range []struct {
		proto      string
		port, mode int
	}{{"FTPS", p.ftps, winscpFtpsExplTLS}, {"FTPS implicit", p.implicit, winscpFtpsImplict}} {
		if f.port == 0 {
			continue
		}
		kv := append(common(f.port),
			[2]string{"FSProtocol", strconv.Itoa(winscpFTP)},
			[2]string{"Ftps", strconv.Itoa(f.mode)},
			[2]string{"FtpPasvMode", "1"},
			// For FTPS, SshHostKey holds the certificate fingerprint.
			[2]string{"SshHostKey", winscpMunge(certSHA256(p.cert), true)})
		session(f.proto, kv)
	}
	if p.sftp != 0 {
		b.WriteString("\r\n[SshHostKeys]\r\n")
		for _, port := range p.sshPorts() {
			for _, k := range p.hostKeys {
				if name, value, ok := puttyCacheEntry(k, p.host, port); ok {
					fmt.Fprintf(&b, "%s=%s\r\n", winscpMunge(name, false), value)
				}
			}
		}
	}
	return b.Bytes()
}

// winscpMunge escapes a WinSCP INI key name or string value as WinSCP
// (with PuTTY's escape_registry_key) does: %XX for a space, '\', '*', '?',
// '%', control and non-ASCII bytes, and a leading '.'; a value keeps its
// '*'. Text that is not ASCII is stored as UTF-8 after an escaped BOM.
func winscpMunge(s string, value bool) string {
	const hexDigits = "0123456789ABCDEF"
	in := []byte(s)
	for _, c := range in {
		if c > '~' {
			in = append([]byte("\xEF\xBB\xBF"), in...)
			break
		}
	}
	var b strings.Builder
	for i, c := range in {
		if c == ' ' || c == '\\' || (c == '*' && !value) || c == '?' || c == '%' || c < ' ' || c > '~' || (c == '.' && i == 0) || (c == '=' && !value) {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// fingerprintList is the host keys' fingerprints in the given form,
// separated by ';' as WinSCP takes several.
func (p *plan) fingerprintList(form func(ssh.PublicKey) string) string {
	out := make([]string, len(p.hostKeys))
	for i, k := range p.hostKeys {
		out[i] = form(k)
	}
	return strings.Join(out, ";")
}

// certSHA256 is the certificate's SHA-256 fingerprint as FileZilla,
// WinSCP and wharf's log show it: lowercase hex bytes joined by ':'.
func certSHA256(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return colonHex(sum[:], false)
}

// certSHA1 is the certificate's SHA-1 fingerprint as lftp names a
// certificate in ssl:verify-certificate/FINGERPRINT: uppercase hex bytes
// joined by ':'.
func certSHA1(c *x509.Certificate) string {
	sum := sha1.Sum(c.Raw)
	return colonHex(sum[:], true)
}

// certPin is curl's --pinnedpubkey value for the certificate's key.
func certPin(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "sha256//" + base64.StdEncoding.EncodeToString(sum[:])
}

func colonHex(b []byte, upper bool) string {
	h := hex.EncodeToString(b)
	if upper {
		h = strings.ToUpper(h)
	}
	parts := make([]string, 0, len(b))
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// hostPin is curl's --hostpubsha256 value for the first host key.
func (p *plan) hostPin() string {
	sum := sha256.Sum256(p.hostKeys[0].Marshal())
	return base64.StdEncoding.EncodeToString(sum[:])
}

// commandSection is one group of copy-paste commands.
type commandSection struct {
	title string
	lines []string
}

// commandSections are the commands for sftp, curl and lftp, to run from
// the packet's folder. FILE stands for the partner's file.
func (p *plan) commandSections() []commandSection {
	var out []commandSection
	user := p.user.Name
	if p.sftp != 0 {
		var auth []string
		key := p.openssh
		switch {
		case key != "":
			auth = []string{"-i", key, "-o", "IdentitiesOnly=yes"}
		case len(p.keys) > 0:
			key = KeyPlaceholder
			auth = []string{"-i", key, "-o", "IdentitiesOnly=yes"}
		default:
			auth = []string{"-o", "PreferredAuthentications=password,keyboard-interactive"}
		}
		target := user + "@" + p.urlHost
		args := []string{"sftp", "-P", strconv.Itoa(p.sftp)}
		args = append(args, auth...)
		args = append(args, "-o", "UserKnownHostsFile="+KnownHosts, "-o", "StrictHostKeyChecking=yes")
		if strings.Contains(user, "@") {
			args = append(args, "-o", "User="+user)
			target = p.urlHost
		}
		out = append(out, commandSection{
			title: "SFTP with OpenSSH: an interactive session (put FILE, get FILE, ls, help, bye)",
			lines: []string{shellJoin(append(args, target))},
		})

		base := fmt.Sprintf("sftp://%s:%d/", p.urlHost, p.sftp)
		curl := []string{"curl", "-sS", "--hostpubsha256", p.hostPin()}
		title := "SFTP with curl: upload FILE, list your folder, download FILE"
		if key != "" {
			curl = append(curl, "--user", user+":", "--key", key, "--pubkey", key+".pub")
		} else {
			curl = append(curl, "--user", user)
			title += " (each asks for your password)"
		}
		out = append(out, commandSection{title: title, lines: []string{
			shellJoin(append(curl, "-T", FilePlaceholder, base)),
			shellJoin(append(curl, base)),
			shellJoin(append(curl, "-o", FilePlaceholder, base+FilePlaceholder)),
		}})
	}
	if p.ftps != 0 || p.implicit != 0 {
		settings := []string{"set ftp:ssl-force true", "set ftp:ssl-protect-data true", "set ftp:passive-mode true"}
		curl := []string{"curl", "-sS", "--ssl-reqd", "--user", user}
		if !p.certOK {
			// The certificate does not verify for this host name (it is
			// self-signed, or for another name): trust exactly this one.
			settings = append(settings, "set ssl:verify-certificate/"+certSHA1(p.cert)+" no")
			curl = append(curl, "--insecure", "--pinnedpubkey", certPin(p.cert))
		}
		var lftp []string
		var base string
		if p.ftps != 0 {
			lftp = []string{"lftp", "-u", user, "-p", strconv.Itoa(p.ftps), "-e", strings.Join(settings, "; "), p.host}
			base = fmt.Sprintf("ftp://%s:%d/", p.urlHost, p.ftps)
		} else {
			lftp = []string{"lftp", "-u", user, "-e", strings.Join(settings, "; "), fmt.Sprintf("ftps://%s:%d", p.urlHost, p.implicit)}
			base = fmt.Sprintf("ftps://%s:%d/", p.urlHost, p.implicit)
		}
		out = append(out,
			commandSection{
				title: "FTPS with lftp: an interactive session (asks for your password; then put FILE, get FILE, ls, help, bye)",
				lines: []string{shellJoin(lftp)},
			},
			commandSection{
				title: "FTPS with curl: upload FILE, list your folder, download FILE (each asks for your password)",
				lines: []string{
					shellJoin(append(curl, "-T", FilePlaceholder, base)),
					shellJoin(append(curl, base)),
					shellJoin(append(curl, "-o", FilePlaceholder, base+FilePlaceholder)),
				},
			})
	}
	return out
}

// commands is commands.txt: the sections, each a "# title" line, its
// commands, and a blank line.
func (p *plan) commands() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Commands for %s on %s. Run them in a terminal, in the folder of this packet\n", p.user.Name, p.host)
	fmt.Fprintf(&b, "# (cd into it first); replace %s with the name of your file.\n\n", FilePlaceholder)
	for _, s := range p.commandSections() {
		fmt.Fprintf(&b, "# %s\n", s.title)
		for _, l := range s.lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// shellJoin joins words into a POSIX shell command line, quoting the
// words that need it.
func shellJoin(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = shellQuote(w)
	}
	return strings.Join(out, " ")
}

// shellPath quotes a path for the shell, leaving a leading "~/" outside
// the quotes so that the shell still expands it.
func shellPath(s string) string {
	if rest, ok := strings.CutPrefix(s, "~/"); ok {
		if rest == "" {
			return "~/"
		}
		return "~/" + shellQuote(rest)
	}
	if s == "~" {
		return s
	}
	return shellQuote(s)
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

package onboard

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// permWord says what a permission lets the partner do.
func permWord(name string) string {
	switch name {
	case "list":
		return "see the list of files"
	case "download":
		return "download files"
	case "upload":
		return "upload new files"
	case "overwrite":
		return "replace or change existing files"
	case "delete":
		return "delete files and empty folders"
	case "rename":
		return "rename and move files"
	case "mkdir":
		return "create folders"
	}
	return name
}

// readme is README.txt: everything in plain words, for someone who has
// never connected to us.
func (p *plan) readme() []byte {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	title := fmt.Sprintf("Connecting to %s as %s", p.host, p.user.Name)
	w("%s\n%s\n", title, strings.Repeat("=", len(title)))
	w("Prepared %s.", day(p.now))
	if p.openssh != "" || p.ppk != "" {
		w("This folder holds your private key: keep it to yourself, and do not send it back to us or to anyone.")
	}
	w("")

	w("WHERE")
	w("  Server      %s", p.host)
	w("  User name   %s", p.user.Name)
	if p.sftp != 0 {
		w("  SFTP        port %d (SFTP: the SSH File Transfer Protocol)", p.sftp)
		if p.legacyPort != 0 && p.legacyPort != p.sftp {
			w("              port %d as well, for older programs that fail on port %d", p.legacyPort, p.sftp)
		}
	}
	if p.ftps != 0 {
		w("  FTPS        port %d, explicit TLS (\"FTP over TLS\", \"FTPES\", AUTH TLS), passive mode", p.ftps)
	}
	if p.implicit != 0 {
		w("  FTPS        port %d, implicit TLS, passive mode", p.implicit)
	}
	w("  Plain FTP (without TLS) is not offered.")
	w("")

	p.readmeFolder(w)
	p.readmeLogin(w)
	p.readmeCheck(w)
	p.readmeClients(w)

	w("FILES IN THIS PACKET")
	for _, f := range p.fileList() {
		w("  %-22s %s", f[0], f[1])
	}
	return b.Bytes()
}

func (p *plan) readmeFolder(w func(string, ...any)) {
	w("YOUR FOLDER")
	w("  When you log in you are in your own folder, shown as \"/\". You see only your files, and")
	w("  nobody else sees them.")
	var may, mayNot []string
	for _, name := range vfs.PermNames() {
		if p.user.Permissions == nil || slices.Contains(p.user.Permissions, name) {
			may = append(may, permWord(name))
		} else {
			mayNot = append(mayNot, permWord(name))
		}
	}
	if len(may) > 0 {
		para(w, "  ", "You may "+joinWords(may)+".")
	} else {
		w("  You may not do anything in it yet: ask us.")
	}
	if len(mayNot) > 0 && len(may) > 0 {
		para(w, "  ", "You may not "+joinWords(mayNot)+".")
	}
	if n := p.user.MaxUploadSize; n > 0 {
		w("  A file you upload may be at most %s.", sizeWords(int64(n)))
	}
	if len(p.user.AllowedIPs) > 0 {
		para(w, "  ", "You may connect only from these addresses: "+strings.Join(p.user.AllowedIPs, ", ")+".")
	}
	w("")
}

func (p *plan) readmeLogin(w func(string, ...any)) {
	w("HOW YOU LOG IN")
	if p.sftp != 0 {
		for _, k := range p.keys {
			what := "SFTP with the key whose public half you sent us"
			if k.fp == p.issuedFP {
				names := []string{}
				if p.openssh != "" {
					names = append(names, p.openssh+" (OpenSSH, curl)")
				}
				if p.ppk != "" {
					names = append(names, p.ppk+" (PuTTY, WinSCP, FileZilla)")
				}
				what = "SFTP with the key in this packet: " + strings.Join(names, " and ")
			} else if k.comment != "" {
				what += fmt.Sprintf(" (%q)", k.comment)
			}
			para(w, "  ", what+".")
			if k.expiresAt.IsZero() {
				w("    Fingerprint %s. It does not expire.", k.fp)
			} else {
				w("    Fingerprint %s. It works until %s.", k.fp, when(k.expiresAt))
			}
		}
	}
	if p.password {
		var protos []string
		if p.sftp != 0 {
			protos = append(protos, "SFTP")
		}
		if p.ftps != 0 || p.implicit != 0 {
			protos = append(protos, "FTPS")
		}
		w("  %s with your password, which we send you separately (never in this packet).", strings.Join(protos, " and "))
		if exp := p.user.PasswordExpiresAt; !exp.IsZero() {
			w("    It works until %s.", when(exp))
		}
		if p.ftps != 0 || p.implicit != 0 {
			w("    FTPS always logs in with the password.")
		}
	}
	w("")
}

func (p *plan) readmeCheck(w func(string, ...any)) {
	w("CHECK THE SERVER BEFORE YOU LOG IN")
	w("  The first time you connect, your program may show the server's fingerprint and ask")
	w("  whether to trust it. Compare it with the ones below. If it differs, do not log in: call us.")
	if p.sftp != 0 {
		w("  SFTP host keys (your program shows one of them):")
		for _, k := range p.hostKeys {
			w("    %s", puttyFingerprint(k))
		}
		w("  known_hosts, ssh_config and winscp.ini already hold them: with those, nothing is asked.")
	}
	if p.cert != nil {
		w("  FTPS certificate, SHA-256 fingerprint:")
		w("    %s", certSHA256(p.cert))
		w("  It is valid until %s.", day(p.cert.NotAfter))
		if !p.certOK {
			w("  It is not signed by a public certificate authority for %s, so your program will warn", p.host)
			w("  that it is not trusted: accept it only if the fingerprint matches. The commands below")
			w("  accept exactly this certificate and no other.")
		}
		switch pp := p.in.Config.FTPS.PassivePorts; pp {
		case "":
			w("  FTPS transfers use a second connection to a port the server picks (passive mode): your")
			w("  firewall must let you connect to %s on any port above 1023.", p.dataHost())
		default:
			w("  FTPS transfers use a second connection (passive mode) to one of the ports %s: your", pp)
			w("  firewall must let you connect to %s on those ports.", p.dataHost())
		}
	}
	w("")
}

// dataHost is where FTPS data connections go: public_host when set.
func (p *plan) dataHost() string {
	if h := p.in.Config.FTPS.PublicHost; h != "" {
		return h
	}
	return p.host
}

func (p *plan) readmeClients(w func(string, ...any)) {
	if p.sftp != 0 {
		dir := p.clientPath("", "~/.ssh")
		w("OPENSSH (sftp in a terminal: Linux, macOS, Windows 10 and later)")
		w("  Once, from this folder:")
		step := 1
		w("  %d. mkdir -p %s", step, shellPath(dir))
		step++
		if p.openssh != "" {
			key := p.clientPath(p.openssh, "~/.ssh")
			w("  %d. cp %s %s && chmod 600 %s", step, shellQuote(p.openssh), shellPath(key), shellPath(key))
			step++
		} else if len(p.keys) > 0 {
			w("  %d. In ssh_config, set IdentityFile to your private key (and remove the #).", step)
			step++
		}
		w("  %d. cat known_hosts >> %s", step, shellPath(p.clientPath(KnownHosts, "~/.ssh")))
		step++
		w("  %d. cat ssh_config >> %s", step, shellPath(p.clientPath("config", "~/.ssh")))
		w("  Then connect with:  sftp %s", p.sshAlias())
		w("")
	}

	keyStep := func(where string) {
		key := p.ppk
		if key == "" {
			key = p.openssh
		}
		switch {
		case key != "" && p.in.ClientDir == "":
			para(w, "  ", fmt.Sprintf("Save %s somewhere only you can read. After the import, %s, point it at that file.", key, where))
		case key != "":
			para(w, "  ", fmt.Sprintf("The sites expect the key at %s: save it there.", p.clientPath(key, "")))
		case len(p.keys) > 0:
			para(w, "  ", fmt.Sprintf("Log in with your own key: %s, point it at your private key.", where))
		}
	}
	w("FILEZILLA")
	w("  File > Import..., choose filezilla.xml, tick \"Site Manager\", OK. The sites are named")
	w("  \"%s on %s (...)\" in the Site Manager.", p.user.Name, p.host)
	if p.sftp != 0 {
		keyStep("in File > Site Manager, select the SFTP site; in \"Key file\"")
	}
	w("  FileZilla asks to trust the server on the first connection: compare the fingerprint (above).")
	w("")

	w("WINSCP")
	w("  Login window > Tools > Import Sites..., \"Import from\": INI file, choose winscp.ini, tick")
	w("  the sites, OK. They already know the server's fingerprints.")
	if p.sftp != 0 {
		keyStep("select the SFTP site, Edit > Advanced > SSH > Authentication; in \"Private key file\"")
	}
	w("")

	w("COMMAND LINE (sftp, curl, lftp)")
	w("  Run these in a terminal, in this folder; replace %s with the name of your file.", FilePlaceholder)
	w("  They are in commands.txt too.")
	for _, s := range p.commandSections() {
		w("")
		para(w, "  ", s.title+":")
		for _, l := range s.lines {
			w("    %s", l)
		}
	}
	w("")
}

// fileList names the packet's files and says what each is for.
func (p *plan) fileList() [][2]string {
	out := [][2]string{{ReadmeFile, "this text"}}
	if p.sftp != 0 {
		out = append(out,
			[2]string{KnownHosts, "the server's host keys, for OpenSSH"},
			[2]string{SSHConfig, "a Host block for ~/.ssh/config"})
	}
	out = append(out,
		[2]string{FileZillaFile, "sites for FileZilla (File > Import)"},
		[2]string{WinSCPFile, "sites for WinSCP (Tools > Import Sites)"},
		[2]string{CommandsFile, "the commands above"})
	if p.cert != nil {
		out = append(out, [2]string{CertFile, "the server's FTPS certificate (public)"})
	}
	if p.openssh != "" {
		out = append(out, [2]string{p.openssh, "your private key (OpenSSH format): keep it secret"})
	}
	if p.ppk != "" {
		out = append(out, [2]string{p.ppk, "your private key (PuTTY format): keep it secret"})
	}
	if p.pub != "" {
		out = append(out, [2]string{p.pub, "its public half (we have it already)"})
	}
	return out
}

// readmeWidth is where README paragraphs wrap.
const readmeWidth = 92

// para writes text as lines of at most readmeWidth characters (a longer
// word stands alone), each starting with indent.
func para(w func(string, ...any), indent, text string) {
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > readmeWidth {
			w("%s", line)
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	if len(line) > len(indent) {
		w("%s", line)
	}
}

// joinWords joins ["a", "b", "c"] as "a, b and c".
func joinWords(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// sizeWords writes a byte count in the largest binary unit it fills.
func sizeWords(n int64) string {
	units := []string{"bytes", "KiB", "MiB", "GiB", "TiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d %s", int64(f), units[i])
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

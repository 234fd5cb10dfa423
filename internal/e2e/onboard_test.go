package e2e

// `wharf user onboard` end to end: a packet built from a running daemon's
// config, then used as a partner would, with the real clients: its
// known_hosts and ssh_config with OpenSSH under StrictHostKeyChecking=yes,
// its commands with curl and lftp as written, its .ppk and host key with
// PuTTY's psftp (which shares WinSCP's SSH core), its WinSCP host key cache
// entries with psftp too, and its FileZilla and WinSCP files parsed.

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/xml"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// onboardPacket runs `wharf user onboard` for u with the daemon's ports
// (its listeners are on port 0, so the packet is told the ports, as an
// operator behind NAT would) and returns its stdout and stderr. args are
// more flags (--out, --zip, --identity, --client-dir).
func onboardPacket(t *testing.T, f *ftpsDaemon, u *testUser, args ...string) (stdout, stderr string) {
	t.Helper()
	all := append([]string{"user", "onboard", u.Name, "--config", f.ConfigPath, "--host", "127.0.0.1",
		"--port", "sftp=" + strconv.Itoa(f.Port), "--port", "ftps=" + f.ExplicitPort(),
		"--port", "ftps-implicit=" + f.ImplicitPort()}, args...)
	stdout, stderr, err := runCmdOpts(t, time.Minute, cmdOpts{Dir: t.TempDir()}, wharfBin, all...)
	if err != nil {
		t.Fatalf("wharf user onboard: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	return stdout, stderr
}

// issuePartner adds the user name with `wharf user add --generate-key
// --generate-password`, waits until the daemon has it, and returns it as
// a testUser (the issued OpenSSH key, the printed password) and the
// issued .ppk's path.
func issuePartner(t *testing.T, d *daemon, name string) (*testUser, string) {
	t.Helper()
	keys := filepath.Join(t.TempDir(), "issued")
	mark := d.LogMark()
	out := wharfUser(t, d.ConfigPath, "", "add", name, "--home", "/"+name, "--generate-key", "--out", keys, "--generate-password")
	_, password, ok := strings.Cut(out, "(shown once; wharf stores only its hash): ")
	if !ok {
		t.Fatalf("wharf user add printed no password:\n%s", out)
	}
	u := &testUser{Name: name, Home: "/" + name, KeyFile: filepath.Join(keys, name+"_ed25519"), Password: strings.TrimSpace(strings.SplitN(password, "\n", 2)[0])}
	pub, err := os.ReadFile(u.KeyFile + ".pub")
	if err != nil {
		t.Fatalf("wharf user add --generate-key: %v\n%s", err, out)
	}
	if u.pub, _, _, _, err = ssh.ParseAuthorizedKey(pub); err != nil {
		t.Fatal(err)
	}
	u.PubKey = strings.TrimSpace(string(pub))
	d.WaitLogSince(t, mark, logMatch("msg", "config reloaded"), 10*time.Second)
	return u, u.KeyFile + ".ppk"
}

// packetCommands reads commands.txt: each "# title" line and the command
// lines after it, by title.
func packetCommands(t *testing.T, dir string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "commands.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	title := ""
	for line := range strings.SplitSeq(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "# "):
			title = strings.TrimPrefix(line, "# ")
		case line != "" && title != "":
			out[title] = append(out[title], line)
		}
	}
	return out
}

// section returns the commands whose title starts with prefix.
func section(t *testing.T, cmds map[string][]string, prefix string) []string {
	t.Helper()
	for title, lines := range cmds {
		if strings.HasPrefix(title, prefix) {
			return lines
		}
	}
	t.Fatalf("commands.txt has no section %q; it has %v", prefix, cmds)
	return nil
}

// partnerEnv keeps the developer's agent, lftp settings and PuTTY cache
// out of a partner's command.
func partnerEnv(t *testing.T) []string {
	return []string{"HOME=" + t.TempDir(), "SSH_AUTH_SOCK=", "SHELL=/bin/sh"}
}

// runPacketCommand runs one command line of the packet with sh, in the
// packet's folder, FILE replaced by file.
func runPacketCommand(t *testing.T, dir, line, file, stdin string) (stdout, stderr string, err error) {
	t.Helper()
	line = strings.ReplaceAll(line, "FILE", file)
	return runCmdOpts(t, clientTimeout, cmdOpts{Dir: dir, Stdin: stdin, Env: partnerEnv(t)}, "/bin/sh", "-c", line)
}

// runOnTerminal runs a packet command under script(1), which gives it a
// terminal: lftp and curl ask for the password there, as they would ask
// the partner. typed is what the partner types.
func runOnTerminal(t *testing.T, dir, line, file, typed string) (string, error) {
	t.Helper()
	script := requireClient(t, "script")
	line = strings.ReplaceAll(line, "FILE", file)
	stdout, stderr, err := runCmdOpts(t, clientTimeout, cmdOpts{Dir: dir, Stdin: typed, Env: partnerEnv(t)}, script, "-qec", line, "/dev/null")
	return stdout + stderr, err
}

func TestOnboard(t *testing.T) {
	f := startFTPS(t, []*testUser{newUser(t, "ops")}, ftpsOpts{})
	// The partner exists only through wharf: a key pair and a password
	// issued by `wharf user add`, then the packet.
	alice, ppk := issuePartner(t, f.daemon, "alice")
	home := f.HomeDir(alice)
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	clientDir := filepath.Join(work, "partner ssh") // a space: quoting must hold
	packet := filepath.Join(work, "packet")
	_, stderr := onboardPacket(t, f, alice, "--out", packet, "--identity", alice.KeyFile, "--identity", ppk, "--client-dir", clientDir)
	if stderr != "" {
		t.Errorf("warnings for a healthy setup:\n%s", stderr)
	}
	keyName := filepath.Base(alice.KeyFile)
	ppkName := filepath.Base(ppk)
	for name, mode := range map[string]os.FileMode{"README.txt": 0o644, "known_hosts": 0o644, "ssh_config": 0o644,
		"filezilla.xml": 0o644, "winscp.ini": 0o644, "commands.txt": 0o644, "ftps_certificate.pem": 0o644,
		keyName: 0o600, ppkName: 0o600, keyName + ".pub": 0o644} {
		fi, err := os.Stat(filepath.Join(packet, name))
		if err != nil {
			t.Errorf("packet: %v", err)
		} else if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	readme, err := os.ReadFile(filepath.Join(packet, "README.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{f.HostKeyFP, f.CertFP, alice.Fingerprint(), "port " + strconv.Itoa(f.Port),
		"port " + f.ExplicitPort() + ", explicit TLS", "port " + f.ImplicitPort() + ", implicit TLS",
		strconv.Itoa(f.PassiveLo) + "-" + strconv.Itoa(f.PassiveHi)} {
		if !bytes.Contains(readme, []byte(want)) {
			t.Errorf("README lacks %q", want)
		}
	}
	if bytes.Contains(readme, []byte(alice.Password)) {
		t.Fatal("README holds the password")
	}
	cmds := packetCommands(t, packet)

	t.Run("OpenSSHConfig", func(t *testing.T) {
		// The README's steps, in the folder the packet was made for.
		for _, step := range []string{
			"mkdir -p " + shQuote(clientDir),
			"cp " + keyName + " " + shQuote(filepath.Join(clientDir, keyName)) + " && chmod 600 " + shQuote(filepath.Join(clientDir, keyName)),
			"cat known_hosts >> " + shQuote(filepath.Join(clientDir, "known_hosts")),
			"cat ssh_config >> " + shQuote(filepath.Join(clientDir, "config")),
		} {
			if !bytes.Contains(readme, []byte(step)) {
				t.Errorf("README lacks the step %q", step)
			}
			if _, stderr, err := runPacketCommand(t, packet, step, "", ""); err != nil {
				t.Fatalf("%s: %v\n%s", step, err, stderr)
			}
		}
		local := filepath.Join(work, "via-config")
		sum := writeRandomFile(t, local, 1<<20)
		sftp := requireClient(t, "sftp")
		alias := "127.0.0.1-alice"
		batch := writeBatch(t, "put "+local+" /via-config\nls\n")
		stdout, stderr, err := runCmdOpts(t, clientTimeout, cmdOpts{Env: partnerEnv(t)}, sftp,
			"-F", filepath.Join(clientDir, "config"), "-o", "GlobalKnownHostsFile=/dev/null", "-b", batch, alias)
		if err != nil {
			t.Fatalf("sftp %s: %v\nstdout:\n%s\nstderr:\n%s", alias, err, stdout, stderr)
		}
		checkSum(t, "upload through ssh_config", filepath.Join(home, "via-config"), sum)

		// StrictHostKeyChecking=yes: with another key for the host in
		// known_hosts, the same command refuses to connect.
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		other, _ := ssh.NewPublicKey(pub)
		wrong := knownhosts.Line([]string{knownhosts.Normalize("127.0.0.1:" + strconv.Itoa(f.Port))}, other) + "\n"
		if err := os.WriteFile(filepath.Join(clientDir, "known_hosts"), []byte(wrong), 0o644); err != nil {
			t.Fatal(err)
		}
		_, stderr, err = runCmdOpts(t, clientTimeout, cmdOpts{Env: partnerEnv(t)}, sftp,
			"-F", filepath.Join(clientDir, "config"), "-o", "GlobalKnownHostsFile=/dev/null", "-b", batch, alias)
		if err == nil || !strings.Contains(stderr, "Host key verification failed") {
			t.Errorf("a wrong host key was accepted: %v\n%s", err, stderr)
		}
	})

	t.Run("SFTPCommand", func(t *testing.T) {
		lines := section(t, cmds, "SFTP with OpenSSH")
		name := "sftp-cmd.bin"
		sum := writeRandomFile(t, filepath.Join(packet, name), 256<<10)
		stdout, stderr, err := runPacketCommand(t, packet, lines[0], name, "put "+name+"\nls\nbye\n")
		if err != nil {
			t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", lines[0], err, stdout, stderr)
		}
		checkSum(t, "upload with the packet's sftp command", filepath.Join(home, name), sum)
	})

	t.Run("CurlSFTP", func(t *testing.T) {
		requireClient(t, "curl")
		lines := section(t, cmds, "SFTP with curl")
		if len(lines) != 3 {
			t.Fatalf("want upload, list, download: %q", lines)
		}
		name := "curl-sftp.bin"
		src := filepath.Join(packet, name)
		sum := writeRandomFile(t, src, 300<<10)
		for i, line := range lines {
			if i == 2 {
				if err := os.Remove(src); err != nil { // the download writes it again
					t.Fatal(err)
				}
			}
			stdout, stderr, err := runPacketCommand(t, packet, line, name, "")
			if err != nil {
				t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", line, err, stdout, stderr)
			}
			if i == 1 && !strings.Contains(stdout, name) {
				t.Errorf("listing lacks %s:\n%s", name, stdout)
			}
		}
		checkSum(t, "curl sftp upload", filepath.Join(home, name), sum)
		checkSum(t, "curl sftp download", src, sum)

		// The host key pin holds: another pin, and curl refuses.
		bad := strings.Replace(lines[1], "--hostpubsha256 ", "--hostpubsha256 AAAA", 1)
		if _, _, err := runPacketCommand(t, packet, bad, name, ""); err == nil {
			t.Error("curl accepted the host key under another pin")
		}
	})

	t.Run("LftpFTPS", func(t *testing.T) {
		requireClient(t, "lftp")
		lines := section(t, cmds, "FTPS with lftp")
		name := "lftp-ftps.bin"
		sum := writeRandomFile(t, filepath.Join(packet, name), 200<<10)
		out, err := runOnTerminal(t, packet, lines[0], name, alice.Password+"\nput "+name+"\nls\nbye\n")
		if err != nil {
			t.Fatalf("%s: %v\n%s", lines[0], err, redact(out, alice.Password))
		}
		checkSum(t, "lftp upload", filepath.Join(home, name), sum)
		if !strings.Contains(out, name) {
			t.Errorf("lftp's ls lacks %s:\n%s", name, redact(out, alice.Password))
		}
		// Another certificate fingerprint: lftp refuses the certificate.
		bad := strings.Replace(lines[0], "ssl:verify-certificate/", "ssl:verify-certificate/00:", 1)
		out, _ = runOnTerminal(t, packet, bad, name, alice.Password+"\nls\nbye\n")
		if !strings.Contains(out, "Certificate verification") {
			t.Errorf("lftp accepted the certificate without its pin:\n%s", redact(out, alice.Password))
		}
	})

	t.Run("CurlFTPS", func(t *testing.T) {
		requireClient(t, "curl")
		lines := section(t, cmds, "FTPS with curl")
		if len(lines) != 3 {
			t.Fatalf("want upload, list, download: %q", lines)
		}
		name := "curl-ftps.bin"
		src := filepath.Join(packet, name)
		sum := writeRandomFile(t, src, 300<<10)
		for i, line := range lines {
			if i == 2 {
				if err := os.Remove(src); err != nil {
					t.Fatal(err)
				}
			}
			out, err := runOnTerminal(t, packet, line, name, alice.Password+"\n")
			if err != nil {
				t.Fatalf("%s: %v\n%s", line, err, redact(out, alice.Password))
			}
			if i == 1 && !strings.Contains(out, name) {
				t.Errorf("listing lacks %s:\n%s", name, redact(out, alice.Password))
			}
		}
		checkSum(t, "curl ftps upload", filepath.Join(home, name), sum)
		checkSum(t, "curl ftps download", src, sum)
		bad := strings.Replace(lines[1], "--pinnedpubkey sha256//", "--pinnedpubkey sha256//AAAA", 1)
		if out, err := runOnTerminal(t, packet, bad, name, alice.Password+"\n"); err == nil {
			t.Errorf("curl accepted the certificate under another pin:\n%s", redact(out, alice.Password))
		}
	})

	t.Run("PSFTP", func(t *testing.T) {
		// The packet's .ppk, and a host key fingerprint as the README
		// gives it, pinned with -hostkey.
		var fps []string
		for line := range strings.SplitSeq(string(readme), "\n") {
			if fields := strings.Fields(line); len(fields) == 3 && strings.HasPrefix(fields[0], "ssh-") && strings.HasPrefix(fields[2], "SHA256:") {
				fps = append(fps, strings.TrimSpace(line))
			}
		}
		if len(fps) != 2 {
			t.Fatalf("README lists %d host key fingerprints, want 2: %q", len(fps), fps)
		}
		// psftp picks the Ed25519 key, which the README lists first; one
		// pin is what a partner pastes.
		if !strings.HasSuffix(fps[0], " "+f.HostKeyFP) {
			t.Errorf("README lists %q first, want the daemon's Ed25519 key %s", fps[0], f.HostKeyFP)
		}
		stdout, stderr, err := psftpRun(t, f.daemon, alice, fps[0], []string{"-i", filepath.Join(packet, ppkName)}, "ls\n", false)
		if err != nil || !strings.Contains(stdout, psftpLoggedIn) {
			t.Errorf("psftp -hostkey %q: %v\nstdout:\n%s\nstderr:\n%s", fps[0], err, stdout, stderr)
		}
	})

	t.Run("WinSCP", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(packet, "winscp.ini"))
		if err != nil {
			t.Fatal(err)
		}
		ini := parseWinSCP(t, data)
		sftp := ini[`Sessions\alice@127.0.0.1 (SFTP)`]
		ftps := ini[`Sessions\alice@127.0.0.1 (FTPS)`]
		implicit := ini[`Sessions\alice@127.0.0.1 (FTPS implicit)`]
		if sftp == nil || ftps == nil || implicit == nil {
			t.Fatalf("sessions missing:\n%s", data)
		}
		edFP := strings.TrimPrefix(f.HostKeyFP, "SHA256:")
		for _, c := range []struct {
			got  map[string]string
			want map[string]string
		}{
			{sftp, map[string]string{"HostName": "127.0.0.1", "PortNumber": strconv.Itoa(f.Port), "UserName": "alice",
				"FSProtocol": "2", "PublicKeyFile": filepath.Join(clientDir, ppkName)}},
			{ftps, map[string]string{"HostName": "127.0.0.1", "PortNumber": f.ExplicitPort(), "UserName": "alice",
				"FSProtocol": "5", "Ftps": "3", "FtpPasvMode": "1", "SshHostKey": f.CertFP}},
			{implicit, map[string]string{"PortNumber": f.ImplicitPort(), "FSProtocol": "5", "Ftps": "1", "SshHostKey": f.CertFP}},
		} {
			for k, v := range c.want {
				if c.got[k] != v {
					t.Errorf("%s = %q, want %q", k, c.got[k], v)
				}
			}
		}
		if !strings.HasPrefix(sftp["SshHostKey"], "ssh-ed25519 255 "+edFP+";ssh-rsa 3072 ") {
			t.Errorf("SshHostKey = %q, want the daemon's Ed25519 key (%s) first", sftp["SshHostKey"], edFP)
		}

		// The [SshHostKeys] entries are PuTTY's host key cache: psftp,
		// given them as its cache and no -hostkey, connects in batch mode
		// (where an unknown key is fatal).
		cache := ini["SshHostKeys"]
		if len(cache) != 2 {
			t.Fatalf("SshHostKeys: %v", cache)
		}
		puttyHome := t.TempDir()
		var b strings.Builder
		for k, v := range cache {
			b.WriteString(k + " " + v + "\n")
		}
		if err := os.MkdirAll(filepath.Join(puttyHome, ".putty"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(puttyHome, ".putty", "sshhostkeys"), []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		psftp := requireClient(t, "psftp")
		args := []string{"-P", strconv.Itoa(f.Port), "-batch", "-noagent", "-i", filepath.Join(packet, ppkName),
			"-b", writeBatch(t, "ls\n"), "-bc", target(alice)}
		stdout, stderr, err := runCmdOpts(t, clientTimeout, cmdOpts{Env: []string{"HOME=" + puttyHome}}, psftp, args...)
		if err != nil || !strings.Contains(stdout, psftpLoggedIn) {
			t.Errorf("psftp with winscp.ini's host key cache: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
		}
		// The same cache with the Ed25519 entry's numbers changed: psftp,
		// which prefers the key type it has cached, refuses the server's
		// key (so the entries are what let it in above).
		var broken strings.Builder
		for k, v := range cache {
			if strings.HasPrefix(k, "ssh-ed25519@") {
				v = strings.Replace(v, "0x", "0x1", 1)
			}
			broken.WriteString(k + " " + v + "\n")
		}
		if err := os.WriteFile(filepath.Join(puttyHome, ".putty", "sshhostkeys"), []byte(broken.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := runCmdOpts(t, clientTimeout, cmdOpts{Env: []string{"HOME=" + puttyHome}}, psftp, args...); err == nil {
			t.Error("psftp connected with a corrupted host key cache")
		}
	})

	t.Run("FileZilla", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(packet, "filezilla.xml"))
		if err != nil {
			t.Fatal(err)
		}
		var fz struct {
			XMLName xml.Name `xml:"FileZilla3"`
			Servers []struct {
				Host, User, Keyfile, Name, Pass string
				Port, Protocol, Logontype       int
			} `xml:"Servers>Server"`
		}
		if err := xml.Unmarshal(data, &fz); err != nil {
			t.Fatalf("filezilla.xml: %v\n%s", err, data)
		}
		type site struct {
			host, user, key  string
			port, proto, log int
		}
		want := []site{
			{"127.0.0.1", "alice", filepath.Join(clientDir, ppkName), f.Port, 1, 5}, // SFTP, key file
			{"127.0.0.1", "alice", "", atoi(t, f.ExplicitPort()), 4, 2},             // FTPES, ask for the password
			{"127.0.0.1", "alice", "", atoi(t, f.ImplicitPort()), 3, 2},             // FTPS implicit
		}
		if len(fz.Servers) != len(want) {
			t.Fatalf("%d sites, want %d", len(fz.Servers), len(want))
		}
		for i, s := range fz.Servers {
			if got := (site{s.Host, s.User, s.Keyfile, s.Port, s.Protocol, s.Logontype}); got != want[i] {
				t.Errorf("site %d: %+v, want %+v", i, got, want[i])
			}
			if s.Name == "" || s.Pass != "" {
				t.Errorf("site %d: name %q, a password stored: %v", i, s.Name, s.Pass != "")
			}
		}
	})

	t.Run("Zip", func(t *testing.T) {
		zipPath := filepath.Join(t.TempDir(), "alice.zip")
		onboardPacket(t, f, alice, "--zip", zipPath, "--identity", alice.KeyFile, "--identity", ppk, "--client-dir", clientDir)
		zr, err := zip.OpenReader(zipPath)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		entries, _ := os.ReadDir(packet)
		var onDisk []string
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".bin") { // the subtests' files
				onDisk = append(onDisk, "alice-127.0.0.1/"+e.Name())
			}
		}
		var inZip []string
		for _, zf := range zr.File {
			inZip = append(inZip, zf.Name)
			if strings.HasSuffix(zf.Name, "/"+keyName) && zf.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v in the zip", zf.Name, zf.Mode().Perm())
			}
		}
		slices.Sort(onDisk)
		slices.Sort(inZip)
		if !slices.Equal(onDisk, inZip) {
			t.Errorf("zip holds %v, the folder %v", inZip, onDisk)
		}
	})

	t.Run("NothingWrittenUnasked", func(t *testing.T) {
		cwd := t.TempDir()
		all := []string{"user", "onboard", "alice", "--config", f.ConfigPath, "--host", "127.0.0.1",
			"--port", "sftp=" + strconv.Itoa(f.Port), "--port", "ftps=" + f.ExplicitPort(), "--port", "ftps-implicit=" + f.ImplicitPort()}
		stdout, stderr, err := runCmdOpts(t, time.Minute, cmdOpts{Dir: cwd}, wharfBin, all...)
		if err != nil || !strings.HasPrefix(stdout, "Connecting to 127.0.0.1 as alice") {
			t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
		}
		if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
			t.Errorf("onboard without --out or --zip wrote %d files", len(entries))
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		bob := newUser(t, "bob") // a key that is not alice's
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--identity", bob.KeyFile}, "not one of user \"alice\"'s keys"},
			{[]string{"--identity", alice.KeyFile + ".pub"}, "is a public key"},
			{[]string{"--out", packet}, "not empty"},
			{[]string{"--port", "scp=22"}, "want sftp, ftps or ftps-implicit"},
			{[]string{"--out", filepath.Join(t.TempDir(), "a"), "--zip", filepath.Join(t.TempDir(), "b")}, "none of the others can be"},
		} {
			all := append([]string{"user", "onboard", "alice", "--config", f.ConfigPath, "--host", "127.0.0.1",
				"--port", "sftp=" + strconv.Itoa(f.Port), "--port", "ftps=" + f.ExplicitPort(), "--port", "ftps-implicit=" + f.ImplicitPort()}, c.args...)
			_, stderr, err := runCmd(t, time.Minute, wharfBin, all...)
			if exitCode(err) != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("%v: exit %d, stderr %q; want exit 1 and %q", c.args, exitCode(err), stderr, c.want)
			}
		}
		// Without --port, port 0 in the config is an error naming the flag.
		_, stderr, err := runCmd(t, time.Minute, wharfBin, "user", "onboard", "alice", "--config", f.ConfigPath, "--host", "127.0.0.1")
		if exitCode(err) != 1 || !strings.Contains(stderr, "--port sftp=N") {
			t.Errorf("port 0: exit %d, %q", exitCode(err), stderr)
		}
	})
}

// TestOnboardBeforeFirstStart: a daemon that never ran has no host keys
// yet; onboard says so, and generates nothing.
func TestOnboardBeforeFirstStart(t *testing.T) {
	alice := newUser(t, "alice")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}, Deferred: true})
	_, stderr, err := runCmd(t, time.Minute, wharfBin, "user", "onboard", "alice", "--config", d.ConfigPath,
		"--host", "sftp.example.com", "--port", "sftp=22")
	if exitCode(err) != 1 || !strings.Contains(stderr, "start it once") {
		t.Errorf("exit %d, stderr %q; want exit 1 and an error saying to start the daemon once", exitCode(err), stderr)
	}
	if _, err := os.Stat(d.StateDir); err == nil {
		t.Error("onboard created state_dir")
	}
}

// parseWinSCP reads winscp.ini into section -> key -> value, undoing
// WinSCP's %XX escapes.
func parseWinSCP(t *testing.T, data []byte) map[string]map[string]string {
	t.Helper()
	unescape := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] == '%' && i+2 < len(s) {
				if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
					b.WriteByte(byte(n))
					i += 2
					continue
				}
			}
			b.WriteByte(s[i])
		}
		return b.String()
	}
	out := map[string]map[string]string{}
	var cur map[string]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case line == "" || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			cur = map[string]string{}
			out[unescape(strings.Trim(line, "[]"))] = cur
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || cur == nil {
				t.Fatalf("winscp.ini: bad line %q", line)
			}
			cur[unescape(k)] = unescape(v)
		}
	}
	return out
}

// shQuote quotes a path as the packet's README does (it has a space).
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

package doctor

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/regfile"
)

// What the daemon keeps in state_dir, by the names packages daemon, sftpd
// and ftpd give them (TestHealthyDaemon fails when they drift apart).
const (
	stateLockFile   = "wharf.lock"
	generatedCert   = "ftps_cert.pem"
	generatedTLSKey = "ftps_key.pem"
)

// generatedKeys are the host keys the daemon makes in state_dir when
// sftp.host_keys names none.
var generatedKeys = []string{"ssh_host_ed25519_key", "ssh_host_rsa_key"}

// maxSecretFile bounds a host key or PEM file the doctor reads.
const maxSecretFile = 1 << 20

// checkStateDir: state_dir exists, is a folder closed to others, is the
// doctor's user's (or the doctor is root), and a daemon holds its lock.
func (r *runner) checkStateDir() {
	start := time.Now()
	dir := r.cfg.StateDir
	res := Result{Check: CheckStateDir, Target: dir}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		res.Status, res.Message = Fail, "does not exist"
		res.Fix = "start wharf once (it creates state_dir with mode 0700), or set state_dir to the folder the daemon uses"
	case err != nil:
		res.Status, res.Message = Fail, err.Error()
		res.Fix = "run wharf doctor as the user wharf runs as"
	case !fi.IsDir():
		res.Status, res.Message = Fail, "is not a folder"
		res.Fix = "point state_dir at a folder of its own (wharf creates it with mode 0700)"
	case fi.Mode().Perm()&0o022 != 0:
		res.Status = Fail
		res.Message = fmt.Sprintf("mode %04o: other users can write here, where the host keys and the daemon's state live", fi.Mode().Perm())
		res.Fix = "chmod 700 " + dir
	case fi.Mode().Perm()&0o077 != 0:
		res.Status = Warn
		res.Message = fmt.Sprintf("mode %04o: other users can list the daemon's state", fi.Mode().Perm())
		res.Fix = "chmod 700 " + dir
	default:
		res.Status, res.Message = OK, fmt.Sprintf("a folder, mode %04o", fi.Mode().Perm())
	}
	if fi != nil && res.Status != Fail {
		if uid, ok := ownerOf(fi); ok && uid != os.Geteuid() && os.Geteuid() != 0 {
			res.Status = Fail
			res.Message = fmt.Sprintf("owned by %s, but wharf doctor runs as %s", userName(uid), userName(os.Geteuid()))
			res.Fix = fmt.Sprintf("run wharf doctor as %s, the user wharf runs as (sudo -u %s wharf doctor ...)", userName(uid), userName(uid))
		} else if ok && uid != os.Geteuid() {
			res.Message += fmt.Sprintf(", owned by %s (the doctor, as root, gives its pass files to that user)", userName(uid))
		}
	}
	r.add(start, res)
	if fi == nil || !fi.IsDir() {
		r.add(start, Result{Check: CheckDaemon, Target: dir, Status: Skip, Message: "no state_dir to look at"})
		return
	}
	r.checkDaemon(start)
}

// checkDaemon: a process holds state_dir's lock, as a running daemon does.
func (r *runner) checkDaemon(start time.Time) {
	lock := filepath.Join(r.cfg.StateDir, stateLockFile)
	res := Result{Check: CheckDaemon, Target: r.cfg.StateDir}
	pid, held, err := lockHolder(lock)
	switch {
	case err != nil:
		res.Status, res.Message = Skip, "cannot tell whether a daemon runs: "+err.Error()
	case !held:
		r.daemonDown = true
		res.Status, res.Message = Fail, "no wharf daemon runs on this state_dir"
		res.Fix = "start it (wharf serve --config " + r.report.Config + ", or systemctl start wharf) and look at its log if it stops"
	case pid > 0:
		res.Status, res.Message = OK, fmt.Sprintf("process %d holds state_dir's lock", pid)
	default:
		res.Status, res.Message = OK, "a process (in another PID namespace) holds state_dir's lock"
	}
	r.add(start, res)
}

// checkHostKeys: each host key file is there, closed to others, and
// parses; their public halves pin the SFTP round trip's host key.
func (r *runner) checkHostKeys() {
	if r.cfg.SFTP.Listen == "" && r.cfg.SFTP.Legacy.Listen == "" {
		return
	}
	files := r.cfg.SFTP.HostKeys
	if len(files) == 0 {
		if r.cfg.StateURL != "" {
			r.add(time.Now(), Result{Check: CheckHostKey, Target: r.cfg.StateURL, Status: Skip,
				Message: "the fleet's host keys live in state_url; the SFTP round trip shows the one served"})
			return
		}
		for _, g := range generatedKeys {
			files = append(files, filepath.Join(r.cfg.StateDir, g))
		}
	}
	for _, f := range files {
		start := time.Now()
		res := Result{Check: CheckHostKey, Target: f}
		data, mode, err := readSecret(f)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			res.Status, res.Message = Fail, "missing"
			res.Fix = "restore it from a backup (a restart would make a new key, and every partner would have to accept its fingerprint)"
		case err != nil:
			res.Status, res.Message = Fail, err.Error()
			res.Fix = "run wharf doctor as the user wharf runs as, and make the file readable by that user only"
		case mode&0o077 != 0:
			res.Status = Fail
			res.Message = fmt.Sprintf("mode %04o: other users can read this private key", mode)
			res.Fix = "chmod 600 " + f
		}
		if data != nil {
			// Parsed whatever its mode: the round trip pins what it holds.
			signer, perr := ssh.ParsePrivateKey(data)
			switch {
			case perr != nil && res.Status == "":
				res.Status, res.Message = Fail, "not a private key wharf can use: "+perr.Error()
				res.Fix = "replace it with an unencrypted OpenSSH private key (ssh-keygen -t ed25519 -N '' -f " + f + ")"
			case perr == nil:
				pub := signer.PublicKey()
				r.hostKeys = append(r.hostKeys, string(pub.Marshal()))
				if res.Status == "" {
					res.Status = OK
					res.Message = fmt.Sprintf("%s %s, mode %04o", pub.Type(), ssh.FingerprintSHA256(pub), mode)
				}
			}
		}
		r.add(start, res)
	}
}

// readSecret reads a private key file (bounded, regular) and its mode.
func readSecret(path string) ([]byte, fs.FileMode, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	data, err := regfile.Read(path, maxSecretFile)
	if err != nil {
		return nil, 0, err
	}
	return data, fi.Mode().Perm(), nil
}

// checkCertificate: the FTPS certificate and key make a pair, the key is
// closed to others, and the certificate is valid now and for how long.
func (r *runner) checkCertificate() {
	f := r.cfg.FTPS
	if f.Listen == "" && f.ImplicitListen == "" {
		return
	}
	start := time.Now()
	certFile, keyFile := f.CertFile, f.KeyFile
	generated := certFile == "" && keyFile == ""
	if generated {
		if r.cfg.StateURL != "" {
			r.add(start, Result{Check: CheckCertificate, Target: r.cfg.StateURL, Status: Skip,
				Message: "the fleet's self-signed certificate lives in state_url; the FTPS round trip shows the one served"})
			return
		}
		certFile = filepath.Join(r.cfg.StateDir, generatedCert)
		keyFile = filepath.Join(r.cfg.StateDir, generatedTLSKey)
	}
	res := Result{Check: CheckCertificate, Target: certFile}
	renew := "renew it and put the new certificate in " + certFile + " (wharf reads it again within seconds, no restart)"
	if generated {
		renew = "remove " + certFile + " and " + keyFile + " and restart wharf to make a new self-signed one (partners must then accept its fingerprint), or set ftps.cert_file and ftps.key_file"
	}
	certPEM, err := regfile.Read(certFile, maxSecretFile)
	var keyPEM []byte
	var keyMode fs.FileMode
	if err == nil {
		keyPEM, keyMode, err = readSecret(keyFile)
	}
	var pair tls.Certificate
	if err == nil {
		pair, err = tls.X509KeyPair(certPEM, keyPEM)
	}
	var leaf *x509.Certificate
	if err == nil {
		leaf, err = x509.ParseCertificate(pair.Certificate[0])
	}
	now := r.o.Now()
	switch {
	case errors.Is(err, fs.ErrNotExist) && generated:
		res.Status, res.Message = Fail, "missing: "+err.Error()
		res.Fix = "start wharf once (it makes a self-signed certificate in state_dir), or set ftps.cert_file and ftps.key_file"
	case errors.Is(err, fs.ErrNotExist):
		res.Status, res.Message = Fail, err.Error()
		res.Fix = "point ftps.cert_file and ftps.key_file at the certificate chain and its key (PEM)"
	case err != nil:
		res.Status = Fail
		res.Message = fmt.Sprintf("the certificate and key (%s) are not a usable pair: %v", keyFile, err)
		res.Fix = "put the certificate chain (PEM) in " + certFile + " and its private key in " + keyFile + "; until then wharf serves the last good pair it read"
	case keyMode&0o077 != 0:
		res.Status = Fail
		res.Message = fmt.Sprintf("the private key %s has mode %04o: other users can read it", keyFile, keyMode)
		res.Fix = "chmod 600 " + keyFile
	case now.After(leaf.NotAfter):
		res.Status = Fail
		res.Message = fmt.Sprintf("expired on %s (%s ago): FTPS clients refuse it", day(leaf.NotAfter), ago(now.Sub(leaf.NotAfter)))
		res.Fix = renew
	case now.Before(leaf.NotBefore):
		res.Status = Fail
		res.Message = fmt.Sprintf("not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
		res.Fix = "check the clock (see the clock check), or wait for the certificate's start"
	case leaf.NotAfter.Sub(now) < r.o.ExpiryWarning:
		res.Status = Warn
		res.Message = fmt.Sprintf("expires on %s, in %s", day(leaf.NotAfter), ago(leaf.NotAfter.Sub(now)))
		res.Fix = renew
	default:
		res.Status = OK
		res.Message = fmt.Sprintf("%q, valid until %s (%d days), SHA-256 %s", leaf.Subject.CommonName, day(leaf.NotAfter),
			int(leaf.NotAfter.Sub(now).Hours()/24), colonHex(pair.Certificate[0]))
	}
	if err == nil {
		r.certFP = colonHex(pair.Certificate[0])
	}
	r.add(start, res)
}

// colonHex is a certificate's fingerprint as wharf logs it: the SHA-256
// of its DER, lowercase hex bytes joined by colons.
func colonHex(der []byte) string {
	sum := sha256.Sum256(der)
	h := hex.EncodeToString(sum[:])
	parts := make([]string, 0, len(sum))
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// ago says a duration in the largest unit that keeps it readable.
func ago(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	default:
		return d.Round(time.Second).String()
	}
}

// userName is a user's login name, or its uid when it has none.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(uid)
}

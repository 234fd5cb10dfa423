// Package pass is the one-time identity of a `wharf doctor` run: how the
// doctor logs in to the daemon running on the same state_dir for its SFTP
// and FTPS round trips without a user in the config.
//
// # Design
//
// The doctor makes an ed25519 key pair and a 256-bit random password in
// its own memory, and writes into state_dir/doctor/ two files, mode 0600
// in a folder of mode 0700: ID.key holds the public key, ID.password the
// SHA-256 of the password, each with an expiry TTL from now. ID is 128
// random bits in hex; the user name is "doctor:ID". The daemon's login
// gate hands every login for a "doctor:" name to a Verifier instead of
// the user directory. The Verifier admits it only when all of these hold:
//
//   - the connection comes from this machine: a loopback address or one of
//     its own interface addresses (after the PROXY protocol, if trusted,
//     has named the real client);
//   - the name is "doctor:" and 32 lowercase hex digits, and the file for
//     the method (key or password) exists in state_dir/doctor, which is a
//     real folder (not a link), owned by the daemon's own user, and the file
//     is a regular file owned by that user, neither of them open to group
//     or others;
//   - the pass has not expired and claims no more than TTL of life;
//   - the key is the one in the file, or the password hashes to the
//     digest in it;
//   - the daemon removes the file, and that removal succeeds: two logins
//     racing for one pass get one session, and a pass works once per
//     method.
//
// The session it opens lives in a scratch home, /.wharf-doctor/ID on the
// configured storage, chosen by the daemon from ID (never read from the
// file), with the permissions to list, download, upload, overwrite and
// delete there and an upload cap of MaxUpload. The doctor removes the
// scratch home when it is done; the daemon removes any passes left in
// state_dir/doctor when it starts.
//
// # Threats
//
//   - Someone on the network: refused before any file is read, whatever
//     the name, key or password; "doctor:" names cannot be configured
//     users (a user name may not contain ':'), so no partner is shadowed.
//   - Another local account: cannot create or change files in a folder
//     owned by the daemon's user with mode 0700, and a folder or file it
//     managed to put there anyway (a state_dir open to others) is refused
//     for its owner or mode. It cannot read the private key or the
//     password, which never leave the doctor's memory; the file holds only
//     a public key and a digest of 256 random bits, of no use to a guesser.
//   - The daemon's own user (or root): can already read the host keys, the
//     config and all storage, so minting a pass gives it nothing new; the
//     pass still reaches only an empty scratch folder, for at most TTL.
//   - Replay: each pass file is consumed by the login it admits.
//   - A stray or old pass: it expires after TTL, a pass claiming a longer
//     life is refused, and the daemon clears the folder when it starts.
//
// Nothing of a pass enters the config, users_dir or the user directory: a
// reload never sees it, `wharf user list` never shows it.
package pass

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

const (
	// Dir is the folder of passes in state_dir.
	Dir = "doctor"
	// UserPrefix starts every doctor user name; a configured user name
	// cannot contain ':'.
	UserPrefix = "doctor:"
	// TTL is how long a pass lives: a round trip takes a second or two.
	TTL = 2 * time.Minute
	// HomeRoot holds the scratch homes, one per pass.
	HomeRoot = "/.wharf-doctor"
	// MaxUpload caps what a doctor session may write: the probe is 64 KiB.
	MaxUpload = 1 << 20

	idLen        = 32 // hex digits of a pass ID
	keySuffix    = ".key"
	pwSuffix     = ".password"
	maxPassFile  = 4 << 10
	clockLeeway  = 5 * time.Second // between the doctor's now and the daemon's
	passwordSize = 32
)

// file is one pass file's content.
type file struct {
	ExpiresAt time.Time `json:"expires_at"`
	// PublicKey is an authorized_keys line (ID.key).
	PublicKey string `json:"public_key,omitempty"`
	// PasswordSHA256 is the hex SHA-256 of the password (ID.password).
	PasswordSHA256 string `json:"password_sha256,omitempty"`
}

// Pass is a doctor run's identity: its secrets live only here.
type Pass struct {
	ID       string
	User     string // UserPrefix + ID
	Home     string // the scratch home the daemon gives the session
	Signer   ssh.Signer
	Password string
	files    []string
}

// Issue makes a pass and writes its two files into stateDir's Dir,
// creating that folder (mode 0700) if needed. When run as root for a
// state_dir owned by another user (the daemon's), the folder and files are
// given to that user, whom the daemon runs as. Withdraw removes the files
// the daemon did not consume.
func Issue(stateDir string, now time.Time) (*Pass, error) {
	st, err := os.Stat(stateDir)
	if err != nil {
		return nil, fmt.Errorf("doctor pass: state_dir: %w", err)
	}
	uid, gid, _ := owner(st)
	dir := filepath.Join(stateDir, Dir)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("doctor pass: %w", err)
	}
	if err := giveTo(dir, uid, gid); err != nil {
		return nil, err
	}
	var idb [idLen / 2]byte
	pw := make([]byte, passwordSize)
	_, _ = rand.Read(idb[:]) // crypto/rand.Read never fails on Linux
	_, _ = rand.Read(pw)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("doctor pass: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("doctor pass: %w", err)
	}
	p := &Pass{ID: hex.EncodeToString(idb[:]), Signer: signer, Password: hex.EncodeToString(pw)}
	p.User, p.Home = UserPrefix+p.ID, HomeRoot+"/"+p.ID
	exp := now.Add(TTL)
	sum := sha256.Sum256([]byte(p.Password))
	for _, f := range []struct {
		suffix string
		body   file
	}{
		{keySuffix, file{ExpiresAt: exp, PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))}},
		{pwSuffix, file{ExpiresAt: exp, PasswordSHA256: hex.EncodeToString(sum[:])}},
	} {
		path := filepath.Join(dir, p.ID+f.suffix)
		if err := writeNew(path, f.body, uid, gid); err != nil {
			p.Withdraw()
			return nil, err
		}
		p.files = append(p.files, path)
	}
	return p, nil
}

// giveTo makes path the state_dir owner's, mode 0700, when run as root
// for another owner; otherwise it only tightens the mode.
func giveTo(path string, uid, gid int) error {
	if os.Geteuid() == 0 && uid >= 0 && uid != 0 {
		if err := os.Lchown(path, uid, gid); err != nil {
			return fmt.Errorf("doctor pass: %w", err)
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("doctor pass: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("doctor pass: %s is not a folder", path)
	}
	if u, _, ok := owner(fi); ok && uid >= 0 && u != uid {
		// Someone else made it: the daemon would refuse every pass in it.
		return fmt.Errorf("doctor pass: %s is owned by uid %d, not by state_dir's owner (uid %d): remove it", path, u, uid)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(path, 0o700); err != nil {
			return fmt.Errorf("doctor pass: %w", err)
		}
	}
	return nil
}

func writeNew(path string, body file, uid, gid int) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("doctor pass: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return fmt.Errorf("doctor pass: %w", err)
	}
	if os.Geteuid() == 0 && uid >= 0 && uid != 0 {
		if err := f.Chown(uid, gid); err != nil {
			f.Close()
			os.Remove(path)
			return fmt.Errorf("doctor pass: %w", err)
		}
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("doctor pass: %w", err)
	}
	return nil
}

// Withdraw removes what is left of the pass's files (the daemon consumes
// each at the login it admits).
func (p *Pass) Withdraw() {
	for _, f := range p.files {
		_ = os.Remove(f)
	}
}

// IsUser reports whether name is a doctor user name, which only a
// Verifier decides.
func IsUser(name string) bool { return strings.HasPrefix(name, UserPrefix) }

// idOf returns the ID of a well-formed doctor user name.
func idOf(user string) (string, bool) {
	id, ok := strings.CutPrefix(user, UserPrefix)
	if !ok || len(id) != idLen {
		return "", false
	}
	for i := range len(id) {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", false
		}
	}
	return id, true
}

// Grant is what an admitted pass gives its session.
type Grant struct {
	Home        string // HomeRoot/ID
	Fingerprint string // of the key, for a key login
}

// Verifier admits passes for the daemon running on a state_dir.
type Verifier struct {
	dir   string
	now   func() time.Time
	local func(netip.Addr) bool
	euid  int
}

// NewVerifier returns the Verifier of stateDir's passes.
func NewVerifier(stateDir string) *Verifier {
	return &Verifier{dir: filepath.Join(stateDir, Dir), now: time.Now, local: IsLocal, euid: os.Geteuid()}
}

// Clear removes every pass (the daemon's start: whatever is there was made
// for a daemon that is gone).
func (v *Verifier) Clear() error {
	if err := os.RemoveAll(v.dir); err != nil {
		return fmt.Errorf("clear doctor passes: %w", err)
	}
	return nil
}

// Key admits a key login of a doctor user, consuming its pass.
func (v *Verifier) Key(user string, remote netip.Addr, key ssh.PublicKey) (Grant, error) {
	path, f, err := v.open(user, remote, keySuffix)
	if err != nil {
		return Grant{}, err
	}
	want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(f.PublicKey))
	if err != nil {
		return Grant{}, fmt.Errorf("doctor pass: bad public key: %w", err)
	}
	if key == nil || subtle.ConstantTimeCompare(want.Marshal(), key.Marshal()) != 1 {
		return Grant{}, errors.New("doctor pass: not the pass's key")
	}
	if err := consume(path); err != nil {
		return Grant{}, err
	}
	return Grant{Home: homeOf(user), Fingerprint: ssh.FingerprintSHA256(key)}, nil
}

// Password admits a password login of a doctor user, consuming its pass.
func (v *Verifier) Password(user string, remote netip.Addr, password string) (Grant, error) {
	path, f, err := v.open(user, remote, pwSuffix)
	if err != nil {
		return Grant{}, err
	}
	want, err := hex.DecodeString(f.PasswordSHA256)
	if err != nil || len(want) != sha256.Size {
		return Grant{}, errors.New("doctor pass: bad password digest")
	}
	sum := sha256.Sum256([]byte(password))
	if subtle.ConstantTimeCompare(want, sum[:]) != 1 {
		return Grant{}, errors.New("doctor pass: wrong password")
	}
	if err := consume(path); err != nil {
		return Grant{}, err
	}
	return Grant{Home: homeOf(user)}, nil
}

func homeOf(user string) string {
	id, _ := idOf(user)
	return HomeRoot + "/" + id
}

// consume removes a pass file: the login whose removal succeeds is the
// one admitted.
func consume(path string) error {
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("doctor pass: already used: %w", err)
	}
	return nil
}

// open checks where the attempt comes from, the name, the folder and the
// file, and returns the file's path and content.
func (v *Verifier) open(user string, remote netip.Addr, suffix string) (string, file, error) {
	if !v.local(remote) {
		return "", file{}, fmt.Errorf("doctor pass: %s is not an address of this machine", remote)
	}
	id, ok := idOf(user)
	if !ok {
		return "", file{}, errors.New("doctor pass: malformed name")
	}
	if err := v.private(v.dir, true); err != nil {
		return "", file{}, err
	}
	path := filepath.Join(v.dir, id+suffix)
	fh, err := os.OpenFile(path, os.O_RDONLY|noFollow|nonBlock, 0)
	if err != nil {
		return "", file{}, fmt.Errorf("doctor pass: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return "", file{}, fmt.Errorf("doctor pass: %w", err)
	}
	if err := v.privateInfo(path, fi, false); err != nil {
		return "", file{}, err
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxPassFile+1))
	if err != nil {
		return "", file{}, fmt.Errorf("doctor pass: %w", err)
	}
	if len(data) > maxPassFile {
		return "", file{}, errors.New("doctor pass: file too large")
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return "", file{}, fmt.Errorf("doctor pass: %w", err)
	}
	now := v.now()
	switch {
	case !now.Before(f.ExpiresAt):
		_ = os.Remove(path)
		return "", file{}, errors.New("doctor pass: expired")
	case f.ExpiresAt.Sub(now) > TTL+clockLeeway:
		return "", file{}, errors.New("doctor pass: claims a longer life than a pass has")
	}
	return path, f, nil
}

// private checks that path is a folder (dir) or a regular file, not a
// link, owned by the daemon's user and closed to group and others.
func (v *Verifier) private(path string, dir bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("doctor pass: %w", err)
	}
	return v.privateInfo(path, fi, dir)
}

func (v *Verifier) privateInfo(path string, fi fs.FileInfo, dir bool) error {
	switch {
	case dir && !fi.IsDir():
		return fmt.Errorf("doctor pass: %s is not a folder", path)
	case !dir && !fi.Mode().IsRegular():
		return fmt.Errorf("doctor pass: %s is not a regular file", path)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("doctor pass: %s is open to group or others (mode %04o)", path, fi.Mode().Perm())
	}
	if uid, _, ok := owner(fi); !ok || uid != v.euid {
		return fmt.Errorf("doctor pass: %s is not owned by the daemon's user", path)
	}
	return nil
}

// IsLocal reports whether addr is this machine's: loopback, or assigned
// to one of its interfaces.
func IsLocal(addr netip.Addr) bool {
	addr = addr.Unmap()
	if !addr.IsValid() {
		return false
	}
	if addr.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr {
				return true
			}
		}
	}
	return false
}

package pass

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

var (
	loopback = netip.MustParseAddr("127.0.0.1")
	remote   = netip.MustParseAddr("203.0.113.9")
)

// issue makes a pass in a fresh state_dir and the Verifier of that
// state_dir, whose clock the test sets.
func issue(t *testing.T) (*Pass, *Verifier, *time.Time) {
	t.Helper()
	state := t.TempDir()
	now := time.Now()
	p, err := Issue(state, now)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	t.Cleanup(p.Withdraw)
	v := NewVerifier(state)
	v.now = func() time.Time { return now }
	return p, v, &now
}

func TestIssueWritesPrivateFiles(t *testing.T) {
	p, v, _ := issue(t)
	if !IsUser(p.User) || !strings.HasSuffix(p.Home, "/"+p.ID) || !strings.HasPrefix(p.Home, HomeRoot+"/") {
		t.Fatalf("user %q home %q", p.User, p.Home)
	}
	if fi, err := os.Lstat(v.dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("pass folder: %v, mode %v", err, fi.Mode())
	}
	for _, f := range p.files {
		fi, err := os.Lstat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v", f, err, fi.Mode())
		}
		data, _ := os.ReadFile(f)
		// Only a public key and a digest: the secrets stay in memory.
		if strings.Contains(string(data), p.Password) || strings.Contains(string(data), "PRIVATE") {
			t.Fatalf("%s holds a secret: %s", f, data)
		}
	}
}

func TestKeyAndPasswordOnce(t *testing.T) {
	p, v, _ := issue(t)
	g, err := v.Key(p.User, loopback, p.Signer.PublicKey())
	if err != nil {
		t.Fatalf("Key: %v", err)
	}
	if g.Home != p.Home || g.Fingerprint != ssh.FingerprintSHA256(p.Signer.PublicKey()) {
		t.Fatalf("grant %+v", g)
	}
	if _, err := v.Key(p.User, loopback, p.Signer.PublicKey()); err == nil {
		t.Fatal("a key pass worked twice")
	}
	if g, err := v.Password(p.User, loopback, p.Password); err != nil || g.Home != p.Home {
		t.Fatalf("Password: %+v, %v", g, err)
	}
	if _, err := v.Password(p.User, loopback, p.Password); err == nil {
		t.Fatal("a password pass worked twice")
	}
}

func TestRefusals(t *testing.T) {
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherKey, _ := ssh.NewSignerFromKey(other)
	cases := []struct {
		name string
		try  func(p *Pass, v *Verifier, now *time.Time) error
		want string
	}{
		{"from the network", func(p *Pass, v *Verifier, _ *time.Time) error {
			_, err := v.Key(p.User, remote, p.Signer.PublicKey())
			return err
		}, "not an address of this machine"},
		{"another key", func(p *Pass, v *Verifier, _ *time.Time) error {
			_, err := v.Key(p.User, loopback, otherKey.PublicKey())
			return err
		}, "not the pass's key"},
		{"wrong password", func(p *Pass, v *Verifier, _ *time.Time) error {
			_, err := v.Password(p.User, loopback, p.Password+"x")
			return err
		}, "wrong password"},
		{"unknown id", func(p *Pass, v *Verifier, _ *time.Time) error {
			_, err := v.Password(UserPrefix+strings.Repeat("0", idLen), loopback, p.Password)
			return err
		}, "no such file"},
		{"malformed name", func(p *Pass, v *Verifier, _ *time.Time) error {
			_, err := v.Password(p.User+"/../x", loopback, p.Password)
			return err
		}, "malformed name"},
		{"expired", func(p *Pass, v *Verifier, now *time.Time) error {
			*now = now.Add(TTL)
			_, err := v.Key(p.User, loopback, p.Signer.PublicKey())
			return err
		}, "expired"},
		{"a life longer than a pass's", func(p *Pass, v *Verifier, _ *time.Time) error {
			rewrite(t, p.files[1], func(f *file) { f.ExpiresAt = f.ExpiresAt.Add(time.Hour) })
			_, err := v.Password(p.User, loopback, p.Password)
			return err
		}, "longer life"},
		{"file open to others", func(p *Pass, v *Verifier, _ *time.Time) error {
			if err := os.Chmod(p.files[0], 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := v.Key(p.User, loopback, p.Signer.PublicKey())
			return err
		}, "open to group or others"},
		{"folder open to others", func(p *Pass, v *Verifier, _ *time.Time) error {
			if err := os.Chmod(v.dir, 0o777); err != nil {
				t.Fatal(err)
			}
			_, err := v.Key(p.User, loopback, p.Signer.PublicKey())
			return err
		}, "open to group or others"},
		{"file owned by someone else", func(p *Pass, v *Verifier, _ *time.Time) error {
			v.euid++ // as if the daemon ran as another user than the file's owner
			_, err := v.Key(p.User, loopback, p.Signer.PublicKey())
			return err
		}, "not owned by the daemon's user"},
		{"a link in the file's place", func(p *Pass, v *Verifier, _ *time.Time) error {
			target := filepath.Join(t.TempDir(), "elsewhere")
			data, _ := os.ReadFile(p.files[0])
			if err := os.WriteFile(target, data, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Remove(p.files[0])
			if err := os.Symlink(target, p.files[0]); err != nil {
				t.Fatal(err)
			}
			_, err := v.Key(p.User, loopback, p.Signer.PublicKey())
			return err
		}, "too many levels of symbolic links"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, v, now := issue(t)
			err := c.try(p, v, now)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one saying %q", err, c.want)
			}
		})
	}
}

func rewrite(t *testing.T, path string, change func(*file)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	change(&f)
	data, _ = json.Marshal(f)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRacingLogins: of logins racing for one pass, exactly one gets in.
func TestRacingLogins(t *testing.T) {
	p, v, _ := issue(t)
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range n {
		wg.Go(func() {
			if _, err := v.Password(p.User, loopback, p.Password); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d of %d racing logins got in, want 1", ok, n)
	}
}

func TestClear(t *testing.T) {
	p, v, _ := issue(t)
	if err := v.Clear(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Key(p.User, loopback, p.Signer.PublicKey()); err == nil {
		t.Fatal("a cleared pass still works")
	}
}

func TestIsLocal(t *testing.T) {
	for a, want := range map[string]bool{
		"127.0.0.1": true, "127.3.4.5": true, "::1": true, "::ffff:127.0.0.1": true,
		"192.0.2.1": false, "2001:db8::1": false,
	} {
		if got := IsLocal(netip.MustParseAddr(a)); got != want {
			t.Errorf("IsLocal(%s) = %v, want %v", a, got, want)
		}
	}
	if IsLocal(netip.Addr{}) {
		t.Error("the zero address is local")
	}
	// An address of one of this machine's interfaces is local too: the
	// doctor dials a listener bound to it from here.
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() {
			ip, _ := netip.AddrFromSlice(n.IP)
			if !IsLocal(ip) {
				t.Errorf("IsLocal(%s), an interface's address, = false", ip)
			}
		}
	}
}

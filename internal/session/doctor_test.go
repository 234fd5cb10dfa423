package session

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/doctor/pass"
	"github.com/wharf-sftp/wharf/internal/events"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// doctorGate is the gate fixture with a Verifier of a fresh state_dir,
// and a pass issued in it.
func doctorGate(t *testing.T) (*gateFixture, *pass.Pass) {
	t.Helper()
	f := newGateFixture(t, CheckLimits{Concurrent: 2, Memory: 64 << 20, Wait: time.Second})
	state := t.TempDir()
	f.gate.doctor = pass.NewVerifier(state)
	p, err := pass.Issue(state, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Withdraw)
	return f, p
}

// TestGateDoctor: a pass opens a session in its scratch home with the
// round trip's permissions only, on either method, from this machine.
func TestGateDoctor(t *testing.T) {
	f, p := doctorGate(t)
	l := f.admit(t, "sftp", "127.0.0.1")
	pr, err := l.Key(p.User, p.Signer.PublicKey())
	if err != nil {
		t.Fatalf("doctor key: %v", err)
	}
	s, err := l.Open(pr, func() {})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	if pr.Home != p.Home || s.Perms() != doctorPerms || s.Perms()&(vfs.PermMkdir|vfs.PermRename) != 0 {
		t.Errorf("doctor session: home %s perms %v", pr.Home, s.Perms())
	}
	if pr.MaxUploadSize != pass.MaxUpload {
		t.Errorf("upload cap %d, want %d", pr.MaxUploadSize, pass.MaxUpload)
	}
	l = f.admit(t, "ftps", "::1")
	if pr, err := l.Password(p.User, p.Password); err != nil || pr.Home != p.Home || pr.Method != auth.MethodPassword {
		t.Fatalf("doctor password: %+v, %v", pr, err)
	}
}

// TestGateDoctorRefused: from the network, with a wrong secret, twice, or
// on a gate without a Verifier, a doctor name is a failed login like any
// other (scored, an event, a log line), and never reaches the directory.
func TestGateDoctorRefused(t *testing.T) {
	f, p := doctorGate(t)
	l := f.admit(t, "ftps", "192.0.2.7")
	if _, err := l.Password(p.User, p.Password); err != ErrLogin {
		t.Errorf("doctor pass from the network: %v, want ErrLogin", err)
	}
	l = f.admit(t, "ftps", "127.0.0.1")
	if _, err := l.Password(p.User, "guess"); err != ErrLogin {
		t.Errorf("wrong doctor password: %v, want ErrLogin", err)
	}
	if _, err := l.Password(p.User, p.Password); err != nil {
		t.Fatalf("right doctor password: %v", err)
	}
	if _, err := l.Password(p.User, p.Password); err != ErrLogin {
		t.Errorf("doctor password used twice: %v, want ErrLogin", err)
	}
	if n := len(f.events.of(events.LoginFailed)); n != 3 {
		t.Errorf("%d login_failed events, want 3", n)
	}
	if !strings.Contains(f.logs.String(), "not an address of this machine") {
		t.Errorf("log does not say why the network attempt was refused:\n%s", f.logs.String())
	}
	if strings.Contains(f.logs.String(), p.Password) {
		t.Error("the doctor's password reached the log")
	}

	f.gate.doctor = nil
	l2, err := f.gate.Admit("sftp", NewID(), netip.MustParseAddr("127.0.0.1"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if _, err := l2.Key(p.User, p.Signer.PublicKey()); err != ErrLogin {
		t.Errorf("doctor key on a gate without a Verifier: %v, want ErrLogin", err)
	}
}

// TestGateDoctorNotOnRestrictedListener: a listener for named users only
// (the legacy one) refuses a pass as it refuses any other user.
func TestGateDoctorNotOnRestrictedListener(t *testing.T) {
	f, p := doctorGate(t)
	l := f.admit(t, "sftp", "127.0.0.1")
	l.Only([]string{"alice"})
	if _, err := l.Key(p.User, p.Signer.PublicKey()); err != ErrLogin {
		t.Errorf("doctor key on a listener for alice only: %v, want ErrLogin", err)
	}
	// The refusal left the pass for a listener that takes it.
	if _, err := f.admit(t, "sftp", "127.0.0.1").Key(p.User, p.Signer.PublicKey()); err != nil {
		t.Errorf("doctor key after a refusal on a restricted listener: %v", err)
	}
}

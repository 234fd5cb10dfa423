package doctor

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"slices"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/doctor/pass"
)

// The probe each round trip moves.
const (
	probeName = "wharf-doctor-probe.bin"
	probeSize = 64 << 10
)

// roundTripSteps bounds a whole round trip, in network steps: each
// reply or transfer of the probe takes at most one Timeout.
const roundTripSteps = 8

// errHostKey is a host key other than the ones on disk.
var errHostKey = errors.New("host key is not one of the configured ones")

// issuePass makes the run's one-time identity, once, for both round trips.
func (r *runner) issuePass() (*pass.Pass, error) {
	if r.pass == nil && r.passErr == nil {
		// The real clock, not Options.Now: the daemon dates the pass by it.
		r.pass, r.passErr = pass.Issue(r.cfg.StateDir, time.Now())
	}
	return r.pass, r.passErr
}

// roundTripReady says whether a round trip on the listener key can run,
// and records the Skip or Fail that says why not.
func (r *runner) roundTripReady(check, key, target string, start time.Time) (string, *pass.Pass, bool) {
	addr, ok := r.listening[key]
	if !ok {
		r.add(start, Result{Check: check, Target: target, Status: Skip, Message: "its listener does not answer as wharf (see " + key + " above)"})
		return "", nil, false
	}
	if r.daemonDown {
		r.add(start, Result{Check: check, Target: target, Status: Skip,
			Message: "wharf answers on " + addr + ", but no daemon runs on this config's state_dir to admit the doctor's one-time pass: the one answering runs another config"})
		return "", nil, false
	}
	p, err := r.issuePass()
	if err != nil {
		r.add(start, Result{Check: check, Target: target, Status: Fail, Message: "cannot issue the doctor's one-time pass: " + err.Error(),
			Fix: "run wharf doctor on the daemon's host as the user wharf runs as (the owner of state_dir), or as root"})
		return "", nil, false
	}
	return addr, p, true
}

// checkSFTP logs in to the SFTP listener with the pass's key and uploads,
// lists, downloads and deletes a probe.
func (r *runner) checkSFTP(ctx context.Context) {
	if r.cfg.SFTP.Listen == "" {
		return
	}
	start := time.Now()
	target := keySFTP + " " + r.cfg.SFTP.Listen
	addr, p, ok := r.roundTripReady(CheckSFTP, keySFTP, target, start)
	if !ok {
		return
	}
	res := Result{Check: CheckSFTP, Target: target}
	served, step, err := r.sftpRoundTrip(ctx, addr, p)
	if err != nil {
		res.Status = Fail
		res.Message, res.Fix = sftpFailure(step, addr, served, err, p.User)
	} else {
		res.Status = OK
		res.Message = fmt.Sprintf("upload, list, download and delete of %d KiB as %s through the daemon", probeSize>>10, p.User)
		if served != nil {
			res.Message += fmt.Sprintf("; host key %s %s", served.Type(), ssh.FingerprintSHA256(served))
			if len(r.hostKeys) == 0 {
				res.Message += " (not compared: no host key on disk)"
			}
		}
	}
	r.add(start, res)
}

// Steps of a round trip, for the failure's wording.
const (
	stepConnect  = "connect"
	stepLogin    = "login"
	stepSession  = "session"
	stepUpload   = "upload"
	stepList     = "list"
	stepDownload = "download"
	stepDelete   = "delete"
)

// sftpRoundTrip returns the host key the server showed, the step that
// failed and why.
func (r *runner) sftpRoundTrip(ctx context.Context, addr string, p *pass.Pass) (ssh.PublicKey, string, error) {
	raw, err := newDialer(r.cfg, r.o.Timeout).dial(ctx, addr)
	if err != nil {
		return nil, stepConnect, err
	}
	defer raw.Close()
	// One deadline over the whole conversation: every step below fails
	// once it passes, with no goroutine to watch it.
	_ = raw.SetDeadline(time.Now().Add(roundTripSteps * r.o.Timeout))
	var served ssh.PublicKey
	algs := ssh.SupportedAlgorithms()
	cc := &ssh.ClientConfig{
		User: p.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(p.Signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			served = key
			if len(r.hostKeys) > 0 && !slices.Contains(r.hostKeys, string(key.Marshal())) {
				return errHostKey
			}
			return nil
		},
		Timeout: r.o.Timeout,
		// Whatever the listener is configured to offer, the doctor can
		// speak it.
		Config: ssh.Config{KeyExchanges: algs.KeyExchanges, Ciphers: algs.Ciphers, MACs: algs.MACs},
		// ed25519 first, as OpenSSH asks: the fingerprint the daemon logs
		// at start and partners compare.
		HostKeyAlgorithms: append([]string{ssh.KeyAlgoED25519}, slices.DeleteFunc(slices.Clone(algs.HostKeys),
			func(a string) bool { return a == ssh.KeyAlgoED25519 })...),
	}
	conn, chans, reqs, err := ssh.NewClientConn(raw, addr, cc)
	if err != nil {
		return served, stepLogin, err
	}
	client := ssh.NewClient(conn, chans, reqs)
	defer client.Close()
	sc, err := sftp.NewClient(client)
	if err != nil {
		return served, stepSession, err
	}
	defer sc.Close()

	data := make([]byte, probeSize)
	_, _ = rand.Read(data)
	name := "/" + probeName
	f, err := sc.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err == nil {
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return served, stepUpload, err
	}
	entries, err := sc.ReadDir("/")
	if err != nil {
		return served, stepList, err
	}
	i := slices.IndexFunc(entries, func(e fs.FileInfo) bool { return e.Name() == probeName })
	switch {
	case i < 0:
		return served, stepList, fmt.Errorf("the listing of / does not show %s", probeName)
	case entries[i].Size() != probeSize:
		return served, stepList, fmt.Errorf("the listing shows %s with %d bytes, want %d", probeName, entries[i].Size(), probeSize)
	}
	rf, err := sc.Open(name)
	var got []byte
	if err == nil {
		got, err = io.ReadAll(io.LimitReader(rf, probeSize+1))
		rf.Close()
	}
	switch {
	case err != nil:
		return served, stepDownload, err
	case !bytes.Equal(got, data):
		return served, stepDownload, errors.New("downloaded other bytes than were uploaded")
	}
	if err := sc.Remove(name); err != nil {
		return served, stepDelete, err
	}
	if _, err := sc.Stat(name); !errors.Is(err, fs.ErrNotExist) {
		return served, stepDelete, fmt.Errorf("still there after its removal (stat: %v)", err)
	}
	return served, "", nil
}

// sftpFailure words a failed SFTP round trip: what happened and the fix.
func sftpFailure(step, addr string, served ssh.PublicKey, err error, user string) (string, string) {
	msg := fmt.Sprintf("%s failed: %v", step, err)
	logHint := "look at the daemon's log for user " + user
	switch {
	case errors.Is(err, errHostKey):
		return fmt.Sprintf("%s shows host key %s, which is not one of the host key files above", addr, ssh.FingerprintSHA256(served)),
			"another SSH server answers there, or the daemon runs with other host keys: point sftp.listen and sftp.host_keys at this daemon's"
	case step == stepLogin:
		return fmt.Sprintf("%s refused the doctor's one-time key: %v", addr, err),
			"make sure the daemon listening there is the one of this config and state_dir, and recent enough to admit doctor passes; " + logHint
	case step == stepSession:
		return fmt.Sprintf("logged in, but the daemon closed the session: %v", err),
			"the daemon could not open the doctor's scratch home on the storage: see the storage check and " + logHint
	case step == stepConnect:
		return msg, "see the listener check above"
	}
	return msg, "see the storage check; partners' transfers fail the same way; " + logHint
}

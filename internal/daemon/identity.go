package daemon

import (
	"context"
	"crypto/x509"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/ftpd"
	"github.com/wharf-sftp/wharf/internal/sftpd"
)

// PublicIdentity is what partners check a server by.
type PublicIdentity struct {
	HostKeys    []ssh.PublicKey   // nil without sftp.listen
	Certificate *x509.Certificate // nil without an FTPS listener
}

// ReadPublicIdentity returns the host keys and FTPS certificate a daemon
// started on cfg serves (the configured ones, else the fleet's with
// state_url, else those generated in state_dir), for showing to partners
// (`wharf user onboard`). It only reads: nothing is generated, and a
// daemon that never started yet is an error saying so. Only public
// halves leave it.
func ReadPublicIdentity(ctx context.Context, cfg *config.Config) (PublicIdentity, error) {
	var id PublicIdentity
	ftps := cfg.FTPS.Listen != "" || cfg.FTPS.ImplicitListen != ""
	sharedKeys := len(cfg.SFTP.HostKeys) == 0
	sharedCert := cfg.FTPS.CertFile == "" && cfg.FTPS.KeyFile == ""
	needState := cfg.StateURL != "" && ((cfg.SFTP.Listen != "" && sharedKeys) || (ftps && sharedCert))
	var err error
	var st interface {
		ReadIdentity(ctx context.Context, name string) ([]byte, error)
	}
	if needState {
		s, err := OpenState(ctx, cfg, nil)
		if err != nil {
			return id, err
		}
		if s != nil { // never a typed nil in the interface
			st = s
		}
	}
	if cfg.SFTP.Listen != "" {
		if st != nil && sharedKeys {
			id.HostKeys, err = sftpd.SharedHostPublicKeys(ctx, st)
		} else {
			id.HostKeys, err = sftpd.HostPublicKeys(cfg.SFTP.HostKeys, cfg.StateDir)
		}
		if err != nil {
			return id, err
		}
	}
	if ftps {
		if st != nil && sharedCert {
			id.Certificate, err = ftpd.SharedCertificate(ctx, st)
		} else {
			id.Certificate, err = ftpd.ReadCertificate(cfg.FTPS.CertFile, cfg.StateDir)
		}
		if err != nil {
			return id, err
		}
	}
	return id, nil
}

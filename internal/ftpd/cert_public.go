package ftpd

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/wharf-sftp/wharf/internal/regfile"
)

// ReadCertificate returns the certificate LoadCertificate serves, for
// showing to partners, without generating or writing anything: certFile,
// else the self-signed one generated in stateDir. When stateDir holds
// none yet, the error says to start the daemon once.
func ReadCertificate(certFile, stateDir string) (*x509.Certificate, error) {
	generated := certFile == ""
	if generated {
		certFile = filepath.Join(stateDir, generatedCert)
	}
	data, err := regfile.Read(certFile, maxPEMFile)
	if generated && errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no tls certificate %s yet: the daemon generates a self-signed one in state_dir when it first starts; start it once (or set ftps.cert_file)", certFile)
	}
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	return firstCertificate(certFile, data)
}

// SharedReader reads an object of a fleet's identity without creating
// it; fs.ErrNotExist (wrapped) when there is none. fleet.State is one.
type SharedReader interface {
	ReadIdentity(ctx context.Context, name string) ([]byte, error)
}

// SharedCertificate returns the fleet's self-signed certificate, the one
// LoadSharedCertificate serves, without creating it (nor reading more of
// the bundle than its CERTIFICATE block).
func SharedCertificate(ctx context.Context, s SharedReader) (*x509.Certificate, error) {
	data, err := s.ReadIdentity(ctx, sharedCert)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the fleet has no tls certificate %s yet: the first daemon to start with state_url and FTPS creates it; start one", sharedCert)
	}
	if err != nil {
		return nil, fmt.Errorf("shared tls certificate: %w", err)
	}
	return firstCertificate("shared "+sharedCert, data)
}

// firstCertificate parses the first CERTIFICATE block of a PEM file (the
// leaf, in a chain), skipping any other block.
func firstCertificate(name string, data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("tls certificate %s: no PEM CERTIFICATE block", name)
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tls certificate %s: %w", name, err)
		}
		return cert, nil
	}
}

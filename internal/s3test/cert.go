package s3test

import (
	"crypto/x509"
	"path/filepath"
	"time"

	"github.com/wharf-sftp/wharf/internal/testcert"
)

// tlsFiles is a self-signed certificate for 127.0.0.1 and its key, on disk
// for versitygw's --cert and --key.
type tlsFiles struct {
	certFile, keyFile string
	roots             *x509.CertPool
}

// writeCert makes a certificate valid for an hour that is its own CA, so a
// client trusting exactly this file reaches the server and one trusting
// the system roots does not.
func writeCert(dir string) (*tlsFiles, error) {
	now := time.Now()
	p, err := testcert.New(now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		return nil, err
	}
	f := &tlsFiles{
		certFile: filepath.Join(dir, "cert.pem"),
		keyFile:  filepath.Join(dir, "key.pem"),
		roots:    x509.NewCertPool(),
	}
	f.roots.AddCert(p.Cert)
	if err := p.Write(f.certFile, f.keyFile, 0o600); err != nil {
		return nil, err
	}
	return f, nil
}

package ftpd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/wharf-sftp/wharf/internal/atomicfile"
	"github.com/wharf-sftp/wharf/internal/regfile"
)

// Files of the certificate generated when none is configured.
const (
	generatedCert = "ftps_cert.pem"
	generatedKey  = "ftps_key.pem"
)

// certCheckInterval bounds how often a configured certificate file is
// stat'ed for renewal: at most once per interval, on a handshake.
const certCheckInterval = 5 * time.Second

// Certificate serves the TLS certificate of the FTPS listeners. A
// configured certificate is re-read when its files change, so a renewal
// (certbot, an ACME client) needs no restart.
type Certificate struct {
	certFile, keyFile string // "" for a fleet's certificate, held in memory
	checkEvery        time.Duration

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // size and mtime of both files when cert was read
	checked time.Time
}

// LoadCertificate reads certFile and keyFile; with both empty it loads the
// certificate in stateDir, generating a self-signed ECDSA one the first time.
func LoadCertificate(certFile, keyFile, stateDir string) (*Certificate, error) {
	if certFile == "" && keyFile == "" {
		certFile = filepath.Join(stateDir, generatedCert)
		keyFile = filepath.Join(stateDir, generatedKey)
		if err := EnsureSelfSigned(certFile, keyFile); err != nil {
			return nil, err
		}
	}
	c := &Certificate{certFile: certFile, keyFile: keyFile, checkEvery: certCheckInterval}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Fingerprint is the SHA-256 of the certificate in DER form, as FileZilla
// and browsers show it: lowercase hex bytes joined by colons.
func (c *Certificate) Fingerprint() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	sum := sha256.Sum256(c.cert.Certificate[0])
	h := hex.EncodeToString(sum[:])
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// get is tls.Config.GetCertificate: the current certificate, re-read first
// if its files changed. A broken renewal keeps the old certificate.
// GetCertificate serves c on another TLS listener of the daemon (the
// admin listener): the same certificate, reloaded as FTPS reloads it.
func (c *Certificate) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.get(h)
}

func (c *Certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	due := c.certFile != "" && time.Since(c.checked) >= c.checkEvery
	c.mu.Unlock()
	if due {
		_ = c.reload() // on error the previous certificate stays in force
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cert, nil
}

func (c *Certificate) reload() error {
	stamp, err := fileStamp(c.certFile, c.keyFile)
	c.mu.Lock()
	c.checked = time.Now()
	unchanged := err == nil && stamp == c.stamp
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("tls certificate: %w", err)
	}
	if unchanged {
		return nil
	}
	certPEM, err := regfile.Read(c.certFile, maxPEMFile)
	if err != nil {
		return fmt.Errorf("tls certificate: %w", err)
	}
	keyPEM, err := regfile.Read(c.keyFile, maxPEMFile)
	if err != nil {
		return fmt.Errorf("tls certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("tls certificate: %w", err)
	}
	c.mu.Lock()
	c.cert, c.stamp = &cert, stamp
	c.mu.Unlock()
	return nil
}

func fileStamp(paths ...string) (string, error) {
	var b strings.Builder
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
}

// EnsureSelfSigned creates a self-signed ECDSA P-256 certificate (for
// localhost, the loopback addresses and the host name) and its key unless
// both files exist. The benchmark gives its reference FTPS server the same.
func EnsureSelfSigned(certFile, keyFile string) error {
	_, certErr := os.Stat(certFile)
	_, keyErr := os.Stat(keyFile)
	if certErr == nil && keyErr == nil {
		return nil
	}
	for _, err := range []error{certErr, keyErr} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("tls certificate: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return err
	}
	// Key first: a certificate without its key would be useless.
	if err := atomicfile.Write(keyFile, keyPEM, 0o600); err != nil {
		return fmt.Errorf("tls key: %w", err)
	}
	if err := atomicfile.Write(certFile, certPEM, 0o644); err != nil {
		return fmt.Errorf("tls certificate: %w", err)
	}
	return nil
}

// selfSigned makes the certificate EnsureSelfSigned writes: ECDSA P-256,
// for localhost, the loopback addresses and the host name, valid ten
// years. It returns the certificate and the key in PEM.
func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate tls key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate tls certificate: %w", err)
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "wharf FTPS", Organization: []string{"wharf"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host != "" && host != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("generate tls certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode tls key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// Shared is the store a fleet of daemons shares (state_url). Ensure
// returns the content stored under name; when there is none it stores
// gen's result first, create-only, so that of daemons starting at once
// every one gets the first writer's.
type Shared interface {
	Ensure(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
}

// sharedCert names the fleet's self-signed certificate in a Shared store:
// key and certificate in one object (key first, as PEM blocks), so that no
// daemon can pair one writer's certificate with another's key.
const sharedCert = "ftps.pem"

// LoadSharedCertificate returns the fleet's self-signed certificate from
// s, which every daemon then presents. When s has none, it is created
// there from the certificate a single daemon's life left in stateDir, if
// any (partners keep the fingerprint they accepted), else generated.
// Nothing is written to stateDir, and the certificate is never re-read.
func LoadSharedCertificate(ctx context.Context, s Shared, stateDir string) (*Certificate, error) {
	data, err := s.Ensure(ctx, sharedCert, func() ([]byte, error) {
		certPEM, certErr := regfile.Read(filepath.Join(stateDir, generatedCert), maxPEMFile)
		keyPEM, keyErr := regfile.Read(filepath.Join(stateDir, generatedKey), maxPEMFile)
		switch {
		case certErr == nil && keyErr == nil:
			if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
				return nil, fmt.Errorf("tls certificate in state_dir: %w", err)
			}
		case errors.Is(certErr, fs.ErrNotExist) || errors.Is(keyErr, fs.ErrNotExist):
			var err error
			if certPEM, keyPEM, err = selfSigned(); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("tls certificate in state_dir: %w", errors.Join(certErr, keyErr))
		}
		return append(keyPEM, certPEM...), nil
	})
	if err != nil {
		return nil, fmt.Errorf("shared tls certificate: %w", err)
	}
	// The bundle holds both: X509KeyPair takes the CERTIFICATE blocks of
	// its first argument and the first key block of its second.
	cert, err := tls.X509KeyPair(data, data)
	if err != nil {
		return nil, fmt.Errorf("shared tls certificate %s: %w", sharedCert, err)
	}
	return &Certificate{cert: &cert}, nil
}

// errNoResumption is what a data connection that did not resume the
// control connection's TLS session is told (ftpserverlib puts it in the
// 4xx reply of the transfer).
var errNoResumption = errors.New("TLS session resumption required: the data connection must reuse the control connection's TLS session (tls_session_reuse: required)")

// tlsConfig is the one long-lived configuration of both listeners, control
// and data connections alike: session tickets issued on a control
// connection can only be resumed under the same ticket keys, so a data
// connection must be handshaken by this very Config.
func tlsConfig(cert *Certificate, requireReuse bool) *tls.Config {
	base := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cert.get,
		// TLS 1.2: forward-secret AEAD suites only (TLS 1.3 has no others).
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
	if !requireReuse {
		return base
	}
	// A data connection is told apart from a control connection by the
	// listener that accepted it (dataListener marks its connections); its
	// handshake must be a resumption.
	data := base.Clone()
	data.VerifyConnection = func(cs tls.ConnectionState) error {
		if !cs.DidResume {
			return errNoResumption
		}
		return nil
	}
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if _, ok := hello.Conn.(*dataConn); ok {
			return data, nil
		}
		return nil, nil
	}
	return base
}

// dataListener marks the connections of a passive data listener.
type dataListener struct{ net.Listener }

func (l dataListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &dataConn{c}, nil
}

type dataConn struct{ net.Conn }

// errNoCloseNotify ends an upload whose data connection closed without
// TLS's close_notify: crypto/tls would report a bare EOF at a record
// boundary as a clean end, and a client killed mid-upload as a complete file.
var errNoCloseNotify = errors.New("data connection closed without TLS close_notify")

// Read runs beneath TLS: after a close_notify, crypto/tls stops reading and
// never sees this EOF.
func (c *dataConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err == io.EOF {
		err = errNoCloseNotify
	}
	return n, err
}

// maxPEMFile bounds ftps.cert_file and ftps.key_file: a certificate chain
// is a few KiB.
const maxPEMFile = 1 << 20

package sftpd_test

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
)

// TestCryptoPolicy checks what the default listener refuses, and that the
// legacy listener serves an old client only for the users named there.
func TestCryptoPolicy(t *testing.T) {
	old, oldUser := newUser(t, "scanner")
	alice, aliceUser := newUser(t, "alice")
	cfg := config.Default()
	cfg.Storage.Backend = "memory"
	cfg.Users = []config.User{oldUser, aliceUser}
	cfg.SFTP.Legacy = config.Legacy{
		Listen:            "127.0.0.1:0",
		KexAlgorithms:     []string{ssh.InsecureKeyExchangeDH14SHA1},
		Ciphers:           []string{ssh.InsecureCipherAES128CBC},
		MACs:              []string{ssh.HMACSHA1},
		HostKeyAlgorithms: []string{ssh.KeyAlgoRSA},
		Users:             []string{"scanner"},
	}
	d := daemontest.Start(t, cfg)
	legacyAddr := d.LegacyAddr().String()

	dialWith := func(addr string, u user, c ssh.Config, hostKeyAlgos ...string) error {
		conn, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{
			Config:            c,
			User:              u.name,
			Auth:              []ssh.AuthMethod{ssh.PublicKeys(u.signer)},
			HostKeyCallback:   ssh.InsecureIgnoreHostKey(),
			HostKeyAlgorithms: hostKeyAlgos,
			Timeout:           5 * time.Second,
		})
		if conn != nil {
			conn.Close()
		}
		return err
	}
	for _, tc := range []struct {
		name string
		c    ssh.Config
		host []string
	}{
		{"sha1 kex", ssh.Config{KeyExchanges: []string{ssh.InsecureKeyExchangeDH14SHA1}}, nil},
		{"nist kex", ssh.Config{KeyExchanges: []string{ssh.KeyExchangeECDHP256}}, nil},
		{"cbc", ssh.Config{Ciphers: []string{ssh.InsecureCipherAES128CBC}}, nil},
		{"sha1 mac", ssh.Config{Ciphers: []string{ssh.CipherAES128CTR}, MACs: []string{ssh.HMACSHA1}}, nil},
		{"ssh-rsa host key", ssh.Config{}, []string{ssh.KeyAlgoRSA}},
	} {
		if err := dialWith(d.Addr, alice, tc.c, tc.host...); err == nil {
			t.Errorf("main listener accepted %s", tc.name)
		}
	}
	// What libssh2 1.10 (curl) needs stays available.
	if err := dialWith(d.Addr, alice, ssh.Config{Ciphers: []string{ssh.CipherAES256CTR}, MACs: []string{ssh.HMACSHA256}}); err != nil {
		t.Errorf("aes256-ctr with hmac-sha2-256 refused: %v", err)
	}
	legacy := ssh.Config{KeyExchanges: []string{ssh.InsecureKeyExchangeDH14SHA1}, Ciphers: []string{ssh.InsecureCipherAES128CBC}, MACs: []string{ssh.HMACSHA1}}
	if err := dialWith(legacyAddr, old, legacy, ssh.KeyAlgoRSA); err != nil {
		t.Errorf("legacy listener refused its user: %v", err)
	}
	err := dialWith(legacyAddr, alice, legacy, ssh.KeyAlgoRSA)
	if err == nil {
		t.Error("legacy listener let in a user it does not name")
	}
	if !strings.Contains(d.Logs(), "user not allowed on this listener") {
		t.Error("refusal on the legacy listener not logged")
	}
}

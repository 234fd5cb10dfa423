package ftpd_test

import (
	"testing"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
)

// startFTPD starts a daemon with explicit FTPS on the local backend and the
// given users (password: the name + "-pw"); edit changes the config first.
func startFTPD(t *testing.T, edit func(*config.Config), users ...string) (*daemontest.Daemon, string) {
	t.Helper()
	cfg := config.Default()
	cfg.FTPS.Listen = "127.0.0.1:0"
	cfg.FTPS.PassivePorts = ""
	for _, name := range users {
		h, err := auth.HashPassword(name + "-pw")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Users = append(cfg.Users, config.User{Name: name, Home: "/" + name, PasswordHash: h})
	}
	if edit != nil {
		edit(cfg)
	}
	d := daemontest.Start(t, cfg)
	return d, d.FTPSAddr().String()
}

// loggedIn is a control connection of user, after AUTH TLS, login and PROT P.
func loggedIn(t *testing.T, addr, user string) *ctl {
	t.Helper()
	c := dialCtl(t, addr)
	c.authTLS()
	c.login(user, user+"-pw")
	return c
}

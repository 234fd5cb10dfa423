package ftpd

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	ftpserver "github.com/fclairamb/ftpserverlib"

	"github.com/wharf-sftp/wharf/internal/guard"
	"github.com/wharf-sftp/wharf/internal/session"
)

// errTLSFirst answers USER on a control connection that is not encrypted.
var errTLSFirst = errors.New("TLS is required: send AUTH TLS before USER (this server speaks FTPS only)")

// driver is ftpserverlib's MainDriver for one listener.
type driver struct {
	srv      *Server
	settings *ftpserver.Settings
}

var (
	_ ftpserver.MainDriver                        = (*driver)(nil)
	_ ftpserver.MainDriverExtensionUserVerifier   = (*driver)(nil)
	_ ftpserver.MainDriverExtensionPassiveWrapper = (*driver)(nil)
)

// conn is what wharf keeps about one control connection.
type conn struct {
	id    string
	log   *slog.Logger
	start time.Time
	login *session.Login // nil when refused
	// deadline closes a connection that has not logged in in time.
	deadline *time.Timer
	mu       sync.Mutex
	sess     *session.Session // nil until login
	raw      net.Conn         // the control socket: closing it ends the session
}

// close ends the connection from outside the library's goroutine.
func (c *conn) close() {
	if c.raw != nil {
		c.raw.Close()
	}
}

func connOf(cc ftpserver.ClientContext) *conn {
	c, _ := cc.Extra().(*conn)
	return c
}

func (d *driver) GetSettings() (*ftpserver.Settings, error) { return d.settings, nil }

func (d *driver) GetTLSConfig() (*tls.Config, error) { return d.srv.tls, nil }

func (d *driver) ClientConnected(cc ftpserver.ClientContext) (string, error) {
	// tracking.Accept counted the connection; ClientDisconnected follows
	// even a refusal, and counts it out.
	id := session.NewID()
	c := &conn{id: id, start: time.Now(),
		log: d.srv.cfg.Log.With("proto", proto, "conn_id", id, "remote", cc.RemoteAddr().String())}
	cc.SetExtra(c)
	if raw, ok := d.srv.raw.LoadAndDelete(cc.RemoteAddr().String()); ok {
		c.raw = raw.(net.Conn)
	}
	d.srv.live.enter(c)
	login, err := d.srv.cfg.Gate.Admit(proto, id, guard.AddrOf(cc.RemoteAddr()), c.log)
	if err != nil {
		return err.Error(), err // the library replies with this text and hangs up
	}
	c.login = login
	c.deadline = time.AfterFunc(d.srv.loginTimeout, func() {
		c.mu.Lock()
		in := c.sess != nil
		c.mu.Unlock()
		if !in {
			c.log.Info("login timeout", "timeout", d.srv.loginTimeout.String())
			c.close()
		}
	})
	c.log.Debug("connected")
	return d.settings.Banner, nil
}

func (d *driver) ClientDisconnected(cc ftpserver.ClientContext) {
	defer d.srv.conns.Done()
	c := connOf(cc)
	if c == nil {
		return
	}
	d.srv.live.leave(c)
	if c.deadline != nil {
		c.deadline.Stop()
	}
	if c.login != nil {
		c.login.Close()
	}
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return
	}
	s.Close()
	c.log.Info("logout", "duration", time.Since(c.start).String())
}

// PreAuthUser refuses a login on a clear-text control connection before
// the password is sent: a 530 that says why.
func (d *driver) PreAuthUser(cc ftpserver.ClientContext, user string) error {
	if !cc.HasTLSForControl() {
		connOf(cc).log.Warn("login", "user", user, "method", "password", "outcome", "failed", "err", "USER before AUTH TLS")
		return errTLSFirst
	}
	return nil
}

func (d *driver) AuthUser(cc ftpserver.ClientContext, user, pass string) (ftpserver.ClientDriver, error) {
	c := connOf(cc)
	p, err := c.login.Password(user, pass)
	if err != nil {
		return nil, err // the library replies 530 with this text
	}
	s, err := c.login.Open(p, c.close)
	if err != nil {
		return nil, err
	}
	c.log = s.Log
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
	return d.srv.newClientFS(s.FS, cc), nil
}

// WrapPassiveListener holds the session to its share of passive listeners
// (passivelimit.go), marks data connections, so that the TLS layer can
// hold them to session resumption, moves the listener to the control
// listener's address when that is a specific one, and reads the PROXY
// header a balancer forwarding the passive ports sends (Config.WrapData).
func (d *driver) WrapPassiveListener(ln net.Listener) (net.Listener, error) {
	ln, err := d.movePassive(ln)
	if err != nil {
		return nil, err
	}
	return d.srv.admitPassive(ln)
}

func (d *driver) movePassive(ln net.Listener) (net.Listener, error) {
	ip := d.settings.Listener.Addr().(*net.TCPAddr).IP
	if !ip.IsUnspecified() {
		moved, err := rebind(ln, ip, time.Duration(d.settings.ConnectionTimeout)*time.Second)
		if err != nil {
			ln.Close()
			return nil, err
		}
		ln = moved
	}
	if w := d.srv.cfg.WrapData; w != nil {
		ln = w(ln)
	}
	return dataListener{ln}, nil
}

package ftpd

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Passive data ports are few (passive_ports) and shared by every partner.
// Unbounded, one user's sessions could each open a listener and never
// connect, and every other partner would get "421 Could not listen for
// passive connection" for as long as those sessions sent NOOP. So:
//   - a listener nobody connected to closes after PassiveTimeout;
//   - a session holds one listener: a new PASV or EPSV closes the old one
//     (ftpserverlib does too, but only after it has bound the new one);
//   - a user holds at most MaxPassivePerUser over all their sessions.

// errPassiveNoSession refuses a passive listener wharf cannot attribute to
// a session (it would only happen if ftpserverlib changed how it runs).
var errPassiveNoSession = errors.New("no session for this passive listener")

// passives keeps track of the passive listeners held by each session and
// user.
type passives struct {
	timeout time.Duration
	perUser int // 0: no bound

	mu     sync.Mutex
	held   map[*conn]*passiveListener
	byUser map[string]int
}

func newPassives(timeout time.Duration, perUser int) *passives {
	return &passives{timeout: timeout, perUser: perUser, held: make(map[*conn]*passiveListener), byUser: make(map[string]int)}
}

// admit wraps ln, the new passive listener of c's session, or refuses it
// when user holds their share already. The session's previous listener is
// closed first: it is being replaced.
func (p *passives) admit(c *conn, user string, ln net.Listener) (net.Listener, error) {
	p.mu.Lock()
	old := p.held[c]
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.perUser > 0 && p.byUser[user] >= p.perUser {
		return nil, fmt.Errorf("too many passive data connections open for this user (at most %d at once): finish or abort one first", p.perUser)
	}
	l := &passiveListener{Listener: ln, p: p, c: c, user: user}
	p.held[c] = l
	p.byUser[user]++
	l.timer = time.AfterFunc(p.timeout, l.expire)
	return l, nil
}

func (p *passives) release(l *passiveListener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held[l.c] == l {
		delete(p.held, l.c)
	}
	if p.byUser[l.user]--; p.byUser[l.user] <= 0 {
		delete(p.byUser, l.user)
	}
}

// closeAll closes every passive listener (forced shutdown).
func (p *passives) closeAll() {
	p.mu.Lock()
	ls := make([]*passiveListener, 0, len(p.held))
	for _, l := range p.held {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
}

// passiveListener is one session's passive listener. ftpserverlib accepts
// on it when the transfer command comes; until a connection is accepted,
// its timer runs.
type passiveListener struct {
	net.Listener
	p     *passives
	c     *conn
	user  string
	timer *time.Timer
	once  sync.Once
}

func (l *passiveListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err == nil {
		l.timer.Stop() // connected: the transfer's own timeouts apply
	}
	return nc, err
}

// expire closes a listener nobody connected to in time. A transfer command
// sent later gets a 425 from ftpserverlib; the client asks for a new port.
func (l *passiveListener) expire() {
	l.c.log.Info("passive listener expired", "addr", l.Addr().String(), "timeout", l.p.timeout.String())
	l.Close()
}

func (l *passiveListener) Close() error {
	l.once.Do(func() {
		l.p.release(l) // first: it waits for admit to have set l.timer
		l.timer.Stop()
	})
	return l.Listener.Close()
}

// admitPassive attributes ln to the session whose command created it, or
// closes it: ftpserverlib does not close a listener its hook refuses.
func (s *Server) admitPassive(ln net.Listener) (net.Listener, error) {
	c := s.live.current()
	var user string
	if c != nil {
		c.mu.Lock()
		if c.sess != nil {
			user = c.sess.Principal.User
		}
		c.mu.Unlock()
	}
	if user == "" {
		ln.Close()
		s.log.Error("passive listener refused", "err", errPassiveNoSession)
		return nil, errPassiveNoSession
	}
	l, err := s.pasv.admit(c, user, ln)
	if err != nil {
		ln.Close()
		c.log.Warn("passive listener refused", "err", err)
		return nil, err
	}
	return l, nil
}

package ftpd

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// ftpserverlib binds every passive listener to 0.0.0.0, whatever address
// the control listener has: a server meant for one interface (or loopback)
// would open data ports on all of them. rebind moves such a listener to ip.
//
// The library keeps the original listener to set accept deadlines on, so
// its descriptor must stay open: shutdown(2) stops it listening and frees
// the port for a socket bound to ip (both carry SO_REUSEADDR, which Go sets
// on listeners, and the old one no longer listens). The moved listener sets
// its own accept deadline.
func rebind(ln net.Listener, ip net.IP, timeout time.Duration) (net.Listener, error) {
	old, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, fmt.Errorf("passive listener: unexpected type %T", ln)
	}
	port := old.Addr().(*net.TCPAddr).Port
	rc, err := old.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("passive listener: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Shutdown(int(fd), syscall.SHUT_RD) }); err != nil {
		return nil, fmt.Errorf("passive listener: %w", err)
	}
	if serr != nil {
		return nil, fmt.Errorf("passive listener: stop wildcard socket: %w", serr)
	}
	moved, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
	if err != nil {
		old.Close()
		return nil, fmt.Errorf("passive listener: %w", err)
	}
	return &movedListener{TCPListener: moved, old: old, timeout: timeout}, nil
}

type movedListener struct {
	*net.TCPListener
	old     *net.TCPListener
	timeout time.Duration
}

func (l *movedListener) Accept() (net.Conn, error) {
	if l.timeout > 0 {
		if err := l.SetDeadline(time.Now().Add(l.timeout)); err != nil {
			return nil, err
		}
	}
	return l.TCPListener.Accept()
}

func (l *movedListener) Close() error {
	return errors.Join(l.TCPListener.Close(), l.old.Close())
}

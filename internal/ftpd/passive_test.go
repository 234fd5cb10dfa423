package ftpd_test

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
)

// epsv asks for a passive port and returns it.
func (c *ctl) epsv() string {
	c.t.Helper()
	text := c.must("EPSV", "EPSV", 229)
	m := epsvPort.FindStringSubmatch(text)
	if m == nil {
		c.t.Fatalf("EPSV reply %q", text)
	}
	return m[1]
}

// refusedDial reports whether nothing listens on 127.0.0.1:port any more.
func refusedDial(port string) bool {
	nc, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), replyTimeout)
	if err != nil {
		return true
	}
	nc.Close()
	return false
}

// A passive listener nobody connects to is closed after
// ftps.passive_timeout, and a transfer command sent later is refused; the
// session goes on with a new EPSV.
func TestPassiveListenerExpires(t *testing.T) {
	const timeout = 500 * time.Millisecond
	d, addr := startFTPD(t, func(c *config.Config) { c.FTPS.PassiveTimeout = timeout }, "alice")
	c := loggedIn(t, addr, "alice")
	mark := len(d.LogLines())
	port := c.epsv()
	d.WaitLog(t, mark, 20*timeout, daemontest.Msg("passive listener expired", "user", "alice"))
	if !refusedDial(port) {
		t.Errorf("port %s still accepts connections after the passive timeout", port)
	}
	if code, text := c.cmd("LIST"); code < 400 {
		t.Errorf("LIST on the expired listener: %d %q, want a refusal", code, text)
	}
	c.must("NOOP", "NOOP", 200)
	if _, code, text := c.transfer("STOR after-expiry", []byte("ok")); code != 226 {
		t.Errorf("STOR on a new listener: %d %q", code, text)
	}
}

// A session holds one passive listener: a new EPSV closes the previous
// one, and the user's bound counts it once.
func TestPassiveListenerReplaced(t *testing.T) {
	_, addr := startFTPD(t, func(c *config.Config) {
		c.FTPS.PassivePorts = freeRange(t, 8)
		c.FTPS.MaxPassivePerUser = 1
	}, "alice")
	c := loggedIn(t, addr, "alice")
	first := c.epsv()
	for range 5 {
		next := c.epsv() // refused if the replaced listener still counted
		if next != first && !refusedDial(first) {
			t.Errorf("port %s still listens after EPSV replaced it with %s", first, next)
		}
		first = next
	}
	if _, code, text := c.transfer("STOR x", []byte("ok")); code != 226 {
		t.Errorf("STOR: %d %q", code, text)
	}
}

// freeRange returns a passive_ports value of n ports free on 127.0.0.1.
func freeRange(t *testing.T, n int) string {
	t.Helper()
	for lo := 41000 + int(time.Now().UnixNano()%5000); lo < 60000; lo += n {
		ok := true
		var held []net.Listener
		for p := lo; p < lo+n; p++ {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				ok = false
				break
			}
			held = append(held, ln)
		}
		for _, ln := range held {
			ln.Close()
		}
		if ok {
			return strconv.Itoa(lo) + "-" + strconv.Itoa(lo+n-1)
		}
	}
	t.Fatal("no free port range")
	return ""
}

package daemon

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/syncbuf"
)

// take returns the "msg user fingerprint in" of each line logged since
// the last call.
func take(t *testing.T, logs *syncbuf.Buffer) []string {
	t.Helper()
	var out []string
	for line := range strings.SplitSeq(strings.TrimSpace(logs.Take()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		fp, _ := m["fingerprint"].(string)
		f := []string{m["msg"].(string), m["user"].(string), fp, m["in"].(string)}
		if fp == "" {
			f = slices.Delete(f, 2, 3)
		}
		out = append(out, strings.Join(f, " "))
	}
	return out
}

// TestExpiryWarner: a round at start and one a day, each naming the
// credentials expiring within the window in force, soonest first.
func TestExpiryWarner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		day := 24 * time.Hour
		start := time.Now()
		var fps []string
		var keys []config.PublicKey
		for _, in := range []time.Duration{10 * day, 20 * day} {
			pub, _, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			k, err := ssh.NewPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			fps = append(fps, auth.Fingerprint(k))
			keys = append(keys, config.PublicKey{Key: string(ssh.MarshalAuthorizedKey(k)), ExpiresAt: start.Add(in)})
		}
		dir, err := auth.NewDirectory([]config.User{
			{Name: "acme", Home: "/acme", PublicKeys: keys, PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", PasswordExpiresAt: start.Add(2 * day)},
		})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		window := 14 * day
		logs := &syncbuf.Buffer{}
		w := expiryWarner{
			dir:    func() *auth.Directory { return dir },
			window: func() time.Duration { mu.Lock(); defer mu.Unlock(); return window },
			log:    slog.New(slog.NewJSONHandler(logs, nil)),
			every:  day,
		}
		quit := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.run(quit)
		}()
		synctest.Wait()
		want := []string{"password expires soon acme 2d", "key expires soon acme " + fps[0] + " 10d"}
		if got := take(t, logs); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("at start:\n got %q\nwant %q", got, want)
		}
		// Nothing more until the day is over.
		time.Sleep(day - time.Second)
		synctest.Wait()
		if got := take(t, logs); len(got) != 0 {
			t.Errorf("within the first day: %q", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		want = []string{"password expires soon acme 1d", "key expires soon acme " + fps[0] + " 9d"}
		if got := take(t, logs); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("a day later:\n got %q\nwant %q", got, want)
		}
		// Day 6: the second key is 14 days away, inside the window; the
		// password expired on day 2 and is no longer "soon".
		time.Sleep(5 * day)
		synctest.Wait()
		want = []string{"key expires soon acme " + fps[0] + " 4d", "key expires soon acme " + fps[1] + " 14d"}
		if got := take(t, logs); len(got) < 2 || strings.Join(got[len(got)-2:], "|") != strings.Join(want, "|") {
			t.Errorf("day 6:\n got %q\nwant %q last", got, want)
		}
		// A reload's window applies to the next round; 0 silences them.
		mu.Lock()
		window = 0
		mu.Unlock()
		time.Sleep(day)
		synctest.Wait()
		if got := take(t, logs); len(got) != 0 {
			t.Errorf("with key_expiry_warning 0: %q", got)
		}
		close(quit)
		<-done
	})
}

func TestInDays(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5*time.Hour + 30*time.Minute: "5h30m0s",
		24 * time.Hour:               "1d",
		9*24*time.Hour + 4*time.Hour: "9d4h",
		48*time.Hour - time.Minute:   "2d",
		-time.Hour:                   "-1h0m0s",
	} {
		if got := inDays(d); got != want {
			t.Errorf("inDays(%v) = %q, want %q", d, got, want)
		}
	}
}

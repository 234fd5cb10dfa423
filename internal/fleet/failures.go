package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/wharf-sftp/wharf/internal/guard"
	"github.com/wharf-sftp/wharf/internal/s3store"
)

// failuresDir holds each daemon's count of failed logins per address,
// one object per address and daemon, named
// failures/ADDR/OWNER_COUNT_LAST (LAST the latest failure, RFC 3339, UTC,
// whole seconds): like a ban, the listing alone carries it. A daemon
// writes an address's object when its count changes (at most once per
// refresh), and deletes the one it replaces. Every daemon adds the others'
// counts whose latest failure lies within defender.window to its own, so
// that failures spread by the balancer over N daemons ban at the
// threshold, not at N times it.
const failuresDir = "failures/"

// maxFailureWrites bounds the counts one round writes: a scan from many
// addresses is written over several rounds rather than in one burst.
const maxFailureWrites = 1000

// FailureObject is one daemon's count of one address.
type FailureObject struct {
	guard.Failures
	Owner string
	Name  string
	Age   time.Duration // on the store's clock
}

func failureName(owner string, f guard.Failures) string {
	return fmt.Sprintf("%s%s/%s_%d_%s", failuresDir, f.Addr, owner, f.Count, f.Last.UTC().Truncate(time.Second).Format(time.RFC3339))
}

// parseFailureName reads a name failureName wrote; ok is false for
// anything else. Owners may hold "_": the count and the time are read
// from the right.
func parseFailureName(name string) (f FailureObject, ok bool) {
	rest, found := strings.CutPrefix(name, failuresDir)
	addr, rest, found2 := strings.Cut(rest, "/")
	i := strings.LastIndexByte(rest, '_')
	if !found || !found2 || i < 0 {
		return FailureObject{}, false
	}
	last := rest[i+1:]
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '_')
	if j <= 0 {
		return FailureObject{}, false
	}
	var err error
	if f.Addr, err = netip.ParseAddr(addr); err != nil {
		return FailureObject{}, false
	}
	if f.Count, err = strconv.Atoi(rest[j+1:]); err != nil || f.Count < 1 {
		return FailureObject{}, false
	}
	if f.Last, err = time.Parse(time.RFC3339, last); err != nil {
		return FailureObject{}, false
	}
	f.Owner, f.Name = rest[:j], name
	return f, true
}

// PutFailures writes owner's count of f.Addr and returns the object's name.
func (s *State) PutFailures(ctx context.Context, owner string, f guard.Failures) (string, error) {
	name := failureName(owner, f)
	if _, err := s.obj.Put(ctx, name, nil); err != nil {
		return "", fmt.Errorf("write failed logins of %s: %w", f.Addr, err)
	}
	return name, nil
}

// ListFailures reads every daemon's counts, up to maxBans objects.
func (s *State) ListFailures(ctx context.Context) ([]FailureObject, error) {
	var out []FailureObject
	err := s.obj.List(ctx, failuresDir, func(e s3store.Entry) error {
		f, ok := parseFailureName(e.Name)
		if !ok {
			return nil
		}
		if len(out) >= maxBans {
			return errTooMany
		}
		f.Age = e.Age
		out = append(out, f)
		return nil
	})
	if err != nil && !errors.Is(err, errTooMany) {
		return nil, fmt.Errorf("list failed logins in %s: %w", s.URL(), err)
	}
	return out, nil
}

// othersFailed sums, per address, the latest count of each daemon other
// than owner whose latest failure lies within window of now.
func othersFailed(objects []FailureObject, owner string, window time.Duration, now time.Time) map[netip.Addr]int {
	type key struct {
		addr  netip.Addr
		owner string
	}
	latest := map[key]guard.Failures{}
	for _, o := range objects {
		k := key{o.Addr, o.Owner}
		if l, ok := latest[k]; o.Owner != owner && (!ok || o.Last.After(l.Last)) {
			latest[k] = o.Failures
		}
	}
	out := map[netip.Addr]int{}
	for _, f := range latest {
		if now.Sub(f.Last) <= window {
			out[f.Addr] += f.Count
		}
	}
	return out
}

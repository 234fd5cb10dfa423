package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wharf-sftp/wharf/internal/guard"
	"github.com/wharf-sftp/wharf/internal/s3store"
)

// bansDir holds the fleet's bans, one object per ban, named
// bans/ADDR/UNTIL_OFFENCES (UNTIL in RFC 3339, UTC, whole seconds): the
// listing alone carries the whole set, so a refresh is one LIST request
// per 1,000 bans and never a GET. A new ban of an address is a new object
// beside the old ones; readers take the latest. The object's content is
// the same ban in JSON, for people browsing the bucket.
const bansDir = "bans/"

// maxBans bounds the set a daemon reads: beyond it (a scan from a large
// IPv6 range) the rest is left unread, as the guard bounds what it tracks.
const maxBans = 100_000

// errTooMany stops a listing at maxBans.
var errTooMany = errors.New("too many bans")

// BanObject is one ban of the shared set and the object that holds it.
type BanObject struct {
	guard.Ban
	Name string // object name in the folder, bans/...
	ETag string
}

func banName(b guard.Ban) string {
	until := b.Until.UTC().Truncate(time.Second)
	if until.Before(b.Until) {
		until = until.Add(time.Second) // never end a ban early
	}
	return fmt.Sprintf("%s%s/%s_%d", bansDir, b.Addr, until.Format(time.RFC3339), b.Offences)
}

// parseBanName reads a name banName wrote; ok is false for anything else.
func parseBanName(name string) (b guard.Ban, ok bool) {
	rest, found := strings.CutPrefix(name, bansDir)
	addr, rest, found2 := strings.Cut(rest, "/")
	until, offences, found3 := strings.Cut(rest, "_")
	if !found || !found2 || !found3 {
		return guard.Ban{}, false
	}
	var err error
	if b.Addr, err = netip.ParseAddr(addr); err != nil {
		return guard.Ban{}, false
	}
	if b.Until, err = time.Parse(time.RFC3339, until); err != nil {
		return guard.Ban{}, false
	}
	if b.Offences, err = strconv.Atoi(offences); err != nil || b.Offences < 0 {
		return guard.Ban{}, false
	}
	return b, true
}

// PutBan writes b to the shared set. A plain PUT: a new ban is a new
// object, and the same ban written twice is the same object.
func (s *State) PutBan(ctx context.Context, b guard.Ban) error {
	body, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if _, err := s.obj.Put(ctx, banName(b), append(body, '\n')); err != nil {
		return fmt.Errorf("write ban of %s: %w", b.Addr, err)
	}
	return nil
}

// ListBans reads the shared set's objects, expired bans included, in key
// order: by address, then by end. Names that are not bans are skipped.
// truncated reports that the set holds more than maxBans objects and only
// the first were read.
func (s *State) ListBans(ctx context.Context) (bans []BanObject, truncated bool, err error) {
	err = s.obj.List(ctx, bansDir, func(e s3store.Entry) error {
		b, ok := parseBanName(e.Name)
		if !ok {
			return nil
		}
		if len(bans) >= maxBans {
			return errTooMany
		}
		bans = append(bans, BanObject{Ban: b, Name: e.Name, ETag: e.ETag})
		return nil
	})
	if errors.Is(err, errTooMany) {
		return bans, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("list bans in %s: %w", s.URL(), err)
	}
	return bans, false, nil
}

// Current merges objects into the bans in force at now: for each address
// its latest ban, if it has not ended; sorted by address.
func Current(objects []BanObject, now time.Time) []guard.Ban {
	latest := map[netip.Addr]guard.Ban{}
	for _, o := range objects {
		if l, ok := latest[o.Addr]; !ok || o.Until.After(l.Until) {
			latest[o.Addr] = o.Ban
		}
	}
	var out []guard.Ban
	for _, b := range latest {
		if now.Before(b.Until) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(x, y guard.Ban) int { return x.Addr.Compare(y.Addr) })
	return out
}

// LiftBan deletes every ban of addr from the shared set and returns how
// many objects it deleted; each daemon drops the ban at its next refresh.
// A ban written after the listing (a new offence) stays.
func (s *State) LiftBan(ctx context.Context, addr netip.Addr) (int, error) {
	dir := bansDir + addr.String() + "/"
	var names []string
	if err := s.obj.List(ctx, dir, func(e s3store.Entry) error {
		if _, ok := parseBanName(e.Name); ok && len(names) < maxBans {
			names = append(names, e.Name)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("list bans of %s in %s: %w", addr, s.URL(), err)
	}
	for i, name := range names {
		if err := s.obj.Delete(ctx, name, ""); err != nil {
			return i, fmt.Errorf("lift ban of %s: %w", addr, err)
		}
	}
	return len(names), nil
}

package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/s3store"
)

// A users_dir in a bucket is polled: every users_poll one listing of the
// prefix (paginated, a request per 1,000 keys). A listing whose (name,
// ETag) set is the last one's ends the poll there; otherwise only the
// objects whose ETag changed are read, and the new set of objects is handed
// to the reload (reload.go), which loads and applies it exactly as it does
// a local users_dir's files. A poll that fails publishes nothing: the
// config in force keeps serving.

const (
	// usersReadTimeout bounds the first read of the bucket at start-up.
	usersReadTimeout = 2 * time.Minute
	// usersGetConcurrency bounds the objects read at once.
	usersGetConcurrency = 8
	// maxUserObjects and maxUserBytes bound what the poller holds: a users
	// prefix of a fleet holds a file per partner, a few hundred bytes each.
	maxUserObjects = 100_000
	maxUserBytes   = 256 << 20
	// maxListedKeys bounds one listing (1,000 requests): keys that are not
	// user objects (deeper "folders") are listed too.
	maxListedKeys = 1_000_000
	// usersErrorRelog is how often a poll that keeps failing is logged
	// again at error level.
	usersErrorRelog = time.Minute
)

// usersBucket is the poller of a users_dir in a bucket.
type usersBucket struct {
	objs  *s3store.Objects
	url   string // the canonical users_dir, as config.BucketFolder returns it
	every time.Duration
	log   *slog.Logger

	cur     atomic.Pointer[config.UserObjects] // published: never changed once stored
	changed chan struct{}                      // cap 1: the watcher's cue that cur changed
	now     chan struct{}                      // cap 1: poll now (SIGHUP)

	mu     sync.Mutex        // one poll at a time; guards what follows
	listed map[string]string // name -> ETag of the last listing read whole; nil: none yet
	cache  map[string]userObject
	pubTag map[string]string // name -> ETag of what cur holds
	failAt time.Time         // when the polls started failing; zero: they succeed
	logged time.Time         // when that failure was last logged
}

type userObject struct {
	etag string
	data []byte
}

// openUsersBucket reads the users of a users_dir in a bucket and returns
// the poller and cfg with those users; cfg as is and no poller when
// users_dir is not a bucket. It fails start-up when the bucket cannot be
// read or a user object is invalid, as a local users_dir's files do.
func openUsersBucket(cfg *config.Config, log *slog.Logger, count func(op string)) (*usersBucket, *config.Config, error) {
	if !config.IsBucketURL(cfg.UsersDir) {
		return nil, cfg, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), usersReadTimeout)
	defer cancel()
	var opts []func(*s3.Options)
	if count != nil {
		opts = append(opts, s3store.CountRequests(count))
	}
	b, err := newUsersBucket(ctx, cfg, log, opts...)
	if err != nil {
		return nil, nil, err
	}
	if _, err := b.poll(ctx); err != nil {
		return nil, nil, fmt.Errorf("users_dir: %w", err)
	}
	full, err := config.WithUserObjects(cfg, b.current())
	if err != nil {
		return nil, nil, err
	}
	return b, full, nil
}

// newUsersBucket opens the folder cfg.UsersDir names with storage.s3's
// endpoint and credentials; opts tune the S3 client (tests count requests).
func newUsersBucket(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...func(*s3.Options)) (*usersBucket, error) {
	_, _, canon, msg := config.BucketFolder(cfg.UsersDir)
	if msg != "" {
		return nil, fmt.Errorf("users_dir %s: %s", cfg.UsersDir, msg) // validated already
	}
	c := cfg.Storage.S3
	objs, err := s3store.NewObjects(ctx, s3store.FromConfig(c), canon, opts...)
	if err != nil {
		return nil, fmt.Errorf("users_dir %s: %w", canon, err)
	}
	b := &usersBucket{
		objs: objs, url: canon, every: cfg.UsersPollInterval(),
		log:     log.With("component", "reload", "users_dir", canon),
		changed: make(chan struct{}, 1),
		now:     make(chan struct{}, 1),
	}
	b.cur.Store(&config.UserObjects{URL: canon, Objects: map[string][]byte{}})
	return b, nil
}

// current is the set of user objects last read whole.
func (b *usersBucket) current() *config.UserObjects { return b.cur.Load() }

// poll lists the folder and, if the listing differs from the last one,
// reads the objects that changed and publishes the new set. It reports
// whether the set changed.
func (b *usersBucket) poll(ctx context.Context) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	listing, err := b.list(ctx)
	if err != nil {
		return false, err
	}
	if b.listed != nil && maps.Equal(listing, b.listed) {
		return false, nil // the usual case: one request and nothing else
	}
	var need []string
	for name, etag := range listing {
		if c, ok := b.cache[name]; !ok || c.etag != etag {
			need = append(need, name)
		}
	}
	got, err := b.read(ctx, need)
	if b.cache == nil {
		b.cache = map[string]userObject{}
	}
	// What was read is kept even if another read failed: the next poll
	// then reads only what is still missing.
	maps.Copy(b.cache, got)
	if err != nil {
		return false, err
	}
	for name := range b.cache {
		if _, ok := listing[name]; !ok {
			delete(b.cache, name)
		}
	}
	// An object removed between the listing and its read is left out; one
	// replaced in between is taken as read (its newer ETag): the next
	// listing shows that ETag, and this set again.
	next := &config.UserObjects{URL: b.url, Objects: make(map[string][]byte, len(listing))}
	tags := make(map[string]string, len(listing))
	for name := range listing {
		if c, ok := b.cache[name]; ok {
			next.Objects[name], tags[name] = c.data, c.etag
		}
	}
	b.listed = listing
	if maps.Equal(tags, b.pubTag) {
		return false, nil
	}
	b.pubTag = tags
	b.cur.Store(next)
	return true, nil
}

// list returns the user objects of the folder: name -> ETag.
func (b *usersBucket) list(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	var keys int
	var size int64
	err := b.objs.List(ctx, "", func(e s3store.Entry) error {
		if keys++; keys > maxListedKeys {
			return fmt.Errorf("more than %d keys under %s", maxListedKeys, b.url)
		}
		if !config.IsUserObject(e.Name) {
			return nil
		}
		if size += e.Size; len(out) >= maxUserObjects || size > maxUserBytes {
			return fmt.Errorf("%s holds more than %d user objects or %d MiB", b.url, maxUserObjects, maxUserBytes>>20)
		}
		out[e.Name] = e.ETag
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", b.url, err)
	}
	return out, nil
}

// read reads the objects names, a few at a time. An object gone since the
// listing is left out of the result.
func (b *usersBucket) read(ctx context.Context, names []string) (map[string]userObject, error) {
	got := make([]userObject, len(names))
	found := make([]bool, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(usersGetConcurrency)
	for i, name := range names {
		g.Go(func() error {
			data, etag, err := b.objs.Get(gctx, name)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return nil
			case err != nil:
				return fmt.Errorf("read %s%s: %w", b.url, name, err)
			}
			got[i], found[i] = userObject{etag: etag, data: data}, true
			return nil
		})
	}
	err := g.Wait()
	out := make(map[string]userObject, len(names))
	for i, name := range names {
		if found[i] {
			out[name] = got[i]
		}
	}
	return out, err
}

// run polls every b.every, and at once when asked (pollNow), until ctx
// ends, calling changed after each poll that published a new set.
func (b *usersBucket) run(ctx context.Context, changed func()) {
	tick := time.NewTicker(b.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-b.now:
		}
		ok, err := b.poll(ctx)
		if ctx.Err() != nil {
			return
		}
		b.report(err)
		if ok {
			changed()
		}
	}
}

// pollNow asks run for a poll without waiting for the next tick.
func (b *usersBucket) pollNow() {
	select {
	case b.now <- struct{}{}:
	default: // one is already asked for
	}
}

// report logs a failed poll: at error level when the polls start failing
// and again each usersErrorRelog while they go on (every failure at debug
// level), and once when they succeed again. The config in force keeps
// serving meanwhile.
func (b *usersBucket) report(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	switch {
	case err == nil && !b.failAt.IsZero():
		b.log.Info("users bucket readable again", "failed_for", now.Sub(b.failAt).Round(time.Second).String())
		b.failAt = time.Time{}
	case err == nil:
	case b.failAt.IsZero() || now.Sub(b.logged) >= usersErrorRelog:
		if b.failAt.IsZero() {
			b.failAt = now
		}
		b.logged = now
		b.log.Error("cannot read the users bucket; keeping the users in force", "err", err.Error(),
			"failing_for", now.Sub(b.failAt).Round(time.Second).String())
	default:
		b.log.Debug("cannot read the users bucket", "err", err.Error())
	}
}

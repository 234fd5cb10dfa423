package configedit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/s3store"
)

// With users_dir in a bucket (s3://BUCKET/PREFIX/), the users' files are
// objects there, reached with storage.s3's endpoint and credentials. An
// edit reads every user object (to check the result as start-up would),
// then writes one object conditionally: If-None-Match: * to add, If-Match
// with the ETag it read to change or remove. Two operators editing at once
// on different machines (the lock on the config file holds one machine
// only) never overwrite each other: the later write fails with
// s3store.ErrChanged ("changed concurrently, try again") and changes
// nothing. Every daemon polling the bucket picks the change up.

const (
	// getConcurrency bounds the objects read at once.
	getConcurrency = 8
	// maxObjects bounds the user objects one edit reads.
	maxObjects = 100_000
)

// bucket is a users_dir in a bucket, read whole for one edit.
type bucket struct {
	objs  *s3store.Objects
	users *config.UserObjects
	etags map[string]string // name -> ETag of the version read
}

// LoadConfig loads the config at path as start-up does: config.Load, and
// when users_dir is a bucket, the users of its objects. s3opts tune the S3
// client (tests). It does not run daemon's checks.
func LoadConfig(path string, s3opts ...func(*s3.Options)) (*config.Config, error) {
	cfg, _, err := loadConfig(path, s3opts)
	return cfg, err
}

func loadConfig(path string, s3opts []func(*s3.Options)) (*config.Config, *bucket, error) {
	cfg, err := config.Load(path)
	if err != nil || !config.IsBucketURL(cfg.UsersDir) {
		return cfg, nil, err
	}
	b, err := readBucket(context.Background(), cfg, s3opts)
	if err != nil {
		return nil, nil, err
	}
	full, err := config.WithUserObjects(cfg, b.users)
	if err != nil {
		return nil, nil, err
	}
	return full, b, nil
}

// readBucket lists the user objects of cfg's users_dir and reads them.
func readBucket(ctx context.Context, cfg *config.Config, s3opts []func(*s3.Options)) (*bucket, error) {
	_, _, url, msg := config.BucketFolder(cfg.UsersDir)
	if msg != "" {
		return nil, fmt.Errorf("users_dir %s: %s", cfg.UsersDir, msg)
	}
	c := cfg.Storage.S3
	objs, err := s3store.NewObjects(ctx, s3store.FromConfig(c), url, s3opts...)
	if err != nil {
		return nil, fmt.Errorf("users_dir %s: %w", url, err)
	}
	var names []string
	err = objs.List(ctx, "", func(e s3store.Entry) error {
		if !config.IsUserObject(e.Name) {
			return nil
		}
		if len(names) >= maxObjects {
			return fmt.Errorf("more than %d user objects", maxObjects)
		}
		names = append(names, e.Name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list users_dir %s: %w", url, err)
	}
	data := make([][]byte, len(names))
	tags := make([]string, len(names))
	found := make([]bool, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(getConcurrency)
	for i, name := range names {
		g.Go(func() error {
			d, etag, err := objs.Get(gctx, name)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return nil // removed since the listing
			case err != nil:
				return fmt.Errorf("read %s%s: %w", url, name, err)
			}
			data[i], tags[i], found[i] = d, etag, true
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	b := &bucket{objs: objs, users: &config.UserObjects{URL: url, Objects: map[string][]byte{}}, etags: map[string]string{}}
	for i, name := range names {
		if found[i] {
			b.users.Objects[name], b.etags[name] = data[i], tags[i]
		}
	}
	return b, nil
}

// with returns the objects with name set to data (nil: removed), for
// checking an edit before it is written.
func (b *bucket) with(name string, data []byte) *config.UserObjects {
	out := &config.UserObjects{URL: b.users.URL, Objects: make(map[string][]byte, len(b.users.Objects)+1)}
	for n, d := range b.users.Objects {
		out.Objects[n] = d
	}
	if data == nil {
		delete(out.Objects, name)
	} else {
		out.Objects[name] = data
	}
	return out
}

// objectName is the name in the bucket of a user defined at file, or "".
func (b *bucket) objectName(file string) string {
	if b == nil || !strings.HasPrefix(file, b.users.URL) {
		return ""
	}
	return strings.TrimPrefix(file, b.users.URL)
}

// create writes a new object; ErrChanged (wrapped, naming the object) if
// one of that name appeared since the listing.
func (b *bucket) create(name string, data []byte) error {
	_, err := b.objs.Create(context.Background(), name, data)
	return b.writeErr("create", name, err)
}

// replace writes over the version read.
func (b *bucket) replace(name string, data []byte) error {
	_, err := b.objs.Replace(context.Background(), name, data, b.etags[name])
	if errors.Is(err, fs.ErrNotExist) {
		err = s3store.ErrChanged // another operator removed it first
	}
	return b.writeErr("replace", name, err)
}

// remove deletes the version read.
func (b *bucket) remove(name string) error {
	err := b.objs.Delete(context.Background(), name, b.etags[name])
	if errors.Is(err, fs.ErrNotExist) {
		err = s3store.ErrChanged // another operator removed it first
	}
	return b.writeErr("remove", name, err)
}

func (b *bucket) writeErr(op, name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, s3store.ErrChanged):
		return &changedError{url: b.users.URL + name}
	}
	return fmt.Errorf("%s %s%s: %w", op, b.users.URL, name, err)
}

// changedError is s3store.ErrChanged for one object, in the words an
// operator is told (ErrChanged's own text ends in the fs.ErrExist it wraps).
type changedError struct{ url string }

func (e *changedError) Error() string {
	return e.url + ": changed concurrently, try again (another edit won; nothing was changed)"
}

func (e *changedError) Unwrap() error { return s3store.ErrChanged }

// objects are the objects as read, for checking an edit of a local file;
// nil without a bucket.
func (b *bucket) objects() *config.UserObjects {
	if b == nil {
		return nil
	}
	return b.users
}

package config

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"
)

// A users_dir may name a folder of a bucket, s3://BUCKET/PREFIX/, rather
// than a local folder: one object per user (NAME.yaml), with the schema of
// a users_dir file. It is reached with storage.s3's endpoint and
// credentials, which is why it needs the s3 backend. This package does no
// network I/O: the daemon and `wharf user` list and read the objects
// (package s3store) and hand their contents here as UserObjects, and every
// check and error is the one a local users_dir gets, the object's URL
// standing for the file name (s3://b/p/acme.yaml:3: public_keys[0]: ...).

// DefaultUsersPoll is how often a bucket users_dir is listed when
// users_poll is not set.
const DefaultUsersPoll = 5 * time.Second

// MinUsersPoll bounds users_poll from below: every daemon lists the prefix
// this often, and a store bills each request.
const MinUsersPoll = 100 * time.Millisecond

// IsBucketURL reports whether a users_dir names a folder of a bucket
// (s3://...) rather than a local folder.
func IsBucketURL(dir string) bool { return strings.HasPrefix(dir, "s3://") }

// BucketFolder parses a bucket users_dir ("s3://BUCKET/PREFIX/") into its
// bucket, its key prefix ("" or ending in "/"), and the canonical URL the
// objects are named by ("s3://BUCKET/PREFIX/", "s3://BUCKET/" for the
// bucket's root). msg says what is wrong, or is "".
func BucketFolder(dir string) (bucket, prefix, canonical, msg string) {
	u, err := url.Parse(dir)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", "", "", "want s3://BUCKET/PREFIX/"
	}
	if m := CheckS3Bucket(u.Host); m != "" {
		return "", "", "", "bucket " + m
	}
	p := strings.TrimPrefix(u.Path, "/")
	if m := CheckS3Prefix(p); m != "" {
		return "", "", "", "prefix " + m
	}
	if p != "" && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return u.Host, p, "s3://" + u.Host + "/" + p, ""
}

// UsersPollInterval is users_poll, or DefaultUsersPoll when it is not set.
func (c *Config) UsersPollInterval() time.Duration {
	if c.UsersPoll > 0 {
		return c.UsersPoll
	}
	return DefaultUsersPoll
}

func (c *Config) validateUsersBucket(src Source) []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, src.Errorf(field, format, args...))
	}
	if c.UsersPoll < 0 {
		add("users_poll", "must not be negative")
	} else if c.UsersPoll > 0 && c.UsersPoll < MinUsersPoll {
		add("users_poll", "%s is below %s: every daemon lists the bucket this often", c.UsersPoll, MinUsersPoll)
	}
	if !IsBucketURL(c.UsersDir) {
		if c.UsersPoll != 0 {
			add("users_poll", "applies only to a users_dir in a bucket (s3://BUCKET/PREFIX/)")
		}
		return errs
	}
	bucket, prefix, _, msg := BucketFolder(c.UsersDir)
	if msg != "" {
		add("users_dir", "%s", msg)
		return errs
	}
	if c.Storage.Backend != "s3" {
		add("users_dir", "a users_dir in a bucket is read with storage.s3's endpoint and credentials: set storage.backend: s3")
		return errs
	}
	if bucket != c.Storage.S3.Bucket {
		return errs
	}
	// A partner whose home reached the users' objects could write a user
	// of its own; the users' objects in a partner's home would be
	// listed as its files.
	if overlaps(prefix, c.Storage.S3.Prefix) {
		add("users_dir", "%s overlaps the homes (storage.s3.bucket %s, prefix %s): a partner whose home reached it could define users; give the homes and the users prefixes of their own (e.g. storage.s3.prefix: homes/, users_dir: s3://%s/wharf/users/)",
			quote(c.UsersDir), quote(bucket), quote(c.Storage.S3.Prefix), bucket)
	}
	return errs
}

// UserObjects are the user objects of a bucket users_dir, as the caller
// read them: what Load reads from a local users_dir's files.
type UserObjects struct {
	// URL is the users_dir they were listed under, as BucketFolder
	// returns it: a config naming another users_dir is not read from them.
	URL string
	// Objects maps a name relative to URL ("acme.yaml") to its content.
	// Names that IsUserFile refuses, and names with a "/" (deeper
	// "folders"), are ignored, as a local users_dir's are.
	Objects map[string][]byte
}

// IsUserObject reports whether an object named name (relative to the
// users_dir's prefix) is one Load reads: a user file directly under the
// prefix.
func IsUserObject(name string) bool { return !strings.Contains(name, "/") && IsUserFile(name) }

// LoadOptions are where a Load finds what is not on the local disk.
type LoadOptions struct {
	// Overlay holds contents of files not written yet, as for LoadOverlay.
	Overlay map[string][]byte
	// Objects are the objects of a bucket users_dir. nil: a bucket
	// users_dir is not read at all, and Load returns the main file's users
	// only (Load, LoadOverlay). Not nil: a bucket users_dir must be
	// Objects.URL, else its users cannot be read: an error.
	Objects *UserObjects
}

// LoadWith is Load with the files and objects of o.
func LoadWith(path string, o LoadOptions) (*Config, error) {
	l := &loader{overlay: cleanKeys(o.Overlay), bucket: o.Objects}
	return l.load(path)
}

// LoadSnapshotWith is LoadSnapshot with the objects of o (Overlay is not
// used).
func LoadSnapshotWith(path string, o LoadOptions) (*Config, Snapshot, error) {
	l := &loader{sum: newSummer(), bucket: o.Objects}
	c, err := l.load(path)
	return c, l.snapshot(), err
}

// ReadSnapshotWith is ReadSnapshot with the objects of o (Overlay is not
// used).
func ReadSnapshotWith(path, usersDir string, o LoadOptions) Snapshot {
	l := &loader{sum: newSummer(), bucket: o.Objects}
	return l.readSnapshot(path, usersDir)
}

// WithUserObjects returns a copy of c, as Load returned it without the
// objects of its bucket users_dir, with the users of objs appended and the
// whole checked again: what LoadWith returns for the same bytes. Users of
// c that came from objs.URL already are dropped first. A c whose users_dir
// is not a bucket is returned as is.
func WithUserObjects(c *Config, objs *UserObjects) (*Config, error) {
	if !IsBucketURL(c.UsersDir) {
		return c, nil
	}
	if objs == nil {
		objs = &UserObjects{}
	}
	n := *c
	n.Users = slices.DeleteFunc(slices.Clone(c.Users), func(u User) bool {
		return objs.URL != "" && strings.HasPrefix(u.Src.File, objs.URL)
	})
	l := &loader{bucket: objs}
	if errs := l.loadUsersDir(&n, c.File, c.UsersDir, c.lines["users_dir"]); len(errs) > 0 {
		return nil, JoinErrors(errs)
	}
	if err := n.Validate(); err != nil {
		return nil, JoinErrors(unwrap(err))
	}
	return &n, nil
}

// listObjects is userFiles for a bucket users_dir: the URLs of its user
// objects, sorted by name.
func (l *loader) listObjects(dir string) ([]string, error) {
	_, _, canon, msg := BucketFolder(dir)
	switch {
	case msg != "":
		return nil, fmt.Errorf("%s", msg)
	case l.bucket == nil:
		return nil, fmt.Errorf("a users_dir in a bucket is read by the daemon and `wharf user`, with storage.s3's credentials")
	case l.bucket.URL != canon:
		// The daemon polls the folder it started with; another one
		// would need another poller.
		return nil, fmt.Errorf("the users were read from %s: a change of a users_dir in a bucket needs a restart", l.bucket.URL)
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(l.bucket.Objects)) {
		if IsUserObject(name) {
			out = append(out, canon+name)
		}
	}
	return out, nil
}

// readObject is readContents for the URL of an object of a bucket
// users_dir.
func (l *loader) readObject(path string) ([]byte, error) {
	if l.bucket != nil && l.bucket.URL != "" && strings.HasPrefix(path, l.bucket.URL) {
		if data, ok := l.bucket.Objects[strings.TrimPrefix(path, l.bucket.URL)]; ok {
			return data, nil
		}
	}
	return nil, fmt.Errorf("%s: no such object", path)
}

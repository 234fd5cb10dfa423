package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"strings"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wharf-sftp/wharf/internal/config"
)

// ErrChanged is the error of a conditional write that lost: another
// writer created, changed or removed the object since it was read. It
// wraps fs.ErrExist, and its text is what an operator is told.
var ErrChanged = fmt.Errorf("changed concurrently, try again: %w", fs.ErrExist)

// MaxObject bounds what Objects.Get reads: the objects a fleet shares
// (user files, host keys, ban and event records) are small.
const MaxObject = 16 << 20

// Objects is a folder of a bucket used as a small store of named objects
// with conditional writes: what a fleet of daemons shares (users, host
// keys, bans, events). Every write that must not overwrite another
// daemon's is conditional (If-None-Match: * to create, If-Match: <etag> to
// change), so two writers never silently replace each other's object.
type Objects struct {
	client  *s3.Client
	bucket  string
	prefix  string // "" or "a/b/"
	timeout time.Duration
}

// ParseURL splits "s3://BUCKET/PREFIX/" into the bucket and the key prefix
// ("" or ending in "/"). The prefix follows storage.s3.prefix's rules.
func ParseURL(raw string) (bucket, prefix string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", errors.New(`want s3://BUCKET/PREFIX/`)
	}
	if msg := config.CheckS3Bucket(u.Host); msg != "" {
		return "", "", fmt.Errorf("bucket: %s", msg)
	}
	p, err := normPrefix(strings.TrimPrefix(u.Path, "/"))
	if err != nil {
		return "", "", fmt.Errorf("prefix: %w", err)
	}
	return u.Host, p, nil
}

// NewObjects opens the folder rawURL names (s3://BUCKET/PREFIX/) with the
// endpoint, region and credentials of cfg (storage.s3): one set of
// credentials for the bucket's data and the fleet's state.
func NewObjects(ctx context.Context, cfg Config, rawURL string, opts ...func(*s3.Options)) (*Objects, error) {
	bucket, prefix, err := ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rawURL, err)
	}
	cfg.Bucket = bucket
	client, err := NewClient(ctx, cfg, opts...)
	if err != nil {
		return nil, err
	}
	return &Objects{client: client, bucket: bucket, prefix: prefix, timeout: DefaultRequestTimeout}, nil
}

// URL is the folder's s3:// URL, for messages.
func (o *Objects) URL() string { return "s3://" + o.bucket + "/" + o.prefix }

// key maps a name ("users/acme.yaml") to its object key. Names are the
// daemon's own, never a client's; a name that would leave the folder is
// refused all the same.
func (o *Objects) key(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains("/"+name+"/", "/../") || strings.Contains("/"+name+"/", "/./") || strings.Contains(name, "//") {
		return "", fmt.Errorf("object name %q: %w", name, fs.ErrInvalid)
	}
	return o.prefix + name, nil
}

func (o *Objects) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, o.timeout)
}

// Get reads the object name and its ETag; fs.ErrNotExist if there is none.
func (o *Objects) Get(ctx context.Context, name string) ([]byte, string, error) {
	key, err := o.key(name)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := o.ctx(ctx)
	defer cancel()
	out, err := o.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &o.bucket, Key: &key})
	if err != nil {
		return nil, "", s3Err("get", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, MaxObject+1))
	if err != nil {
		return nil, "", s3Err("get", key, err)
	}
	if len(data) > MaxObject {
		return nil, "", fmt.Errorf("get %s: larger than %d bytes", key, MaxObject)
	}
	return data, unquote(out.ETag), nil
}

// Create writes the object name only if there is none (If-None-Match: *),
// and returns its ETag; ErrChanged if another writer created it first.
func (o *Objects) Create(ctx context.Context, name string, data []byte) (string, error) {
	return o.put(ctx, name, data, func(in *s3.PutObjectInput) { in.IfNoneMatch = ptr("*") })
}

// Replace writes the object name only if it is still the version etag
// (If-Match), and returns the new ETag; ErrChanged if it changed or went.
func (o *Objects) Replace(ctx context.Context, name string, data []byte, etag string) (string, error) {
	return o.put(ctx, name, data, func(in *s3.PutObjectInput) { in.IfMatch = ptr(quote(etag)) })
}

// Put writes the object name whatever is there (for records only one
// daemon writes, such as its own heartbeat).
func (o *Objects) Put(ctx context.Context, name string, data []byte) (string, error) {
	return o.put(ctx, name, data, func(*s3.PutObjectInput) {})
}

func (o *Objects) put(ctx context.Context, name string, data []byte, cond func(*s3.PutObjectInput)) (string, error) {
	key, err := o.key(name)
	if err != nil {
		return "", err
	}
	ctx, cancel := o.ctx(ctx)
	defer cancel()
	in := &s3.PutObjectInput{Bucket: &o.bucket, Key: &key, Body: bytes.NewReader(data), ContentLength: ptr(int64(len(data)))}
	cond(in)
	out, err := o.client.PutObject(ctx, in)
	if err != nil {
		return "", conditional("put", key, err)
	}
	return unquote(out.ETag), nil
}

// Delete removes the object name: if etag is not empty, only if it is
// still that version (If-Match), else ErrChanged. A missing object is
// fs.ErrNotExist when etag is given, and no error otherwise.
func (o *Objects) Delete(ctx context.Context, name, etag string) error {
	key, err := o.key(name)
	if err != nil {
		return err
	}
	ctx, cancel := o.ctx(ctx)
	defer cancel()
	in := &s3.DeleteObjectInput{Bucket: &o.bucket, Key: &key}
	if etag != "" {
		in.IfMatch = ptr(quote(etag))
	}
	if _, err := o.client.DeleteObject(ctx, in); err != nil {
		return conditional("delete", key, err)
	}
	return nil
}

// Entry is one object of a listing.
type Entry struct {
	Name    string // relative to the folder
	ETag    string
	Size    int64
	ModTime time.Time
	// Age is how long ago the object was last written, on the store's
	// clock (the listing's Date header against LastModified), so that
	// daemons whose clocks disagree agree on it; to a second, as the
	// store dates.
	Age time.Duration
}

// List calls fn with every object under dir ("" for the whole folder, or
// a name ending in "/"), a page at a time, in key order, until fn returns
// an error (which List returns).
func (o *Objects) List(ctx context.Context, dir string, fn func(Entry) error) error {
	prefix := o.prefix + dir
	in := &s3.ListObjectsV2Input{Bucket: &o.bucket, Prefix: &prefix}
	p := s3.NewListObjectsV2Paginator(o.client, in)
	for p.HasMorePages() {
		rctx, cancel := o.ctx(ctx)
		page, err := p.NextPage(rctx)
		cancel()
		if err != nil {
			return s3Err("list", prefix, err)
		}
		now := time.Now()
		if server, ok := awsmiddleware.GetServerTime(page.ResultMetadata); ok {
			now = server
		}
		for _, obj := range page.Contents {
			if obj.Key == nil {
				continue
			}
			e := Entry{Name: strings.TrimPrefix(*obj.Key, o.prefix), ETag: unquote(obj.ETag)}
			if obj.Size != nil {
				e.Size = *obj.Size
			}
			if obj.LastModified != nil {
				e.ModTime = *obj.LastModified
				e.Age = now.Sub(e.ModTime)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// conditional maps a lost condition (412 Precondition Failed, or 409 from
// stores that answer a concurrent conditional write so) to ErrChanged.
func conditional(op, key string, err error) error {
	code, status := apiCode(err)
	if status == 412 || code == "PreconditionFailed" || code == "ConditionalRequestConflict" {
		return fmt.Errorf("%s %s: %w", op, key, ErrChanged)
	}
	return s3Err(op, key, err)
}

func quote(etag string) string { return `"` + strings.Trim(etag, `"`) + `"` }

func unquote(etag *string) string {
	if etag == nil {
		return ""
	}
	return strings.Trim(*etag, `"`)
}

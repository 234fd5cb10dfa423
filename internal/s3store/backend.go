package s3store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// recordsDir is the folder, directly under the configured prefix, that
// holds one small object per partial (see partial.go). Its name starts
// with vfs's partial prefix, so that the FS above hides it from a home
// that is the whole prefix and refuses a client naming it.
const recordsDir = ".wharf-partial.s3"

// Backend serves homes from one bucket under one key prefix: the s3
// storage backend (storage.backend: s3). It implements vfs.Backend; each
// home is a vfs.Store (see store.go).
//
// Within one daemon it knows which names have an upload in progress and
// which partials such an upload has taken over, so that Recover never
// aborts a live upload and two sessions never continue one partial. In
// the bucket, each multipart upload in progress has a live record with a
// heartbeat (see live.go), so that a daemon that dies mid-upload leaves
// its resume point, which the other daemons' takeover (takeover.go) makes
// a partial once the lease has expired, and several daemons on one prefix
// never take over or abort each other's uploads in progress. They do not
// share claims yet: two daemons may continue one partial at once.
type Backend struct {
	client  *s3.Client
	cfg     Config
	o       Options
	bucket  string
	prefix  string // normalised cfg.Prefix: "" or "a/b/"
	records string // prefix + recordsDir + "/"
	copyMax int64  // the largest copy in one request: MaxPartSize (tests lower it)
	owner   string // this daemon, as live records name it (Options.Owner)

	spoolUsed atomic.Int64 // bytes all uploads have spooled (see spool.go)

	mu      sync.Mutex
	active  map[string]int         // object key: uploads of it in progress here
	claimed map[string]bool        // object key: an upload in progress continues its partial
	live    map[string]*liveUpload // upload id: a multipart upload in progress here, with a live record
	// The heartbeat of live records (started by the first live upload)
	// and the takeover of dead uploads (StartTakeover): Close stops both
	// and waits for them.
	stopBeat     context.CancelFunc
	stopTakeover context.CancelFunc
	background   sync.WaitGroup
	closed       bool
}

var _ vfs.Backend = (*Backend)(nil)

// NewBackend builds the client (NewClient, with o.Client) and checks
// nothing on the network: a wrong bucket or credentials fail the first
// request, as they would later anyway.
func NewBackend(ctx context.Context, cfg Config, o Options) (*Backend, error) {
	if cfg.Setstat == "" {
		cfg.Setstat = SetstatIgnore
	}
	opts := o.Client
	if o.CountRequest != nil {
		opts = append(append([]func(*s3.Options){}, opts...), countRequests(o.CountRequest))
	}
	client, err := NewClient(ctx, cfg, opts...)
	if err != nil {
		return nil, err
	}
	prefix, err := normPrefix(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("s3 config: prefix: %w", err)
	}
	if o.LeaseTimeout <= 0 {
		o.LeaseTimeout = cfg.UploadLease
	}
	o = o.withDefaults()
	owner := o.Owner
	if owner == "" {
		owner = defaultOwner(o.SpoolDir)
	}
	return &Backend{
		client:  client,
		cfg:     cfg,
		o:       o,
		owner:   owner,
		bucket:  cfg.Bucket,
		prefix:  prefix,
		records: prefix + recordsDir + "/",
		copyMax: MaxPartSize,
		active:  map[string]int{},
		claimed: map[string]bool{},
		live:    map[string]*liveUpload{},
	}, nil
}

// Home returns the store of home (a clean rooted path; "/" is the whole
// prefix), writing its folder marker if nothing is there yet. A home
// cannot be the folder of partial records or lie inside it.
func (b *Backend) Home(home string) (vfs.Store, error) {
	home = path.Clean("/" + home)
	prefix, err := DirPrefix(b.prefix, home)
	if err != nil {
		return nil, fmt.Errorf("s3 home %s: %w", home, err)
	}
	if strings.HasPrefix(prefix, b.records) {
		return nil, fmt.Errorf("s3 home %s: inside wharf's own folder %s: %w", home, recordsDir, fs.ErrInvalid)
	}
	s := &store{b: b, prefix: prefix, looks: newLooks()}
	if home == "/" {
		return s, nil
	}
	ctx, cancel := b.reqCtx()
	defer cancel()
	page, err := b.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: &b.bucket, Prefix: &prefix, MaxKeys: ptr(int32(1))})
	if err != nil {
		return nil, s3Err("list", prefix, err)
	}
	if len(page.Contents) == 0 {
		if err := s.putMarker(prefix); err != nil {
			return nil, fmt.Errorf("create home %s: %w", home, err)
		}
	}
	return s, nil
}

// Close stops the heartbeat of uploads in progress and the takeover, and
// waits for them (a pass of the takeover stops before its next upload;
// each of its requests ends within Options.RequestTimeout). Homes already returned stay usable until they
// are closed, but an upload still in progress then is no longer
// refreshed: after LeaseTimeout, another daemon takes it for a dead
// daemon's. The daemon closes the backend once its sessions have ended.
// The SDK's client needs no closing.
func (b *Backend) Close() error {
	b.mu.Lock()
	b.closed = true
	stops := []context.CancelFunc{b.stopBeat, b.stopTakeover}
	b.mu.Unlock()
	for _, stop := range stops {
		if stop != nil {
			stop()
		}
	}
	b.background.Wait()
	return nil
}

// reqCtx bounds one request that moves no file data; xferCtx one that
// does. Both derive from Background: a store's calls carry no context of
// their own, and a request must not outlive its bound.
func (b *Backend) reqCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), b.o.RequestTimeout)
}

func (b *Backend) xferCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), b.o.TransferTimeout)
}

// begin registers an upload of key in progress; end undoes it.
func (b *Backend) begin(key string) {
	b.mu.Lock()
	b.active[key]++
	b.mu.Unlock()
}

func (b *Backend) end(key string) {
	b.mu.Lock()
	if b.active[key]--; b.active[key] <= 0 {
		delete(b.active, key)
	}
	b.mu.Unlock()
}

func (b *Backend) isActive(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.active[key] > 0
}

// claim takes key's partial for an upload that continues it, unless
// another upload has; release gives it back.
func (b *Backend) claim(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.claimed[key] {
		return false
	}
	b.claimed[key] = true
	return true
}

func (b *Backend) release(key string) {
	b.mu.Lock()
	delete(b.claimed, key)
	b.mu.Unlock()
}

func (b *Backend) isClaimed(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.claimed[key]
}

// copySource is key as UploadPartCopy and CopyObject name their source:
// bucket/key, URL-encoded. Query encoding with %20 for a space is what
// both AWS and versitygw decode: versitygw reads a bare "+" as a space,
// so path encoding (which leaves "+") copies the wrong key.
func (b *Backend) copySource(key string) string {
	return b.bucket + "/" + strings.ReplaceAll(url.QueryEscape(key), "+", "%20")
}

// storageURL names an object for a processor reading the bucket.
func (b *Backend) storageURL(key string) string { return "s3://" + b.bucket + "/" + key }

// opError is an S3 failure: what was tried on which key, the SDK's error,
// and the io/fs sentinel or errno it amounts to (kind, nil if none),
// which errors.Is finds and the FS above reduces it to. Its text names the
// key: the FS shows clients only their own path.
type opError struct {
	op, key string
	kind    error
	err     error
}

func (e *opError) Error() string {
	if e.err == nil {
		return "s3 " + e.op + " " + e.key + ": " + e.kind.Error()
	}
	return "s3 " + e.op + " " + e.key + ": " + e.err.Error()
}

func (e *opError) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.kind, e.err} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// s3Err wraps an error of the SDK, naming its kind.
func s3Err(op, key string, err error) error {
	if err == nil {
		return nil
	}
	return &opError{op: op, key: key, kind: kindOf(err), err: err}
}

// failure is an error of the store's own making about key.
func failure(op, key string, kind error, format string, args ...any) error {
	return &opError{op: op, key: key, kind: kind, err: fmt.Errorf(format, args...)}
}

// apiCode returns the S3 error code and HTTP status of err.
func apiCode(err error) (string, int) {
	var ae smithy.APIError
	var re *smithyhttp.ResponseError
	code, status := "", 0
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, status
}

// kindOf maps an S3 error to what it means for a file: a missing key (or
// upload), a failed precondition (If-None-Match: the name exists), a
// file/folder clash as versitygw reports it, a refusal. A missing bucket
// is the operator's problem and maps to nothing a client could act on.
func kindOf(err error) error {
	code, status := apiCode(err)
	switch {
	case code == "NoSuchBucket":
		return nil
	case code == "NoSuchKey" || code == "NotFound" || code == "NoSuchUpload" || status == 404:
		return fs.ErrNotExist
	case code == "PreconditionFailed" || status == 412:
		return fs.ErrExist
	case code == "ExistingObjectIsDirectory":
		return syscall.EISDIR
	case code == "ObjectParentIsFile":
		return syscall.ENOTDIR
	case code == "AccessDenied" || status == 403:
		return fs.ErrPermission
	}
	return nil
}

func notFound(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func ptr[T any](v T) *T { return &v }

// info is a FileInfo of an object or a folder.
type info struct {
	name  string
	size  int64
	mtime time.Time
	dir   bool
	etag  string // an object's, from HEAD
}

func (i info) Name() string       { return i.name }
func (i info) Size() int64        { return i.size }
func (i info) ModTime() time.Time { return i.mtime }
func (i info) IsDir() bool        { return i.dir }
func (i info) Sys() any           { return nil }

// Mode: objects keep no mode, so every file reads 0644 and every folder
// 0755, whatever a client set (see Config.Setstat).
func (i info) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}

// epoch is the time of a folder that has none: a common prefix carries
// no date. The Unix epoch, rather than Go's zero time, fits every
// protocol's time field.
func epoch() time.Time { return time.Unix(0, 0).UTC() }

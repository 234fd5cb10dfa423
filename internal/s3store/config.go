// Package s3store is the client side of wharf's S3 storage: the settings of
// storage.s3, an S3 client built from them (NewClient), and the one mapping
// between client paths and object keys (Key, Path). The store that serves
// homes from a bucket builds on it.
package s3store

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wharf-sftp/wharf/internal/config"
)

// S3's own limits on a multipart upload's parts.
const (
	MinPartSize = config.S3MinPartSize // every part but the last
	MaxPartSize = config.S3MaxPartSize
	// MaxUploadConcurrency bounds the parts in flight per upload.
	MaxUploadConcurrency = config.S3MaxUploadConcurrency
)

// Config mirrors storage.s3 of the config file, key for key.
type Config struct {
	Bucket   string // bucket
	Region   string // region; empty: the SDK's (AWS_REGION, profile)
	Endpoint string // endpoint; empty: AWS. http(s)://host[:port], e.g. http://127.0.0.1:7070
	// PathStyle addresses the bucket in the path (host/bucket/key) rather
	// than the host name (bucket.host/key): what most self-hosted stores
	// need. (path_style)
	PathStyle bool
	Prefix    string // prefix: a folder of the bucket that holds every home; empty: the bucket's root
	// AccessKeyID and SecretAccessKeyFile (access_key_id,
	// secret_access_key_file) are static credentials, both or neither;
	// neither: the SDK's default chain (environment, shared profile,
	// instance role). The secret is read from the file, never written in
	// the config.
	AccessKeyID         string
	SecretAccessKeyFile string
	PartSize            int64 // part_size, bytes
	UploadConcurrency   int   // upload_concurrency: parts in flight per upload
	// Setstat says what SETSTAT of modes and times does (setstat): "ignore"
	// (the default; "" means it too) accepts and ignores it, since objects
	// keep neither and WinSCP sets times after every upload; "error"
	// refuses it with errors.ErrUnsupported.
	Setstat string
	// MaxRenameObjects bounds a folder rename (max_rename_objects): S3 has
	// no rename, so each object under the folder is copied and deleted; a
	// folder holding more is refused before anything is copied.
	MaxRenameObjects int
	// UploadLease (upload_lease) is the lease of a multipart upload in
	// progress (see live.go): Options.LeaseTimeout, with a heartbeat
	// (Options.LeaseRefresh) every fifth of it, unless Options set them.
	// 0: DefaultLeaseTimeout.
	UploadLease time.Duration
}

// The values of Config.Setstat.
const (
	SetstatIgnore = "ignore"
	SetstatError  = "error"
)

// DefaultConfig holds the defaults of the schema: 16 MiB parts, 4 in
// flight, us-east-1, setstat ignored, folder renames up to 1,000 objects,
// a 5-minute upload lease.
func DefaultConfig() Config {
	return Config{Region: "us-east-1", PartSize: 16 << 20, UploadConcurrency: 4,
		Setstat: SetstatIgnore, MaxRenameObjects: 1000, UploadLease: DefaultLeaseTimeout}
}

// Validate returns every problem at once, each naming its key. No I/O: the
// secret file is read by NewClient.
func (c Config) Validate() error {
	var errs []error
	// The rules are the config file's (config.S3), so that a Config built
	// in code obeys what `wharf config check` enforces.
	if msg := config.CheckS3Bucket(c.Bucket); msg != "" {
		errs = append(errs, fmt.Errorf("bucket: %s", msg))
	}
	if c.Endpoint != "" {
		if msg := config.CheckS3Endpoint(c.Endpoint); msg != "" {
			errs = append(errs, fmt.Errorf("endpoint: %s", msg))
		}
	}
	if _, err := normPrefix(c.Prefix); err != nil {
		errs = append(errs, fmt.Errorf("prefix: %w", err))
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKeyFile == "") {
		errs = append(errs, errors.New("access_key_id and secret_access_key_file go together: set both, or neither for the SDK's default credentials"))
	}
	if c.PartSize < MinPartSize || c.PartSize > MaxPartSize {
		errs = append(errs, fmt.Errorf("part_size: %d bytes is outside S3's 5MiB to 5GiB", c.PartSize))
	}
	if c.UploadConcurrency < 1 || c.UploadConcurrency > MaxUploadConcurrency {
		errs = append(errs, fmt.Errorf("upload_concurrency: %d is outside 1 to %d", c.UploadConcurrency, MaxUploadConcurrency))
	}
	if c.Setstat != "" && c.Setstat != SetstatIgnore && c.Setstat != SetstatError {
		errs = append(errs, fmt.Errorf("setstat: %q is neither %q nor %q", c.Setstat, SetstatIgnore, SetstatError))
	}
	if c.MaxRenameObjects < 1 {
		errs = append(errs, fmt.Errorf("max_rename_objects: %d; want at least 1", c.MaxRenameObjects))
	}
	if c.UploadLease != 0 {
		if msg := config.CheckS3UploadLease(c.UploadLease); msg != "" {
			errs = append(errs, fmt.Errorf("upload_lease: %s", msg))
		}
	}
	return errors.Join(errs...)
}

// Options are what a Backend needs beyond storage.s3: settings of other
// sections, the daemon's paths, and what tests replace.
type Options struct {
	// SpoolDir is where an upload keeps bytes written far beyond the part
	// it is filling (a client that writes the end first), in a file of
	// its own that is unlinked at once: a folder under state_dir. Empty:
	// no spool, and such a write fails.
	SpoolDir string
	// SpoolMax bounds the bytes all uploads of the backend together may
	// spool; a write beyond it fails with ENOSPC. 0: DefaultSpoolMax.
	SpoolMax int64
	// PartialTTL is uploads.partial_ttl: how long a broken upload's
	// partial waits for a resume before Recover aborts it. 0:
	// DefaultPartialTTL.
	PartialTTL time.Duration
	// Log receives what Recover recovers and aborts, and heartbeats that
	// fail (nothing else logs here: the FS above records what clients do).
	// nil: discard.
	Log *slog.Logger
	// Now is the clock partials and leases age by; Recover moves it by
	// the store's clock skew, so that ages compare the store's times.
	// nil: time.Now.
	Now func() time.Time
	// RequestTimeout bounds each request that moves no file data (HEAD,
	// LIST, DELETE, the multipart bookkeeping); TransferTimeout each that
	// does (a part, a copy, a small object). 0: the defaults. A download
	// is bounded by nothing but its File's Close: it lasts as long as the
	// client reads.
	RequestTimeout  time.Duration
	TransferTimeout time.Duration
	// ListPage is the MaxKeys of each listing request (S3 returns at most
	// 1,000). 0: 1,000.
	ListPage int
	// Client tunes the S3 client (NewClient's opts): tests count bytes on
	// the wire with it.
	Client []func(*s3.Options)
	// CountRequest, if set, is called with the operation's name for each
	// request sent to the store, retries included (wharf_s3_requests_total).
	CountRequest func(op string)
	// Owner names this daemon in the live records of its uploads in
	// progress (see live.go): the same across its restarts, unique among
	// the daemons sharing the prefix. At start-up, Recover takes an upload
	// in progress of its own name for one that died with the daemon's
	// previous life, whatever its heartbeat. Empty: derived from the host
	// name and SpoolDir (the daemon keeps it under state_dir), so one host
	// can run several daemons with their own state_dir; without a SpoolDir,
	// a random name, and a restarted daemon finds its dead uploads only
	// once their heartbeat has expired.
	Owner string
	// LeaseRefresh is how often the live records of uploads in progress
	// are rewritten, and LeaseTimeout how long after the last rewrite an
	// upload of another daemon is taken for dead. 0: Config.UploadLease
	// (else DefaultLeaseTimeout) and a fifth of LeaseTimeout.
	LeaseRefresh time.Duration
	LeaseTimeout time.Duration
	// Recovered, if set, is called after each pass of the running takeover
	// (StartTakeover) that recovered or aborted dead uploads, with their
	// numbers: the daemon adds them to the counts of its start-up Recover
	// (wharf_uploads_recovered_total, wharf_s3_uploads_swept_total).
	Recovered func(recovered, aborted int)
}

// Defaults of Options.
const (
	DefaultSpoolMax        = 1 << 30
	DefaultPartialTTL      = 7 * 24 * time.Hour
	DefaultRequestTimeout  = time.Minute
	DefaultTransferTimeout = 15 * time.Minute
	maxListPage            = 1000
)

func (o Options) withDefaults() Options {
	if o.SpoolMax == 0 {
		o.SpoolMax = DefaultSpoolMax
	}
	if o.PartialTTL == 0 {
		o.PartialTTL = DefaultPartialTTL
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.TransferTimeout == 0 {
		o.TransferTimeout = DefaultTransferTimeout
	}
	if o.LeaseTimeout <= 0 {
		o.LeaseTimeout = DefaultLeaseTimeout
	}
	if o.LeaseRefresh <= 0 {
		o.LeaseRefresh = o.LeaseTimeout / leaseBeats
	}
	if o.ListPage <= 0 || o.ListPage > maxListPage {
		o.ListPage = maxListPage
	}
	return o
}

// FromConfig is storage.s3 of the config file as this package takes it:
// the one mapping, for the backend and for every fleet folder (users,
// state) reached with the same endpoint and credentials.
func FromConfig(c config.S3) Config {
	return Config{
		Bucket: c.Bucket, Region: c.Region, Endpoint: c.Endpoint, PathStyle: c.PathStyle, Prefix: c.Prefix,
		AccessKeyID: c.AccessKeyID, SecretAccessKeyFile: c.SecretAccessKeyFile,
		PartSize: int64(c.PartSize), UploadConcurrency: c.UploadConcurrency,
		Setstat: c.Setstat, MaxRenameObjects: c.MaxRenameObjects, UploadLease: c.UploadLease,
	}
}

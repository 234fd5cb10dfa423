package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Storage selects the backend every home lives on.
type Storage struct {
	Backend string `yaml:"backend"` // local | memory | s3
	Root    string `yaml:"root"`    // local: every home lies beneath it
	S3      S3     `yaml:"s3"`      // s3: the bucket
}

// S3 is storage.s3: the bucket that holds every home, under Prefix.
type S3 struct {
	Bucket   string `yaml:"bucket"`
	Region   string `yaml:"region"`   // empty: the SDK's (AWS_REGION, profile)
	Endpoint string `yaml:"endpoint"` // empty: AWS; e.g. http://127.0.0.1:7070
	// PathStyle addresses the bucket in the path (host/bucket/key) rather
	// than the host name: what most self-hosted stores need.
	PathStyle bool   `yaml:"path_style"`
	Prefix    string `yaml:"prefix"` // a folder of the bucket that holds every home; empty: its root
	// AccessKeyID and SecretAccessKeyFile are static credentials, both or
	// neither; neither: the SDK's default chain (environment, shared
	// profile, instance role). The secret is read from the file, never
	// written in the config.
	AccessKeyID         string   `yaml:"access_key_id"`
	SecretAccessKeyFile string   `yaml:"secret_access_key_file"`
	PartSize            ByteSize `yaml:"part_size"`
	// UploadConcurrency is the parts of one upload in flight at once:
	// memory per upload is about part_size × (upload_concurrency + 1).
	UploadConcurrency int `yaml:"upload_concurrency"`
	// Setstat is what a request to set a mode or times does on objects,
	// which have neither: "ignore" (accepted, as WinSCP needs after every
	// upload) or "error".
	Setstat string `yaml:"setstat"`
	// MaxRenameObjects bounds a folder rename, which copies every object
	// beneath it.
	MaxRenameObjects int `yaml:"max_rename_objects"`
	// UploadLease is how long after its last heartbeat a multipart upload
	// in progress counts as its daemon's, which refreshes it every fifth
	// of that; once it has expired, any daemon on the bucket makes the
	// upload a resumable partial (s3store, live.go). Every daemon of a
	// fleet must use the same value. Read at start only.
	UploadLease time.Duration `yaml:"upload_lease"`
}

// S3's own limits on a multipart upload's parts, and wharf's on the parts
// in flight per upload.
const (
	S3MinPartSize          = 5 << 20
	S3MaxPartSize          = 5 << 30
	S3MaxUploadConcurrency = 64
)

// Bounds of storage.s3.upload_lease: the default, and the shortest a
// daemon accepts. A live upload's record is rewritten every fifth of the
// lease, and stores date it in whole seconds, so its age reads up to a
// fifth of the lease plus a second plus a request's latency: below 3 s a
// slow request would make a live upload look dead.
const (
	S3DefaultUploadLease = 5 * time.Minute
	S3MinUploadLease     = 3 * time.Second
)

// DefaultS3 holds the defaults of storage.s3.
func DefaultS3() S3 {
	return S3{Region: "us-east-1", PartSize: 16 << 20, UploadConcurrency: 4, Setstat: "ignore", MaxRenameObjects: 1000,
		UploadLease: S3DefaultUploadLease}
}

func (s *Storage) validate(src Source) []error {
	var errs []error
	switch s.Backend {
	case "local":
		if s.Root == "" {
			errs = append(errs, src.Errorf("storage.root", "required for the local backend"))
		}
	case "memory":
		// Nothing is stored on disk, so root means nothing.
	case "s3":
		errs = append(errs, s.S3.validate(src)...)
	default:
		errs = append(errs, src.Errorf("storage.backend", "unknown backend %s (want local, memory or s3)", quote(s.Backend)))
	}
	return errs
}

func (c *S3) validate(src Source) []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, src.Errorf("storage.s3."+field, format, args...))
	}
	if msg := CheckS3Bucket(c.Bucket); msg != "" {
		add("bucket", "%s", msg)
	}
	if c.Endpoint != "" {
		if msg := CheckS3Endpoint(c.Endpoint); msg != "" {
			add("endpoint", "%s", msg)
		}
	}
	if msg := CheckS3Prefix(c.Prefix); msg != "" {
		add("prefix", "%s", msg)
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKeyFile == "") {
		add("access_key_id", "access_key_id and secret_access_key_file go together: set both, or neither for the SDK's default credentials")
	}
	if c.PartSize < S3MinPartSize || c.PartSize > S3MaxPartSize {
		add("part_size", "%d bytes is outside S3's 5MiB to 5GiB", c.PartSize)
	}
	if c.UploadConcurrency < 1 || c.UploadConcurrency > S3MaxUploadConcurrency {
		add("upload_concurrency", "%d is outside 1 to %d", c.UploadConcurrency, S3MaxUploadConcurrency)
	}
	if c.Setstat != "ignore" && c.Setstat != "error" {
		add("setstat", "unknown value %s (want ignore or error)", quote(c.Setstat))
	}
	if c.MaxRenameObjects < 1 {
		add("max_rename_objects", "must be at least 1")
	}
	if msg := CheckS3UploadLease(c.UploadLease); msg != "" {
		add("upload_lease", "%s", msg)
	}
	return errs
}

// CheckS3Bucket says what is wrong with a bucket name, or "". It applies S3's naming rules for new buckets: 3 to 63
// lowercase letters, digits, '.' and '-', starting and ending with a
// letter or digit. Names outside them cannot be addressed in a host name,
// and most stores refuse them anyway.
func CheckS3Bucket(b string) string {
	if b == "" {
		return "required for the s3 backend"
	}
	if len(b) < 3 || len(b) > 63 {
		return fmt.Sprintf("%s: must be 3 to 63 characters", quote(b))
	}
	for i := 0; i < len(b); i++ {
		ch := b[i]
		alnum := ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9'
		if !alnum && ((ch != '.' && ch != '-') || i == 0 || i == len(b)-1) {
			return fmt.Sprintf("%s: only lowercase letters, digits, '.' and '-', starting and ending with a letter or digit", quote(b))
		}
	}
	return ""
}

// CheckS3UploadLease says what is wrong with an upload lease, or "".
func CheckS3UploadLease(d time.Duration) string {
	if d < S3MinUploadLease {
		return fmt.Sprintf("%s is below %s: a live upload, refreshed every fifth of it and dated in whole seconds, would look dead after one slow request", d, S3MinUploadLease)
	}
	return ""
}

// CheckS3Endpoint says what is wrong with an endpoint URL, or "". It accepts http or https with a host and nothing else a
// client could misread: user info in the URL would put a secret in the
// config file and in every error the SDK prints with the URL.
func CheckS3Endpoint(e string) string {
	u, err := url.Parse(e)
	switch {
	case err != nil:
		return "not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("%s: scheme must be http or https", quote(u.Redacted()))
	case u.Host == "":
		return fmt.Sprintf("%s: no host", quote(u.Redacted()))
	case u.User != nil:
		return "must not carry user info; use access_key_id and secret_access_key_file"
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Sprintf("%s: no query or fragment", quote(u.Redacted()))
	}
	return ""
}

// CheckS3Prefix says what is wrong with a key prefix, or "": empty, or
// folder names joined by "/" (a trailing "/" is allowed), none of them
// empty, "." or "..", and no leading "/".
func CheckS3Prefix(p string) string {
	if p == "" {
		return ""
	}
	for _, part := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		if part == "" || part == "." || part == ".." {
			return `must be empty or folder names joined by "/" (no empty, "." or ".." part, no leading "/")`
		}
	}
	return ""
}

// partialTTLDefault is how long a broken upload waits for its resume.
const partialTTLDefault = 7 * 24 * time.Hour

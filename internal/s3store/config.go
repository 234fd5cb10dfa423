// Package s3store is the client side of wharf's S3 storage: the settings of
// storage.s3, an S3 client built from them (NewClient), and the one mapping
// between client paths and object keys (Key, Path). The store that serves
// homes from a bucket builds on it.
package s3store

import (
	"errors"
	"fmt"
	"net/url"
)

// S3's own limits on a multipart upload's parts.
const (
	MinPartSize = 5 << 20 // every part but the last
	MaxPartSize = 5 << 30
	// MaxUploadConcurrency bounds the parts in flight per upload: memory per
	// upload is part_size × (upload_concurrency + 1).
	MaxUploadConcurrency = 64
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
}

// DefaultConfig holds the defaults of the schema: 16 MiB parts, 4 in
// flight, us-east-1.
func DefaultConfig() Config {
	return Config{Region: "us-east-1", PartSize: 16 << 20, UploadConcurrency: 4}
}

// Validate returns every problem at once, each naming its key. No I/O: the
// secret file is read by NewClient.
func (c Config) Validate() error {
	var errs []error
	if err := validBucket(c.Bucket); err != nil {
		errs = append(errs, fmt.Errorf("bucket: %w", err))
	}
	if c.Endpoint != "" {
		if err := validEndpoint(c.Endpoint); err != nil {
			errs = append(errs, fmt.Errorf("endpoint: %w", err))
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
	return errors.Join(errs...)
}

// validBucket applies S3's naming rules for new buckets: 3 to 63 lowercase
// letters, digits, '.' and '-', starting and ending with a letter or digit.
// Names outside them cannot be addressed in a host name, and most stores
// refuse them anyway.
func validBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("%q: must be 3 to 63 characters", b)
	}
	for i := 0; i < len(b); i++ {
		ch := b[i]
		alnum := ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9'
		if !alnum && ((ch != '.' && ch != '-') || i == 0 || i == len(b)-1) {
			return fmt.Errorf("%q: only lowercase letters, digits, '.' and '-', starting and ending with a letter or digit", b)
		}
	}
	return nil
}

// validEndpoint accepts http or https with a host and nothing else a
// client could misread: user info in the URL would put a secret in the
// config file and in every error the SDK prints with the URL.
func validEndpoint(e string) error {
	u, err := url.Parse(e)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return fmt.Errorf("%q: no host", u.Redacted())
	case u.User != nil:
		return errors.New("must not carry user info; use access_key_id and secret_access_key_file")
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q: no query or fragment", u.Redacted())
	}
	return nil
}

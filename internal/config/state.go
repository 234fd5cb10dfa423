package config

import (
	"net/url"
	"strings"
)

// validateState checks state_url. The state is reached with storage.s3's
// endpoint, region and credentials, so it needs the s3 backend: a fleet
// shares its files through the bucket anyway, and one set of credentials,
// validated once, reaches both. The bucket may be storage.s3.bucket or
// another one those credentials reach.
func (c *Config) validateState(src Source) []error {
	if c.StateURL == "" {
		return nil
	}
	bucket, prefix, msg := splitS3URL(c.StateURL)
	if msg != "" {
		return []error{src.Errorf("state_url", "%s", msg)}
	}
	if c.Storage.Backend != "s3" {
		return []error{src.Errorf("state_url", "needs storage.backend: s3 (the state is reached with storage.s3's endpoint and credentials)")}
	}
	if bucket == c.Storage.S3.Bucket && overlaps(prefix, c.Storage.S3.Prefix) {
		// The state holds the fleet's private keys: inside the homes, a
		// user whose home is above it could download them; around the
		// homes, the daemon would take partners' files for its state.
		return []error{src.Errorf("state_url", "overlaps storage.s3.prefix %s in bucket %s: the state holds private keys and must lie outside every home; use another prefix or bucket",
			quote(c.Storage.S3.Prefix), quote(bucket))}
	}
	return nil
}

// splitS3URL applies s3store.ParseURL's rules (which config cannot import:
// s3store imports config): s3://BUCKET/PREFIX/ with nothing else, a valid
// bucket name and a prefix of folder names. msg says what is wrong, or "".
func splitS3URL(raw string) (bucket, prefix, msg string) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", "", "want s3://BUCKET/PREFIX/"
	}
	if m := CheckS3Bucket(u.Host); m != "" {
		return "", "", "bucket " + m
	}
	prefix = strings.TrimPrefix(u.Path, "/")
	if m := CheckS3Prefix(prefix); m != "" {
		return "", "", "prefix " + m
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return u.Host, prefix, ""
}

// overlaps reports whether one of two key prefixes ("" is the whole
// bucket) lies within the other.
func overlaps(a, b string) bool {
	if a != "" && !strings.HasSuffix(a, "/") {
		a += "/"
	}
	if b != "" && !strings.HasSuffix(b, "/") {
		b += "/"
	}
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

package config

import "strings"

// validateState checks state_url. The state is reached with storage.s3's
// endpoint, region and credentials, so it needs the s3 backend: a fleet
// shares its files through the bucket anyway, and one set of credentials,
// validated once, reaches both. The bucket may be storage.s3.bucket or
// another one those credentials reach.
func (c *Config) validateState(src Source) []error {
	if c.StateURL == "" {
		return nil
	}
	bucket, prefix, _, msg := BucketFolder(c.StateURL)
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
	if IsBucketURL(c.UsersDir) {
		// Users and state are told apart by their prefixes: the users
		// poller would read key objects as user files, and `wharf user`
		// could overwrite them.
		if ub, up, _, msg := BucketFolder(c.UsersDir); msg == "" && ub == bucket && overlaps(prefix, up) {
			return []error{src.Errorf("state_url", "overlaps users_dir %s: give the users and the state prefixes of their own (e.g. s3://%s/wharf/users/ and s3://%s/wharf/state/)",
				quote(c.UsersDir), bucket, bucket)}
		}
	}
	return nil
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

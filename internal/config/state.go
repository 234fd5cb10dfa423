package config

import (
	"fmt"
	"strings"
	"time"
)

// DefaultEventLease is how long a daemon of a fleet holds a hook delivery
// before another may take it over: how late the deliveries of a daemon
// that died are made.
const DefaultEventLease = 2 * time.Minute

// MinEventLease bounds event_lease from below: a hold is dated by the
// store to the second.
const MinEventLease = 2 * time.Second

// EventLeaseOrDefault is event_lease, or DefaultEventLease when not set.
func (c *Config) EventLeaseOrDefault() time.Duration {
	if c.EventLease > 0 {
		return c.EventLease
	}
	return DefaultEventLease
}

// validateEventLease checks event_lease against the hooks' timeouts: a
// daemon renews its hold before each attempt, and an attempt longer than
// half the lease could outlast the hold, so that another daemon delivers
// the same event at the same time.
func (c *Config) validateEventLease(src Source) []error {
	switch {
	case c.EventLease < 0:
		return []error{src.Errorf("event_lease", "must not be negative")}
	case c.EventLease == 0:
	case c.StateURL == "":
		return []error{src.Errorf("event_lease", "applies only with state_url (a fleet's delivery queue in the bucket)")}
	case c.EventLease < MinEventLease:
		return []error{src.Errorf("event_lease", "%s is below %s", c.EventLease, MinEventLease)}
	}
	if c.StateURL == "" {
		return nil
	}
	lease := c.EventLeaseOrDefault()
	var errs []error
	for i, h := range c.Hooks {
		field, timeout := "", time.Duration(0)
		switch {
		case h.Webhook != nil:
			field, timeout = "webhook.timeout", h.Webhook.Timeout
			if timeout == 0 {
				timeout = DefaultWebhookTimeout
			}
		case h.Command != nil:
			field, timeout = "command.timeout", h.Command.Timeout
			if timeout == 0 {
				timeout = DefaultCommandTimeout
			}
		}
		if 2*timeout > lease {
			errs = append(errs, src.Errorf(fmt.Sprintf("hooks[%d].%s", i, field),
				"%s is more than half of event_lease (%s): an attempt could outlast the daemon's hold on the delivery; shorten the timeout or lengthen event_lease", timeout, lease))
		}
	}
	return errs
}

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

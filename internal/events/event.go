// Package events carries what happened (uploads, downloads, changes,
// logins) to the operator's systems: the audit log and hooks (webhooks and
// commands), through a durable queue so that no event is lost across a
// dead endpoint or a daemon restart.
package events

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Types of events, as hooks[].events names them.
const (
	Upload      = "upload"
	Download    = "download"
	Delete      = "delete"
	Rename      = "rename"
	Mkdir       = "mkdir"
	Rmdir       = "rmdir"
	Login       = "login"
	LoginFailed = "login_failed"
	// Checksum is a file read to compute its checksum (FTP HASH, XCRC,
	// XSHA256...): nothing left the server but the digest.
	Checksum = "checksum"
)

// Event is one JSON object, the same in the audit log, on a webhook and
// on a command's stdin.
type Event struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	User     string    `json:"user"`
	Protocol string    `json:"protocol"`
	Remote   string    `json:"remote"`
	Method   string    `json:"method,omitempty"` // logins: publickey | password
	// Path is what the user sees; StoragePath is where it lies beneath
	// storage.root (home + path), for the operator's processing.
	Path        string `json:"path,omitempty"`
	Target      string `json:"target,omitempty"` // rename: the new path
	StoragePath string `json:"storage_path,omitempty"`
	Size        int64  `json:"size,omitempty"`   // uploads: the file's size
	Bytes       int64  `json:"bytes,omitempty"`  // transfers: bytes moved (less than size when resumed)
	SHA256      string `json:"sha256,omitempty"` // uploads written in order
	// StorageURL and ETag name the object an upload became on an object
	// store (s3://bucket/prefix/key), so that a processor reads exactly
	// that object from the bucket.
	StorageURL string  `json:"storage_url,omitempty"`
	ETag       string  `json:"etag,omitempty"`
	Duration   float64 `json:"duration,omitempty"` // seconds
	Outcome    string  `json:"outcome"`            // ok | failed
	Error      string  `json:"error,omitempty"`

	// For the admin API's events (admin.go): who made the change, and what
	// it was about besides User.
	Admin       string   `json:"admin,omitempty"`
	Fingerprint string   `json:"fingerprint,omitempty"` // key.added, key.removed
	Changes     []string `json:"changes,omitempty"`     // user.changed: the fields set
	Session     string   `json:"session,omitempty"`     // session.closed: its conn_id
	Addr        string   `json:"addr,omitempty"`        // ban.lifted: the address
}

// NewID returns a unique event identifier (128 random bits, hex).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

// Sink receives events. Emit must return quickly and never fail the
// operation the event reports: delivery problems are the sink's own.
type Sink interface {
	Emit(Event)
}

// Discard drops every event.
type Discard struct{}

// Emit does nothing.
func (Discard) Emit(Event) {}

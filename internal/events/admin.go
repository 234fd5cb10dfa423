package events

// Types of the events the admin API emits for each change it makes, as
// hooks[].events names them. Such an event has Protocol "api", the
// admin's address as Remote and the admin's name (an API key's, or
// config.TokenAdmin) as Admin; User is the partner concerned.
const (
	UserCreated   = "user.created"
	UserChanged   = "user.changed" // Changes lists the fields
	UserDeleted   = "user.deleted"
	KeyAdded      = "key.added"   // Fingerprint is the key's
	KeyRemoved    = "key.removed" // Fingerprint is the key's
	KeyRotated    = "key.rotated" // Fingerprint is the new key's; the older ones expire after the grace
	SessionClosed = "session.closed"
	BanLifted     = "ban.lifted" // Addr is the address
)

// ProtocolAPI is the Protocol of the admin API's events.
const ProtocolAPI = "api"

// MatchPath reports whether a user-visible path matches glob as a hook's
// paths do: "*" within a segment, "**" across any number of them.
func MatchPath(glob, name string) bool { return matchGlob(glob, name) }

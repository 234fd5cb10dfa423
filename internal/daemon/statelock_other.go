//go:build !unix

package daemon

// lockStateDir is a no-op where flock is unavailable; the event queue's
// own file lock still keeps a second daemon off a state_dir with hooks.
func lockStateDir(string) (unlock func(), err error) { return func() {}, nil }

// Package e2e holds wharf's end-to-end tests: TestMain builds cmd/wharf once,
// and the tests drive that real binary with the real clients operators use
// (OpenSSH sftp/scp/ssh, sshpass, PuTTY psftp, curl, paramiko).
//
// A client missing from the machine skips its test on a developer's machine
// and fails it when CI=true, so a green CI run never hides an untested client.
// Set WHARF_BIN to test an already built binary instead of building one.
package e2e

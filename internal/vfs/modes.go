package vfs

import "io/fs"

// Modes for what a store creates on a client's behalf: partner data is not
// for other accounts on the host. Every store uses them whatever mode a
// front end asks for (ftpserverlib asks 0777 for files and 0755 for
// directories, OpenSSH's sftp the local file's mode), so that a file's mode
// does not depend on the protocol it came by; a client may still chmod
// afterwards.
const (
	dirMode  fs.FileMode = 0o750
	fileMode fs.FileMode = 0o640
)

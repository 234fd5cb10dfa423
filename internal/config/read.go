package config

import (
	"os"

	"github.com/wharf-sftp/wharf/internal/regfile"
)

// MaxFileSize bounds each file ReadFile reads: the config file and every
// users_dir file. A config of 100,000 users is a few MiB; anything larger
// is a mistake (a log, a disk image, a device) that must not be read whole.
const MaxFileSize = 16 << 20

// The refusals of OpenFile and ReadFile, wrapped in an *fs.PathError.
var (
	ErrNotRegular = regfile.ErrNotRegular
	ErrTooLarge   = regfile.ErrTooLarge
)

// OpenFile opens a config file for reading after checking that it is a
// regular file (symbolic links followed) of at most MaxFileSize bytes. It
// is the one gate every reader of config files goes through: Load, the
// daemon's reload, `wharf config check` and `wharf user`.
func OpenFile(path string) (*os.File, error) { return regfile.Open(path, MaxFileSize) }

// ReadFile returns the contents of the config file at path, through the
// checks of OpenFile.
func ReadFile(path string) ([]byte, error) { return regfile.Read(path, MaxFileSize) }

package config

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"path/filepath"
)

// Load reads and parses the file at path and, when it sets users_dir, every
// user file in that folder (see UserFiles), whose users are appended after
// the main file's. Every FieldError it returns, the Config and each User.Src
// carry the file they come from as their File.
//
// A failure to read the main file is returned as is (it wraps the
// *fs.PathError); everything else is the errors.Join of every problem found
// across all the files, each a *FieldError.
//
// A users_dir in a bucket (s3://...) is not read: Load does no network
// I/O. Its users are added by LoadWith or WithUserObjects from objects the
// caller read.
func Load(path string) (*Config, error) {
	return LoadOverlay(path, nil)
}

// LoadOverlay is Load with the contents of some files taken from overlay
// (path -> contents) instead of from disk: a nil slice stands for a removed
// file, and a users_dir path that does not exist on disk is listed as if it
// did. It lets a tool check an edit exactly as the daemon will load it,
// before writing anything. Paths are compared after filepath.Clean, and are
// the ones Load forms: path itself and filepath.Join(users_dir, NAME.yaml).
func LoadOverlay(path string, overlay map[string][]byte) (*Config, error) {
	l := &loader{overlay: cleanKeys(overlay)}
	return l.load(path)
}

// Snapshot identifies the bytes one read of a config saw: the config file
// and the users_dir files it names, each with its path, in the order Load
// reads them, and the error of any that could not be read. Two reads with
// the same Sum saw the same bytes.
type Snapshot struct {
	Sum      [sha256.Size]byte
	UsersDir string // the users_dir that was read; "" none
	Blank    bool   // the config file holds only white space
	// Main is the SHA-256 of the config file's bytes alone (zero when it
	// could not be read): a change of a bucket users_dir's objects alone
	// leaves it as it was.
	Main [sha256.Size]byte
}

// LoadSnapshot is Load, and the Snapshot of exactly the bytes it parsed.
func LoadSnapshot(path string) (*Config, Snapshot, error) {
	l := &loader{sum: newSummer()}
	c, err := l.load(path)
	return c, l.snapshot(), err
}

// ReadSnapshot reads what Load reads when the config file at path names
// usersDir, without parsing anything, and returns its Snapshot: a cheap
// way to tell whether the files changed since a LoadSnapshot.
func ReadSnapshot(path, usersDir string) Snapshot {
	l := &loader{sum: newSummer()}
	return l.readSnapshot(path, usersDir)
}

func (l *loader) readSnapshot(path, usersDir string) Snapshot {
	if _, err := l.readFile(path); err == nil && l.readsUsersDir(usersDir) {
		files, _ := l.userFiles(usersDir)
		for _, f := range files {
			_, _ = l.readFile(f)
		}
	}
	return l.snapshot()
}

// readsUsersDir reports whether the loader reads the users_dir dir: not
// when there is none, nor when it is a bucket whose objects were not given.
func (l *loader) readsUsersDir(dir string) bool {
	return dir != "" && (!IsBucketURL(dir) || l.bucket != nil)
}

func (l *loader) load(path string) (*Config, error) {
	data, err := l.readFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, root, err := parse(data)
	if err != nil {
		errs := setFile(err, path)
		// The main file is broken, but its users_dir may still be readable:
		// reporting those files' problems now saves the operator a round.
		if dir, line := usersDirOf(root); dir != "" && l.readsUsersDir(dir) {
			errs = append(errs, l.loadUsersDir(nil, path, dir, line)...)
		}
		return nil, JoinErrors(errs)
	}
	c.File = path
	for i := range c.Users {
		c.Users[i].Src.File = path
	}
	if !l.readsUsersDir(c.UsersDir) {
		return c, nil
	}
	if errs := l.loadUsersDir(c, path, c.UsersDir, c.lines["users_dir"]); len(errs) > 0 {
		return nil, JoinErrors(errs)
	}
	// Each part was checked on its own; checking the whole keeps any rule
	// that spans users true for users_dir users as well.
	if err := c.Validate(); err != nil {
		return nil, JoinErrors(unwrap(err))
	}
	return c, nil
}

func cleanKeys(overlay map[string][]byte) map[string][]byte {
	if len(overlay) == 0 {
		return nil
	}
	out := make(map[string][]byte, len(overlay))
	for p, data := range overlay {
		out[filepath.Clean(p)] = data
	}
	return out
}

// summer digests what a loader read. A nil summer records nothing.
type summer struct{ h hash.Hash }

func newSummer() *summer { return &summer{sha256.New()} }

// add records one read: its kind, its path, and its bytes or its error.
// Every part is length-prefixed, so that no two different sequences of
// reads digest alike.
func (s *summer) add(kind, path string, data []byte, err error) {
	if s == nil {
		return
	}
	if err != nil {
		kind += "-error"
		data = []byte(err.Error())
	}
	for _, part := range [][]byte{[]byte(kind), []byte(path), data} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		s.h.Write(n[:])
		s.h.Write(part)
	}
}

func (l *loader) snapshot() Snapshot {
	var snap Snapshot
	if l.sum != nil {
		copy(snap.Sum[:], l.sum.h.Sum(nil))
	}
	snap.UsersDir, snap.Blank, snap.Main = l.usersDir, l.blank, l.main
	return snap
}

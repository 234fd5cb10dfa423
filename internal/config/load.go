package config

import (
	"errors"
	"fmt"
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
	l := loader{overlay: cleanKeys(overlay)}
	data, err := l.readFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		errs := setFile(err, path)
		// The main file is broken, but its users_dir may still be readable:
		// reporting those files' problems now saves the operator a round.
		if dir, line := usersDirOf(data); dir != "" {
			errs = append(errs, l.loadUsersDir(nil, path, dir, line)...)
		}
		return nil, errors.Join(errs...)
	}
	c.File = path
	for i := range c.Users {
		c.Users[i].Src.File = path
	}
	if c.UsersDir == "" {
		return c, nil
	}
	if errs := l.loadUsersDir(c, path, c.UsersDir, c.lines["users_dir"]); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// Each part was checked on its own; checking the whole keeps any rule
	// that spans users true for users_dir users as well.
	if err := c.Validate(); err != nil {
		return nil, err
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

package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ParseUser decodes and validates one users_dir file: a single mapping with
// the fields of one `users` entry. Like Parse it does no I/O and is strict;
// its FieldErrors carry field paths relative to the user ("public_keys[1]",
// not "users[3].public_keys[1]") and no File, which Load fills in.
//
// On success the User's Src has no Prefix and no File, and its Lines are
// relative to the user's mapping.
func ParseUser(data []byte) (*User, error) {
	root, err := document(data)
	if err != nil {
		return nil, errors.Join(err)
	}
	if root == nil {
		return nil, errors.Join(&FieldError{Line: 1, Msg: "empty: a users_dir file holds one user (name, home, ...)"})
	}
	var u User
	p := newParser()
	p.value(root, reflect.ValueOf(&u).Elem(), "")
	u.Src = Source{Lines: map[string]int{"": root.Line}}
	for f, line := range p.lines {
		u.Src.Lines[f] = line
	}

	errs := p.errors()
	for _, e := range validateUser(&u, u.Src) {
		if fe, ok := e.(*FieldError); ok && p.isBad(fe.Field) {
			continue // already reported as undecodable
		}
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		sortByLine(errs)
		return nil, JoinErrors(errs)
	}
	return &u, nil
}

// IsUserFile reports whether a directory entry named name is one Load reads
// from users_dir: a "*.yaml" name that is not hidden. Hidden names are where
// editors and `wharf user` keep their temporary files.
func IsUserFile(name string) bool {
	return strings.HasSuffix(name, ".yaml") && len(name) > len(".yaml") && !strings.HasPrefix(name, ".")
}

// UserFiles returns the paths of the user files in dir, in the order Load
// reads them (sorted by name). Symbolic links are followed, so that a
// Kubernetes ConfigMap mounted as a folder works; folders are skipped.
func UserFiles(dir string) ([]string, error) {
	return (&loader{}).userFiles(dir)
}

// loader reads files from disk, or from an overlay of contents that are not
// written yet, so that an edit is checked exactly as Load would check it.
// Every file is read through ReadFile, so the same limits hold everywhere.
type loader struct {
	overlay map[string][]byte // cleaned path -> contents; nil contents: removed
	bucket  *UserObjects      // a bucket users_dir's objects; nil: such a users_dir is not read (fleet_users.go)

	// sum, when set, records every read (path, then bytes or error) and
	// every folder listing, for a Snapshot.
	sum      *summer
	blank    bool              // the first file read (the config file) is only white space
	main     [sha256.Size]byte // of the first file read, when summing
	read     int               // files read so far
	usersDir string            // the folder listed, if any
}

// readFile returns a file's contents, from the overlay or through ReadFile,
// and records the read.
func (l *loader) readFile(path string) ([]byte, error) {
	data, err := l.readContents(path)
	if l.read == 0 {
		l.blank = err == nil && len(bytes.TrimSpace(data)) == 0
		if err == nil && l.sum != nil {
			l.main = sha256.Sum256(data)
		}
	}
	l.read++
	l.sum.add("file", path, data, err)
	return data, err
}

func (l *loader) readContents(path string) ([]byte, error) {
	if IsBucketURL(path) {
		return l.readObject(path)
	}
	if data, ok := l.overlay[filepath.Clean(path)]; ok {
		if data == nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
		}
		return data, nil
	}
	return ReadFile(path)
}

// userFiles lists the user files of dir and records the listing.
func (l *loader) userFiles(dir string) ([]string, error) {
	files, err := l.listUserFiles(dir)
	l.usersDir = dir
	l.sum.add("dir", dir, []byte(strings.Join(files, "\x00")), err)
	return files, err
}

func (l *loader) listUserFiles(dir string) ([]string, error) {
	if IsBucketURL(dir) {
		return l.listObjects(dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, e := range entries {
		if !IsUserFile(e.Name()) {
			continue
		}
		if e.IsDir() {
			continue
		}
		if e.Type()&fs.ModeSymlink != 0 {
			fi, err := os.Stat(filepath.Join(dir, e.Name()))
			if err == nil && fi.IsDir() {
				continue
			}
			// A dangling link is kept: reading it reports the problem.
		}
		names[e.Name()] = true
	}
	clean := filepath.Clean(dir)
	for p, data := range l.overlay {
		if filepath.Dir(p) != clean || !IsUserFile(filepath.Base(p)) {
			continue
		}
		names[filepath.Base(p)] = data != nil
	}
	var out []string
	for _, n := range slices.Sorted(maps.Keys(names)) {
		if names[n] {
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out, nil
}

// loadUsersDir parses every user file of c.UsersDir (or of dir, when the
// main file failed to parse and c is nil) and appends the users to c. It
// returns every problem: unreadable folder or files, invalid users, and
// names defined twice, each error naming both places.
func (l *loader) loadUsersDir(c *Config, mainFile, dir string, dirLine int) []error {
	files, err := l.userFiles(dir)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return []error{&FieldError{File: mainFile, Line: dirLine, Field: "users_dir", Msg: fmt.Sprintf("cannot read folder %s: %s", quote(dir), msg)}}
	}

	type place struct {
		file string
		line int
	}
	first := map[string]place{}
	if c != nil {
		for _, u := range c.Users {
			first[u.Name] = place{u.Src.File, u.Src.Errorf("name", "").Line}
		}
	}
	var errs []error
	for _, file := range files {
		data, err := l.readFile(file)
		if err != nil {
			msg := err.Error()
			var pe *fs.PathError
			if errors.As(err, &pe) {
				msg = pe.Err.Error()
			}
			errs = append(errs, &FieldError{File: file, Msg: "cannot read user file: " + msg})
			continue
		}
		u, err := ParseUser(data)
		if err != nil {
			errs = append(errs, setFile(err, file)...)
			continue
		}
		u.Src.File = file
		line := u.Src.Errorf("name", "").Line
		if p, dup := first[u.Name]; dup {
			errs = append(errs, u.Src.Errorf("name", "duplicate user %s (also defined at %s:%d)", quote(u.Name), p.file, p.line))
			continue
		}
		first[u.Name] = place{file, line}
		if c != nil {
			c.Users = append(c.Users, *u)
		}
	}
	return errs
}

// usersDirOf finds users_dir in a main file that failed to parse, so that
// the users_dir files are checked too and every problem is reported at once.
func usersDirOf(root *yaml.Node) (dir string, line int) {
	if root == nil {
		return "", 0
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := resolve(root.Content[i]), resolve(root.Content[i+1])
		if k.Value == "users_dir" && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" {
			return v.Value, k.Line
		}
	}
	return "", 0
}

// setFile sets File on every FieldError joined in err and returns them.
func setFile(err error, file string) []error {
	errs := unwrap(err)
	for _, e := range errs {
		if fe, ok := e.(*FieldError); ok {
			fe.File = file
		}
	}
	return errs
}

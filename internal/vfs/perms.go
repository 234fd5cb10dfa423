package vfs

import (
	"fmt"
	"strings"
)

// Perms is the set of operations a user may perform. It is the one place
// where "may alice delete files?" is answered; both protocol front ends go
// through the Restrict layer that enforces it.
type Perms uint8

const (
	PermList      Perms = 1 << iota // read directory listings
	PermDownload                    // open files for reading
	PermUpload                      // create new files
	PermOverwrite                   // write to, truncate or set attributes of existing files
	PermDelete                      // remove files and empty directories
	PermRename                      // rename or move files and directories
	PermMkdir                       // create directories

	PermAll = PermList | PermDownload | PermUpload | PermOverwrite | PermDelete | PermRename | PermMkdir
)

// permNames is in bit order; config files and logs use these names.
var permNames = []string{"list", "download", "upload", "overwrite", "delete", "rename", "mkdir"}

// PermNames returns the permission names in their canonical order.
func PermNames() []string { return append([]string(nil), permNames...) }

// ParsePerm returns the permission called name.
func ParsePerm(name string) (Perms, error) {
	for i, n := range permNames {
		if n == name {
			return 1 << i, nil
		}
	}
	return 0, fmt.Errorf("unknown permission %q (want one of %s)", name, strings.Join(permNames, ", "))
}

// ParsePerms turns a config list into a set. A nil list means every
// permission; an empty, non-nil list means none.
func ParsePerms(names []string) (Perms, error) {
	if names == nil {
		return PermAll, nil
	}
	var p Perms
	for _, n := range names {
		bit, err := ParsePerm(n)
		if err != nil {
			return 0, err
		}
		p |= bit
	}
	return p, nil
}

// Has reports whether every permission in q is in p.
func (p Perms) Has(q Perms) bool { return p&q == q }

// String lists the names, comma separated, for logs.
func (p Perms) String() string {
	var out []string
	for i, n := range permNames {
		if p&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, ",")
}

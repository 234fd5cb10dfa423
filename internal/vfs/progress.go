package vfs

import (
	"slices"
	"strings"
	"time"
)

// Transfer is one transfer in progress, as the admin API lists it.
type Transfer struct {
	Path      string    // the client's path
	Direction string    // "up" (an upload) or "down" (a download or a checksum read)
	Bytes     int64     // moved so far
	Since     time.Time // when it began
}

// Transfers lists the session's transfers in progress, oldest first. An
// upload detached by a remove or rename (which lands nowhere) is left out.
// It reads counters the transfers keep anyway: no cost on the data path.
func (f *FS) Transfers() []Transfer {
	f.mu.Lock()
	var out []Transfer
	for _, list := range f.open {
		for _, w := range list {
			out = append(out, Transfer{Path: w.name, Direction: "up", Bytes: w.bytes.Load(), Since: w.start})
		}
	}
	for r := range f.reading {
		out = append(out, Transfer{Path: r.name, Direction: "down", Bytes: r.bytes.Load(), Since: r.start})
	}
	f.mu.Unlock()
	slices.SortFunc(out, func(a, b Transfer) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out
}

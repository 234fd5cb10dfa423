package s3store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// maxSpans bounds the separate byte ranges an upload tracks in one buffer
// or in its spool: writes of a normal client merge into a few, and a
// client scattering tiny writes must not grow the bookkeeping without
// bound.
const maxSpans = 4096

var errFragmented = errors.New("too many separate byte ranges written out of order")

// span is a byte range [lo, hi).
type span struct{ lo, hi int64 }

// spans is a set of byte ranges, sorted and merged.
type spans []span

// add inserts [lo, hi).
func (s *spans) add(lo, hi int64) error {
	if lo >= hi {
		return nil
	}
	v := *s
	// i: the first span that ends at or after lo (could merge with it).
	i := 0
	for i < len(v) && v[i].hi < lo {
		i++
	}
	j := i // j: the first span that starts after hi (stays apart)
	for j < len(v) && v[j].lo <= hi {
		lo, hi = min(lo, v[j].lo), max(hi, v[j].hi)
		j++
	}
	if i < j { // merged with v[i:j]
		v[i] = span{lo, hi}
		*s = append(v[:i+1], v[j:]...)
		return nil
	}
	if len(v) >= maxSpans {
		return errFragmented
	}
	v = append(v, span{})
	copy(v[i+1:], v[i:])
	v[i] = span{lo, hi}
	*s = v
	return nil
}

// cut removes everything at or after at.
func (s *spans) cut(at int64) {
	v := *s
	for i := range v {
		if v[i].hi > at {
			if v[i].lo < at {
				v[i].hi = at
				i++
			}
			*s = v[:i]
			return
		}
	}
}

// prefix is how far the set covers [0, …) without a gap.
func (s spans) prefix() int64 {
	if len(s) == 0 || s[0].lo > 0 {
		return 0
	}
	return s[0].hi
}

// spool holds the bytes an upload received far beyond its reorder window
// (see upload), at their own offsets in a sparse file, until the window
// reaches them. The file is unlinked as soon as it is created, so a crash
// leaves nothing behind; the bytes all uploads spool together are bounded
// by Options.SpoolMax.
type spool struct {
	b    *Backend
	f    *os.File
	have spans // absolute offsets held
	used int64 // bytes written, counted against the backend's bound
}

func (b *Backend) newSpool() (*spool, error) {
	if b.o.SpoolDir == "" {
		return nil, errors.New("no spool folder is configured")
	}
	f, err := os.CreateTemp(b.o.SpoolDir, "upload-*.spool")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	// Unlinked: it lives as long as the upload holds it open.
	_ = os.Remove(f.Name())
	return &spool{b: b, f: f}, nil
}

// write keeps p at off.
func (sp *spool) write(p []byte, off int64) error {
	n := int64(len(p))
	if used := sp.b.spoolUsed.Add(n); used > sp.b.o.SpoolMax {
		sp.b.spoolUsed.Add(-n)
		return fmt.Errorf("the upload spool is full (%d bytes for all uploads): %w", sp.b.o.SpoolMax, syscall.ENOSPC)
	}
	sp.used += n
	if err := sp.have.add(off, off+n); err != nil {
		return err
	}
	if _, err := sp.f.WriteAt(p, off); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// load moves what the spool holds of [start, start+len(buf)) into buf,
// recording it in have (offsets relative to start), and forgets it.
func (sp *spool) load(buf []byte, start int64, have *spans) error {
	end := start + int64(len(buf))
	var keep spans
	for _, r := range sp.have {
		lo, hi := max(r.lo, start), min(r.hi, end)
		if lo >= hi {
			keep = append(keep, r)
			continue
		}
		if _, err := sp.f.ReadAt(buf[lo-start:hi-start], lo); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if err := have.add(lo-start, hi-start); err != nil {
			return err
		}
		if r.lo < lo {
			keep = append(keep, span{r.lo, lo})
		}
		if r.hi > hi {
			keep = append(keep, span{hi, r.hi})
		}
	}
	sp.have = keep
	return nil
}

// holds reports whether the spool has any byte of [lo, hi).
func (sp *spool) holds(lo, hi int64) bool {
	for _, r := range sp.have {
		if r.lo < hi && r.hi > lo {
			return true
		}
	}
	return false
}

// close drops the file and returns its bytes to the backend's bound.
func (sp *spool) close() {
	sp.f.Close()
	sp.b.spoolUsed.Add(-sp.used)
	sp.used = 0
}

package events

import (
	"path"
	"slices"
	"strings"
)

// filter decides which events one hook receives.
type filter struct {
	types []string // empty: every type
	globs []string // empty: every path
}

// match reports whether the hook wants ev. A rename matches on either its
// old or its new path, so that a hook on "/*/inbox/**" also sees a file
// that a client uploaded elsewhere and then renamed into the inbox (a
// common way for clients to publish a finished upload). An event without
// a path (a login) never matches a hook that lists paths.
//
// Only what happened is delivered: a failed operation (an upload cut
// halfway, a refused delete) reaches the audit log and the metrics but no
// hook, so that processing never starts on a file that is not there.
// Failed logins are the exception: failing is what they report.
func (f filter) match(ev *Event) bool {
	if ev.Outcome == "failed" && ev.Type != LoginFailed {
		return false
	}
	if len(f.types) > 0 && !slices.Contains(f.types, ev.Type) {
		return false
	}
	if len(f.globs) == 0 {
		return true
	}
	for _, p := range []string{ev.Path, ev.Target} {
		if p == "" {
			continue
		}
		for _, g := range f.globs {
			if matchGlob(g, p) {
				return true
			}
		}
	}
	return false
}

// matchGlob matches a user-visible path against a hook's glob. Both are
// split on "/": a segment "**" matches zero or more whole segments, any
// other segment is a path.Match pattern (so "*" and "?" never cross a
// slash, and "[a-z]" classes work). "/*/inbox/**" therefore matches
// "/acme/inbox", "/acme/inbox/a.csv" and "/acme/inbox/2026/a.csv", but not
// "/acme/outbox/a.csv". A malformed pattern matches nothing (config
// validation rejects those before they get here).
func matchGlob(glob, name string) bool {
	g := splitPath(glob)
	n := splitPath(name)
	return matchSegments(g, n)
}

func splitPath(p string) []string {
	p = path.Clean("/" + p)
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// matchSegments is iterative with one backtrack point (the latest "**"),
// the classic wildcard algorithm over segments: time is bounded by
// len(g)*len(n) whatever the pattern, so no glob can make it explode.
func matchSegments(g, n []string) bool {
	gi, ni := 0, 0
	starG, starN := -1, 0
	for ni < len(n) {
		switch {
		case gi < len(g) && g[gi] == "**":
			starG, starN = gi, ni
			gi++
		case gi < len(g) && segmentMatch(g[gi], n[ni]):
			gi++
			ni++
		case starG >= 0:
			// Let the latest "**" swallow one more segment and retry.
			starN++
			gi, ni = starG+1, starN
		default:
			return false
		}
	}
	for gi < len(g) && g[gi] == "**" {
		gi++
	}
	return gi == len(g)
}

func segmentMatch(pattern, seg string) bool {
	ok, err := path.Match(pattern, seg)
	return err == nil && ok
}

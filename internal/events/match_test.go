package events

import "testing"

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		glob, name string
		want       bool
	}{
		{"/*/inbox/**", "/acme/inbox/a.csv", true},
		{"/*/inbox/**", "/acme/inbox/2026/11/a.csv", true},
		{"/*/inbox/**", "/acme/inbox", true},
		{"/*/inbox/**", "/acme/outbox/a.csv", false},
		{"/*/inbox/**", "/acme/sub/inbox/a.csv", false},
		{"/*/inbox/**", "/inbox/a.csv", false},
		{"/inbox/*", "/inbox/a.csv", true},
		{"/inbox/*", "/inbox/sub/a.csv", false}, // * stays within one segment
		{"/inbox/*", "/inbox", false},
		{"/inbox/*.csv", "/inbox/a.csv", true},
		{"/inbox/*.csv", "/inbox/a.txt", false},
		{"/inbox/a?.csv", "/inbox/ab.csv", true},
		{"/inbox/[a-c].csv", "/inbox/b.csv", true},
		{"/inbox/[a-c].csv", "/inbox/d.csv", false},
		{"/**", "/", true},
		{"/**", "/a/b/c", true},
		{"/**/*.csv", "/a.csv", true},
		{"/**/*.csv", "/x/y/z/a.csv", true},
		{"/**/*.csv", "/x/y/z/a.txt", false},
		{"/a/**/z", "/a/z", true},
		{"/a/**/z", "/a/b/c/z", true},
		{"/a/**/z", "/a/b/c/z/d", false},
		{"/a/**/b/**/c", "/a/x/b/y/b/c", true},
		{"/a/**/b/**/c", "/a/x/y/c", false},
		{"/a/b", "/a/b/", true},               // cleaned
		{"/a/b", "/a/x/../b", true},           // cleaned
		{"/inbox/**", "/inbox/../etc", false}, // cleaned to /etc
		{"/inbox/[", "/inbox/[", false},       // malformed: nothing
		{"/x", "/y", false},
	}
	for _, tt := range tests {
		if got := matchGlob(tt.glob, tt.name); got != tt.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", tt.glob, tt.name, got, tt.want)
		}
	}
}

func TestFilterMatch(t *testing.T) {
	tests := []struct {
		name string
		f    filter
		ev   Event
		want bool
	}{
		{"empty filter takes all", filter{}, Event{Type: Login}, true},
		{"type listed", filter{types: []string{Upload, Delete}}, Event{Type: Delete, Path: "/a"}, true},
		{"type not listed", filter{types: []string{Upload}}, Event{Type: Download, Path: "/a"}, false},
		{"path matches", filter{globs: []string{"/in/**"}}, Event{Type: Upload, Path: "/in/a"}, true},
		{"path does not match", filter{globs: []string{"/in/**"}}, Event{Type: Upload, Path: "/out/a"}, false},
		{"second glob matches", filter{globs: []string{"/x/*", "/in/**"}}, Event{Type: Upload, Path: "/in/a"}, true},
		{"no path with globs", filter{globs: []string{"/**"}}, Event{Type: Login}, false},
		{"rename into the glob", filter{globs: []string{"/in/**"}}, Event{Type: Rename, Path: "/tmp/a", Target: "/in/a"}, true},
		{"rename out of the glob", filter{globs: []string{"/in/**"}}, Event{Type: Rename, Path: "/in/a", Target: "/tmp/a"}, true},
		{"both must hold", filter{types: []string{Upload}, globs: []string{"/in/**"}}, Event{Type: Download, Path: "/in/a"}, false},
		{"failed upload never delivered", filter{}, Event{Type: Upload, Path: "/in/a", Outcome: "failed"}, false},
		{"failed login delivered", filter{types: []string{LoginFailed}}, Event{Type: LoginFailed, Outcome: "failed"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.match(&tt.ev); got != tt.want {
				t.Errorf("match = %v, want %v", got, tt.want)
			}
		})
	}
}

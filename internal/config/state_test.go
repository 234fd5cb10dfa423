package config

import "testing"

func TestStateURL(t *testing.T) {
	// s3 is storage on the bucket "files", homes under "homes/"; the
	// state_url line is line 1.
	const s3 = "storage:\n  backend: s3\n  s3: {bucket: files, prefix: homes/}\n"
	tests := []parseCase{
		{"absent", s3, nil},
		{"own prefix", "state_url: s3://files/wharf/state/\n" + s3, nil},
		{"without the final slash", "state_url: s3://files/state\n" + s3, nil},
		{"another bucket's root", "state_url: s3://fleet-state\n" + s3, nil},
		{"another bucket's root, slash", "state_url: s3://fleet-state/\n" + s3, nil},
		{"a sibling prefix", "state_url: s3://files/homes-state/\n" + s3, nil},
		{"not s3", "state_url: https://files/state/\n" + s3, []want{{1, "state_url", "want s3://BUCKET/PREFIX/"}}},
		{"a path", "state_url: /var/lib/wharf/state\n" + s3, []want{{1, "state_url", "want s3://BUCKET/PREFIX/"}}},
		{"no bucket", "state_url: s3:///state/\n" + s3, []want{{1, "state_url", "want s3://BUCKET/PREFIX/"}}},
		{"user info", "state_url: s3://key@files/state/\n" + s3, []want{{1, "state_url", "want s3://BUCKET/PREFIX/"}}},
		{"query", "state_url: s3://files/state/?versionId=1\n" + s3, []want{{1, "state_url", "want s3://BUCKET/PREFIX/"}}},
		{"bad bucket", "state_url: s3://Files/state/\n" + s3, []want{{1, "state_url", "bucket \"Files\": only lowercase"}}},
		{"empty folder", "state_url: s3://files/a//b/\n" + s3, []want{{1, "state_url", "prefix must be empty or folder names"}}},
		{"dot dot", "state_url: s3://files/a/../b/\n" + s3, []want{{1, "state_url", "prefix must be empty or folder names"}}},
		{"local backend", "state_url: s3://files/state/\nstorage: {backend: local, root: /srv}\n",
			[]want{{1, "state_url", "needs storage.backend: s3"}}},
		{"memory backend", "state_url: s3://files/state/\nstorage: {backend: memory}\n",
			[]want{{1, "state_url", "needs storage.backend: s3"}}},
		{"inside the homes", "state_url: s3://files/homes/.state/\n" + s3,
			[]want{{1, "state_url", `overlaps storage.s3.prefix "homes/" in bucket "files"`}}},
		{"the homes themselves", "state_url: s3://files/homes\n" + s3,
			[]want{{1, "state_url", "overlaps storage.s3.prefix"}}},
		{"around the homes", "state_url: s3://files/\n" + s3, []want{{1, "state_url", "overlaps storage.s3.prefix"}}},
		{"beside the users", "state_url: s3://files/wharf/state/\nusers_dir: s3://files/wharf/users/\n" + s3, nil},
		{"the users' folder", "state_url: s3://files/wharf/users/\nusers_dir: s3://files/wharf/users/\n" + s3,
			[]want{{1, "state_url", `overlaps users_dir "s3://files/wharf/users/"`}}},
		{"around the users", "state_url: s3://files/wharf/\nusers_dir: s3://files/wharf/users\n" + s3,
			[]want{{1, "state_url", "overlaps users_dir"}}},
		{"users in another bucket", "state_url: s3://files/wharf/\nusers_dir: s3://fleet-users/wharf/\n" + s3, nil},
		{"homes are the whole bucket", "state_url: s3://files/state/\nstorage:\n  backend: s3\n  s3: {bucket: files}\n",
			[]want{{1, "state_url", `overlaps storage.s3.prefix "" in bucket "files"`}}},
	}
	runParseCases(t, tests)
}

func TestEventLease(t *testing.T) {
	// The state_url line is line 1, event_lease line 2, the hook's
	// timeout line 6.
	const fleet = "state_url: s3://files/state/\n"
	const s3 = "storage:\n  backend: s3\n  s3: {bucket: files, prefix: homes/}\n"
	hook := func(kind, timeout string) string {
		if kind == "webhook" {
			return "hooks:\n  - name: h\n    webhook:\n      timeout: " + timeout + "\n      url: http://127.0.0.1:9/\n"
		}
		return "hooks:\n  - name: h\n    command:\n      timeout: " + timeout + "\n      argv: [/bin/true]\n"
	}
	tests := []parseCase{
		{"default", fleet + "\n" + hook("webhook", "0s") + s3, nil},
		{"default, command's default timeout", fleet + "\n" + hook("command", "0s") + s3, nil},
		{"short, short timeout", fleet + "event_lease: 3s\n" + hook("webhook", "1s") + s3, nil},
		{"short, default timeout", fleet + "event_lease: 3s\n" + hook("webhook", "0s") + s3,
			[]want{{6, "hooks[0].webhook.timeout", "10s is more than half of event_lease (3s)"}}},
		{"command longer than half", fleet + "event_lease: 1m\n" + hook("command", "31s") + s3,
			[]want{{6, "hooks[0].command.timeout", "31s is more than half of event_lease (1m0s)"}}},
		{"default lease, long command", fleet + "\n" + hook("command", "5m") + s3,
			[]want{{6, "hooks[0].command.timeout", "5m0s is more than half of event_lease (2m0s)"}}},
		{"without a fleet, long command", "\n\n" + hook("command", "5m") + s3, nil},
		{"without state_url", "\nevent_lease: 1m\n" + s3, []want{{2, "event_lease", "applies only with state_url"}}},
		{"below the minimum", fleet + "event_lease: 1s\n" + s3, []want{{2, "event_lease", "1s is below 2s"}}},
		{"negative", fleet + "event_lease: -1s\n" + s3, []want{{2, "event_lease", "must not be negative"}}},
	}
	runParseCases(t, tests)
}

package daemon

import (
	"slices"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
)

// TestLiveConfigByType: a reload takes config.Live from the new file and
// keeps config.Restart as in force, naming each restart-only key that
// differs, storage.s3 included (a list of names once left it out, so a
// bucket change was silently ignored).
func TestLiveConfigByType(t *testing.T) {
	cur, next := config.Default(), config.Default()
	cur.Users = []config.User{{Name: "alice", Home: "/alice"}}
	cur.Storage.S3.Bucket = "old"

	next.ShutdownGrace = 5 * time.Second
	next.Users = []config.User{{Name: "bob", Home: "/bob"}}
	next.UsersDir = "/etc/wharf/users"
	next.Storage.S3.Bucket = "new"
	next.Limits.MaxConnections++
	next.Hooks = []config.Hook{{Name: "h", Command: &config.HookCommand{Argv: []string{"/bin/true"}}}}
	next.File = "/etc/wharf/wharf.yaml"

	live, restart := liveConfig(cur, next)
	if want := []string{"storage.s3.bucket", "limits.max_connections", "hooks"}; !slices.Equal(restart, want) {
		t.Errorf("restart = %q, want %q", restart, want)
	}
	if live.ShutdownGrace != 5*time.Second || live.UsersDir != "/etc/wharf/users" || len(live.Users) != 1 || live.Users[0].Name != "bob" {
		t.Errorf("live settings not applied: grace %v, users_dir %q, users %v", live.ShutdownGrace, live.UsersDir, live.Users)
	}
	if live.Storage.S3.Bucket != "old" || live.Limits.MaxConnections != cur.Limits.MaxConnections || live.Hooks != nil {
		t.Errorf("restart-only settings not kept: bucket %q, max_connections %d, hooks %v", live.Storage.S3.Bucket, live.Limits.MaxConnections, live.Hooks)
	}
	if live.File != next.File {
		t.Errorf("file = %q, want the new config's", live.File)
	}
	if next.Storage.S3.Bucket != "new" || cur.Users[0].Name != "alice" {
		t.Error("liveConfig changed its arguments")
	}

	// Only live settings changed: nothing needs a restart.
	if _, restart := liveConfig(cur, &config.Config{Restart: cur.Restart, Live: next.Live}); restart != nil {
		t.Errorf("live-only change: restart = %q", restart)
	}
}

package daemon

import (
	"slices"
	"testing"

	"github.com/wharf-sftp/wharf/internal/config"
)

// The fleet's state is opened at start only: a reload that changes
// state_url says a restart is needed and keeps the folder in force.
func TestReloadStateURLNeedsRestart(t *testing.T) {
	cur, next := config.Default(), config.Default()
	cur.StateURL = "s3://files/state/"
	next.StateURL = "s3://files/other-state/"
	live, restart := liveConfig(cur, next)
	if !slices.Equal(restart, []string{"state_url"}) {
		t.Errorf("restart = %v, want [state_url]", restart)
	}
	if live.StateURL != cur.StateURL {
		t.Errorf("in force after reload: %q, want %q", live.StateURL, cur.StateURL)
	}
}

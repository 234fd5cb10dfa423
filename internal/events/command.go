package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
)

// stderrLimit is how much of a command's stderr reaches the log.
const stderrLimit = 4 << 10

// waitDelay is how long Wait waits for a command's stderr to close after
// the command exited or was killed: a grandchild left running in the
// background may hold it open indefinitely.
const waitDelay = 2 * time.Second

type command struct {
	argv      []string
	timeout   time.Duration
	path      string // the daemon's PATH, handed to the command
	waitDelay time.Duration
}

func newCommand(c *config.HookCommand, pathEnv string) (*command, error) {
	if len(c.Argv) == 0 || !strings.HasPrefix(c.Argv[0], "/") {
		return nil, errors.New("command hook: argv[0] must be an absolute path")
	}
	cmd := &command{argv: c.Argv, timeout: c.Timeout, path: pathEnv, waitDelay: waitDelay}
	if cmd.timeout <= 0 {
		cmd.timeout = config.DefaultCommandTimeout
	}
	return cmd, nil
}

func (c *command) kind() string { return "command" }

// env is the command's whole environment. Nothing else is inherited from
// the daemon: its environment may hold credentials (a storage backend's
// keys, a token for the admin listener) that a processing script has no
// business seeing, and a fixed environment makes the hook behave the same
// under systemd, Docker and a shell. PATH is kept so that scripts can run
// the usual tools by name.
func (c *command) env(ev *Event) []string {
	kv := [][2]string{
		{"PATH", c.path},
		{"WHARF_EVENT_TYPE", ev.Type},
		{"WHARF_EVENT_ID", ev.ID},
		{"WHARF_USER", ev.User},
		{"WHARF_PROTOCOL", ev.Protocol},
		{"WHARF_REMOTE", ev.Remote},
		{"WHARF_PATH", ev.Path},
		{"WHARF_TARGET", ev.Target},
		{"WHARF_STORAGE_PATH", ev.StoragePath},
		{"WHARF_SIZE", strconv.FormatInt(ev.Size, 10)},
		{"WHARF_SHA256", ev.SHA256},
		{"WHARF_OUTCOME", ev.Outcome},
	}
	env := make([]string, 0, len(kv))
	for _, p := range kv {
		// A NUL would make exec fail on every retry, forever; no real
		// path contains one.
		env = append(env, p[0]+"="+strings.ReplaceAll(p[1], "\x00", ""))
	}
	return env
}

func (c *command) deliver(ctx context.Context, ev *Event, body []byte) ([]slog.Attr, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.Env = c.env(ev)
	cmd.Dir = "/"
	// One line, so that a shell's `read -r line` sees it whole.
	cmd.Stdin = bytes.NewReader(append(body[:len(body):len(body)], '\n'))
	stderr := &headBuffer{limit: stderrLimit}
	cmd.Stderr = stderr
	// Its own process group, so that a timeout kills whatever the command
	// started as well (a shell script's children would otherwise live on).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = c.waitDelay
	start := time.Now()
	err := cmd.Run()
	attrs := []slog.Attr{slog.Duration("duration", time.Since(start))}
	if cmd.ProcessState != nil {
		attrs = append(attrs, slog.Int("exit_code", cmd.ProcessState.ExitCode()))
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		attrs = append(attrs, slog.String("stderr", s))
	}
	switch {
	case err == nil:
		return attrs, nil
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success():
		// It succeeded; something it left in the background still holds
		// stderr. Not a reason to run it again.
		return attrs, nil
	case ctx.Err() == context.DeadlineExceeded:
		return attrs, fmt.Errorf("command timed out after %s and was killed", c.timeout)
	default:
		return attrs, fmt.Errorf("command: %w", err)
	}
}

// headBuffer keeps the first limit bytes written to it and discards the
// rest, so that a chatty command cannot fill the daemon's memory.
type headBuffer struct {
	limit     int
	buf       bytes.Buffer
	truncated bool
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.limit - h.buf.Len(); room > 0 {
		if len(p) > room {
			h.buf.Write(p[:room])
			h.truncated = true
		} else {
			h.buf.Write(p)
		}
	} else if len(p) > 0 {
		h.truncated = true
	}
	return len(p), nil
}

func (h *headBuffer) String() string {
	if h.truncated {
		return h.buf.String() + " [truncated]"
	}
	return h.buf.String()
}

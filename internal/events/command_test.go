package events

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
)

// script writes an executable /bin/sh script into dir; "DIR" in body
// stands for dir, since the hook's environment cannot carry it.
func script(t *testing.T, dir, body string) string {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	p := filepath.Join(dir, "hook.sh")
	body = "#!/bin/sh\n" + strings.ReplaceAll(body, "DIR", dir) + "\n"
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func attr(attrs []slog.Attr, key string) (slog.Value, bool) {
	for _, a := range attrs {
		if a.Key == key {
			return a.Value, true
		}
	}
	return slog.Value{}, false
}

func TestCommandStdinAndEnv(t *testing.T) {
	t.Setenv("WHARF_TEST_LEAK", "daemon-credential")
	dir := t.TempDir()
	sh := script(t, dir, `cat > DIR/stdin
env > DIR/env
printf '%s\n' "$@" > DIR/args
pwd > DIR/pwd
echo "processed $WHARF_PATH" >&2`)
	log, logs := testLogger()
	b, err := Open(Options{
		StateDir: t.TempDir(),
		Log:      log,
		Hooks:    []config.Hook{{Name: "move", Events: []string{Upload}, Command: &config.HookCommand{Argv: []string{sh, "--file", "a b"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	runBus(t, b)
	ev := Event{
		ID: "e1", Type: Upload, User: "acme", Protocol: "ftps", Remote: "192.0.2.1:5000",
		Path: "/inbox/a b.csv", StoragePath: "/srv/acme/inbox/a b.csv", Size: 1234, SHA256: strings.Repeat("ab", 32), Outcome: "ok",
	}
	b.Emit(ev)
	waitFor(t, 10*time.Second, "the command", func() bool { return hookStats(b, "move").Delivered == 1 })

	stdin, err := os.ReadFile(filepath.Join(dir, "stdin"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(stdin), "}\n") || strings.Count(string(stdin), "\n") != 1 {
		t.Errorf("stdin %q: want one JSON line", stdin)
	}
	var got Event
	if err := json.Unmarshal(stdin, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != ev.ID || got.Path != ev.Path || got.SHA256 != ev.SHA256 || got.Size != ev.Size || got.Time.IsZero() {
		t.Errorf("stdin event %+v, want %+v with a time", got, ev)
	}

	envText, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for line := range strings.Lines(string(envText)) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		env[k] = v
	}
	want := map[string]string{
		"PATH":               os.Getenv("PATH"),
		"WHARF_EVENT_TYPE":   "upload",
		"WHARF_EVENT_ID":     "e1",
		"WHARF_USER":         "acme",
		"WHARF_PROTOCOL":     "ftps",
		"WHARF_REMOTE":       "192.0.2.1:5000",
		"WHARF_PATH":         "/inbox/a b.csv",
		"WHARF_TARGET":       "",
		"WHARF_STORAGE_PATH": "/srv/acme/inbox/a b.csv",
		"WHARF_SIZE":         "1234",
		"WHARF_SHA256":       ev.SHA256,
		"WHARF_OUTCOME":      "ok",
	}
	for k, v := range want {
		if got, ok := env[k]; !ok || got != v {
			t.Errorf("env %s = %q (set %v), want %q", k, got, ok, v)
		}
	}
	// The shell adds a few of its own; nothing may come from the daemon.
	shellOwn := []string{"PWD", "OLDPWD", "SHLVL", "_"}
	for k := range env {
		if _, ok := want[k]; !ok && !slices.Contains(shellOwn, k) {
			t.Errorf("env %s=%q inherited from the daemon", k, env[k])
		}
	}
	if args, _ := os.ReadFile(filepath.Join(dir, "args")); string(args) != "--file\na b\n" {
		t.Errorf("args %q: want argv passed verbatim, no shell splitting", args)
	}
	if pwd, _ := os.ReadFile(filepath.Join(dir, "pwd")); string(pwd) != "/\n" {
		t.Errorf("working directory %q, want /", pwd)
	}
	if len(logs.Lines(`"msg":"hook delivered"`, `"exit_code":0`, `"stderr":"processed /inbox/a b.csv"`)) != 1 {
		t.Errorf("want the exit code and stderr logged:\n%s", logs)
	}
}

func TestCommandRetriesUntilSuccess(t *testing.T) {
	dir := t.TempDir()
	sh := script(t, dir, `n=$(cat DIR/count 2>/dev/null || echo 0)
n=$((n+1))
echo $n > DIR/count
if [ $n -lt 3 ]; then echo "not yet $n" >&2; exit 7; fi
cat >> DIR/got`)
	log, logs := testLogger()
	b, err := Open(Options{
		StateDir:    t.TempDir(),
		Log:         log,
		Hooks:       []config.Hook{{Name: "cmd", Command: &config.HookCommand{Argv: []string{sh}}}},
		BackoffBase: 5 * time.Millisecond,
		BackoffMax:  20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runBus(t, b)
	ids := emitN(b, 3)
	waitFor(t, 10*time.Second, "deliveries", func() bool { return hookStats(b, "cmd").Delivered == 3 })
	if s := hookStats(b, "cmd"); s.Failed != 2 || s.Queued != 0 {
		t.Errorf("stats %+v, want 2 failed attempts and an empty queue", s)
	}
	data, err := os.ReadFile(filepath.Join(dir, "got"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for line := range strings.Lines(string(data)) {
		var ev Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, ev.ID)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("command saw %v, want %v in order", got, ids)
	}
	for _, n := range []string{"1", "2"} {
		if len(logs.Lines(`"msg":"hook delivery failed"`, `"exit_code":7`, `"stderr":"not yet `+n+`"`)) != 1 {
			t.Errorf("attempt %s: want its exit code and stderr logged:\n%s", n, logs)
		}
	}
}

func TestCommandDeliver(t *testing.T) {
	tests := []struct {
		name       string
		body       string // the script; "" runs a program that does not exist
		timeout    time.Duration
		wantErr    string // substring; "" for success
		wantExit   int    // -1: not checked
		wantStderr string // prefix
		maxTime    time.Duration
	}{
		{"success", `cat >/dev/null; exit 0`, time.Minute, "", 0, "", 5 * time.Second},
		{"non-zero exit", `echo boom >&2; exit 3`, time.Minute, "exit status 3", 3, "boom", 5 * time.Second},
		{"stderr is capped", `head -c 100000 /dev/zero | tr '\0' x >&2; exit 1`, time.Minute, "exit status 1", 1, "xxxx", 5 * time.Second},
		{"timeout kills", `sleep 30`, 300 * time.Millisecond, "timed out", -1, "", 5 * time.Second},
		{"background child keeps stderr open", `sleep 30 & echo $! > DIR/bg; exit 0`, time.Minute, "", 0, "", 5 * time.Second},
		{"missing program", "", time.Minute, "no such file", -1, "", 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			argv := []string{filepath.Join(dir, "absent")}
			if tt.body != "" {
				argv = []string{script(t, dir, tt.body)}
			}
			t.Cleanup(func() { killRecorded(filepath.Join(dir, "bg")) })
			c, err := newCommand(&config.HookCommand{Argv: argv, Timeout: tt.timeout}, os.Getenv("PATH"))
			if err != nil {
				t.Fatal(err)
			}
			c.waitDelay = 200 * time.Millisecond
			start := time.Now()
			attrs, err := c.deliver(context.Background(), &Event{ID: "x", Type: Upload}, []byte(`{"id":"x"}`))
			if d := time.Since(start); d > tt.maxTime {
				t.Errorf("took %s, want under %s", d, tt.maxTime)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("deliver = %v, want success", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("deliver = %v, want an error containing %q", err, tt.wantErr)
			}
			if tt.wantExit >= 0 {
				if v, ok := attr(attrs, "exit_code"); !ok || v.Int64() != int64(tt.wantExit) {
					t.Errorf("exit_code = %v (%v), want %d", v, ok, tt.wantExit)
				}
			}
			v, _ := attr(attrs, "stderr")
			if !strings.HasPrefix(v.String(), tt.wantStderr) {
				t.Errorf("stderr %q, want prefix %q", v.String(), tt.wantStderr)
			}
			if len(v.String()) > stderrLimit+len(" [truncated]") {
				t.Errorf("stderr logged at %d bytes, over the %d limit", len(v.String()), stderrLimit)
			}
		})
	}
}

// TestCommandTimeoutKillsGroup: what the command started dies with it.
func TestCommandTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	sh := script(t, dir, `sleep 30 &
echo $! > DIR/child
wait`)
	c, err := newCommand(&config.HookCommand{Argv: []string{sh}, Timeout: 300 * time.Millisecond}, os.Getenv("PATH"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.deliver(context.Background(), &Event{ID: "x"}, []byte(`{}`))
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("deliver = %v, want a timeout", err)
	}
	t.Cleanup(func() { killRecorded(filepath.Join(dir, "child")) }) // should it survive
	data, err := os.ReadFile(filepath.Join(dir, "child"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the background child to die", func() bool {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return errors.Is(err, os.ErrNotExist)
		}
		// A zombie is dead; only its parent (or init) has yet to reap it.
		_, rest, _ := strings.Cut(string(stat), ") ")
		return strings.HasPrefix(rest, "Z") || strings.HasPrefix(rest, "X")
	})
}

// killRecorded kills the process whose pid a test script wrote to file.
func killRecorded(file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 1 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/syncbuf"
)

// repoFile returns the path of a file of the repository (the module root).
func repoFile(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), name)
}

// TestMakeRun runs `make run` as a newcomer does, on a copy of the
// Makefile and configs/dev.yaml (ports moved to free ones, the binary
// already built), and then the commands it prints, as printed: sftp with
// the demo key, lftp and curl over explicit FTPS with the demo password,
// and `wharf user onboard`.
func TestMakeRun(t *testing.T) {
	makeBin := requireClient(t, "make")
	for _, c := range []string{"ssh-keygen", "sftp", "lftp", "curl"} {
		requireClient(t, c)
	}
	dir := t.TempDir()
	makefile, err := os.ReadFile(repoFile(t, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	devYAML, err := os.ReadFile(repoFile(t, "configs/dev.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The ports the Makefile prints are dev.yaml's.
	portOf := func(re string, data []byte) string {
		m := regexp.MustCompile(re).FindSubmatch(data)
		if m == nil {
			t.Fatalf("no match for %s", re)
		}
		return string(m[1])
	}
	sftpPort := portOf(`(?m)^DEV_SFTP_PORT := (\d+)$`, makefile)
	ftpsPort := portOf(`(?m)^DEV_FTPS_PORT := (\d+)$`, makefile)
	if got := portOf(`(?m)^sftp:\n  listen: "127\.0\.0\.1:(\d+)"`, devYAML); got != sftpPort {
		t.Errorf("dev.yaml's SFTP port is %s, the Makefile prints %s", got, sftpPort)
	}
	if got := portOf(`(?m)^ftps:\n  listen: "127\.0\.0\.1:(\d+)"`, devYAML); got != ftpsPort {
		t.Errorf("dev.yaml's FTPS port is %s, the Makefile prints %s", got, ftpsPort)
	}
	passive := portOf(`(?m)^  passive_ports: "(\d+-\d+)"`, devYAML)

	// The copy listens on free ports, so that a developer's own `make run`
	// and other tests are left alone.
	newSFTP, newFTPS := freePortOn(t, "127.0.0.1"), freePortOn(t, "127.0.0.1")
	lo, hi := freePassiveRange(t, 5)
	conf := string(devYAML)
	for old, repl := range map[string]string{
		`"127.0.0.1:` + sftpPort + `"`: `"127.0.0.1:` + strconv.Itoa(newSFTP) + `"`,
		`"127.0.0.1:` + ftpsPort + `"`: `"127.0.0.1:` + strconv.Itoa(newFTPS) + `"`,
		`"` + passive + `"`:            `"` + strconv.Itoa(lo) + "-" + strconv.Itoa(hi) + `"`,
	} {
		if strings.Count(conf, old) != 1 {
			t.Fatalf("dev.yaml holds %s %d times, want once", old, strings.Count(conf, old))
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	if err := os.MkdirAll(filepath.Join(dir, "configs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"Makefile": makefile, "configs/dev.yaml": []byte(conf)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := os.ReadFile(wharfBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "wharf"), bin, 0o755); err != nil {
		t.Fatal(err)
	}

	// GO=true: `make build` has nothing to compile here; bin/wharf is the
	// binary under test.
	cmd := exec.Command(makeBin, "run", "GO=true", "DEV_SFTP_PORT="+strconv.Itoa(newSFTP), "DEV_FTPS_PORT="+strconv.Itoa(newFTPS))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "MAKEFLAGS=", "MAKELEVEL=")
	var stdout, stderr syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // make and wharf, stopped together
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("make run stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	})
	// Up when both listeners logged (the text log of configs/dev.yaml).
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(stderr.String(), "msg=listening component=ftpd") || !strings.Contains(stderr.String(), "msg=listening component=sftpd") {
		select {
		case err := <-exited:
			t.Fatalf("make run ended: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("make run: wharf not listening after a minute")
		}
	}

	printed := map[string]string{}
	for line := range strings.SplitSeq(stdout.String(), "\n") {
		for _, prefix := range []string{"sftp ", "lftp ", "curl ", "./bin/wharf user onboard "} {
			if rest, ok := strings.CutPrefix(line, "  "+prefix); ok {
				printed[prefix] = prefix + rest
			}
		}
	}
	if len(printed) != 4 {
		t.Fatalf("make run printed %d of the 4 commands:\n%s", len(printed), stdout.String())
	}
	pw, err := os.ReadFile(filepath.Join(dir, "var", "demo_password"))
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(pw))
	if fi, _ := os.Stat(filepath.Join(dir, "var", "demo_password")); fi.Mode().Perm() != 0o600 || len(password) != 20 {
		t.Errorf("demo password: mode %v, %d characters; want 0600 and 20", fi.Mode().Perm(), len(password))
	}
	rendered, _ := os.ReadFile(filepath.Join(dir, "var", "dev.yaml"))
	if bytes.Contains(rendered, []byte(password)) || !bytes.Contains(rendered, []byte(`password_hash: "$argon2id$`)) {
		t.Error("var/dev.yaml holds the password, or no argon2id hash of it")
	}
	if strings.Contains(stdout.String()+stderr.String(), password) {
		t.Error("make run printed the password")
	}

	run := func(line, stdin string) string {
		t.Helper()
		out, errOut, err := runCmdOpts(t, clientTimeout, cmdOpts{Dir: dir, Stdin: stdin, Env: partnerEnv(t)}, "/bin/sh", "-c", line)
		if err != nil {
			t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", line, err, out, redact(errOut, password))
		}
		return out
	}
	demo := filepath.Join(dir, "var", "data", "demo")
	sftpSum := writeRandomFile(t, filepath.Join(dir, "via-sftp.bin"), 128<<10)
	run(printed["sftp "], "put via-sftp.bin\nbye\n")
	checkSum(t, "sftp upload", filepath.Join(demo, "via-sftp.bin"), sftpSum)

	ftpsSum := writeRandomFile(t, filepath.Join(dir, "via-lftp.bin"), 128<<10)
	run(printed["lftp "], "put via-lftp.bin\nbye\n")
	checkSum(t, "lftp upload over explicit FTPS", filepath.Join(demo, "via-lftp.bin"), ftpsSum)

	if list := run(printed["curl "], ""); !strings.Contains(list, "via-sftp.bin") || !strings.Contains(list, "via-lftp.bin") {
		t.Errorf("curl's FTPS listing lacks the uploads:\n%s", list)
	}
	if readme := run(printed["./bin/wharf user onboard "], ""); !strings.HasPrefix(readme, "Connecting to 127.0.0.1 as demo") ||
		!strings.Contains(readme, "port "+strconv.Itoa(newFTPS)+", explicit TLS") {
		t.Errorf("the onboarding README:\n%s", readme)
	}
	if !regexp.MustCompile(`msg=login proto=ftps .* user=demo method=password outcome=ok`).MatchString(stderr.String()) {
		t.Error("no FTPS password login in wharf's log")
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestVsftpdConfig(t *testing.T) {
	setup := vsftpdSetup{port: 2121, data: "/w/vsftpd/data", empty: "/w/vsftpd/empty",
		certFile: "/w/vsftpd/cert.pem", keyFile: "/w/vsftpd/key.pem", pam: vsftpdPAMService}
	cfg, err := vsftpdConfig(setup)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(cfg, "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		// vsftpd takes everything after the first '=' as the value and
		// knows no spaces around it.
		key, val, ok := strings.Cut(line, "=")
		if !ok || key != strings.TrimSpace(key) || val != strings.TrimSpace(val) || key == "" {
			t.Errorf("malformed line %q", line)
			continue
		}
		if _, dup := got[key]; dup {
			t.Errorf("%s set twice", key)
		}
		got[key] = val
	}
	for key, want := range map[string]string{
		"listen":                 "YES",
		"listen_ipv6":            "NO",
		"listen_address":         "127.0.0.1",
		"listen_port":            "2121",
		"background":             "NO",
		"anonymous_enable":       "NO",
		"local_enable":           "YES",
		"write_enable":           "YES",
		"local_root":             setup.data,
		"chroot_local_user":      "YES",
		"secure_chroot_dir":      setup.empty,
		"pam_service_name":       vsftpdPAMService,
		"ssl_enable":             "YES",
		"rsa_cert_file":          setup.certFile,
		"rsa_private_key_file":   setup.keyFile,
		"force_local_logins_ssl": "YES",
		"force_local_data_ssl":   "YES",
		"require_ssl_reuse":      "YES",
		"pasv_enable":            "YES",
		"pasv_address":           "127.0.0.1",
		"port_enable":            "NO",
		"xferlog_enable":         "NO",
	} {
		if got[key] != want {
			t.Errorf("%s=%q, want %q", key, got[key], want)
		}
	}

	for _, bad := range []string{"/w/da\nta", "/w/data ", ""} {
		s := setup
		s.data = bad
		if _, err := vsftpdConfig(s); err == nil {
			t.Errorf("local_root %q accepted", bad)
		}
	}
}

func TestWharfConfigFTPS(t *testing.T) {
	c := client{user: "root", publicKey: "ssh-ed25519 AAAA test"}
	plain := wharfConfig("/s", "/d", c, nil)
	if strings.Contains(plain, "ftps") {
		t.Errorf("FTPS configured without an account:\n%s", plain)
	}
	cfg := wharfConfig("/s", "/d", c, &ftpsAccount{user: ftpsUser, password: "p", hash: "$2a$04$x"})
	for _, want := range []string{
		"  - name: \"wharfbench\"\n    home: /\n    password_hash: \"$2a$04$x\"\n    protocols: [ftps]\n",
		"ftps:\n  listen: \"127.0.0.1:0\"\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
}

func TestNewFTPSAccount(t *testing.T) {
	a, err := newFTPSAccount()
	if err != nil {
		t.Fatal(err)
	}
	if a.user != ftpsUser || len(a.password) != 32 || !strings.HasPrefix(a.hash, "$2a$04$") || len(a.hash) != 60 {
		t.Errorf("account %+v", a)
	}
}

func TestTLSParameters(t *testing.T) {
	const verbose = `*   Trying 127.0.0.1:2121...
* Connected to 127.0.0.1 (127.0.0.1) port 2121 (#0)
< 234 Proceed with negotiation.
* TLSv1.3 (IN), TLS handshake, Finished (20):
* SSL connection using TLSv1.3 / TLS_AES_256_GCM_SHA384
< 230 Login successful.
`
	got, err := tlsParameters(verbose)
	if err != nil || got != "TLSv1.3 TLS_AES_256_GCM_SHA384" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := tlsParameters("< 230 Login successful.\n"); err == nil {
		t.Error("no TLS line, no error")
	}
}

func TestPrintTable(t *testing.T) {
	results := []result{
		{name: "upload 1 GiB, aes128-gcm", unit: "MB/s", cpuUnit: "s/GB",
			values: map[string][]float64{"wharf": {200, 190, 210}, "openssh": {400, 380, 420}},
			cpu:    map[string][]float64{"wharf": {4, 4, 4}, "openssh": {2, 2, 2}}},
		{name: "FTPS download 1 GiB, curl", unit: "MB/s", cpuUnit: "s/GB",
			values:  map[string][]float64{"wharf": {500, 480, 520}, "vsftpd": {125, 120, 130}},
			cpu:     map[string][]float64{"wharf": {1.6, 1.5, 1.7}, "vsftpd": {4.8, 4.7, 4.9}},
			client:  map[string][]float64{"wharf": {2.5, 2.4, 2.6}, "vsftpd": {2.2, 2.1, 2.3}},
			busy:    map[string][]float64{"wharf": {1.9, 1.8, 2}, "vsftpd": {0.9, 0.8, 1}},
			ceiling: []float64{800, 700, 900}},
		{name: "10,000 idle SFTP sessions held", unit: "fresh login ms, p90", cpuUnit: "ms/session",
			values: map[string][]float64{"wharf": {12}},
			cpu:    map[string][]float64{"wharf": {0.5}},
			rss:    map[string][]float64{"wharf": {80}}},
		{name: "broken row", unit: "x", cpuUnit: "y", values: map[string][]float64{}, cpu: map[string][]float64{}},
	}
	var buf bytes.Buffer
	printTable(&buf, results)
	lines := strings.Split(buf.String(), "\n")
	for _, want := range []string{
		"| test | wharf median (min–max) | reference | reference median (min–max) | ratio wharf/reference | server CPU wharf | server CPU reference | CPU ratio wharf/reference |",
		"| upload 1 GiB, aes128-gcm (MB/s; CPU s/GB) | 200.0 (190.0–210.0) | openssh | 400.0 (380.0–420.0) | 0.50 | 4.00 | 2.00 | 2.00 |",
		"| FTPS download 1 GiB, curl (MB/s; CPU s/GB) | 500.0 (480.0–520.0) | vsftpd | 125.0 (120.0–130.0) | 4.00 | 1.60 (1.50–1.70) | 4.80 (4.70–4.90) | 0.33 |",
		"| 10,000 idle SFTP sessions held (fresh login ms, p90; CPU ms/session) | 12.0 | — | — | — | 0.500 | — | — |",
		"| broken row (x; CPU y) | — | — | — | — | — | — | — |",
		"10,000 idle SFTP sessions held, wharf: peak RSS growth 80.0 MiB (VmHWM after the run minus VmRSS before it)",
		"- FTPS download 1 GiB, curl: wharf: client 2.50 (2.40–2.60) s/GB, 1.90 (1.80–2.00) CPUs busy; " +
			"vsftpd: client 2.20 (2.10–2.30) s/GB, 0.900 (0.800–1.00) CPUs busy; " +
			"the client's ceiling here (HTTPS from memory, served by wharf-bench itself): 800.0 (700.0–900.0) MB/s",
	} {
		found := false
		for _, l := range lines {
			if l == want {
				found = true
			}
		}
		if !found {
			t.Errorf("table lacks line\n%s\ngot:\n%s", want, buf.String())
		}
	}
	// Every table row has as many cells as the header.
	cols := strings.Count(lines[0], "|")
	for _, l := range lines {
		if strings.HasPrefix(l, "|") && strings.Count(l, "|") != cols {
			t.Errorf("%d cells, header has %d: %s", strings.Count(l, "|")-1, cols-1, l)
		}
	}
}

// TestReapedTreeCPUCountsOrphans is what the vsftpd column rests on: a
// process orphaned beneath the listener is reaped by the subreaper, and its
// CPU time counted, where the listener's own counters never see it.
func TestReapedTreeCPUCountsOrphans(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	// A FIFO, not a polling loop: the listener must have no children of its
	// own while it waits, or reapedTreeCPU would wait for them.
	fifo := filepath.Join(dir, "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// The listener waits for the go signal, leaves a busy loop orphaned (the
	// subshell that started it exits at once) and becomes a childless sleep.
	script := `read x < "$1"
( sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done' & )
exec sleep 60`
	p, err := startProcessEnv([]string{subreaperEnv + "=1"}, "subreaper", filepath.Join(dir, "log"), self, sh, "-c", script, "sh", fifo)
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	line, err := p.waitForLog(ctx, func(line string) bool { return strings.HasPrefix(line, subreaperStarted) })
	if err != nil {
		t.Fatal(err)
	}
	listener, err := strconv.Atoi(strings.TrimPrefix(line, subreaperStarted))
	if err != nil {
		t.Fatal(err)
	}
	reaper := p.cmd.Process.Pid
	proc := newProcfs(ctx)

	before, err := proc.reapedTreeCPU(ctx, reaper, listener)
	if err != nil {
		t.Fatal(err)
	}
	listenerBefore, err := proc.cpuTotal(listener)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fifo, []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Once the listener is sleep, the orphan exists.
	for {
		comm, err := os.ReadFile("/proc/" + strconv.Itoa(listener) + "/comm")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	after, err := proc.reapedTreeCPU(ctx, reaper, listener)
	if err != nil {
		t.Fatal(err)
	}
	listenerAfter, err := proc.cpuTotal(listener)
	if err != nil {
		t.Fatal(err)
	}
	got, listenerOnly := after-before, listenerAfter-listenerBefore
	if got < 5*proc.tick {
		t.Fatalf("reaped tree CPU grew by %v only: the orphan's busy loop was not counted", got)
	}
	if listenerOnly > got/2 {
		t.Errorf("the listener's own counters grew by %v of %v: the test did not orphan its busy loop", listenerOnly, got)
	}
}

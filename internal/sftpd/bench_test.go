package sftpd_test

// Benchmarks of SFTP request handling: the real daemon in-process on
// 127.0.0.1 with its default configuration and a local store on tmpfs,
// driven by pkg/sftp (client and server then share the process and its
// CPUs: -benchmem and -cpuprofile see both) and by the OpenSSH sftp binary
// (a separate process: -cpuprofile sees the server alone). They run only
// with -bench; compare a change with benchstat:
//
//	go test -run '^$' -bench . -benchmem -count 6 ./internal/sftpd > old.txt
//	(change something)
//	go test -run '^$' -bench . -benchmem -count 6 ./internal/sftpd > new.txt
//	benchstat old.txt new.txt

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
)

const (
	benchUser         = "bench"
	benchTransferSize = 64 << 20
	benchSmallFiles   = 100
	benchListEntries  = 10000
)

// benchServer is an in-process daemon with one user whose home is hostDir.
type benchServer struct {
	d       *daemontest.Daemon
	key     ed25519.PrivateKey // the user's only key, for the OpenSSH client too
	signer  ssh.Signer
	hostDir string
}

// startBench starts the daemon before any timer runs; the caller's
// b.ResetTimer excludes it.
func startBench(b *testing.B) *benchServer {
	b.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	root := benchTmpfsDir(b)
	cfg := config.Default()
	cfg.Storage.Backend = "local"
	cfg.Storage.Root = root
	cfg.Users = []config.User{{
		Name:       benchUser,
		Home:       "/" + benchUser,
		PublicKeys: config.Keys(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))),
	}}
	hostDir := filepath.Join(root, benchUser)
	if err := os.MkdirAll(hostDir, 0o750); err != nil {
		b.Fatal(err)
	}
	return &benchServer{d: daemontest.Start(b, cfg), key: priv, signer: signer, hostDir: hostDir}
}

// benchTmpfsDir is a directory on tmpfs when the machine has one, so that
// the figures measure code rather than a disk.
func benchTmpfsDir(b *testing.B) string {
	b.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "wharf-sftpd-bench-")
		if err == nil {
			b.Cleanup(func() {
				if err := os.RemoveAll(dir); err != nil {
					b.Errorf("remove %s: %v", dir, err)
				}
			})
			return dir
		}
		b.Logf("/dev/shm is not writable (%v): storage on the test temp dir, figures include its disk", err)
		return b.TempDir()
	}
	b.Logf("no /dev/shm: storage on the test temp dir, figures include its disk")
	return b.TempDir()
}

// client logs in with pkg/sftp. The cipher is pinned to AES-128-GCM, the
// one every client negotiates with wharf's default offer when it prefers
// it; pkg/sftp's own options (packet size...) come in opts.
func (s *benchServer) client(b *testing.B, opts ...sftp.ClientOption) *sftp.Client {
	b.Helper()
	conn, err := ssh.Dial("tcp", s.d.Addr, &ssh.ClientConfig{
		User:            benchUser,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(s.signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // loopback, a daemon this benchmark started
		Config:          ssh.Config{Ciphers: []string{ssh.CipherAES128GCM}},
		Timeout:         10 * time.Second,
	})
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	c, err := sftp.NewClient(conn, opts...)
	if err != nil {
		conn.Close()
		b.Fatalf("sftp: %v", err)
	}
	b.Cleanup(func() { c.Close(); conn.Close() })
	return c
}

func benchData(n int, seed byte) []byte {
	buf := make([]byte, n)
	src := mrand.NewChaCha8([32]byte{seed})
	if _, err := io.ReadFull(src, buf); err != nil {
		panic(err) // ChaCha8 never fails
	}
	return buf
}

// benchPackets are the client's request sizes: pkg/sftp's and PuTTY's
// default, and OpenSSH's once a server advertises limits@openssh.com.
var benchPackets = []struct {
	name string
	size int
}{
	{"32KiB", 32 << 10},
	{"255KiB", 261120},
}

// countingDiscard counts what a download delivered without keeping it.
type countingDiscard struct{ n int64 }

func (c *countingDiscard) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// BenchmarkTransfer moves 64 MiB per iteration in one session with
// pkg/sftp's pipelined ReadFrom/WriteTo (64 requests in flight, as OpenSSH
// keeps), opening and closing the file each time. The content is checked
// once, after the timed loop.
//
// Downloads use 32 KiB requests only: the server answers larger reads with
// 32 KiB (pkg/sftp's default max tx packet), and pkg/sftp's concurrent
// WriteTo takes such a short read for a full one and silently drops the
// rest of each request. BenchmarkOpenSSHClient measures 255 KiB downloads
// with a client that handles short reads.
func BenchmarkTransfer(b *testing.B) {
	data := benchData(benchTransferSize, 1)
	for _, pkt := range benchPackets {
		b.Run("upload/packet="+pkt.name, func(b *testing.B) {
			s := startBench(b)
			c := s.client(b, sftp.MaxPacketUnchecked(pkt.size), sftp.UseConcurrentWrites(true))
			b.SetBytes(benchTransferSize)
			b.ResetTimer()
			for range b.N {
				f, err := c.Create("/up.bin")
				if err != nil {
					b.Fatalf("create: %v", err)
				}
				n, err := f.ReadFrom(bytes.NewReader(data))
				if err != nil || n != benchTransferSize {
					f.Close()
					b.Fatalf("upload: %d bytes, %v", n, err)
				}
				if err := f.Close(); err != nil {
					b.Fatalf("close: %v", err)
				}
			}
			b.StopTimer()
			got, err := os.ReadFile(filepath.Join(s.hostDir, "up.bin"))
			if err != nil {
				b.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				b.Fatalf("uploaded file differs from what was sent (%d bytes, want %d)", len(got), len(data))
			}
		})
	}
	b.Run("download/packet=32KiB", func(b *testing.B) {
		s := startBench(b)
		if err := os.WriteFile(filepath.Join(s.hostDir, "down.bin"), data, 0o640); err != nil {
			b.Fatal(err)
		}
		c := s.client(b)
		b.SetBytes(benchTransferSize)
		b.ResetTimer()
		for range b.N {
			f, err := c.Open("/down.bin")
			if err != nil {
				b.Fatalf("open: %v", err)
			}
			var w countingDiscard
			n, err := f.WriteTo(&w)
			if err != nil || n != benchTransferSize || w.n != benchTransferSize {
				f.Close()
				b.Fatalf("download: %d bytes (%d delivered), %v", n, w.n, err)
			}
			if err := f.Close(); err != nil {
				b.Fatalf("close: %v", err)
			}
		}
		b.StopTimer()
		f, err := c.Open("/down.bin")
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		var got bytes.Buffer
		if _, err := f.WriteTo(&got); err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), data) {
			b.Fatalf("downloaded %d bytes that differ from the file", got.Len())
		}
	})
}

// BenchmarkSmallFiles is the per-file cost, round trips included, that
// dominates batches of many small files: one op is one file.
func BenchmarkSmallFiles(b *testing.B) {
	small := benchData(64<<10, 2)
	b.Run("open-close", func(b *testing.B) {
		s := startBench(b)
		for i := range benchSmallFiles {
			if err := os.WriteFile(filepath.Join(s.hostDir, smallFileName(i)), small[:4<<10], 0o640); err != nil {
				b.Fatal(err)
			}
		}
		c := s.client(b)
		b.ResetTimer()
		for i := range b.N {
			f, err := c.Open("/" + smallFileName(i%benchSmallFiles))
			if err != nil {
				b.Fatalf("open: %v", err)
			}
			if err := f.Close(); err != nil {
				b.Fatalf("close: %v", err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
	})
	b.Run("put-64KiB", func(b *testing.B) {
		s := startBench(b)
		c := s.client(b, sftp.UseConcurrentWrites(true))
		b.SetBytes(int64(len(small)))
		b.ResetTimer()
		for i := range b.N {
			name := "/" + smallFileName(i%benchSmallFiles)
			f, err := c.Create(name)
			if err != nil {
				b.Fatalf("create: %v", err)
			}
			if n, err := f.ReadFrom(bytes.NewReader(small)); err != nil || n != int64(len(small)) {
				f.Close()
				b.Fatalf("write %s: %d bytes, %v", name, n, err)
			}
			if err := f.Close(); err != nil {
				b.Fatalf("close: %v", err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
		got, err := os.ReadFile(filepath.Join(s.hostDir, smallFileName(0)))
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(got, small) {
			b.Fatalf("%s holds %d bytes that differ from what was sent", smallFileName(0), len(got))
		}
	})
}

func smallFileName(i int) string { return fmt.Sprintf("f%06d", i) }

// BenchmarkList reads a 10,000-entry directory in full per iteration.
func BenchmarkList(b *testing.B) {
	s := startBench(b)
	dir := filepath.Join(s.hostDir, "list")
	if err := os.Mkdir(dir, 0o750); err != nil {
		b.Fatal(err)
	}
	for i := range benchListEntries {
		if err := os.WriteFile(filepath.Join(dir, smallFileName(i)), nil, 0o640); err != nil {
			b.Fatal(err)
		}
	}
	c := s.client(b)
	b.ResetTimer()
	for range b.N {
		entries, err := c.ReadDir("/list")
		if err != nil {
			b.Fatalf("list: %v", err)
		}
		if len(entries) != benchListEntries {
			b.Fatalf("listed %d entries, want %d", len(entries), benchListEntries)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)*benchListEntries/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkOpenSSHClient runs the OpenSSH sftp binary, one process and one
// login per iteration, moving 64 MiB. "default" passes no option, as a
// partner's cron job does: the client's own preference picks the cipher
// (chacha20-poly1305 first) and its request size (32 KiB unless the server
// advertises limits@openssh.com). "B261120" forces 255 KiB requests.
// Profile the server alone during a 1 GiB upload with
//
//	go test -run '^$' -bench 'OpenSSHClient/upload/default$' -benchtime 16x -cpuprofile cpu.out ./internal/sftpd
func BenchmarkOpenSSHClient(b *testing.B) {
	sftpBin, err := exec.LookPath("sftp")
	if err != nil {
		// Not a skip: a skipped benchmark prints nothing without -v.
		b.Fatalf("OpenSSH sftp client (Debian package openssh-client) not found: %v", err)
	}
	data := benchData(benchTransferSize, 3)
	gcm := []string{"-o", "Ciphers=" + ssh.CipherAES128GCM}
	for _, v := range []struct {
		name string
		args []string
	}{
		{"default", nil},
		{"aes128-gcm", gcm},
		{"chacha20-poly1305", []string{"-o", "Ciphers=" + ssh.CipherChaCha20Poly1305}},
		{"aes128-gcm-B261120", append([]string{"-B", "261120"}, gcm...)},
	} {
		name, extra := v.name, v.args
		b.Run("upload/"+name, func(b *testing.B) {
			s := startBench(b)
			oc := newOpenSSHClient(b, sftpBin, s, extra)
			local := filepath.Join(oc.dir, "src.bin")
			if err := os.WriteFile(local, data, 0o600); err != nil {
				b.Fatal(err)
			}
			batch := oc.batch(b, "put "+strconv.Quote(local)+" up.bin\n")
			b.SetBytes(benchTransferSize)
			reportServerCPU(b, oc.timeRuns(b, batch), benchTransferSize)
			got, err := os.ReadFile(filepath.Join(s.hostDir, "up.bin"))
			if err != nil {
				b.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				b.Fatalf("uploaded file differs from what was sent (%d bytes, want %d)", len(got), len(data))
			}
		})
		b.Run("download/"+name, func(b *testing.B) {
			s := startBench(b)
			oc := newOpenSSHClient(b, sftpBin, s, extra)
			if err := os.WriteFile(filepath.Join(s.hostDir, "down.bin"), data, 0o640); err != nil {
				b.Fatal(err)
			}
			local := filepath.Join(oc.dir, "dst.bin")
			batch := oc.batch(b, "get down.bin "+strconv.Quote(local)+"\n")
			b.SetBytes(benchTransferSize)
			reportServerCPU(b, oc.timeRuns(b, batch), benchTransferSize)
			got, err := os.ReadFile(local)
			if err != nil {
				b.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				b.Fatalf("downloaded file differs from the source (%d bytes, want %d)", len(got), len(data))
			}
		})
	}
}

// openSSHClient is an sftp command line against one benchServer.
type openSSHClient struct {
	bin  string
	dir  string // key, batch files, local transfer files
	args []string
}

func newOpenSSHClient(b *testing.B, bin string, s *benchServer, extra []string) *openSSHClient {
	b.Helper()
	dir := benchTmpfsDir(b)
	block, err := ssh.MarshalPrivateKey(s.key, "wharf-bench")
	if err != nil {
		b.Fatal(err)
	}
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		b.Fatal(err)
	}
	_, port, err := net.SplitHostPort(s.d.Addr)
	if err != nil {
		b.Fatal(err)
	}
	args := []string{
		"-P", port,
		"-i", key,
		"-F", "none",
		"-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR",
	}
	args = append(args, extra...)
	return &openSSHClient{bin: bin, dir: dir, args: args}
}

func (c *openSSHClient) batch(b *testing.B, content string) string {
	b.Helper()
	p := filepath.Join(c.dir, "batch")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		b.Fatal(err)
	}
	return p
}

func (c *openSSHClient) run(b *testing.B, batch string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"-b", batch}, c.args...)
	args = append(args, benchUser+"@127.0.0.1")
	out, err := exec.CommandContext(ctx, c.bin, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("sftp: %v\n%s", err, out)
	}
}

// BenchmarkOpenSSHFiles is target 3 of the bench in-process: one op is one
// 64 KiB file put by the OpenSSH sftp binary, 1,000 per login, so that
// -cpuprofile sees the server's per-file cost alone:
//
//	go test -run '^$' -bench OpenSSHFiles -benchtime 5x -cpuprofile cpu.out ./internal/sftpd
func BenchmarkOpenSSHFiles(b *testing.B) {
	const perLogin = 1000
	sftpBin, err := exec.LookPath("sftp")
	if err != nil {
		b.Fatalf("OpenSSH sftp client (Debian package openssh-client) not found: %v", err)
	}
	s := startBench(b)
	oc := newOpenSSHClient(b, sftpBin, s, nil)
	src := filepath.Join(oc.dir, "src")
	if err := os.Mkdir(src, 0o700); err != nil {
		b.Fatal(err)
	}
	small := benchData(64<<10, 4)
	var cmds strings.Builder
	for i := range perLogin {
		name := smallFileName(i)
		if err := os.WriteFile(filepath.Join(src, name), small, 0o600); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&cmds, "put %s %s\n", strconv.Quote(filepath.Join(src, name)), name)
	}
	batch := oc.batch(b, cmds.String())
	b.SetBytes(int64(len(small)) * perLogin)
	cpu := oc.timeRuns(b, batch)
	b.ReportMetric(cpu.Seconds()*1e3/float64(b.N*perLogin), "cpu-ms/file")
	b.ReportMetric(float64(b.N*perLogin)/b.Elapsed().Seconds(), "files/s")
	got, err := os.ReadFile(filepath.Join(s.hostDir, smallFileName(perLogin-1)))
	if err != nil {
		b.Fatal(err)
	}
	if !bytes.Equal(got, small) {
		b.Fatalf("last file holds %d bytes that differ from what was sent", len(got))
	}
}

// processCPU is this process's user+system CPU time: the in-process
// daemon's, since the OpenSSH clients are child processes counted apart.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// timeRuns runs batch b.N times, the only work under the timer, and
// returns the CPU time the in-process daemon spent meanwhile.
func (c *openSSHClient) timeRuns(b *testing.B, batch string) time.Duration {
	b.Helper()
	b.ResetTimer()
	start := processCPU(b)
	for range b.N {
		c.run(b, batch)
	}
	b.StopTimer()
	return processCPU(b) - start
}

// reportServerCPU reports cpu, the daemon's CPU time over b.N runs that
// each moved bytes, in seconds per GB: the bench's column for target 2.
func reportServerCPU(b *testing.B, cpu time.Duration, bytes int64) {
	b.ReportMetric(cpu.Seconds()/(float64(bytes)*float64(b.N)/1e9), "cpu-s/GB")
}

// Command wharf-bench measures wharf against a reference OpenSSH sshd
// (internal-sftp) on loopback, with the same OpenSSH sftp client, in one run.
// It is a benchmark, not a test: it prints a table and judges nothing.
//
//	go run ./cmd/wharf-bench [-quick] [-rows upload,download] [-size 1GiB] [-runs 3] ...
//
// Besides each rate it reports the servers' CPU time per unit of work, read
// from /proc: wharf's own, and for OpenSSH that of the listening sshd and
// every per-connection process it forked.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
)

// allRows are the -rows names, in table order.
func allRows() []string {
	return []string{"upload", "download", "files", "logins", "list", "fsync", "ftps", "s3", "s3list", "s3requests", "loginrate", "idle"}
}

// options are the benchmark's knobs; see newFlagSet for their meaning.
type options struct {
	wharf    string
	sshd     string
	sftp     string
	dir      string
	fsyncDir string
	size     byteSize
	files    int
	fileSize byteSize
	logins   int
	runs     int
	entries  int
	rows     []string
	ciphers  []string
	sftpArgs []string
	kex      string
	timeout  time.Duration
	keep     bool
	quick    bool

	// The s3 rows' store, reference and upload settings (s3.go).
	versitygw     string
	rclone        string
	s3PartSize    byteSize
	s3Concurrency int

	// The load rows' sizes (load.go).
	idleSessions  int
	loginRate     int
	loginDuration time.Duration
}

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wharf-bench:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	err = run(ctx, opts, os.Stdout, os.Stderr)
	fmt.Fprintf(os.Stderr, "total runtime: %s\n", time.Since(start).Round(time.Second))
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "wharf-bench: interrupted")
		}
		fmt.Fprintln(os.Stderr, "wharf-bench:", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string, errOut io.Writer) (options, error) {
	o := options{size: 1 << 30, fileSize: 64 << 10, s3PartSize: 16 << 20}
	var ciphers, rows, sftpArgs string
	fs := flag.NewFlagSet("wharf-bench", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&o.wharf, "wharf", "", "wharf binary to measure (default: build ./cmd/wharf into the work dir)")
	fs.StringVar(&o.sshd, "sshd", "/usr/sbin/sshd", "reference OpenSSH sshd (absolute path: sshd re-executes itself)")
	fs.StringVar(&o.sftp, "sftp", "sftp", "OpenSSH sftp client used against both servers")
	fs.StringVar(&o.dir, "dir", defaultDir(), "parent of the temporary work dir holding both servers' storage")
	fs.StringVar(&o.fsyncDir, "fsync-dir", "/var/tmp", "parent of the fsync rows' storage: a directory on the disk that will hold the data (on tmpfs fsync costs nothing)")
	fs.Var(&o.size, "size", "bytes per upload/download test (suffixes KiB, MiB, GiB)")
	fs.IntVar(&o.files, "files", 1000, "number of small files uploaded in one session")
	fs.Var(&o.fileSize, "file-size", "size of each small file")
	fs.IntVar(&o.logins, "logins", 50, "sequential logins per run")
	fs.IntVar(&o.runs, "runs", 3, "repetitions of every figure (median, min and max are reported)")
	fs.IntVar(&o.entries, "list-entries", 100000, "entries of the directory listed by the list row, and objects of the folder the s3list row lists")
	fs.IntVar(&o.idleSessions, "idle-sessions", 10000, "authenticated SFTP sessions the idle row holds open at once")
	fs.IntVar(&o.loginRate, "login-rate", 200, "logins per second the loginrate row starts")
	fs.StringVar(&o.versitygw, "versitygw", "", "versitygw binary the s3 rows store their objects in (default: $VERSITYGW, else versitygw on PATH, else $(go env GOPATH)/bin/versitygw)")
	fs.StringVar(&o.rclone, "rclone", "rclone", "rclone binary the s3 rows compare wharf with (rclone serve sftp); missing, its rows stay empty")
	fs.Var(&o.s3PartSize, "s3-part-size", "part size of every S3 multipart upload in the s3 rows (wharf's storage.s3.part_size, the direct client's, rclone's chunk size)")
	fs.IntVar(&o.s3Concurrency, "s3-concurrency", 4, "parts in flight per upload (wharf's storage.s3.upload_concurrency), and ranged GETs at once for the direct client's download")
	fs.DurationVar(&o.loginDuration, "login-duration", 10*time.Second, "how long the loginrate row keeps starting logins")
	fs.StringVar(&rows, "rows", strings.Join(allRows(), ","), "comma-separated tests to run: "+strings.Join(allRows(), ", ")+
		" (ftps: FTPS upload and download with curl, against a vsftpd it starts; needs root and vsftpd;"+
		" fsync: upload and files against a second wharf with uploads.fsync off, on -dir's filesystem;"+
		" s3, s3list: wharf on storage.backend s3 against a versitygw it starts, a direct Go S3 client and rclone serve sftp;"+
		" s3requests: S3 requests per upload (-files of -file-size) of a wharf with the fleet's state_url and a webhook against one without, on that versitygw)")
	fs.StringVar(&ciphers, "ciphers", "default,aes128-gcm@openssh.com,chacha20-poly1305@openssh.com",
		`comma-separated ciphers for the upload/download tests; "default" passes none, so the client's preference decides`)
	fs.StringVar(&sftpArgs, "sftp-args", "", `extra sftp client arguments for every run against both servers, split at spaces (e.g. "-B 261120 -R 128")`)
	fs.StringVar(&o.kex, "kex", "curve25519-sha256", "key exchange pinned on the client for every test, so both servers do the same work per login (empty: client default)")
	fs.DurationVar(&o.timeout, "timeout", time.Hour, "bound on the whole benchmark")
	fs.BoolVar(&o.keep, "keep", false, "keep the work dir (configs, logs) instead of deleting it")
	fs.BoolVar(&o.quick, "quick", false, "smoke run: 64MiB, 100 files, 10 logins, 10000 entries, 500 idle sessions, 2s of login rate, 1 run (explicit flags still win)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["size"] {
			o.size = 64 << 20
		}
		if !set["files"] {
			o.files = 100
		}
		if !set["logins"] {
			o.logins = 10
		}
		if !set["runs"] {
			o.runs = 1
		}
		if !set["list-entries"] {
			o.entries = 10000
		}
		if !set["idle-sessions"] {
			o.idleSessions = 500
		}
		if !set["login-duration"] {
			o.loginDuration = 2 * time.Second
		}
	}
	o.ciphers = splitList(ciphers)
	o.rows = splitList(rows)
	o.sftpArgs = strings.Fields(sftpArgs)
	return o, o.validate()
}

func (o options) validate() error {
	switch {
	case o.size <= 0, o.fileSize <= 0:
		return errors.New("-size and -file-size must be positive")
	case o.files <= 0 || o.files > 100000:
		return errors.New("-files must be in 1..100000")
	case o.logins <= 0 || o.logins > 10000:
		return errors.New("-logins must be in 1..10000")
	case o.runs <= 0 || o.runs > 100:
		return errors.New("-runs must be in 1..100")
	case o.entries <= 0 || o.entries > 1000000:
		return errors.New("-list-entries must be in 1..1000000")
	case o.idleSessions <= 0 || o.idleSessions > 100000:
		return errors.New("-idle-sessions must be in 1..100000")
	case o.loginRate <= 0 || o.loginRate > 10000:
		return errors.New("-login-rate must be in 1..10000")
	case o.loginDuration < time.Second || o.loginDuration > 10*time.Minute:
		return errors.New("-login-duration must be in 1s..10m")
	case len(o.rows) == 0:
		return errors.New("-rows selects no test")
	case (o.has("upload") || o.has("download")) && len(o.ciphers) == 0:
		return errors.New("-ciphers is empty but the upload/download rows are selected")
	case o.timeout <= 0:
		return errors.New("-timeout must be positive")
	case o.has("fsync") && o.fsyncDir == "":
		return errors.New("-fsync-dir is empty but the fsync rows are selected")
	case o.s3PartSize < config.S3MinPartSize || o.s3PartSize > config.S3MaxPartSize:
		return errors.New("-s3-part-size must be within S3's 5MiB to 5GiB")
	case o.s3Concurrency < 1 || o.s3Concurrency > config.S3MaxUploadConcurrency:
		return fmt.Errorf("-s3-concurrency must be in 1..%d", config.S3MaxUploadConcurrency)
	}
	for _, r := range o.rows {
		if !slices.Contains(allRows(), r) {
			return fmt.Errorf("-rows: unknown test %q (want some of %s)", r, strings.Join(allRows(), ", "))
		}
	}
	return nil
}

// has reports whether the test named row was selected with -rows.
func (o options) has(row string) bool { return slices.Contains(o.rows, row) }

// defaultDir prefers a RAM-backed directory so that disk speed does not
// dominate what is meant to compare two servers.
func defaultDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

func run(ctx context.Context, o options, out, progress io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	ws, err := newWorkspace(o.dir)
	if err != nil {
		return err
	}
	defer func() {
		if o.keep {
			fmt.Fprintf(progress, "work dir kept: %s\n", ws.dir)
			return
		}
		if err := ws.remove(); err != nil {
			fmt.Fprintf(progress, "wharf-bench: %v\n", err)
		}
	}()

	if o.s3Rows() {
		// Before anything long: the s3 rows come late in a full run.
		if _, _, err := findVersitygw(o.versitygw); err != nil {
			return err
		}
	}
	wharfBin := o.wharf
	if wharfBin == "" {
		fmt.Fprintln(progress, "building wharf ...")
		if wharfBin, err = buildCommand(ctx, ws.path("bin"), "wharf"); err != nil {
			return err
		}
	}
	m, err := describeMachine(ctx, wharfBin)
	if err != nil {
		return err
	}
	fmt.Fprintln(progress, m.String())

	b, err := newBench(ctx, o, ws, newProcfs(ctx), progress)
	if err != nil {
		return err
	}
	b.wharfBin = wharfBin

	servers, err := startServers(ctx, o, ws, wharfBin, b.client)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	if err := b.stage(ctx, servers); err != nil {
		return err
	}

	start, loadBefore := time.Now(), loadAverage()
	results, err := b.measureAll(ctx, servers)
	if err != nil && len(results) == 0 {
		return err
	}
	// A failure late in a long run still reports the rows measured before it.
	fmt.Fprintln(out)
	fmt.Fprintln(out, m.String())
	// The load average before tells a reader whether something else competed
	// for the CPUs; the one after includes the benchmark's own client and
	// server, about two runnable processes.
	fmt.Fprintf(out, "%s, %d run(s) each, measured in %s; load average (1 min) %s before, %s after\n",
		time.Now().Format("2006-01-02"), o.runs, time.Since(start).Round(time.Second), loadBefore, loadAverage())
	if len(o.sftpArgs) > 0 {
		fmt.Fprintf(out, "sftp client arguments added to every run: %s\n", strings.Join(o.sftpArgs, " "))
	}
	// Said once here so that nobody reads the CPU columns as wall time.
	fmt.Fprintln(out, "server CPU: user+system time from /proc/PID/stat, of wharf, and of the listening sshd (or vsftpd, under a subreaper that also reaps the session processes vsftpd orphans) with every per-connection process it forked (reaped, via cutime/cstime)")
	fmt.Fprintln(out)
	printTable(out, results)
	if err != nil {
		return fmt.Errorf("stopped after %d row(s): %w", len(results), err)
	}
	return failedRows(results)
}

// failedRows is an error naming the rows whose figures broke a bound they
// carry (the s3requests row's), or nil: the table shows them all the same.
func failedRows(results []result) error {
	var errs []error
	for _, r := range results {
		if r.failed != "" {
			errs = append(errs, fmt.Errorf("%s: %s", r.name, r.failed))
		}
	}
	return errors.Join(errs...)
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wharf-sftp/wharf/internal/procstat"
)

const loginTimeout = 30 * time.Second

// bench holds the local data and batch files shared by every measurement.
type bench struct {
	o        options
	ws       *workspace
	client   client
	proc     procfs
	progress io.Writer
	wharfBin string // the binary under test, for rows that start a wharf of their own

	big   string // local file of o.size bytes: the upload source, and what downloads must equal
	small string // local dir of o.files files of o.fileSize bytes

	uploadBatch, downloadBatch, filesBatch, loginBatch, listBatch string
}

// test is one row of the table. run performs one timed repetition against
// s, verifies what was transferred, cleans up and returns the rate; the
// server's CPU time meanwhile is divided by cpuWork and shown in cpuUnit.
type test struct {
	name    string
	unit    string
	cpuUnit string
	cpuWork float64 // units of work per repetition: CPU seconds / cpuWork is the CPU figure
	run     func(ctx context.Context, s *server) (sample, error)
	// measure, when set, replaces run: the row starts what it needs and
	// measures it itself (the load rows, load.go).
	measure func(ctx context.Context, servers []*server) (result, error)
}

// sample is one repetition's outcome.
type sample struct {
	rate float64
	// rssGrowth is how far the server's peak RSS rose above its RSS at the
	// start (bytes), for tests that measure it on a server that holds its
	// sessions in one process; -1 otherwise.
	rssGrowth int64
	// client is the client's run, for tests that time one client process
	// (zero otherwise): its CPU time shows whether the client or the server
	// set the pace on a machine that runs both.
	client timing
}

// result holds every repetition's figures, by server name, in run order.
type result struct {
	name    string
	unit    string
	cpuUnit string
	values  map[string][]float64
	cpu     map[string][]float64
	rss     map[string][]float64 // MiB
	// client is the client's CPU per unit of work (cpuUnit), busy the CPUs
	// client and server kept busy together (CPU time / wall time), for
	// tests that time one client process.
	client, busy map[string][]float64
	// ceiling is what the client reached against a server that does next
	// to nothing (curlCeiling), in unit; empty for most rows.
	ceiling []float64
	// notes are lines printed under the table, for a row whose figures
	// need more than a cell (the s3requests row's breakdown).
	notes []string
	// failed, when set, says which bound the row's figures broke; the bench
	// then exits non-zero after the table.
	failed string
}

func newResult(t test) result {
	return result{name: t.name, unit: t.unit, cpuUnit: t.cpuUnit,
		values: map[string][]float64{}, cpu: map[string][]float64{}, rss: map[string][]float64{},
		client: map[string][]float64{}, busy: map[string][]float64{}}
}

func newBench(ctx context.Context, o options, ws *workspace, proc procfs, progress io.Writer) (*bench, error) {
	c, err := newClient(o, ws)
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, ws: ws, client: c, proc: proc, progress: progress, big: ws.path("big.bin")}
	var total float64
	if b.transfers() {
		total += float64(o.size)
	}
	if b.smallFiles() {
		total += float64(o.files) * float64(o.fileSize)
	}
	fmt.Fprintf(progress, "writing %.1f MiB of test data under %s ...\n", total/(1<<20), ws.dir)
	if b.transfers() {
		if err := writeRandomFile(b.big, int64(o.size), 1); err != nil {
			return nil, err
		}
	}
	if b.small, err = ws.mkdir("small"); err != nil {
		return nil, err
	}
	if b.smallFiles() {
		for i := range o.files {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := writeRandomFile(filepath.Join(b.small, smallName(i)), int64(o.fileSize), uint64(i)+2); err != nil {
				return nil, err
			}
		}
	}
	return b, b.writeBatches()
}

// transfers reports whether a big upload or download is among the rows.
func (b *bench) transfers() bool {
	return b.o.has("upload") || b.o.has("download") || b.o.has("ftps") || b.o.has("fsync") || b.o.has("s3")
}

// smallFiles reports whether a row uploads the many small files.
func (b *bench) smallFiles() bool {
	return b.o.has("files") || b.o.has("fsync") || b.o.has("s3requests")
}

func smallName(i int) string { return fmt.Sprintf("f%06d", i) }

// writeBatches writes the sftp batch files. Remote paths are relative: both
// servers start the session in their data dir.
func (b *bench) writeBatches() error {
	var files strings.Builder
	files.WriteString("mkdir many\n")
	for i := range b.o.files {
		fmt.Fprintf(&files, "put %s many/%s\n", strconv.Quote(filepath.Join(b.small, smallName(i))), smallName(i))
	}
	batches := []struct {
		path    *string
		name    string
		content string
	}{
		{&b.uploadBatch, "upload.batch", "put " + strconv.Quote(b.big) + " up.bin\n"},
		{&b.downloadBatch, "download.batch", "get down.bin " + strconv.Quote(b.ws.path("down.bin")) + "\n"},
		{&b.filesBatch, "files.batch", files.String()},
		{&b.loginBatch, "login.batch", "pwd\n"},
		// -f: unsorted, so that the client's sorting does not dilute the
		// difference between the servers.
		{&b.listBatch, "list.batch", "ls -1f list\n"},
	}
	for _, bt := range batches {
		*bt.path = b.ws.path(bt.name)
		if err := os.WriteFile(*bt.path, []byte(bt.content), 0o600); err != nil {
			return fmt.Errorf("write batch %s: %w", bt.name, err)
		}
	}
	return nil
}

// stage gives each server the download source and the directory to list,
// and proves that a login works, which also records the host keys in the
// client's known_hosts.
func (b *bench) stage(ctx context.Context, servers []*server) error {
	for _, s := range servers {
		if b.o.has("download") {
			if err := linkOrCopy(b.big, filepath.Join(s.dataDir, "down.bin")); err != nil {
				return err
			}
		}
		if b.o.has("list") {
			fmt.Fprintf(b.progress, "creating %d entries to list for %s ...\n", b.o.entries, s.name)
			if err := makeEntries(ctx, filepath.Join(s.dataDir, "list"), b.o.entries); err != nil {
				return err
			}
		}
		if _, err := b.client.run(ctx, s, b.loginBatch, loginTimeout); err != nil {
			return fmt.Errorf("first login: %w", err)
		}
	}
	return nil
}

func entryName(i int) string { return fmt.Sprintf("e%07d", i) }

// makeEntries creates n empty files in a new directory.
func makeEntries(ctx context.Context, dir string, n int) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create list dir: %w", err)
	}
	for i := range n {
		if i%1000 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		f, err := os.OpenFile(filepath.Join(dir, entryName(i)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("create list entry: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("create list entry: %w", err)
		}
	}
	return nil
}

func (b *bench) tests() []test {
	var ts []test
	size := formatBytes(int64(b.o.size))
	gb := float64(b.o.size) / 1e9
	for _, c := range b.o.ciphers {
		short := strings.TrimSuffix(c, "@openssh.com")
		switch c {
		case "default":
			short = "client's default cipher"
		case chachaCipher:
			short += " (wharf: a listener that offers it)"
		}
		if b.o.has("upload") {
			ts = append(ts, test{name: "upload " + size + ", " + short, unit: "MB/s", cpuUnit: "s/GB", cpuWork: gb, run: b.upload(c)})
		}
		if b.o.has("download") {
			ts = append(ts, test{name: "download " + size + ", " + short, unit: "MB/s", cpuUnit: "s/GB", cpuWork: gb, run: b.download(c)})
		}
	}
	if b.o.has("files") {
		ts = append(ts, test{name: fmt.Sprintf("%d × %s files, one session", b.o.files, formatBytes(int64(b.o.fileSize))),
			unit: "files/s", cpuUnit: "ms/file", cpuWork: float64(b.o.files) / 1e3, run: b.manyFiles})
	}
	if b.o.has("logins") {
		ts = append(ts, test{name: fmt.Sprintf("%d sequential logins", b.o.logins),
			unit: "logins/s", cpuUnit: "ms/login", cpuWork: float64(b.o.logins) / 1e3, run: b.logins})
	}
	if b.o.has("list") {
		ts = append(ts, test{name: fmt.Sprintf("list a %s-entry directory", thousands(b.o.entries)),
			unit: "entries/s", cpuUnit: "µs/entry", cpuWork: float64(b.o.entries) / 1e6, run: b.list})
	}
	ts = append(ts, b.fsyncTests()...)
	ts = append(ts, b.ftpsTests()...)
	ts = append(ts, b.s3Tests()...)
	ts = append(ts, b.loadTests()...)
	return ts
}

// measureAll runs every test runs times on each server, alternating which
// server goes first so that neither always meets a warmer or colder machine.
// Each repetition's server CPU time is read before and after it. On error
// it also returns the rows already complete.
func (b *bench) measureAll(ctx context.Context, servers []*server) ([]result, error) {
	var results []result
	for _, t := range b.tests() {
		if t.measure != nil {
			r, err := t.measure(ctx, servers)
			if err != nil {
				return results, fmt.Errorf("%s: %w", t.name, err)
			}
			results = append(results, r)
			continue
		}
		r := newResult(t)
		if err := b.measureRuns(ctx, t, servers, &r); err != nil {
			return results, fmt.Errorf("%s: %w", t.name, err)
		}
		results = append(results, r)
	}
	return results, nil
}

// measureRuns runs t.run b.o.runs times on each of the two servers,
// alternating which goes first, and adds every figure to r.
func (b *bench) measureRuns(ctx context.Context, t test, pair []*server, r *result) error {
	for i := range b.o.runs {
		order := pair
		if i%2 == 1 {
			order = []*server{pair[1], pair[0]}
		}
		for _, s := range order {
			if err := s.alive(); err != nil {
				return err
			}
			cpuBefore, err := s.cpuTime(ctx, b.proc)
			if err != nil {
				return fmt.Errorf("%s CPU time: %w", s.name, err)
			}
			v, err := t.run(ctx, s)
			if err != nil {
				return err
			}
			cpuAfter, err := s.cpuTime(ctx, b.proc)
			if err != nil {
				return fmt.Errorf("%s CPU time: %w", s.name, err)
			}
			serverCPU := cpuAfter - cpuBefore
			cpu := serverCPU.Seconds() / t.cpuWork
			extra := ""
			if v.rssGrowth >= 0 {
				mib := float64(v.rssGrowth) / (1 << 20)
				r.rss[s.name] = append(r.rss[s.name], mib)
				extra = fmt.Sprintf(", peak RSS +%.1f MiB", mib)
			}
			if v.client.wall > 0 {
				client := v.client.cpu.Seconds() / t.cpuWork
				busy := (v.client.cpu + serverCPU).Seconds() / v.client.wall.Seconds()
				r.client[s.name] = append(r.client[s.name], client)
				r.busy[s.name] = append(r.busy[s.name], busy)
				extra += fmt.Sprintf(", client CPU %s %s, %.2f CPUs busy", formatFigure(client), t.cpuUnit, busy)
			}
			fmt.Fprintf(b.progress, "%-45s %-8s run %d/%d: %8.1f %s, server CPU %s %s%s\n",
				t.name, s.name, i+1, b.o.runs, v.rate, t.unit, formatFigure(cpu), t.cpuUnit, extra)
			r.values[s.name] = append(r.values[s.name], v.rate)
			r.cpu[s.name] = append(r.cpu[s.name], cpu)
		}
	}
	return nil
}

// transferTimeout bounds one big transfer generously: 5 MB/s would already
// be a broken server.
func (b *bench) transferTimeout() time.Duration {
	return 2*time.Minute + time.Duration(float64(b.o.size)/5e6*float64(time.Second))
}

// cipherArgs selects cipher on the client command line; "default" leaves
// the choice to the client's own preference, as a partner's script does.
func cipherArgs(cipher string) []string {
	if cipher == "default" {
		return nil
	}
	return []string{"-o", "Ciphers=" + cipher}
}

func (b *bench) upload(cipher string) func(context.Context, *server) (sample, error) {
	return func(ctx context.Context, s *server) (sample, error) {
		remote := filepath.Join(s.dataDir, "up.bin")
		defer os.Remove(remote)
		run, err := b.client.run(ctx, s.forCipher(cipher), b.uploadBatch, b.transferTimeout(), cipherArgs(cipher)...)
		if err != nil {
			return sample{}, err
		}
		if err := sameContent(b.big, remote); err != nil {
			return sample{}, fmt.Errorf("%s upload: %w", s.name, err)
		}
		return sample{rate: megabytesPerSecond(int64(b.o.size), run.wall), rssGrowth: -1, client: run}, nil
	}
}

func (b *bench) download(cipher string) func(context.Context, *server) (sample, error) {
	return func(ctx context.Context, s *server) (sample, error) {
		local := b.ws.path("down.bin")
		defer os.Remove(local)
		run, err := b.client.run(ctx, s.forCipher(cipher), b.downloadBatch, b.transferTimeout(), cipherArgs(cipher)...)
		if err != nil {
			return sample{}, err
		}
		if err := sameContent(b.big, local); err != nil {
			return sample{}, fmt.Errorf("%s download: %w", s.name, err)
		}
		return sample{rate: megabytesPerSecond(int64(b.o.size), run.wall), rssGrowth: -1, client: run}, nil
	}
}

func (b *bench) manyFiles(ctx context.Context, s *server) (sample, error) {
	remote := filepath.Join(s.dataDir, "many")
	defer os.RemoveAll(remote)
	timeout := 2*time.Minute + time.Duration(b.o.files)*100*time.Millisecond
	run, err := b.client.run(ctx, s, b.filesBatch, timeout)
	if err != nil {
		return sample{}, err
	}
	if err := b.verifyMany(remote); err != nil {
		return sample{}, fmt.Errorf("%s: %w", s.name, err)
	}
	return sample{rate: float64(b.o.files) / run.wall.Seconds(), rssGrowth: -1, client: run}, nil
}

func (b *bench) verifyMany(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("verify uploaded files: %w", err)
	}
	if len(entries) != b.o.files {
		return fmt.Errorf("verify uploaded files: %d files, want %d", len(entries), b.o.files)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			return fmt.Errorf("verify uploaded files: %w", err)
		}
		if !fi.Mode().IsRegular() || fi.Size() != int64(b.o.fileSize) {
			return fmt.Errorf("verify uploaded files: %s is %v, %d bytes; want a %d-byte file", e.Name(), fi.Mode(), fi.Size(), b.o.fileSize)
		}
	}
	return nil
}

func (b *bench) logins(ctx context.Context, s *server) (sample, error) {
	var total time.Duration
	for range b.o.logins {
		run, err := b.client.run(ctx, s, b.loginBatch, loginTimeout)
		if err != nil {
			return sample{}, err
		}
		total += run.wall
	}
	return sample{rate: float64(b.o.logins) / total.Seconds(), rssGrowth: -1}, nil
}

// list reads the staged directory in one session and checks that every
// entry was listed once. For a server that holds its sessions in its own
// process, it also measures how far the peak RSS rose: a listing held in
// memory whole would show here.
func (b *bench) list(ctx context.Context, s *server) (sample, error) {
	var rssBefore int64
	if s.sessionsInProcess {
		if err := resetPeakRSS(s.pid()); err != nil {
			return sample{}, err
		}
		rss, _, err := procstat.Mem(s.pid())
		if err != nil {
			return sample{}, err
		}
		rssBefore = rss
	}
	timeout := 2*time.Minute + time.Duration(b.o.entries)*time.Millisecond
	run, out, err := b.client.runOutput(ctx, s, b.listBatch, timeout)
	if err != nil {
		return sample{}, err
	}
	growth := int64(-1)
	if s.sessionsInProcess {
		_, hwm, err := procstat.Mem(s.pid())
		if err != nil {
			return sample{}, err
		}
		growth = max(hwm-rssBefore, 0)
	}
	if err := b.verifyListing(out); err != nil {
		return sample{}, fmt.Errorf("%s: %w", s.name, err)
	}
	return sample{rate: float64(b.o.entries) / run.wall.Seconds(), rssGrowth: growth, client: run}, nil
}

// verifyListing checks that sftp printed each staged entry exactly once.
func (b *bench) verifyListing(out string) error {
	seen := make([]bool, b.o.entries)
	count := 0
	for _, line := range strings.Split(out, "\n") {
		name := path.Base(strings.TrimSpace(line))
		if len(name) != 8 || name[0] != 'e' {
			continue
		}
		i, err := strconv.Atoi(name[1:])
		if err != nil || i < 0 || i >= b.o.entries {
			continue
		}
		if seen[i] {
			return fmt.Errorf("verify listing: %s listed twice", name)
		}
		seen[i] = true
		count++
	}
	if count != b.o.entries {
		return fmt.Errorf("verify listing: %d of %d entries listed", count, b.o.entries)
	}
	return nil
}

func megabytesPerSecond(n int64, d time.Duration) float64 {
	return float64(n) / 1e6 / d.Seconds()
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const loginTimeout = 30 * time.Second

// bench holds the local data and batch files shared by every measurement.
type bench struct {
	o        options
	ws       *workspace
	client   client
	progress io.Writer

	big   string // local file of o.size bytes: the upload source, and what downloads must equal
	small string // local dir of o.files files of o.fileSize bytes

	uploadBatch, downloadBatch, filesBatch, loginBatch string
}

// test is one figure of the table. run performs one timed repetition against
// s, verifies what was transferred, cleans up and returns the rate.
type test struct {
	name string
	unit string
	run  func(ctx context.Context, s *server) (float64, error)
}

// result holds every repetition's rate, by server name, in run order.
type result struct {
	name   string
	unit   string
	values map[string][]float64
}

func newBench(ctx context.Context, o options, ws *workspace, progress io.Writer) (*bench, error) {
	c, err := newClient(o, ws)
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, ws: ws, client: c, progress: progress, big: ws.path("big.bin")}
	total := float64(o.size) + float64(o.files)*float64(o.fileSize)
	fmt.Fprintf(progress, "writing %.1f MiB of test data under %s ...\n", total/(1<<20), ws.dir)
	if err := writeRandomFile(b.big, int64(o.size), 1); err != nil {
		return nil, err
	}
	if b.small, err = ws.mkdir("small"); err != nil {
		return nil, err
	}
	for i := range o.files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := writeRandomFile(filepath.Join(b.small, smallName(i)), int64(o.fileSize), uint64(i)+2); err != nil {
			return nil, err
		}
	}
	return b, b.writeBatches()
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
	}
	for _, bt := range batches {
		*bt.path = b.ws.path(bt.name)
		if err := os.WriteFile(*bt.path, []byte(bt.content), 0o600); err != nil {
			return fmt.Errorf("write batch %s: %w", bt.name, err)
		}
	}
	return nil
}

// stage gives each server the download source and proves that a login works,
// which also records the host keys in the client's known_hosts.
func (b *bench) stage(ctx context.Context, servers []*server) error {
	for _, s := range servers {
		if err := linkOrCopy(b.big, filepath.Join(s.dataDir, "down.bin")); err != nil {
			return err
		}
		if _, err := b.client.run(ctx, s, b.loginBatch, loginTimeout); err != nil {
			return fmt.Errorf("first login: %w", err)
		}
	}
	return nil
}

func (b *bench) tests() []test {
	var ts []test
	size := formatBytes(int64(b.o.size))
	for _, c := range b.o.ciphers {
		short := strings.TrimSuffix(c, "@openssh.com")
		ts = append(ts,
			test{name: "upload " + size + ", " + short, unit: "MB/s", run: b.upload(c)},
			test{name: "download " + size + ", " + short, unit: "MB/s", run: b.download(c)},
		)
	}
	ts = append(ts,
		test{name: fmt.Sprintf("%d × %s files, one session", b.o.files, formatBytes(int64(b.o.fileSize))), unit: "files/s", run: b.manyFiles},
		test{name: fmt.Sprintf("%d sequential logins", b.o.logins), unit: "logins/s", run: b.logins},
	)
	return ts
}

// measureAll runs every test runs times on each server, alternating which
// server goes first so that neither always meets a warmer or colder machine.
func (b *bench) measureAll(ctx context.Context, servers []*server) ([]result, error) {
	var results []result
	for _, t := range b.tests() {
		r := result{name: t.name, unit: t.unit, values: map[string][]float64{}}
		for i := range b.o.runs {
			order := servers
			if i%2 == 1 {
				order = []*server{servers[1], servers[0]}
			}
			for _, s := range order {
				if err := s.alive(); err != nil {
					return nil, err
				}
				v, err := t.run(ctx, s)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", t.name, err)
				}
				fmt.Fprintf(b.progress, "%-40s %-8s run %d/%d: %8.1f %s\n", t.name, s.name, i+1, b.o.runs, v, t.unit)
				r.values[s.name] = append(r.values[s.name], v)
			}
		}
		results = append(results, r)
	}
	return results, nil
}

// transferTimeout bounds one big transfer generously: 5 MB/s would already
// be a broken server.
func (b *bench) transferTimeout() time.Duration {
	return 2*time.Minute + time.Duration(float64(b.o.size)/5e6*float64(time.Second))
}

func (b *bench) upload(cipher string) func(context.Context, *server) (float64, error) {
	return func(ctx context.Context, s *server) (float64, error) {
		remote := filepath.Join(s.dataDir, "up.bin")
		defer os.Remove(remote)
		d, err := b.client.run(ctx, s, b.uploadBatch, b.transferTimeout(), "-o", "Ciphers="+cipher)
		if err != nil {
			return 0, err
		}
		if err := sameContent(b.big, remote); err != nil {
			return 0, fmt.Errorf("%s upload: %w", s.name, err)
		}
		return megabytesPerSecond(int64(b.o.size), d), nil
	}
}

func (b *bench) download(cipher string) func(context.Context, *server) (float64, error) {
	return func(ctx context.Context, s *server) (float64, error) {
		local := b.ws.path("down.bin")
		defer os.Remove(local)
		d, err := b.client.run(ctx, s, b.downloadBatch, b.transferTimeout(), "-o", "Ciphers="+cipher)
		if err != nil {
			return 0, err
		}
		if err := sameContent(b.big, local); err != nil {
			return 0, fmt.Errorf("%s download: %w", s.name, err)
		}
		return megabytesPerSecond(int64(b.o.size), d), nil
	}
}

func (b *bench) manyFiles(ctx context.Context, s *server) (float64, error) {
	remote := filepath.Join(s.dataDir, "many")
	defer os.RemoveAll(remote)
	timeout := 2*time.Minute + time.Duration(b.o.files)*100*time.Millisecond
	d, err := b.client.run(ctx, s, b.filesBatch, timeout)
	if err != nil {
		return 0, err
	}
	if err := b.verifyMany(remote); err != nil {
		return 0, fmt.Errorf("%s: %w", s.name, err)
	}
	return float64(b.o.files) / d.Seconds(), nil
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

func (b *bench) logins(ctx context.Context, s *server) (float64, error) {
	var total time.Duration
	for range b.o.logins {
		d, err := b.client.run(ctx, s, b.loginBatch, loginTimeout)
		if err != nil {
			return 0, err
		}
		total += d
	}
	return float64(b.o.logins) / total.Seconds(), nil
}

func megabytesPerSecond(n int64, d time.Duration) float64 {
	return float64(n) / 1e6 / d.Seconds()
}

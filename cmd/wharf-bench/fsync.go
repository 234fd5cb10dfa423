package main

// The fsync rows: what uploads.fsync (on by default) costs. The wharf of the
// other rows, with its defaults, is measured against a second wharf that
// differs only by "uploads: {fsync: false}", on the same storage (-dir).
// On tmpfs (the default -dir, /dev/shm) fsync does nothing and the rows
// show no cost; pass a -dir on the disk that will hold the data.

import (
	"context"
	"errors"
	"fmt"
)

// fsyncOff is the reference wharf's name (the table's reference column)
// and the one key its config adds.
const (
	fsyncOffName   = "wharf fsync off"
	fsyncOffConfig = "uploads:\n  fsync: false\n"
)

// fsyncTests are the fsync rows: one big upload (one file and one
// directory flushed per GB) and many small files (two flushes per file),
// where the cost shows most.
func (b *bench) fsyncTests() []test {
	if !b.o.has("fsync") {
		return nil
	}
	size := formatBytes(int64(b.o.size))
	rows := []test{
		{name: "uploads.fsync on vs off: upload " + size + ", client's default cipher", unit: "MB/s", cpuUnit: "s/GB",
			cpuWork: float64(b.o.size) / 1e9, run: b.upload("default")},
		{name: fmt.Sprintf("uploads.fsync on vs off: %d × %s files, one session", b.o.files, formatBytes(int64(b.o.fileSize))),
			unit: "files/s", cpuUnit: "ms/file", cpuWork: float64(b.o.files) / 1e3, run: b.manyFiles},
	}
	for i := range rows {
		t := rows[i]
		rows[i].measure = func(ctx context.Context, servers []*server) (result, error) {
			return b.measureFsync(ctx, servers, t)
		}
	}
	return rows
}

// measureFsync runs t on the main wharf and on a wharf with uploads.fsync
// off, which it starts for the row and stops after it.
func (b *bench) measureFsync(ctx context.Context, servers []*server, t test) (result, error) {
	r := newResult(t)
	var w *server
	for _, s := range servers {
		if s.name == "wharf" {
			w = s
		}
	}
	if w == nil {
		return r, errors.New("no wharf among the servers")
	}
	off, err := startWharfVariant(ctx, b.ws, b.wharfBin, b.client, nil, fsyncOffName, fsyncOffConfig)
	if err != nil {
		return r, fmt.Errorf("start a wharf with %q: %w", fsyncOffConfig, err)
	}
	defer off.stop()
	// The first login records its host key, as stage does for the others.
	if _, err := b.client.run(ctx, off, b.loginBatch, loginTimeout); err != nil {
		return r, fmt.Errorf("first login to %s: %w", off.name, err)
	}
	err = b.measureRuns(ctx, t, []*server{w, off}, &r)
	return r, err
}

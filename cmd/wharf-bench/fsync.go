package main

// The fsync rows: what uploads.fsync (on by default) costs. A wharf with its
// defaults is measured against one that differs only by "uploads: {fsync:
// false}", both started for the row with their storage under -fsync-dir:
// a disk by default, since on tmpfs (the other rows' -dir) fsync returns at
// once and the rows would show nothing.

import (
	"context"
	"fmt"
	"syscall"
)

// The reference wharf's name (the table's reference column) and the one
// key its config adds.
const (
	fsyncOffName   = "wharf fsync off"
	fsyncOffConfig = "uploads:\n  fsync: false\n"
)

// fsyncTests are the fsync rows: one big upload (one file and one
// directory flushed) and many small files (two flushes per file), where
// the cost shows most.
func (b *bench) fsyncTests() []test {
	if !b.o.has("fsync") {
		return nil
	}
	prefix := fmt.Sprintf("uploads.fsync on vs off (%s, %s): ", fsType(b.o.fsyncDir), b.o.fsyncDir)
	size := formatBytes(int64(b.o.size))
	rows := []test{
		{name: prefix + "upload " + size + ", client's default cipher", unit: "MB/s", cpuUnit: "s/GB",
			cpuWork: float64(b.o.size) / 1e9, run: b.upload("default")},
		{name: prefix + fmt.Sprintf("%d × %s files, one session", b.o.files, formatBytes(int64(b.o.fileSize))),
			unit: "files/s", cpuUnit: "ms/file", cpuWork: float64(b.o.files) / 1e3, run: b.manyFiles},
	}
	for i := range rows {
		t := rows[i]
		rows[i].measure = func(ctx context.Context, _ []*server) (result, error) {
			return b.measureFsync(ctx, t)
		}
	}
	return rows
}

// measureFsync starts the two wharfs under -fsync-dir, runs t on both, and
// stops and removes them.
func (b *bench) measureFsync(ctx context.Context, t test) (result, error) {
	r := newResult(t)
	ws, err := newWorkspace(b.o.fsyncDir)
	if err != nil {
		return r, err
	}
	defer func() {
		if b.o.keep {
			fmt.Fprintf(b.progress, "fsync rows' work dir kept: %s\n", ws.dir)
		} else if err := ws.remove(); err != nil {
			fmt.Fprintf(b.progress, "wharf-bench: %v\n", err)
		}
	}()
	var pair []*server
	defer func() {
		for _, s := range pair {
			s.stop()
		}
	}()
	for _, v := range []struct{ name, extra string }{{"wharf", ""}, {fsyncOffName, fsyncOffConfig}} {
		s, err := startWharfVariant(ctx, ws, b.wharfBin, b.client, nil, v.name, v.extra)
		if err != nil {
			return r, fmt.Errorf("start %s: %w", v.name, err)
		}
		pair = append(pair, s)
		// The first login records its host key, as stage does for the
		// table's servers.
		if _, err := b.client.run(ctx, s, b.loginBatch, loginTimeout); err != nil {
			return r, fmt.Errorf("first login to %s: %w", s.name, err)
		}
	}
	return r, b.measureRuns(ctx, t, pair, &r)
}

// fsType names the filesystem dir is on, as df -T would, for the row's
// name: the figure depends on it more than on anything else.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown filesystem"
	}
	switch st.Type {
	case 0x01021994:
		return "tmpfs"
	case 0xef53:
		return "ext2/3/4"
	case 0x58465342:
		return "xfs"
	case 0x9123683e:
		return "btrfs"
	case 0x794c7630:
		return "overlay"
	case 0x2fc12fc1:
		return "zfs"
	}
	return fmt.Sprintf("filesystem 0x%x", st.Type)
}

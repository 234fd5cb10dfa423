package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procfs reads what the kernel accounts to a server's processes. CPU time
// is what the kernel charged, not wall time: on two cores the client and
// the server compete, and only this tells what the server itself cost.
type procfs struct {
	tick time.Duration // one clock tick of /proc/PID/stat (USER_HZ)
}

func newProcfs(ctx context.Context) procfs {
	// USER_HZ is 100 on every Linux architecture Go supports; getconf
	// confirms it where it is installed.
	tick := 10 * time.Millisecond
	if out, err := commandOutput(ctx, "getconf", "CLK_TCK"); err == nil {
		if hz, err := strconv.Atoi(out); err == nil && hz > 0 {
			tick = time.Second / time.Duration(hz)
		}
	}
	return procfs{tick: tick}
}

// procStat holds the fields of /proc/PID/stat the benchmark uses.
type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime int64 // clock ticks
}

func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	return parseProcStat(pid, data)
}

func parseProcStat(pid int, data []byte) (procStat, error) {
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself: the fields that follow start after the last ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse stat of pid %d: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state): field n is f[n-3].
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("parse stat of pid %d: %d fields", pid, len(f)+2)
	}
	var st procStat
	for _, v := range []struct {
		dst   any
		field int
	}{{&st.ppid, 4}, {&st.utime, 14}, {&st.stime, 15}, {&st.cutime, 16}, {&st.cstime, 17}} {
		n, err := strconv.ParseInt(f[v.field-3], 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("parse stat of pid %d, field %d: %w", pid, v.field, err)
		}
		switch d := v.dst.(type) {
		case *int:
			*d = int(n)
		case *int64:
			*d = n
		}
	}
	return st, nil
}

// hasChildren reports whether any process, zombies included, has pid as its
// parent. A zombie's CPU time reaches its parent's cutime/cstime only once
// the parent has reaped it.
func hasChildren(pid int) (bool, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false, fmt.Errorf("list processes: %w", err)
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		st, err := readProcStat(child)
		if err != nil {
			continue // exited while we looked
		}
		if st.ppid == pid {
			return true, nil
		}
	}
	return false, nil
}

// treeCPU is the CPU time (user + system) of pid and of all its
// descendants that have exited. It first waits, up to 30 s, until pid has
// no children left: OpenSSH's sshd forks (and re-executes) per connection,
// each of those forks again for privilege separation and the session, and
// every level adds its reaped children's time to its own cutime/cstime, so
// the listening sshd's counters hold a finished session's whole cost.
func (p procfs) treeCPU(ctx context.Context, pid int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		busy, err := hasChildren(pid)
		if err != nil {
			return 0, err
		}
		if !busy {
			break
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("pid %d still has children: %w", pid, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	st, err := readProcStat(pid)
	if err != nil {
		return 0, err
	}
	return time.Duration(st.utime+st.stime+st.cutime+st.cstime) * p.tick, nil
}

// memStatus returns VmRSS and VmHWM (peak RSS) of pid, in bytes.
func memStatus(pid int) (rss, hwm int64, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	return parseMemStatus(pid, data)
}

func parseMemStatus(pid int, data []byte) (rss, hwm int64, err error) {
	found := 0
	for _, line := range strings.Split(string(data), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %s of pid %d: %w", key, pid, err)
		}
		if key == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("status of pid %d: VmRSS or VmHWM missing", pid)
	}
	return rss, hwm, nil
}

// resetPeakRSS sets pid's VmHWM back to its current RSS (Linux 4.0+), so
// that the peak of the next test is its own.
func resetPeakRSS(pid int) error {
	if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS of pid %d: %w", pid, err)
	}
	return nil
}

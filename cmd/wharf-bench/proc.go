package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
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

// countChildren returns how many processes, zombies included, have each
// of pids as their parent. A zombie's CPU time reaches its parent's
// cutime/cstime only once the parent has reaped it.
func countChildren(pids ...int) (map[int]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	counts := make(map[int]int, len(pids))
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(child)
		if err != nil {
			continue // exited while we looked
		}
		if slices.Contains(pids, st.ppid) {
			counts[st.ppid]++
		}
	}
	return counts, nil
}

// waitReaped waits, up to 30 s, until each pid in allowed has at most
// allowed[pid] children left.
func waitReaped(ctx context.Context, allowed map[int]int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pids := make([]int, 0, len(allowed))
	for pid := range allowed {
		pids = append(pids, pid)
	}
	for {
		counts, err := countChildren(pids...)
		if err != nil {
			return err
		}
		busy := 0
		for _, pid := range pids {
			if counts[pid] > allowed[pid] {
				busy = pid
				break
			}
		}
		if busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pid %d still has %d children: %w", busy, counts[busy], ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// cpuTotal is utime+stime+cutime+cstime of pid.
func (p procfs) cpuTotal(pid int) (time.Duration, error) {
	st, err := readProcStat(pid)
	if err != nil {
		return 0, err
	}
	return time.Duration(st.utime+st.stime+st.cutime+st.cstime) * p.tick, nil
}

// treeCPU is the CPU time (user + system) of pid and of all its
// descendants that have exited. It first waits, up to 30 s, until pid has
// no children left: OpenSSH's sshd forks (and re-executes) per connection,
// each of those forks again for privilege separation and the session, and
// every level adds its reaped children's time to its own cutime/cstime, so
// the listening sshd's counters hold a finished session's whole cost.
func (p procfs) treeCPU(ctx context.Context, pid int) (time.Duration, error) {
	if err := waitReaped(ctx, map[int]int{pid: 0}); err != nil {
		return 0, err
	}
	return p.cpuTotal(pid)
}

// reapedTreeCPU is treeCPU for a listener that runs under a subreaper (see
// runSubreaper): the listener's tree as treeCPU sees it, plus what the
// subreaper reaped, which is every process of a session that outlived its
// parent. vsftpd needs it: a session's processes do not all wait for one
// another, and an orphan's CPU time would otherwise be charged to init.
func (p procfs) reapedTreeCPU(ctx context.Context, reaper, listener int) (time.Duration, error) {
	if err := waitReaped(ctx, map[int]int{reaper: 1, listener: 0}); err != nil {
		return 0, err
	}
	r, err := p.cpuTotal(reaper)
	if err != nil {
		return 0, err
	}
	l, err := p.cpuTotal(listener)
	if err != nil {
		return 0, err
	}
	return r + l, nil
}

// subreaperEnv, set to "1", makes this program run as runSubreaper instead
// of the benchmark (see init): Go cannot set PR_SET_CHILD_SUBREAPER on a
// child between fork and exec, so the benchmark starts itself for it.
const subreaperEnv = "WHARF_BENCH_SUBREAPER"

// subreaperStarted is the line runSubreaper prints, followed by its
// child's pid.
const subreaperStarted = "wharf-bench subreaper: started pid "

func init() {
	if os.Getenv(subreaperEnv) == "1" {
		os.Exit(runSubreaper(os.Args[1:]))
	}
}

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER (Linux 3.4), which the
// syscall package does not name.
const prSetChildSubreaper = 36

// runSubreaper starts argv as its child and reaps every process orphaned
// beneath it until that child exits, whose exit status it then returns.
// The reaped processes' CPU time lands in its cutime/cstime, where
// reapedTreeCPU reads it. The listener itself cannot be the subreaper:
// vsftpd's listener treats a child it did not fork as a bug and exits.
func runSubreaper(argv []string) int {
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "wharf-bench subreaper: no command")
		return 2
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		fmt.Fprintf(os.Stderr, "wharf-bench subreaper: prctl(PR_SET_CHILD_SUBREAPER): %v\n", errno)
		return 1
	}
	// Registered before the child exists, so that no stop signal is lost;
	// the child gets them forwarded.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, subreaperEnv+"=") })
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "wharf-bench subreaper: start %s: %v\n", argv[0], err)
		return 1
	}
	fmt.Printf("%s%d\n", subreaperStarted, pid)
	go func() {
		for sig := range sigs {
			_ = syscall.Kill(pid, sig.(syscall.Signal))
		}
	}()
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "wharf-bench subreaper: wait: %v\n", err)
			return 1
		}
		if got != pid {
			continue // an orphan: reaping it was the point
		}
		if ws.Exited() {
			return ws.ExitStatus()
		}
		return 128 + int(ws.Signal())
	}
}

// resetPeakRSS sets pid's VmHWM back to its current RSS (Linux 4.0+), so
// that the peak of the next test is its own.
func resetPeakRSS(pid int) error {
	if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS of pid %d: %w", pid, err)
	}
	return nil
}

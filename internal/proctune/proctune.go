// Package proctune sets GOMAXPROCS from what the daemon uses and what the
// machine has free.
//
// An SFTP request crosses several goroutines (x/crypto's reader, pkg/sftp's
// reader, dispatcher, workers and response orderer), and each hand-off to a
// goroutine makes the runtime wake an idle processor to look for work: a
// thread woken, spinning, and put back to sleep, for a few microseconds of
// work that the waker would have run itself a moment later (golang/go#18237,
// "scheduler is slow when goroutines are frequently woken"). With the other
// cores idle that costs CPU time nobody else wanted; with the other cores
// busy (the clients, the page cache, other daemons) it takes time from them
// and moves the session's data between caches. Measured on two cores with
// the client on the same machine: GOMAXPROCS=1 cut wharf's CPU per GB by a
// quarter and raised small-file throughput by a fifth.
//
// A fixed GOMAXPROCS=1 would cap a busy daemon at one core, so the policy
// follows demand: as many processors as the daemon keeps busy (each at most
// BusyShare busy on average), but no more than the cores it uses plus the
// cores the machine leaves idle. Raising is immediate; lowering waits until
// several intervals in a row agree, so that a burst does not flap it.
package proctune

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Policy is how GOMAXPROCS follows demand.
type Policy struct {
	// BusyShare is how busy, on average, each processor may be before
	// another is wanted.
	BusyShare float64
	// Interval is how often demand is measured.
	Interval time.Duration
	// DownAfter is how many intervals in a row must want fewer processors
	// before they are taken away.
	DownAfter int
}

// Default measures every second and lowers after three.
var Default = Policy{BusyShare: 0.75, Interval: time.Second, DownAfter: 3}

// Sample is one interval, in cores: CPU seconds per second of wall time.
type Sample struct {
	Own  float64 // this process's CPU time, user and system
	Free float64 // the machine's idle time
}

// Want is the processor count after an interval s measured on cur of them,
// between 1 and limit: enough that none is busier than BusyShare, within
// the cores the process could run on (its own plus the idle ones; a core
// counts when at least half of it is idle). When the cur processors were
// all but fully busy, the demand behind them is unknown, so Want takes all
// the room at once rather than a quarter more per interval: from one
// processor to 64 in one step, not twelve.
func (p Policy) Want(s Sample, cur, limit int) int {
	want := int(math.Ceil(s.Own / p.BusyShare))
	room := int(math.Floor(s.Own + s.Free + 0.5))
	if s.Own >= saturated*float64(cur) {
		want = room
	}
	return max(1, min(want, room, limit))
}

// saturated is the share of the current processors' time in use beyond
// which they count as all busy.
const saturated = 0.9

// state applies the hysteresis to successive Wants.
type state struct {
	cur, lower int // current count; intervals in a row that wanted fewer
	most       int // the most any of those intervals wanted
}

// next is the count after an interval that wanted w.
func (st *state) next(w, downAfter int) int {
	switch {
	case w > st.cur:
		st.cur, st.lower = w, 0
	case w == st.cur:
		st.lower = 0
	default:
		if st.lower == 0 || w > st.most {
			st.most = w
		}
		st.lower++
		if st.lower >= downAfter {
			st.cur, st.lower = st.most, 0
		}
	}
	return st.cur
}

// Run tunes GOMAXPROCS until ctx ends, between 1 and the count the runtime
// chose at start (which honours the CPU affinity and a cgroup's CPU
// limit). An operator's GOMAXPROCS in the environment wins: pass explicit as
// true and Run returns at once. So does a machine without /proc/stat; on
// return the count is what the runtime chose. Setting the count stops the
// runtime's own updates when a cgroup's CPU limit changes later: the limit
// read at start stays the bound until the daemon restarts.
func (p Policy) Run(ctx context.Context, explicit bool, log *slog.Logger) {
	limit := runtime.GOMAXPROCS(0)
	switch {
	case explicit:
		log.Info("cpu pacing", "policy", "GOMAXPROCS from the environment", "gomaxprocs", limit)
		return
	case limit == 1:
		log.Info("cpu pacing", "policy", "one processor available", "gomaxprocs", limit)
		return
	}
	prev, err := readClock()
	if err != nil {
		log.Warn("cpu pacing off", "err", err)
		return
	}
	log.Info("cpu pacing", "policy", "follow demand", "max_gomaxprocs", limit)
	defer runtime.GOMAXPROCS(limit)
	st := state{cur: limit}
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, err := readClock()
		if err != nil {
			log.Warn("cpu pacing off", "err", err)
			return
		}
		s, ok := now.since(prev)
		prev = now
		if !ok {
			continue
		}
		if n := st.next(p.Want(s, st.cur, limit), p.DownAfter); n != runtime.GOMAXPROCS(0) {
			runtime.GOMAXPROCS(n)
			log.Debug("gomaxprocs", "n", n, "own_cores", round2(s.Own), "free_cores", round2(s.Free))
		}
	}
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// clock is one reading of the process's CPU time and the machine's.
type clock struct {
	wall        time.Time
	own         time.Duration
	idle, total uint64 // jiffies over all CPUs (/proc/stat's first line)
	cpus        int    // CPUs listed in /proc/stat
}

func readClock() (clock, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return clock{}, fmt.Errorf("getrusage: %w", err)
	}
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return clock{}, fmt.Errorf("read machine CPU times: %w", err)
	}
	idle, total, cpus, err := parseStat(data)
	if err != nil {
		return clock{}, fmt.Errorf("/proc/stat: %w", err)
	}
	return clock{
		wall: time.Now(), own: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		idle: idle, total: total, cpus: cpus,
	}, nil
}

// since is the interval from c0 to c, in cores; ok is false when it is too
// short to say anything (no jiffy elapsed) or the counters went backwards.
func (c clock) since(c0 clock) (Sample, bool) {
	wall := c.wall.Sub(c0.wall).Seconds()
	if wall <= 0 || c.total <= c0.total || c.idle < c0.idle {
		return Sample{}, false
	}
	idleShare := float64(c.idle-c0.idle) / float64(c.total-c0.total)
	return Sample{
		Own:  max(0, (c.own-c0.own).Seconds()/wall),
		Free: idleShare * float64(c.cpus),
	}, true
}

// parseStat reads the aggregate "cpu" line of /proc/stat (idle and iowait
// count as idle) and counts the per-CPU lines.
func parseStat(data []byte) (idle, total uint64, cpus int, err error) {
	found := false
	// bytes.Lines rather than a Scanner: the "intr" line of a machine with
	// many interrupts outgrows a Scanner's token limit.
	for line := range bytes.Lines(data) {
		if !bytes.HasPrefix(line, []byte("cpu")) {
			continue
		}
		fields := strings.Fields(string(line))
		if fields[0] != "cpu" {
			cpus++
			continue
		}
		if len(fields) < 6 {
			return 0, 0, 0, fmt.Errorf("cpu line has %d fields, want at least 5 figures", len(fields)-1)
		}
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already counted in user and nice.
		for i, f := range fields[1:min(len(fields), 9)] {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return 0, 0, 0, fmt.Errorf("cpu line field %d: %w", i+1, err)
			}
			total += v
			if i == 3 || i == 4 {
				idle += v
			}
		}
		found = true
	}
	if !found || cpus == 0 {
		return 0, 0, 0, errors.New("no aggregate and per-CPU lines")
	}
	return idle, total, cpus, nil
}

// Package procstat reads a process's memory figures from /proc, for the
// benchmark and the load generator (Linux only, like their measurements).
package procstat

import (
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// Mem returns VmRSS and VmHWM (peak RSS) of pid in bytes; pid 0 is the
// calling process.
func Mem(pid int) (rss, hwm int64, err error) {
	name := "self"
	if pid != 0 {
		name = strconv.Itoa(pid)
	}
	data, err := os.ReadFile("/proc/" + name + "/status")
	if err != nil {
		return 0, 0, fmt.Errorf("read memory status of pid %s: %w", name, err)
	}
	rss, hwm, err = ParseMem(data)
	if err != nil {
		return 0, 0, fmt.Errorf("pid %s: %w", name, err)
	}
	return rss, hwm, nil
}

// ParseMem reads VmRSS and VmHWM from the text of /proc/PID/status.
func ParseMem(data []byte) (rss, hwm int64, err error) {
	found := 0
	for _, line := range strings.Split(string(data), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %s: %w", key, err)
		}
		if key == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("VmRSS or VmHWM missing (a kernel thread?)")
	}
	return rss, hwm, nil
}

// Umask returns the calling process's umask, read from /proc/self/status:
// setting it to find out would race with other goroutines creating files.
func Umask() (fs.FileMode, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read umask: %w", err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				return 0, fmt.Errorf("parse umask %q: %w", strings.TrimSpace(v), err)
			}
			return fs.FileMode(m), nil
		}
	}
	return 0, fmt.Errorf("no Umask in /proc/self/status")
}

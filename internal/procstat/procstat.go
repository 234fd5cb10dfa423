// Package procstat reads a process's memory figures from /proc, for the
// benchmark and the load generator (Linux only, like their measurements).
package procstat

import (
	"fmt"
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

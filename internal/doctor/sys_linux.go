package doctor

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockHolder reports whether a process holds a lock on path, and its pid
// when this PID namespace sees it, from /proc/locks: the doctor looks
// without locking, so that it never races a daemon starting.
func lockHolder(path string) (pid int, held bool, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil // made at a daemon's first start
	}
	if err != nil {
		return 0, false, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false, errors.New("no inode")
	}
	major := (st.Dev>>8)&0xfff | (st.Dev>>32)&^0xfff
	minor := st.Dev&0xff | (st.Dev>>12)&^0xff
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	// "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; "->" lines are
	// waiters, whose fields shift by one.
	const maxLocks = 1 << 20
	for n := 0; sc.Scan() && n < maxLocks; n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] == "->" {
			continue
		}
		if fields[5] == want {
			pid, _ := strconv.Atoi(fields[4])
			return pid, true, nil
		}
	}
	return 0, false, sc.Err()
}

// ownerOf returns a file's owner.
func ownerOf(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// Kernel clock states (adjtimex(2)).
const (
	timeError = 5      // TIME_ERROR: the clock is not synchronized
	staUnsync = 0x0040 // STA_UNSYNC
)

// clockSync reports whether the kernel's clock is synchronized (by NTP or
// PTP) and its estimated error.
func clockSync() (synced bool, esterror int64, err error) {
	var tx syscall.Timex
	state, err := syscall.Adjtimex(&tx) // Modes 0: read only
	if err != nil {
		return false, 0, fmt.Errorf("adjtimex: %w", err)
	}
	return state != timeError && tx.Status&staUnsync == 0, tx.Esterror, nil
}

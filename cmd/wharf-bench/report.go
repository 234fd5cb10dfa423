package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// machine describes where the figures were taken; a table without it says
// nothing.
type machine struct {
	cpus    int
	model   string
	memory  string
	kernel  string
	openssh string
	wharf   string
	goVer   string
}

func describeMachine(ctx context.Context, wharfBin string) (machine, error) {
	m := machine{
		cpus:   runtime.NumCPU(),
		model:  procField("/proc/cpuinfo", "model name"),
		memory: memTotal(),
		goVer:  runtime.Version(),
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(data))
	}
	ssh, err := commandOutput(ctx, "ssh", "-V")
	if err != nil {
		return m, fmt.Errorf("ssh -V (Debian package openssh-client): %w", err)
	}
	m.openssh = ssh
	if m.wharf, err = commandOutput(ctx, wharfBin, "version"); err != nil {
		return m, fmt.Errorf("wharf version: %w", err)
	}
	return m, nil
}

func (m machine) String() string {
	return fmt.Sprintf("machine: %d CPU(s), %s, %s RAM, Linux %s; %s; %s (%s)",
		m.cpus, orUnknown(m.model), orUnknown(m.memory), orUnknown(m.kernel), m.openssh, m.wharf, m.goVer)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// loadAverage is the 1-minute load average from /proc/loadavg, or "unknown".
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	if f := strings.Fields(string(data)); len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// memTotal is /proc/meminfo's MemTotal in GiB, or "" when unknown.
func memTotal() string {
	kb, err := strconv.ParseInt(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 10, 64)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
}

// procField returns the value of the first "key : value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

// commandOutput runs a short command and returns its first output line
// (ssh -V writes to stderr).
func commandOutput(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(out.String()))
	}
	line, _, _ := strings.Cut(strings.TrimSpace(out.String()), "\n")
	return line, nil
}

// buildCommand compiles the module's cmd/NAME (the daemon, the load
// generator) into dir and returns the binary's path.
func buildCommand(ctx context.Context, dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create build dir: %w", err)
	}
	bin := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/wharf-sftp/wharf/cmd/"+name)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", name, err, strings.TrimSpace(out.String()))
	}
	return bin, nil
}

// stats is the median, minimum and maximum of a series.
type stats struct{ median, min, max float64 }

func summarize(v []float64) stats {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return stats{}
	}
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return stats{median: med, min: s[0], max: s[n-1]}
}

func (s stats) String() string {
	if s.min == s.max {
		return fmt.Sprintf("%.1f", s.median)
	}
	return fmt.Sprintf("%.1f (%.1f–%.1f)", s.median, s.min, s.max)
}

// figure formats s with formatFigure's precision, for small values such as
// CPU seconds per GB.
func (s stats) figure() string {
	if s.min == s.max {
		return formatFigure(s.median)
	}
	return fmt.Sprintf("%s (%s–%s)", formatFigure(s.median), formatFigure(s.min), formatFigure(s.max))
}

// formatFigure shows about three significant digits without an exponent.
func formatFigure(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// thousands writes a non-negative n with commas between groups of three
// digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func ratio(a, b float64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// noFigure fills a cell a row has no figure for, such as the reference
// columns of a wharf-only row.
const noFigure = "—"

// reference is the server a row compares wharf with (openssh, vsftpd), or
// "" for a row that measured wharf alone.
func (r result) reference() string {
	var names []string
	for name, v := range r.values {
		if name != "wharf" && len(v) > 0 {
			names = append(names, name)
		}
	}
	for name, v := range r.cpu {
		if name != "wharf" && len(v) > 0 && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ") // one, unless a row went wrong
}

// cell is the median (min–max) of v, or noFigure; figure selects
// formatFigure's precision for small values.
func cell(v []float64, figure bool) string {
	switch {
	case len(v) == 0:
		return noFigure
	case figure:
		return summarize(v).figure()
	default:
		return summarize(v).String()
	}
}

// ratioCell is ratio of the medians, or noFigure if either is missing.
func ratioCell(a, b []float64) string {
	if len(a) == 0 || len(b) == 0 {
		return noFigure
	}
	return ratio(summarize(a).median, summarize(b).median)
}

// printTable writes a Markdown table, ready to paste into the README. Every
// rate is higher-is-better, so a ratio above 1 means wharf is faster; the
// server CPU figures are lower-is-better, so there a ratio below 1 means
// wharf spends less. Each row names its reference server; a row that
// measured wharf alone shows noFigure there. A note on peak memory follows
// when a test measured it.
func printTable(w io.Writer, results []result) {
	fmt.Fprintln(w, "| test | wharf median (min–max) | reference | reference median (min–max) | ratio wharf/reference | "+
		"server CPU wharf | server CPU reference | CPU ratio wharf/reference |")
	fmt.Fprintln(w, "|---|---:|---|---:|---:|---:|---:|---:|")
	for _, r := range results {
		ref := r.reference()
		refName := ref
		if refName == "" {
			refName = noFigure
		}
		fmt.Fprintf(w, "| %s (%s; CPU %s) | %s | %s | %s | %s | %s | %s | %s |\n", r.name, r.unit, r.cpuUnit,
			cell(r.values["wharf"], false), refName, cell(r.values[ref], false), ratioCell(r.values["wharf"], r.values[ref]),
			cell(r.cpu["wharf"], true), cell(r.cpu[ref], true), ratioCell(r.cpu["wharf"], r.cpu[ref]))
	}
	for _, r := range results {
		for _, name := range serverNames(r.rss) {
			fmt.Fprintf(w, "\n%s, %s: peak RSS growth %s MiB (VmHWM after the run minus VmRSS before it)\n",
				r.name, name, summarize(r.rss[name]).figure())
		}
	}
	printClientNotes(w, results)
	for _, r := range results {
		if len(r.notes) > 0 {
			fmt.Fprintln(w)
			for _, n := range r.notes {
				fmt.Fprintln(w, n)
			}
		}
	}
}

// printClientNotes says, for the rows that timed one client process, how
// much CPU the client spent and how many CPUs client and server kept busy
// together: a row near the machine's CPU count measured the machine, and
// its ratio then moves with the sum of client and server CPU, not with
// the server's alone. A row with a ceiling adds what the client reached
// against a server that does next to nothing.
func printClientNotes(w io.Writer, results []result) {
	header := false
	for _, r := range results {
		names := serverNames(r.client)
		if len(names) == 0 && len(r.ceiling) == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nClient CPU per unit of work (the client process and every process it waited for, from wait4) and CPUs busy (client + server CPU time / wall time), medians (min–max):")
			fmt.Fprintln(w)
			header = true
		}
		var parts []string
		for _, name := range names {
			parts = append(parts, fmt.Sprintf("%s: client %s %s, %s CPUs busy",
				name, summarize(r.client[name]).figure(), r.cpuUnit, summarize(r.busy[name]).figure()))
		}
		if len(r.ceiling) > 0 {
			parts = append(parts, fmt.Sprintf("the client's ceiling here (HTTPS from memory, served by wharf-bench itself): %s %s",
				summarize(r.ceiling).String(), r.unit))
		}
		fmt.Fprintf(w, "- %s: %s\n", r.name, strings.Join(parts, "; "))
	}
}

// serverNames is the keys of m with figures, wharf first, then the rest
// in a stable order.
func serverNames(m map[string][]float64) []string {
	names := make([]string, 0, len(m))
	for name, v := range m {
		if len(v) > 0 {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(boolInt(a != "wharf"), boolInt(b != "wharf")), cmp.Compare(a, b))
	})
	return names
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

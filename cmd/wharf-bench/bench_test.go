package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/procstat"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, o options)
	}{
		{name: "defaults", check: func(t *testing.T, o options) {
			if !slices.Equal(o.rows, allRows()) || o.entries != 100000 || o.runs != 3 {
				t.Errorf("rows %v, entries %d, runs %d", o.rows, o.entries, o.runs)
			}
			if o.ciphers[0] != "default" || len(o.sftpArgs) != 0 {
				t.Errorf("ciphers %v, sftp args %v", o.ciphers, o.sftpArgs)
			}
		}},
		{name: "quick", args: []string{"-quick"}, check: func(t *testing.T, o options) {
			if o.entries != 10000 || o.size != 64<<20 || o.runs != 1 {
				t.Errorf("entries %d, size %d, runs %d", o.entries, o.size, o.runs)
			}
		}},
		{name: "quick keeps explicit flags", args: []string{"-quick", "-list-entries", "500", "-runs", "2"}, check: func(t *testing.T, o options) {
			if o.entries != 500 || o.runs != 2 {
				t.Errorf("entries %d, runs %d", o.entries, o.runs)
			}
		}},
		{name: "rows", args: []string{"-rows", " list, upload "}, check: func(t *testing.T, o options) {
			if !slices.Equal(o.rows, []string{"list", "upload"}) || !o.has("upload") || o.has("download") {
				t.Errorf("rows %v", o.rows)
			}
		}},
		{name: "sftp args", args: []string{"-sftp-args", " -B 261120  -R 128 "}, check: func(t *testing.T, o options) {
			if !slices.Equal(o.sftpArgs, []string{"-B", "261120", "-R", "128"}) {
				t.Errorf("sftp args %q", o.sftpArgs)
			}
		}},
		{name: "unknown row", args: []string{"-rows", "upload,nope"}, wantErr: `unknown test "nope"`},
		{name: "no row", args: []string{"-rows", ","}, wantErr: "selects no test"},
		{name: "transfers without ciphers", args: []string{"-rows", "download", "-ciphers", ""}, wantErr: "-ciphers is empty"},
		{name: "no cipher needed", args: []string{"-rows", "logins", "-ciphers", ""}},
		{name: "entries bound", args: []string{"-list-entries", "0"}, wantErr: "-list-entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, o)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	// Fields 3..17 after the command name, then the rest of a real line.
	const tail = " S 42 7 7 0 -1 4194560 100 0 0 0 250 31 12 5 20 0 9 0 12345 0 0"
	tests := []struct {
		name    string
		line    string
		want    procStat
		wantErr bool
	}{
		{name: "plain", line: "123 (sshd)" + tail, want: procStat{ppid: 42, utime: 250, stime: 31, cutime: 12, cstime: 5}},
		{name: "name with spaces and parentheses", line: "123 (sshd: a (b) [priv])" + tail, want: procStat{ppid: 42, utime: 250, stime: 31, cutime: 12, cstime: 5}},
		{name: "truncated", line: "123 (sshd) S 42 7", wantErr: true},
		{name: "no name", line: "123 sshd" + tail, wantErr: true},
		{name: "not a number", line: "123 (x) S 42 7 7 0 -1 4194560 100 0 0 0 x 31 12 5 20", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat(123, []byte(tt.line))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error: %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestTreeCPUCountsReapedChildren is what the OpenSSH column rests on: a
// child's CPU time reaches its parent's counters once it is reaped.
func TestTreeCPUCountsReapedChildren(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := newProcfs(ctx)
	if p.tick <= 0 {
		t.Fatalf("tick %v", p.tick)
	}
	before, err := p.treeCPU(ctx, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// A bounded busy loop of some tenths of a second of CPU.
	cmd := exec.CommandContext(ctx, sh, "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	child := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	after, err := p.treeCPU(ctx, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if child < 5*p.tick {
		t.Fatalf("the child used only %v of CPU: too little to tell", child)
	}
	if got := after - before; got < child-2*p.tick {
		t.Errorf("tree CPU grew by %v, less than the child's %v", got, child)
	}
}

func TestMemStatusOfSelf(t *testing.T) {
	if err := resetPeakRSS(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	rss, hwm, err := procstat.Mem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || hwm < rss {
		t.Errorf("rss %d, hwm %d", rss, hwm)
	}
}

func TestVerifyListing(t *testing.T) {
	b := &bench{o: options{entries: 3}}
	tests := []struct {
		name    string
		out     string
		wantErr string
	}{
		{name: "all", out: "sftp> ls -1f list\nlist/e0000002\nlist/e0000000\nlist/e0000001\n"},
		{name: "bare names", out: "e0000000\ne0000001\ne0000002\n"},
		{name: "missing", out: "sftp> ls -1f list\nlist/e0000000\nlist/e0000002\n", wantErr: "2 of 3"},
		{name: "twice", out: "list/e0000000\nlist/e0000000\nlist/e0000001\nlist/e0000002\n", wantErr: "twice"},
		{name: "out of range ignored", out: "list/e0000000\nlist/e0000001\nlist/e0000009\n", wantErr: "2 of 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.verifyListing(tt.out)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestFormatting(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{thousands(0), "0"},
		{thousands(999), "999"},
		{thousands(1000), "1,000"},
		{thousands(100000), "100,000"},
		{thousands(1234567), "1,234,567"},
		{formatFigure(0.0123), "0.012"},
		{formatFigure(2.456), "2.46"},
		{formatFigure(24.04), "24.0"},
		{formatFigure(1234.4), "1234"},
		{stats{median: 2, min: 1.5, max: 3}.figure(), "2.00 (1.50–3.00)"},
		{stats{median: 2, min: 2, max: 2}.figure(), "2.00"},
		{ratio(1, 0), "n/a"},
		{ratio(1, 4), "0.25"},
		// A wharf-only row (no reference figures) and a vsftpd row.
		{cell(nil, false), "—"},
		{cell([]float64{0.5}, true), "0.500"},
		{ratioCell([]float64{1}, nil), "—"},
		{ratioCell([]float64{500, 480, 520}, []float64{125}), "4.00"},
		{result{values: map[string][]float64{"wharf": {1}}}.reference(), ""},
		{result{values: map[string][]float64{"wharf": {1}, "vsftpd": {2}}}.reference(), "vsftpd"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestIsMainListener: the bench once measured the ChaCha20-only listener
// as wharf's main one when its line came first.
func TestIsMainListener(t *testing.T) {
	lines := map[string]string{
		"legacy":   `{"msg":"listening","listener":"legacy","component":"sftpd","proto":"sftp","addr":"127.0.0.1:39831"}`,
		"sftp":     `{"msg":"listening","component":"sftpd","proto":"sftp","addr":"127.0.0.1:33537"}`,
		"explicit": `{"msg":"listening","component":"ftpd","proto":"ftps","mode":"explicit","addr":"127.0.0.1:40069"}`,
		"implicit": `{"msg":"listening","component":"ftpd","proto":"ftps","mode":"implicit","addr":"127.0.0.1:40070"}`,
	}
	for name, want := range map[string]string{"legacy": "", "sftp": "sftp", "explicit": "ftps", "implicit": ""} {
		for _, proto := range []string{"sftp", "ftps"} {
			if got := isMainListener(lines[name], proto); got != (want == proto) {
				t.Errorf("isMainListener(%s line, %q) = %v", name, proto, got)
			}
		}
	}
}

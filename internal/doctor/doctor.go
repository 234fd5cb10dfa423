// Package doctor is `wharf doctor`: the checklist an operator runs on the
// daemon's host when "it doesn't connect". Each check says what it found
// and, when something is wrong, the fix in one sentence: the config is
// valid; state_dir, the host keys and the FTPS key exist with safe modes; a
// daemon holds state_dir; the storage takes a write; each listener answers
// as wharf; an SFTP and an FTPS round trip (upload, list, download, delete)
// go through the running daemon; the passive ports answer where PASV
// sends clients; ftps.public_host is this machine; the certificate is
// valid, and for how long; no user's keys or password have expired or
// expire soon with nothing to take over; the clock is synchronized.
//
// The round trips log in as a one-time identity that never enters the
// config (package doctor/pass has its design and threat analysis), into
// a scratch home that is removed afterwards. Run returns a Report the CLI
// prints as text or JSON, and the admin API can serve as it is: the
// package imports neither the daemon nor the front ends, so the daemon and
// its admin server may import it (the config's deeper check, daemon.Check,
// comes in through Options.Check).
package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/configedit"
	"github.com/wharf-sftp/wharf/internal/doctor/pass"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// Status is a check's outcome.
type Status string

// Outcomes. Only Fail makes the run fail (a non-zero exit status); Warn
// is something to look at, Skip a check that could not apply or could not
// run because an earlier one failed.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Check names, stable for monitoring (the "check" field of --json).
const (
	CheckConfig      = "config"
	CheckClock       = "clock"
	CheckStateDir    = "state_dir"
	CheckDaemon      = "daemon"
	CheckHostKey     = "host_key"
	CheckCertificate = "certificate"
	CheckStorage     = "storage"
	CheckListener    = "listener"
	CheckSFTP        = "sftp_round_trip"
	CheckFTPS        = "ftps_round_trip"
	CheckPassive     = "passive_ports"
	CheckPublicHost  = "public_host"
	CheckCredentials = "credentials"
)

// Result is one line of the checklist.
type Result struct {
	Check string `json:"check"`
	// Target is what the check looked at: a file, an address, a user.
	Target  string `json:"target,omitempty"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	// Fix is one sentence, for Warn and Fail.
	Fix     string  `json:"fix,omitempty"`
	Seconds float64 `json:"seconds"`
}

// Report is a run's outcome.
type Report struct {
	Config string    `json:"config"`
	Time   time.Time `json:"time"`
	// OK is false when any check failed.
	OK      bool           `json:"ok"`
	Counts  map[Status]int `json:"counts"`
	Results []Result       `json:"checks"`
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool { return !r.OK }

// DefaultExpiryWarning is how far ahead an expiry is reported, as the
// daemon's key_expiry_warning defaults to.
const DefaultExpiryWarning = 14 * 24 * time.Hour

// DefaultTimeout bounds each network step (a dial, a greeting, a reply).
const DefaultTimeout = 5 * time.Second

// Options tune a run; the zero value is the defaults.
type Options struct {
	// ExpiryWarning is how far ahead expiring keys, passwords and
	// certificates are reported; 0: the config's key_expiry_warning, or
	// DefaultExpiryWarning when that is off.
	ExpiryWarning time.Duration
	// Timeout bounds each network step; 0: DefaultTimeout.
	Timeout time.Duration
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Check is what start-up checks of a config beyond its parsing (keys,
	// password hashes, algorithm names): daemon.Check. nil: parsing only.
	Check func(*config.Config) error
}

func (o Options) withDefaults() Options {
	if o.ExpiryWarning <= 0 {
		o.ExpiryWarning = DefaultExpiryWarning
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Run loads the config at path (with the users of its users_dir, a folder
// or a bucket) and runs every check against it.
func Run(ctx context.Context, path string, o Options) *Report {
	o = o.withDefaults()
	r := &runner{o: o, report: &Report{Config: path, Time: o.Now().UTC()}}
	start := time.Now()
	cfg, err := configedit.LoadConfig(path)
	if err == nil && o.Check != nil {
		err = o.Check(cfg)
	}
	if err != nil {
		r.add(start, Result{Check: CheckConfig, Target: path, Status: Fail, Message: err.Error(),
			Fix: fmt.Sprintf("correct each problem at the file:line given, then run `wharf config check --config %s`", path)})
		return r.finish()
	}
	r.add(start, Result{Check: CheckConfig, Target: path, Status: OK, Message: describeConfig(cfg)})
	r.checks(ctx, cfg)
	return r.finish()
}

// RunConfig runs every check but the config's own on cfg, loaded and
// checked already (the admin API's config in force).
func RunConfig(ctx context.Context, cfg *config.Config, o Options) *Report {
	if o.ExpiryWarning == 0 && cfg.KeyExpiryWarning > 0 {
		o.ExpiryWarning = cfg.KeyExpiryWarning // the daemon's own warning horizon
	}
	o = o.withDefaults()
	r := &runner{o: o, report: &Report{Config: cfg.File, Time: o.Now().UTC()}}
	r.checks(ctx, cfg)
	return r.finish()
}

func describeConfig(cfg *config.Config) string {
	var on []string
	if cfg.SFTP.Listen != "" {
		on = append(on, "sftp "+cfg.SFTP.Listen)
	}
	if cfg.FTPS.Listen != "" {
		on = append(on, "ftps "+cfg.FTPS.Listen)
	}
	if cfg.FTPS.ImplicitListen != "" {
		on = append(on, "implicit ftps "+cfg.FTPS.ImplicitListen)
	}
	listens := "no listener"
	if len(on) > 0 {
		listens = strings.Join(on, ", ")
	}
	return fmt.Sprintf("valid: %d users, %s storage, %s", len(cfg.Users), cfg.Storage.Backend, listens)
}

// runner carries what one check learns for the next ones.
type runner struct {
	o      Options
	report *Report
	cfg    *config.Config

	daemonDown bool // no process holds state_dir's lock
	// listening maps a listener's config key ("sftp.listen") to the
	// address it answered on, for the round trips.
	listening map[string]string
	hostKeys  []string // authorized_keys lines of the host keys on disk
	certFP    string   // the certificate's fingerprint on disk; "" unknown
	backend   vfs.Backend
	pass      *pass.Pass
	passErr   error
}

func (r *runner) checks(ctx context.Context, cfg *config.Config) {
	r.cfg = cfg
	r.listening = map[string]string{}
	defer r.cleanup()
	r.checkClock()
	r.checkStateDir()
	r.checkHostKeys()
	r.checkCertificate()
	r.checkStorage(ctx)
	r.checkListeners(ctx)
	r.checkSFTP(ctx)
	r.checkFTPS(ctx)
	r.checkPublicHost(ctx)
	r.checkCredentials()
}

// add records a result, timed from start.
func (r *runner) add(start time.Time, res Result) {
	res.Seconds = time.Since(start).Round(time.Millisecond).Seconds()
	r.report.Results = append(r.report.Results, res)
}

func (r *runner) finish() *Report {
	r.report.Counts = map[Status]int{OK: 0, Warn: 0, Fail: 0, Skip: 0}
	for _, res := range r.report.Results {
		r.report.Counts[res.Status]++
	}
	r.report.OK = r.report.Counts[Fail] == 0
	return r.report
}

// cleanup withdraws the pass, removes the round trips' scratch home and
// closes the storage.
func (r *runner) cleanup() {
	if r.pass != nil {
		r.pass.Withdraw()
	}
	if r.backend == nil {
		return
	}
	if r.pass != nil {
		if root, err := r.backend.Home("/"); err == nil {
			_ = root.Rmdir(r.pass.Home)
			_ = root.Rmdir(pass.HomeRoot) // fails while another run's home is there
			root.Close()
		}
	}
	r.backend.Close()
}

// WriteJSON writes the report as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the checklist for a terminal: one line per check, the
// fix under each warning and failure, and the totals.
func (r *Report) WriteText(w io.Writer) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "wharf doctor: %s\n", r.Config)
	label := map[Status]string{OK: "ok", Warn: "WARN", Fail: "FAIL", Skip: "skip"}
	for _, res := range r.Results {
		name := res.Check
		if res.Target != "" {
			name += " " + res.Target
		}
		lines := strings.Split(strings.TrimRight(res.Message, "\n"), "\n")
		fmt.Fprintf(b, "  %-4s  %s: %s\n", label[res.Status], name, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(b, "          %s\n", l)
		}
		if res.Fix != "" {
			fmt.Fprintf(b, "        fix: %s\n", res.Fix)
		}
	}
	c := r.Counts
	warnings := "warnings"
	if c[Warn] == 1 {
		warnings = "warning"
	}
	fmt.Fprintf(b, "%d ok, %d %s, %d failed, %d skipped\n", c[OK], c[Warn], warnings, c[Fail], c[Skip])
	_, err := io.WriteString(w, b.String())
	return err
}

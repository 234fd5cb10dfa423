package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

const (
	// reloadDebounce is how long the files must stay quiet after an event
	// before they are read: an editor's save or a `..data` swap is a burst
	// of events, and a file being written in place is briefly truncated.
	reloadDebounce = 200 * time.Millisecond
	// reloadMaxDelay bounds the wait when events never pause.
	reloadMaxDelay = time.Second
	// reloadPoll is the safety net for file systems that lose events (NFS,
	// some container overlays): the files are hashed this often.
	reloadPoll = 5 * time.Second
	// reloadStable is how far apart two reads of the files must be, and
	// see the same bytes, before a reload applies them: a writer that
	// rewrites a file in place and pauses mid-file (for up to this long)
	// is never applied half written. Quiet after the last event is not
	// enough: a paused writer makes none.
	reloadStable = time.Second
	// reloadCallTries bounds how often Reload re-reads files that keep
	// changing before it gives up.
	reloadCallTries = 10
)

// Reload triggers, as logged.
const (
	triggerWatch  = "watch"  // a file event or the periodic re-check
	triggerSignal = "signal" // SIGHUP
	triggerCall   = "call"   // Reload called by the embedder (tests)
	triggerBucket = "bucket" // the poll of a users_dir in a bucket found changes (users_bucket.go)
)

// reloader is the hot-reload state of a Daemon. d.cfg stays the config
// the daemon started with, never written after New, so that start-up code
// may read it without locks; the config in force lives here.
type reloader struct {
	path string // the config file; "" when the config was built in code

	mu     sync.Mutex     // one reload (or re-check) at a time
	cur    *config.Config // in force: the last good config, restart-only settings as at start
	sum    digest         // of the bytes cur came from; zero when unknown
	main   digest         // of the config file's bytes alone, within sum
	badSum digest         // of the last bytes that failed, so a failure is logged once
	badErr error

	// The bytes last read that are neither in force nor known bad: they
	// are applied once a read at least reloadStable later sees them again.
	pendSum digest
	pendAt  time.Time // when they were first read; zero: nothing pending
	pendDir string    // the users_dir they were read with

	grace atomic.Int64 // shutdown_grace in force, read by Run without the lock
}

// digest is config.Snapshot's Sum: of the config file and the users_dir
// files, as read.
type digest = [sha256.Size]byte

// initReload records the config the daemon starts with; New calls it.
func (d *Daemon) initReload(cfg *config.Config) {
	r := &d.rl
	r.path = cfg.File
	r.cur = cfg
	r.grace.Store(int64(cfg.ShutdownGrace))
	if r.path != "" {
		// A file that changed since the CLI loaded it differs from this sum
		// only if it changed before this read: the first re-check then
		// reloads, which is right either way.
		snap := d.readSnapshot(cfg.UsersDir)
		r.sum, r.main = snap.Sum, snap.Main
	}
}

// shutdownGrace is the shutdown_grace in force (it applies live).
func (d *Daemon) shutdownGrace() time.Duration { return time.Duration(d.rl.grace.Load()) }

// Directory returns the user directory in force: the one the next login
// on either protocol is checked against.
func (d *Daemon) Directory() *auth.Directory { return d.users.Load() }

// Reload re-reads the config file and its users_dir. Identical bytes are a
// no-op. New bytes are applied only once two reads at least reloadStable
// apart have seen them, so Reload may wait that long (and gives up on files
// that keep changing); new objects of a users_dir in a bucket, which are
// written whole, at once. Then the whole new config is loaded and checked; only
// when all of it is valid is the new user directory swapped in (a login
// sees the old one or the new one, never a mix), what changed logged, and
// the live sessions reconciled: those whose user, key or password the new
// config removed (or whose user it disabled, or whose protocol it no
// longer allows) are closed, the others get their new permissions.
// Settings that cannot change live are logged as needing a restart and
// keep their old values. An invalid config changes nothing; Reload returns
// its errors (errors.Join of *config.FieldError, each with file and line).
// A users_dir in a bucket is polled first.
func (d *Daemon) Reload() error {
	if d.ub != nil {
		if _, err := d.ub.poll(context.Background()); err != nil {
			return fmt.Errorf("reload: %w", err)
		}
	}
	for range reloadCallTries {
		res, due, err := d.reload(triggerCall)
		if res != reloadPending {
			return err
		}
		time.Sleep(time.Until(due))
	}
	return fmt.Errorf("reload: the config files changed on each of %d reads %s apart; nothing applied", reloadCallTries, reloadStable)
}

type reloadResult int

const (
	reloadUnchanged   reloadResult = iota // the same bytes as the config in force
	reloadApplied                         // a new config is in force
	reloadFailed                          // the files are invalid (or unreadable)
	reloadStillFailed                     // the same bytes as the last failure
	reloadPending                         // new bytes, not yet seen the same reloadStable apart
)

// reload is one look at the files. It returns reloadPending, and when to
// look again, for bytes not yet seen the same reloadStable apart.
func (d *Daemon) reload(trigger string) (reloadResult, time.Time, error) {
	r := &d.rl
	if r.path == "" {
		return reloadFailed, time.Time{}, errors.New("reload: the config was not loaded from a file")
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	// A cheap read first (no parsing): most looks find nothing new.
	usersDir := r.cur.UsersDir
	if !r.pendAt.IsZero() {
		usersDir = r.pendDir // a pending config may name another users_dir
	}
	snap := d.readSnapshot(usersDir)
	switch {
	case snap.Sum == r.sum:
		// Back to the config in force: a failure seen before is over, and
		// is logged again if it comes back.
		r.pendAt, r.badSum, r.badErr = time.Time{}, digest{}, nil
		return reloadUnchanged, time.Time{}, nil
	case snap.Sum == r.badSum:
		return reloadStillFailed, time.Time{}, r.badErr
	}
	now := time.Now()
	switch {
	case d.ub != nil && snap.Main == r.main && snap.UsersDir == r.cur.UsersDir:
		// Only the objects of the users_dir in a bucket changed: an object
		// is written whole, and the poller hands over a whole listing's
		// worth, so there is nothing half written to wait out.
		r.pendSum, r.pendAt, r.pendDir = snap.Sum, now, snap.UsersDir
	case r.pendAt.IsZero() || snap.Sum != r.pendSum:
		r.pendSum, r.pendAt, r.pendDir = snap.Sum, now, snap.UsersDir
		return reloadPending, now.Add(reloadStable), nil
	default:
		if due := r.pendAt.Add(reloadStable); now.Before(due) {
			return reloadPending, due, nil
		}
	}

	// The same bytes a second apart: load them. LoadSnapshot says what it
	// parsed; if that is not what was pending (a write since, or the new
	// config names another users_dir), it is the new first read.
	cfg, snap, err := config.LoadSnapshotWith(r.path, d.loadOptions())
	if snap.Sum != r.pendSum {
		r.pendSum, r.pendAt, r.pendDir = snap.Sum, now, snap.UsersDir
		return reloadPending, now.Add(reloadStable), nil
	}
	r.pendAt = time.Time{}
	sum := snap.Sum
	fail := func(err error) (reloadResult, time.Time, error) {
		r.badSum, r.badErr = sum, err
		return reloadFailed, time.Time{}, err
	}
	if snap.Blank && err == nil {
		// An empty file is a valid config with no users, so applying it
		// would cut every partner: more likely a file caught being
		// rewritten by a writer that paused longer than reloadStable.
		return fail(&config.FieldError{File: r.path, Msg: "the file is empty; keeping the previous config (write `users: []` to remove every user)"})
	}
	if err != nil {
		return fail(err)
	}
	dir, err := Check(cfg)
	if err != nil {
		return fail(err)
	}

	log := d.log.With("component", "reload")
	cur := r.cur
	next, restart := liveConfig(cur, cfg)
	if len(restart) > 0 {
		log.Warn("restart needed to apply", "fields", restart, "trigger", trigger)
	}
	changes := auth.Diff(d.users.Load(), dir)
	d.users.Store(dir)
	d.wakeExpiryCuts()
	// sum covers the users_dir of the new config, now in force.
	r.cur, r.sum, r.main, r.badSum, r.badErr = next, sum, snap.Main, digest{}, nil
	r.grace.Store(int64(next.ShutdownGrace))

	for _, c := range changes {
		logChange(log, c)
	}
	d.reloadAdminAccess(log, cur.Admin, next.Admin)
	closed, updated := d.sessions.Reconcile(keepDoctor(dir.Recheck))
	log.Info("config reloaded", "trigger", trigger, "users", dir.Len(), "changed_users", len(changes),
		"sessions_closed", closed, "sessions_updated", updated)
	return reloadApplied, time.Time{}, nil
}

// liveConfig returns the config to put in force after next was loaded
// while cur was: next's Live settings with cur's Restart ones, which only a
// restart applies, but for those tagged reload:"live"; restart names the
// keys of those that differ. The types decide which is which
// (config.Restart, config.Live), not a list here.
func liveConfig(cur, next *config.Config) (live *config.Config, restart []string) {
	c := *next
	c.Restart, restart = cur.Restart.Reloaded(&next.Restart)
	return &c, restart
}

// reloadToken reads admin.token_file again and puts a new token in force:
// the old one is refused from the next request. A file that cannot be
// read, or is empty, keeps the token in force (a writer may be midway) and
// is logged once until the failure changes. The watcher calls it on
// SIGHUP and on each periodic re-check, so a rotated token takes effect
// within reloadPoll.
func (d *Daemon) reloadToken(log *slog.Logger) {
	f := d.cfg.Admin.TokenFile
	if d.token == nil || f == "" {
		return
	}
	token, err := readToken(f)
	if err != nil {
		if msg := err.Error(); msg != d.tokenErr {
			d.tokenErr = msg
			log.Error("admin token not reloaded; the one in force stays", "err", err)
		}
		return
	}
	d.tokenErr = ""
	if token != d.token.Get() {
		d.token.Set(token)
		log.Info("admin token reloaded", "file", f)
	}
}

// reloadAdminAccess puts a reload's admin.api_keys and admin.users in
// force in the API and the console, when they changed: the next request
// is checked against them, and console sessions whose access went or
// changed end. Their hashes were parsed by Check already.
func (d *Daemon) reloadAdminAccess(log *slog.Logger, cur, next config.Admin) {
	if d.api == nil || (slices.Equal(cur.APIKeys, next.APIKeys) && slices.Equal(cur.Users, next.Users)) {
		return
	}
	if err := d.api.SetKeys(next.APIKeys); err != nil {
		log.Error("admin api keys not reloaded", "err", err)
		return
	}
	ended, err := d.console.SetUsers(next.Users)
	if err != nil {
		log.Error("admin users not reloaded", "err", err)
		return
	}
	log.Info("admin access reloaded", "api_keys", len(next.APIKeys), "admin_users", len(next.Users), "console_sessions_ended", ended)
}

// logChange logs one user's change. Keys appear as fingerprints, the
// password only as whether it is set or changed.
func logChange(log *slog.Logger, c auth.UserChange) {
	switch {
	case c.Removed:
		log.Info("user removed", "user", c.User)
		return
	case c.Added:
		log.Info("user added", "user", c.User, "home", c.HomeAfter, "keys", nonNil(c.KeysAdded), "password", c.PasswordAfter,
			"permissions", permsText(c.PermsAfter), "protocols", auth.FormatProtocols(c.ProtocolsAfter), "disabled", c.DisabledAfter)
		return
	}
	attrs := []any{"user", c.User}
	if c.DisabledBefore != c.DisabledAfter {
		attrs = append(attrs, "disabled", c.DisabledAfter)
	}
	if c.HomeBefore != c.HomeAfter {
		attrs = append(attrs, "home", c.HomeBefore+" -> "+c.HomeAfter)
	}
	if len(c.KeysAdded) > 0 {
		attrs = append(attrs, "keys_added", c.KeysAdded)
	}
	if len(c.KeysRemoved) > 0 {
		attrs = append(attrs, "keys_removed", c.KeysRemoved)
	}
	if len(c.KeysExpiry) > 0 {
		attrs = append(attrs, "keys_expiry", c.KeysExpiry)
	}
	if !c.PasswordExpiryBefore.Equal(c.PasswordExpiryAfter) {
		attrs = append(attrs, "password_expiry", auth.Until(c.PasswordExpiryAfter))
	}
	switch {
	case c.PasswordChanged:
		attrs = append(attrs, "password", "changed")
	case !c.PasswordBefore && c.PasswordAfter:
		attrs = append(attrs, "password", "added")
	case c.PasswordBefore && !c.PasswordAfter:
		attrs = append(attrs, "password", "removed")
	}
	if c.PermsBefore != c.PermsAfter {
		attrs = append(attrs, "permissions", permsText(c.PermsBefore)+" -> "+permsText(c.PermsAfter))
	}
	if c.ProtocolsChanged() {
		attrs = append(attrs, "protocols", auth.FormatProtocols(c.ProtocolsBefore)+" -> "+auth.FormatProtocols(c.ProtocolsAfter))
	}
	log.Info("user changed", attrs...)
}

func permsText(p vfs.Perms) string {
	if p == 0 {
		return "none"
	}
	return p.String()
}

// nonNil makes an empty list log as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// startWatcher starts the goroutine that reloads the config when its files
// change, on SIGHUP, and on the periodic re-check, and returns the function
// that stops it and waits for it. Run defers that function: the watcher
// lives until Run returns, drain included, so that a SIGHUP during the
// drain reloads rather than killing the process (its default action) and a
// revocation still closes sessions. Nothing is started for a config that
// was not loaded from a file.
func (d *Daemon) startWatcher() (stop func()) {
	if d.rl.path == "" {
		if d.ub != nil {
			d.log.Warn("users_dir is read once: the config was not loaded from a file, so nothing reloads", "component", "reload", "users_dir", d.ub.url)
		}
		return func() {}
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.watch(quit)
	}()
	stopPoll := func() {}
	if d.ub != nil {
		ctx, cancel := context.WithCancel(context.Background())
		polled := make(chan struct{})
		go func() {
			defer close(polled)
			d.ub.run(ctx, func() {
				select {
				case d.ub.changed <- struct{}{}:
				default: // the watcher has a cue pending already
				}
			})
		}()
		stopPoll = func() {
			cancel()
			<-polled
		}
	}
	return func() {
		stopPoll()
		close(quit)
		<-done
	}
}

// watch runs until quit is closed.
func (d *Daemon) watch(quit <-chan struct{}) {
	log := d.log.With("component", "reload")
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	w := &watcher{d: d, log: log}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if fsw, err := fsnotify.NewWatcher(); err != nil {
		log.Warn("cannot watch the config for changes; re-checking it periodically", "err", err, "interval", reloadPoll.String())
	} else {
		defer fsw.Close()
		w.fsw, events, errs = fsw, fsw.Events, fsw.Errors
	}
	w.sync()
	log.Debug("watching config", "file", d.rl.path, "dirs", w.dirs())
	var bucketChanged <-chan struct{} // nil without a users_dir in a bucket: never ready
	if d.ub != nil {
		bucketChanged = d.ub.changed
	}

	poll := time.NewTicker(reloadPoll)
	defer poll.Stop()
	// debounce fires reloadDebounce after the last relevant event, or
	// reloadMaxDelay after the first of a burst that never pauses.
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	// settle fires when bytes read before must be read again (reloadStable
	// later) to be applied; settleTrigger is what asked for that read.
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	settleTrigger := ""
	look := func(trigger string) {
		if settleTrigger == triggerSignal {
			trigger = triggerSignal // the operator's SIGHUP, still being answered
		}
		if res, due := d.reloadAndLog(log, trigger); res == reloadPending {
			settleTrigger = trigger
			settle.Reset(max(0, time.Until(due)))
		} else {
			settleTrigger = ""
			settle.Stop()
		}
		w.sync()
	}
	var pendingSince time.Time
	arm := func() {
		now := time.Now()
		if pendingSince.IsZero() {
			pendingSince = now
		}
		debounce.Reset(max(0, min(reloadDebounce, reloadMaxDelay-now.Sub(pendingSince))))
	}
	for {
		select {
		case <-quit:
			return
		case <-hup:
			log.Info("reload requested", "signal", "SIGHUP")
			if d.ub != nil {
				d.ub.pollNow() // its changes come back through bucketChanged
			}
			d.reloadToken(log)
			look(triggerSignal)
		case <-bucketChanged:
			// Objects are written whole: no debounce. A change of the
			// config file at the same time still waits for reloadStable.
			look(triggerBucket)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if w.relevant(ev.Name) {
				arm()
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// Typically an overflowed event queue: events were lost, so look.
			log.Warn("config watcher", "err", err)
			arm()
		case <-poll.C:
			d.reloadToken(log)
			w.sync()
			if d.changed() {
				// Through the debounce, so that a file caught half written by
				// the poll gets time to be finished.
				arm()
			}
		case <-debounce.C:
			pendingSince = time.Time{}
			look(triggerWatch)
		case <-settle.C:
			look(settleTrigger)
		}
	}
}

// reloadAndLog reloads and logs a failure: every error (each FieldError
// with its file and line) at error level, once per distinct content unless
// the operator asked again with SIGHUP.
func (d *Daemon) reloadAndLog(log *slog.Logger, trigger string) (reloadResult, time.Time) {
	res, due, err := d.reload(trigger)
	switch res {
	case reloadApplied:
		d.metrics.Reload(true)
	case reloadFailed:
		d.metrics.Reload(false)
	}
	switch {
	case res == reloadUnchanged && trigger == triggerSignal:
		log.Info("config unchanged", "trigger", trigger)
	case res == reloadUnchanged:
		log.Debug("config unchanged", "trigger", trigger)
	case res == reloadFailed, res == reloadStillFailed && trigger == triggerSignal:
		// config caps the list (config.MaxErrors, then "and N more
		// problems"): a file of garbage is a page of log, not a flood.
		n := 0
		for _, e := range flatten(err) {
			log.Error("invalid config", "err", e.Error())
			if more, ok := e.(*config.MoreErrors); ok {
				n += more.N
			} else {
				n++
			}
		}
		log.Error("reload failed, keeping the previous config", "trigger", trigger, "errors", n)
	case res == reloadPending:
		log.Debug("config changed; applying it once a read after "+reloadStable.String()+" sees the same bytes", "trigger", trigger)
	}
	return res, due
}

// changed reports whether the files differ from both the config in force
// and the last failed content.
func (d *Daemon) changed() bool {
	r := &d.rl
	r.mu.Lock()
	defer r.mu.Unlock()
	sum := d.readSnapshot(r.cur.UsersDir).Sum
	return sum != r.sum && sum != r.badSum
}

// loadOptions are what a load of the config file reads besides local
// files: the objects of a users_dir in a bucket as last polled. A daemon
// without a poller passes an empty set, so that a config that now names a
// bucket fails to load (the poller starts only with the daemon) rather
// than loading without the users_dir's users.
func (d *Daemon) loadOptions() config.LoadOptions {
	if d.ub == nil {
		return config.LoadOptions{Objects: &config.UserObjects{}}
	}
	return config.LoadOptions{Objects: d.ub.current()}
}

// readSnapshot is config.ReadSnapshot of the config file with usersDir,
// with the bucket's objects as last polled.
func (d *Daemon) readSnapshot(usersDir string) config.Snapshot {
	return config.ReadSnapshotWith(d.rl.path, usersDir, d.loadOptions())
}

// flatten lists the errors joined in err (errors.Join nests).
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flatten(e)...)
	}
	return out
}

// watcher keeps fsnotify watching the folders that matter: the config
// file's, those of the symlinks it resolves through and of its target
// (a Kubernetes ConfigMap swaps a "..data" symlink; an editor renames a new
// file over the old), and users_dir. Folders, not files: a watch on a file
// follows the inode an editor's rename or a symlink swap replaces.
type watcher struct {
	d   *Daemon
	log *slog.Logger
	fsw *fsnotify.Watcher // nil: events unavailable, polling only

	names    map[string]bool // paths whose events matter
	usersDir string          // absolute; every event in it matters
}

// targets computes the folders to watch and the paths that matter.
func (w *watcher) targets() (dirs, names []string, usersDir string) {
	w.d.rl.mu.Lock()
	ud := w.d.rl.cur.UsersDir
	w.d.rl.mu.Unlock()
	add := func(p string) {
		names = append(names, p)
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, p := range []string{w.d.rl.path, ud} {
		if p == "" || config.IsBucketURL(p) { // a bucket is polled (users_bucket.go)
			continue
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			continue
		}
		add(abs)
		links, target := linkChain(abs)
		for _, l := range links {
			add(l)
		}
		add(target)
		if p == ud {
			usersDir = abs
			dirs = append(dirs, abs)
		}
	}
	slices.Sort(dirs)
	return slices.Compact(dirs), names, usersDir
}

// sync points the watches at the current targets. Folders that do not
// exist yet are retried on the next sync; the poll covers them meanwhile.
func (w *watcher) sync() {
	dirs, names, usersDir := w.targets()
	w.names = make(map[string]bool, len(names))
	for _, n := range names {
		w.names[n] = true
	}
	w.usersDir = usersDir
	if w.fsw == nil {
		return
	}
	have := w.fsw.WatchList()
	for _, dir := range have {
		if !slices.Contains(dirs, dir) {
			_ = w.fsw.Remove(dir) // already gone when the folder was deleted
		}
	}
	for _, dir := range dirs {
		if slices.Contains(have, dir) {
			continue
		}
		if err := w.fsw.Add(dir); err != nil {
			w.log.Debug("cannot watch folder yet", "dir", dir, "err", err)
		}
	}
}

func (w *watcher) dirs() []string {
	if w.fsw == nil {
		return nil
	}
	return w.fsw.WatchList()
}

// relevant reports whether an event on path may change the config.
func (w *watcher) relevant(path string) bool {
	path = filepath.Clean(path)
	return w.names[path] || w.usersDir != "" && filepath.Dir(path) == w.usersDir
}

// maxLinks bounds symlink resolution, as the kernel's ELOOP does.
const maxLinks = 40

// linkChain resolves the absolute path p one component at a time and
// returns every symlink met on the way (as the path of the link itself)
// and the final target. A missing component ends the walk: the target is
// then the path as far as it could be resolved, joined to the rest.
func linkChain(p string) (links []string, target string) {
	rest := strings.Split(strings.TrimPrefix(filepath.Clean(p), "/"), "/")
	cur := "/"
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(next)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			if err != nil {
				return links, filepath.Join(append([]string{next}, rest...)...)
			}
			cur = next
			continue
		}
		dest, err := os.Readlink(next)
		if hops++; err != nil || hops > maxLinks {
			return links, filepath.Join(append([]string{next}, rest...)...)
		}
		links = append(links, next)
		if filepath.IsAbs(dest) {
			cur = "/"
		}
		rest = append(strings.Split(dest, "/"), rest...)
	}
	return links, cur
}

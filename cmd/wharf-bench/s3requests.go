package main

// The s3requests row (issue 14, item 7): the S3 requests an upload costs
// with events on, and how many of them the fleet machinery adds. "The
// fleet machinery may add at most 3 requests per upload beyond the data's
// own."
//
// Two wharfs on the s3 rows' versitygw, one after the other, each fresh
// for each run, each uploading -files files of -file-size through one
// OpenSSH sftp session into an empty home:
//
//   - without the fleet: storage.backend s3 alone, no hooks: the data's
//     own requests;
//   - with the fleet: the same plus state_url (outside storage.s3.prefix)
//     and one webhook hook on every upload, pointed at a receiver the
//     bench runs on loopback (it answers 200), event_lease at its default.
//
// The count is wharf_s3_requests_total{op} read from each daemon's
// /metrics before the session and once every delivery is made and deleted
// (the receiver has every event, wharf_hook_queue_depth is back to 0).
// Some of a fleet daemon's requests come per time, not per upload: the
// ban list every 3 s, the heartbeat and the takeover look every
// event_lease/4. They are counted over an idle window as long as the
// uploads' one, right after it, and taken out of the per-upload figures
// op by op; the output names them separately.

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/events"
)

const (
	// requestBound is issue 14's bound on what the fleet machinery adds
	// to one upload, in requests.
	requestBound = 3.0
	// s3ReqPrefix is the folder of the row's homes and state in the
	// bench's bucket: away from the other s3 rows' keys.
	s3ReqPrefix = "requests/"

	s3ReqFleetName = s3WharfName
	s3ReqPlainName = "wharf without fleet"

	// scrapeTimeout bounds one read of /metrics.
	scrapeTimeout = 10 * time.Second
	// receiverMaxBody bounds what the receiver reads of one delivery.
	receiverMaxBody = 1 << 20
)

// opCounts is wharf_s3_requests_total by op, or a difference or a share
// of such counts.
type opCounts map[string]float64

func (c opCounts) total() float64 {
	var t float64
	for _, v := range c {
		t += v
	}
	return t
}

// minus is c - o for every op of either.
func (c opCounts) minus(o opCounts) opCounts {
	d := opCounts{}
	for op, v := range c {
		d[op] = v
	}
	for op, v := range o {
		d[op] -= v
	}
	return d
}

// plus is c + o for every op of either.
func (c opCounts) plus(o opCounts) opCounts {
	return c.minus(o.times(-1))
}

func (c opCounts) times(f float64) opCounts {
	d := opCounts{}
	for op, v := range c {
		d[op] = v * f
	}
	return d
}

// format lists the ops that do not show as zero in verb ("%.0f" for
// counts, "%.2f" for shares, "%+.2f" for differences), largest first;
// "none" when every op shows as zero.
func (c opCounts) format(verb string) string {
	ops := slices.Collect(maps.Keys(c))
	slices.SortFunc(ops, func(a, b string) int {
		return cmp.Or(cmp.Compare(abs(c[b]), abs(c[a])), strings.Compare(a, b))
	})
	var parts []string
	for _, op := range ops {
		v := fmt.Sprintf(verb, c[op])
		if strings.Trim(v, "+-0.") == "" {
			continue
		}
		parts = append(parts, op+" "+v)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// metricSample is one sample line of the Prometheus text format.
type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text exposition format (what wharf's
// /metrics serves): `name{label="value",...} value [timestamp]` lines,
// comments and blank lines skipped.
func parseMetrics(r io.Reader) ([]metricSample, error) {
	var out []metricSample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", n, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}

func parseSample(line string) (metricSample, error) {
	s := metricSample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return s, fmt.Errorf("no value in %q", line)
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		rest, err := parseLabels(line[1:], s.labels)
		if err != nil {
			return s, fmt.Errorf("%s: %w", s.name, err)
		}
		line = rest
	}
	f := strings.Fields(line)
	if len(f) == 0 || len(f) > 2 {
		return s, fmt.Errorf("%s: want a value and at most a timestamp, got %q", s.name, line)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, fmt.Errorf("%s: %w", s.name, err)
	}
	s.value = v
	return s, nil
}

// parseLabels reads `name="value",...}` into into and returns what
// follows the closing brace. Values may hold \\, \" and \n escapes.
func parseLabels(in string, into map[string]string) (string, error) {
	for {
		in = strings.TrimLeft(in, " \t,")
		if in == "" {
			return "", errors.New("labels not closed")
		}
		if in[0] == '}' {
			return in[1:], nil
		}
		eq := strings.IndexByte(in, '=')
		if eq <= 0 || eq+1 >= len(in) || in[eq+1] != '"' {
			return "", fmt.Errorf("malformed label at %q", in)
		}
		name := strings.TrimSpace(in[:eq])
		in = in[eq+2:]
		var v strings.Builder
		closed := false
		for i := 0; i < len(in); i++ {
			switch c := in[i]; {
			case c == '"':
				in, closed = in[i+1:], true
			case c == '\\' && i+1 < len(in):
				i++
				switch in[i] {
				case 'n':
					v.WriteByte('\n')
				default:
					v.WriteByte(in[i])
				}
				continue
			default:
				v.WriteByte(c)
				continue
			}
			break
		}
		if !closed {
			return "", fmt.Errorf("label %s: value not closed", name)
		}
		into[name] = v.String()
	}
}

// wharfScrape is what the row reads of a daemon's /metrics.
type wharfScrape struct {
	requests opCounts // wharf_s3_requests_total by op
	// The hooks' figures, summed over hooks: wharf_hook_queue_depth and
	// wharf_hook_deliveries_total by outcome.
	depth                      float64
	delivered, failed, dropped float64
}

func readScrape(samples []metricSample) wharfScrape {
	w := wharfScrape{requests: opCounts{}}
	for _, s := range samples {
		switch s.name {
		case "wharf_s3_requests_total":
			w.requests[s.labels["op"]] += s.value
		case "wharf_hook_queue_depth":
			w.depth += s.value
		case "wharf_hook_deliveries_total":
			switch s.labels["outcome"] {
			case "delivered":
				w.delivered += s.value
			case "failed":
				w.failed += s.value
			case "dropped":
				w.dropped += s.value
			}
		}
	}
	return w
}

// scrapeMetrics reads the daemon's /metrics on its loopback admin port.
func scrapeMetrics(ctx context.Context, hc *http.Client, port int) (wharfScrape, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return wharfScrape{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return wharfScrape{}, fmt.Errorf("read %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return wharfScrape{}, fmt.Errorf("read %s: %s", url, resp.Status)
	}
	samples, err := parseMetrics(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return wharfScrape{}, fmt.Errorf("read %s: %w", url, err)
	}
	return readScrape(samples), nil
}

// hookReceiver is the fleet wharf's webhook endpoint: it answers 200 to
// every POST and counts them, and the distinct event ids among them.
type hookReceiver struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{} // closed when Serve returned

	mu    sync.Mutex
	posts int
	ids   map[string]bool // bounded by the uploads of one run: reset clears it
}

func startHookReceiver() (*hookReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	h := &hookReceiver{ln: ln, done: make(chan struct{}), ids: map[string]bool{}}
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(h.done)
		_ = h.srv.Serve(ln) // ErrServerClosed after stop
	}()
	return h, nil
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, receiverMaxBody))
	h.mu.Lock()
	h.posts++
	h.ids[r.Header.Get(events.HeaderDelivery)] = true
	h.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (h *hookReceiver) url() string { return "http://" + h.ln.Addr().String() + "/hook" }

// counts returns the POSTs and distinct event ids since the last reset.
func (h *hookReceiver) counts() (posts, ids int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.posts, len(h.ids)
}

func (h *hookReceiver) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.posts, h.ids = 0, map[string]bool{}
}

// stop shuts the receiver down and waits for its goroutine.
func (h *hookReceiver) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		_ = h.srv.Close()
	}
	<-h.done
}

// reqWindow is what a daemon sent the store in one window of time.
type reqWindow struct {
	requests opCounts
	length   time.Duration
}

// reqRun is one daemon's run: n uploads (until every delivery was made),
// then an idle window as long.
type reqRun struct {
	n             int
	uploads, idle reqWindow
	cpu           time.Duration // the daemon's during the uploads' window
	failed        float64       // failed delivery attempts (retried)
}

// perUpload is the uploads' window less the idle one, op by op, per
// upload: the idle window, as long, holds the requests that come per
// time (ban list, heartbeat, takeover look), not per upload.
func (r reqRun) perUpload() opCounts {
	return r.uploads.requests.minus(r.idle.requests).times(1 / float64(r.n))
}

// sumRuns adds runs' windows, uploads and failed attempts up, for the
// breakdown over every run.
func sumRuns(runs []reqRun) reqRun {
	s := reqRun{uploads: reqWindow{requests: opCounts{}}, idle: reqWindow{requests: opCounts{}}}
	for _, r := range runs {
		s.n += r.n
		s.uploads.requests = s.uploads.requests.plus(r.uploads.requests)
		s.uploads.length += r.uploads.length
		s.idle.requests = s.idle.requests.plus(r.idle.requests)
		s.idle.length += r.idle.length
		s.failed += r.failed
	}
	return s
}

// withinBound reports whether what the fleet adds to an upload is within
// issue 14's bound, in words for the table.
func withinBound(extra float64) (bool, string) {
	if extra <= requestBound {
		return true, fmt.Sprintf("within the bound of %g", requestBound)
	}
	return false, fmt.Sprintf("OVER THE BOUND of %g", requestBound)
}

// perMinute is the window's request rate.
func perMinute(w reqWindow) float64 {
	if w.length <= 0 {
		return 0
	}
	return w.requests.total() / w.length.Minutes()
}

// fleetBackgroundPerMinute is what the design says an idle fleet daemon
// with hooks sends a minute: the ban list and the failure counts every
// 3 s, and every lease/4 the
// heartbeat and the takeover look (two listings).
func fleetBackgroundPerMinute(lease time.Duration) float64 {
	return 2*time.Minute.Seconds()/3 + 3*time.Minute.Seconds()/(lease/4).Seconds()
}

// s3ReqVariant is one of the row's two wharfs.
type s3ReqVariant struct {
	name   string
	prefix string // its homes' folder in the bucket
	fleet  bool
	daemon *s3Daemon
}

// s3RequestsName is the row's name before its figures are known.
func (b *bench) s3RequestsName() string {
	return fmt.Sprintf("S3 requests per %s upload, events on: wharf with the fleet (state_url, one webhook on every upload) vs without (storage.backend s3 alone, no hooks); %s uploads in one OpenSSH sftp session, per-time requests taken out",
		formatBytes(int64(b.o.fileSize)), thousands(b.o.files))
}

// measureRequests runs the s3requests row: -runs times each wharf,
// alternating which goes first.
func (r *s3Runner) measureRequests(ctx context.Context, env *s3Env, st s3Settings) error {
	b := r.b
	recv, err := startHookReceiver()
	if err != nil {
		return err
	}
	defer recv.stop()
	stateURL := "s3://" + s3Bucket + "/" + s3ReqPrefix + "state/"
	variants := []*s3ReqVariant{
		{name: s3ReqPlainName, prefix: s3ReqPrefix + "plain/"},
		{name: s3ReqFleetName, prefix: s3ReqPrefix + "fleet/", fleet: true},
	}
	for _, v := range variants {
		wo := s3WharfOptions{prefix: v.prefix, admin: true}
		dir := "wharf-s3-plain"
		if v.fleet {
			wo.stateURL, wo.webhook, dir = stateURL, recv.url(), "wharf-s3-fleet"
		}
		if v.daemon, err = newWharfS3(b.ws, b.wharfBin, b.client, st, v.name, dir, wo); err != nil {
			return err
		}
	}
	var batch strings.Builder
	for i := range b.o.files {
		fmt.Fprintf(&batch, "put %s %s\n", strconv.Quote(filepath.Join(b.small, smallName(i))), smallName(i))
	}
	batchPath, err := r.s3Batch("s3-requests.batch", batch.String())
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()

	row := r.result[r.requests]
	runs := map[string][]reqRun{}
	for i := range b.o.runs {
		for j := range variants {
			v := variants[(i+j)%len(variants)]
			m, err := r.requestsOnce(ctx, env, hc, v, recv, batchPath)
			if err != nil {
				return fmt.Errorf("S3 requests through %s: %w", v.name, err)
			}
			runs[v.name] = append(runs[v.name], m)
			per := m.perUpload()
			cpu := m.cpu.Seconds() * 1e3 / float64(m.n)
			row.values[v.name] = append(row.values[v.name], per.total())
			row.cpu[v.name] = append(row.cpu[v.name], cpu)
			fmt.Fprintf(b.progress, "%-20s %-19s run %d/%d: %s uploads in %s, %.2f requests/upload (%s); idle %s after: %s; server CPU %s ms/upload\n",
				"S3 requests", v.name, i+1, b.o.runs, thousands(m.n), m.uploads.length.Round(time.Millisecond), per.total(), per.format("%.2f"),
				m.idle.length.Round(time.Millisecond), m.idle.requests.format("%.0f"), formatFigure(cpu))
		}
	}
	r.reportRequests(&row, runs[s3ReqPlainName], runs[s3ReqFleetName])
	r.result[r.requests] = row
	return nil
}

// requestsOnce starts v's wharf afresh, logs in once (what a daemon sets
// up then is not counted), uploads the files in one session, waits for
// every delivery, counts an idle window as long, and stops it.
func (r *s3Runner) requestsOnce(ctx context.Context, env *s3Env, hc *http.Client, v *s3ReqVariant, recv *hookReceiver, batch string) (reqRun, error) {
	b := r.b
	// An empty home: the uploads create their objects rather than
	// overwrite a previous run's. The posix backend's files are all
	// versitygw knows of them.
	home := env.store.objectPath(v.prefix)
	if err := os.RemoveAll(home); err != nil {
		return reqRun{}, fmt.Errorf("empty the home: %w", err)
	}
	g, err := v.daemon.run(ctx, nil)
	if err != nil {
		return reqRun{}, err
	}
	defer g.stop()
	admin, err := waitForListener(ctx, g.proc, "http")
	if err != nil {
		return reqRun{}, fmt.Errorf("admin listener: %w", err)
	}
	if _, err := b.client.run(ctx, g, b.loginBatch, loginTimeout); err != nil {
		return reqRun{}, fmt.Errorf("first login: %w", err)
	}
	n := b.o.files
	recv.reset()
	cpu0, err := b.proc.treeCPU(ctx, g.pid())
	if err != nil {
		return reqRun{}, err
	}
	before, err := scrapeMetrics(ctx, hc, admin)
	if err != nil {
		return reqRun{}, err
	}
	start := time.Now()
	if _, err := b.client.run(ctx, g, batch, 2*time.Minute+time.Duration(n)*100*time.Millisecond); err != nil {
		return reqRun{}, err
	}
	var after wharfScrape
	if v.fleet {
		after, err = waitDelivered(ctx, hc, admin, recv, before, n)
	} else {
		after, err = scrapeMetrics(ctx, hc, admin)
	}
	if err != nil {
		return reqRun{}, err
	}
	m := reqRun{n: n, uploads: reqWindow{requests: after.requests.minus(before.requests), length: time.Since(start)},
		failed: after.failed - before.failed}
	cpu1, err := b.proc.treeCPU(ctx, g.pid())
	if err != nil {
		return reqRun{}, err
	}
	m.cpu = cpu1 - cpu0
	if err := g.alive(); err != nil {
		return reqRun{}, err
	}
	if err := b.verifyMany(home); err != nil {
		return reqRun{}, err
	}

	idle0, err := scrapeMetrics(ctx, hc, admin)
	if err != nil {
		return reqRun{}, err
	}
	idleStart := time.Now()
	select {
	case <-time.After(m.uploads.length):
	case <-ctx.Done():
		return reqRun{}, ctx.Err()
	}
	idle1, err := scrapeMetrics(ctx, hc, admin)
	if err != nil {
		return reqRun{}, err
	}
	m.idle = reqWindow{requests: idle1.requests.minus(idle0.requests), length: time.Since(idleStart)}
	return m, g.alive()
}

// waitDelivered waits until the fleet wharf has delivered and deleted
// every event of the n uploads: the receiver has n POSTs of n distinct
// events, the daemon counts n more delivered and its queue depth is 0
// (a delivery leaves the count only once its object is deleted). It
// returns the scrape that saw it.
func waitDelivered(ctx context.Context, hc *http.Client, admin int, recv *hookReceiver, before wharfScrape, n int) (wharfScrape, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute+time.Duration(n)*50*time.Millisecond)
	defer cancel()
	for {
		s, err := scrapeMetrics(ctx, hc, admin)
		if err != nil {
			return s, err
		}
		posts, ids := recv.counts()
		delivered := int(s.delivered - before.delivered)
		if dropped := s.dropped - before.dropped; dropped > 0 {
			return s, fmt.Errorf("%.0f events dropped, not queued for the hook", dropped)
		}
		if posts >= n && delivered >= n && s.depth == 0 {
			if ids != n || delivered != n {
				return s, fmt.Errorf("%d uploads: the receiver got %d POSTs of %d distinct events, the daemon counts %d delivered", n, posts, ids, delivered)
			}
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, fmt.Errorf("waiting for %d deliveries: %w (the receiver got %d, the daemon counts %d delivered, queue depth %.0f)",
				n, ctx.Err(), posts, delivered, s.depth)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// reportRequests names the row by its verdict and writes the notes under
// the table: the breakdown by op over every run, what was taken out as
// per time, and what the count holds.
func (r *s3Runner) reportRequests(row *result, plain, fleet []reqRun) {
	if len(plain) == 0 || len(fleet) == 0 {
		return
	}
	worst := 0.0
	for i := range min(len(plain), len(fleet)) {
		worst = max(worst, fleet[i].perUpload().total()-plain[i].perUpload().total())
	}
	p, f := sumRuns(plain), sumRuns(fleet)
	pp, fp := p.perUpload(), f.perUpload()
	extra := fp.minus(pp)
	ok, verdict := withinBound(worst)
	row.name += fmt.Sprintf(": the fleet machinery adds %+.2f a upload, %s", extra.total(), verdict)
	if !ok {
		row.failed = fmt.Sprintf("the fleet machinery adds %.2f S3 requests to an upload in its worst run, over the bound of %g (issue 14)", worst, requestBound)
	}
	row.notes = append(row.notes,
		fmt.Sprintf("S3 requests per %s upload, over %d run(s) of %s uploads each (every request wharf sent the store, retries included, from its wharf_s3_requests_total):",
			formatBytes(int64(r.b.o.fileSize)), len(fleet), thousands(r.b.o.files)),
		fmt.Sprintf("- %s (storage.backend s3, no hooks, no state_url): %.2f: %s", s3ReqPlainName, pp.total(), pp.format("%.2f")),
		fmt.Sprintf("- %s (the same plus state_url outside storage.s3.prefix, one webhook hook on every upload, event_lease %s): %.2f: %s",
			s3ReqFleetName, config.DefaultEventLease, fp.total(), fp.format("%.2f")),
		fmt.Sprintf("- fleet machinery: %+.2f a upload (worst run %+.2f), bound %g: %s; by op: %s", extra.total(), worst, requestBound, verdict, extra.format("%+.2f")),
		fmt.Sprintf("- taken out as per time, not per upload: what each wharf sent over an idle window as long as its uploads' window, right after it: %s: %s in %s (%.1f a minute); %s: %s in %s. "+
			"Expected of the fleet: two ListObjectsV2 (the bans, the failure counts) every 3 s, one PutObject (heartbeat) and two ListObjectsV2 (the takeover look) every event_lease/4 (%s): %.0f a minute",
			s3ReqFleetName, f.idle.requests.format("%.0f"), f.idle.length.Round(time.Second), perMinute(f.idle),
			s3ReqPlainName, p.idle.requests.format("%.0f"), p.idle.length.Round(time.Second),
			config.DefaultEventLease/4, fleetBackgroundPerMinute(config.DefaultEventLease)),
		"- the uploads' window runs from before the sftp session (its login included: one session for all the uploads) until every delivery was made and its object deleted "+
			"(the receiver had one POST per upload, each a distinct event; the daemon's wharf_hook_queue_depth back to 0); users_dir is not set (its poll would be one ListObjectsV2 a users_poll, per time too)",
	)
	if f.failed > 0 {
		row.notes = append(row.notes, fmt.Sprintf("- %.0f delivery attempts failed and were retried", f.failed))
	}
}

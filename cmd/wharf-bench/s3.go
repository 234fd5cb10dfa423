package main

// The s3 rows (issue 13): wharf on `storage.backend: s3` against one local
// versitygw, with the OpenSSH sftp client, side by side with what the
// store gives a Go program that talks S3 directly (the ceiling for any
// gateway) and with `rclone serve sftp` on the same bucket.
//
//   - s3: a -size upload and download through each, wharf's RSS growth
//     during the upload next to the memory formula of docs/s3.md, the S3
//     requests of each of wharf's runs (from its metrics), and the same
//     transfers through the same wharf binary on local storage: what the
//     SFTP side costs on these cores without any store;
//   - s3list: listing a folder of -list-entries objects, wharf (sftp
//     `ls -1f`) against the direct client's paginated ListObjectsV2, and
//     wharf's RSS growth meanwhile.
//
// One versitygw serves every s3 row, its data under the work dir (tmpfs
// when -dir is /dev/shm, the default where it exists). The first s3 row
// measures them all and stops what it started; the others return what it
// measured, so that teardown has one owner.

import (
	"context"
	"crypto/rand"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"go/build"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wharf-sftp/wharf/internal/procstat"
)

const (
	versitygwModule  = "github.com/versity/versitygw"
	versitygwVersion = "v1.8.0" // what internal/s3test and docs/s3.md are written against
	s3Region         = "us-east-1"
	s3Bucket         = "wharf-bench"
	// s3ListPrefix is the folder the s3list row lists; its objects are
	// named by entryName, as the list row's files are.
	s3ListPrefix = "list/"
	// s3CreateWorkers bounds the PutObjects in flight while the s3list
	// row's objects are created.
	s3CreateWorkers = 32
	// s3DownKey is the object every download reads.
	s3DownKey = "down.bin"

	s3WharfName  = "wharf"
	s3DirectName = "direct S3"
	s3OneGetName = "one GET"
	s3RcloneName = "rclone serve sftp"
	s3LocalName  = "wharf on local storage"
)

// s3MemoryFormula is docs/s3.md's bound on one upload's memory in wharf's
// s3 store: the parts in flight plus the one being filled, and a reorder
// window of two parts.
func s3MemoryFormula(partSize int64, concurrency int) int64 {
	return partSize*int64(concurrency+1) + 2*partSize
}

// s3MemoryFormulaText spells the formula out with its figures.
func s3MemoryFormulaText(partSize int64, concurrency int) string {
	p := formatBytes(partSize)
	return fmt.Sprintf("%s × (%d + 1) + 2 × %s = %s", p, concurrency, p, formatBytes(s3MemoryFormula(partSize, concurrency)))
}

// s3Rows says whether any s3 row is selected.
func (o options) s3Rows() bool { return o.has("s3") || o.has("s3list") || o.has("s3requests") }

// versitygwCandidates lists where versitygw is looked for, in order: the
// -versitygw flag, else $VERSITYGW (then only that one, as internal/s3test
// does), else the one on PATH, then $(go env GOPATH)/bin, where `go
// install` puts it.
func versitygwCandidates(flagPath, envPath, onPath, gopath string) []string {
	switch {
	case flagPath != "":
		return []string{flagPath}
	case envPath != "":
		return []string{envPath}
	}
	var c []string
	if onPath != "" {
		c = append(c, onPath)
	}
	if gopath != "" {
		if first, _, _ := strings.Cut(gopath, string(filepath.ListSeparator)); first != "" {
			c = append(c, filepath.Join(first, "bin", "versitygw"))
		}
	}
	return c
}

// findVersitygw returns the first candidate that is a versitygw build and
// its module version; another version than the one the tests use is
// measured all the same, and named in the rows.
func findVersitygw(flagPath string) (path, version string, err error) {
	onPath, _ := exec.LookPath("versitygw")
	var tried []string
	for _, p := range versitygwCandidates(flagPath, os.Getenv("VERSITYGW"), onPath, build.Default.GOPATH) {
		info, err := buildinfo.ReadFile(p)
		if err != nil {
			tried = append(tried, err.Error())
			continue
		}
		if info.Main.Path != versitygwModule {
			tried = append(tried, fmt.Sprintf("%s: main module is %q, not %s", p, info.Main.Path, versitygwModule))
			continue
		}
		return p, info.Main.Version, nil
	}
	return "", "", fmt.Errorf("the s3 rows need versitygw (`go install %s/cmd/versitygw@%s`, or -versitygw PATH; leave s3 and s3list out of -rows to run without): %s",
		versitygwModule, versitygwVersion, orUnknown(strings.Join(tried, "; ")))
}

// versitygwArgs is versitygw's command line: the posix backend over data,
// on a loopback port.
func versitygwArgs(port int, iamDir, dataDir string) []string {
	return []string{"--port", "127.0.0.1:" + strconv.Itoa(port), "--region", s3Region, "--iam-dir", iamDir, "posix", dataDir}
}

// envUnsetArgs is `env`'s arguments that remove from environ every
// variable drop selects. The bench starts its servers through startProcess,
// which adds to its own environment; a server that must not see some of
// it runs as `env -u NAME ... BIN ARGS`, which execs BIN in the same
// process, so its pid, CPU time and memory are the server's.
func envUnsetArgs(environ []string, drop func(name string) bool) []string {
	var names []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if name != "" && drop(name) && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	args := make([]string, 0, 2*len(names))
	for _, n := range names {
		args = append(args, "-u", n)
	}
	return args
}

// s3Store is the running versitygw and its root user.
type s3Store struct {
	proc                 *process
	endpoint             string
	accessKey, secretKey string
	dataDir              string // the posix backend: object K of bucket B is dataDir/B/K
	version              string
}

// objectPath is where the posix backend keeps key of the bench's bucket.
func (s *s3Store) objectPath(key string) string {
	return filepath.Join(s.dataDir, s3Bucket, filepath.FromSlash(key))
}

// startVersitygw starts versitygw with its IAM and data folders in the
// work dir, seeing only PATH, HOME and its root keys of the environment:
// it reads dozens of VGW_* variables, which a developer's shell must not
// change under the figures. A port taken between probe and bind is retried.
func startVersitygw(ctx context.Context, ws *workspace, bin, version string) (*s3Store, error) {
	iam, err := ws.mkdir("s3", "iam")
	if err != nil {
		return nil, err
	}
	data, err := ws.mkdir("s3", "data")
	if err != nil {
		return nil, err
	}
	s := &s3Store{accessKey: "wharf-bench-" + randomHex(4), secretKey: randomHex(20), dataDir: data, version: version}
	env := []string{"HOME=" + iam, "ROOT_ACCESS_KEY=" + s.accessKey, "ROOT_SECRET_KEY=" + s.secretKey}
	keep := []string{"PATH", "HOME", "ROOT_ACCESS_KEY", "ROOT_SECRET_KEY"}
	unset := envUnsetArgs(os.Environ(), func(name string) bool { return !slices.Contains(keep, name) })
	var lastErr error
	for try := range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		args := append(append(slices.Clone(unset), bin), versitygwArgs(port, iam, data)...)
		p, err := startProcessEnv(env, "versitygw", ws.path("s3", fmt.Sprintf("versitygw-%d.log", try+1)), "env", args...)
		if err != nil {
			return nil, err
		}
		s.proc, s.endpoint = p, "http://127.0.0.1:"+strconv.Itoa(port)
		if lastErr = waitS3Ready(ctx, p, s.endpoint); lastErr == nil {
			return s, nil
		}
		p.stop()
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("start versitygw: %w", lastErr)
}

// waitS3Ready polls until the store answers any HTTP request (an anonymous
// GET / is refused, which is an answer) naming versitygw: another process
// that took the port would answer otherwise.
func waitS3Ready(ctx context.Context, p *process, endpoint string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if server := resp.Header.Get("Server"); server != "VERSITYGW" {
				return fmt.Errorf("%s is answered by %q, not versitygw", endpoint, server)
			}
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("versitygw exited at start-up (%v); end of its log:\n%s", p.err, p.logTail(20))
		case <-ctx.Done():
			return fmt.Errorf("versitygw not ready on %s: %w; end of its log:\n%s", endpoint, ctx.Err(), p.logTail(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}

// s3Settings are the knobs wharf, rclone and the direct client share.
type s3Settings struct {
	endpoint             string
	accessKey, secretKey string
	partSize             int64
	concurrency          int
}

// s3WharfOptions are what a row adds to the s3 wharf's config; the zero
// value is the main wharf of the s3 rows.
type s3WharfOptions struct {
	// prefix is storage.s3.prefix, under which the homes lie; "": the
	// bucket's root.
	prefix string
	// admin adds the admin listener (/metrics) on a free loopback port,
	// adminPort, which newWharfS3 picks; its "listening" line names it
	// too (proto "http").
	admin     bool
	adminPort int
	// stateURL is state_url, a fleet's shared state; "": none.
	stateURL string
	// webhook, when set, is the URL of one hook on every upload.
	webhook string
}

// s3HookName is the hook s3WharfOptions.webhook configures.
const s3HookName = "bench"

// s3WharfConfig is the config (see wharfConfig) of a wharf on
// `storage.backend: s3`, listening on port: every home in the bench's
// bucket under wo.prefix, the user's at its root, plus what wo adds. With
// wo.adminPort, its metrics count the S3 requests of each run.
func s3WharfConfig(port int, state, secretFile string, st s3Settings, c client, wo s3WharfOptions) string {
	cfg := fmt.Sprintf(`# written by wharf-bench for the s3 rows
state_dir: %s
shutdown_grace: 5s
log: {level: info, format: json}
sftp:
  listen: "127.0.0.1:%d"
  host_keys: []
storage:
  backend: s3
  s3:
    bucket: %s
    prefix: %s
    region: %s
    endpoint: %s
    path_style: true
    access_key_id: %s
    secret_access_key_file: %s
    part_size: %d
    upload_concurrency: %d
users:
  - name: %s
    home: /
    public_keys: [%s]
`, strconv.Quote(state), port, s3Bucket, strconv.Quote(wo.prefix), s3Region, strconv.Quote(st.endpoint), strconv.Quote(st.accessKey),
		strconv.Quote(secretFile), st.partSize, st.concurrency, strconv.Quote(c.user), strconv.Quote(c.publicKey))
	if wo.adminPort != 0 {
		cfg += fmt.Sprintf("admin: {listen: \"127.0.0.1:%d\"}\n", wo.adminPort)
	}
	if wo.stateURL != "" {
		cfg += "state_url: " + strconv.Quote(wo.stateURL) + "\n"
	}
	if wo.webhook != "" {
		cfg += fmt.Sprintf("hooks:\n  - name: %s\n    events: [upload]\n    webhook: {url: %s}\n", s3HookName, strconv.Quote(wo.webhook))
	}
	return cfg
}

// s3LocalConfig is the same wharf on local storage under data, listening
// on port: the SFTP side of wharf's s3 rows without the store, on the
// same cores (the work dir is tmpfs where /dev/shm exists).
func s3LocalConfig(port int, state, data string, c client) string {
	return fmt.Sprintf(`# written by wharf-bench for the s3 rows: the reference on local storage
state_dir: %s
shutdown_grace: 5s
log: {level: info, format: json}
sftp:
  listen: "127.0.0.1:%d"
  host_keys: []
storage: {backend: local, root: %s}
users:
  - name: %s
    home: /
    public_keys: [%s]
`, strconv.Quote(state), port, strconv.Quote(data), strconv.Quote(c.user), strconv.Quote(c.publicKey))
}

// s3Daemon starts one gateway (wharf or rclone) on a fixed port, again
// for every measured run: each run's RSS growth is then that run's own,
// not hidden by what an earlier run left in the heap (the load rows' idle
// daemon is fresh per run for the same reason). The port and host key
// stay, so the client's known_hosts entry stays valid.
type s3Daemon struct {
	name    string
	port    int
	starts  int
	start   func(ctx context.Context, logPath string) (*process, error)
	logDir  string
	metrics string // wharf's metrics URL, or ""
	root    string // the local wharf's storage root, or ""
}

// run stops old (if any) and starts the daemon afresh.
func (d *s3Daemon) run(ctx context.Context, old *server) (*server, error) {
	if old != nil {
		old.stop()
	}
	d.starts++
	p, err := d.start(ctx, filepath.Join(d.logDir, fmt.Sprintf("%s-%d.log", strings.ReplaceAll(d.name, " ", "-"), d.starts)))
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", d.name, err)
	}
	return &server{name: d.name, port: d.port, proc: p, sessionsInProcess: true}, nil
}

// newWharfS3 prepares the binary under test on the store, as the table's
// column name, its files in the work dir's folder dir.
func newWharfS3(ws *workspace, bin string, c client, st s3Settings, name, dir string, wo s3WharfOptions) (*s3Daemon, error) {
	logDir, err := ws.mkdir(dir)
	if err != nil {
		return nil, err
	}
	state, err := ws.mkdir(dir, "state")
	if err != nil {
		return nil, err
	}
	secret := ws.path(dir, "s3.secret")
	if err := os.WriteFile(secret, []byte(st.secretKey+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write wharf's s3 secret: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	metrics := ""
	if wo.admin {
		if wo.adminPort, err = freePort(); err != nil {
			return nil, err
		}
		metrics = "http://127.0.0.1:" + strconv.Itoa(wo.adminPort) + "/metrics"
	}
	cfgPath := ws.path(dir, "wharf.yaml")
	if err := os.WriteFile(cfgPath, []byte(s3WharfConfig(port, state, secret, st, c, wo)), 0o600); err != nil {
		return nil, fmt.Errorf("write wharf's s3 config: %w", err)
	}
	return &s3Daemon{name: name, port: port, logDir: logDir, metrics: metrics, start: serveWharf(name+" (s3)", bin, cfgPath)}, nil
}

// serveWharf starts `bin serve` on cfgPath and waits for its SFTP listener.
func serveWharf(what, bin, cfgPath string) func(ctx context.Context, logPath string) (*process, error) {
	return func(ctx context.Context, logPath string) (*process, error) {
		p, err := startProcess(what, logPath, bin, "serve", "--config", cfgPath)
		if err != nil {
			return nil, err
		}
		if _, err := waitForListener(ctx, p, "sftp"); err != nil {
			p.stop()
			return nil, err
		}
		return p, nil
	}
}

// newWharfLocal prepares the binary under test on local storage, holding
// the download's file (a hard link to big, else a copy) as s3DownKey.
func newWharfLocal(ws *workspace, bin string, c client, big string) (*s3Daemon, error) {
	dir, err := ws.mkdir("wharf-local")
	if err != nil {
		return nil, err
	}
	state, err := ws.mkdir("wharf-local", "state")
	if err != nil {
		return nil, err
	}
	data, err := ws.mkdir("wharf-local", "data")
	if err != nil {
		return nil, err
	}
	if err := linkOrCopy(big, filepath.Join(data, s3DownKey)); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfgPath := ws.path("wharf-local", "wharf.yaml")
	if err := os.WriteFile(cfgPath, []byte(s3LocalConfig(port, state, data, c)), 0o600); err != nil {
		return nil, fmt.Errorf("write the local wharf's config: %w", err)
	}
	return &s3Daemon{name: s3LocalName, port: port, logDir: dir, root: data, start: serveWharf("wharf (local)", bin, cfgPath)}, nil
}

// s3Requests reads wharf's wharf_s3_requests_total counters, by op, from
// its metrics at url.
func s3Requests(ctx context.Context, url string) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s3RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("wharf's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("wharf's metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("wharf's metrics: %w", err)
	}
	return parseS3Requests(string(body)), nil
}

// parseS3Requests picks the wharf_s3_requests_total{op="..."} samples out
// of Prometheus text.
func parseS3Requests(text string) map[string]int64 {
	const prefix = `wharf_s3_requests_total{op="`
	m := map[string]int64{}
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		op, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			m[op] = int64(v)
		}
	}
	return m
}

// formatRequests lists counts by op, sorted: "GetObject 1, HeadObject 2".
func formatRequests(m map[string]int64) string {
	ops := make([]string, 0, len(m))
	for op := range m {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	parts := make([]string, 0, len(ops))
	for _, op := range ops {
		parts = append(parts, fmt.Sprintf("%s %d", op, m[op]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// rcloneArgs serves the bucket over SFTP on a loopback port to the
// client's key, with rclone's defaults otherwise (no VFS cache: writes
// stream to the store, as wharf's do).
func rcloneArgs(port int, hostKey, authorizedKeys string) []string {
	return []string{"serve", "sftp", ":s3:" + s3Bucket,
		"--addr", "127.0.0.1:" + strconv.Itoa(port),
		"--key", hostKey, "--authorized-keys", authorizedKeys}
}

// rcloneEnv configures rclone's s3 backend for the store, with wharf's
// part size and concurrency, and keeps it away from the developer's
// rclone config and cache.
func rcloneEnv(st s3Settings, configFile, cacheDir string) []string {
	return []string{
		"RCLONE_CONFIG=" + configFile,
		"RCLONE_CACHE_DIR=" + cacheDir,
		"RCLONE_S3_PROVIDER=Other",
		"RCLONE_S3_ENDPOINT=" + st.endpoint,
		"RCLONE_S3_REGION=" + s3Region,
		"RCLONE_S3_FORCE_PATH_STYLE=true",
		"RCLONE_S3_ACCESS_KEY_ID=" + st.accessKey,
		"RCLONE_S3_SECRET_ACCESS_KEY=" + st.secretKey,
		// "B" is bytes to every rclone version (bare numbers are KiB).
		"RCLONE_S3_CHUNK_SIZE=" + strconv.FormatInt(st.partSize, 10) + "B",
		"RCLONE_S3_UPLOAD_CONCURRENCY=" + strconv.Itoa(st.concurrency),
	}
}

// rcloneDrops says which of the bench's variables rclone must not see:
// AWS_CA_BUNDLE, which makes rclone 1.60 (AWS SDK v1) refuse its own HTTP
// transport ("unable to load custom CA bundle"), and the developer's
// RCLONE_* settings other than the ones rcloneEnv sets.
func rcloneDrops(ours []string) func(string) bool {
	return func(name string) bool {
		if name == "AWS_CA_BUNDLE" {
			return true
		}
		if !strings.HasPrefix(name, "RCLONE_") {
			return false
		}
		return !slices.ContainsFunc(ours, func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
	}
}

// newRclone prepares `rclone serve sftp` on the bucket, or returns nil
// and why when rclone is not installed: a missing reference leaves its
// rows empty and says so, it does not stop the bench.
func newRclone(ws *workspace, bin string, c client, st s3Settings) (*s3Daemon, string, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, "rclone not installed (apt-get install rclone)", nil
	}
	dir, err := ws.mkdir("rclone")
	if err != nil {
		return nil, "", err
	}
	hostKey := ws.path("rclone", "host_ed25519_key")
	if _, err := writeKeyPair(hostKey, "wharf-bench-rclone"); err != nil {
		return nil, "", fmt.Errorf("rclone host key: %w", err)
	}
	authKeys := ws.path("rclone", "authorized_keys")
	if err := os.WriteFile(authKeys, []byte(c.publicKey+"\n"), 0o600); err != nil {
		return nil, "", fmt.Errorf("write rclone's authorized_keys: %w", err)
	}
	configFile := ws.path("rclone", "rclone.conf")
	if err := os.WriteFile(configFile, nil, 0o600); err != nil {
		return nil, "", fmt.Errorf("write rclone's empty config: %w", err)
	}
	cacheDir, err := ws.mkdir("rclone", "cache")
	if err != nil {
		return nil, "", err
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	env := rcloneEnv(st, configFile, cacheDir)
	args := append(envUnsetArgs(os.Environ(), rcloneDrops(env)), path)
	args = append(args, rcloneArgs(port, hostKey, authKeys)...)
	return &s3Daemon{name: s3RcloneName, port: port, logDir: dir, start: func(ctx context.Context, logPath string) (*process, error) {
		p, err := startProcessEnv(env, s3RcloneName, logPath, "env", args...)
		if err != nil {
			return nil, err
		}
		if _, err := p.waitForLog(ctx, func(line string) bool { return strings.Contains(line, "SFTP server listening on") }); err != nil {
			p.stop()
			return nil, err
		}
		return p, nil
	}}, "", nil
}

// rcloneVersion is `rclone version`'s first line, for the row's name.
func rcloneVersion(ctx context.Context, bin string) string {
	v, err := commandOutput(ctx, bin, "version")
	if err != nil {
		return "rclone"
	}
	return v
}

// s3Runner measures every s3 row in one go (see the file comment).
type s3Runner struct {
	b        *bench
	rows     []test // the selected rows, in table order
	ran      bool
	err      error
	result   map[string]result // by row name, filled as the rows are measured
	complete map[string]bool   // the rows whose measurement finished

	// The table's row names, set by s3Tests.
	upDirect, upRclone, upLocal, downDirect, downRclone, downOneGet, downLocal, list, requests string
	rcloneMissing                                                                              string // why the rclone rows are empty, or ""
	rcloneName                                                                                 string // its version line
	vgwBin, vgwVersion                                                                         string
	vgwErr                                                                                     error
	// storeCPU is versitygw's CPU per unit of work, by row and gateway,
	// for the summary the runner prints: the table's server CPU is the
	// gateway's.
	storeCPU map[string]map[string][]float64
	// gets is wharf's GetObject requests per download run.
	gets []float64
}

// s3Tests are the s3 and s3list rows.
func (b *bench) s3Tests() []test {
	if !b.o.s3Rows() {
		return nil
	}
	r := &s3Runner{b: b, result: map[string]result{}, complete: map[string]bool{}, storeCPU: map[string]map[string][]float64{}}
	// run checked that versitygw is there; an error here is reported by
	// the first row.
	r.vgwBin, r.vgwVersion, r.vgwErr = findVersitygw(b.o.versitygw)
	r.rcloneName = "rclone"
	if _, err := exec.LookPath(b.o.rclone); err != nil {
		r.rcloneMissing = "rclone not installed (apt-get install rclone)"
	} else {
		r.rcloneName = rcloneVersion(context.Background(), b.o.rclone)
	}
	size := formatBytes(int64(b.o.size))
	part, conc := int64(b.o.s3PartSize), b.o.s3Concurrency
	on := fmt.Sprintf("versitygw %s on %s", r.vgwVersion, fsType(b.ws.dir))
	gb := float64(b.o.size) / 1e9
	rcloneNote := ""
	if r.rcloneMissing != "" {
		rcloneNote = ": " + r.rcloneMissing + ", no figures"
	}
	r.upDirect = fmt.Sprintf("S3 upload %s, OpenSSH sftp: wharf vs a direct multipart upload (Go S3 client, %s parts, %d in flight; %s; wharf's memory formula %s)",
		size, formatBytes(part), conc, on, s3MemoryFormulaText(part, conc))
	r.upRclone = fmt.Sprintf("S3 upload %s, OpenSSH sftp: wharf vs rclone serve sftp (%s, same part size and concurrency, no VFS cache)%s", size, r.rcloneName, rcloneNote)
	r.downDirect = fmt.Sprintf("S3 download %s, OpenSSH sftp: wharf vs direct ranged GETs (Go S3 client, %s each, %d at once)", size, formatBytes(part), conc)
	r.downOneGet = fmt.Sprintf("S3 download %s, OpenSSH sftp: wharf vs one streaming GET (Go S3 client; what one stream gives, as wharf reads one)", size)
	r.downRclone = fmt.Sprintf("S3 download %s, OpenSSH sftp: wharf vs rclone serve sftp%s", size, rcloneNote)
	local := fmt.Sprintf("the same wharf binary on local storage (%s): the SFTP side alone, on the same cores", fsType(b.ws.dir))
	r.upLocal = fmt.Sprintf("S3 upload %s, OpenSSH sftp: wharf vs %s", size, local)
	r.downLocal = fmt.Sprintf("S3 download %s, OpenSSH sftp: wharf vs %s", size, local)
	r.list = fmt.Sprintf("S3 list a %s-object folder: wharf (sftp ls -1f) vs a direct paginated ListObjectsV2 (%s a page)",
		thousands(b.o.entries), thousands(s3ListPage))
	if b.o.has("s3") {
		for _, name := range []string{r.upDirect, r.upRclone, r.upLocal, r.downDirect, r.downOneGet, r.downRclone, r.downLocal} {
			r.rows = append(r.rows, test{name: name, unit: "MB/s", cpuUnit: "s/GB", cpuWork: gb})
		}
	}
	if b.o.has("s3list") {
		r.rows = append(r.rows, test{name: r.list, unit: "entries/s", cpuUnit: "µs/entry", cpuWork: float64(b.o.entries) / 1e6})
	}
	if b.o.has("s3requests") {
		r.requests = b.s3RequestsName()
		r.rows = append(r.rows, test{name: r.requests, unit: "S3 requests/upload", cpuUnit: "ms/upload", cpuWork: float64(b.o.files) / 1e3})
	}
	ts := slices.Clone(r.rows)
	for i := range ts {
		name := ts[i].name
		ts[i].measure = func(ctx context.Context, _ []*server) (result, error) { return r.get(ctx, name) }
	}
	return ts
}

// get returns the row's result, measuring every s3 row on the first call.
func (r *s3Runner) get(ctx context.Context, name string) (result, error) {
	if !r.ran {
		r.ran = true
		r.err = r.measureAll(ctx)
	}
	if r.complete[name] {
		return r.result[name], nil
	}
	if r.err != nil {
		return result{}, r.err
	}
	return result{}, errors.New("not measured") // a row s3Tests did not name
}

// s3Env is what the rows run against.
type s3Env struct {
	store  *s3Store
	direct *directS3
	// wharf and rclone (nil without rclone) are the running gateways,
	// restarted before each run by their daemons.
	wharf, rclone, local                   *server
	wharfDaemon, rcloneDaemon, localDaemon *s3Daemon
}

// gateways are the ways to the bucket that refs name (and wharf), in the
// order of a run's first repetition: the direct client's have no server,
// and rclone is left out when it is not running.
func (e *s3Env) gateways(refs map[string]string) []*server {
	gs := []*server{e.wharf}
	for _, name := range []string{s3DirectName, s3OneGetName, s3RcloneName, s3LocalName} {
		switch _, ok := refs[name]; {
		case !ok:
		case name == s3RcloneName:
			if e.rclone != nil {
				gs = append(gs, e.rclone)
			}
		case name == s3LocalName:
			if e.local != nil {
				gs = append(gs, e.local)
			}
		default:
			gs = append(gs, &server{name: name})
		}
	}
	return gs
}

// fresh restarts g if it is a gateway process and logs in once, so that
// what a daemon sets up on its first login is not counted to the run (as
// the load rows' warmUp does); it returns the new server.
func (e *s3Env) fresh(ctx context.Context, c client, loginBatch string, g *server) (*server, error) {
	var err error
	switch g.name {
	case s3WharfName:
		e.wharf, err = e.wharfDaemon.run(ctx, e.wharf)
		g = e.wharf
	case s3RcloneName:
		e.rclone, err = e.rcloneDaemon.run(ctx, e.rclone)
		g = e.rclone
	case s3LocalName:
		e.local, err = e.localDaemon.run(ctx, e.local)
		g = e.local
	default:
		return g, nil
	}
	if err != nil {
		return nil, err
	}
	if _, err := c.run(ctx, g, loginBatch, loginTimeout); err != nil {
		return nil, fmt.Errorf("first login to %s: %w", g.name, err)
	}
	return g, nil
}

// stop stops the gateways; the caller stops the store.
func (e *s3Env) stop() {
	for _, s := range []*server{e.wharf, e.rclone, e.local} {
		if s != nil {
			s.stop()
		}
	}
}

func (r *s3Runner) measureAll(ctx context.Context) error {
	b := r.b
	for _, t := range r.rows {
		r.result[t.name] = newResult(t)
	}
	bin, version := r.vgwBin, r.vgwVersion
	if r.vgwErr != nil {
		return r.vgwErr
	}
	if version != versitygwVersion {
		fmt.Fprintf(b.progress, "warning: %s is versitygw %s; docs/s3.md and the tests use %s\n", bin, version, versitygwVersion)
	}
	fmt.Fprintf(b.progress, "starting versitygw %s (%s) for the s3 rows, data under %s ...\n", version, bin, b.ws.path("s3", "data"))
	store, err := startVersitygw(ctx, b.ws, bin, version)
	if err != nil {
		return err
	}
	env := &s3Env{store: store}
	defer func() {
		env.stop()
		store.proc.stop()
	}()
	st := s3Settings{endpoint: store.endpoint, accessKey: store.accessKey, secretKey: store.secretKey,
		partSize: int64(b.o.s3PartSize), concurrency: b.o.s3Concurrency}
	env.direct = &directS3{c: newS3Client(st.endpoint, s3Region, st.accessKey, st.secretKey, s3CreateWorkers),
		bucket: s3Bucket, partSize: st.partSize, concurrency: st.concurrency}
	rctx, cancel := context.WithTimeout(ctx, s3RequestTimeout)
	_, err = env.direct.c.CreateBucket(rctx, &s3.CreateBucketInput{Bucket: aws.String(s3Bucket)})
	cancel()
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", s3Bucket, err)
	}

	if b.o.has("s3") || b.o.has("s3list") {
		if env.wharfDaemon, err = newWharfS3(b.ws, b.wharfBin, b.client, st, s3WharfName, "wharf-s3", s3WharfOptions{admin: true}); err != nil {
			return err
		}
		if env.wharf, err = env.wharfDaemon.run(ctx, nil); err != nil {
			return err
		}
	}
	if b.o.has("s3") && r.rcloneMissing == "" {
		fmt.Fprintf(b.progress, "starting %s on the same bucket ...\n", r.rcloneName)
		if env.rcloneDaemon, r.rcloneMissing, err = newRclone(b.ws, b.o.rclone, b.client, st); err != nil {
			return err
		}
		if env.rcloneDaemon != nil {
			if env.rclone, err = env.rcloneDaemon.run(ctx, nil); err != nil {
				return err
			}
		}
	}
	if r.rcloneMissing != "" && b.o.has("s3") {
		fmt.Fprintf(b.progress, "%s: the rclone rows stay empty\n", r.rcloneMissing)
	}
	if b.o.has("s3") {
		if env.localDaemon, err = newWharfLocal(b.ws, b.wharfBin, b.client, b.big); err != nil {
			return err
		}
		if env.local, err = env.localDaemon.run(ctx, nil); err != nil {
			return err
		}
	}
	for _, s := range []*server{env.wharf, env.rclone, env.local} {
		if s == nil {
			continue
		}
		// Proves the setup before the staging, which takes a while, and
		// records the host keys, as stage does.
		if _, err := b.client.run(ctx, s, b.loginBatch, loginTimeout); err != nil {
			return fmt.Errorf("first login to %s: %w", s.name, err)
		}
	}

	if b.o.has("s3") {
		fmt.Fprintf(b.progress, "uploading the download source (%s) with the direct client ...\n", formatBytes(int64(b.o.size)))
		if err := env.direct.upload(ctx, s3DownKey, b.big); err != nil {
			return err
		}
		for _, up := range []bool{true, false} {
			if err := r.measureTransfers(ctx, env, up); err != nil {
				return err
			}
			if up {
				r.complete[r.upDirect], r.complete[r.upRclone], r.complete[r.upLocal] = true, true, true
			} else {
				r.complete[r.downDirect], r.complete[r.downOneGet], r.complete[r.downRclone], r.complete[r.downLocal] = true, true, true, true
			}
		}
		if err := env.direct.remove(ctx, s3DownKey); err != nil {
			return err
		}
	}
	if b.o.has("s3list") {
		if err := r.measureList(ctx, env); err != nil {
			return err
		}
		r.complete[r.list] = true
	}
	if b.o.has("s3requests") {
		// Its wharfs run alone: the other rows' gateways are done.
		env.stop()
		if err := r.measureRequests(ctx, env, st); err != nil {
			return err
		}
		r.complete[r.requests] = true
	}
	r.printStoreCPU()
	return nil
}

// s3Batch writes an sftp batch file for the s3 rows.
func (r *s3Runner) s3Batch(name, content string) (string, error) {
	p := r.b.ws.path(name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		return "", fmt.Errorf("write batch %s: %w", name, err)
	}
	return p, nil
}

// uploadKey is the object a gateway's upload writes: each its own, so
// that none overwrites another's.
func uploadKey(gateway string) string {
	return "up-" + strings.ReplaceAll(gateway, " ", "-") + ".bin"
}

// measureTransfers runs the upload (or download) -runs times through each
// gateway, rotating which goes first, and fills the rows wharf/direct and
// wharf/rclone from the same runs of wharf.
func (r *s3Runner) measureTransfers(ctx context.Context, env *s3Env, upload bool) error {
	b := r.b
	// The row each reference's figures go to; wharf's go to every row
	// whose reference runs, its memory to the first, whose name holds
	// the formula.
	refs, first, what := map[string]string{s3DirectName: r.downDirect, s3OneGetName: r.downOneGet, s3RcloneName: r.downRclone,
		s3LocalName: r.downLocal}, r.downDirect, "download"
	if upload {
		refs, first, what = map[string]string{s3DirectName: r.upDirect, s3RcloneName: r.upRclone, s3LocalName: r.upLocal}, r.upDirect, "upload"
	}
	gb := float64(b.o.size) / 1e9
	for i := range b.o.runs {
		for j := range len(env.gateways(refs)) {
			gws := env.gateways(refs)
			g, err := env.fresh(ctx, b.client, b.loginBatch, gws[(i+j)%len(gws)])
			if err != nil {
				return err
			}
			m, err := r.transferOnce(ctx, env, g, upload)
			if err != nil {
				return fmt.Errorf("S3 %s through %s: %w", what, g.name, err)
			}
			cpu, storeCPU := m.gatewayCPU.Seconds()/gb, m.storeCPU.Seconds()/gb
			line := fmt.Sprintf("%-20s %-22s run %d/%d: %8.1f MB/s, gateway CPU %s s/GB",
				"S3 "+what, g.name, i+1, b.o.runs, m.rate, formatFigure(cpu))
			if g.name != s3LocalName { // which uses no store
				r.addStoreCPU(what, g.name, storeCPU)
				line += fmt.Sprintf(", versitygw CPU %s s/GB", formatFigure(storeCPU))
			}
			rows, rssRow := []string{refs[g.name]}, refs[g.name]
			if g.name == s3WharfName {
				rows, rssRow = nil, first
				for _, ref := range env.gateways(refs)[1:] {
					rows = append(rows, refs[ref.name])
				}
			}
			for _, name := range rows {
				row := r.result[name]
				row.values[g.name] = append(row.values[g.name], m.rate)
				row.cpu[g.name] = append(row.cpu[g.name], cpu)
				if m.client.wall > 0 {
					row.client[g.name] = append(row.client[g.name], m.client.cpu.Seconds()/gb)
					row.busy[g.name] = append(row.busy[g.name], (m.client.cpu+m.gatewayCPU).Seconds()/m.client.wall.Seconds())
				}
			}
			if m.rssGrowth >= 0 {
				r.result[rssRow].rss[g.name] = append(r.result[rssRow].rss[g.name], float64(m.rssGrowth)/(1<<20))
				line += fmt.Sprintf(", peak RSS +%.1f MiB", float64(m.rssGrowth)/(1<<20))
			}
			if m.client.wall > 0 {
				line += fmt.Sprintf(", client CPU %s s/GB, %.2f CPUs busy (client, gateway, versitygw)",
					formatFigure(m.client.cpu.Seconds()/gb), (m.client.cpu+m.gatewayCPU+m.storeCPU).Seconds()/m.client.wall.Seconds())
			}
			if m.requests != nil {
				line += ", S3 requests: " + formatRequests(m.requests)
				if !upload {
					r.gets = append(r.gets, float64(m.requests["GetObject"]))
				}
			}
			fmt.Fprintln(b.progress, line)
		}
	}
	r.printCeilings(what, refs)
	return nil
}

// s3Measure is one run through one gateway.
type s3Measure struct {
	rate       float64
	gatewayCPU time.Duration    // wharf's, rclone's, or the bench's own for the direct client
	storeCPU   time.Duration    // versitygw's
	rssGrowth  int64            // the gateway's peak RSS above its RSS before, or -1
	client     timing           // the sftp client's; zero for the direct client
	requests   map[string]int64 // wharf's S3 requests by op (its daemon is fresh per run); nil for the others
}

// meter reads what a run through g costs: g's CPU (for the direct client,
// the bench's own process, which does nothing else meanwhile), the
// store's, and, for a gateway process, its peak RSS growth.
type meter struct {
	r            *s3Runner
	g            *server
	storePID     int
	cpu0, store0 time.Duration
	rss0         int64
}

func (r *s3Runner) startMeter(ctx context.Context, g *server, store *s3Store) (*meter, error) {
	m := &meter{r: r, g: g, storePID: store.proc.cmd.Process.Pid}
	if err := (&server{name: "versitygw", proc: store.proc}).alive(); err != nil {
		return nil, err
	}
	if g.proc != nil {
		if err := g.alive(); err != nil {
			return nil, err
		}
		if err := resetPeakRSS(g.pid()); err != nil {
			return nil, err
		}
		rss, _, err := procstat.Mem(g.pid())
		if err != nil {
			return nil, err
		}
		m.rss0 = rss
	}
	var err error
	if m.cpu0, err = m.gatewayCPU(ctx); err != nil {
		return nil, err
	}
	if m.store0, err = r.b.proc.cpuTotal(m.storePID); err != nil {
		return nil, err
	}
	return m, nil
}

// gatewayCPU is the gateway's CPU time so far: a gateway process's with
// its reaped children (it has none), or the bench's own, whose sftp runs
// were all reaped before the direct client's run began.
func (m *meter) gatewayCPU(ctx context.Context) (time.Duration, error) {
	if m.g.proc != nil {
		return m.r.b.proc.treeCPU(ctx, m.g.pid())
	}
	return m.r.b.proc.cpuTotal(os.Getpid())
}

// stop returns the CPU times and the RSS growth (-1: not measured) since
// startMeter.
func (m *meter) stop(ctx context.Context) (gateway, store time.Duration, rssGrowth int64, err error) {
	rssGrowth = -1
	if m.g.proc != nil {
		_, hwm, err := procstat.Mem(m.g.pid())
		if err != nil {
			return 0, 0, 0, err
		}
		rssGrowth = max(hwm-m.rss0, 0)
	}
	cpu1, err := m.gatewayCPU(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	store1, err := m.r.b.proc.cpuTotal(m.storePID)
	if err != nil {
		return 0, 0, 0, err
	}
	return cpu1 - m.cpu0, store1 - m.store0, rssGrowth, nil
}

// transferOnce uploads the big file through g, or downloads the staged
// object, checks the bytes, and removes what it wrote.
func (r *s3Runner) transferOnce(ctx context.Context, env *s3Env, g *server, upload bool) (s3Measure, error) {
	b := r.b
	key := uploadKey(g.name)
	local := b.ws.path("s3-down.bin")
	var batch string
	var err error
	switch {
	case upload && g.name == s3LocalName:
		defer os.Remove(filepath.Join(env.localDaemon.root, key))
	case upload:
		defer os.Remove(env.store.objectPath(key)) // the posix backend's file: nothing else refers to it
	}
	if upload {
		batch, err = r.s3Batch("s3-upload-"+strings.ReplaceAll(g.name, " ", "-")+".batch",
			"put "+strconv.Quote(b.big)+" "+key+"\n")
	} else {
		defer os.Remove(local)
		batch, err = r.s3Batch("s3-download.batch", "get "+s3DownKey+" "+strconv.Quote(local)+"\n")
	}
	if err != nil {
		return s3Measure{}, err
	}

	m, err := r.startMeter(ctx, g, env.store)
	if err != nil {
		return s3Measure{}, err
	}
	var res s3Measure
	start := time.Now()
	switch {
	case g.proc != nil:
		res.client, err = b.client.run(ctx, g, batch, b.transferTimeout())
	case upload:
		err = env.direct.upload(ctx, key, b.big)
	case g.name == s3OneGetName:
		err = env.direct.downloadStream(ctx, s3DownKey, local, b.transferTimeout())
	default:
		err = env.direct.download(ctx, s3DownKey, local, int64(b.o.size))
	}
	wall := time.Since(start)
	if err != nil {
		return s3Measure{}, err
	}
	if res.client.wall > 0 {
		wall = res.client.wall
	}
	if res.gatewayCPU, res.storeCPU, res.rssGrowth, err = m.stop(ctx); err != nil {
		return s3Measure{}, err
	}
	res.rate = megabytesPerSecond(int64(b.o.size), wall)
	if g.name == s3WharfName {
		if res.requests, err = s3Requests(ctx, env.wharfDaemon.metrics); err != nil {
			return s3Measure{}, err
		}
	}
	got := local
	switch {
	case upload && g.name == s3LocalName:
		got = filepath.Join(env.localDaemon.root, key)
	case upload:
		got = env.store.objectPath(key)
	}
	if err := sameContent(b.big, got); err != nil {
		return s3Measure{}, err
	}
	if upload && g.name != s3LocalName {
		// Also through S3, so that versitygw forgets the object (its
		// posix backend keeps nothing else about it).
		if err := env.direct.remove(ctx, key); err != nil {
			return s3Measure{}, err
		}
	}
	return res, nil
}

// measureList creates the folder's objects with the direct client, then
// lists it -runs times through wharf and directly, alternating which goes
// first.
func (r *s3Runner) measureList(ctx context.Context, env *s3Env) error {
	b := r.b
	n := b.o.entries
	fmt.Fprintf(b.progress, "creating %s objects under %s with the direct client, %d at once ...\n", thousands(n), s3ListPrefix, s3CreateWorkers)
	start := time.Now()
	err := env.direct.putEmpty(ctx, s3ListPrefix, n, s3CreateWorkers, entryName, func(done int) {
		fmt.Fprintf(b.progress, "    %s of %s objects in %s\n", thousands(done), thousands(n), time.Since(start).Round(time.Second))
	})
	if err != nil {
		return err
	}
	batch, err := r.s3Batch("s3-list.batch", "ls -1f "+strings.TrimSuffix(s3ListPrefix, "/")+"\n")
	if err != nil {
		return err
	}
	row := r.result[r.list]
	for i := range b.o.runs {
		refs := map[string]string{s3DirectName: r.list}
		for j := range len(env.gateways(refs)) {
			gws := env.gateways(refs)
			g, err := env.fresh(ctx, b.client, b.loginBatch, gws[(i+j)%len(gws)])
			if err != nil {
				return err
			}
			m, err := r.startMeter(ctx, g, env.store)
			if err != nil {
				return err
			}
			var client timing
			var out string
			start := time.Now()
			if g.proc != nil {
				client, out, err = b.client.runOutput(ctx, g, batch, 2*time.Minute+time.Duration(n)*time.Millisecond)
			} else {
				out, _, err = env.direct.list(ctx, s3ListPrefix, n)
			}
			wall := time.Since(start)
			if err != nil {
				return fmt.Errorf("S3 list through %s: %w", g.name, err)
			}
			if client.wall > 0 {
				wall = client.wall
			}
			gwCPU, storeCPU, rss, err := m.stop(ctx)
			if err != nil {
				return err
			}
			if err := b.verifyListing(out); err != nil {
				return fmt.Errorf("S3 list through %s: %w", g.name, err)
			}
			rate := float64(n) / wall.Seconds()
			cpu := gwCPU.Seconds() * 1e6 / float64(n)
			store := storeCPU.Seconds() * 1e6 / float64(n)
			r.addStoreCPU("list", g.name, store)
			row.values[g.name] = append(row.values[g.name], rate)
			row.cpu[g.name] = append(row.cpu[g.name], cpu)
			line := fmt.Sprintf("%-20s %-17s run %d/%d: %8.0f entries/s (%s), gateway CPU %s µs/entry, versitygw CPU %s µs/entry",
				"S3 list", g.name, i+1, b.o.runs, rate, wall.Round(time.Millisecond), formatFigure(cpu), formatFigure(store))
			if rss >= 0 {
				row.rss[g.name] = append(row.rss[g.name], float64(rss)/(1<<20))
				line += fmt.Sprintf(", peak RSS +%.1f MiB", float64(rss)/(1<<20))
			}
			if client.wall > 0 {
				row.client[g.name] = append(row.client[g.name], client.cpu.Seconds()*1e6/float64(n))
				row.busy[g.name] = append(row.busy[g.name], (client.cpu+gwCPU).Seconds()/client.wall.Seconds())
			}
			fmt.Fprintln(b.progress, line)
		}
	}
	return nil
}

func (r *s3Runner) addStoreCPU(row, gateway string, v float64) {
	if r.storeCPU[row] == nil {
		r.storeCPU[row] = map[string][]float64{}
	}
	r.storeCPU[row][gateway] = append(r.storeCPU[row][gateway], v)
}

// printStoreCPU says what the store spent for each gateway: the table's
// server CPU is the gateway's alone.
func (r *s3Runner) printStoreCPU() {
	for _, row := range []string{"upload", "download", "list"} {
		m := r.storeCPU[row]
		if len(m) == 0 {
			continue
		}
		unit := "s/GB"
		if row == "list" {
			unit = "µs/entry"
		}
		var parts []string
		for _, name := range serverNames(m) {
			parts = append(parts, fmt.Sprintf("through %s %s", name, summarize(m[name]).figure()))
		}
		fmt.Fprintf(r.b.progress, "versitygw CPU during the S3 %s, %s, medians (min–max): %s\n", row, unit, strings.Join(parts, "; "))
	}
	if len(r.gets) > 0 {
		fmt.Fprintf(r.b.progress, "wharf's GetObject requests per download, median (min–max): %s\n", summarize(r.gets).figure())
	}
}

package main

import (
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wharf-sftp/wharf/internal/config"
)

func TestS3MemoryFormula(t *testing.T) {
	if got := s3MemoryFormula(16<<20, 4); got != 112<<20 {
		t.Errorf("defaults: %d, want 112 MiB (docs/s3.md)", got)
	}
	if got := s3MemoryFormula(5<<20, 3); got != 30<<20 {
		t.Errorf("5 MiB parts, 3 in flight: %d, want 30 MiB", got)
	}
	if got, want := s3MemoryFormulaText(16<<20, 4), "16 MiB × (4 + 1) + 2 × 16 MiB = 112 MiB"; got != want {
		t.Errorf("text %q, want %q", got, want)
	}
}

func TestPartRanges(t *testing.T) {
	const p = 16 << 20
	for _, tt := range []struct {
		size  int64
		parts int
		last  int64 // length of the last part
	}{
		{0, 0, 0},
		{1, 1, 1},
		{p, 1, p},
		{p + 1, 2, 1},
		{1 << 30, 64, p},
		{64<<20 + 12345, 5, 12345},
	} {
		n := partCount(tt.size, p)
		if n != tt.parts {
			t.Errorf("partCount(%d) = %d, want %d", tt.size, n, tt.parts)
			continue
		}
		var total int64
		for i := range n {
			off, l := partRange(i, tt.size, p)
			if off != total || l <= 0 || l > p {
				t.Errorf("size %d, part %d: offset %d, length %d after %d bytes", tt.size, i, off, l, total)
			}
			total += l
			if i == n-1 && l != tt.last {
				t.Errorf("size %d: last part %d bytes, want %d", tt.size, l, tt.last)
			}
		}
		if total != tt.size {
			t.Errorf("size %d: parts cover %d bytes", tt.size, total)
		}
	}
	if got := byteRange(16, 16); got != "bytes=16-31" {
		t.Errorf("byteRange = %q", got)
	}
}

func TestForEachBounded(t *testing.T) {
	ctx := context.Background()
	t.Run("every index once, at most workers at once", func(t *testing.T) {
		const n, workers = 200, 4
		var running, peak atomic.Int32
		var mu sync.Mutex
		seen := map[int]int{}
		err := forEachBounded(ctx, n, workers, func(ctx context.Context, i int) error {
			now := running.Add(1)
			defer running.Add(-1)
			for {
				p := peak.Load()
				if now <= p || peak.CompareAndSwap(p, now) {
					break
				}
			}
			mu.Lock()
			seen[i]++
			mu.Unlock()
			time.Sleep(100 * time.Microsecond) // let the workers overlap
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != n {
			t.Errorf("%d indices called, want %d", len(seen), n)
		}
		for i, c := range seen {
			if c != 1 || i < 0 || i >= n {
				t.Errorf("index %d called %d times", i, c)
			}
		}
		if p := peak.Load(); p > workers || p < 1 {
			t.Errorf("%d calls at once, want 1..%d", p, workers)
		}
	})
	t.Run("nothing to do", func(t *testing.T) {
		if err := forEachBounded(ctx, 0, 4, func(context.Context, int) error { return errors.New("called") }); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the first error stops the rest", func(t *testing.T) {
		boom := errors.New("boom")
		var calls atomic.Int32
		err := forEachBounded(ctx, 1000, 2, func(ctx context.Context, i int) error {
			calls.Add(1)
			if i == 3 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) {
			t.Fatalf("error %v, want boom", err)
		}
		if c := calls.Load(); c > 10 {
			t.Errorf("%d calls after the error at index 3", c)
		}
	})
	t.Run("a cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := forEachBounded(cctx, 10, 2, func(context.Context, int) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
	})
}

func TestVersitygwCandidates(t *testing.T) {
	for _, tt := range []struct {
		name                    string
		flag, env, path, gopath string
		want                    []string
	}{
		{name: "flag wins", flag: "/f", env: "/e", path: "/usr/bin/versitygw", gopath: "/go", want: []string{"/f"}},
		{name: "VERSITYGW alone", env: "/e", path: "/usr/bin/versitygw", gopath: "/go", want: []string{"/e"}},
		{name: "PATH then GOPATH", path: "/usr/bin/versitygw", gopath: "/go", want: []string{"/usr/bin/versitygw", "/go/bin/versitygw"}},
		{name: "first GOPATH entry", gopath: "/a" + string(filepath.ListSeparator) + "/b", want: []string{"/a/bin/versitygw"}},
		{name: "nothing", want: nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := versitygwCandidates(tt.flag, tt.env, tt.path, tt.gopath); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFindVersitygwRefusesOtherBinaries(t *testing.T) {
	// The bench's own test binary is a Go program of another module.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = findVersitygw(self)
	if err == nil || !strings.Contains(err.Error(), "not github.com/versity/versitygw") {
		t.Fatalf("error %v, want a refusal naming the module", err)
	}
	if _, _, err = findVersitygw(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "go install") {
		t.Fatalf("error %v, want one saying how to install it", err)
	}
}

func TestLauncherArgs(t *testing.T) {
	got := versitygwArgs(7070, "/w/s3/iam", "/w/s3/data")
	want := []string{"--port", "127.0.0.1:7070", "--region", "us-east-1", "--iam-dir", "/w/s3/iam", "posix", "/w/s3/data"}
	if !slices.Equal(got, want) {
		t.Errorf("versitygw args %q, want %q", got, want)
	}
	got = rcloneArgs(2022, "/w/hk", "/w/ak")
	want = []string{"serve", "sftp", ":s3:wharf-bench", "--addr", "127.0.0.1:2022", "--key", "/w/hk", "--authorized-keys", "/w/ak"}
	if !slices.Equal(got, want) {
		t.Errorf("rclone args %q, want %q", got, want)
	}

	st := s3Settings{endpoint: "http://127.0.0.1:7070", accessKey: "AK", secretKey: "SK", partSize: 16 << 20, concurrency: 4}
	env := rcloneEnv(st, "/w/rclone.conf", "/w/cache")
	for _, kv := range []string{"RCLONE_S3_CHUNK_SIZE=16777216B", "RCLONE_S3_UPLOAD_CONCURRENCY=4", "RCLONE_S3_ENDPOINT=http://127.0.0.1:7070",
		"RCLONE_S3_FORCE_PATH_STYLE=true", "RCLONE_CONFIG=/w/rclone.conf", "RCLONE_S3_SECRET_ACCESS_KEY=SK"} {
		if !slices.Contains(env, kv) {
			t.Errorf("rclone env lacks %s: %q", kv, env)
		}
	}
}

func TestEnvUnsetArgs(t *testing.T) {
	environ := []string{"PATH=/bin", "AWS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt", "RCLONE_S3_ENDPOINT=https://elsewhere",
		"RCLONE_VERBOSE=2", "HOME=/root", "AWS_CA_BUNDLE=/dup", "=weird"}
	ours := []string{"RCLONE_S3_ENDPOINT=http://127.0.0.1:7070"}
	got := envUnsetArgs(environ, rcloneDrops(ours))
	// Ours is set through the environment after the bench's: it must stay.
	want := []string{"-u", "AWS_CA_BUNDLE", "-u", "RCLONE_VERBOSE"}
	if !slices.Equal(got, want) {
		t.Errorf("rclone: %q, want %q", got, want)
	}
	keep := []string{"PATH", "HOME"}
	got = envUnsetArgs(environ, func(n string) bool { return !slices.Contains(keep, n) })
	want = []string{"-u", "AWS_CA_BUNDLE", "-u", "RCLONE_S3_ENDPOINT", "-u", "RCLONE_VERBOSE"}
	if !slices.Equal(got, want) {
		t.Errorf("versitygw: %q, want %q", got, want)
	}
}

// TestS3WharfConfig: wharf's own loader accepts what the bench writes, and
// reads the settings the rows name: the s3 rows' wharf, and the
// s3requests row's fleet wharf (state_url outside the homes' prefix, a
// webhook on uploads, the admin listener).
func TestS3WharfConfig(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "s3.secret")
	if err := os.WriteFile(secret, []byte("SK\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := s3Settings{endpoint: "http://127.0.0.1:7070", accessKey: "AK", secretKey: "SK", partSize: 16 << 20, concurrency: 4}
	c := client{user: "bench", publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bench"}
	fleet := s3WharfOptions{prefix: s3ReqPrefix + "fleet/", admin: true, adminPort: 9222, stateURL: "s3://" + s3Bucket + "/" + s3ReqPrefix + "state/",
		webhook: "http://127.0.0.1:9999/hook"}
	for _, wo := range []s3WharfOptions{{}, fleet} {
		path := filepath.Join(dir, "wharf.yaml")
		if err := os.WriteFile(path, []byte(s3WharfConfig(2222, dir, secret, st, c, wo)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatalf("%+v: %v", wo, err)
		}
		s := cfg.Storage
		if s.Backend != "s3" || s.S3.Bucket != s3Bucket || s.S3.Endpoint != st.endpoint || !s.S3.PathStyle ||
			s.S3.AccessKeyID != "AK" || s.S3.SecretAccessKeyFile != secret ||
			int64(s.S3.PartSize) != st.partSize || s.S3.UploadConcurrency != st.concurrency || s.S3.Prefix != wo.prefix {
			t.Errorf("storage %+v", s)
		}
		if cfg.SFTP.Listen != "127.0.0.1:2222" {
			t.Errorf("sftp.listen %q: want the fixed loopback port, kept across restarts", cfg.SFTP.Listen)
		}
		if len(cfg.Users) != 1 || cfg.Users[0].Name != "bench" || cfg.Users[0].Home != "/" {
			t.Errorf("users %+v", cfg.Users)
		}
		if (cfg.Admin.Listen == "127.0.0.1:9222") != wo.admin || cfg.StateURL != wo.stateURL || cfg.EventLease != 0 {
			t.Errorf("admin %q, state_url %q, event_lease %s; want %+v and the default lease", cfg.Admin.Listen, cfg.StateURL, cfg.EventLease, wo)
		}
		switch {
		case wo.webhook == "" && len(cfg.Hooks) != 0:
			t.Errorf("hooks %+v, want none", cfg.Hooks)
		case wo.webhook != "" && (len(cfg.Hooks) != 1 || cfg.Hooks[0].Webhook == nil || cfg.Hooks[0].Webhook.URL != wo.webhook ||
			len(cfg.Hooks[0].Events) != 1 || cfg.Hooks[0].Events[0] != "upload" || len(cfg.Hooks[0].Paths) != 0):
			t.Errorf("hooks %+v, want one webhook on every upload", cfg.Hooks)
		}
	}

	// The reference on local storage: the same user, on its own port.
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "wharf-local.yaml")
	if err := os.WriteFile(path, []byte(s3LocalConfig(2223, dir, data, c)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.Backend != "local" || cfg.Storage.Root != data || cfg.SFTP.Listen != "127.0.0.1:2223" ||
		len(cfg.Users) != 1 || cfg.Users[0].Name != "bench" || cfg.Users[0].Home != "/" {
		t.Errorf("local: storage %+v, listen %q, users %+v", cfg.Storage, cfg.SFTP.Listen, cfg.Users)
	}
}

// TestParseS3Requests reads the counters out of wharf's metrics text.
func TestParseS3Requests(t *testing.T) {
	text := `# HELP wharf_s3_requests_total S3 requests sent, by operation.
# TYPE wharf_s3_requests_total counter
wharf_s3_requests_total{op="GetObject"} 1
wharf_s3_requests_total{op="HeadObject"} 12
wharf_s3_requests_total{op="UploadPart"} 6.4e+01
wharf_sessions_total{protocol="sftp"} 3
`
	got := parseS3Requests(text)
	want := map[string]int64{"GetObject": 1, "HeadObject": 12, "UploadPart": 64}
	if !maps.Equal(got, want) {
		t.Errorf("parsed %v, want %v", got, want)
	}
	if s := formatRequests(got); s != "GetObject 1, HeadObject 12, UploadPart 64" {
		t.Errorf("formatted %q", s)
	}
	if s := formatRequests(nil); s != "none" {
		t.Errorf("formatted nothing as %q", s)
	}
}

func TestUploadKey(t *testing.T) {
	keys := map[string]bool{}
	for _, g := range []string{s3WharfName, s3DirectName, s3RcloneName, s3LocalName} {
		k := uploadKey(g)
		if strings.ContainsAny(k, " /") || keys[k] || k == s3DownKey {
			t.Errorf("upload key %q of %s: a space, a slash, or not its own", k, g)
		}
		keys[k] = true
	}
}

func TestParseS3Flags(t *testing.T) {
	o, err := parseFlags([]string{"-rows", "s3,s3list"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.s3Rows() || o.s3PartSize != 16<<20 || o.s3Concurrency != 4 || o.rclone != "rclone" || o.entries != 100000 {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseFlags([]string{"-rows", "s3", "-quick"}, io.Discard)
	if err != nil || o.size != 64<<20 || o.entries != 10000 {
		t.Errorf("quick: size %d, entries %d, %v", o.size, o.entries, err)
	}
	for _, args := range [][]string{{"-s3-part-size", "4MiB"}, {"-s3-part-size", "6GiB"}, {"-s3-concurrency", "0"}, {"-s3-concurrency", "65"}} {
		if _, err := parseFlags(append([]string{"-rows", "s3"}, args...), io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	if o, err := parseFlags([]string{"-rows", "upload"}, io.Discard); err != nil || o.s3Rows() {
		t.Errorf("upload alone: s3 rows %v, %v", o.s3Rows(), err)
	}
	o, err = parseFlags([]string{"-rows", "s3requests", "-quick"}, io.Discard)
	if err != nil || !o.s3Rows() || o.files != 100 || o.fileSize != 64<<10 {
		t.Errorf("s3requests: s3 rows %v, %d files of %d bytes, %v", o.s3Rows(), o.files, o.fileSize, err)
	}
	if b := (&bench{o: o}); !b.smallFiles() || b.transfers() {
		t.Errorf("s3requests: small files %v, big file %v; want the small files alone", b.smallFiles(), b.transfers())
	}
}

// TestDirectS3 drives the direct client and the versitygw launcher against
// a real versitygw: a multipart round trip, a single-part one, and a
// paginated listing. Without versitygw it is skipped, except in CI.
func TestDirectS3(t *testing.T) {
	bin, version, err := findVersitygw("")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: a missing S3 server is a failure: %v", err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ws := &workspace{dir: t.TempDir()}
	store, err := startVersitygw(ctx, ws, bin, version)
	if err != nil {
		t.Fatal(err)
	}
	defer store.proc.stop()
	d := &directS3{c: newS3Client(store.endpoint, s3Region, store.accessKey, store.secretKey, 8),
		bucket: s3Bucket, partSize: 5 << 20, concurrency: 3}
	if _, err := d.c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s3Bucket)}); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{12<<20 + 4321, 1000} {
		src := ws.path("src.bin")
		if err := writeRandomFile(src, size, uint64(size)); err != nil {
			t.Fatal(err)
		}
		if err := d.upload(ctx, "k.bin", src); err != nil {
			t.Fatal(err)
		}
		if err := sameContent(src, store.objectPath("k.bin")); err != nil {
			t.Fatalf("%d bytes uploaded: %v", size, err)
		}
		dst := ws.path("dst.bin")
		if err := d.download(ctx, "k.bin", dst, size); err != nil {
			t.Fatal(err)
		}
		if err := sameContent(src, dst); err != nil {
			t.Fatalf("%d bytes downloaded: %v", size, err)
		}
		if err := d.downloadStream(ctx, "k.bin", dst, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := sameContent(src, dst); err != nil {
			t.Fatalf("%d bytes downloaded in one GET: %v", size, err)
		}
		if err := d.remove(ctx, "k.bin", "k.bin"); err != nil {
			t.Fatal(err)
		}
	}

	const n = 2345
	var reported []int
	if err := d.putEmpty(ctx, s3ListPrefix, n, 16, entryName, func(done int) { reported = append(reported, done) }); err != nil {
		t.Fatal(err)
	}
	if len(reported) == 0 || reported[len(reported)-1] != n {
		t.Errorf("progress %v, want it to end at %d", reported, n)
	}
	out, pages, err := d.list(ctx, s3ListPrefix, n)
	if err != nil {
		t.Fatal(err)
	}
	if pages != 3 {
		t.Errorf("%d pages for %d objects, want 3", pages, n)
	}
	if err := (&bench{o: options{entries: n}}).verifyListing(out); err != nil {
		t.Fatal(err)
	}
}

func TestS3Gateways(t *testing.T) {
	names := func(gs []*server) []string {
		var n []string
		for _, g := range gs {
			n = append(n, g.name)
		}
		return n
	}
	refs := map[string]string{s3DirectName: "a", s3OneGetName: "b", s3RcloneName: "c"}
	e := &s3Env{wharf: &server{name: s3WharfName}}
	if got, want := names(e.gateways(refs)), []string{s3WharfName, s3DirectName, s3OneGetName}; !slices.Equal(got, want) {
		t.Errorf("without rclone: %q, want %q", got, want)
	}
	e.rclone = &server{name: s3RcloneName}
	if got, want := names(e.gateways(refs)), []string{s3WharfName, s3DirectName, s3OneGetName, s3RcloneName}; !slices.Equal(got, want) {
		t.Errorf("with rclone: %q, want %q", got, want)
	}
	if got, want := names(e.gateways(map[string]string{s3DirectName: "list"})), []string{s3WharfName, s3DirectName}; !slices.Equal(got, want) {
		t.Errorf("listing: %q, want %q", got, want)
	}
	refs[s3LocalName] = "d"
	e.local = &server{name: s3LocalName}
	if got, want := names(e.gateways(refs)), []string{s3WharfName, s3DirectName, s3OneGetName, s3RcloneName, s3LocalName}; !slices.Equal(got, want) {
		t.Errorf("with the local reference: %q, want %q", got, want)
	}
}

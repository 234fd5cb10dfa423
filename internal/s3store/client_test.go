package s3store

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wharf-sftp/wharf/internal/regfile"
	"github.com/wharf-sftp/wharf/internal/s3test"
)

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.Bucket = "partner-files"
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults with a bucket: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"no bucket":          {func(c *Config) { c.Bucket = "" }, "bucket:"},
		"short bucket":       {func(c *Config) { c.Bucket = "ab" }, "bucket:"},
		"upper bucket":       {func(c *Config) { c.Bucket = "Partner" }, "bucket:"},
		"bucket with slash":  {func(c *Config) { c.Bucket = "a/b/c" }, "bucket:"},
		"bucket ends in dot": {func(c *Config) { c.Bucket = "abc." }, "bucket:"},
		"ftp endpoint":       {func(c *Config) { c.Endpoint = "ftp://127.0.0.1" }, "endpoint:"},
		"no host":            {func(c *Config) { c.Endpoint = "http://" }, "endpoint:"},
		"bare host":          {func(c *Config) { c.Endpoint = "127.0.0.1:7070" }, "endpoint:"},
		"query":              {func(c *Config) { c.Endpoint = "http://h/?a=b" }, "endpoint:"},
		"prefix":             {func(c *Config) { c.Prefix = "a//b" }, "prefix:"},
		"key id alone":       {func(c *Config) { c.AccessKeyID = "AKIA" }, "go together"},
		"secret alone":       {func(c *Config) { c.SecretAccessKeyFile = "/s" }, "go together"},
		"small parts":        {func(c *Config) { c.PartSize = MinPartSize - 1 }, "part_size:"},
		"huge parts":         {func(c *Config) { c.PartSize = MaxPartSize + 1 }, "part_size:"},
		"no concurrency":     {func(c *Config) { c.UploadConcurrency = 0 }, "upload_concurrency:"},
		"high concurrency":   {func(c *Config) { c.UploadConcurrency = MaxUploadConcurrency + 1 }, "upload_concurrency:"},
	} {
		c := good
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v; want an error with %q", name, err, tc.want)
		}
	}
	// Every problem at once.
	bad := Config{Endpoint: "gopher://x", PartSize: 1}
	if err := bad.Validate(); err == nil || strings.Count(err.Error(), "\n") < 3 {
		t.Errorf("Validate of a config with four problems = %v; want them all", err)
	}
	// A password in the endpoint is refused without being repeated.
	c := good
	c.Endpoint = "https://user:hunter2@s3.example.com"
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Validate with user info = %v; want an error without the password", err)
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got, err := readSecret(write("ok", "  wJalrXUtnFEMI/K7MDENG\n")); err != nil || got != "wJalrXUtnFEMI/K7MDENG" {
		t.Errorf("readSecret = %q, %v; want the trimmed secret", got, err)
	}
	const secret = "s3cr3t-value"
	for name, content := range map[string]string{
		"empty":      "",
		"blank":      " \n\t\n",
		"two lines":  secret + "\n" + secret + "\n",
		"oversized":  secret + strings.Repeat("x", maxSecretFile),
		"crlf lines": secret + "\r\nmore",
	} {
		p := write(name, content)
		_, err := readSecret(p)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error %q shows the secret", name, err)
		}
		if !strings.Contains(err.Error(), "secret_access_key_file") {
			t.Errorf("%s: error %q does not name the setting", name, err)
		}
	}
	if _, err := readSecret(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v; want ErrNotExist", err)
	}
	// A device that never ends is not read at all.
	if _, err := readSecret("/dev/zero"); !errors.Is(err, regfile.ErrNotRegular) {
		t.Errorf("/dev/zero: %v; want ErrNotRegular", err)
	}
}

// Static credentials from the secret file reach the server; a wrong
// secret is refused by it and never appears in the error; without
// access_key_id the SDK's default chain (here the environment) is used.
func TestCredentials(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	ctx := testContext(t)
	head := func(c *s3.Client) error {
		_, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
		return err
	}

	if err := head(newTestClient(t, srv, bucket)); err != nil {
		t.Fatalf("static credentials: %v", err)
	}

	cfg := serverConfig(t, srv, bucket)
	const wrong = "not-the-secret-0123456789"
	cfg.SecretAccessKeyFile = writeSecret(t, wrong)
	c, err := NewClient(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = head(c)
	if err == nil {
		t.Fatal("a wrong secret was accepted")
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), srv.SecretKey) {
		t.Fatalf("error %q shows a secret", err)
	}
	if _, status := apiCode(err); status != 403 {
		t.Fatalf("a wrong secret: %v; want 403", err)
	}

	cfg = serverConfig(t, srv, bucket)
	cfg.AccessKeyID, cfg.SecretAccessKeyFile = "", ""
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	if c, err = NewClient(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := head(c); err != nil {
		t.Fatalf("default chain from the environment: %v", err)
	}

	cfg.Region = ""
	if _, err := NewClient(ctx, cfg); err == nil || !strings.Contains(err.Error(), "region") {
		t.Fatalf("no region anywhere: %v; want a region error", err)
	}
	t.Setenv("AWS_REGION", srv.Region)
	if c, err = NewClient(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := head(c); err != nil {
		t.Fatalf("region from AWS_REGION: %v", err)
	}
}

// Neither requests nor responses carry the flexible checksums that
// service/s3 adds by default since v1.73: the client sends no
// x-amz-checksum-*, no x-amz-sdk-checksum-algorithm and no trailer on
// PutObject and UploadPart, and asks for none on GetObject. The same calls
// with the SDK's default setting do carry them, which shows the check can
// see them.
func TestChecksumsWhenRequired(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	ctx := testContext(t)

	calls := func(c *s3.Client, key string) {
		t.Helper()
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(key), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		out.Body.Close()
		mu, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: aws.String(key + ".mp")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &bucket, Key: aws.String(key + ".mp"), UploadId: mu.UploadId,
			PartNumber: aws.Int32(1), Body: bytes.NewReader([]byte("part"))}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: aws.String(key + ".mp"), UploadId: mu.UploadId}); err != nil {
			t.Fatal(err)
		}
	}
	checksummed := func(w *wire) []string {
		var found []string
		for _, e := range w.exchanges() {
			for name := range e.req {
				n := strings.ToLower(name)
				if strings.HasPrefix(n, "x-amz-checksum-") || n == "x-amz-sdk-checksum-algorithm" || n == "x-amz-trailer" {
					found = append(found, e.method+" "+e.query+": "+name)
				}
			}
		}
		return found
	}

	ours := &wire{}
	calls(newTestClient(t, srv, bucket, recordWire(ours)), "ours")
	if n := len(ours.exchanges()); n != 5 {
		t.Fatalf("recorded %d requests; want 5", n)
	}
	if found := checksummed(ours); len(found) > 0 {
		t.Errorf("checksum headers sent with \"when required\": %v", found)
	}
	// versitygw 1.8.0 answers a PUT with a CRC64NVME of the whole object
	// even when none was sent; the client does not check it.
	if put := ours.exchanges()[0]; put.resp.Get("X-Amz-Checksum-Crc64nvme") == "" || put.resp.Get("X-Amz-Checksum-Type") != "FULL_OBJECT" {
		t.Errorf("PutObject answer: checksum headers %q, %q; want versitygw's CRC64NVME of the FULL_OBJECT",
			put.resp.Get("X-Amz-Checksum-Crc64nvme"), put.resp.Get("X-Amz-Checksum-Type"))
	}

	sdk := &wire{}
	calls(newTestClient(t, srv, bucket, recordWire(sdk), func(o *s3.Options) {
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenSupported
	}), "sdk")
	if found := checksummed(sdk); len(found) < 3 {
		t.Errorf("the SDK's default sent checksum headers on %v; want PutObject, GetObject and UploadPart", found)
	}
	// versitygw accepts the SDK's CRC32 (all calls above succeeded) and
	// answers with it.
	if put := sdk.exchanges()[0]; put.resp.Get("X-Amz-Checksum-Crc32") != put.req.Get("X-Amz-Checksum-Crc32") {
		t.Errorf("PutObject with CRC32 %q answered with %q", put.req.Get("X-Amz-Checksum-Crc32"), put.resp.Get("X-Amz-Checksum-Crc32"))
	}
}

// AWS_CA_BUNDLE, as these machines set it, leaves a plain-HTTP loopback
// store reachable (set or unset), and an operator's bundle is what decides
// trust for an https endpoint: the store's own CA lets the client in, the
// system bundle and no bundle at all do not (the certificate is
// self-signed), and a bundle file that is missing or holds no certificate
// fails NewClient.
func TestCABundle(t *testing.T) {
	plain := s3test.Start(t)
	secure := s3test.StartTLS(t)
	plainBucket, secureBucket := plain.NewBucket(t), secure.NewBucket(t)
	ctx := testContext(t)
	isolateAWS(t)
	system := machineBundle(t)

	head := func(srv *s3test.Server, bucket string) error {
		c, err := NewClient(ctx, serverConfig(t, srv, bucket))
		if err != nil {
			return err
		}
		_, err = c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
		return err
	}
	for _, tc := range []struct {
		name, bundle string
		plainOK      bool
		secureOK     bool
	}{
		{"system bundle", system, true, false},
		{"unset", "", true, false},
		{"the store's CA", secure.CAFile, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_CA_BUNDLE", tc.bundle)
			if err := head(plain, plainBucket); (err == nil) != tc.plainOK {
				t.Errorf("plain http: %v; want ok=%v", err, tc.plainOK)
			}
			err := head(secure, secureBucket)
			if (err == nil) != tc.secureOK {
				t.Errorf("https: %v; want ok=%v", err, tc.secureOK)
			}
			var unknown x509.UnknownAuthorityError
			if err != nil && !errors.As(err, &unknown) {
				t.Errorf("https: %v; want an unknown-authority error", err)
			}
		})
	}
	// An operator's mistake shows at start-up, not as failing transfers.
	dir := t.TempDir()
	noCert := filepath.Join(dir, "no-cert.pem")
	if err := os.WriteFile(noCert, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bundle := range []string{filepath.Join(dir, "missing.pem"), noCert} {
		t.Setenv("AWS_CA_BUNDLE", bundle)
		if _, err := NewClient(ctx, serverConfig(t, plain, plainBucket)); err == nil {
			t.Errorf("AWS_CA_BUNDLE=%s: NewClient succeeded", filepath.Base(bundle))
		}
	}
}

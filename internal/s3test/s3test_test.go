package s3test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The server starts, stores what it is given on disk under DataDir, and
// hands out distinct valid bucket names; its stop (SIGTERM, exit 0) is
// checked by the cleanup Start registered.
func TestStart(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.Endpoint, "http://127.0.0.1:") {
		t.Fatalf("endpoint %q is not on loopback", s.Endpoint)
	}
	valid := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	a, b := s.NewBucket(t), s.NewBucket(t)
	if a == b || !valid.MatchString(a) || !valid.MatchString(b) {
		t.Fatalf("buckets %q and %q: want two distinct valid names", a, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.Client()
	body := []byte("hello from s3test")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(a), Key: aws.String("d/f"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(a), Key: aws.String("d/f")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("GetObject = %q, %v; want %q", got, err, body)
	}
	onDisk, err := os.ReadFile(filepath.Join(s.DataDir, a, "d", "f"))
	if err != nil || !bytes.Equal(onDisk, body) {
		t.Fatalf("DataDir/%s/d/f = %q, %v; want the object", a, onDisk, err)
	}
	// Another bucket is another namespace.
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String("d/f")}); err == nil {
		t.Fatalf("object visible in bucket %s too", b)
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	b.Write([]byte("abc"))
	if got := b.String(); got != "abc" {
		t.Fatalf("got %q", got)
	}
	b.Write([]byte("defghij"))
	b.Write([]byte("k"))
	if got := b.String(); got != "…defghijk" {
		t.Fatalf("got %q; want the last 8 bytes after a mark", got)
	}
}

// StartTLS serves HTTPS on a certificate that only CAFile vouches for.
func TestStartTLS(t *testing.T) {
	s := StartTLS(t)
	if !strings.HasPrefix(s.Endpoint, "https://127.0.0.1:") || s.CAFile == "" {
		t.Fatalf("endpoint %q, CA file %q; want https on loopback and a CA file", s.Endpoint, s.CAFile)
	}
	b := s.NewBucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b)}); err != nil {
		t.Fatalf("HeadBucket over TLS: %v", err)
	}
}

package daemon_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
)

// TestReadyzStateBucket: with state_url, /readyz reports the state bucket:
// 200 while it answers, 503 naming it once it is gone, while the homes'
// bucket still takes writes (so the reason is the state, not storage).
func TestReadyzStateBucket(t *testing.T) {
	srv, bucket, secret := fleetServer(t)
	cfg := fleetConfig(t, srv, bucket, secret)
	stateBucket := srv.NewBucket(t)
	cfg.StateURL = "s3://" + stateBucket + "/state/"
	cfg.Admin.Listen = "127.0.0.1:0"
	d := daemontest.Start(t, cfg)
	url := "http://" + d.AdminAddr().String() + "/readyz"
	if code, body := get(t, url); code != http.StatusOK {
		t.Fatalf("/readyz with the state bucket reachable: %d %s", code, body)
	}

	// The state bucket deleted (its objects first): unreachable.
	ctx := context.Background()
	client := srv.Client()
	out, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &stateBucket})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &stateBucket, Key: o.Key}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &stateBucket}); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, url)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "state bucket unreachable") {
		t.Errorf("/readyz without the state bucket: %d %q, want 503 naming the state bucket", code, body)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

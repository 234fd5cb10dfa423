package s3store

import (
	"context"
	"errors"
	"io/fs"
	"testing"

	"github.com/wharf-sftp/wharf/internal/s3test"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, bucket, prefix string
		ok                 bool
	}{
		{"s3://partner-files/wharf/state/", "partner-files", "wharf/state/", true},
		{"s3://partner-files/wharf/state", "partner-files", "wharf/state/", true},
		{"s3://partner-files", "partner-files", "", true},
		{"s3://partner-files/", "partner-files", "", true},
		{"https://partner-files/x/", "", "", false},
		{"s3://Partner_Files/x/", "", "", false},
		{"s3://partner-files/a//b/", "", "", false},
		{"s3://partner-files/../b/", "", "", false},
		{"s3://ak:sk@partner-files/x/", "", "", false},
		{"s3:///x/", "", "", false},
	} {
		b, p, err := ParseURL(tc.in)
		if (err == nil) != tc.ok || b != tc.bucket || p != tc.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q, ok %v", tc.in, b, p, err, tc.bucket, tc.prefix, tc.ok)
		}
	}
}

// Objects' conditional writes against a real versitygw: create-only,
// replace-if-unchanged and delete-if-unchanged each lose with ErrChanged.
func TestObjectsConditional(t *testing.T) {
	srv := s3test.Start(t)
	isolateAWS(t)
	machineBundle(t)
	cfg := serverConfig(t, srv, srv.NewBucket(t))
	ctx := context.Background()
	o, err := NewObjects(ctx, cfg, "s3://"+cfg.Bucket+"/wharf/state/")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.Get(ctx, "users/acme.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("get of a missing object: %v", err)
	}
	e1, err := o.Create(ctx, "users/acme.yaml", []byte("name: acme\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Create(ctx, "users/acme.yaml", []byte("name: evil\n")); !errors.Is(err, ErrChanged) {
		t.Fatalf("second create: %v, want ErrChanged", err)
	}
	e2, err := o.Replace(ctx, "users/acme.yaml", []byte("name: acme\nhome: /acme\n"), e1)
	if err != nil {
		t.Fatalf("replace with the current etag: %v", err)
	}
	if _, err := o.Replace(ctx, "users/acme.yaml", []byte("name: stale\n"), e1); !errors.Is(err, ErrChanged) {
		t.Fatalf("replace with a stale etag: %v, want ErrChanged", err)
	}
	data, etag, err := o.Get(ctx, "users/acme.yaml")
	if err != nil || string(data) != "name: acme\nhome: /acme\n" || etag != e2 {
		t.Fatalf("get = %q %q %v; want the replaced content and etag %q", data, etag, err, e2)
	}
	if err := o.Delete(ctx, "users/acme.yaml", e1); !errors.Is(err, ErrChanged) {
		t.Errorf("delete with a stale etag: %v, want ErrChanged", err)
	}
	var names []string
	if err := o.List(ctx, "users/", func(e Entry) error { names = append(names, e.Name+"@"+e.ETag); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "users/acme.yaml@"+e2 {
		t.Errorf("list = %v", names)
	}
	if err := o.Delete(ctx, "users/acme.yaml", e2); err != nil {
		t.Fatalf("delete with the current etag: %v", err)
	}
	if _, _, err := o.Get(ctx, "users/acme.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("get after delete: %v", err)
	}
	if _, _, err := o.Get(ctx, "../escape"); err == nil {
		t.Error("a name leaving the folder was accepted")
	}
}

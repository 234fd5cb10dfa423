package s3store

// More of what the backend relies on, measured on versitygw 1.8.0 while it
// was written; docs/s3.md records the answers.

import (
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wharf-sftp/wharf/internal/s3test"
)

// A copy source is named URL-encoded; versitygw decodes a bare "+" as a
// space, so path encoding (which keeps "+") names another key, and query
// encoding with %20 for a space is what works (Backend.copySource).
func TestCopySourceEncoding(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	c := newTestClient(t, srv, bucket)
	ctx := testContext(t)
	key := "a b/ü+%x"
	put(ctx, t, c, bucket, key, []byte("z"))
	var segs []string
	for _, s := range strings.Split(key, "/") {
		segs = append(segs, url.PathEscape(s))
	}
	_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &bucket, Key: aws.String("path-encoded"),
		CopySource: aws.String(bucket + "/" + strings.Join(segs, "/"))})
	if code, status := apiCode(err); code != "NoSuchKey" || status != 404 {
		t.Errorf("a path-encoded copy source with a '+': %v; want NoSuchKey, 404", err)
	}
	b := &Backend{bucket: bucket}
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &bucket, Key: aws.String("query-encoded"),
		CopySource: aws.String(b.copySource(key))}); err != nil {
		t.Errorf("copySource(%q): %v", key, err)
	}
}

// ListMultipartUploads pages: versitygw refuses the upload-id marker it
// returned itself, so the backend pages by key marker alone.
func TestListUploadsMarker(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	c := newTestClient(t, srv, bucket)
	ctx := testContext(t)
	for _, k := range []string{"u/a", "u/b", "u/c"} {
		if _, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: aws.String(k)}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket, MaxUploads: aws.Int32(1)})
	if err != nil || !aws.ToBool(page.IsTruncated) || aws.ToString(page.NextUploadIdMarker) == "" {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	_, err = c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket, MaxUploads: aws.Int32(1),
		KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker})
	if code, status := apiCode(err); code != "InvalidArgument" || status != 400 {
		t.Errorf("the returned upload-id marker: %v (%s, %d); want InvalidArgument, 400", err, code, status)
	}
	var keys []string
	var marker *string
	for {
		page, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket, MaxUploads: aws.Int32(1), KeyMarker: marker})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range page.Uploads {
			keys = append(keys, aws.ToString(u.Key))
		}
		if !aws.ToBool(page.IsTruncated) {
			break
		}
		marker = page.NextKeyMarker
	}
	if strings.Join(keys, ",") != "u/a,u/b,u/c" {
		t.Errorf("paged by key marker: %q", keys)
	}
}

// A folder's marker cannot be a copy source: versitygw stores it as a
// directory. A folder rename writes markers anew.
func TestMarkerCopy(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	c := newTestClient(t, srv, bucket)
	ctx := testContext(t)
	put(ctx, t, c, bucket, "m/", nil)
	b := &Backend{bucket: bucket}
	_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &bucket, Key: aws.String("n/"), CopySource: aws.String(b.copySource("m/"))})
	if code, status := apiCode(err); code != "DirectoryObjectContainsData" || status != 400 {
		t.Errorf("CopyObject of a marker: %v (%s, %d); want DirectoryObjectContainsData, 400", err, code, status)
	}
	// GET of a folder's name without the "/" is NoSuchKey, as its HEAD
	// is 404: Open must look for the folder to answer EISDIR.
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String("m")})
	if code, status := apiCode(err); code != "NoSuchKey" || status != 404 {
		t.Errorf("GET of a folder's name: %v (%s, %d); want NoSuchKey, 404", err, code, status)
	}
	// A ranged GET of an empty object from 0 is InvalidRange: Open falls
	// back to HEAD.
	put(ctx, t, c, bucket, "empty", nil)
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String("empty"), Range: aws.String("bytes=0-")})
	if code, status := apiCode(err); code != "InvalidRange" || status != 416 {
		t.Errorf("GET bytes=0- of an empty object: %v (%s, %d); want InvalidRange, 416", err, code, status)
	}
}

package s3store

// What the s3 backend relies on, checked against a real versitygw 1.8.0
// through the client NewClient builds. docs/s3.md records the answers.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/wharf-sftp/wharf/internal/s3test"
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func put(ctx context.Context, t *testing.T, c *s3.Client, bucket, key string, body []byte) *s3.PutObjectOutput {
	t.Helper()
	out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
	return out
}

func get(ctx context.Context, t *testing.T, c *s3.Client, bucket, key, rng string) []byte {
	t.Helper()
	in := &s3.GetObjectInput{Bucket: &bucket, Key: &key}
	if rng != "" {
		in.Range = &rng
	}
	out, err := c.GetObject(ctx, in)
	if err != nil {
		t.Fatalf("GetObject %s %s: %v", key, rng, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("GetObject %s: read: %v", key, err)
	}
	return b
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// A PUT and a GET round trip, whole and from an offset, with
// AWS_CA_BUNDLE set as on these machines and unset: the plain-HTTP
// loopback store works either way.
func TestPutGetRoundTrip(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	for _, bundle := range []string{"machine", "unset"} {
		t.Run("AWS_CA_BUNDLE="+bundle, func(t *testing.T) {
			c := newTestClient(t, srv, bucket) // sets the machine's bundle
			if bundle == "unset" {
				t.Setenv("AWS_CA_BUNDLE", "")
				var err error
				if c, err = NewClient(testContext(t), serverConfig(t, srv, bucket)); err != nil {
					t.Fatal(err)
				}
			}
			ctx := testContext(t)
			key := "home/alice/" + bundle + ".bin"
			body := randomBytes(t, 1<<20+3)
			out := put(ctx, t, c, bucket, key, body)
			// A single PUT's ETag is the quoted MD5 of the content.
			md := md5.Sum(body)
			if want := `"` + hex.EncodeToString(md[:]) + `"`; aws.ToString(out.ETag) != want {
				t.Errorf("ETag %s; want %s", aws.ToString(out.ETag), want)
			}
			if got := get(ctx, t, c, bucket, key, ""); !bytes.Equal(got, body) {
				t.Fatalf("GetObject: %d bytes, sha256 %s; want %d bytes, %s", len(got), sum(got), len(body), sum(body))
			}
			// Reading from an offset, as a resumed download does.
			if got := get(ctx, t, c, bucket, key, "bytes=1048570-"); !bytes.Equal(got, body[1048570:]) {
				t.Fatalf("ranged GET from 1048570: %d bytes; want the last %d", len(got), len(body)-1048570)
			}
			_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key, Range: aws.String(fmt.Sprintf("bytes=%d-", len(body)))})
			if code, status := apiCode(err); code != "InvalidRange" || status != 416 {
				t.Errorf("GET from the end: %v (%s, %d); want InvalidRange, 416", err, code, status)
			}
			// An empty file is an empty object.
			put(ctx, t, c, bucket, key+".empty", nil)
			head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String(key + ".empty")})
			if err != nil || aws.ToInt64(head.ContentLength) != 0 {
				t.Fatalf("HeadObject of an empty object: %v, %v", head, err)
			}
		})
	}
}

func completed(parts ...*s3.UploadPartOutput) *types.CompletedMultipartUpload {
	var cp []types.CompletedPart
	for i, p := range parts {
		cp = append(cp, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: p.ETag})
	}
	return &types.CompletedMultipartUpload{Parts: cp}
}

func uploadPart(ctx context.Context, t *testing.T, c *s3.Client, bucket, key string, id *string, n int32, body []byte) *s3.UploadPartOutput {
	t.Helper()
	out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &bucket, Key: &key, UploadId: id, PartNumber: &n, Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("UploadPart %d of %s: %v", n, key, err)
	}
	return out
}

// A multipart upload of two 5 MiB parts and a tail, sent out of order (as
// concurrent part uploads arrive), is invisible until complete and whole
// after. A part under 5 MiB other than the last is refused at complete,
// which leaves the upload to be aborted.
func TestMultipartUpload(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	c := newTestClient(t, srv, bucket)
	ctx := testContext(t)

	const key = "home/bob/big.bin"
	data := randomBytes(t, 2*MinPartSize+123457)
	mu, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	p3 := uploadPart(ctx, t, c, bucket, key, mu.UploadId, 3, data[2*MinPartSize:])
	p1 := uploadPart(ctx, t, c, bucket, key, mu.UploadId, 1, data[:MinPartSize])
	p2 := uploadPart(ctx, t, c, bucket, key, mu.UploadId, 2, data[MinPartSize:2*MinPartSize])

	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err == nil {
		t.Fatal("the object is visible before CompleteMultipartUpload")
	}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil || len(list.Contents) != 0 || len(list.CommonPrefixes) != 0 {
		t.Fatalf("listing during the upload: %+v, %v; want nothing", list, err)
	}
	parts, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: mu.UploadId})
	if err != nil || len(parts.Parts) != 3 || aws.ToInt64(parts.Parts[2].Size) != 123457 {
		t.Fatalf("ListParts: %+v, %v; want 3 parts, the last of 123457 bytes", parts, err)
	}
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil || len(ups.Uploads) != 1 || aws.ToString(ups.Uploads[0].Key) != key {
		t.Fatalf("ListMultipartUploads: %+v, %v; want this upload", ups, err)
	}
	// The start-up sweep ages uploads by this time.
	if at := aws.ToTime(ups.Uploads[0].Initiated); time.Since(at) > time.Hour || time.Until(at) > time.Minute {
		t.Errorf("upload initiated at %v; want about now", at)
	}

	done, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), UploadId: mu.UploadId, MultipartUpload: completed(p1, p2, p3)})
	if err != nil {
		t.Fatal(err)
	}
	if etag := aws.ToString(done.ETag); !strings.HasSuffix(etag, `-3"`) {
		t.Errorf("multipart ETag %s; want the \"-3\" suffix of a 3-part upload", etag)
	}
	if got := get(ctx, t, c, bucket, key, ""); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, sha256 %s; want %d, %s", len(got), sum(got), len(data), sum(data))
	}
	ups, err = c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil || len(ups.Uploads) != 0 {
		t.Fatalf("ListMultipartUploads after complete: %+v, %v; want none", ups.Uploads, err)
	}

	// The 5 MiB minimum is checked at complete, not per part.
	small, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("small")})
	if err != nil {
		t.Fatal(err)
	}
	s1 := uploadPart(ctx, t, c, bucket, "small", small.UploadId, 1, []byte("under five MiB"))
	s2 := uploadPart(ctx, t, c, bucket, "small", small.UploadId, 2, []byte("tail"))
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String("" + bucket), Key: aws.String("small"), UploadId: small.UploadId, MultipartUpload: completed(s1, s2)})
	if code, status := apiCode(err); code != "EntityTooSmall" || status != 400 {
		t.Fatalf("complete with a small first part: %v (%s, %d); want EntityTooSmall, 400", err, code, status)
	}
	if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("small"), UploadId: small.UploadId}); err != nil {
		t.Fatalf("abort after a refused complete: %v", err)
	}
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String("small"), UploadId: small.UploadId,
		PartNumber: aws.Int32(3), Body: bytes.NewReader([]byte("late"))})
	if code, status := apiCode(err); code != "NoSuchUpload" || status != 404 {
		t.Fatalf("part after abort: %v (%s, %d); want NoSuchUpload, 404", err, code, status)
	}
}

// A folder of 1,480 files and 20 subfolders lists with a delimiter in
// pages of 100 entries, where a subfolder (common prefix) counts as an
// entry as on AWS: every name once, in order, across 15 pages.
func TestListPagination(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	c := newTestClient(t, srv, bucket)
	ctx := testContext(t)

	const files, folders, pageSize = 1480, 20, 100
	var keys []string
	for i := range files {
		keys = append(keys, fmt.Sprintf("home/f%04d", i))
	}
	for i := range folders {
		keys = append(keys, fmt.Sprintf("home/sub%02d/x", i))
	}
	keys = append(keys, "other/not-listed") // beside the listed prefix
	// Eight PUTs at a time: bounded, and fast enough on two shared cores.
	putStart := time.Now()
	work := make(chan string)
	errs := make(chan error, len(keys))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for k := range work {
				_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader(k)})
				if err != nil {
					errs <- fmt.Errorf("%s: %w", k, err)
				}
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("PutObject: %v", err)
	}
	putTime := time.Since(putStart)

	listStart := time.Now()
	var names []string
	pages := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{
		Bucket: aws.String(bucket), Prefix: aws.String("home/"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(pageSize)})
	for p.HasMorePages() {
		if pages++; pages > 100 {
			t.Fatal("more than 100 pages: the listing does not end")
		}
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		n := len(page.Contents) + len(page.CommonPrefixes)
		if n > pageSize || int(aws.ToInt32(page.KeyCount)) != n {
			t.Errorf("page %d: %d entries, KeyCount %d; want at most %d and equal", pages, n, aws.ToInt32(page.KeyCount), pageSize)
		}
		if aws.ToBool(page.IsTruncated) != (aws.ToString(page.NextContinuationToken) != "") {
			t.Errorf("page %d: IsTruncated %v with token %q", pages, aws.ToBool(page.IsTruncated), aws.ToString(page.NextContinuationToken))
		}
		// Within a page S3 returns files and folders in two lists, each
		// sorted; merged, the pages run in key order.
		var entries []string
		for _, o := range page.Contents {
			entries = append(entries, aws.ToString(o.Key))
		}
		for _, cp := range page.CommonPrefixes {
			entries = append(entries, aws.ToString(cp.Prefix))
		}
		slices.Sort(entries)
		names = append(names, entries...)
	}
	if len(names) != files+folders || !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Fatalf("%d names over %d pages (sorted %v); want %d distinct sorted names", len(names), pages, slices.IsSorted(names), files+folders)
	}
	if pages != (files+folders)/pageSize {
		t.Errorf("%d pages; want %d: a common prefix counts toward MaxKeys", pages, (files+folders)/pageSize)
	}
	for _, n := range names {
		if strings.HasSuffix(n, "/") {
			if !strings.HasPrefix(n, "home/sub") {
				t.Errorf("unexpected folder %q", n)
			}
		} else if _, ok := Path("home", n); !ok {
			t.Errorf("listed key %q does not map to a path", n)
		}
	}
	t.Logf("%d PUTs (8 at a time) in %v; %d names in %d pages of at most %d in %v",
		len(keys), putTime.Round(time.Millisecond), len(names), pages, pageSize, time.Since(listStart).Round(time.Millisecond))

	// A page holds at most 1,000 keys, whatever MaxKeys asks for.
	big, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("home/"), MaxKeys: aws.Int32(5000)})
	if err != nil || len(big.Contents) != 1000 || !aws.ToBool(big.IsTruncated) {
		t.Errorf("MaxKeys 5000: %d keys, truncated %v, %v; want 1000, truncated", len(big.Contents), aws.ToBool(big.IsTruncated), err)
	}
}

// If-None-Match: * makes a PUT and a CompleteMultipartUpload fail with
// 412 PreconditionFailed when the key exists, leaving the object as it was
// and the multipart upload in place to be retried or aborted.
func TestIfNoneMatch(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	w := &wire{}
	c := newTestClient(t, srv, bucket, recordWire(w))
	ctx := testContext(t)
	const key = "home/carol/report.csv"

	putNew := func(body string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), IfNoneMatch: aws.String("*"), Body: strings.NewReader(body)})
		return err
	}
	if err := putNew("first"); err != nil {
		t.Fatalf("first PUT with If-None-Match: *: %v", err)
	}
	err := putNew("second")
	if code, status := apiCode(err); code != "PreconditionFailed" || status != 412 {
		t.Fatalf("second PUT: %v (%s, %d); want PreconditionFailed, 412", err, code, status)
	}
	if got := get(ctx, t, c, bucket, key, ""); string(got) != "first" {
		t.Fatalf("after the refused PUT the object holds %q; want \"first\"", got)
	}

	mu, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	part := uploadPart(ctx, t, c, bucket, key, mu.UploadId, 1, []byte("multipart"))
	complete := func() error {
		_, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
			UploadId: mu.UploadId, IfNoneMatch: aws.String("*"), MultipartUpload: completed(part)})
		return err
	}
	err = complete()
	if code, status := apiCode(err); code != "PreconditionFailed" || status != 412 {
		t.Fatalf("complete over an existing key: %v (%s, %d); want PreconditionFailed, 412", err, code, status)
	}
	if got := get(ctx, t, c, bucket, key, ""); string(got) != "first" {
		t.Fatalf("after the refused complete the object holds %q; want \"first\"", got)
	}
	if _, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: mu.UploadId}); err != nil {
		t.Fatalf("the upload is gone after a refused complete: %v", err)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	if err := complete(); err != nil {
		t.Fatalf("complete once the key is free: %v", err)
	}
	if got := get(ctx, t, c, bucket, key, ""); string(got) != "multipart" {
		t.Fatalf("object holds %q; want \"multipart\"", got)
	}

	// CopyObject is different: versitygw 1.8.0 ignores If-None-Match there
	// and overwrites, so a rename must not count on it.
	put(ctx, t, c, bucket, "home/carol/other", []byte("other"))
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		CopySource: aws.String(bucket + "/home/carol/other"), IfNoneMatch: aws.String("*")}); err != nil {
		t.Fatalf("CopyObject with If-None-Match: * onto an existing key: %v", err)
	}
	if sent := w.exchanges(); sent[len(sent)-1].req.Get("If-None-Match") != "*" {
		t.Fatal("the CopyObject request carried no If-None-Match: *")
	}
	got := string(get(ctx, t, c, bucket, key, ""))
	if got != "other" {
		t.Fatalf("after CopyObject with If-None-Match: * the object holds %q", got)
	}
	t.Logf("versitygw 1.8.0 ignores If-None-Match: * on CopyObject: the existing object was overwritten")
}

// UploadPartCopy copies an existing object, whole or a range of it, into
// a part server-side: how an append or a resume starts without the daemon
// reading the object. The source may be the key being written (an append
// in place), and CopySourceIfMatch guards against the source changing.
func TestUploadPartCopy(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	w := &wire{}
	c := newTestClient(t, srv, bucket, recordWire(w))
	ctx := testContext(t)

	src := randomBytes(t, MinPartSize+4321)
	tail := randomBytes(t, 1000)
	srcPut := put(ctx, t, c, bucket, "home/d/src", src)

	copyPart := func(key string, id *string, n int32, rng, ifMatch string) (*s3.UploadPartCopyOutput, error) {
		in := &s3.UploadPartCopyInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: id, PartNumber: aws.Int32(n),
			CopySource: aws.String(bucket + "/home/d/src")}
		if rng != "" {
			in.CopySourceRange = aws.String(rng)
		}
		if ifMatch != "" {
			in.CopySourceIfMatch = aws.String(ifMatch)
		}
		return c.UploadPartCopy(ctx, in)
	}
	finish := func(key string, id *string, etags ...*string) {
		t.Helper()
		var parts []types.CompletedPart
		for i, e := range etags {
			parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: e})
		}
		if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
			UploadId: id, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
			t.Fatalf("complete %s: %v", key, err)
		}
	}

	// A new object: the whole source, then new bytes.
	mu, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("home/d/appended")})
	if err != nil {
		t.Fatal(err)
	}
	before := len(w.exchanges())
	cp, err := copyPart("home/d/appended", mu.UploadId, 1, "", aws.ToString(srcPut.ETag))
	if err != nil {
		t.Fatalf("UploadPartCopy of the whole source: %v", err)
	}
	copyReq := w.exchanges()[before]
	if got := copyReq.req.Get("X-Amz-Copy-Source"); got == "" || copyReq.req.Get("Content-Length") != "" && copyReq.req.Get("Content-Length") != "0" {
		t.Errorf("UploadPartCopy request: copy source %q, Content-Length %q; want a copy with no body", got, copyReq.req.Get("Content-Length"))
	}
	// A stale ETag is refused: the source changed since the upload began.
	_, err = copyPart("home/d/appended", mu.UploadId, 3, "", `"00000000000000000000000000000000"`)
	if code, status := apiCode(err); code != "PreconditionFailed" || status != 412 {
		t.Errorf("UploadPartCopy with a stale CopySourceIfMatch: %v (%s, %d); want PreconditionFailed, 412", err, code, status)
	}

	pt := uploadPart(ctx, t, c, bucket, "home/d/appended", mu.UploadId, 2, tail)
	finish("home/d/appended", mu.UploadId, cp.CopyPartResult.ETag, pt.ETag)
	if got := get(ctx, t, c, bucket, "home/d/appended", ""); !bytes.Equal(got, append(slices.Clone(src), tail...)) {
		t.Fatalf("source + tail: read back %d bytes; want %d", len(got), len(src)+len(tail))
	}

	// In place: the key's own first 5 MiB, then new bytes.
	mu, err = c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("home/d/src")})
	if err != nil {
		t.Fatal(err)
	}
	cp, err = copyPart("home/d/src", mu.UploadId, 1, fmt.Sprintf("bytes=0-%d", MinPartSize-1), "")
	if err != nil {
		t.Fatalf("UploadPartCopy of a range of the key itself: %v", err)
	}
	pt = uploadPart(ctx, t, c, bucket, "home/d/src", mu.UploadId, 2, tail)
	finish("home/d/src", mu.UploadId, cp.CopyPartResult.ETag, pt.ETag)
	if got := get(ctx, t, c, bucket, "home/d/src", ""); !bytes.Equal(got, append(slices.Clone(src[:MinPartSize]), tail...)) {
		t.Fatalf("in-place append: read back %d bytes; want %d", len(got), MinPartSize+len(tail))
	}
}

// versitygw's posix backend stores objects as files, so it cleans keys
// that are no clean path before storing them, or refuses them: the
// "other tools' odd keys" cases (a//b, ../x) cannot be made on it and
// need an in-process fake. Recorded here so that a later versitygw that
// changes this shows up.
func TestKeyNormalisation(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	c := newTestClient(t, srv, bucket)
	ctx := testContext(t)

	stored := map[string]string{"x//y": "x/y", "./y": "y", "/lead": "lead", "q/../r": "r", "d/./e": "d/e"}
	for k := range stored {
		put(ctx, t, c, bucket, k, []byte("odd"))
	}
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("../x"), Body: strings.NewReader("odd")})
	if _, status := apiCode(err); status != 400 {
		t.Errorf("PUT ../x: %v; want 400", err)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("z/"), Body: strings.NewReader("content")})
	if code, status := apiCode(err); code != "DirectoryObjectContainsData" || status != 400 {
		t.Errorf("PUT z/ with content: %v (%s, %d); want DirectoryObjectContainsData, 400", err, code, status)
	}
	put(ctx, t, c, bucket, "m/", nil) // a folder marker

	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range list.Contents {
		got = append(got, aws.ToString(o.Key))
	}
	want := []string{"d/e", "lead", "m/", "r", "x/y", "y"}
	if !slices.Equal(got, want) {
		t.Fatalf("keys stored: %q; want %q", got, want)
	}
	// With a delimiter the marker is a folder, and inside it the marker
	// lists as an entry of its own (key "m/"), which a store must skip.
	list, err = c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("m/"), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != "m/" || len(list.CommonPrefixes) != 0 {
		t.Fatalf("listing m/: %d contents, %d prefixes; want the marker alone", len(list.Contents), len(list.CommonPrefixes))
	}
}

// How the client signs a body, which decides how the backend must hand
// parts to it: over plain HTTP the SDK signs the SHA-256 of the payload,
// so it reads each body twice and refuses one it cannot seek; over HTTPS
// it sends UNSIGNED-PAYLOAD and streams any reader.
func TestPayloadSigning(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[secure], func(t *testing.T) {
			start := s3test.Start
			if secure {
				start = s3test.StartTLS
			}
			srv := start(t)
			bucket := srv.NewBucket(t)
			isolateAWS(t)
			machineBundle(t)
			if secure {
				t.Setenv("AWS_CA_BUNDLE", srv.CAFile)
			}
			w := &wire{}
			ctx := testContext(t)
			c, err := NewClient(ctx, serverConfig(t, srv, bucket), recordWire(w))
			if err != nil {
				t.Fatal(err)
			}
			put(ctx, t, c, bucket, "seekable", []byte("hello"))
			sha := w.exchanges()[0].req.Get("X-Amz-Content-Sha256")
			if want := map[bool]string{false: sum([]byte("hello")), true: "UNSIGNED-PAYLOAD"}[secure]; sha != want {
				t.Errorf("X-Amz-Content-Sha256 %q; want %q", sha, want)
			}
			// io.MultiReader hides bytes.Reader's Seek.
			_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("stream"),
				Body: io.MultiReader(strings.NewReader("hello")), ContentLength: aws.Int64(5)})
			if secure && err != nil {
				t.Errorf("an unseekable body over https: %v", err)
			}
			if !secure && (err == nil || !strings.Contains(err.Error(), "not seekable")) {
				t.Errorf("an unseekable body over http: %v; want \"not seekable\"", err)
			}
		})
	}
}

// Folders on versitygw's posix backend behave as on S3 where the s3
// backend can see them: a folder without a marker is only a common prefix
// (HEAD of "x" and "x/" is 404), deleting a marker leaves the folder
// implicit while it has objects, and a folder vanishes with its last
// object. Unlike S3, a file and a folder of one name cannot coexist: the
// store refuses the second with 409.
func TestFolders(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	c := newTestClient(t, srv, bucket)
	ctx := testContext(t)

	status := func(key string) int {
		_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err == nil {
			return 200
		}
		_, st := apiCode(err)
		return st
	}
	root := func() []string {
		l, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Delimiter: aws.String("/")})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, o := range l.Contents {
			names = append(names, aws.ToString(o.Key))
		}
		for _, p := range l.CommonPrefixes {
			names = append(names, aws.ToString(p.Prefix))
		}
		return names
	}
	del := func(key string) {
		t.Helper()
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
			t.Fatalf("DeleteObject %s: %v", key, err)
		}
	}

	put(ctx, t, c, bucket, "x/y", []byte("data"))
	put(ctx, t, c, bucket, "m/", nil)
	put(ctx, t, c, bucket, "m/child", []byte("c"))
	for key, want := range map[string]int{"x": 404, "x/": 404, "m": 404, "m/": 200, "x/y": 200} {
		if got := status(key); got != want {
			t.Errorf("HEAD %q: %d; want %d", key, got, want)
		}
	}
	if h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("m/")}); err != nil ||
		aws.ToString(h.ContentType) != "application/x-directory" || aws.ToInt64(h.ContentLength) != 0 {
		t.Errorf("HEAD of the marker m/: %+v, %v; want an empty application/x-directory", h, err)
	}
	del("m/")
	if got := root(); !slices.Equal(got, []string{"m/", "x/"}) || status("m/") != 404 {
		t.Errorf("after deleting the marker m/: root lists %q, HEAD m/ %d; want m/ implicit", got, status("m/"))
	}
	del("x/y")
	del("m/child")
	del("never-existed") // deleting a missing key succeeds, as on S3
	if got := root(); len(got) != 0 {
		t.Errorf("after deleting every object: root lists %q; want nothing", got)
	}

	put(ctx, t, c, bucket, "f/g", []byte("1"))
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("f"), Body: strings.NewReader("")})
	if code, st := apiCode(err); code != "ExistingObjectIsDirectory" || st != 409 {
		t.Errorf("PUT f beside folder f/: %v (%s, %d); want ExistingObjectIsDirectory, 409", err, code, st)
	}
	put(ctx, t, c, bucket, "h", []byte("1"))
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("h/i"), Body: strings.NewReader("")})
	if code, st := apiCode(err); code != "ObjectParentIsFile" || st != 409 {
		t.Errorf("PUT h/i under file h: %v (%s, %d); want ObjectParentIsFile, 409", err, code, st)
	}
}

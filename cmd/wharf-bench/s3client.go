package main

// The s3 rows' direct client: what a Go program does with aws-sdk-go-v2's
// service/s3 alone, with the part size and concurrency wharf is given. Its
// rates are the store's own ceiling for any gateway in front of it. It runs
// its own part loop (as SFTPGo does) rather than feature/s3/manager, so
// that the settings it measures with are the ones written here.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

const (
	// s3RequestTimeout bounds one request without file data (create,
	// complete, a listing page, an empty object).
	s3RequestTimeout = time.Minute
	// s3PartTimeout bounds one part's upload or one range's download.
	s3PartTimeout = 5 * time.Minute
	// s3ListPage is the keys per listing page, S3's maximum and wharf's
	// ListPage default.
	s3ListPage = 1000
)

// directS3 is the bench's own S3 client on the store's bucket.
type directS3 struct {
	c           *s3.Client
	bucket      string
	partSize    int64
	concurrency int
}

// newS3Client builds a client of endpoint without the SDK's config loader,
// so that no AWS_* variable of the environment (AWS_CA_BUNDLE among them)
// reaches it, and with checksums only where required: many S3-compatible
// stores reject the CRC32 the SDK sends by default.
func newS3Client(endpoint, region, accessKey, secretKey string, conns int) *s3.Client {
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.Proxy = nil // loopback
		// Enough idle connections for every request in flight, so that
		// none pays a new connection per request.
		tr.MaxIdleConnsPerHost = max(conns, tr.MaxIdleConnsPerHost)
	})
	return s3.New(s3.Options{
		HTTPClient:                 httpClient,
		BaseEndpoint:               aws.String(endpoint),
		Region:                     region,
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// partCount is how many parts of partSize hold size bytes (the last one
// shorter); an empty file is one empty object, no parts.
func partCount(size, partSize int64) int {
	if size <= 0 || partSize <= 0 {
		return 0
	}
	return int((size + partSize - 1) / partSize)
}

// partRange is the offset and length of part i (from 0) of a size-byte
// file cut into partSize parts.
func partRange(i int, size, partSize int64) (off, n int64) {
	off = int64(i) * partSize
	return off, min(partSize, size-off)
}

// forEachBounded calls fn(ctx, i) for i in [0, n) with at most workers
// calls at once, in order of i. The first error cancels the calls not yet
// started (and the context of those running) and is returned once every
// started call has returned.
func forEachBounded(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     int
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr != nil || next >= n {
			return 0, false
		}
		next++
		return next - 1, true
	}
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	for range min(max(workers, 1), n) {
		wg.Go(func() {
			for {
				i, ok := take()
				if !ok {
					return
				}
				if err := ctx.Err(); err != nil {
					fail(err)
					return
				}
				if err := fn(ctx, i); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// upload sends the file at path as key: a multipart upload of d.partSize
// parts, d.concurrency of them in flight, each worker reading its part
// into a buffer of its own (as a seekable body: over plain HTTP the SDK
// signs each body's SHA-256, as it does for wharf). A file within one
// part is one PutObject, as wharf does. Memory: concurrency × partSize.
func (d *directS3) upload(ctx context.Context, key, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("direct upload: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("direct upload: %w", err)
	}
	size := fi.Size()
	parts := partCount(size, d.partSize)
	if parts <= 1 {
		data, err := io.ReadAll(io.LimitReader(f, d.partSize))
		if err != nil {
			return fmt.Errorf("direct upload: %w", err)
		}
		rctx, cancel := context.WithTimeout(ctx, s3PartTimeout)
		defer cancel()
		if _, err := d.c.PutObject(rctx, &s3.PutObjectInput{Bucket: &d.bucket, Key: &key, Body: bytes.NewReader(data)}); err != nil {
			return fmt.Errorf("direct upload: put %s: %w", key, err)
		}
		return nil
	}

	rctx, cancel := context.WithTimeout(ctx, s3RequestTimeout)
	created, err := d.c.CreateMultipartUpload(rctx, &s3.CreateMultipartUploadInput{Bucket: &d.bucket, Key: &key})
	cancel()
	if err != nil {
		return fmt.Errorf("direct upload: create multipart upload of %s: %w", key, err)
	}
	abort := func(cause error) error {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s3RequestTimeout)
		defer cancel()
		if _, err := d.c.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &d.bucket, Key: &key, UploadId: created.UploadId}); err != nil {
			return errors.Join(cause, fmt.Errorf("abort multipart upload: %w", err))
		}
		return cause
	}

	completed := make([]types.CompletedPart, parts) // each worker writes its own index
	bufs := make(chan []byte, d.concurrency)        // a buffer per worker, allocated on first use
	for range d.concurrency {
		bufs <- nil
	}
	err = forEachBounded(ctx, parts, d.concurrency, func(ctx context.Context, i int) error {
		buf := <-bufs
		defer func() { bufs <- buf }()
		if buf == nil {
			buf = make([]byte, d.partSize)
		}
		off, n := partRange(i, size, d.partSize)
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return fmt.Errorf("read part %d: %w", i+1, err)
		}
		pctx, cancel := context.WithTimeout(ctx, s3PartTimeout)
		defer cancel()
		num := int32(i + 1)
		out, err := d.c.UploadPart(pctx, &s3.UploadPartInput{Bucket: &d.bucket, Key: &key, UploadId: created.UploadId,
			PartNumber: &num, Body: bytes.NewReader(buf[:n]), ContentLength: &n})
		if err != nil {
			return fmt.Errorf("upload part %d: %w", num, err)
		}
		completed[i] = types.CompletedPart{ETag: out.ETag, PartNumber: &num}
		return nil
	})
	if err != nil {
		return fmt.Errorf("direct upload of %s: %w", key, abort(err))
	}
	rctx, cancel = context.WithTimeout(ctx, s3RequestTimeout)
	defer cancel()
	if _, err := d.c.CompleteMultipartUpload(rctx, &s3.CompleteMultipartUploadInput{Bucket: &d.bucket, Key: &key,
		UploadId: created.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: completed}}); err != nil {
		return fmt.Errorf("direct upload: complete %s: %w", key, abort(err))
	}
	return nil
}

// download writes the size-byte object key to path with ranged GETs of
// d.partSize, d.concurrency at once, each streamed to its place in the
// file.
func (d *directS3) download(ctx context.Context, key, path string, size int64) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("direct download: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("direct download: %w", cerr)
		}
	}()
	err = forEachBounded(ctx, partCount(size, d.partSize), d.concurrency, func(ctx context.Context, i int) error {
		off, n := partRange(i, size, d.partSize)
		pctx, cancel := context.WithTimeout(ctx, s3PartTimeout)
		defer cancel()
		out, err := d.c.GetObject(pctx, &s3.GetObjectInput{Bucket: &d.bucket, Key: &key, Range: aws.String(byteRange(off, n))})
		if err != nil {
			return fmt.Errorf("get %s: %w", byteRange(off, n), err)
		}
		defer out.Body.Close()
		got, err := io.Copy(io.NewOffsetWriter(f, off), io.LimitReader(out.Body, n+1))
		if err != nil {
			return fmt.Errorf("read %s: %w", byteRange(off, n), err)
		}
		if got != n {
			return fmt.Errorf("read %s: %d bytes, want %d", byteRange(off, n), got, n)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("direct download of %s: %w", key, err)
	}
	return nil
}

// downloadStream writes the object key to path from one GET, as one
// stream: what a gateway that reads one stream per download (wharf does)
// can get from the store at most.
func (d *directS3) downloadStream(ctx context.Context, key, path string, timeout time.Duration) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("direct download: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("direct download: %w", cerr)
		}
	}()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := d.c.GetObject(rctx, &s3.GetObjectInput{Bucket: &d.bucket, Key: &key})
	if err != nil {
		return fmt.Errorf("direct download: get %s: %w", key, err)
	}
	defer out.Body.Close()
	if _, err := io.Copy(f, out.Body); err != nil {
		return fmt.Errorf("direct download: read %s: %w", key, err)
	}
	return nil
}

// byteRange is the HTTP Range of n bytes from off.
func byteRange(off, n int64) string {
	return "bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+n-1, 10)
}

// putEmpty creates the empty objects prefix+name(i) for i in [0, n),
// workers at once, calling progress after every 10% of them.
func (d *directS3) putEmpty(ctx context.Context, prefix string, n, workers int, name func(int) string, progress func(done int)) error {
	var mu sync.Mutex
	done := 0
	return forEachBounded(ctx, n, workers, func(ctx context.Context, i int) error {
		rctx, cancel := context.WithTimeout(ctx, s3RequestTimeout)
		defer cancel()
		key := prefix + name(i)
		if _, err := d.c.PutObject(rctx, &s3.PutObjectInput{Bucket: &d.bucket, Key: &key, Body: bytes.NewReader(nil)}); err != nil {
			return fmt.Errorf("create %s: %w", key, err)
		}
		mu.Lock()
		defer mu.Unlock()
		done++
		if step := max(n/10, 1); done%step == 0 || done == n {
			progress(done)
		}
		return nil
	})
}

// list pages through the folder prefix as wharf's s3 store does
// (ListObjectsV2 with delimiter "/", s3ListPage keys a page) and returns
// every entry's name relative to prefix, one a line. Pages are bounded by
// maxEntries: a store that pages forever fails the row.
func (d *directS3) list(ctx context.Context, prefix string, maxEntries int) (string, int, error) {
	var names strings.Builder
	entries, pages := 0, 0
	maxPages := maxEntries/s3ListPage + 2
	var token *string
	for {
		if pages >= maxPages {
			return "", pages, fmt.Errorf("direct listing of %s: more than %d pages for at most %d entries", prefix, maxPages, maxEntries)
		}
		rctx, cancel := context.WithTimeout(ctx, s3RequestTimeout)
		out, err := d.c.ListObjectsV2(rctx, &s3.ListObjectsV2Input{Bucket: &d.bucket, Prefix: &prefix,
			Delimiter: aws.String("/"), MaxKeys: aws.Int32(s3ListPage), ContinuationToken: token})
		cancel()
		if err != nil {
			return "", pages, fmt.Errorf("direct listing of %s, page %d: %w", prefix, pages+1, err)
		}
		pages++
		for _, o := range out.Contents {
			names.WriteString(strings.TrimPrefix(aws.ToString(o.Key), prefix))
			names.WriteByte('\n')
			entries++
		}
		for _, p := range out.CommonPrefixes {
			names.WriteString(strings.TrimSuffix(strings.TrimPrefix(aws.ToString(p.Prefix), prefix), "/"))
			names.WriteByte('\n')
			entries++
		}
		if !aws.ToBool(out.IsTruncated) {
			return names.String(), pages, nil
		}
		if out.NextContinuationToken == nil {
			return "", pages, fmt.Errorf("direct listing of %s: page %d is truncated without a continuation token", prefix, pages)
		}
		token = out.NextContinuationToken
	}
}

// remove deletes keys, ignoring those already gone (S3's DeleteObject
// succeeds on a missing key).
func (d *directS3) remove(ctx context.Context, keys ...string) error {
	var errs []error
	for _, key := range slices.Compact(slices.Sorted(slices.Values(keys))) {
		rctx, cancel := context.WithTimeout(ctx, s3RequestTimeout)
		_, err := d.c.DeleteObject(rctx, &s3.DeleteObjectInput{Bucket: &d.bucket, Key: aws.String(key)})
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

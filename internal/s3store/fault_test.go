package s3store

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// noRetries makes an injected failure fail the request at once.
func noRetries(_ *Config, o *Options) {
	o.Client = append(o.Client, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
}

// A write far beyond the reorder window (a client that writes the end
// first) goes to the spool, which is unlinked, bounded, and empty again
// once the upload ends.
func TestSpool(t *testing.T) {
	e := newEnv(t)
	data := randomBytes(t, 40<<20)
	u := mustCreate(t, e.home, "/endfirst", vfs.CreateOptions{})
	end := 39 << 20
	if _, err := u.WriteAt(data[end:], int64(end)); err != nil {
		t.Fatal(err)
	}
	if got := e.b.spoolUsed.Load(); got != 1<<20 {
		t.Errorf("spooled %d bytes; want the 1 MiB written far ahead", got)
	}
	if ents, _ := os.ReadDir(e.b.o.SpoolDir); len(ents) != 0 {
		t.Errorf("the spool folder shows %d files; want the spool unlinked", len(ents))
	}
	writeOutOfOrder(t, u, data[:end], 0, 32<<10, 8, true)
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	got, _ := e.object(t, e.prefix+"endfirst")
	equal(t, "object written end first", got, data)
	if n := e.b.spoolUsed.Load(); n != 0 {
		t.Errorf("%d spool bytes still counted after Commit", n)
	}

	// Spooled bytes beyond a gap are not part of the partial.
	u = mustCreate(t, e.home, "/gap", vfs.CreateOptions{})
	if _, err := u.WriteAt(data[end:], int64(end)); err != nil {
		t.Fatal(err)
	}
	writeOutOfOrder(t, u, data[:7<<20], 0, 32<<10, 4, false)
	if err := u.Abort(errBroken); err != nil {
		t.Fatal(err)
	}
	if fi, err := e.home.(vfs.Resumer).Partial("/gap"); err != nil || fi.Size() != 7<<20 {
		t.Errorf("Partial: %v, %v; want 7 MiB", fi, err)
	}
}

func TestSpoolBound(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  envOption
	}{
		{"full", func(_ *Config, o *Options) { o.SpoolMax = 1 << 20 }},
		{"none", func(_ *Config, o *Options) { o.SpoolDir = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opt)
			u := mustCreate(t, e.home, "/f", vfs.CreateOptions{})
			_, err := u.WriteAt(make([]byte, 2<<20), 30<<20)
			wantErr(t, "a far write beyond the spool's bound", err, syscall.ENOSPC)
			// The upload goes on with what fits.
			data := randomBytes(t, 6<<20)
			writeOutOfOrder(t, u, data, 0, 32<<10, 4, false)
			if err := u.Commit(); err != nil {
				t.Fatal(err)
			}
			got, _ := e.object(t, e.prefix+"f")
			equal(t, "object", got, data)
		})
	}
}

func isPart(n string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == n
	}
}

func isComplete(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Query().Has("uploadId")
}

func isPutObject(r *http.Request) bool {
	return r.Method == http.MethodPut && !r.URL.Query().Has("uploadId") && !strings.Contains(r.URL.Path, recordsDir)
}

// A failure of the bucket at any step of a commit keeps the upload as the
// name's partial, which a resume completes.
func TestCommitFailureKeepsPartial(t *testing.T) {
	for _, tc := range []struct {
		name     string
		size     int
		fail     func(*http.Request) bool
		wantKept int
	}{
		{"a part fails", 17<<20 + 5, isPart("3"), 10 << 20},
		{"complete fails", 17<<20 + 5, isComplete, 17<<20 + 5},
		{"the last part fails", 17<<20 + 5, isPart("4"), 17<<20 + 5}, // its bytes go to the record
		{"put fails", 1000, isPutObject, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, noRetries)
			data := randomBytes(t, tc.size)
			u := mustCreate(t, e.home, "/f", vfs.CreateOptions{})
			e.count.failWhen(tc.fail)
			// A failed part fails the writes after it: write in order
			// until then.
			var werr error
			for o := 0; o < len(data) && werr == nil; o += 32 << 10 {
				_, werr = u.WriteAt(data[o:min(o+32<<10, len(data))], int64(o))
			}
			err := u.Commit()
			if err == nil {
				t.Fatal("Commit succeeded through an injected failure")
			}
			e.count.failWhen(nil)
			if _, ok := e.object(t, e.prefix+"f"); ok {
				t.Fatal("a failed commit made an object")
			}
			fi, err := e.home.(vfs.Resumer).Partial("/f")
			if err != nil || fi.Size() != int64(tc.wantKept) {
				t.Fatalf("Partial: %v, %v; want %d bytes", fi, err, tc.wantKept)
			}
			u = mustCreate(t, e.home, "/f", vfs.CreateOptions{Continue: true})
			writeOutOfOrder(t, u, data[tc.wantKept:], int64(tc.wantKept), 32<<10, 4, false)
			if err := u.Commit(); err != nil {
				t.Fatal(err)
			}
			got, _ := e.object(t, e.prefix+"f")
			equal(t, "resumed after a failed commit", got, data)
			if ups, recs := e.uploads(t), e.records(t); len(ups) != 0 || len(recs) != 0 {
				t.Errorf("left: uploads %q, records %q", ups, recs)
			}
		})
	}
}

// The newest failure replaces an older partial; a second upload of a
// name whose partial another continues starts from the file; a
// completed upload drops the partial.
func TestPartialLifecycle(t *testing.T) {
	e := newEnv(t)
	st := e.home
	keep := func(data string) {
		t.Helper()
		u := mustCreate(t, st, "/f", vfs.CreateOptions{})
		if _, err := u.WriteAt([]byte(data), 0); err != nil {
			t.Fatal(err)
		}
		if err := u.Abort(errBroken); err != nil {
			t.Fatal(err)
		}
	}
	keep("first")
	keep("second!")
	if fi, err := st.(vfs.Resumer).Partial("/f"); err != nil || fi.Size() != 7 {
		t.Fatalf("Partial after two failures: %v, %v; want the second's 7 bytes", fi, err)
	}
	if ups := e.uploads(t); len(ups) != 1 {
		t.Errorf("the replaced partial's upload survives: %q", ups)
	}

	a := mustCreate(t, st, "/f", vfs.CreateOptions{Continue: true})
	b := mustCreate(t, st, "/f", vfs.CreateOptions{Continue: true})
	if fi, _ := a.Stat(); fi.Size() != 7 {
		t.Errorf("the first resume starts at %d; want 7", fi.Size())
	}
	if fi, _ := b.Stat(); fi.Size() != 0 {
		t.Errorf("the second resume starts at %d; want 0 (the partial is taken, and no file)", fi.Size())
	}
	if err := b.Abort(vfs.ErrDetached); err != nil {
		t.Fatal(err)
	}
	// Nothing written: the partial stands as it was.
	if err := a.Abort(errBroken); err != nil {
		t.Fatal(err)
	}
	if fi, err := st.(vfs.Resumer).Partial("/f"); err != nil || fi.Size() != 7 {
		t.Fatalf("Partial after an empty resume: %v, %v", fi, err)
	}
	// A fresh upload that completes drops it.
	u := mustCreate(t, st, "/f", vfs.CreateOptions{})
	if _, err := u.WriteAt([]byte("whole"), 0); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.(vfs.Resumer).Partial("/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Partial after a completed upload: %v", err)
	}
	if ups, recs := e.uploads(t), e.records(t); len(ups) != 0 || len(recs) != 0 {
		t.Errorf("left: uploads %q, records %q", ups, recs)
	}
	// A resumed partial detached keeps nothing.
	keep("again")
	u = mustCreate(t, st, "/f", vfs.CreateOptions{Continue: true})
	if err := u.Abort(vfs.ErrDetached); err != nil {
		t.Fatal(err)
	}
	if ups, recs := e.uploads(t), e.records(t); len(ups) != 0 || len(recs) != 0 {
		t.Errorf("a detached resume left: uploads %q, records %q", ups, recs)
	}
	if got, _ := e.object(t, e.prefix+"f"); string(got) != "whole" {
		t.Errorf("the file became %q", got)
	}

	// A partial of a tail alone is all in its record: its multipart
	// upload may go (another tool aborted it) and the resume still works.
	keep("tail")
	r, err := e.b.headRecord(e.prefix + "f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.raw.AbortMultipartUpload(testContext(t), &s3.AbortMultipartUploadInput{Bucket: &e.bucket,
		Key: ptr(e.prefix + "f"), UploadId: &r.uploadID}); err != nil {
		t.Fatal(err)
	}
	u = mustCreate(t, st, "/f", vfs.CreateOptions{Continue: true})
	more := randomBytes(t, 6<<20)
	writeOutOfOrder(t, u, more, 4, 32<<10, 4, false)
	if err := u.Commit(); err != nil {
		t.Fatalf("commit of a resumed tail whose upload was aborted: %v", err)
	}
	got, _ := e.object(t, e.prefix+"f")
	equal(t, "resumed tail", got, append([]byte("tail"), more...))
	if ups, recs := e.uploads(t), e.records(t); len(ups) != 0 || len(recs) != 0 {
		t.Errorf("left: uploads %q, records %q", ups, recs)
	}

	// A partial with parts whose multipart upload another tool aborted is
	// lost: the resume fails once, and the name is clean for the next
	// attempt.
	u = mustCreate(t, st, "/f", vfs.CreateOptions{})
	writeOutOfOrder(t, u, more, 0, 32<<10, 4, false)
	if err := u.Abort(errBroken); err != nil {
		t.Fatal(err)
	}
	if r, err = e.b.headRecord(e.prefix + "f"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.raw.AbortMultipartUpload(testContext(t), &s3.AbortMultipartUploadInput{Bucket: &e.bucket,
		Key: ptr(e.prefix + "f"), UploadId: &r.uploadID}); err != nil {
		t.Fatal(err)
	}
	_, err = st.Create("/f", vfs.CreateOptions{Continue: true})
	wantErr(t, "resume of a lost partial", err, fs.ErrNotExist)
	if _, err := st.(vfs.Resumer).Partial("/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Partial after a lost resume: %v", err)
	}
	// Something not ours in the records folder is no partial.
	e.putRaw(t, e.b.recordKey(e.prefix+"f"), []byte("junk"))
	if _, err := st.(vfs.Resumer).Partial("/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Partial over a foreign record: %v", err)
	}
	u = mustCreate(t, st, "/f", vfs.CreateOptions{Continue: true})
	if fi, _ := u.Stat(); fi.Size() != 4+6<<20 {
		t.Errorf("Continue over a foreign record starts at %d; want the file's size", fi.Size())
	}
	if err := u.Abort(vfs.ErrDetached); err != nil {
		t.Fatal(err)
	}
	if err := st.Remove("/f"); err != nil {
		t.Errorf("Remove with a foreign record: %v", err)
	}
}

// Truncate of an open upload grows it with zeros or shrinks it within
// the bytes not yet sent.
func TestUploadTruncate(t *testing.T) {
	e := newEnv(t)
	u := mustCreate(t, e.home, "/t", vfs.CreateOptions{})
	tr := u.(vfs.UploadTruncater)
	if _, err := u.WriteAt([]byte("hello, world"), 0); err != nil {
		t.Fatal(err)
	}
	if err := tr.Truncate(5); err != nil {
		t.Fatal(err)
	}
	if err := tr.Truncate(8); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.object(t, e.prefix+"t"); string(got) != "hello\x00\x00\x00" {
		t.Errorf("truncated upload: %q", got)
	}
	u = mustCreate(t, e.home, "/t2", vfs.CreateOptions{})
	writeOutOfOrder(t, u, randomBytes(t, 6<<20), 0, 32<<10, 1, false)
	wantErr(t, "Truncate into a sent part", u.(vfs.UploadTruncater).Truncate(10), errors.ErrUnsupported)
	if err := u.Abort(vfs.ErrDetached); err != nil {
		t.Fatal(err)
	}
}

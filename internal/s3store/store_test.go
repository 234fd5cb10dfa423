package s3store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// Folders on a flat namespace: markers, implicit folders, and POSIX's
// errors where a file and a folder would meet.
func TestStoreFolders(t *testing.T) {
	e := newEnv(t)
	st := e.home
	if fi, err := st.Stat("/"); err != nil || !fi.IsDir() {
		t.Fatalf("Stat /: %v, %v", fi, err)
	}
	if err := st.Mkdir("/d"); err != nil {
		t.Fatalf("Mkdir: %v", err)
	}
	if _, ok := e.object(t, e.prefix+"d/"); !ok {
		t.Error("Mkdir wrote no marker")
	}
	fi, err := st.Stat("/d")
	if err != nil || !fi.IsDir() || fi.Name() != "d" || fi.ModTime().Before(time.Now().Add(-time.Hour)) {
		t.Errorf("Stat of a folder with a marker: %+v, %v", fi, err)
	}
	wantErr(t, "Mkdir of an existing folder", st.Mkdir("/d"), fs.ErrExist)
	wantErr(t, "Mkdir without a parent", st.Mkdir("/no/sub"), fs.ErrNotExist)
	e.putRaw(t, e.prefix+"implicit/f", []byte("x"))
	if fi, err := st.Stat("/implicit"); err != nil || !fi.IsDir() {
		t.Errorf("Stat of an implicit folder: %v, %v", fi, err)
	}
	e.putRaw(t, e.prefix+"file", []byte("x"))
	wantErr(t, "Mkdir over a file", st.Mkdir("/file"), fs.ErrExist)
	wantErr(t, "Mkdir under a file", st.Mkdir("/file/sub"), syscall.ENOTDIR)
	_, err = st.Create("/d", vfs.CreateOptions{})
	wantErr(t, "Create over a folder", err, syscall.EISDIR)
	_, err = st.Create("/nowhere/f", vfs.CreateOptions{})
	wantErr(t, "Create without a parent", err, fs.ErrNotExist)
	_, err = st.Create("/file/f", vfs.CreateOptions{})
	wantErr(t, "Create under a file", err, syscall.ENOTDIR)
	_, err = st.Open("/d", 0)
	wantErr(t, "Open of a folder", err, syscall.EISDIR)
	_, err = st.List("/file")
	wantErr(t, "List of a file", err, syscall.ENOTDIR)
	_, err = st.List("/nothing")
	wantErr(t, "List of nothing", err, fs.ErrNotExist)
	if names := listNames(t, st, "/d", 10); len(names) != 0 {
		t.Errorf("an empty folder lists %q (its marker must not show)", names)
	}

	wantErr(t, "Remove of a folder", st.Remove("/d"), syscall.EISDIR)
	wantErr(t, "Rmdir of a file", st.Rmdir("/file"), syscall.ENOTDIR)
	wantErr(t, "Rmdir of a non-empty folder", st.Rmdir("/implicit"), syscall.ENOTEMPTY)
	wantErr(t, "Rmdir of nothing", st.Rmdir("/nothing"), fs.ErrNotExist)
	wantErr(t, "Remove of nothing", st.Remove("/nothing"), fs.ErrNotExist)
	// A folder holding only partials of uploads into it is empty; the
	// partials go with it.
	u := mustCreate(t, st, "/d/part", vfs.CreateOptions{})
	if _, err := u.WriteAt([]byte("half"), 0); err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(errBroken); err != nil {
		t.Fatal(err)
	}
	if err := st.Rmdir("/d"); err != nil {
		t.Fatalf("Rmdir of a folder with a partial: %v", err)
	}
	if _, err := st.Stat("/d"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat after Rmdir: %v", err)
	}
	if ups, recs := e.uploads(t), e.records(t); len(ups) != 0 || len(recs) != 0 {
		t.Errorf("Rmdir left the partial: uploads %q, records %q", ups, recs)
	}
	if err := st.Remove("/file"); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.object(t, e.prefix+"file"); ok {
		t.Error("Remove left the object")
	}
	// Remove of a name with only a partial removes the partial.
	u = mustCreate(t, st, "/p", vfs.CreateOptions{})
	if _, err := u.WriteAt([]byte("half"), 0); err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(errBroken); err != nil {
		t.Fatal(err)
	}
	if err := st.Remove("/p"); err != nil {
		t.Fatalf("Remove of a partial: %v", err)
	}
	if ups, recs := e.uploads(t), e.records(t); len(ups) != 0 || len(recs) != 0 {
		t.Errorf("Remove left the partial: uploads %q, records %q", ups, recs)
	}
	// The home itself: a fresh home has its marker; "/" cannot go.
	wantErr(t, "Rmdir /", st.Rmdir("/"), fs.ErrPermission)
	if _, ok := e.object(t, e.prefix); !ok {
		t.Error("Home wrote no marker for the home")
	}
}

// Setstat and truncate accept what an object can keep and follow
// s3.setstat for the rest.
func TestSetstat(t *testing.T) {
	for _, mode := range []string{SetstatIgnore, SetstatError} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, func(c *Config, _ *Options) { c.Setstat = mode })
			e.putRaw(t, e.prefix+"f", []byte("12345"))
			st := e.home
			chmod := st.(vfs.Chmoder).Chmod("/f", 0o600)
			chtimes := st.(vfs.Chtimeser).Chtimes("/f", time.Now(), time.Now())
			if mode == SetstatIgnore && (chmod != nil || chtimes != nil) {
				t.Errorf("setstat ignore: chmod %v, chtimes %v", chmod, chtimes)
			}
			if mode == SetstatError && (!errors.Is(chmod, errors.ErrUnsupported) || !errors.Is(chtimes, errors.ErrUnsupported)) {
				t.Errorf("setstat error: chmod %v, chtimes %v", chmod, chtimes)
			}
			if mode == SetstatIgnore {
				wantErr(t, "chmod of nothing", st.(vfs.Chmoder).Chmod("/none", 0o600), fs.ErrNotExist)
			}
			tr := st.(vfs.Truncater)
			if err := tr.Truncate("/f", 5); err != nil {
				t.Errorf("Truncate to the same size: %v", err)
			}
			wantErr(t, "Truncate to another size", tr.Truncate("/f", 2), errors.ErrUnsupported)
		})
	}
}

// Open reads from an offset; ReadAt serves concurrent, slightly out of
// order reads (as pkg/sftp's workers make them) from one stream, and
// others by reopening it.
func TestOpen(t *testing.T) {
	e := newEnv(t)
	data := randomBytes(t, 9<<20+17)
	e.putRaw(t, e.prefix+"f", data)
	e.putRaw(t, e.prefix+"empty", nil)
	st := e.home

	f, err := st.Open("/f", 1000)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "Read from 1000", got, data[1000:])
	if fi, _ := f.Stat(); fi.Size() != int64(len(data)) || fi.Name() != "f" {
		t.Errorf("File Stat: %+v", fi)
	}
	f.Close()

	for _, off := range []int64{0, int64(len(data))} {
		f, err := st.Open("/empty", off)
		if err != nil {
			t.Fatalf("Open of an empty object at %d: %v", off, err)
		}
		if n, err := f.Read(make([]byte, 10)); n != 0 || err != io.EOF {
			t.Errorf("Read of an empty object: %d, %v", n, err)
		}
		f.Close()
	}
	f, err = st.Open("/f", int64(len(data)))
	if err != nil {
		t.Fatalf("Open at the end: %v", err)
	}
	if n, err := f.ReadAt(make([]byte, 10), int64(len(data))); n != 0 || err != io.EOF {
		t.Errorf("ReadAt the end: %d, %v", n, err)
	}
	f.Close()
	_, err = st.Open("/none", 0)
	wantErr(t, "Open of nothing", err, fs.ErrNotExist)

	// 64 requests in flight among 8 workers, as pkg/sftp.
	e.count.reset()
	f, err = st.Open("/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(data))
	const chunk = 32 << 10
	var offs []int64
	for o := int64(0); o < int64(len(data)); o += chunk {
		offs = append(offs, o)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < len(offs); i += 16 {
		run := offs[i:min(i+16, len(offs))]
		r.Shuffle(len(run), func(a, b int) { run[a], run[b] = run[b], run[a] })
	}
	// A few far jumps back and forth too, checked rather than copied
	// (their bytes are another worker's to copy).
	checkOnly := map[int]bool{}
	for _, o := range []int64{0, int64(len(data)) - chunk, 5 << 20} {
		checkOnly[len(offs)] = true
		offs = append(offs, o)
	}
	type item struct {
		off   int64
		check bool
	}
	queue := make(chan item)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for range 8 {
		wg.Go(func() {
			buf := make([]byte, chunk)
			for it := range queue {
				o := it.off
				n, err := f.ReadAt(buf, o)
				if err != nil && !(err == io.EOF && o+int64(n) == int64(len(data))) {
					mu.Lock()
					errs = append(errs, fmt.Errorf("ReadAt %d: %d, %w", o, n, err))
					mu.Unlock()
					continue
				}
				if it.check {
					if !slices.Equal(buf[:n], data[o:o+int64(n)]) {
						mu.Lock()
						errs = append(errs, fmt.Errorf("ReadAt %d: wrong bytes", o))
						mu.Unlock()
					}
					continue
				}
				copy(out[o:], buf[:n])
			}
		})
	}
	for i, o := range offs {
		queue <- item{o, checkOnly[i]}
	}
	close(queue)
	wg.Wait()
	f.Close()
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	equal(t, "ReadAt out of order", out, data)
	if n := e.count.getBytes.Load(); n > 3*int64(len(data)) {
		t.Errorf("read %d bytes from the bucket for a %d-byte file out of order", n, len(data))
	}
	t.Logf("out-of-order ReadAt of %d bytes read %d from the bucket in %d GETs", len(data), e.count.getBytes.Load(), len(e.count.gets))
}

// Listings stream page by page in name order, files and folders merged,
// each name once, the folder's marker left out.
func TestList(t *testing.T) {
	e := newEnv(t, func(_ *Config, o *Options) { o.ListPage = 100 })
	var want []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range 2500 {
		name := fmt.Sprintf("f%05d", i)
		if i%250 == 0 {
			name = fmt.Sprintf("f%05d.d/", i) // folders among the files
		}
		want = append(want, name)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			key := e.prefix + "big/" + name
			if name[len(name)-1] == '/' {
				key += "inner"
			}
			_, err := e.raw.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &e.bucket, Key: &key, Body: nil})
			if err != nil {
				mu.Lock()
				t.Errorf("put %s: %v", key, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	e.putRaw(t, e.prefix+"big/", nil) // the marker
	slices.Sort(want)
	e.count.reset()
	got := listNames(t, e.home, "/big", 77)
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d names; want %d (first difference at %d)", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// Keys other tools write that make no sense as paths never list, and a
// file and folder of one name list once. versitygw cannot store such
// keys (docs/s3.md), so the page is made here.
func TestListSkipsOddKeys(t *testing.T) {
	s := &store{b: &Backend{}, prefix: "h/"}
	l := &lister{s: s, dir: "h/d/"}
	obj := func(k string) types.Object { return types.Object{Key: aws.String(k), Size: aws.Int64(1)} }
	pre := func(k string) types.CommonPrefix { return types.CommonPrefix{Prefix: aws.String(k)} }
	page := &s3.ListObjectsV2Output{
		Contents: []types.Object{obj("h/d/"), obj("h/d/.."), obj("h/d/a"), obj("h/d/both"), obj("h/d/z\xff")},
		CommonPrefixes: []types.CommonPrefix{pre("h/d//"), pre("h/d/../"), pre("h/d/both/"), pre("h/d/c/"),
			pre("h/d/./")},
	}
	var got []string
	for _, fi := range l.entries(page) {
		got = append(got, fmt.Sprintf("%s dir=%v", fi.Name(), fi.IsDir()))
	}
	want := []string{"a dir=false", "both dir=false", "c dir=true"}
	if !slices.Equal(got, want) {
		t.Errorf("entries: %q; want %q", got, want)
	}
	for _, k := range []string{"h/a//b", "h/../x", "h/z/", "h/./y", "x/outside"} {
		if p, ok := Path(s.prefix, k); ok {
			t.Errorf("Path accepts %q as %q", k, p)
		}
	}
}

// The same through the client's XML decoding, against a real listing
// that the test extends with keys versitygw cannot hold.
func TestListSkipsOddKeysOnTheWire(t *testing.T) {
	e := newEnv(t)
	if err := e.home.Mkdir("/d"); err != nil {
		t.Fatal(err)
	}
	e.putRaw(t, e.prefix+"d/real", []byte("x"))
	odd := ""
	for _, k := range []string{"d/a//b", "d/..", "d/z/", "d/.", "d/x/../y"} {
		odd += "<Contents><Key>" + e.prefix + k + "</Key><Size>7</Size></Contents>"
	}
	for _, k := range []string{"d//", "d/../", "d/./"} {
		odd += "<CommonPrefixes><Prefix>" + e.prefix + k + "</Prefix></CommonPrefixes>"
	}
	e.count.rewriteWith(func(r *http.Request, body []byte) []byte {
		if !r.URL.Query().Has("list-type") {
			return body
		}
		return bytes.Replace(body, []byte("</ListBucketResult>"), []byte(odd+"</ListBucketResult>"), 1)
	})
	if got := listNames(t, e.home, "/d", 10); !slices.Equal(got, []string{"real"}) {
		t.Errorf("listed %q; want the one real file", got)
	}
}

// A home is confined to its prefix: no name reaches another home or the
// partial records.
func TestHomeConfinement(t *testing.T) {
	e := newEnv(t)
	e.putRaw(t, "wharf/bob/secret", []byte("bob's"))
	for _, name := range []string{"/../bob/secret", "../../wharf/bob/secret", "/./../bob/secret"} {
		if _, err := e.home.Stat(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat %q: %v; want ErrNotExist (alice's own namespace)", name, err)
		}
	}
	root, err := e.b.Home("/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Stat("/" + recordsDir + "/x"); err == nil {
		t.Error("a name in the records folder is reachable")
	}
	if _, err := e.b.Home("/" + recordsDir); err == nil {
		t.Error("a home in the records folder")
	}
	if fi, err := root.Stat("/bob/secret"); err != nil || fi.Size() != 5 {
		t.Errorf("the whole prefix as a home: Stat /bob/secret: %v, %v", fi, err)
	}
}

package s3store

import (
	"errors"
	"io/fs"
	"strconv"
	"syscall"
	"testing"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// Files of every size around the part boundaries land byte for byte,
// written out of order by 8 workers, and nothing is visible under the
// name before Commit.
func TestUploadIntegrity(t *testing.T) {
	e := newEnv(t)
	for _, size := range []int{0, 1, MinPartSize - 1, MinPartSize, MinPartSize + 1, 40 << 20} {
		for _, shuffle := range []bool{false, true} {
			t.Run(strconv.Itoa(size)+map[bool]string{true: "/shuffled"}[shuffle], func(t *testing.T) {
				name := "/f" + strconv.Itoa(size) + strconv.FormatBool(shuffle)
				data := randomBytes(t, size)
				u := mustCreate(t, e.home, name, vfs.CreateOptions{})
				writeOutOfOrder(t, u, data, 0, 32<<10, 8, shuffle)
				if fi, err := u.Stat(); err != nil || fi.Size() != int64(size) {
					t.Errorf("upload Stat: %v, %v; want size %d", fi, err, size)
				}
				if _, err := e.home.Stat(name); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Stat before Commit: %v; want ErrNotExist", err)
				}
				if _, ok := e.object(t, e.prefix+name[1:]); ok {
					t.Fatal("the object is visible before Commit")
				}
				if names := listNames(t, e.home, "/", 100); hasString(names, name[1:]) {
					t.Fatalf("listed before Commit: %q", names)
				}
				if err := u.Commit(); err != nil {
					t.Fatalf("Commit: %v", err)
				}
				got, ok := e.object(t, e.prefix+name[1:])
				if !ok {
					t.Fatal("no object after Commit")
				}
				equal(t, "object", got, data)
				equal(t, "read through the store", readAll(t, e.home, name), data)
				fi, err := e.home.Stat(name)
				if err != nil || fi.Size() != int64(size) || fi.IsDir() || fi.Name() != name[1:] {
					t.Errorf("Stat: %+v, %v", fi, err)
				}
				url, etag := u.(*Upload).Object()
				if url != "s3://"+e.bucket+"/"+e.prefix+name[1:] || etag == "" {
					t.Errorf("Object() = %q, %q", url, etag)
				}
				if ups := e.uploads(t); len(ups) != 0 {
					t.Errorf("multipart uploads left: %q", ups)
				}
			})
		}
	}
}

// Abort(ErrDetached) leaves nothing: no object, no multipart upload, no
// partial.
func TestAbortDetached(t *testing.T) {
	e := newEnv(t)
	for _, size := range []int{100, 12 << 20} {
		u := mustCreate(t, e.home, "/gone", vfs.CreateOptions{})
		writeOutOfOrder(t, u, randomBytes(t, size), 0, 32<<10, 4, false)
		if err := u.Abort(vfs.ErrDetached); err != nil {
			t.Fatalf("Abort: %v", err)
		}
		if _, ok := e.object(t, e.prefix+"gone"); ok {
			t.Error("an object after Abort")
		}
		if ups := e.uploads(t); len(ups) != 0 {
			t.Errorf("%d bytes: multipart uploads left: %q", size, ups)
		}
		if _, err := e.home.(vfs.Resumer).Partial("/gone"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Partial after a detached abort: %v", err)
		}
		if err := u.Commit(); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("Commit after Abort: %v; want ErrClosed", err)
		}
	}
}

// A broken upload keeps what arrived without a gap; Continue resumes it
// from there, refuses writes before it, and completes it.
func TestResume(t *testing.T) {
	for _, tc := range []struct {
		name           string
		partSize       int64
		kept, dropped  int // bytes written without a gap, then beyond a gap
		wantParts      int
		tailInRecord   bool
		resumeThenDrop bool // break the resumed upload once more
	}{
		{name: "tail only", partSize: MinPartSize, kept: 1000, dropped: 500, wantParts: 0, tailInRecord: true},
		{name: "parts and tail", partSize: MinPartSize, kept: 12<<20 + 777, dropped: 1 << 20, wantParts: 2, tailInRecord: true},
		{name: "tail sent as a part", partSize: 8 << 20, kept: 8<<20 + 6<<20, wantParts: 2},
		{name: "exact parts", partSize: MinPartSize, kept: 10 << 20, wantParts: 2},
		{name: "broken twice", partSize: MinPartSize, kept: 7 << 20, wantParts: 1, tailInRecord: true, resumeThenDrop: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config, _ *Options) { c.PartSize = tc.partSize })
			total := tc.kept + 9<<20 + 3
			data := randomBytes(t, total)
			u := mustCreate(t, e.home, "/big", vfs.CreateOptions{})
			writeOutOfOrder(t, u, data[:tc.kept], 0, 32<<10, 8, true)
			if tc.dropped > 0 {
				// Beyond a gap of one byte: never kept.
				at := tc.kept + 1
				if _, err := u.WriteAt(data[at:at+tc.dropped], int64(at)); err != nil {
					t.Fatal(err)
				}
			}
			if err := u.Abort(errBroken); err != nil {
				t.Fatalf("Abort: %v", err)
			}
			if _, ok := e.object(t, e.prefix+"big"); ok {
				t.Fatal("a broken upload made an object")
			}
			fi, err := e.home.(vfs.Resumer).Partial("/big")
			if err != nil || fi.Size() != int64(tc.kept) {
				t.Fatalf("Partial: %v, %v; want %d bytes", fi, err, tc.kept)
			}
			r, err := e.b.headRecord(e.prefix + "big")
			if err != nil || int(r.parts) != tc.wantParts || (r.tail > 0) != tc.tailInRecord {
				t.Fatalf("record: %+v, %v; want %d parts, tail in record %v", r, err, tc.wantParts, tc.tailInRecord)
			}

			kept := tc.kept
			if tc.resumeThenDrop {
				u := mustCreate(t, e.home, "/big", vfs.CreateOptions{Continue: true})
				more := kept + 4<<20 + 5
				writeOutOfOrder(t, u, data[kept:more], int64(kept), 32<<10, 8, false)
				if err := u.Abort(errBroken); err != nil {
					t.Fatal(err)
				}
				kept = more
				if fi, err := e.home.(vfs.Resumer).Partial("/big"); err != nil || fi.Size() != int64(kept) {
					t.Fatalf("Partial after the second break: %v, %v; want %d", fi, err, kept)
				}
			}

			u = mustCreate(t, e.home, "/big", vfs.CreateOptions{Continue: true})
			if fi, err := u.Stat(); err != nil || fi.Size() != int64(kept) {
				t.Fatalf("resumed upload's Stat: %v, %v; want %d", fi, err, kept)
			}
			// While one upload continues the partial, it is not the name's.
			if _, err := e.home.(vfs.Resumer).Partial("/big"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Partial while resumed: %v; want ErrNotExist", err)
			}
			if kept > 0 {
				_, err := u.WriteAt([]byte("x"), int64(kept-1))
				wantErr(t, "a write before the resume offset", err, syscall.EINVAL)
			}
			writeOutOfOrder(t, u, data[kept:], int64(kept), 32<<10, 8, true)
			if err := u.Commit(); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			got, _ := e.object(t, e.prefix+"big")
			equal(t, "resumed object", got, data)
			if ups, recs := e.uploads(t), e.records(t); len(ups) != 0 || len(recs) != 0 {
				t.Errorf("left after the resumed commit: uploads %q, records %q", ups, recs)
			}
		})
	}
}

// Appending to a complete object of 5 MiB or more copies it server-side:
// the daemon GETs none of its bytes. A smaller one is read (at most
// 5 MiB).
func TestAppend(t *testing.T) {
	for _, size := range []int{12 << 20, MinPartSize, 1 << 20, 0} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			e := newEnv(t)
			old := randomBytes(t, size)
			e.putRaw(t, e.prefix+"log", old)
			more := randomBytes(t, 3<<20+11)
			e.count.reset()
			u := mustCreate(t, e.home, "/log", vfs.CreateOptions{Continue: true})
			if fi, _ := u.Stat(); fi.Size() != int64(size) {
				t.Fatalf("appending upload's size %d; want %d", fi.Size(), size)
			}
			_, err := u.WriteAt([]byte("x"), 0)
			if size > 0 {
				wantErr(t, "a write before the end of the appended file", err, syscall.EINVAL)
			}
			writeOutOfOrder(t, u, more, int64(size), 32<<10, 8, false)
			if err := u.Commit(); err != nil {
				t.Fatal(err)
			}
			got, _ := e.object(t, e.prefix+"log")
			equal(t, "appended object", got, append(old, more...))
			read := e.count.getBytes.Load()
			switch {
			case size >= MinPartSize && read != 0:
				t.Errorf("the daemon read %d bytes of a %d-byte object to append to it; want 0", read, size)
			case size < MinPartSize && read != int64(size):
				t.Errorf("the daemon read %d bytes of a %d-byte object; want all of it", read, size)
			}
			// Opened for appending, nothing appended: nothing changes.
			u = mustCreate(t, e.home, "/log", vfs.CreateOptions{Continue: true})
			if err := u.Commit(); err != nil {
				t.Fatal(err)
			}
			got, _ = e.object(t, e.prefix+"log")
			equal(t, "after an empty append", got, append(old, more...))
			if ups := e.uploads(t); len(ups) != 0 {
				t.Errorf("multipart uploads left: %q", ups)
			}
		})
	}
}

// Exclusive refuses an existing name at Create, and at Commit when
// another completed it meanwhile, on both paths (one PUT, multipart),
// leaving the other's object and no upload.
func TestExclusive(t *testing.T) {
	e := newEnv(t)
	e.putRaw(t, e.prefix+"there", []byte("old"))
	_, err := e.home.Create("/there", vfs.CreateOptions{Exclusive: true})
	wantErr(t, "Create Exclusive over a file", err, fs.ErrExist)
	_, err = e.home.Create("/there", vfs.CreateOptions{Exclusive: true, Continue: true})
	wantErr(t, "Create Exclusive+Continue over a file", err, fs.ErrExist)

	for _, size := range []int{10, 11 << 20} {
		name := "race" + strconv.Itoa(size)
		u := mustCreate(t, e.home, "/"+name, vfs.CreateOptions{Exclusive: true})
		writeOutOfOrder(t, u, randomBytes(t, size), 0, 32<<10, 4, false)
		e.putRaw(t, e.prefix+name, []byte("first"))
		err := u.Commit()
		wantErr(t, "Commit Exclusive after another completed the name", err, fs.ErrExist)
		if got, _ := e.object(t, e.prefix+name); string(got) != "first" {
			t.Errorf("%s: the other's object became %d bytes", name, len(got))
		}
	}
	if ups, recs := e.uploads(t), e.records(t); len(ups) != 0 || len(recs) != 0 {
		t.Errorf("left: uploads %q, records %q", ups, recs)
	}
	// A partial does not count: an exclusive user resumes.
	u := mustCreate(t, e.home, "/mine", vfs.CreateOptions{Exclusive: true})
	writeOutOfOrder(t, u, []byte("half"), 0, 2, 1, false)
	if err := u.Abort(errBroken); err != nil {
		t.Fatal(err)
	}
	u = mustCreate(t, e.home, "/mine", vfs.CreateOptions{Exclusive: true, Continue: true})
	if _, err := u.WriteAt([]byte(" and half"), 4); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.object(t, e.prefix+"mine"); string(got) != "half and half" {
		t.Errorf("resumed exclusive upload: %q", got)
	}
}

// MustExist refuses a name with neither file nor partial; a partial
// counts.
func TestMustExist(t *testing.T) {
	e := newEnv(t)
	for _, cont := range []bool{false, true} {
		_, err := e.home.Create("/none", vfs.CreateOptions{MustExist: true, Continue: cont})
		wantErr(t, "MustExist on nothing", err, fs.ErrNotExist)
	}
	u := mustCreate(t, e.home, "/p", vfs.CreateOptions{})
	if _, err := u.WriteAt([]byte("abc"), 0); err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(errBroken); err != nil {
		t.Fatal(err)
	}
	u = mustCreate(t, e.home, "/p", vfs.CreateOptions{MustExist: true})
	if err := u.Abort(vfs.ErrDetached); err != nil {
		t.Fatal(err)
	}
	if ups := e.uploads(t); len(ups) != 1 {
		t.Errorf("a detached upload that did not continue the partial must leave it: uploads %q", ups)
	}
}

package s3store

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"syscall"
	"testing"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

func TestRenameFile(t *testing.T) {
	e := newEnv(t)
	e.b.copyMax = 10 << 20 // a multipart copy for the large file, without 5 GiB
	st, rn := e.home, e.home.(vfs.Renamer)
	small, large := randomBytes(t, 1000), randomBytes(t, 25<<20+3)
	e.putRaw(t, e.prefix+"small", small)
	e.putRaw(t, e.prefix+"large", large)
	e.putRaw(t, e.prefix+"target", []byte("old"))
	if err := st.Mkdir("/d"); err != nil {
		t.Fatal(err)
	}
	// target has a partial, which the rename onto it drops.
	u := mustCreate(t, st, "/target", vfs.CreateOptions{})
	if _, err := u.WriteAt([]byte("partial"), 0); err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(errBroken); err != nil {
		t.Fatal(err)
	}

	e.count.reset()
	if err := rn.Rename("/small", "/target"); err != nil {
		t.Fatalf("Rename onto a file: %v", err)
	}
	if err := rn.Rename("/large", "/d/large"); err != nil {
		t.Fatalf("Rename of a file above the copy limit: %v", err)
	}
	if n := e.count.getBytes.Load(); n != 0 {
		t.Errorf("renames read %d bytes through the daemon; want 0", n)
	}
	got, _ := e.object(t, e.prefix+"target")
	equal(t, "renamed small file", got, small)
	got, _ = e.object(t, e.prefix+"d/large")
	equal(t, "renamed large file", got, large)
	for _, k := range []string{"small", "large"} {
		if _, ok := e.object(t, e.prefix+k); ok {
			t.Errorf("%s is still there after its rename", k)
		}
	}
	if _, err := st.(vfs.Resumer).Partial("/target"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the partial of the name renamed onto: %v; want it dropped", err)
	}
	if ups, recs := e.uploads(t), e.records(t); len(ups) != 0 || len(recs) != 0 {
		t.Errorf("left: uploads %q, records %q", ups, recs)
	}

	wantErr(t, "Rename of nothing", rn.Rename("/none", "/x"), fs.ErrNotExist)
	wantErr(t, "Rename onto a folder", rn.Rename("/target", "/d"), syscall.EISDIR)
	wantErr(t, "Rename into a missing folder", rn.Rename("/target", "/no/x"), fs.ErrNotExist)
	if err := rn.Rename("/target", "/target"); err != nil {
		t.Errorf("Rename onto itself: %v", err)
	}
}

func TestRenameFolder(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Options) { c.MaxRenameObjects = 6 })
	st, rn := e.home, e.home.(vfs.Renamer)
	if err := st.Mkdir("/d"); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for i := range 4 {
		name := fmt.Sprintf("d/f%d", i)
		files[name] = randomBytes(t, 100+i)
		e.putRaw(t, e.prefix+name, files[name])
	}
	files["d/sub/deep"] = []byte("deep")
	e.putRaw(t, e.prefix+"d/sub/deep", files["d/sub/deep"]) // 6 objects with the marker

	if err := st.Mkdir("/full"); err != nil {
		t.Fatal(err)
	}
	e.putRaw(t, e.prefix+"full/x", []byte("x"))
	e.putRaw(t, e.prefix+"file", []byte("x"))
	wantErr(t, "Rename onto a non-empty folder", rn.Rename("/d", "/full"), syscall.ENOTEMPTY)
	wantErr(t, "Rename onto a file", rn.Rename("/d", "/file"), syscall.ENOTDIR)
	wantErr(t, "Rename into itself", rn.Rename("/d", "/d/sub/d"), syscall.EINVAL)

	if err := st.Mkdir("/empty"); err != nil {
		t.Fatal(err)
	}
	if err := rn.Rename("/d", "/empty"); err != nil {
		t.Fatalf("Rename of a folder onto an empty one: %v", err)
	}
	for name, data := range files {
		got, ok := e.object(t, e.prefix+"empty/"+name[2:])
		if !ok {
			t.Errorf("%s did not move", name)
			continue
		}
		equal(t, name, got, data)
		if _, ok := e.object(t, e.prefix+name); ok {
			t.Errorf("%s is still there", name)
		}
	}
	if _, err := st.Stat("/d"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of the renamed folder: %v", err)
	}
	if names := listNames(t, st, "/empty", 10); !slices.Equal(names, []string{"f0", "f1", "f2", "f3", "sub/"}) {
		t.Errorf("renamed folder lists %q", names)
	}

	// One object more than max_rename_objects: refused before copying.
	e.putRaw(t, e.prefix+"empty/f4", []byte("one too many"))
	err := rn.Rename("/empty", "/moved")
	wantErr(t, "Rename of a folder above max_rename_objects", err, errors.ErrUnsupported)
	if _, err := st.Stat("/moved"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused rename copied something: Stat /moved: %v", err)
	}
	if names := listNames(t, st, "/empty", 10); len(names) != 6 {
		t.Errorf("a refused rename touched the folder: %q", names)
	}
}

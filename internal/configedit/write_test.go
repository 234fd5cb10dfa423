//go:build unix

package configedit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReplaceFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.yaml")
	writeFile(t, path, "old\n", 0o640)
	if err := replaceFile(path, []byte("new\n"), []byte("old\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "new\n" {
		t.Errorf("content = %q", got)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o640 {
		t.Errorf("mode = %v (%v), want 0640", fi.Mode(), err)
	}
	assertOnlyFiles(t, dir, "f.yaml")

	// Someone else wrote the file since it was read: nothing is written.
	err := replaceFile(path, []byte("mine\n"), []byte("old\n"))
	if err == nil || !strings.Contains(err.Error(), "changed while it was being edited") {
		t.Errorf("replaceFile over a changed file = %v", err)
	}
	if got := readFile(t, path); got != "new\n" {
		t.Errorf("content = %q, want the other writer's", got)
	}
	assertOnlyFiles(t, dir, "f.yaml")
}

func TestCreateFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bob.yaml")
	if err := createFile(path, []byte("name: bob\n"), 0o640, -1, -1); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o640 {
		t.Errorf("mode = %v (%v), want 0640", fi.Mode(), err)
	}
	if err := createFile(path, []byte("name: eve\n"), 0o640, -1, -1); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("createFile over an existing file = %v", err)
	}
	if got := readFile(t, path); got != "name: bob\n" {
		t.Errorf("content = %q", got)
	}
	assertOnlyFiles(t, dir, "bob.yaml")
}

func TestRemoveFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bob.yaml")
	writeFile(t, path, "name: bob\n", 0o600)
	if err := removeFile(path, []byte("name: other\n")); err == nil {
		t.Error("removeFile of a changed file succeeded")
	}
	if err := removeFile(path, []byte("name: bob\n")); err != nil {
		t.Fatal(err)
	}
	assertOnlyFiles(t, dir)
}

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wharf.yaml")
	writeFile(t, path, "a\n", 0o600)
	unlock, err := lock(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		u, err := lock(path)
		got <- err
		if err == nil {
			<-release
			u()
		}
	}()
	defer func() { close(release); <-done }()
	select {
	case err := <-got:
		t.Fatalf("a second lock was taken while the first was held (%v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	// The holder replaces the file, as every edit does, then lets go: the
	// waiter must end up holding the lock of the new file.
	if err := replaceFile(path, []byte("b\n"), []byte("a\n")); err != nil {
		t.Fatal(err)
	}
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("second lock: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second lock was never taken")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Errorf("the file now at the path is not locked (flock: %v): the waiter locked the replaced one", err)
	}
}

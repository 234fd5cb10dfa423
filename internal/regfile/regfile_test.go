package regfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 2<<10+1), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	if data, err := Read(small, 2<<10); err != nil || string(data) != "token\n" {
		t.Fatalf("Read(small) = %q, %v", data, err)
	}
	for _, tt := range []struct {
		path string
		is   error
		text string
	}{
		{big, ErrTooLarge, "larger than 2 KiB"},
		{fifo, ErrNotRegular, "a FIFO"}, // a blocking read would hang the test
		{zero, ErrNotRegular, "a device"},
		{dir, ErrNotRegular, "a folder"},
	} {
		_, err := Read(tt.path, 2<<10)
		if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.text) || !strings.Contains(err.Error(), tt.path) {
			t.Errorf("Read(%s) = %v; want %v saying %q and naming the path", filepath.Base(tt.path), err, tt.is, tt.text)
		}
	}
}

package onboard

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// WriteDir writes the packet's files into dir, which must not exist or
// be empty: it is created with mode 0700 (the packet may hold a private
// key), and no file already there is ever replaced. On failure it removes
// what it wrote.
func (p *Packet) WriteDir(dir string) (err error) {
	created := true
	if err := os.Mkdir(dir, 0o700); errors.Is(err, fs.ErrExist) {
		created = false
	} else if err != nil {
		return fmt.Errorf("packet folder: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("packet folder: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("packet folder %s is not empty: give a new or empty folder", dir)
	}
	var written []string
	defer func() {
		if err == nil {
			return
		}
		for _, f := range written {
			_ = os.Remove(f)
		}
		if created {
			_ = os.Remove(dir)
		}
	}()
	for _, f := range p.Files {
		path := filepath.Join(dir, f.Name)
		if err := writeNew(path, f.Data, fs.FileMode(f.Mode)); err != nil {
			return err
		}
		written = append(written, path)
	}
	return nil
}

// writeNew creates path (never replacing a file) with data and mode.
func writeNew(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("packet: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("packet: write %s: %w", path, err)
	}
	// The umask may have narrowed the mode; a key file stays 0600 either way.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("packet: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("packet: write %s: %w", path, err)
	}
	return nil
}

// WriteZip writes the packet as a zip archive whose files lie in one
// folder named p.Name, with their modes.
func (p *Packet) WriteZip(w io.Writer, modified time.Time) error {
	zw := zip.NewWriter(w)
	for _, f := range p.Files {
		h := &zip.FileHeader{Name: p.Name + "/" + f.Name, Method: zip.Deflate, Modified: modified}
		h.SetMode(fs.FileMode(f.Mode))
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return fmt.Errorf("packet zip: %w", err)
		}
		if _, err := fw.Write(f.Data); err != nil {
			return fmt.Errorf("packet zip: %w", err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("packet zip: %w", err)
	}
	return nil
}

// WriteZipFile writes the packet's zip to a new file at path (mode 0600:
// it may hold a private key); an existing file is never replaced, and a
// failure leaves no partial file behind.
func (p *Packet) WriteZipFile(path string, modified time.Time) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("packet zip: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("packet zip: %w", cerr)
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	return p.WriteZip(f, modified)
}

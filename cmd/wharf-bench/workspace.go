package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/bits"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// workspace is the temporary directory holding keys, configs, logs and both
// servers' storage. Everything the benchmark creates lives beneath it.
type workspace struct {
	dir string
}

func newWorkspace(parent string) (*workspace, error) {
	dir, err := os.MkdirTemp(parent, "wharf-bench-")
	if err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	return &workspace{dir: dir}, nil
}

func (w *workspace) path(elem ...string) string {
	return filepath.Join(append([]string{w.dir}, elem...)...)
}

func (w *workspace) mkdir(elem ...string) (string, error) {
	p := w.path(elem...)
	if err := os.MkdirAll(p, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", p, err)
	}
	return p, nil
}

func (w *workspace) remove() error {
	if err := os.RemoveAll(w.dir); err != nil {
		return fmt.Errorf("remove work dir: %w", err)
	}
	return nil
}

// writeKeyPair writes an ed25519 private key in OpenSSH format (what both
// sshd and the sftp client read) and returns its authorized_keys line.
func writeKeyPair(path, comment string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return "", fmt.Errorf("marshal key: %w", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", fmt.Errorf("write key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("public key: %w", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + comment
	if err := os.WriteFile(path+".pub", []byte(line+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write public key: %w", err)
	}
	return line, nil
}

// writeRandomFile writes size pseudo-random bytes: incompressible, and far
// cheaper to produce than crypto/rand for a gigabyte.
func writeRandomFile(path string, size int64, seed uint64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	src := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	if _, err := io.CopyN(f, src, size); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// sameContent reports an error unless the two files are byte-for-byte equal.
func sameContent(want, got string) error {
	a, err := os.Open(want)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer a.Close()
	b, err := os.Open(got)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer b.Close()
	ai, err := a.Stat()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	bi, err := b.Stat()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if ai.Size() != bi.Size() {
		return fmt.Errorf("verify %s: size %d, want %d", got, bi.Size(), ai.Size())
	}
	const chunk = 1 << 20
	bufA, bufB := make([]byte, chunk), make([]byte, chunk)
	for off := int64(0); off < ai.Size(); off += chunk {
		na, errA := io.ReadFull(a, bufA)
		nb, errB := io.ReadFull(b, bufB)
		if err := errors.Join(ignoreShort(errA), ignoreShort(errB)); err != nil {
			return fmt.Errorf("verify %s: %w", got, err)
		}
		if !bytes.Equal(bufA[:na], bufB[:nb]) {
			return fmt.Errorf("verify %s: content differs near offset %d", got, off)
		}
	}
	return nil
}

func ignoreShort(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// linkOrCopy places src at dst without a second copy when both are on one
// file system.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	return nil
}

// byteSize is a flag value such as 1GiB, 64MiB, 512KiB or 4096.
type byteSize int64

func (s *byteSize) String() string { return formatBytes(int64(*s)) }

func (s *byteSize) Set(v string) error {
	n, err := parseBytes(v)
	if err != nil {
		return err
	}
	*s = byteSize(n)
	return nil
}

func parseBytes(v string) (int64, error) {
	suffixes := []struct {
		suffix string
		shift  uint
	}{
		{"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"G", 30}, {"M", 20}, {"K", 10}, {"B", 0},
	}
	num, shift := strings.TrimSpace(v), uint(0)
	for _, s := range suffixes {
		if strings.HasSuffix(num, s.suffix) {
			num, shift = strings.TrimSpace(strings.TrimSuffix(num, s.suffix)), s.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a non-negative integer with an optional KiB, MiB or GiB suffix", v)
	}
	if n > 0 && bits.Len64(uint64(n))+int(shift) > 62 {
		return 0, fmt.Errorf("size %q: too large", v)
	}
	return n << shift, nil
}

func formatBytes(n int64) string {
	for _, u := range []struct {
		name  string
		shift uint
	}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " B"
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

package main

// The client's ceiling: how fast curl downloads on this machine from a
// server that does next to nothing. On two cores curl's own work (TLS,
// writing the file) can bound the FTPS download row whatever the server
// does; this row says where that bound lies.

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/wharf-sftp/wharf/internal/ftpd"
)

// ceilingChunk is what the ceiling server writes at a time: as large as
// anything a file server would write, so that the server's own share is as
// small as it gets.
const ceilingChunk = 1 << 20

// curlCeiling serves b.o.size bytes over HTTPS (TLS 1.3, Go's crypto/tls as
// in wharf) from memory in this process, on 127.0.0.1, and returns the rate
// at which curl downloads them into the work dir as the FTPS rows do:
// TLS and the file write are the same work for curl, with no FTP commands
// and no file read on the server side.
func (b *bench) curlCeiling(ctx context.Context) (float64, error) {
	dir, err := b.ws.mkdir("ceiling")
	if err != nil {
		return 0, err
	}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := ftpd.EnsureSelfSigned(cert, key); err != nil {
		return 0, fmt.Errorf("ceiling server certificate: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return 0, fmt.Errorf("ceiling server certificate: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("ceiling server: %w", err)
	}
	size := int64(b.o.size)
	chunk := make([]byte, ceilingChunk)
	srv := &http.Server{
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13},
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
			for left := size; left > 0; {
				n := min(left, int64(len(chunk)))
				if _, err := w.Write(chunk[:n]); err != nil {
					return
				}
				left -= n
			}
		}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	defer func() {
		_ = srv.Close()
		<-served
	}()

	local := filepath.Join(dir, "down.bin")
	defer os.Remove(local)
	ctx, cancel := context.WithTimeout(ctx, b.transferTimeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", "--disable", "--silent", "--show-error", "--insecure", "--http1.1",
		"--output", local, "https://"+ln.Addr().String()+"/")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	cmd.WaitDelay = 5 * time.Second
	run, err := runCommand(cmd)
	if err != nil {
		return 0, fmt.Errorf("curl from the ceiling server: %w; errors:\n%s", err, tail(errOut.String(), 15))
	}
	fi, err := os.Stat(local)
	if err != nil {
		return 0, fmt.Errorf("ceiling download: %w", err)
	}
	if fi.Size() != size {
		return 0, fmt.Errorf("ceiling download: %d bytes, want %d", fi.Size(), size)
	}
	return megabytesPerSecond(size, run.wall), nil
}

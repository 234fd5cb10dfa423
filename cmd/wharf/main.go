// Command wharf is a managed SFTP server. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/wharf-sftp/wharf/internal/cli"
	"github.com/wharf-sftp/wharf/internal/daemon"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	err := cli.New(version).ExecuteContext(context.Background())
	switch {
	case err == nil:
	case errors.Is(err, daemon.ErrForced):
		fmt.Fprintln(os.Stderr, "wharf:", err)
		os.Exit(2)
	case errors.Is(err, cli.ErrReported):
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "wharf:", err)
		os.Exit(1)
	}
}

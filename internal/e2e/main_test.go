package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// wharfBin is the absolute path of the binary under test. TestMain sets it
// once, before any test runs; nothing writes it afterwards.
var wharfBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// runMain exists so that deferred cleanup runs before os.Exit.
func runMain(m *testing.M) int {
	if p := os.Getenv("WHARF_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: WHARF_BIN: %v\n", err)
			return 1
		}
		wharfBin = abs
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "wharf-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := buildWharf(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	wharfBin = bin
	return m.Run()
}

// buildWharf compiles cmd/wharf into dir. The daemon is built without -race on
// purpose: its races are the in-process tests' job, and an instrumented daemon
// would make the large transfers here several times slower.
func buildWharf(dir string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("find go tool: %w", err)
	}
	out, err := exec.Command(goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the wharf module")
	}
	bin := filepath.Join(dir, "wharf")
	cmd := exec.Command(goTool, "build", "-o", bin, "./cmd/wharf")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/wharf: %w\n%s", err, out)
	}
	return bin, nil
}

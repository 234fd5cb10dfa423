// Package cli is wharf's command tree. It turns flags into options and
// calls the packages that do the work; it holds no logic of its own.
package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/configedit"
	"github.com/wharf-sftp/wharf/internal/daemon"
	"github.com/wharf-sftp/wharf/internal/gctune"
	"github.com/wharf-sftp/wharf/internal/proctune"
)

// ErrReported means the command already printed what went wrong; main
// only sets the exit code.
var ErrReported = errors.New("reported")

const defaultConfig = "/etc/wharf/wharf.yaml"

// New returns the root command. version is set at link time.
func New(version string) *cobra.Command {
	root := &cobra.Command{
		Use:           "wharf",
		Short:         "Managed SFTP server: one daemon, users in YAML, every partner chrooted to a home",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), configCmd(), hashPasswordCmd(), userCmd(), defenderCmd(), versionCmd(version))
	root.AddCommand(doctorCmd())
	return root
}

// configFlag adds --config, defaulting to $WHARF_CONFIG, else /etc/wharf/wharf.yaml.
func configFlag(cmd *cobra.Command, path *string) {
	def := os.Getenv("WHARF_CONFIG")
	if def == "" {
		def = defaultConfig
	}
	cmd.Flags().StringVarP(path, "config", "c", def, "config file (default from $WHARF_CONFIG)")
}

func serveCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the SFTP server until SIGTERM or SIGINT",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			log := daemon.NewLogger(cmd.ErrOrStderr(), cfg.Log)
			d, err := daemon.New(cfg, log)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), d, log)
		},
	}
	configFlag(cmd, &path)
	return cmd
}

// serve runs d until SIGINT or SIGTERM (or ctx ends) and returns only
// after every goroutine it started has ended: the GC and GOMAXPROCS tuners
// and the second-signal watcher live until Run returns, drain included.
func serve(ctx context.Context, d *daemon.Daemon, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ran, finished := context.WithCancel(context.Background())
	var helpers sync.WaitGroup
	defer helpers.Wait()
	defer finished() // runs first: ends the helpers, then they are waited for
	helpers.Go(func() { forceOnSecondSignal(ctx, ran, d) })
	_, gogcSet := os.LookupEnv("GOGC")
	helpers.Go(func() { gctune.Default.Run(ran, gogcSet, log) })
	_, procsSet := os.LookupEnv("GOMAXPROCS")
	helpers.Go(func() { proctune.Default.Run(ran, procsSet, log) })
	return d.Run(ctx)
}

// forceOnSecondSignal cuts the drain short when the operator insists: a
// signal after the first (which ended ctx) closes every connection. It
// returns when ran ends, signal or not.
func forceOnSecondSignal(ctx, ran context.Context, d *daemon.Daemon) {
	select {
	case <-ctx.Done():
	case <-ran.Done():
		return
	}
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(again)
	select {
	case <-again:
		d.Close()
	case <-ran.Done():
	}
}

func configCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with the config file"}
	var path string
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate a config file (and the user objects of a users_dir in a bucket); print every problem with file:line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := configedit.LoadConfig(path)
			if err == nil {
				_, err = daemon.Check(cfg)
			}
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return ErrReported
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", path)
			return nil
		},
	}
	configFlag(check, &path)
	cmd.AddCommand(check)
	return cmd
}

func hashPasswordCmd() *cobra.Command {
	var useBcrypt bool
	cmd := &cobra.Command{
		Use:   "hash-password",
		Short: "Read a password on stdin and print its argon2id (or bcrypt) hash for password_hash",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readPassword(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			hash := auth.HashPassword
			if useBcrypt {
				hash = auth.HashPasswordBcrypt
			}
			h, err := hash(pw)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), h)
			return nil
		},
	}
	cmd.Flags().BoolVar(&useBcrypt, "bcrypt", false, "bcrypt instead of argon2id")
	return cmd
}

// readPassword reads one line; on a terminal it prompts without echo.
func readPassword(in io.Reader, prompt io.Writer) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return checkPassword(string(b))
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	return checkPassword(strings.TrimRight(line, "\r\n"))
}

func checkPassword(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("empty password on stdin")
	}
	return pw, nil
}

func versionCmd(version string) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "wharf", version)
		},
	}
}

package cli

import (
	"github.com/spf13/cobra"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon"
	"github.com/wharf-sftp/wharf/internal/doctor"
)

func doctorCmd() *cobra.Command {
	var (
		path    string
		asJSON  bool
		opts    doctor.Options
		timeout = doctor.DefaultTimeout
	)
	cmd := &cobra.Command{
		Use:   "doctor [--json]",
		Short: "Check a running wharf end to end (config, files and modes, storage, listeners, an SFTP and an FTPS round trip, passive ports, certificate, expiring credentials, clock); each problem comes with its fix; exit status 1 on any failure",
		Long: `Run on the daemon's host, as the user wharf runs as (or root). The round trips log in
as a one-time identity that never enters the config and works only from this machine,
once, for two minutes, into a scratch folder that is removed afterwards.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Timeout = timeout
			opts.Check = func(c *config.Config) error {
				_, err := daemon.Check(c)
				return err
			}
			r := doctor.Run(cmd.Context(), path, opts)
			out := cmd.OutOrStdout()
			var err error
			if asJSON {
				err = r.WriteJSON(out)
			} else {
				err = r.WriteText(out)
			}
			if err != nil {
				return err
			}
			if r.Failed() {
				return ErrReported
			}
			return nil
		},
	}
	configFlag(cmd, &path)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON (for monitoring)")
	cmd.Flags().DurationVar(&opts.ExpiryWarning, "expiry-warning", 0, "report keys, passwords and certificates that expire within this (default: the config's key_expiry_warning, or 14 days)")
	cmd.Flags().DurationVar(&timeout, "timeout", doctor.DefaultTimeout, "bound on each network step (a dial, a reply, a transfer)")
	return cmd
}

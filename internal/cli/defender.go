package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon"
)

func defenderCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "defender", Short: "Inspect the brute-force defender"}
	var path string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the addresses the running daemon has banned (from state_dir)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			bans, err := daemon.ReadBans(cfg.StateDir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(bans)
			}
			if len(bans) == 0 {
				fmt.Fprintln(out, "no address is banned")
				return nil
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ADDRESS\tBANNED UNTIL\tLEFT\tOFFENCES")
			for _, b := range bans {
				left := time.Until(b.Until).Round(time.Second)
				if left < 0 {
					left = 0
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", b.Addr, b.Until.Format(time.RFC3339), left, b.Offences)
			}
			return w.Flush()
		},
	}
	configFlag(list, &path)
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(list)
	return cmd
}

package cli

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon"
)

func defenderCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "defender", Short: "Inspect the brute-force defender and lift its bans"}
	var path string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the banned addresses: the fleet's (state_url), else the running daemon's (state_dir)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			bans, err := daemon.ListBans(cmd.Context(), cfg)
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

	lift := &cobra.Command{
		Use:   "lift ADDR",
		Short: "Lift the ban of an address: in the fleet (state_url), else on the running daemon (state_dir)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := netip.ParseAddr(args[0])
			if err != nil {
				return fmt.Errorf("lift: %w", err)
			}
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			where, err := daemon.Lift(cmd.Context(), cfg, addr)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lifted the ban of %s in %s\n", addr.Unmap(), where)
			return nil
		},
	}
	configFlag(lift, &path)
	cmd.AddCommand(list, lift)
	return cmd
}

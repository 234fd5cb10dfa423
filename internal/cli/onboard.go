package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wharf-sftp/wharf/internal/configedit"
	"github.com/wharf-sftp/wharf/internal/daemon"
	"github.com/wharf-sftp/wharf/internal/onboard"
	"github.com/wharf-sftp/wharf/internal/regfile"
)

// onboardTimeout bounds reading a fleet's identity from its bucket.
const onboardTimeout = time.Minute

// maxIdentityFile bounds an --identity file: key files are small.
const maxIdentityFile = 64 << 10

func userOnboardCmd() *cobra.Command {
	var (
		path, host, out, zipPath, clientDir string
		identities                          []string
		ports                               map[string]int
	)
	cmd := &cobra.Command{
		Use:   "onboard NAME --host PUBLIC_HOSTNAME [--out DIR | --zip FILE] [--identity FILE]... [--port PROTO=N]... [--client-dir DIR]",
		Short: "Build a user's onboarding packet: README, known_hosts, ssh_config, FileZilla and WinSCP sites, sftp/curl/lftp commands",
		Long: `Build the packet a partner needs to connect the first time, from the config and the
server's host keys and FTPS certificate: a README in plain words, known_hosts lines, an
OpenSSH config block, a FileZilla Site Manager file, a WinSCP sites file, and commands for
sftp, curl and lftp. Without --out or --zip it prints the README and writes nothing.

--identity adds a key file just issued to the user (an OpenSSH private key, a PuTTY .ppk);
it must hold one of the user's keys. wharf keeps no private keys: nothing else secret
enters the packet, and passwords never do.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := configedit.LoadConfig(path)
			if err != nil {
				return err
			}
			in := onboard.Input{Config: cfg, User: args[0], Host: host, ClientDir: clientDir}
			for name, n := range ports {
				switch name {
				case "sftp":
					in.Ports.SFTP = n
				case "ftps":
					in.Ports.FTPS = n
				case "ftps-implicit":
					in.Ports.FTPSImplicit = n
				default:
					return fmt.Errorf("--port %s: want sftp, ftps or ftps-implicit", name)
				}
			}
			for _, f := range identities {
				data, err := regfile.Read(f, maxIdentityFile)
				if err != nil {
					return fmt.Errorf("--identity: %w", err)
				}
				in.Identities = append(in.Identities, onboard.Identity{Name: filepath.Base(f), Data: data})
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), onboardTimeout)
			defer cancel()
			id, err := daemon.ReadPublicIdentity(ctx, cfg)
			if err != nil {
				return err
			}
			in.HostKeys, in.Certificate = id.HostKeys, id.Certificate
			p, err := onboard.Build(in)
			if err != nil {
				return err
			}
			for _, w := range p.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "wharf: warning: %s\n", w)
			}
			switch {
			case out != "":
				if err := p.WriteDir(out); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: wrote %s\n", out, fileNames(p))
			case zipPath != "":
				if err := p.WriteZipFile(zipPath, time.Now()); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: wrote %s/ with %s\n", zipPath, p.Name, fileNames(p))
			default:
				_, err := cmd.OutOrStdout().Write(p.File(onboard.ReadmeFile).Data)
				return err
			}
			return nil
		},
	}
	configFlag(cmd, &path)
	f := cmd.Flags()
	f.StringVar(&host, "host", "", "the host name (or address) partners connect to (required)")
	f.StringVar(&out, "out", "", "write the packet's files into this new or empty folder (mode 0700)")
	f.StringVar(&zipPath, "zip", "", "write the packet as a new zip file (mode 0600)")
	f.StringArrayVar(&identities, "identity", nil, "a key file just issued to the user, to include (repeatable: the OpenSSH key and its .ppk)")
	f.StringToIntVar(&ports, "port", nil, "the port partners use, when not the listener's (behind NAT or a load balancer): sftp=N, ftps=N, ftps-implicit=N")
	f.StringVar(&clientDir, "client-dir", "", "where the partner keeps the files on their machine, written into ssh_config and the FileZilla and WinSCP sites (default: ~/.ssh for OpenSSH)")
	if err := cmd.MarkFlagRequired("host"); err != nil {
		panic(err) // the flag is defined just above
	}
	cmd.MarkFlagsMutuallyExclusive("out", "zip")
	return cmd
}

// fileNames lists a packet's files, sorted, for the operator.
func fileNames(p *onboard.Packet) string {
	names := make([]string, len(p.Files))
	for i, f := range p.Files {
		names[i] = f.Name
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

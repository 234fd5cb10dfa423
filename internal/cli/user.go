package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/configedit"
	"github.com/wharf-sftp/wharf/internal/daemon"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

func userCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Add, remove, list and change users in the config file, its users_dir, or a users_dir bucket (a running wharf reloads them)",
	}
	cmd.AddCommand(userAddCmd(), userRemoveCmd(), userListCmd(), userKeyCmd(),
		userDisableCmd(true), userDisableCmd(false), userPasswdCmd(), userOnboardCmd())
	return cmd
}

// editor checks edits with daemon.Check: what start-up runs.
func editor(path string) *configedit.Editor {
	return &configedit.Editor{Path: path, Check: func(c *config.Config) error {
		_, err := daemon.Check(c)
		return err
	}}
}

// report prints what an edit did.
func report(cmd *cobra.Command, res configedit.Result, did, already string) {
	if !res.Changed {
		fmt.Fprintf(cmd.OutOrStdout(), "%s; nothing changed\n", already)
		return
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", res.File, did)
	if res.Reformatted {
		fmt.Fprintf(cmd.ErrOrStderr(), "wharf: note: %s was rewritten with yaml.v3's layout (blank lines, comment alignment); its comments and meaning are kept\n", res.File)
	}
	if res.LostComments > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "wharf: warning: %d comment line(s) of %s could not be kept\n", res.LostComments, res.File)
	}
}

func userAddCmd() *cobra.Command {
	var (
		path, home, perms, protos string
		keys, keyFiles            []string
		passwordStdin, genPW      bool
		pwExpires                 string
		gen                       issueFlags
	)
	cmd := &cobra.Command{
		Use:   "add NAME --home DIR [--key KEY | --key-file FILE | --generate-key --out DIR]... [--password-stdin | --generate-password] [--permissions LIST] [--protocols LIST]",
		Short: "Add a user (to users_dir/NAME.yaml when users_dir is set, a folder or a bucket)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			if err := gen.check(cmd); err != nil {
				return err
			}
			nu := configedit.NewUser{Name: args[0], Home: home}
			var err error
			if nu.PasswordExpiresAt, err = expiryFlag("password-expires", pwExpires, now); err != nil {
				return err
			}
			if pwExpires != "" && !passwordStdin && !genPW {
				return errors.New("--password-expires goes with --password-stdin or --generate-password")
			}
			for i, k := range keys {
				if err := configedit.CheckKey(k); err != nil {
					return fmt.Errorf("--key #%d: %w", i+1, err)
				}
				nu.PublicKeys = append(nu.PublicKeys, k)
			}
			for _, f := range keyFiles {
				ks, err := readKeyFile(f)
				if err != nil {
					return err
				}
				nu.PublicKeys = append(nu.PublicKeys, ks...)
			}
			if cmd.Flags().Changed("permissions") {
				nu.Permissions = splitList(perms)
			}
			if cmd.Flags().Changed("protocols") {
				nu.Protocols = splitList(protos)
			}
			if passwordStdin {
				pw, err := readPassword(cmd.InOrStdin(), cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				if nu.PasswordHash, err = auth.HashPassword(pw); err != nil {
					return err
				}
			}
			var password string
			if genPW {
				if password, nu.PasswordHash, err = issuePassword(); err != nil {
					return err
				}
			}
			var iss *issued
			if gen.generate {
				if iss, err = gen.issue(nu.Name, now); err != nil {
					return err
				}
				nu.PublicKeys = append(nu.PublicKeys, iss.key.AuthorizedKey())
			}
			res, err := editor(path).AddUser(nu)
			if err != nil {
				iss.undo()
				return err
			}
			did := fmt.Sprintf("added user %q", nu.Name)
			if res.Created {
				did += " (new " + fileKind(res.File) + ")"
			}
			report(cmd, res, did, "")
			if iss != nil {
				iss.report(cmd.OutOrStdout(), nu.Name)
			}
			if genPW {
				reportPassword(cmd.OutOrStdout(), nu.Name, password)
			}
			return nil
		},
	}
	configFlag(cmd, &path)
	f := cmd.Flags()
	f.StringVar(&home, "home", "", "home directory beneath storage.root, e.g. /acme (required)")
	// StringArray, not StringSlice: an authorized_keys line may hold commas.
	f.StringArrayVar(&keys, "key", nil, "an authorized_keys line (repeatable)")
	f.StringArrayVar(&keyFiles, "key-file", nil, "a file of authorized_keys lines, e.g. id_ed25519.pub (repeatable)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read a password on stdin and store its argon2id hash")
	f.BoolVar(&genPW, "generate-password", false, "generate a strong password, print it once and store only its argon2id hash")
	f.StringVar(&pwExpires, "password-expires", "", "when the password stops working: a time (2027-03-01, 2027-03-01T00:00:00Z) or a duration from now (90d)")
	gen.register(f)
	f.StringVar(&perms, "permissions", "", "comma-separated: "+strings.Join(vfs.PermNames(), ",")+` ("" for none; absent: all)`)
	f.StringVar(&protos, "protocols", "", "comma-separated: "+strings.Join(config.Protocols, ",")+" (absent: all)")
	if err := cmd.MarkFlagRequired("home"); err != nil {
		panic(err) // the flag is defined just above
	}
	cmd.MarkFlagsMutuallyExclusive("password-stdin", "generate-password")
	return cmd
}

// fileKind names what a users_dir entry is: a file, or an object of a bucket.
func fileKind(file string) string {
	if config.IsBucketURL(file) {
		return "object"
	}
	return "file"
}

// splitList splits a --permissions or --protocols value. An empty value is
// an empty list, not a list of one empty name.
func splitList(s string) []string {
	out := []string{}
	if strings.TrimSpace(s) == "" {
		return out
	}
	for item := range strings.SplitSeq(s, ",") {
		out = append(out, strings.TrimSpace(item))
	}
	return out
}

// keyFileLimit bounds what --key-file reads: authorized_keys files are
// small, and this is not the place to read a disk image by mistake.
const keyFileLimit = 1 << 20

// readKeyFile returns the keys of an authorized_keys or .pub file: every
// line but blank ones and comments, each checked. Errors name the file and
// line, never the content.
func readKeyFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--key-file: %w", err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(io.LimitReader(f, keyFileLimit))
	sc.Buffer(make([]byte, 0, 64*1024), keyFileLimit)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := configedit.CheckKey(line); err != nil {
			return nil, fmt.Errorf("--key-file %s line %d: %w", path, n, err)
		}
		keys = append(keys, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--key-file %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("--key-file %s: no key in the file", path)
	}
	return keys, nil
}

func userRemoveCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user (its users_dir file or object, if it has one)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := editor(path).RemoveUser(args[0])
			if err != nil {
				return err
			}
			did := fmt.Sprintf("removed user %q", args[0])
			if res.Removed {
				did += " (" + fileKind(res.File) + " deleted)"
			}
			report(cmd, res, did, "")
			return nil
		},
	}
	configFlag(cmd, &path)
	return cmd
}

func userListCmd() *cobra.Command {
	var (
		path   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the users: a table, or a JSON array with --json",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			users, err := editor(path).List()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				data, err := json.MarshalIndent(users, "", "  ")
				if err != nil {
					return fmt.Errorf("encode json: %w", err)
				}
				_, err = fmt.Fprintf(out, "%s\n", data)
				return err
			}
			now := time.Now()
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tHOME\tKEYS\tPASSWORD\tPERMISSIONS\tPROTOCOLS\tDISABLED\tSOURCE")
			for _, u := range users {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s:%d\n", u.Name, u.Home, u.Keys, passwordColumn(u, now),
					listOf(u.Permissions, vfs.PermNames()), listOf(u.Protocols, config.Protocols), yesNo(u.Disabled), u.File, u.Line)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return printKeys(out, users, now)
		},
	}
	configFlag(cmd, &path)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array (with each key's SHA256 fingerprint, comment and expiry)")
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// listOf shows a list in the table: "all" when it holds every name, "none"
// when empty.
func listOf(items, all []string) string {
	switch {
	case len(items) == 0:
		return "none"
	case len(items) == len(all) && !slices.ContainsFunc(all, func(s string) bool { return !slices.Contains(items, s) }):
		return "all"
	}
	return strings.Join(items, ",")
}

func userKeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Add, remove or rotate a user's public keys"}
	var addPath, removePath, addComment, addExpires string
	add := &cobra.Command{
		Use:   "add NAME KEY [--comment TEXT] [--expires TIME]",
		Short: "Add an authorized_keys line to a user",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, err := expiryFlag("expires", addExpires, time.Now())
			if err != nil {
				return err
			}
			res, err := editor(addPath).AddPublicKey(args[0], config.PublicKey{Key: args[1], Comment: addComment, ExpiresAt: exp})
			if err != nil {
				return err
			}
			report(cmd, res, fmt.Sprintf("added a key to user %q", args[0]), "")
			return nil
		},
	}
	configFlag(add, &addPath)
	add.Flags().StringVar(&addComment, "comment", "", "a comment recorded with the key (e.g. the partner's system)")
	add.Flags().StringVar(&addExpires, "expires", "", "when the key stops working: a time (2027-03-01, 2027-03-01T00:00:00Z) or a duration from now (365d)")
	remove := &cobra.Command{
		Use:   "remove NAME FINGERPRINT",
		Short: "Remove a user's key by its SHA256:... fingerprint (see `wharf user list --json`)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := editor(removePath).RemoveKey(args[0], args[1])
			if err != nil {
				return err
			}
			report(cmd, res, fmt.Sprintf("removed key %s from user %q", args[1], args[0]), "")
			return nil
		},
	}
	configFlag(remove, &removePath)
	cmd.AddCommand(add, remove, userKeyRotateCmd())
	return cmd
}

func userDisableCmd(disable bool) *cobra.Command {
	var path string
	verb, short, state := "enable", "Let a disabled user log in again", "enabled"
	if disable {
		verb, short, state = "disable", "Refuse every login of a user, keeping its entry", "disabled"
	}
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := editor(path).SetDisabled(args[0], disable)
			if err != nil {
				return err
			}
			report(cmd, res, fmt.Sprintf("%s user %q", state, args[0]), fmt.Sprintf("user %q is already %s", args[0], state))
			return nil
		},
	}
	configFlag(cmd, &path)
	return cmd
}

func userPasswdCmd() *cobra.Command {
	var (
		path, expires string
		stdin, genPW  bool
	)
	cmd := &cobra.Command{
		Use:   "passwd NAME (--stdin | --generate-password) [--expires TIME]",
		Short: "Set a user's password, read as one line on stdin or generated, stored as an argon2id hash",
		Long: "Set a user's password, read as one line on stdin (--stdin) or generated and printed once " +
			"(--generate-password), stored as an argon2id hash. The new password expires at --expires, or never: " +
			"an expiry of the old password is removed.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, err := expiryFlag("expires", expires, time.Now())
			if err != nil {
				return err
			}
			var pw, hash string
			if genPW {
				pw, hash, err = issuePassword()
			} else if pw, err = readPassword(cmd.InOrStdin(), cmd.ErrOrStderr()); err == nil {
				hash, err = auth.HashPassword(pw)
			}
			if err != nil {
				return err
			}
			res, err := editor(path).SetPassword(args[0], hash, exp)
			if err != nil {
				return err
			}
			did := fmt.Sprintf("set the password of user %q", args[0])
			if !exp.IsZero() {
				did += ", expiring " + config.FormatTime(exp)
			}
			report(cmd, res, did, "")
			if genPW {
				reportPassword(cmd.OutOrStdout(), args[0], pw)
			}
			return nil
		},
	}
	configFlag(cmd, &path)
	cmd.Flags().BoolVar(&stdin, "stdin", false, "read the password from stdin (it never goes on the command line)")
	cmd.Flags().BoolVar(&genPW, "generate-password", false, "generate a strong password, print it once and store only its hash")
	cmd.Flags().StringVar(&expires, "expires", "", "when the password stops working: a time (2027-03-01, 2027-03-01T00:00:00Z) or a duration from now (90d)")
	cmd.MarkFlagsOneRequired("stdin", "generate-password")
	cmd.MarkFlagsMutuallyExclusive("stdin", "generate-password")
	return cmd
}

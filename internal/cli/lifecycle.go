package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/configedit"
	"github.com/wharf-sftp/wharf/internal/keygen"
)

// The credential lifecycle on the command line: keys and passwords the
// server issues (--generate-key, --generate-password), keys that expire
// (--expires) and rotate with a grace (`user key rotate`), and the
// expiries `user list` shows.

// defaultGrace is how long a rotation keeps the old keys working.
const defaultGrace = "7d"

// issueFlags are the flags that make wharf generate a key pair.
type issueFlags struct {
	generate bool
	keyType  string
	out      string
}

func (f *issueFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.generate, "generate-key", false, "generate a key pair: the private key goes to --out (OpenSSH and PuTTY .ppk), only the public key into the config")
	fs.StringVar(&f.keyType, "key-type", keygen.ED25519, "with --generate-key: "+strings.Join(keygen.Types, " or "))
	fs.StringVar(&f.out, "out", "", "with --generate-key: the folder for the key files (created 0700 if missing; existing files are never overwritten)")
}

// check refuses --key-type and --out without --generate-key, and
// --generate-key without --out.
func (f *issueFlags) check(cmd *cobra.Command) error {
	changed := cmd.Flags().Changed
	switch {
	case !f.generate && (changed("key-type") || changed("out")):
		return errors.New("--key-type and --out go with --generate-key")
	case f.generate && f.out == "":
		return errors.New("--generate-key needs --out DIR, the folder for the private key files")
	}
	return nil
}

// issued is a key pair generated and written for a user.
type issued struct {
	key   *keygen.Key
	files keygen.Files
}

// issue generates a key pair for user and writes its files; the caller
// records the public key, and calls undo if that fails, so that no private
// key is left behind for a key the server does not know.
func (f *issueFlags) issue(user string, now time.Time) (*issued, error) {
	k, err := keygen.Generate(f.keyType, fmt.Sprintf("%s issued by wharf %s", user, now.UTC().Format(time.DateOnly)))
	if err != nil {
		return nil, err
	}
	files, err := k.WriteFiles(f.out, user+"_"+k.Type)
	if err != nil {
		return nil, err
	}
	return &issued{key: k, files: files}, nil
}

func (i *issued) undo() {
	if i != nil {
		keygen.Remove(i.files)
	}
}

// report tells the operator where the key files are and what each is for.
func (i *issued) report(w io.Writer, user string) {
	fmt.Fprintf(w, "generated an %s key for user %q, %s:\n", i.key.Type, user, i.key.Fingerprint())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  %s\tprivate key, OpenSSH format (OpenSSH, curl, lftp, most ETL tools)\n", i.files.Private)
	fmt.Fprintf(tw, "  %s\tprivate key, PuTTY format (WinSCP, FileZilla, PuTTY)\n", i.files.PPK)
	fmt.Fprintf(tw, "  %s\tpublic key, as recorded in the config\n", i.files.Public)
	tw.Flush()
	fmt.Fprintln(w, "Hand the private key to the partner over a secure channel, then delete it here: wharf keeps only the public key.")
}

// issuePassword returns a new random password and its hash.
func issuePassword() (password, hash string, err error) {
	password = keygen.Password()
	hash, err = auth.HashPassword(password)
	return password, hash, err
}

// reportPassword prints a generated password, once: the config holds only
// its hash, so this is the only time anyone sees it.
func reportPassword(w io.Writer, user, password string) {
	fmt.Fprintf(w, "password of user %q (shown once; wharf stores only its hash): %s\n", user, password)
}

// expiryFlag reads an --expires value: a time or a duration from now.
func expiryFlag(name, value string, now time.Time) (time.Time, error) {
	if value == "" {
		return time.Time{}, nil
	}
	t, err := config.ExpiryFrom(value, now)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s: %w", name, err)
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("--%s: %s is not in the future", name, config.FormatTime(t))
	}
	return t, nil
}

func userKeyRotateCmd() *cobra.Command {
	var (
		path, grace, comment, expires string
		keys, keyFiles                []string
		gen                           issueFlags
	)
	cmd := &cobra.Command{
		Use:   "rotate NAME (--key KEY | --key-file FILE | --generate-key --out DIR) [--grace 7d]",
		Short: "Add a new key to a user and let every older key expire after a grace, so that both work during the overlap",
		Long: "Add a new key to a user and set every older key's expires_at to now + --grace (an older key that " +
			"expires sooner keeps its expiry). Old and new keys both log in until then; the old ones then stop by " +
			"themselves. A running wharf applies it at once; with --grace 0 the old keys stop now and their open " +
			"sessions are closed.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, now := args[0], time.Now()
			if err := gen.check(cmd); err != nil {
				return err
			}
			g, err := config.ParseDuration(grace)
			if err != nil || g < 0 {
				return fmt.Errorf("--grace: want a duration such as 7d, 36h or 0 (the old keys stop now)")
			}
			exp, err := expiryFlag("expires", expires, now)
			if err != nil {
				return err
			}
			var add []config.PublicKey
			for i, k := range keys {
				if err := configedit.CheckKey(k); err != nil {
					return fmt.Errorf("--key #%d: %w", i+1, err)
				}
				add = append(add, config.PublicKey{Key: k, Comment: comment, ExpiresAt: exp})
			}
			for _, f := range keyFiles {
				ks, err := readKeyFile(f)
				if err != nil {
					return err
				}
				for _, k := range ks {
					add = append(add, config.PublicKey{Key: k, Comment: comment, ExpiresAt: exp})
				}
			}
			var iss *issued
			if gen.generate {
				if iss, err = gen.issue(name, now); err != nil {
					return err
				}
				add = append(add, config.PublicKey{Key: iss.key.AuthorizedKey(), Comment: comment, ExpiresAt: exp})
			}
			// A grace ends rounded up to the second (RotateKeys); none
			// ends at the second already begun, so the old keys stop now.
			until := now.Add(g)
			if g == 0 {
				until = now.UTC().Truncate(time.Second)
			}
			res, old, err := editor(path).RotateKeys(name, add, until)
			if err != nil {
				iss.undo()
				return err
			}
			out := cmd.OutOrStdout()
			report(cmd, res, fmt.Sprintf("rotated the keys of user %q", name), "")
			for _, k := range add {
				fmt.Fprintf(out, "  new key %s\n", keyFingerprint(k.Key))
			}
			for _, k := range old {
				if l := left(k.ExpiresAt, now); l != "expired" {
					fmt.Fprintf(out, "  old key %s expires %s (in %s)\n", k.Fingerprint, config.FormatTime(k.ExpiresAt), l)
				} else {
					fmt.Fprintf(out, "  old key %s expired %s\n", k.Fingerprint, config.FormatTime(k.ExpiresAt))
				}
			}
			if iss != nil {
				iss.report(out, name)
			}
			return nil
		},
	}
	configFlag(cmd, &path)
	f := cmd.Flags()
	f.StringArrayVar(&keys, "key", nil, "the new authorized_keys line (repeatable)")
	f.StringArrayVar(&keyFiles, "key-file", nil, "a file of new authorized_keys lines, e.g. id_ed25519.pub (repeatable)")
	gen.register(f)
	f.StringVar(&grace, "grace", defaultGrace, "how long the older keys keep working: 7d, 36h, 0 for not at all")
	f.StringVar(&comment, "comment", "", "a comment recorded with the new key (e.g. the partner's system)")
	f.StringVar(&expires, "expires", "", "when the new key itself expires: a time (2027-03-01, 2027-03-01T00:00:00Z) or a duration from now (365d)")
	cmd.MarkFlagsOneRequired("key", "key-file", "generate-key")
	return cmd
}

// keyFingerprint is the fingerprint of an authorized_keys line checked
// before.
func keyFingerprint(line string) string {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(line)))
	if err != nil {
		return "(invalid key)"
	}
	return auth.Fingerprint(k)
}

// left is the time from now until t as `user list` and rotate show it:
// "87d", "5h", "expired".
func left(t, now time.Time) string {
	d := t.Sub(now)
	switch {
	case d <= 0:
		return "expired"
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd", int(d.Round(time.Hour)/(24*time.Hour)))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int(d.Round(time.Minute)/time.Hour))
	default:
		return d.Round(time.Second).String()
	}
}

// passwordColumn is the PASSWORD column of `user list`.
func passwordColumn(u configedit.UserInfo, now time.Time) string {
	switch {
	case !u.Password:
		return "no"
	case u.PasswordExpiresAt.IsZero():
		return "yes"
	case !u.PasswordExpiresAt.After(now):
		return "expired:" + config.FormatTime(u.PasswordExpiresAt)
	}
	return "expires:" + config.FormatTime(u.PasswordExpiresAt)
}

// printKeys is the second table of `user list`: every key, with its expiry.
func printKeys(w io.Writer, users []configedit.UserInfo, now time.Time) error {
	n := 0
	for _, u := range users {
		n += len(u.PublicKeys)
	}
	if n == 0 {
		return nil
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tKEY\tEXPIRES\tLEFT\tCOMMENT")
	for _, u := range users {
		for _, k := range u.PublicKeys {
			exp, l := "never", "-"
			if !k.ExpiresAt.IsZero() {
				exp, l = config.FormatTime(k.ExpiresAt), left(k.ExpiresAt, now)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, k.Fingerprint, exp, l, k.Comment)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// A key without comment would end its line in padding.
	text := "\n"
	for line := range strings.Lines(buf.String()) {
		text += strings.TrimRight(line, " \n") + "\n"
	}
	_, err := io.WriteString(w, text)
	return err
}

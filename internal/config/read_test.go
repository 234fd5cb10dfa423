package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loadWithin runs Load and fails the test if it has not returned within a
// few seconds: the reads this file tests used to block for ever.
func loadWithin(t *testing.T, path string) error {
	t.Helper()
	type result struct{ err error }
	done := make(chan result, 1)
	go func() {
		_, err := Load(path)
		done <- result{err}
	}()
	select {
	case r := <-done:
		return r.err
	case <-time.After(5 * time.Second):
		t.Fatalf("Load(%s) still blocked after 5s", path)
		return nil
	}
}

// TestLoadRefusesWhatIsNotARegularFile: a FIFO is refused without blocking,
// a device without being read, a file over MaxFileSize without being read
// whole; the error names the file and the reason.
func TestLoadRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	linkedFIFO := filepath.Join(dir, "linked-fifo.yaml")
	if err := os.Symlink(fifo, linkedFIFO); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 17 MiB of nothing, cheap to make, not to read.
	if err := f.Truncate(MaxFileSize + 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	folder := filepath.Join(dir, "folder.yaml")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct{ path, want string }{
		{fifo, "not a regular file"},
		{linkedFIFO, "not a regular file"},
		{zero, "not a regular file"},
		{big, "larger than 16 MiB"},
		{folder, "not a regular file"},
	} {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			err := loadWithin(t, tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("Load = %v; want an error naming %s and saying %q", err, tt.path, tt.want)
			}
		})
	}

	// The same rule for a users_dir file, reported with that file's name
	// while the other users load.
	users := filepath.Join(dir, "users")
	if err := os.Mkdir(users, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(users, "a.yaml"), []byte("name: a\nhome: /a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(users, "b.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(users, "c.yaml")); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dir, "wharf.yaml")
	if err := os.WriteFile(main, []byte("storage: {backend: memory}\nusers_dir: "+users+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = loadWithin(t, main)
	for _, name := range []string{"b.yaml", "c.yaml"} {
		if err == nil || !strings.Contains(err.Error(), filepath.Join(users, name)+": cannot read user file: not a regular file") {
			t.Errorf("Load = %v; want %s refused as not a regular file", err, name)
		}
	}
}

// TestErrorsNeverQuoteContent: a config pointed at a shadow-like file says
// which lines are wrong without repeating them; only plain names are named.
func TestErrorsNeverQuoteContent(t *testing.T) {
	const secret = "Zm9vYmFyYmF6cXV4c2VjcmV0aGFzaA"
	var b strings.Builder
	fmt.Fprintf(&b, "root:$6$rounds=5000$saltsalt$%s:19700:0:99999:7:::\n", secret)
	fmt.Fprintf(&b, "daemon:*:19700:0:99999:7:::\n")
	fmt.Fprintf(&b, "alice:$2b$12$%s:19700:0:99999:7:::\n", secret)
	fmt.Fprintf(&b, "\"%s\": 1\n", secret+"-with a space")
	fmt.Fprintf(&b, "log: {level: \"$argon2id$v=19$%s\"}\n", secret)
	fmt.Fprintf(&b, "plain_key.v2: 1\n")
	path := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil {
		t.Fatal("Load of a shadow-like file succeeded")
	}
	text := err.Error()
	for _, leak := range []string{secret, "$6$", "$2b$", "argon2id", "daemon", "19700", "salt"} {
		if strings.Contains(text, leak) {
			t.Errorf("error quotes the file's content (%q):\n%s", leak, text)
		}
	}
	fes := fieldErrors(t, err)
	if len(fes) != 6 {
		t.Fatalf("%d errors, want one per line:\n%s", len(fes), text)
	}
	for i, fe := range fes {
		if fe.Line != i+1 || fe.File != path {
			t.Errorf("error %d = %v; want %s line %d", i, fe, path, i+1)
		}
	}
	if fes[5].Field != "plain_key.v2" {
		t.Errorf("a plain key is not named: %v", fes[5])
	}
}

// TestErrorsCapped: a file with 300 problems yields the first MaxErrors of
// them, in line order, and one "and N more" for the rest.
func TestErrorsCapped(t *testing.T) {
	var b strings.Builder
	for i := range 300 {
		fmt.Fprintf(&b, "unknown%d: x\n", i)
	}
	path := filepath.Join(t.TempDir(), "wharf.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	lines := strings.Split(fmt.Sprint(err), "\n")
	if len(lines) != MaxErrors+1 || lines[MaxErrors] != "and 250 more problems" {
		t.Fatalf("%d error lines, last %q; want %d and \"and 250 more problems\"", len(lines), lines[len(lines)-1], MaxErrors+1)
	}
	if !strings.HasPrefix(lines[0], path+":1: unknown0: unknown key") || !strings.HasPrefix(lines[MaxErrors-1], path+":50: unknown49:") {
		t.Errorf("first and last errors shown: %q, %q", lines[0], lines[MaxErrors-1])
	}
}

// aliasFanOut is the attack's shape: one user mapping with two mistakes,
// anchored, then named n times in a flow list (about 4 bytes per alias).
func aliasFanOut(n int) string {
	return "users: [&u {name: bob, home: bob, pasword_hash: x}" + strings.Repeat(", *u", n) + "]\n"
}

// aliasNested is "billion laughs": each level a list of ten aliases to the
// level below, so that a few hundred bytes name 10^levels users.
func aliasNested(levels int) string {
	var b strings.Builder
	b.WriteString("x0: &l0 [" + strings.Repeat("{name: a, home: /a},", 9) + "{name: a, home: /a}]\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "x%d: &l%d [%s*l%d]\n", i, i, strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 9), i-1)
	}
	fmt.Fprintf(&b, "users: *l%d\n", levels)
	return b.String()
}

// TestAliasExpansionBounded: a document whose aliases name far more values
// than it writes is refused with one error before anything is decoded;
// sharing a list between users, the reason to use aliases, still works.
func TestAliasExpansionBounded(t *testing.T) {
	for _, tt := range []struct{ name, doc string }{
		{"fan-out", aliasFanOut(200_000)},
		{"nested", aliasNested(9)},
		{"cycle", "users: &u [{name: a, home: /a, permissions: *u}]\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			fes := fieldErrors(t, err)
			if len(fes) != 1 || !strings.Contains(fes[0].Msg, "repeats aliases too often") {
				t.Fatalf("Parse = %d errors; want the one alias error", len(fes))
			}
		})
	}
	var b strings.Builder
	b.WriteString("users:\n")
	for i := range 2000 {
		perms := "*ro"
		if i == 0 {
			perms = "&ro [list, download, upload, mkdir, rename]"
		}
		fmt.Fprintf(&b, "  - {name: u%d, home: /u%d, permissions: %s}\n", i, i, perms)
	}
	c, err := Parse([]byte(b.String()))
	if err != nil || len(c.Users[1999].Permissions) != 5 {
		t.Fatalf("2000 users sharing one permissions list: %v", err)
	}
}

// TestSnapshot: ReadSnapshot, which reads without parsing, digests exactly
// what LoadSnapshot parsed, so that a reload can compare a cheap read with
// a load; any change to the config file or a users_dir file (added,
// changed, removed, or unreadable) changes the digest.
func TestSnapshot(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	if err := os.Mkdir(users, 0o755); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dir, "wharf.yaml")
	write := func(path, doc string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(main, "storage: {backend: memory}\nusers_dir: "+users+"\n")
	write(filepath.Join(users, "a.yaml"), "name: a\nhome: /a\n")
	_, snap, err := LoadSnapshot(main)
	if err != nil {
		t.Fatal(err)
	}
	if snap.UsersDir != users || snap.Blank {
		t.Errorf("snapshot = %+v", snap)
	}
	if got := ReadSnapshot(main, users); got != snap {
		t.Fatalf("ReadSnapshot = %+v, LoadSnapshot = %+v; want equal", got, snap)
	}
	if got := ReadSnapshot(main, ""); got.Sum == snap.Sum {
		t.Error("a read without the users_dir digests like one with it")
	}
	seen := map[[32]byte]string{snap.Sum: "start"}
	for _, step := range []struct {
		name string
		do   func()
	}{
		{"user file added", func() { write(filepath.Join(users, "b.yaml"), "name: b\nhome: /b\n") }},
		{"user file changed", func() { write(filepath.Join(users, "b.yaml"), "name: b\nhome: /bb\n") }},
		{"user file unreadable", func() {
			os.Remove(filepath.Join(users, "b.yaml"))
			if err := syscall.Mkfifo(filepath.Join(users, "b.yaml"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"user file removed", func() { os.Remove(filepath.Join(users, "b.yaml")) }},
		{"config changed", func() { write(main, "storage: {backend: memory}\nusers_dir: "+users+"\nlog: {level: debug}\n") }},
		{"config blank", func() { write(main, "\n\n") }},
	} {
		step.do()
		got := ReadSnapshot(main, users)
		if prev, dup := seen[got.Sum]; dup && step.name != "user file removed" {
			t.Errorf("%s: digest as after %q", step.name, prev)
		}
		seen[got.Sum] = step.name
		if step.name == "user file removed" && got.Sum != snap.Sum {
			t.Errorf("back to the first files, the digest differs")
		}
	}
	if _, snap, err := LoadSnapshot(main); err != nil || !snap.Blank {
		t.Errorf("blank config: LoadSnapshot = %+v, %v; want Blank", snap, err)
	}
}

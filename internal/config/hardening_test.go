package config

import (
	"strings"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{
		"0": 0, "1024": 1024, "64KiB": 64 << 10, "10GiB": 10 << 30, "500MB": 500e6, "1 TiB": 1 << 40, "7B": 7,
	} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "ten", "-1", "1.5GiB", "1PiB", "99999999999TiB", "GiB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) succeeded", in)
		}
	}
}

func TestParseUploadSize(t *testing.T) {
	c, err := Parse([]byte("users:\n  - {name: a, home: /, max_upload_size: 2MiB}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Users[0].MaxUploadSize != 2<<20 {
		t.Fatalf("max_upload_size = %d", c.Users[0].MaxUploadSize)
	}
	if _, err := Parse([]byte("users:\n  - name: a\n    home: /\n    max_upload_size: lots\n")); err == nil {
		t.Fatal("an invalid size parsed")
	}
}

func TestParseHooks(t *testing.T) {
	doc := `
hooks:
  - name: erp
    events: [upload]
    paths: ["/*/inbox/**"]
    webhook: {url: "http://127.0.0.1:8080/wharf", secret_file: /s, timeout: 10s}
  - name: move
    command: {argv: [/usr/local/bin/process, --file], timeout: 1m}
`
	c, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{
		"admin: {listen: \"127.0.0.1:9090\", pprof: true}\n",
		"admin: {listen: \"[::1]:9090\", pprof: true}\n",
		"admin: {listen: \":9090\", pprof: true, token_file: /etc/wharf/admin.token}\n",
	} {
		if _, err := Parse([]byte(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	if h := c.Hooks[0]; h.Webhook == nil || h.Webhook.URL != "http://127.0.0.1:8080/wharf" || h.Command != nil {
		t.Fatalf("hooks[0] = %+v", h)
	}
	if h := c.Hooks[1]; h.Command == nil || h.Command.Argv[1] != "--file" || h.Webhook != nil {
		t.Fatalf("hooks[1] = %+v", h)
	}
	for _, bad := range []struct{ doc, want string }{
		{"hooks:\n  - name: x\n    webhook: {url: http://h/, secert_file: /s}\n", "hooks[0].webhook.secert_file: unknown key"},
		{"hooks:\n  - name: x\n", "exactly one of webhook or command"},
		{"hooks:\n  - name: x\n    command: {argv: [process]}\n", "hooks[0].command.argv[0]: want an absolute path"},
		{"hooks:\n  - name: x\n    events: [uplaod]\n    command: {argv: [/bin/true]}\n", `hooks[0].events[0]: unknown event "uplaod"`},
		{"hooks:\n  - name: x\n    webhook: {url: ftp://h/}\n", "hooks[0].webhook.url: want an http"},
		{"admin: {listen: \"10.0.0.5:9090\", pprof: true}\n", "admin.pprof: needs admin.token_file"},
		// exec refuses a NUL in an argument: the hook would fail on every event.
		{"hooks:\n  - name: x\n    command: {argv: [/bin/echo, \"a\\0b\"]}\n", "hooks[0].command.argv[1]: contains a NUL byte"},
		{"hooks:\n  - name: x\n    command: {argv: [\"/bin/echo\\0\"]}\n", "hooks[0].command.argv[0]: contains a NUL byte"},
	} {
		_, err := Parse([]byte(bad.doc))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.doc, err, bad.want)
		}
	}
}

func TestFormatByteSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := FormatByteSize(n); got != want {
			t.Errorf("FormatByteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

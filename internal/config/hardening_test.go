package config

import "testing"

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

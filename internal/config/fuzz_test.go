package config

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, returns exactly one of a config
// and an error, reports every failure as FieldErrors, and only returns
// configs that validate.
func FuzzParse(f *testing.F) {
	for _, doc := range []string{
		"",
		fullDoc,
		"sftp: {listen: \"\"}\nstorage: {backend: memory}\n",
		"users:\n  - name: a\n    home: /\n    permissions: []\n",
		"users:\n  - name: a\n    home: /a\n    permissions: &p [list]\n  - name: b\n    home: /b\n    permissions: *p\n",
		"sftp:\n  listn: x\nshutdown_grace: soon\nusers:\n- name: a\n  home: a/b\n",
		"log: {}\n---\nlog: {}\n",
		"- a\n",
		"log:\n  level: info\n  level: debug\n",
		"base: &b {level: info}\nlog:\n  <<: *b\n",
		"? [a]\n: 1\n",
		"root:$6$salt$hash:19700:0:99999:7:::\n\"a b\": 1\n",
		"users: &u [{name: a, home: /a, permissions: *u}]\n",
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v; want exactly one", c != nil, err)
		}
		if err != nil {
			fes := fieldErrors(t, err)
			if len(fes) == 0 {
				t.Fatal("empty joined error")
			}
			for _, fe := range fes {
				if fe.Msg == "" || fe.Line < 0 || fe.File != "" {
					t.Errorf("malformed FieldError %#v", fe)
				}
				// A field path is made of plain names and indexes only:
				// any other key is pointed at by its line.
				if strings.Trim(fe.Field, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.[]") != "" {
					t.Errorf("field path %q is not plain", fe.Field)
				}
			}
			if len(fes) > MaxErrors {
				t.Errorf("%d errors listed; want at most %d", len(fes), MaxErrors)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Errorf("Parse succeeded but Validate fails: %v", err)
		}
		for i, u := range c.Users {
			if want := fmt.Sprintf("users[%d]", i); u.Src.Prefix != want || u.Src.Lines[""] <= 0 {
				t.Errorf("users[%d].Src = %+v", i, u.Src)
			}
		}
	})
}

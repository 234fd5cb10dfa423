package configedit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wharf-sftp/wharf/internal/s3store"
	"github.com/wharf-sftp/wharf/internal/s3test"
)

// operators is one bucket users_dir and the config files of several
// operators' machines naming it: their `wharf user` edits do not share a
// lock file, only the bucket.
type operators struct {
	srv    *s3test.Server
	bucket string
	url    string
	paths  []string
}

func newOperators(t *testing.T, n int) *operators {
	t.Helper()
	srv := s3test.Start(t)
	s3test.IsolateAWS(t)
	o := &operators{srv: srv, bucket: srv.NewBucket(t)}
	o.url = "s3://" + o.bucket + "/wharf/users/"
	for i := range n {
		dir := t.TempDir()
		secret := filepath.Join(dir, "s3.secret")
		writeFile(t, secret, srv.SecretKey+"\n", 0o600)
		path := filepath.Join(dir, "wharf.yaml")
		writeFile(t, path, fmt.Sprintf(`# operator %d's copy
state_dir: /var/lib/wharf
storage:
  backend: s3
  s3:
    bucket: %s
    prefix: homes/
    region: %s
    endpoint: %s
    path_style: true
    access_key_id: %s
    secret_access_key_file: %s
users_dir: s3://%s/wharf/users/
users:
  - name: admin
    home: /
`, i, o.bucket, srv.Region, srv.Endpoint, srv.AccessKey, secret, o.bucket), 0o640)
		o.paths = append(o.paths, path)
	}
	return o
}

// get reads an object of the users folder directly.
func (o *operators) get(t *testing.T, name string) (string, bool) {
	t.Helper()
	key := "wharf/users/" + name
	out, err := o.srv.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: &o.bucket, Key: &key})
	if err != nil {
		var re interface{ HTTPStatusCode() int }
		if errors.As(err, &re) && re.HTTPStatusCode() == 404 {
			return "", false
		}
		t.Fatal(err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(data), true
}

// TestBucketEdits: every `wharf user` edit on a users_dir in a bucket
// writes the user's object, and only when the result loads as start-up
// would load it.
func TestBucketEdits(t *testing.T) {
	o := newOperators(t, 1)
	e := &Editor{Path: o.paths[0]}

	res, err := e.AddUser(NewUser{Name: "acme", Home: "/acme", PublicKeys: []string{acme1Key}, Permissions: []string{"list", "download"}})
	if err != nil || res != (Result{File: o.url + "acme.yaml", Changed: true, Created: true}) {
		t.Fatalf("AddUser = %+v, %v", res, err)
	}
	if got, _ := o.get(t, "acme.yaml"); got != "name: acme\nhome: /acme\npublic_keys:\n  - "+acme1Key+"\npermissions: [list, download]\n" {
		t.Errorf("acme.yaml =\n%s", got)
	}
	if _, err := e.AddUser(NewUser{Name: "acme", Home: "/acme"}); !errors.Is(err, ErrUserExists) || !strings.Contains(err.Error(), o.url+"acme.yaml:1") {
		t.Errorf("AddUser of an existing user = %v", err)
	}
	if _, err := e.AddUser(NewUser{Name: "admin", Home: "/x"}); !errors.Is(err, ErrUserExists) {
		t.Errorf("AddUser of the main file's user = %v", err)
	}
	for _, step := range []struct {
		name string
		edit func() (Result, error)
		want string // the object afterwards
	}{
		{"key add", func() (Result, error) { return e.AddKey("acme", acme2Key) }, "public_keys:\n  - " + acme1Key + "\n  - " + acme2Key + "\n"},
		{"key remove", func() (Result, error) { return e.RemoveKey("acme", acme1FP) }, "public_keys:\n  - " + acme2Key + "\n"},
		{"disable", func() (Result, error) { return e.SetDisabled("acme", true) }, "disabled: true\n"},
		{"password", func() (Result, error) { return e.SetPasswordHash("acme", otherHash) }, `password_hash: "` + otherHash + `"`},
	} {
		res, err := step.edit()
		if err != nil || res.File != o.url+"acme.yaml" || !res.Changed {
			t.Fatalf("%s = %+v, %v", step.name, res, err)
		}
		if got, _ := o.get(t, "acme.yaml"); !strings.Contains(got, step.want) {
			t.Errorf("%s: acme.yaml =\n%s\nwant it to hold %q", step.name, got, step.want)
		}
	}
	if res, err := e.SetDisabled("acme", true); err != nil || res.Changed {
		t.Errorf("disabling a disabled user = %+v, %v", res, err)
	}

	// The main file's users are edited in the main file, checked with the
	// bucket's.
	if res, err := e.AddKey("admin", globexKey); err != nil || res.File != o.paths[0] {
		t.Errorf("AddKey to the main file's user = %+v, %v", res, err)
	}

	users, err := e.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[1].Name != "acme" || users[1].File != o.url+"acme.yaml" || users[1].Line != 1 || !users[1].Disabled || users[1].Keys != 1 {
		t.Errorf("List = %+v", users)
	}

	// An edit that would leave an invalid config writes nothing: a second
	// object defining acme, dropped by hand.
	key := "wharf/users/acme-copy.yaml"
	if _, err := o.srv.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: &o.bucket, Key: &key, Body: strings.NewReader("name: acme\nhome: /acme\n")}); err != nil {
		t.Fatal(err)
	}
	before, _ := o.get(t, "acme.yaml")
	if _, err := e.SetDisabled("acme", false); err == nil || !strings.Contains(err.Error(), o.url+`acme.yaml:1: name: duplicate user "acme"`) {
		t.Errorf("edit of a config with a duplicate = %v", err)
	}
	if after, _ := o.get(t, "acme.yaml"); after != before {
		t.Error("a refused edit changed the object")
	}
	if _, err := o.srv.Client().DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &o.bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}

	cfg, err := LoadConfig(o.paths[0])
	if err != nil || len(cfg.Users) != 2 {
		t.Fatalf("LoadConfig = %v", err)
	}
	if res, err := e.RemoveUser("acme"); err != nil || res != (Result{File: o.url + "acme.yaml", Changed: true, Removed: true}) {
		t.Fatalf("RemoveUser = %+v, %v", res, err)
	}
	if _, ok := o.get(t, "acme.yaml"); ok {
		t.Error("acme.yaml is still there")
	}
	if _, err := e.RemoveUser("acme"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("RemoveUser of a removed user = %v", err)
	}
}

// gate holds each write (PutObject, DeleteObject) of the operators until
// both have sent theirs, so that both edits start from the same version.
type gate struct {
	arrived chan string // the operator whose write arrived
	release [2]chan struct{}
}

func newGate() *gate {
	return &gate{arrived: make(chan string, 2), release: [2]chan struct{}{make(chan struct{}), make(chan struct{})}}
}

func (g *gate) option(i int) func(*s3.Options) {
	return func(o *s3.Options) {
		o.HTTPClient = gateClient{next: o.HTTPClient, g: g, i: i}
	}
}

type gateClient struct {
	next s3.HTTPClient
	g    *gate
	i    int
}

func (c gateClient) Do(r *http.Request) (*http.Response, error) {
	switch awsmiddleware.GetOperationName(r.Context()) {
	case "PutObject", "DeleteObject":
		c.g.arrived <- fmt.Sprint(c.i)
		<-c.g.release[c.i]
	}
	return c.next.Do(r)
}

// TestBucketConcurrentEdits: two operators on two machines edit the same
// user at once, both from the same version of its object: exactly one
// edit is written, the other fails with "changed concurrently, try again"
// and changes nothing.
func TestBucketConcurrentEdits(t *testing.T) {
	o := newOperators(t, 2)
	setup := &Editor{Path: o.paths[0]}
	for _, tc := range []struct {
		name     string
		together bool // release both writes at once; else a's, then b's
		a, b     func(e *Editor) (Result, error)
		// What each edit leaves in the object, as a substring; "": the
		// object removed.
		markA, markB string
	}{
		{"add and add", true,
			func(e *Editor) (Result, error) { return e.AddUser(NewUser{Name: "bob", Home: "/bob-a"}) },
			func(e *Editor) (Result, error) { return e.AddUser(NewUser{Name: "bob", Home: "/bob-b"}) },
			"home: /bob-a", "home: /bob-b"},
		{"key add and key add", true,
			func(e *Editor) (Result, error) { return e.AddKey("bob", acme1Key) },
			func(e *Editor) (Result, error) { return e.AddKey("bob", acme2Key) },
			acme1Key, acme2Key},
		{"disable and password", true,
			func(e *Editor) (Result, error) { return e.SetDisabled("bob", true) },
			func(e *Editor) (Result, error) { return e.SetPasswordHash("bob", otherHash) },
			"disabled: true", "password_hash"},
		{"key add and remove", false,
			func(e *Editor) (Result, error) { return e.AddKey("bob", globexKey) },
			func(e *Editor) (Result, error) { return e.RemoveUser("bob") },
			globexKey, ""},
		{"remove and key add", false,
			func(e *Editor) (Result, error) { return e.RemoveUser("bob") },
			func(e *Editor) (Result, error) { return e.AddKey("bob", newKey) },
			"", newKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name != "add and add" {
				if _, ok := o.get(t, "bob.yaml"); !ok {
					if _, err := setup.AddUser(NewUser{Name: "bob", Home: "/bob"}); err != nil {
						t.Fatal(err)
					}
				}
			}
			before, _ := o.get(t, "bob.yaml")
			g := newGate()
			edits := []func(*Editor) (Result, error){tc.a, tc.b}
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range 2 {
				e := &Editor{Path: o.paths[i], S3Client: []func(*s3.Options){g.option(i)}}
				wg.Go(func() { _, errs[i] = edits[i](e) })
			}
			for range 2 {
				select {
				case <-g.arrived:
				case <-time.After(30 * time.Second):
					close(g.release[0])
					close(g.release[1])
					wg.Wait()
					t.Fatalf("the two edits did not both reach their write: %v", errs)
				}
			}
			close(g.release[0])
			if !tc.together {
				for deadline := time.Now().Add(10 * time.Second); !changed(t, o, before) && time.Now().Before(deadline); {
					time.Sleep(5 * time.Millisecond) // until a's write is in
				}
			}
			close(g.release[1])
			wg.Wait()

			var won, lost []int
			for i, err := range errs {
				switch {
				case err == nil:
					won = append(won, i)
				case errors.Is(err, s3store.ErrChanged) && strings.Contains(err.Error(), o.url+"bob.yaml: changed concurrently, try again"):
					lost = append(lost, i)
				default:
					t.Errorf("edit %d: %v", i, err)
				}
			}
			if len(won) != 1 || len(lost) != 1 {
				t.Fatalf("winners %v, losers %v (errors %v); want exactly one of each", won, lost, errs)
			}
			marks := []string{tc.markA, tc.markB}
			win, lose := marks[won[0]], marks[lost[0]]
			got, ok := o.get(t, "bob.yaml")
			switch {
			case win == "" && ok:
				t.Errorf("bob.yaml, removed by the winner, is there:\n%s", got)
			case win != "" && !strings.Contains(got, win):
				t.Errorf("bob.yaml =\n%s\nwithout the winner's %q", got, win)
			case lose != "" && strings.Contains(got, lose):
				t.Errorf("bob.yaml =\n%s\nwith the loser's %q", got, lose)
			}
			t.Logf("operator %d won; operator %d was told: %v", won[0], lost[0], errs[lost[0]])
		})
	}
}

// changed reports whether bob.yaml differs from before.
func changed(t *testing.T, o *operators, before string) bool {
	got, _ := o.get(t, "bob.yaml")
	return got != before
}

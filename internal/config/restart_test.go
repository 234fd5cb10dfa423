package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// unclassified names each field of the config struct type t that is read
// from the file but belongs to neither Restart nor Live.
func unclassified(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, inline, ok := yamlKey(f)
		switch {
		case !ok:
			// Not a setting: File, the line numbers.
		case inline && (f.Type == reflect.TypeFor[Restart]() || f.Type == reflect.TypeFor[Live]()):
		case inline:
			out = append(out, fmt.Sprintf("%s (inline %s)", f.Name, f.Type))
		default:
			out = append(out, fmt.Sprintf("%s (yaml key %q)", f.Name, name))
		}
	}
	return out
}

// TestSettingsClassified: every key of the file is in Restart or Live, so
// whoever adds one has decided whether a reload applies it. A field added
// to Config itself fails here, named.
func TestSettingsClassified(t *testing.T) {
	for _, f := range unclassified(reflect.TypeFor[Config]()) {
		t.Errorf("Config.%s is a setting in neither Restart nor Live: move it into Restart (read once at start; a reload reports it as needing a restart) or Live (a reload applies it)", f)
	}
	restart, live := yamlFields(reflect.TypeFor[Restart]()), yamlFields(reflect.TypeFor[Live]())
	for k := range restart {
		if _, ok := live[k]; ok {
			t.Errorf("key %q is in both Restart and Live", k)
		}
	}
	if len(restart) == 0 || len(live) == 0 {
		t.Errorf("Restart has %d keys, Live %d", len(restart), len(live))
	}
}

// The check itself, on a Config that grew a key outside both groups.
func TestUnclassifiedNamesTheField(t *testing.T) {
	type grown struct {
		Restart  `yaml:",inline"`
		Live     `yaml:",inline"`
		StateURL string `yaml:"state_url"`
		File     string `yaml:"-"`
		lines    map[string]int
	}
	_ = grown{}.lines
	if got, want := unclassified(reflect.TypeFor[grown]()), []string{`StateURL (yaml key "state_url")`}; !slices.Equal(got, want) {
		t.Errorf("unclassified = %q, want %q", got, want)
	}
}

// The groups are invisible in the file: the parser and the YAML encoder
// (which `wharf user` uses to compare configs) see the same top-level keys,
// those of the schema.
func TestGroupsInline(t *testing.T) {
	data, err := yaml.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := yaml.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	encoded := slices.Sorted(maps.Keys(top))
	parsed := slices.Sorted(maps.Keys(yamlFields(reflect.TypeFor[Config]())))
	if !slices.Equal(encoded, parsed) {
		t.Errorf("encoder's keys %q, parser's %q", encoded, parsed)
	}
	for _, k := range []string{"state_dir", "shutdown_grace", "log", "sftp", "ftps", "storage", "limits", "defender",
		"uploads", "audit_log", "admin", "proxy_protocol", "hooks", "users", "users_dir"} {
		if !slices.Contains(parsed, k) {
			t.Errorf("top-level key %q is gone", k)
		}
	}

	c, err := Parse([]byte("shutdown_grace: 3s\nstate_dir: /s\nusers_dir: /u\nsftp: {listen: \"127.0.0.1:1\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ShutdownGrace != 3*time.Second || c.StateDir != "/s" || c.UsersDir != "/u" || c.SFTP.Listen != "127.0.0.1:1" {
		t.Errorf("parsed %+v", c)
	}
	if _, err := Parse([]byte("restart: {state_dir: /s}\n")); err == nil || !strings.Contains(err.Error(), "restart: unknown key") {
		t.Errorf("the group's name as a key: %v", err)
	}
}

// leaves lists the path of every leaf setting under v (a struct), as
// Changed names them: those a reload applies (reload:"live") left out.
func leaves(v reflect.Value, path string, out map[string]reflect.Value) {
	if v.Kind() != reflect.Struct {
		out[path] = v
		return
	}
	for i := range v.NumField() {
		name, inline, ok := yamlKey(v.Type().Field(i))
		switch {
		case !ok, appliedLive(v.Type().Field(i)):
		case inline:
			leaves(v.Field(i), path, out)
		default:
			leaves(v.Field(i), joinPath(path, name), out)
		}
	}
}

// bump changes the setting v holds.
func bump(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(v.Float() + 1)
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		} else {
			bump(t, path, v.Elem())
		}
	default:
		t.Fatalf("%s: a %s setting: teach bump (and check sameValue compares it)", path, v.Kind())
	}
}

// TestChangedEveryKey: a change to any one restart-only key, the ones
// added later included, is reported under that key and no other.
func TestChangedEveryKey(t *testing.T) {
	all := map[string]reflect.Value{}
	leaves(reflect.ValueOf(&Default().Restart).Elem(), "", all)
	for _, k := range []string{"state_dir", "log.level", "sftp.listen", "sftp.host_keys", "sftp.legacy.listen", "ftps.passive_ports",
		"storage.backend", "storage.root", "storage.s3.bucket", "storage.s3.upload_lease", "limits.max_connections", "defender.allow", "uploads.partial_ttl",
		"audit_log.path", "admin.listen", "proxy_protocol.trusted", "hooks"} {
		if _, ok := all[k]; !ok {
			t.Errorf("no restart-only key %q among %q", k, slices.Sorted(maps.Keys(all)))
		}
	}
	for _, k := range []string{"shutdown_grace", "users", "users_dir", "admin.users", "admin.api_keys"} {
		if _, ok := all[k]; ok {
			t.Errorf("live key %q among the restart-only ones", k)
		}
	}
	for _, path := range slices.Sorted(maps.Keys(all)) {
		cur, next := Default(), Default()
		m := map[string]reflect.Value{}
		leaves(reflect.ValueOf(&next.Restart).Elem(), "", m)
		bump(t, path, m[path])
		if got := cur.Restart.Changed(&next.Restart); !slices.Equal(got, []string{path}) {
			t.Errorf("%s changed: Changed = %q", path, got)
		}
	}
	cur, next := Default(), Default()
	next.Limits.MaxConnections++
	next.SFTP.Listen = "127.0.0.1:1"
	next.Log.Level = "debug"
	if got, want := cur.Restart.Changed(&next.Restart), []string{"log.level", "sftp.listen", "limits.max_connections"}; !slices.Equal(got, want) {
		t.Errorf("Changed = %q, want %q (declaration order)", got, want)
	}
}

// TestChangedSameSettings: what is compared is what the file says, not
// how it was written.
func TestChangedSameSettings(t *testing.T) {
	if got := Default().Restart.Changed(&Default().Restart); got != nil {
		t.Errorf("Default against itself: %q", got)
	}
	a := `sftp:
  listen: "127.0.0.1:1"
hooks:
  - name: h
    webhook: {url: "http://127.0.0.1:9/", secret_file: /s}
`
	b := `

hooks: [{name: h, webhook: {url: "http://127.0.0.1:9/", secret_file: /s}}]
sftp: {listen: "127.0.0.1:1", host_keys: []}
`
	ca, err := Parse([]byte(a))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := Parse([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	// Other lines, a hook in another allocation, host_keys [] against absent.
	if got := ca.Restart.Changed(&cb.Restart); got != nil {
		t.Errorf("the same settings written differently: %q", got)
	}
	cb.Hooks[0].Webhook.URL = "http://127.0.0.1:10/"
	if got := ca.Restart.Changed(&cb.Restart); !slices.Equal(got, []string{"hooks"}) {
		t.Errorf("a hook's URL changed: %q", got)
	}
}

// admin.users and admin.api_keys sit under admin, a restart-only
// mapping, yet a reload applies them: Reloaded takes them from the new
// config, Changed does not report them, and the rest of admin (its
// listener) still needs a restart.
func TestReloadedAppliesLiveFields(t *testing.T) {
	cur, next := Default(), Default()
	cur.Admin.Listen = "127.0.0.1:9100"
	cur.Admin.APIKeys = []APIKey{{Name: "ci", KeyHash: "h1", Scope: ScopeRead}}
	cur.Admin.Users = []AdminUser{{Name: "ops", PasswordHash: "p1"}}
	next.Admin.Listen = "127.0.0.1:9200"
	next.Admin.APIKeys = []APIKey{{Name: "ci", KeyHash: "h2", Scope: ScopeAdmin}}
	next.Admin.Users = nil
	got, restart := cur.Restart.Reloaded(&next.Restart)
	if !slices.Equal(restart, []string{"admin.listen"}) {
		t.Errorf("restart keys %q, want [admin.listen]", restart)
	}
	if got.Admin.Listen != "127.0.0.1:9100" {
		t.Errorf("admin.listen %q: a reload must keep the one in force", got.Admin.Listen)
	}
	if !reflect.DeepEqual(got.Admin.APIKeys, next.Admin.APIKeys) || got.Admin.Users != nil {
		t.Errorf("admin access after Reloaded: keys %+v, users %+v; want the new config's", got.Admin.APIKeys, got.Admin.Users)
	}
	if cur.Admin.APIKeys[0].KeyHash != "h1" {
		t.Error("Reloaded changed the config in force")
	}
	// Only live fields differ: nothing needs a restart.
	next.Admin.Listen = cur.Admin.Listen
	if _, restart := cur.Restart.Reloaded(&next.Restart); len(restart) != 0 {
		t.Errorf("restart keys %q for a change of admin access alone", restart)
	}
}

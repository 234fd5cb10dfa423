package config

import (
	"net/netip"
	"slices"
	"testing"
)

func TestProxyProtocol(t *testing.T) {
	tests := []parseCase{
		{"absent", "", nil},
		{"empty", "proxy_protocol: {trusted: []}\n", nil},
		{"networks and addresses", "proxy_protocol:\n  trusted: [10.0.0.0/8, 192.0.2.7, \"2001:db8::/32\"]\n", nil},
		{"not a network", "proxy_protocol:\n  trusted:\n    - 10.0.0.0/8\n    - balancer.example\n",
			[]want{{4, "proxy_protocol.trusted[1]", `invalid network "balancer.example"`}}},
		{"everybody v4", "proxy_protocol:\n  trusted: [0.0.0.0/0]\n", []want{{2, "proxy_protocol.trusted[0]", "trusts every address"}}},
		{"everybody v6", "proxy_protocol:\n  trusted: [\"::/0\"]\n", []want{{2, "proxy_protocol.trusted[0]", "trusts every address"}}},
		{"unknown key", "proxy_protocol:\n  trust: [10.0.0.0/8]\n", []want{{2, "proxy_protocol.trust", "unknown key"}}},
	}
	runParseCases(t, tests)
}

func TestProxyProtocolPrefixes(t *testing.T) {
	c, err := Parse([]byte("proxy_protocol:\n  trusted: [10.1.2.3/8, 192.0.2.7, \"::ffff:192.0.2.8\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.ProxyProtocol.Prefixes()
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("192.0.2.8/32")}
	if !slices.Equal(got, want) {
		t.Fatalf("Prefixes = %v, want %v", got, want)
	}
	if p := Default().ProxyProtocol.Prefixes(); p != nil {
		t.Fatalf("default Prefixes = %v, want none", p)
	}
}

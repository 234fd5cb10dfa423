package config

import (
	"fmt"
	"net/netip"
)

// ProxyProtocol is proxy_protocol: the load balancers whose PROXY protocol
// headers (v1 and v2) wharf believes. Behind a TCP balancer every
// connection comes from the balancer; the header carries the partner's
// address, which logs, events, allowed_ips, the per-address limits and the
// defender then see.
type ProxyProtocol struct {
	// Trusted are the balancers' networks (CIDRs or single addresses).
	// Empty: the PROXY protocol is off and nobody's header is believed.
	// Set: a connection from these networks must open with a header, and a
	// header from anywhere else closes the connection. Applies to both SFTP
	// listeners and both FTPS control listeners, and to FTPS passive data
	// connections.
	Trusted []string `yaml:"trusted"`
}

// Prefixes are the trusted networks, parsed. Call it on a validated config:
// entries that do not parse are left out.
func (p *ProxyProtocol) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range p.Trusted {
		if pr, err := ParsePrefix(s); err == nil {
			out = append(out, pr)
		}
	}
	return out
}

func (p *ProxyProtocol) validate(src Source) []error {
	var errs []error
	for i, s := range p.Trusted {
		field := fmt.Sprintf("proxy_protocol.trusted[%d]", i)
		pr, err := ParsePrefix(s)
		switch {
		case err != nil:
			errs = append(errs, src.Errorf(field, "%v", err))
		case pr.Bits() == 0:
			// Believing everybody's header lets any client claim any
			// address: another partner's allowed_ips, or a ban on someone
			// else instead of itself.
			errs = append(errs, src.Errorf(field, "%s trusts every address: anyone could claim any address; list only the load balancers' networks", quote(s)))
		}
	}
	return errs
}

// Package netguard keeps outbound requests to user-supplied URLs (CalDAV
// servers) away from the gateway's own network: loopback, private (RFC 1918,
// IPv6 ULA), link-local, carrier-grade NAT, unspecified, multicast and cloud
// metadata addresses are refused.
//
// The check runs on the IP address actually being connected to, in a
// net.Dialer Control hook, so a hostname that resolves to a public address
// when it is validated and to a private one when it is dialled (DNS
// rebinding) is still refused. CheckRedirect repeats the check on the target
// of every redirect before it is followed, so a public server cannot bounce
// a request onto a private one, and HTTP proxies from the environment are
// not used (a proxy would dial on the gateway's behalf, past the hook).
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrBlocked is wrapped by every refusal; test with errors.Is.
var ErrBlocked = errors.New("netguard: address not allowed")

// Resolver looks up the addresses of a host name. *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Guard decides which addresses outbound requests may reach.
type Guard struct {
	// AllowPrivate turns the guard off (tests, the sandbox): every address
	// is allowed.
	AllowPrivate bool
	// AllowHosts are "host:port" pairs allowed even when private (the
	// sandbox's in-process CalDAV server). Matched against the dialled
	// address and against redirect targets.
	AllowHosts []string
	// Resolver resolves names for the dialer and for redirect checks.
	// Default net.DefaultResolver. Tests inject one to map a name to a
	// private address without touching DNS.
	Resolver Resolver
	// ConnectTimeout bounds one dial. Default 5s.
	ConnectTimeout time.Duration
}

// blockedPrefixes are the ranges the guard refuses besides what the netip
// predicates (loopback, private, link-local, unspecified, multicast) cover.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),      // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("169.254.0.0/16"),     // link-local, incl. 169.254.169.254 metadata
	netip.MustParsePrefix("192.0.0.0/24"),       // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),      // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),        // reserved, incl. broadcast
	netip.MustParsePrefix("fc00::/7"),           // unique local (fd00:ec2::254 metadata)
	netip.MustParsePrefix("fe80::/10"),          // link-local
	netip.MustParsePrefix("64:ff9b:1::/48"),     // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),      // documentation
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS IMDS over IPv6 (inside fc00::/7; listed for clarity)
	netip.MustParsePrefix("100::/64"),           // discard-only
	netip.MustParsePrefix("::ffff:0:0/96"),      // IPv4-mapped: checked after unmapping, refused if it slips through
	netip.MustParsePrefix("2002::/16"),          // 6to4 can embed private IPv4 addresses
	netip.MustParsePrefix("192.88.99.0/24"),     // 6to4 relay anycast
	netip.MustParsePrefix("198.51.100.0/24"),    // documentation
	netip.MustParsePrefix("203.0.113.0/24"),     // documentation
	netip.MustParsePrefix("192.0.2.0/24"),       // documentation
	netip.MustParsePrefix("::/128"),             // unspecified
	netip.MustParsePrefix("::1/128"),            // loopback
	netip.MustParsePrefix("127.0.0.0/8"),        // loopback
	netip.MustParsePrefix("10.0.0.0/8"),         // RFC 1918
	netip.MustParsePrefix("172.16.0.0/12"),      // RFC 1918
	netip.MustParsePrefix("192.168.0.0/16"),     // RFC 1918
	netip.MustParsePrefix("255.255.255.255/32"), // broadcast
}

// Blocked reports whether ip is an address the guard refuses, with a short
// reason ("loopback", "private", ...).
func Blocked(ip netip.Addr) (bool, string) {
	if !ip.IsValid() {
		return true, "invalid"
	}
	ip = ip.Unmap()
	switch {
	case ip.IsUnspecified():
		return true, "unspecified"
	case ip.IsLoopback():
		return true, "loopback"
	case ip.IsPrivate():
		return true, "private"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return true, "link-local"
	case ip.IsMulticast():
		return true, "multicast"
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return true, "reserved"
		}
	}
	return false, ""
}

// CheckAddr checks one dialled "ip:port" address.
func (g *Guard) CheckAddr(address string) error {
	if g.AllowPrivate || g.allowedHost(address) {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q is not host:port", ErrBlocked, address)
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return fmt.Errorf("%w: %q is not an IP address", ErrBlocked, host)
	}
	if bad, why := Blocked(ip); bad {
		return fmt.Errorf("%w: %s is a %s address", ErrBlocked, ip.Unmap(), why)
	}
	return nil
}

func (g *Guard) allowedHost(hostport string) bool {
	for _, h := range g.AllowHosts {
		if strings.EqualFold(h, hostport) {
			return true
		}
	}
	return false
}

// Control is a net.Dialer Control hook: it refuses the connection before
// the connect system call when the address is not allowed.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("%w: network %s", ErrBlocked, network)
	}
	return g.CheckAddr(address)
}

func (g *Guard) resolver() Resolver {
	if g.Resolver != nil {
		return g.Resolver
	}
	return net.DefaultResolver
}

// DialContext dials like net.Dialer with the Control hook. Names are
// resolved with the guard's Resolver; each resolved address is checked at
// connect time.
func (g *Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	timeout := g.ConnectTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: g.Control}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if g.AllowPrivate || g.allowedHost(address) {
		d.Control = nil
		return d.DialContext(ctx, network, address)
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return d.DialContext(ctx, network, address)
	}
	ips, err := g.resolver().LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("netguard: resolve %s: %w", host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("netguard: resolve %s: no addresses", host)
	}
	var firstErr error
	for _, ip := range ips {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// CheckURL checks that a URL's host resolves only to allowed addresses. It
// is a fast, early refusal (for a clear error message); the Control hook
// remains the enforcement point.
func (g *Guard) CheckURL(ctx context.Context, host, port string) error {
	if g.AllowPrivate || g.allowedHost(net.JoinHostPort(host, port)) {
		return nil
	}
	host = strings.Trim(host, "[]")
	if ip, err := netip.ParseAddr(host); err == nil {
		return g.CheckAddr(net.JoinHostPort(ip.String(), port))
	}
	ips, err := g.resolver().LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("netguard: resolve %s: %w", host, err)
	}
	for _, ip := range ips {
		if err := g.CheckAddr(net.JoinHostPort(ip.Unmap().String(), port)); err != nil {
			return fmt.Errorf("%w (host %s)", err, host)
		}
	}
	return nil
}

// CheckRedirect is an http.Client CheckRedirect policy: at most 5
// redirects, only http(s), and only to hosts whose addresses are allowed.
func (g *Guard) CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("netguard: stopped after 5 redirects")
	}
	u := req.URL
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: redirect to scheme %q", ErrBlocked, u.Scheme)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return g.CheckURL(req.Context(), u.Hostname(), port)
}

// Transport returns an *http.Transport that dials through the guard and
// ignores proxy settings from the environment.
func (g *Guard) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = g.DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.MaxIdleConnsPerHost = 4
	return t
}

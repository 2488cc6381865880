package netguard_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/spotlight/gateway/internal/connect/netguard"
)

func TestBlocked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ip      string
		blocked bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"::1", true},
		{"10.0.0.1", true},
		{"172.16.5.4", true},
		{"192.168.1.1", true},
		{"169.254.169.254", true},
		{"169.254.1.1", true},
		{"fd00:ec2::254", true},
		{"fc00::1", true},
		{"fe80::1", true},
		{"100.64.0.1", true},
		{"0.0.0.0", true},
		{"::", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.1.1.1", true},
		{"224.0.0.1", true},
		{"255.255.255.255", true},
		{"17.253.144.10", false}, // an Apple address
		{"8.8.8.8", false},
		{"2606:4700::1111", false},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			t.Parallel()
			got, _ := netguard.Blocked(netip.MustParseAddr(tt.ip))
			if got != tt.blocked {
				t.Fatalf("Blocked(%s) = %v, want %v", tt.ip, got, tt.blocked)
			}
		})
	}
}

// mapResolver resolves names from a map; counts lookups.
type mapResolver struct {
	m     map[string][]string
	calls atomic.Int32
	// second, when set, is answered from the second lookup on (rebinding).
	second map[string][]string
}

func (r *mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	n := r.calls.Add(1)
	src := r.m
	if n > 1 && r.second != nil {
		src = r.second
	}
	var out []netip.Addr
	for _, s := range src[host] {
		out = append(out, netip.MustParseAddr(s))
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func client(g *netguard.Guard) *http.Client {
	return &http.Client{Transport: g.Transport(), CheckRedirect: g.CheckRedirect}
}

// TestRefusesPrivateTargets dials each target through the guard. The
// Control hook refuses before the connect system call, so no packet leaves
// for 10.0.0.1 or 169.254.169.254.
func TestRefusesPrivateTargets(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	res := &mapResolver{m: map[string][]string{"rebound.example": {"127.0.0.1"}, "metadata.example": {"169.254.169.254"}}}
	g := &netguard.Guard{Resolver: res}
	system := &netguard.Guard{} // the system resolver: localhost comes from /etc/hosts
	tests := []struct {
		name, url string
		g         *netguard.Guard
	}{
		{"loopback literal", srv.URL, g},
		{"private 10/8", "http://10.0.0.1:80/", g},
		{"metadata", "http://169.254.169.254/latest/meta-data/", g},
		{"metadata v6", "http://[fd00:ec2::254]/", g},
		{"localhost name", "http://localhost:" + u.Port() + "/", system},
		{"custom name to loopback", "http://rebound.example:" + u.Port() + "/", g},
		{"custom name to metadata", "http://metadata.example/", g},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequestWithContext(t.Context(), "GET", tt.url, nil)
			resp, err := client(tt.g).Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("GET %s succeeded through the guard", tt.url)
			}
			if !errors.Is(err, netguard.ErrBlocked) {
				t.Fatalf("GET %s: %v, want ErrBlocked", tt.url, err)
			}
		})
	}
	t.Cleanup(func() {
		if hits.Load() != 0 {
			t.Errorf("the loopback server was reached %d times", hits.Load())
		}
	})
}

func TestDNSRebindingCaughtAtDial(t *testing.T) {
	t.Parallel()
	// The first lookup (the early URL check) says public, the dial-time one loopback.
	res := &mapResolver{m: map[string][]string{"rebind.example": {"8.8.8.8"}}, second: map[string][]string{"rebind.example": {"127.0.0.1"}}}
	g := &netguard.Guard{Resolver: res}
	if err := g.CheckURL(t.Context(), "rebind.example", "80"); err != nil {
		t.Fatalf("early check: %v", err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://rebind.example/", nil)
	_, err := client(g).Do(req)
	if !errors.Is(err, netguard.ErrBlocked) {
		t.Fatalf("dial after rebinding: %v, want ErrBlocked", err)
	}
}

func TestRedirectToPrivateRefused(t *testing.T) {
	t.Parallel()
	var privateHits atomic.Int32
	private := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { privateHits.Add(1) }))
	t.Cleanup(private.Close)
	pu, _ := url.Parse(private.URL)
	res := &mapResolver{m: map[string][]string{"internal.example": {"10.1.2.3"}}}
	targets := map[string]string{
		"/to-loopback": private.URL + "/secret",
		"/to-metadata": "http://169.254.169.254/latest/meta-data/",
		"/to-name":     "http://internal.example/",
		"/to-file":     "file:///etc/passwd",
	}
	public := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, targets[r.URL.Path], http.StatusFound)
	}))
	t.Cleanup(public.Close)
	// The "public" server is on loopback too: allow exactly its host:port.
	g := &netguard.Guard{Resolver: res, AllowHosts: []string{public.Listener.Addr().String()}}
	for path := range targets {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequestWithContext(t.Context(), "GET", public.URL+path, nil)
			resp, err := client(g).Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("redirect %s followed", path)
			}
			if !errors.Is(err, netguard.ErrBlocked) {
				t.Fatalf("redirect %s: %v, want ErrBlocked", path, err)
			}
		})
	}
	t.Cleanup(func() {
		if privateHits.Load() != 0 || pu.Host == "" {
			t.Errorf("private server reached %d times", privateHits.Load())
		}
	})
}

func TestAllowPrivate(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	for _, g := range []*netguard.Guard{{AllowPrivate: true}, {AllowHosts: []string{srv.Listener.Addr().String()}}} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL, nil)
		resp, err := client(g).Do(req)
		if err != nil {
			t.Fatalf("guard %+v: %v", g, err)
		}
		resp.Body.Close()
	}
}

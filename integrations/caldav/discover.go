package caldav

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/spotlight/gateway/integrations/outbound"
)

// DefaultServerURL is iCloud's CalDAV entry point.
const DefaultServerURL = "https://caldav.icloud.com/"

// maxRedirects bounds the redirects followed during discovery.
const maxRedirects = 5

// Account is what discovery finds for one set of credentials.
type Account struct {
	// PrincipalURL is the absolute URL of the user's principal.
	PrincipalURL string
	// HomeSetURL is the absolute URL of the calendar home set (on iCloud a
	// per-user pNN-caldav.icloud.com host).
	HomeSetURL string
	// Calendars are the calendar collections in the home set.
	Calendars []CalendarInfo
}

// CalendarInfo describes one calendar collection.
type CalendarInfo struct {
	// URL is the absolute URL of the collection (pass it to New).
	URL string
	// Path is the collection's path on its host, ending in "/".
	Path string
	// Name is the display name (may be empty).
	Name string
	// Color is the Apple calendar-color ("#RRGGBBAA"), empty when unset.
	Color string
	// SupportsVEVENT reports whether the calendar accepts events (its
	// supported-calendar-component-set lists VEVENT or is absent).
	SupportsVEVENT bool
}

// EventCalendars returns the calendars that accept events.
func (a Account) EventCalendars() []CalendarInfo {
	var out []CalendarInfo
	for _, c := range a.Calendars {
		if c.SupportsVEVENT {
			out = append(out, c)
		}
	}
	return out
}

// Discover finds the principal, calendar home set and calendars of an
// account (RFC 6764 section 6, RFC 5397, RFC 4791 section 6.2.1): it asks
// {serverURL}/.well-known/caldav for DAV:current-user-principal (following
// redirects itself, so every hop is a PROPFIND and goes through hc's
// transport and its address checks), falls back to serverURL itself, then
// reads CALDAV:calendar-home-set and lists the home set with Depth 1.
// Wrong credentials give an error matching ErrUnauthorized, whose message
// explains app-specific passwords. hc nil means an outbound client.
func Discover(ctx context.Context, hc *http.Client, serverURL, username, password string) (Account, error) {
	if serverURL == "" {
		serverURL = DefaultServerURL
	}
	base, err := url.Parse(serverURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return Account{}, fmt.Errorf("caldav: discover: server URL %q is not an absolute http(s) URL", serverURL)
	}
	base.User, base.RawQuery, base.Fragment = nil, "", ""
	if hc == nil {
		hc = outbound.NewClient(outbound.Config{Provider: provider})
	}
	// Follow redirects ourselves: Go's client turns a redirected PROPFIND
	// into a GET on 301/302.
	nc := *hc
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	d := &discoverer{hc: &nc, user: username, pass: password, policy: hc.CheckRedirect}

	var acct Account
	candidates := []*url.URL{base.ResolveReference(&url.URL{Path: "/.well-known/caldav"}), base}
	if base.Path != "/" && base.Path != "" {
		candidates = append(candidates, base.ResolveReference(&url.URL{Path: "/"}))
	}
	var lastErr error
	for _, cand := range candidates {
		props, at, err := d.propfind(ctx, "discover_principal", cand, "0", `<d:current-user-principal/>`)
		if errors.Is(err, ErrUnauthorized) {
			return Account{}, err
		}
		if err != nil {
			lastErr = err
			continue
		}
		for _, p := range props {
			if p.props.CurrentUserPrincipal != nil && len(p.props.CurrentUserPrincipal.Hrefs) > 0 {
				u, err := resolveHref(at, p.props.CurrentUserPrincipal.Hrefs[0])
				if err == nil {
					acct.PrincipalURL = u.String()
					break
				}
			}
		}
		if acct.PrincipalURL != "" {
			break
		}
	}
	if acct.PrincipalURL == "" {
		if lastErr != nil {
			return Account{}, fmt.Errorf("caldav: discover: no current-user-principal found: %w", lastErr)
		}
		return Account{}, errors.New("caldav: discover: the server did not name a current-user-principal (is this a CalDAV server?)")
	}

	principal, _ := url.Parse(acct.PrincipalURL)
	props, at, err := d.propfind(ctx, "discover_home_set", principal, "0", `<c:calendar-home-set/>`)
	if err != nil {
		return Account{}, err
	}
	for _, p := range props {
		if p.props.CalendarHomeSet != nil && len(p.props.CalendarHomeSet.Hrefs) > 0 {
			if u, err := resolveHref(at, p.props.CalendarHomeSet.Hrefs[0]); err == nil {
				acct.HomeSetURL = u.String()
				break
			}
		}
	}
	if acct.HomeSetURL == "" {
		return Account{}, errors.New("caldav: discover: the principal has no calendar-home-set")
	}

	home, _ := url.Parse(acct.HomeSetURL)
	props, _, err = d.propfind(ctx, "discover_calendars", home, "1",
		`<d:resourcetype/><d:displayname/><a:calendar-color/><c:supported-calendar-component-set/>`)
	if err != nil {
		return Account{}, err
	}
	for _, p := range props {
		rt := p.props.ResourceType
		if rt == nil || rt.Calendar == nil {
			continue
		}
		u := *p.url
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
			u.RawPath = ""
		}
		info := CalendarInfo{URL: u.String(), Path: u.Path, Name: p.props.DisplayName, Color: p.props.Color}
		info.SupportsVEVENT = p.props.SupportedComponents == nil || len(p.props.SupportedComponents.Comps) == 0 ||
			slices.ContainsFunc(p.props.SupportedComponents.Comps, func(c compItem) bool {
				return strings.EqualFold(c.Name, "VEVENT")
			})
		acct.Calendars = append(acct.Calendars, info)
	}
	return acct, nil
}

type discoverer struct {
	hc         *http.Client
	user, pass string
	// policy is the caller's redirect check (e.g. an SSRF guard), applied
	// to every redirect followed here.
	policy func(req *http.Request, via []*http.Request) error
}

type foundProps struct {
	url   *url.URL
	props msProps
}

// propfind sends a PROPFIND, following redirects, and returns the 2xx
// properties per response href plus the URL finally answered.
func (d *discoverer) propfind(ctx context.Context, op string, target *url.URL, depth, props string) ([]foundProps, *url.URL, error) {
	body := `<?xml version="1.0" encoding="utf-8"?>` +
		`<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:a="http://apple.com/ns/ical/"><d:prop>` +
		props + `</d:prop></d:propfind>`
	cur := target
	var via []*http.Request
	for hop := 0; ; hop++ {
		r, err := doRequest(ctx, d.hc, op, "PROPFIND", cur.String(), d.user, d.pass, []byte(body),
			http.Header{"Content-Type": {`application/xml; charset="utf-8"`}, "Depth": {depth}}, maxMultistatusBody)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case r.status == http.StatusMultiStatus:
			ms, err := parseMultistatus(r.body)
			if err != nil {
				return nil, nil, fmt.Errorf("caldav: %s: parse multistatus: %w", op, err)
			}
			var out []foundProps
			for _, resp := range ms.Responses {
				if len(resp.Hrefs) == 0 {
					continue
				}
				u, err := resolveHref(cur, resp.Hrefs[0])
				if err != nil {
					continue
				}
				out = append(out, foundProps{url: u, props: resp.okProps()})
			}
			return out, cur, nil
		case r.status >= 300 && r.status < 400 && r.header.Get("Location") != "":
			if hop >= maxRedirects {
				return nil, nil, fmt.Errorf("caldav: %s: more than %d redirects", op, maxRedirects)
			}
			next, err := resolveHref(cur, r.header.Get("Location"))
			if err != nil {
				return nil, nil, fmt.Errorf("caldav: %s: bad redirect: %w", op, err)
			}
			if next.Scheme != "http" && next.Scheme != "https" {
				return nil, nil, fmt.Errorf("caldav: %s: redirect to a non-http URL", op)
			}
			if d.policy != nil {
				via = append(via, &http.Request{Method: "PROPFIND", URL: cur})
				nextReq, err := http.NewRequestWithContext(ctx, "PROPFIND", next.String(), nil)
				if err != nil {
					return nil, nil, fmt.Errorf("caldav: %s: %w", op, err)
				}
				if err := d.policy(nextReq, via); err != nil {
					return nil, nil, fmt.Errorf("caldav: %s: redirect to %s refused: %w", op, next.Host, err)
				}
			}
			cur = next
		default:
			return nil, nil, statusError(op, r)
		}
	}
}

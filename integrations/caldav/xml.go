package caldav

import (
	"bytes"
	"encoding/xml"
	"net/url"
	"strings"
)

// multistatus is a DAV:multistatus body (RFC 4918 section 14.16) with the
// properties this package asks for.
type multistatus struct {
	XMLName   xml.Name     `xml:"DAV: multistatus"`
	Responses []msResponse `xml:"DAV: response"`
	SyncToken string       `xml:"DAV: sync-token"`
}

type msResponse struct {
	Hrefs     []string   `xml:"DAV: href"`
	Status    string     `xml:"DAV: status"`
	Propstats []propstat `xml:"DAV: propstat"`
}

type propstat struct {
	Status string  `xml:"DAV: status"`
	Prop   msProps `xml:"DAV: prop"`
}

type hrefProp struct {
	Hrefs []string `xml:"DAV: href"`
}

type resourceType struct {
	Calendar   *struct{} `xml:"urn:ietf:params:xml:ns:caldav calendar"`
	Collection *struct{} `xml:"DAV: collection"`
}

type compSet struct {
	Comps []compItem `xml:"urn:ietf:params:xml:ns:caldav comp"`
}

type compItem struct {
	Name string `xml:"name,attr"`
}

type msProps struct {
	ETag                 string        `xml:"DAV: getetag"`
	CTag                 string        `xml:"http://calendarserver.org/ns/ getctag"`
	SyncToken            string        `xml:"DAV: sync-token"`
	CalendarData         string        `xml:"urn:ietf:params:xml:ns:caldav calendar-data"`
	ResourceType         *resourceType `xml:"DAV: resourcetype"`
	DisplayName          string        `xml:"DAV: displayname"`
	Color                string        `xml:"http://apple.com/ns/ical/ calendar-color"`
	CurrentUserPrincipal *hrefProp     `xml:"DAV: current-user-principal"`
	CalendarHomeSet      *hrefProp     `xml:"urn:ietf:params:xml:ns:caldav calendar-home-set"`
	SupportedComponents  *compSet      `xml:"urn:ietf:params:xml:ns:caldav supported-calendar-component-set"`
	SupportedReports     *struct {
		Reports []struct {
			Report struct {
				SyncCollection *struct{} `xml:"DAV: sync-collection"`
			} `xml:"DAV: report"`
		} `xml:"DAV: supported-report"`
	} `xml:"DAV: supported-report-set"`
}

// statusCode returns the code of an HTTP status line ("HTTP/1.1 404 Not Found"), 0 if absent.
func statusCode(line string) int {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	n := 0
	for _, ch := range f[1] {
		if ch < '0' || ch > '9' {
			return 0
		}
		n = n*10 + int(ch-'0')
	}
	return n
}

// okProps merges the properties of the 2xx propstats of a response.
func (r msResponse) okProps() msProps {
	var out msProps
	for _, ps := range r.Propstats {
		if c := statusCode(ps.Status); c != 0 && c/100 != 2 {
			continue
		}
		p := ps.Prop
		if p.ETag != "" {
			out.ETag = p.ETag
		}
		if p.CTag != "" {
			out.CTag = p.CTag
		}
		if p.SyncToken != "" {
			out.SyncToken = p.SyncToken
		}
		if p.CalendarData != "" {
			out.CalendarData = p.CalendarData
		}
		if p.ResourceType != nil {
			out.ResourceType = p.ResourceType
		}
		if p.DisplayName != "" {
			out.DisplayName = p.DisplayName
		}
		if p.Color != "" {
			out.Color = p.Color
		}
		if p.CurrentUserPrincipal != nil {
			out.CurrentUserPrincipal = p.CurrentUserPrincipal
		}
		if p.CalendarHomeSet != nil {
			out.CalendarHomeSet = p.CalendarHomeSet
		}
		if p.SupportedComponents != nil {
			out.SupportedComponents = p.SupportedComponents
		}
		if p.SupportedReports != nil {
			out.SupportedReports = p.SupportedReports
		}
	}
	return out
}

func parseMultistatus(b []byte) (*multistatus, error) {
	var ms multistatus
	if err := xml.NewDecoder(bytes.NewReader(b)).Decode(&ms); err != nil {
		return nil, err
	}
	return &ms, nil
}

// firstErrorElement returns the local name of the first child of a
// DAV:error body ("valid-sync-token", "no-uid-conflict"), or "".
func firstErrorElement(b []byte) string {
	dec := xml.NewDecoder(bytes.NewReader(b))
	inError := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok {
			if inError {
				return se.Name.Local
			}
			if se.Name.Local == "error" {
				inError = true
			}
		}
	}
}

// resolveHref resolves an href from a response against the request URL.
func resolveHref(base *url.URL, href string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(href))
	if err != nil {
		return nil, err
	}
	return base.ResolveReference(u), nil
}

// xmlEscape escapes s for an XML text node.
func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

package caldav_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-ical"
	"github.com/teambition/rrule-go"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest/radicale"
	"github.com/spotlight/gateway/integrations/calendar/calendartest"
)

// memServer starts an in-memory server with one user and returns the
// default calendar's URL, the server and its credentials.
func memServer(t *testing.T, opts caldavtest.Options) (ts *httptest.Server, srv *caldavtest.Server, calURL string) {
	t.Helper()
	if opts.Users == nil {
		opts.Users = map[string]string{"alice": "alice-secret"}
	}
	srv = caldavtest.New(opts)
	ts = httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts, srv, ts.URL + caldavtest.CalendarPath("alice", caldavtest.DefaultCalendar)
}

func newClient(t *testing.T, hc *http.Client, calURL, user, pass string) *caldav.Client {
	t.Helper()
	c, err := caldav.New(calURL, user, pass, caldav.WithHTTPClient(hc))
	if err != nil {
		t.Fatalf("caldav.New: %v", err)
	}
	return c
}

// rawCal talks to a calendar collection with plain HTTP, as another
// CalDAV client (the user's calendar app) would.
type rawCal struct {
	calURL, user, pass string
	hc                 *http.Client
	n                  atomic.Int64
}

func (x *rawCal) do(ctx context.Context, method, target string, body []byte, hdr map[string]string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.SetBasicAuth(x.user, x.pass)
	resp, err := x.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, resp.Header, b, err
}

func (x *rawCal) objectURL(id string) string { return x.calURL + id + ".ics" }

// get fetches and parses one object.
func (x *rawCal) get(ctx context.Context, id string) (*ical.Calendar, string, []byte, error) {
	code, h, body, err := x.do(ctx, http.MethodGet, x.objectURL(id), nil, nil)
	if err != nil {
		return nil, "", nil, err
	}
	if code != http.StatusOK {
		return nil, "", body, fmt.Errorf("GET %s: HTTP %d", id, code)
	}
	cal, err := ical.NewDecoder(bytes.NewReader(body)).Decode()
	return cal, h.Get("ETag"), body, err
}

func (x *rawCal) put(ctx context.Context, id string, cal *ical.Calendar, hdr map[string]string) (int, error) {
	var buf bytes.Buffer
	if err := ical.NewEncoder(&buf).Encode(cal); err != nil {
		return 0, err
	}
	if hdr == nil {
		hdr = map[string]string{}
	}
	hdr["Content-Type"] = "text/calendar; charset=utf-8"
	code, _, _, err := x.do(ctx, http.MethodPut, x.objectURL(id), buf.Bytes(), hdr)
	return code, err
}

// AddForeign implements calendartest.External.
func (x *rawCal) AddForeign(ctx context.Context, f calendartest.ForeignEvent) (string, error) {
	id := f.ID
	if id == "" {
		id = "foreign-" + strconv.FormatInt(x.n.Add(1), 10)
	}
	loc, err := time.LoadLocation(f.TimeZone)
	if err != nil {
		return "", err
	}
	cal := ical.NewCalendar()
	cal.Props.SetText(ical.PropProductID, "-//Test//Other Client//EN")
	cal.Props.SetText(ical.PropVersion, "2.0")
	if loc != time.UTC {
		cal.Children = append(cal.Children, caldav.VTimezoneForTest(loc, f.Start, f.End.AddDate(0, 0, 7*f.WeeklyCount)))
	}
	ev := ical.NewEvent()
	ev.Props.SetText(ical.PropUID, id)
	ev.Props.SetDateTime(ical.PropDateTimeStamp, time.Now().UTC())
	ev.Props.SetDateTime(ical.PropDateTimeStart, f.Start.In(loc))
	ev.Props.SetDateTime(ical.PropDateTimeEnd, f.End.In(loc))
	ev.Props.SetText(ical.PropSummary, f.Summary)
	if f.WeeklyCount > 1 {
		ev.Props.SetRecurrenceRule(&rrule.ROption{Freq: rrule.WEEKLY, Count: f.WeeklyCount})
	}
	cal.Children = append(cal.Children, ev.Component)
	code, err := x.put(ctx, id, cal, map[string]string{"If-None-Match": "*"})
	if err != nil {
		return "", err
	}
	if code != http.StatusCreated && code != http.StatusNoContent {
		return "", fmt.Errorf("PUT foreign %s: HTTP %d", id, code)
	}
	return id, nil
}

// Move implements calendartest.External: it rewrites DTSTART/DTEND in UTC,
// as some clients do, keeping every other property.
func (x *rawCal) Move(ctx context.Context, id string, start, end time.Time) error {
	cal, etag, _, err := x.get(ctx, id)
	if err != nil {
		return err
	}
	for _, c := range cal.Children {
		if c.Name == ical.CompEvent {
			c.Props.Del(ical.PropDateTimeStart)
			c.Props.Del(ical.PropDateTimeEnd)
			c.Props.SetDateTime(ical.PropDateTimeStart, start.UTC())
			c.Props.SetDateTime(ical.PropDateTimeEnd, end.UTC())
		}
	}
	code, err := x.put(ctx, id, cal, map[string]string{"If-Match": etag})
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return fmt.Errorf("PUT moved %s: HTTP %d", id, code)
	}
	return nil
}

// Cancel implements calendartest.Canceller: STATUS:CANCELLED on the event,
// kept in the collection, as some calendar apps write a cancellation.
func (x *rawCal) Cancel(ctx context.Context, id string) error {
	cal, etag, _, err := x.get(ctx, id)
	if err != nil {
		return err
	}
	for _, c := range cal.Children {
		if c.Name == ical.CompEvent {
			c.Props.SetText(ical.PropStatus, string(ical.EventCancelled))
		}
	}
	code, err := x.put(ctx, id, cal, map[string]string{"If-Match": etag})
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return fmt.Errorf("PUT cancelled %s: HTTP %d", id, code)
	}
	return nil
}

// Delete implements calendartest.External.
func (x *rawCal) Delete(ctx context.Context, id string) error {
	code, _, _, err := x.do(ctx, http.MethodDelete, x.objectURL(id), nil, nil)
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return fmt.Errorf("DELETE %s: HTTP %d", id, code)
	}
	return nil
}

// DeleteCalendar implements calendartest.CalendarDeleter: a DELETE of the
// collection, as the user's calendar app sends.
func (x *rawCal) DeleteCalendar(ctx context.Context) error {
	code, _, _, err := x.do(ctx, http.MethodDelete, x.calURL, nil, nil)
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return fmt.Errorf("DELETE %s: HTTP %d", x.calURL, code)
	}
	return nil
}

// countObjects lists the collection's members with PROPFIND Depth 1.
func (x *rawCal) countObjects(ctx context.Context) (int, error) {
	code, _, body, err := x.do(ctx, "PROPFIND", x.calURL,
		[]byte(`<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>`),
		map[string]string{"Depth": "1", "Content-Type": "application/xml"})
	if err != nil {
		return 0, err
	}
	if code != http.StatusMultiStatus {
		return 0, fmt.Errorf("PROPFIND: HTTP %d", code)
	}
	return strings.Count(string(body), ".ics</"), nil
}

// expiringCal adds CursorExpirer for the in-memory server.
type expiringCal struct {
	*rawCal
	srv *caldavtest.Server
}

func (x expiringCal) ExpireCursors(context.Context) error {
	x.srv.ExpireSyncTokens()
	return nil
}

func TestContractInMemory(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sync bool
	}{{"sync-collection", true}, {"etag-listing", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calendartest.Run(t, func(t *testing.T) calendartest.Backend {
				ts, srv, calURL := memServer(t, caldavtest.Options{DisableSyncCollection: !tc.sync})
				raw := &rawCal{calURL: calURL, user: "alice", pass: "alice-secret", hc: ts.Client()}
				var ext calendartest.External = raw
				if tc.sync {
					ext = expiringCal{raw, srv}
				}
				return calendartest.Backend{Calendar: newClient(t, ts.Client(), calURL, "alice", "alice-secret"), External: ext}
			})
		})
	}
}

func TestContractRadicale(t *testing.T) {
	t.Parallel()
	base, user, pass := radicale.Start(t)
	var n atomic.Int64
	for _, tc := range []struct {
		name string
		opts []caldav.Option
	}{
		{"sync-collection", nil},
		// Radicale serves CS:getctag, so this also covers the ctag short cut.
		{"etag-listing", []caldav.Option{caldav.WithETagListing()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calendartest.Run(t, func(t *testing.T) calendartest.Backend {
				calURL := radicale.MakeCalendar(t, base, user, pass, fmt.Sprintf("cal%d", n.Add(1)))
				c, err := caldav.New(calURL, user, pass, append(tc.opts, caldav.WithHTTPClient(http.DefaultClient))...)
				if err != nil {
					t.Fatal(err)
				}
				return calendartest.Backend{
					Calendar: c,
					External: &rawCal{calURL: calURL, user: user, pass: pass, hc: http.DefaultClient},
				}
			})
		})
	}
}

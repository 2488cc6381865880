package caldav

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-webdav"
	webdavcaldav "github.com/emersion/go-webdav/caldav"
	"github.com/teambition/rrule-go"
	"golang.org/x/sync/errgroup"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/outbound"
)

// maxOccurrences bounds the expansion of one recurring event in one query.
const maxOccurrences = 5000

// maxParallelBusy bounds the calendar-query REPORTs one FreeBusy has in
// flight when it covers several calendars.
const maxParallelBusy = 4

// FreeBusy implements calendar.Calendar with a calendar-query REPORT
// (RFC 4791 section 7.8) filtered to VEVENTs overlapping [from, to), on the
// client's calendar and on every WithBusyCalendars collection (in parallel,
// at most maxParallelBusy at a time). The server's filter only selects
// objects; recurring events are expanded here (RRULE, RDATE, EXDATE,
// overridden instances by RECURRENCE-ID), cancelled and transparent events
// and invitations the account declined (see New) are skipped, and the intervals are clipped to [from, to), merged and
// sorted. An extra collection the server answers with 404, 410 (deleted)
// or 403 (no longer shared with the account) is skipped with a warning log;
// any other failure, and every failure of the client's own calendar, fails
// the call.
func (c *Client) FreeBusy(ctx context.Context, from, to time.Time) ([]calendar.Busy, error) {
	const op = "free_busy"
	if !to.After(from) {
		return nil, fmt.Errorf("caldav: %s: empty range %s – %s", op, from, to)
	}
	if len(c.busy) == 0 {
		busy, err := c.queryBusy(ctx, c.calURL, from, to)
		if err != nil {
			return nil, err
		}
		return calendar.MergeBusy(busy), nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxParallelBusy)
	results := make([][]calendar.Busy, 1+len(c.busy))
	for i, u := range append([]*url.URL{c.calURL}, c.busy...) {
		g.Go(func() error {
			busy, err := c.queryBusy(gctx, u, from, to)
			if err != nil && i > 0 && skippable(err) {
				c.logger.WarnContext(ctx, "caldav: skipping a busy calendar the server no longer serves",
					slog.String("provider", provider), slog.String("path", u.Path), slog.String("error", err.Error()))
				return nil
			}
			results[i] = busy
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var all []calendar.Busy
	for _, r := range results {
		all = append(all, r...)
	}
	return calendar.MergeBusy(all), nil
}

// skippable reports whether an extra busy calendar's failure means it is
// gone or no longer shared (404, 410, 403), not that the server failed.
func skippable(err error) bool {
	if errors.Is(err, calendar.ErrCalendarNotFound) {
		return true
	}
	var oe *outbound.Error
	return errors.As(err, &oe) && oe.Status == http.StatusForbidden
}

// queryBusy returns the unmerged busy intervals of the collection at u.
func (c *Client) queryBusy(ctx context.Context, u *url.URL, from, to time.Time) ([]calendar.Busy, error) {
	const op = "free_busy"
	capture := &captureClient{hc: c.hc, user: c.username, pass: c.password}
	dav, err := webdavcaldav.NewClient(capture, u.String())
	if err != nil {
		return nil, fmt.Errorf("caldav: %s: %w", op, err)
	}
	ctx = outbound.WithRetrySafe(outbound.WithOperation(ctx, op))
	objs, err := dav.QueryCalendar(ctx, u.Path, &webdavcaldav.CalendarQuery{
		CompRequest: webdavcaldav.CalendarCompRequest{Name: ical.CompCalendar, AllProps: true, AllComps: true},
		CompFilter: webdavcaldav.CompFilter{
			Name:  ical.CompCalendar,
			Comps: []webdavcaldav.CompFilter{{Name: ical.CompEvent, Start: from.UTC(), End: to.UTC()}},
		},
	})
	if err != nil {
		if r := capture.failed(); r != nil {
			return nil, statusError(op, r)
		}
		var oe *outbound.Error
		if errors.As(err, &oe) {
			return nil, fmt.Errorf("caldav: %s: %w", op, err)
		}
		return nil, fmt.Errorf("caldav: %s: %w", op, &outbound.Error{Provider: provider, Operation: op, Class: outbound.Permanent, Err: err})
	}
	var busy []calendar.Busy
	for _, o := range objs {
		bs, err := expand(o.Data, from, to, c.defLoc, c.declined)
		if err != nil {
			// One malformed object from another client must not hide the rest.
			c.logger.WarnContext(ctx, "caldav: skipping unreadable calendar object",
				slog.String("provider", provider), slog.String("path", o.Path), slog.String("error", err.Error()))
			continue
		}
		busy = append(busy, bs...)
	}
	return busy, nil
}

// captureClient adds Basic auth and remembers the first error response,
// which go-webdav's client otherwise turns into an error without a status
// callers can inspect.
type captureClient struct {
	hc         webdav.HTTPClient
	user, pass string
	mu         sync.Mutex
	resp       *response
}

func (cc *captureClient) Do(req *http.Request) (*http.Response, error) {
	req.SetBasicAuth(cc.user, cc.pass)
	resp, err := cc.hc.Do(req)
	if err == nil && resp.StatusCode >= 300 {
		cc.mu.Lock()
		if cc.resp == nil {
			cc.resp = &response{status: resp.StatusCode, header: resp.Header, raw: resp}
		}
		cc.mu.Unlock()
	}
	return resp, err
}

func (cc *captureClient) failed() *response {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.resp
}

// Expand returns the busy intervals of the events in one calendar object
// that overlap [from, to), clipped to it and not merged. Recurring events
// are expanded in their own time zone (wall-clock times are kept across DST
// changes); EXDATE, RDATE and overridden instances (RECURRENCE-ID) are
// honoured; CANCELLED and TRANSPARENT events are not busy. A TZID that is
// not an IANA name is read from the object's VTIMEZONE of that name.
// Floating and all-day times are read in def. The in-memory server in caldavtest uses it
// for its time-range filter.
func Expand(cal *ical.Calendar, from, to time.Time, def *time.Location) ([]calendar.Busy, error) {
	return expand(cal, from, to, def, nil)
}

// declined reports whether the account declined the invitation ev (a
// VEVENT, or one overridden instance of a series): one of its ATTENDEEs is
// the account with PARTSTAT=DECLINED. The account's own events (it is the
// ORGANIZER) are never declined.
func (c *Client) declined(ev *ical.Component) bool {
	if len(c.self) == 0 {
		return false
	}
	if o := ev.Props.Get(ical.PropOrganizer); o != nil && slices.Contains(c.self, calAddress(o.Value)) {
		return false
	}
	for _, a := range ev.Props.Values(ical.PropAttendee) {
		if strings.EqualFold(a.Params.Get(ical.ParamParticipationStatus), "DECLINED") && slices.Contains(c.self, calAddress(a.Value)) {
			return true
		}
	}
	return false
}

// expand is Expand; a VEVENT (series or instance) for which skip reports
// true is not busy (nil: none is skipped).
func expand(cal *ical.Calendar, from, to time.Time, def *time.Location, skip func(*ical.Component) bool) ([]calendar.Busy, error) {
	if def == nil {
		def = time.UTC
	}
	var master *ical.Component
	var overrides []*ical.Component
	for _, comp := range cal.Children {
		if comp.Name != ical.CompEvent {
			continue
		}
		if comp.Props.Get(ical.PropRecurrenceID) != nil {
			overrides = append(overrides, comp)
		} else if master == nil {
			master = comp
		}
	}
	var out []calendar.Busy
	add := func(s, e time.Time) {
		if !e.After(s) {
			return // a zero-length event blocks no time
		}
		if s.Before(to) && e.After(from) {
			out = append(out, calendar.Busy{Start: maxTime(s, from).UTC(), End: minTime(e, to).UTC()})
		}
	}
	z := zonesOf(cal)
	overridden := map[int64]bool{}
	for _, o := range overrides {
		rid, _, err := parseDateTime(o.Props.Get(ical.PropRecurrenceID), def, z)
		if err != nil {
			return nil, fmt.Errorf("RECURRENCE-ID: %w", err)
		}
		overridden[rid.Unix()] = true
		d, err := decodeVEvent(o, def, z)
		if err != nil {
			return nil, err
		}
		if !d.cancelled && !d.transpar && (skip == nil || !skip(o)) {
			add(d.ev.Start, d.ev.End)
		}
	}
	if master == nil {
		return out, nil
	}
	d, err := decodeVEvent(master, def, z)
	if err != nil {
		return nil, err
	}
	if d.cancelled || d.transpar || (skip != nil && skip(master)) {
		return out, nil
	}
	start, end := d.ev.Start, d.ev.End
	// Expand in the zone of DTSTART so occurrences keep their wall time.
	loc := def
	sp := master.Props.Get(ical.PropDateTimeStart)
	switch {
	case strings.HasSuffix(sp.Value, "Z"):
		loc = time.UTC
	case sp.Params.Get(ical.PropTimezoneID) != "":
		if l, err := z.lookup(sp.Params.Get(ical.PropTimezoneID)); err == nil {
			loc = l
		}
	}
	start = start.In(loc)
	dur := end.Sub(start)
	days := 0
	if d.allDay {
		days = int(end.Sub(start).Round(24*time.Hour) / (24 * time.Hour))
	}
	endOf := func(s time.Time) time.Time {
		if d.allDay {
			return s.AddDate(0, 0, days)
		}
		return s.Add(dur)
	}

	roption, err := recurrenceRule(master, loc)
	if err != nil {
		return nil, err
	}
	rdates := master.Props.Values(ical.PropRecurrenceDates)
	if roption == nil && len(rdates) == 0 {
		if !overridden[start.Unix()] {
			add(start, end)
		}
		return out, nil
	}
	// Occurrences starting up to one duration before from can still overlap it.
	lookback := dur
	if d.allDay {
		lookback = time.Duration(days+1) * 24 * time.Hour
	}
	set := &rrule.Set{}
	set.DTStart(start)
	if roption != nil {
		roption.Dtstart = skipAhead(roption, start, from.Add(-lookback))
		r, err := rrule.NewRRule(*roption)
		if err != nil {
			return nil, fmt.Errorf("RRULE: %w", err)
		}
		set.RRule(r)
	} else {
		set.RDate(start)
	}
	for _, p := range rdates {
		ts, err := dateList(&p, loc, z)
		if err != nil {
			return nil, fmt.Errorf("RDATE: %w", err)
		}
		for _, t := range ts {
			set.RDate(t)
		}
	}
	for _, p := range master.Props.Values(ical.PropExceptionDates) {
		ts, err := dateList(&p, loc, z)
		if err != nil {
			return nil, fmt.Errorf("EXDATE: %w", err)
		}
		for _, t := range ts {
			set.ExDate(t)
		}
	}
	n := 0
	iter := set.Iterator()
	for {
		s, ok := iter()
		if !ok || !s.Before(to) {
			break
		}
		if n++; n > maxOccurrences {
			break
		}
		if s.Before(from.Add(-lookback)) || overridden[s.Unix()] {
			continue
		}
		add(s, endOf(s))
	}
	return out, nil
}

// skipAhead returns the DTSTART from which rule o, starting at start,
// yields the same occurrences from notBefore on, as close before
// notBefore as it can: a DAILY or WEEKLY rule without COUNT repeats itself
// every INTERVAL days or weeks, so its start moves forward by whole
// periods, keeping its wall-clock time. Other rules start at start. Without
// it, a daily series begun years ago used up maxOccurrences before reaching
// the query and had no busy time at all.
func skipAhead(o *rrule.ROption, start, notBefore time.Time) time.Time {
	if o.Count != 0 || (o.Freq != rrule.DAILY && o.Freq != rrule.WEEKLY) {
		return start
	}
	period := max(o.Interval, 1)
	if o.Freq == rrule.WEEKLY {
		period *= 7
	}
	// Days between the dates (Unix seconds: a Duration ends at 292 years).
	day := func(t time.Time) int64 {
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).Unix() / 86400
	}
	days := day(notBefore.In(start.Location())) - day(start)
	// One period to spare before notBefore.
	for k := int(days)/period - 1; k > 0; k-- {
		s := time.Date(start.Year(), start.Month(), start.Day()+k*period, start.Hour(), start.Minute(), start.Second(), 0, start.Location())
		// A wall time in that day's DST gap would move the series' time
		// of day: take the period before.
		if s.Hour() == start.Hour() && s.Minute() == start.Minute() && s.Second() == start.Second() {
			return s
		}
	}
	return start
}

// recurrenceRule reads the RRULE of a VEVENT (nil without one). An UNTIL
// without "Z" (a DATE, or the local time of a floating series) is a time
// of loc, the zone of the series' DTSTART, as RFC 5545 section 3.3.10
// reads it; go-ical's Props.RecurrenceRule reads it in UTC, which cut the
// last occurrence of such a series west of UTC.
func recurrenceRule(ev *ical.Component, loc *time.Location) (*rrule.ROption, error) {
	p := ev.Props.Get(ical.PropRecurrenceRule)
	if p == nil {
		return nil, nil
	}
	o, err := rrule.StrToROptionInLocation(p.Value, loc)
	if err != nil {
		return nil, fmt.Errorf("RRULE: %w", err)
	}
	return o, nil
}

// dateList parses a (possibly comma-separated) DATE/DATE-TIME list property.
func dateList(p *ical.Prop, loc *time.Location, z *zones) ([]time.Time, error) {
	var out []time.Time
	for _, v := range strings.Split(p.Value, ",") {
		q := *p
		q.Value = strings.TrimSpace(v)
		if q.Value == "" {
			continue
		}
		t, _, err := parseDateTime(&q, loc, z)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

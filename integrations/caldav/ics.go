package caldav

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-ical"

	"github.com/spotlight/gateway/integrations/calendar"
)

// Custom iCalendar properties written on every gateway event.
const (
	// PropBooking carries the booking id; its presence marks an event as
	// written by the gateway for that booking.
	PropBooking = "X-SPOTLIGHT-BOOKING"
	// PropTimeZone carries the IANA zone the event was written in, for the
	// cases where DTSTART cannot carry it as TZID (UTC, or an instant in a
	// repeated hour, which RFC 5545 section 3.3.5 reads as the first one).
	PropTimeZone = "X-SPOTLIGHT-TIMEZONE"
)

const (
	prodID      = "-//Spotlight//Integration Gateway//EN"
	localLayout = "20060102T150405"
	utcLayout   = "20060102T150405Z"
	dateLayout  = "20060102"
)

// encodeEvent renders ev as a calendar object resource: one VEVENT with
// DTSTART/DTEND in TZID plus the matching VTIMEZONE, ORGANIZER, ATTENDEEs,
// URL and DESCRIPTION with the join URL, the booking marker and no METHOD.
func encodeEvent(ev calendar.Event, uid string, sequence int, now time.Time) (*ical.Calendar, error) {
	if ev.BookingID == "" {
		return nil, errors.New("empty booking id")
	}
	if ev.Start.IsZero() || !ev.End.After(ev.Start) {
		return nil, fmt.Errorf("invalid time range %s – %s", ev.Start, ev.End)
	}
	zone := ev.TimeZone
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", zone, err)
	}

	cal := ical.NewCalendar()
	cal.Props.SetText(ical.PropProductID, prodID)
	cal.Props.SetText(ical.PropVersion, "2.0")
	cal.Props.SetText(ical.PropCalendarScale, "GREGORIAN")

	vev := ical.NewEvent()
	vev.Props.SetText(ical.PropUID, uid)
	vev.Props.SetDateTime(ical.PropDateTimeStamp, now.UTC())
	vev.Props.SetDateTime(ical.PropLastModified, now.UTC())
	usesTZID := false
	for _, p := range []struct {
		name string
		t    time.Time
	}{{ical.PropDateTimeStart, ev.Start}, {ical.PropDateTimeEnd, ev.End}} {
		prop, tz := dateTimeProp(p.name, p.t, loc)
		usesTZID = usesTZID || tz
		vev.Props.Set(prop)
	}
	vev.Props.SetText(ical.PropSummary, ev.Summary)
	desc := ev.Description
	if ev.URL != "" && !strings.Contains(desc, ev.URL) {
		if desc != "" {
			desc += "\n\n"
		}
		desc += "Join: " + ev.URL
	}
	if desc != "" {
		vev.Props.SetText(ical.PropDescription, desc)
	}
	if ev.Location != "" {
		vev.Props.SetText(ical.PropLocation, ev.Location)
	}
	if ev.URL != "" {
		p := ical.NewProp(ical.PropURL)
		p.SetValueType(ical.ValueURI)
		p.Value = ev.URL
		vev.Props.Set(p)
	}
	setRaw(vev.Props, ical.PropSequence, strconv.Itoa(sequence))
	vev.Props.SetText(ical.PropStatus, string(ical.EventConfirmed))
	vev.Props.SetText(ical.PropTransparency, "OPAQUE")
	if ev.Organizer.Email != "" {
		vev.Props.Set(personProp(ical.PropOrganizer, ev.Organizer, false))
	}
	for _, a := range ev.Attendees {
		if a.Email != "" {
			vev.Props.Add(personProp(ical.PropAttendee, a, true))
		}
	}
	setText(vev.Props, PropBooking, ev.BookingID)
	setText(vev.Props, PropTimeZone, zone)

	if usesTZID {
		cal.Children = append(cal.Children, vtimezone(loc, ev.Start, ev.End))
	}
	cal.Children = append(cal.Children, vev.Component)
	return cal, nil
}

// gatewayProps are the VEVENT properties an update writes: the session's
// title and time, where and how to join, who takes part, and the gateway's
// own bookkeeping (the calendar contract: an update sets the summary too).
// Every other property, and the event's alarms, belong to the calendar's
// owner once the event exists (categories, a colour, reminders, notes of
// their app) and an update keeps them.
var gatewayProps = map[string]bool{
	ical.PropUID: true, ical.PropDateTimeStamp: true, ical.PropLastModified: true, ical.PropSummary: true,
	ical.PropDateTimeStart: true, ical.PropDateTimeEnd: true, ical.PropDuration: true,
	ical.PropDescription: true, ical.PropLocation: true, ical.PropURL: true,
	ical.PropSequence: true, ical.PropStatus: true, ical.PropTransparency: true,
	ical.PropOrganizer: true, ical.PropAttendee: true,
	PropBooking: true, PropTimeZone: true,
}

// keepOwnerEdits copies into cal (a freshly encoded event) what the owner
// of the calendar holds in cur, the stored object, beyond gatewayProps: its
// other properties and the master VEVENT's child components (VALARM).
func keepOwnerEdits(cal, cur *ical.Calendar) {
	var fresh, old *ical.Component
	for _, ch := range cal.Children {
		if ch.Name == ical.CompEvent {
			fresh = ch
		}
	}
	for _, ch := range cur.Children {
		if ch.Name == ical.CompEvent && ch.Props.Get(ical.PropRecurrenceID) == nil {
			old = ch
			break
		}
	}
	if fresh == nil || old == nil {
		return
	}
	for name, props := range old.Props {
		if !gatewayProps[name] {
			fresh.Props[name] = props
		}
	}
	fresh.Children = append(fresh.Children, old.Children...)
}

// setRaw sets a property value verbatim, without the VALUE parameter
// go-ical's SetText adds to non-TEXT properties (which vobject, Radicale's
// parser, rejects on TZOFFSETFROM).
func setRaw(props ical.Props, name, value string) {
	p := ical.NewProp(name)
	p.Value = value
	props.Set(p)
}

// setText sets an escaped TEXT value without an explicit VALUE=TEXT.
func setText(props ical.Props, name, value string) {
	p := ical.NewProp(name)
	p.SetText(value)
	p.Params.Del(ical.ParamValue)
	props.Set(p)
}

func personProp(name string, a calendar.Attendee, attendee bool) *ical.Prop {
	p := ical.NewProp(name)
	p.SetValueType(ical.ValueCalendarAddress)
	p.Value = "mailto:" + a.Email
	if a.Name != "" {
		p.Params.Set(ical.ParamCommonName, a.Name)
	}
	if attendee {
		p.Params.Set(ical.ParamRole, "REQ-PARTICIPANT")
		p.Params.Set(ical.ParamParticipationStatus, "NEEDS-ACTION")
		p.Params.Set(ical.ParamRSVP, "TRUE")
	}
	return p
}

// dateTimeProp writes t as a local time with TZID when that wall time reads
// back as the same instant under RFC 5545 rules, and in UTC otherwise (UTC
// zone, sub-second instants, or the second pass of a repeated hour).
func dateTimeProp(name string, t time.Time, loc *time.Location) (*ical.Prop, bool) {
	p := ical.NewProp(name)
	p.SetValueType(ical.ValueDateTime)
	t = t.Truncate(time.Second)
	if loc == time.UTC || loc.String() == "UTC" || loc.String() == "Etc/UTC" {
		p.Value = t.UTC().Format(utcLayout)
		return p, false
	}
	wall := t.In(loc).Format(localLayout)
	if back, err := parseLocal(wall, loc); err == nil && back.Equal(t) {
		p.Params.Set(ical.PropTimezoneID, loc.String())
		p.Value = wall
		return p, true
	}
	p.Value = t.UTC().Format(utcLayout)
	return p, false
}

// parseLocal reads a local DATE-TIME in loc per RFC 5545 section 3.3.5: a
// wall time that occurs twice means the first occurrence; a wall time
// skipped by a forward shift is read with the offset before the gap. (Go's
// time.Date picks either occurrence depending on the zone's sign.)
func parseLocal(value string, loc *time.Location) (time.Time, error) {
	naive, err := time.ParseInLocation(localLayout, value, time.UTC)
	if err != nil {
		return time.Time{}, err
	}
	return resolveWall(naive, loc), nil
}

// resolveWall maps the wall clock of naive (read as UTC) to an instant in loc.
func resolveWall(naive time.Time, loc *time.Location) time.Time {
	offsets := map[int]bool{}
	for _, d := range []time.Duration{-36 * time.Hour, -12 * time.Hour, 0, 12 * time.Hour, 36 * time.Hour} {
		_, off := naive.Add(d).In(loc).Zone()
		offsets[off] = true
	}
	var best time.Time
	minOff := 0
	first := true
	for off := range offsets {
		if first || off < minOff {
			minOff, first = off, false
		}
		u := naive.Add(-time.Duration(off) * time.Second)
		l := u.In(loc)
		if l.Year() == naive.Year() && l.YearDay() == naive.YearDay() && l.Hour() == naive.Hour() &&
			l.Minute() == naive.Minute() && l.Second() == naive.Second() {
			if best.IsZero() || u.Before(best) {
				best = u
			}
		}
	}
	if !best.IsZero() {
		return best.In(loc)
	}
	// In a gap: the offset before a forward shift is the smaller one.
	return naive.Add(-time.Duration(minOff) * time.Second).In(loc)
}

// parseDateTime reads a DATE or DATE-TIME property. A TZID is resolved by
// z: an IANA name, or (Outlook's "W. Europe Standard Time") the object's
// VTIMEZONE of that name; one that neither knows falls back to def, as do
// floating times and dates. It reports whether the value was a DATE
// (all-day).
func parseDateTime(p *ical.Prop, def *time.Location, z *zones) (t time.Time, allDay bool, err error) {
	v := strings.TrimSpace(p.Value)
	if p.ValueType() == ical.ValueDate || len(v) == len(dateLayout) {
		t, err := time.ParseInLocation(dateLayout, v, def)
		return t, true, err
	}
	if strings.HasSuffix(v, "Z") {
		t, err := time.ParseInLocation(utcLayout, v, time.UTC)
		return t, false, err
	}
	loc := def
	if tzid := p.Params.Get(ical.PropTimezoneID); tzid != "" {
		if l, err := z.lookup(tzid); err == nil {
			loc = l
		}
	}
	t, err = parseLocal(v, loc)
	return t, false, err
}

// loadZone loads an IANA zone, also accepting the "/vendor/prefix/Area/City"
// form some clients write.
func loadZone(tzid string) (*time.Location, error) {
	tzid = strings.Trim(tzid, `"`)
	l, err := time.LoadLocation(tzid)
	if err == nil {
		return l, nil
	}
	parts := strings.Split(strings.Trim(tzid, "/"), "/")
	for i := 1; i < len(parts); i++ {
		if l, err2 := time.LoadLocation(strings.Join(parts[i:], "/")); err2 == nil {
			return l, nil
		}
	}
	return nil, err
}

// vtimezone builds a VTIMEZONE for loc from Go's tz database with one
// explicit STANDARD/DAYLIGHT observance per transition between the year
// before start and the year after end (RFC 5545 section 3.6.5 allows
// observances without RRULE).
func vtimezone(loc *time.Location, start, end time.Time) *ical.Component {
	tz := ical.NewComponent(ical.CompTimezone)
	tz.Props.SetText(ical.PropTimezoneID, loc.String())

	from := time.Date(start.In(loc).Year()-1, 1, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(end.In(loc).Year()+2, 1, 1, 0, 0, 0, 0, time.UTC)

	name, off := from.In(loc).Zone()
	isDST := from.In(loc).IsDST()
	// The observance in force at the start of the window.
	tz.Children = append(tz.Children, observance(isDST, name, off, off, from.Add(time.Duration(off)*time.Second)))

	for t := from; t.Before(to); {
		next, ok := nextTransition(t, to, loc)
		if !ok {
			break
		}
		_, prevOff := next.Add(-time.Second).In(loc).Zone()
		name, newOff := next.In(loc).Zone()
		dst := next.In(loc).IsDST()
		tz.Children = append(tz.Children, observance(dst, name, prevOff, newOff, next.Add(time.Duration(prevOff)*time.Second)))
		t = next
	}
	return tz
}

// observance builds one STANDARD or DAYLIGHT component; localStart is the
// onset as wall time (in the offset before the transition), formatted in UTC.
func observance(dst bool, name string, fromOff, toOff int, localStart time.Time) *ical.Component {
	kind := ical.CompTimezoneStandard
	if dst {
		kind = ical.CompTimezoneDaylight
	}
	c := ical.NewComponent(kind)
	p := ical.NewProp(ical.PropDateTimeStart)
	p.SetValueType(ical.ValueDateTime)
	p.Value = localStart.UTC().Format(localLayout)
	c.Props.Set(p)
	setRaw(c.Props, ical.PropTimezoneOffsetFrom, formatOffset(fromOff))
	setRaw(c.Props, ical.PropTimezoneOffsetTo, formatOffset(toOff))
	if name != "" && !strings.ContainsAny(name, "+-0123456789") {
		c.Props.SetText(ical.PropTimezoneName, name)
	}
	return c
}

func formatOffset(sec int) string {
	sign := '+'
	if sec < 0 {
		sign, sec = '-', -sec
	}
	s := fmt.Sprintf("%c%02d%02d", sign, sec/3600, sec/60%60)
	if sec%60 != 0 {
		s += fmt.Sprintf("%02d", sec%60)
	}
	return s
}

// nextTransition finds the first instant in (t, limit) where loc's offset or
// DST flag changes, scanning by 7 days and bisecting to the second.
func nextTransition(t, limit time.Time, loc *time.Location) (time.Time, bool) {
	_, off0 := t.In(loc).Zone()
	dst0 := t.In(loc).IsDST()
	changed := func(u time.Time) bool {
		_, off := u.In(loc).Zone()
		return off != off0 || u.In(loc).IsDST() != dst0
	}
	const step = 7 * 24 * time.Hour
	lo := t
	for lo.Before(limit) {
		hi := lo.Add(step)
		if changed(hi) {
			for hi.Sub(lo) > time.Second {
				mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Second)
				if mid.Equal(lo) {
					break
				}
				if changed(mid) {
					hi = mid
				} else {
					lo = mid
				}
			}
			return hi, hi.Before(limit)
		}
		lo = hi
	}
	return time.Time{}, false
}

// decodedEvent is one VEVENT read from a calendar object.
type decodedEvent struct {
	ev        calendar.Event
	allDay    bool
	transpar  bool // TRANSP:TRANSPARENT
	cancelled bool
}

// decodeEvent reads the master VEVENT of a calendar object into an Event.
func decodeEvent(cal *ical.Calendar, def *time.Location) (decodedEvent, error) {
	var master *ical.Component
	for _, c := range cal.Children {
		if c.Name == ical.CompEvent && c.Props.Get(ical.PropRecurrenceID) == nil {
			master = c
			break
		}
	}
	if master == nil {
		for _, c := range cal.Children {
			if c.Name == ical.CompEvent {
				master = c
				break
			}
		}
	}
	if master == nil {
		return decodedEvent{}, errors.New("no VEVENT in calendar object")
	}
	return decodeVEvent(master, def, zonesOf(cal))
}

// decodeVEvent reads one VEVENT; z resolves the TZIDs of its object.
func decodeVEvent(c *ical.Component, def *time.Location, z *zones) (decodedEvent, error) {
	var d decodedEvent
	text := func(name string) string {
		if p := c.Props.Get(name); p != nil {
			s, err := p.Text()
			if err == nil {
				return s
			}
			return p.Value
		}
		return ""
	}
	d.ev.ID = text(ical.PropUID)
	d.ev.BookingID = text(PropBooking)
	d.ev.Summary = text(ical.PropSummary)
	d.ev.Description = text(ical.PropDescription)
	d.ev.Location = text(ical.PropLocation)
	if p := c.Props.Get(ical.PropURL); p != nil {
		d.ev.URL = p.Value
	}
	if s := text(ical.PropSequence); s != "" {
		d.ev.Sequence, _ = strconv.Atoi(strings.TrimSpace(s))
	}
	d.transpar = strings.EqualFold(text(ical.PropTransparency), "TRANSPARENT")
	d.cancelled = strings.EqualFold(text(ical.PropStatus), string(ical.EventCancelled))

	sp := c.Props.Get(ical.PropDateTimeStart)
	if sp == nil {
		return d, errors.New("VEVENT without DTSTART")
	}
	start, allDay, err := parseDateTime(sp, def, z)
	if err != nil {
		return d, fmt.Errorf("DTSTART: %w", err)
	}
	d.allDay = allDay
	d.ev.Start = start
	switch {
	case c.Props.Get(ical.PropDateTimeEnd) != nil:
		end, _, err := parseDateTime(c.Props.Get(ical.PropDateTimeEnd), def, z)
		if err != nil {
			return d, fmt.Errorf("DTEND: %w", err)
		}
		d.ev.End = end
	case c.Props.Get(ical.PropDuration) != nil:
		dur, err := c.Props.Get(ical.PropDuration).Duration()
		if err != nil {
			return d, fmt.Errorf("DURATION: %w", err)
		}
		d.ev.End = addDuration(start, dur)
	case allDay:
		d.ev.End = start.AddDate(0, 0, 1)
	default:
		d.ev.End = start
	}
	switch tzid := sp.Params.Get(ical.PropTimezoneID); {
	case tzid != "":
		if l, err := z.lookup(tzid); err == nil {
			d.ev.TimeZone = l.String()
		} else {
			d.ev.TimeZone = tzid
		}
	case text(PropTimeZone) != "":
		d.ev.TimeZone = text(PropTimeZone)
	default:
		d.ev.TimeZone = "UTC"
	}
	d.ev.Start, d.ev.End = d.ev.Start.UTC(), d.ev.End.UTC()

	if p := c.Props.Get(ical.PropOrganizer); p != nil {
		d.ev.Organizer = person(p)
	}
	for _, p := range c.Props.Values(ical.PropAttendee) {
		d.ev.Attendees = append(d.ev.Attendees, person(&p))
	}
	return d, nil
}

// addDuration adds an iCalendar duration: whole days keep the wall-clock
// time (RFC 5545 section 3.3.6), the rest is exact.
func addDuration(t time.Time, d time.Duration) time.Time {
	const day = 24 * time.Hour
	if d%day == 0 {
		return t.AddDate(0, 0, int(d/day))
	}
	return t.Add(d)
}

func person(p *ical.Prop) calendar.Attendee {
	email := p.Value
	if i := strings.IndexByte(email, ':'); i >= 0 && strings.EqualFold(email[:i], "mailto") {
		email = email[i+1:]
	}
	return calendar.Attendee{Email: email, Name: p.Params.Get(ical.ParamCommonName)}
}

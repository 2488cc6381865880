package caldav

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/teambition/rrule-go"
)

// zones resolves the TZIDs of one calendar object: an IANA name (also in
// the "/vendor/prefix/Area/City" form) from Go's tz database, any other
// name (Outlook's "Pacific Standard Time", "Customized Time Zone") from the
// object's own VTIMEZONE of that TZID, which RFC 5545 section 3.2.19
// requires it to carry. A nil *zones knows the IANA names only.
type zones struct {
	cal   *ical.Calendar
	built map[string]*time.Location
}

// zonesOf returns the resolver of cal's TZIDs.
func zonesOf(cal *ical.Calendar) *zones { return &zones{cal: cal} }

// lookup returns the zone tzid names, or an error when neither Go's tz
// database nor the object's VTIMEZONEs know it.
func (z *zones) lookup(tzid string) (*time.Location, error) {
	l, err := loadZone(tzid)
	if err == nil || z == nil || z.cal == nil {
		return l, err
	}
	name := strings.Trim(tzid, `"`)
	if l, ok := z.built[name]; ok {
		if l == nil {
			return nil, err
		}
		return l, nil
	}
	if z.built == nil {
		z.built = map[string]*time.Location{}
	}
	for _, c := range z.cal.Children {
		if c.Name != ical.CompTimezone {
			continue
		}
		if p := c.Props.Get(ical.PropTimezoneID); p == nil || strings.Trim(p.Value, `"`) != name {
			continue
		}
		if l, berr := vtimezoneLocation(name, c); berr == nil {
			z.built[name] = l
			return l, nil
		}
		break
	}
	z.built[name] = nil
	return nil, err
}

// VTIMEZONE observances are turned into transitions from
// vtzFirstYear through vtzLastYear; the last one holds after that.
const (
	vtzFirstYear = 1970
	vtzLastYear  = 2100
)

// onset is one transition of a VTIMEZONE: from at (UTC seconds) on, the
// offset is off seconds east of UTC.
type onset struct {
	at        int64
	from, off int
	dst       bool
	name      string
}

// vtimezoneLocation builds a Location named name from a VTIMEZONE: each
// STANDARD and DAYLIGHT observance's onsets (DTSTART, RRULE, RDATE, local
// times in TZOFFSETFROM) become the transitions of tz data that Go's time
// package reads (time.LoadLocationFromTZData), so that wall times, DST
// gaps and recurring events are handled as in an IANA zone.
func vtimezoneLocation(name string, tz *ical.Component) (*time.Location, error) {
	var all []onset
	for _, o := range tz.Children {
		if o.Name != ical.CompTimezoneStandard && o.Name != ical.CompTimezoneDaylight {
			continue
		}
		os, err := observanceOnsets(o)
		if err != nil {
			return nil, fmt.Errorf("VTIMEZONE %s: %w", name, err)
		}
		all = append(all, os...)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("VTIMEZONE %s: no observance", name)
	}
	slices.SortStableFunc(all, func(a, b onset) int { return cmp.Compare(a.at, b.at) })
	return time.LoadLocationFromTZData(name, tzif(all))
}

// observanceOnsets lists the onsets of one STANDARD or DAYLIGHT component
// up to vtzLastYear.
func observanceOnsets(o *ical.Component) ([]onset, error) {
	from, err := utcOffset(o.Props.Get(ical.PropTimezoneOffsetFrom))
	if err != nil {
		return nil, fmt.Errorf("TZOFFSETFROM: %w", err)
	}
	to, err := utcOffset(o.Props.Get(ical.PropTimezoneOffsetTo))
	if err != nil {
		return nil, fmt.Errorf("TZOFFSETTO: %w", err)
	}
	sp := o.Props.Get(ical.PropDateTimeStart)
	if sp == nil {
		return nil, errors.New("observance without DTSTART")
	}
	// Onsets are local times before the change: read as UTC (naive wall
	// clocks), each is at - from in UTC.
	start, err := time.ParseInLocation(localLayout, strings.TrimSuffix(strings.TrimSpace(sp.Value), "Z"), time.UTC)
	if err != nil {
		return nil, fmt.Errorf("DTSTART: %w", err)
	}
	name := ""
	if p := o.Props.Get(ical.PropTimezoneName); p != nil {
		name = p.Value
	}
	if name == "" || strings.Contains(name, "\x00") {
		name = formatOffset(to)
	}
	dst := o.Name == ical.CompTimezoneDaylight
	var out []onset
	addWall := func(w time.Time) {
		out = append(out, onset{at: w.Unix() - int64(from), from: from, off: to, dst: dst, name: name})
	}
	walls := []time.Time{start}
	if p := o.Props.Get(ical.PropRecurrenceRule); p != nil {
		opt, err := rrule.StrToROptionInLocation(p.Value, time.UTC)
		if err != nil {
			return nil, fmt.Errorf("RRULE: %w", err)
		}
		if !opt.Until.IsZero() && strings.Contains(strings.ToUpper(p.Value), "Z") {
			// UNTIL is in UTC; the rule's times are wall clocks.
			opt.Until = opt.Until.Add(time.Duration(from) * time.Second)
		}
		opt.Dtstart = start
		if opt.Freq == rrule.YEARLY && start.Year() < vtzFirstYear {
			// rrule-go cannot iterate more than 292 years; a yearly rule
			// begun in 1601 (Outlook's habit) is the same from 1970 on.
			opt.Dtstart = time.Date(vtzFirstYear, start.Month(), start.Day(), start.Hour(), start.Minute(), start.Second(), 0, time.UTC)
			walls = walls[:0]
		}
		r, err := rrule.NewRRule(*opt)
		if err != nil {
			return nil, fmt.Errorf("RRULE: %w", err)
		}
		next := r.Iterator()
		for n := 0; n < 2*(vtzLastYear-vtzFirstYear)+10; n++ {
			w, ok := next()
			if !ok || w.Year() > vtzLastYear {
				break
			}
			walls = append(walls, w)
		}
	}
	for _, p := range o.Props.Values(ical.PropRecurrenceDates) {
		for _, v := range strings.Split(p.Value, ",") {
			w, err := time.ParseInLocation(localLayout, strings.TrimSuffix(strings.TrimSpace(v), "Z"), time.UTC)
			if err != nil {
				return nil, fmt.Errorf("RDATE: %w", err)
			}
			walls = append(walls, w)
		}
	}
	for _, w := range walls {
		addWall(w)
	}
	return out, nil
}

// utcOffset reads a UTC-OFFSET value: +hhmm or -hhmm, optionally ss.
func utcOffset(p *ical.Prop) (int, error) {
	if p == nil {
		return 0, errors.New("missing")
	}
	v := strings.TrimSpace(p.Value)
	if (len(v) != 5 && len(v) != 7) || (v[0] != '+' && v[0] != '-') {
		return 0, fmt.Errorf("%q is not a UTC offset", v)
	}
	sec := 0
	for i, unit := range []int{3600, 60, 1} {
		if 1+2*i >= len(v) {
			break
		}
		n, err := strconv.Atoi(v[1+2*i : 3+2*i])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a UTC offset", v)
		}
		sec += n * unit
	}
	if sec >= 24*3600 {
		return 0, fmt.Errorf("%q is not a UTC offset", v)
	}
	if v[0] == '-' {
		sec = -sec
	}
	return sec, nil
}

// tzif encodes onsets (sorted by time) as version 2 tz data (RFC 8536)
// with 64-bit transition times. Before the first onset its TZOFFSETFROM
// holds.
func tzif(onsets []onset) []byte {
	type ttype struct {
		off  int
		dst  bool
		name string
	}
	// Type 0, unused by any transition, is what Go applies before the
	// first one.
	types := []ttype{{onsets[0].from, false, formatOffset(onsets[0].from)}}
	var times []int64
	var idx []byte
	for i, o := range onsets {
		if i > 0 && o.at == onsets[i-1].at {
			times, idx = times[:len(times)-1], idx[:len(idx)-1] // the later observance wins
		}
		t := ttype{o.off, o.dst, o.name}
		k := slices.Index(types[1:], t) + 1
		if k == 0 {
			if len(types) == 255 {
				break
			}
			types = append(types, t)
			k = len(types) - 1
		}
		times = append(times, o.at)
		idx = append(idx, byte(k))
	}
	// Abbreviations are indexed by a byte: a name past that is left out.
	chars := []byte{0}
	nameAt := map[string]int{"": 0}
	for _, t := range types {
		if _, ok := nameAt[t.name]; !ok && len(chars)+len(t.name) < 255 {
			nameAt[t.name] = len(chars)
			chars = append(append(chars, t.name...), 0)
		}
	}
	b := make([]byte, 0, 64+9*len(times)+6*len(types)+len(chars))
	header := func(nTime, nType, nChar int) {
		b = append(b, "TZif2"...)
		b = append(b, make([]byte, 15)...)
		for _, n := range []int{0, 0, 0, nTime, nType, nChar} { // isut, isstd, leap, time, type, char
			b = binary.BigEndian.AppendUint32(b, uint32(n))
		}
	}
	// A version 1 block with nothing in it (Go reads the version 2 one),
	// then the version 2 block.
	header(0, 0, 0)
	header(len(times), len(types), len(chars))
	for _, t := range times {
		b = binary.BigEndian.AppendUint64(b, uint64(t))
	}
	b = append(b, idx...)
	for _, t := range types {
		b = binary.BigEndian.AppendUint32(b, uint32(int32(t.off)))
		dst := byte(0)
		if t.dst {
			dst = 1
		}
		b = append(b, dst, byte(nameAt[t.name]))
	}
	b = append(b, chars...)
	return append(b, '\n', '\n')
}

package booking

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Weekdays in the API's spelling, indexed by time.Weekday.
var weekdayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseWeekday reads "mon".."sun".
func ParseWeekday(s string) (time.Weekday, bool) {
	for i, n := range weekdayNames {
		if n == s {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

// WeekdayName returns "mon".."sun".
func WeekdayName(d time.Weekday) string { return weekdayNames[d] }

// WorkingHours is one block of working time on a weekday, in minutes after
// local midnight: [StartMin, EndMin), EndMin at most 1440 ("24:00").
type WorkingHours struct {
	Weekday  time.Weekday
	StartMin int
	EndMin   int
}

// ParseClock reads "HH:MM" (and "24:00") as minutes after midnight.
func ParseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("%q is not a time of day", s)
	}
	return hh*60 + mm, nil
}

// FormatClock writes minutes after midnight as "HH:MM".
func FormatClock(min int) string { return fmt.Sprintf("%02d:%02d", min/60, min%60) }

// Schedule is a mentor's weekly working hours and booking rules.
type Schedule struct {
	MentorID     string
	TimeZone     string
	WorkingHours []WorkingHours
	Slot         time.Duration
	Buffer       time.Duration
	MinNotice    time.Duration
	MaxAdvance   time.Duration
	// ZoomUser hosts the mentor's meetings ("" = the mentor id).
	ZoomUser  string
	UpdatedAt time.Time
}

// Defaults of a schedule's rules (as in the API).
const (
	DefaultSlot       = 60 * time.Minute
	DefaultMinNotice  = 720 * time.Minute
	DefaultMaxAdvance = 60 * 24 * time.Hour
)

// Validate checks the schedule: a known zone and working hours that are
// neither inverted nor overlapping. Errors name the entries by their index
// in WorkingHours as given (body.working_hours.2.end, the request
// validator's format); an overlap names both entries. When the schedule is
// valid, Validate sorts WorkingHours by weekday and start.
func (s *Schedule) Validate() error {
	if _, err := time.LoadLocation(s.TimeZone); err != nil || s.TimeZone == "" || strings.EqualFold(s.TimeZone, "local") {
		return &ValidationError{Field: "body.timezone", Message: fmt.Sprintf("unknown time zone %q", s.TimeZone)}
	}
	if s.Slot <= 0 {
		return &ValidationError{Field: "body.slot_minutes", Message: "must be positive"}
	}
	for i, w := range s.WorkingHours {
		if w.EndMin <= w.StartMin {
			return &ValidationError{Field: WorkingHoursField(i) + ".end",
				Message: fmt.Sprintf("%s: end must be after start", w)}
		}
	}
	// Sorted by start, any overlap shows between neighbours.
	order := make([]int, len(s.WorkingHours))
	for i := range order {
		order[i] = i
	}
	less := func(a, b WorkingHours) bool {
		if a.Weekday != b.Weekday {
			return a.Weekday < b.Weekday
		}
		return a.StartMin < b.StartMin
	}
	sort.SliceStable(order, func(i, j int) bool { return less(s.WorkingHours[order[i]], s.WorkingHours[order[j]]) })
	for k := 1; k < len(order); k++ {
		i, j := min(order[k-1], order[k]), max(order[k-1], order[k])
		a, b := s.WorkingHours[i], s.WorkingHours[j]
		if a.Weekday == b.Weekday && a.StartMin < b.EndMin && b.StartMin < a.EndMin {
			return &ValidationError{Field: WorkingHoursField(j), Also: []string{WorkingHoursField(i)},
				Message: fmt.Sprintf("%s (working_hours.%d) overlaps %s (working_hours.%d)", b, j, a, i)}
		}
	}
	sort.SliceStable(s.WorkingHours, func(i, j int) bool { return less(s.WorkingHours[i], s.WorkingHours[j]) })
	return nil
}

// WorkingHoursField names the i-th working-hours entry of a schedule
// request in problem+json errors: body.working_hours.i, as the request
// validator names array elements.
func WorkingHoursField(i int) string { return fmt.Sprintf("body.working_hours.%d", i) }

// String writes the block as "mon 09:00-12:00".
func (w WorkingHours) String() string {
	return WeekdayName(w.Weekday) + " " + FormatClock(w.StartMin) + "-" + FormatClock(w.EndMin)
}

// Location returns the schedule's zone (UTC when unknown).
func (s Schedule) Location() *time.Location {
	loc, err := time.LoadLocation(s.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Interval is a half-open time range [Start, End).
type Interval struct{ Start, End time.Time }

// overlaps reports whether two half-open intervals share an instant.
func (a Interval) overlaps(b Interval) bool { return a.Start.Before(b.End) && b.Start.Before(a.End) }

// blocks returns the working blocks of the schedule (as instants) that
// overlap [from, to).
func (s Schedule) blocks(from, to time.Time) []Interval {
	loc := s.Location()
	var out []Interval
	lf := from.In(loc)
	// The days are walked as calendar dates (kept in UTC, which has no
	// clock changes), not as local midnights: where the clocks skip
	// midnight (Havana, Santiago, the Azores spring forward from 00:00 to
	// 01:00), time.Date puts that midnight at 23:00 of the day before, and
	// the next midnight computed from it would be the same instant again.
	for day := time.Date(lf.Year(), lf.Month(), lf.Day()-1, 0, 0, 0, 0, time.UTC); ; day = day.AddDate(0, 0, 1) {
		if !time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, loc).Before(to) {
			break
		}
		for _, w := range s.WorkingHours {
			if w.Weekday != day.Weekday() {
				continue
			}
			// time.Date normalises wall times (also those in DST gaps), so
			// a block is always the real span between its two wall clocks.
			b := Interval{
				Start: time.Date(day.Year(), day.Month(), day.Day(), w.StartMin/60, w.StartMin%60, 0, 0, loc),
				End:   time.Date(day.Year(), day.Month(), day.Day(), w.EndMin/60, w.EndMin%60, 0, 0, loc),
			}
			if b.End.After(b.Start) && b.overlaps(Interval{from, to}) {
				out = append(out, b)
			}
		}
	}
	return out
}

// Busy is a blocked interval. Calendar busy time and other bookings are
// both given as Busy; each is extended by the schedule's buffer on its end,
// and a candidate slot [s, e) conflicts when [s, e+buffer) overlaps it.
type Busy = Interval

// AvailabilityQuery asks for free slots.
type AvailabilityQuery struct {
	From, To time.Time
	// Duration of the session; default the schedule's slot length.
	Duration time.Duration
	// Location of the returned slots; default the schedule's zone.
	Location *time.Location
	Now      time.Time
	// Candidate, when set, is the candidate asking: slots that overlap one
	// of their own sessions are left out (they could not book them).
	Candidate string
}

// Slots returns the free slots of duration in [q.From, q.To): working
// blocks walked on the slot grid from each block's start, minus busy time
// (calendar blocks extended by the buffer, bookings by their own buffer),
// honouring minimum notice and maximum advance. Times are in q.Location.
// busy need not be sorted.
func (s Schedule) Slots(q AvailabilityQuery, busy []Busy) []Interval {
	dur := q.Duration
	if dur <= 0 {
		dur = s.Slot
	}
	loc := q.Location
	if loc == nil {
		loc = s.Location()
	}
	lo, hi, ok := s.bookableRange(q.From, q.To, q.Now)
	if !ok {
		return nil
	}
	step := s.Slot
	if step <= 0 {
		step = dur
	}
	var out []Interval
	for _, b := range s.blocks(lo, hi) {
		for t := b.Start; !t.Add(dur).After(b.End); t = t.Add(step) {
			c := Interval{t, t.Add(dur)}
			if c.Start.Before(lo) || c.End.After(hi) {
				continue
			}
			if conflicts(c, s.Buffer, busy) {
				continue
			}
			out = append(out, Interval{c.Start.In(loc), c.End.In(loc)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// bookableRange clips [from, to) to what can be booked at now: from the
// minimum notice to the maximum advance (none when MaxAdvance is 0). ok is
// false when nothing of the range is left.
func (s Schedule) bookableRange(from, to, now time.Time) (lo, hi time.Time, ok bool) {
	lo, hi = from, to
	if earliest := now.Add(s.MinNotice); earliest.After(lo) {
		lo = earliest
	}
	if s.MaxAdvance > 0 {
		if latest := now.Add(s.MaxAdvance); latest.Before(hi) {
			hi = latest
		}
	}
	return lo, hi, lo.Before(hi)
}

// conflicts reports whether [c.Start, c.End+buffer) overlaps a busy block.
func conflicts(c Interval, buffer time.Duration, busy []Busy) bool {
	padded := Interval{c.Start, c.End.Add(buffer)}
	for _, b := range busy {
		if padded.overlaps(b) {
			return true
		}
	}
	return false
}

// Bookable checks that [start, start+dur) lies inside one working block and
// respects minimum notice and maximum advance. It returns a ValidationError
// naming the broken rule.
func (s Schedule) Bookable(start time.Time, dur time.Duration, now time.Time) error {
	end := start.Add(dur)
	if start.Before(now.Add(s.MinNotice)) {
		return &ValidationError{Field: "body.start", Message: fmt.Sprintf("must be at least %s from now (the mentor's minimum notice)", humanDuration(s.MinNotice))}
	}
	if s.MaxAdvance > 0 && end.After(now.Add(s.MaxAdvance)) {
		return &ValidationError{Field: "body.start", Message: fmt.Sprintf("must be within %d days from now (the mentor's maximum advance)", int(s.MaxAdvance/(24*time.Hour)))}
	}
	for _, b := range s.blocks(start, end) {
		if !start.Before(b.Start) && !end.After(b.End) {
			return nil
		}
	}
	return &ValidationError{Field: "body.start", Message: outsideHours}
}

// inHours reports whether instant t lies inside one of the working blocks.
func (s Schedule) inHours(t time.Time) bool {
	for _, b := range s.blocks(t, t.Add(1)) {
		if !t.Before(b.Start) && t.Before(b.End) {
			return true
		}
	}
	return false
}

// outsideHours is Bookable's message for a session not inside one working
// block.
const outsideHours = "outside the mentor's working hours"

// OnGrid checks that start is one Slots could offer for a session of dur,
// busy time and notice aside: on the slot grid of a working block that
// holds [start, start+dur), the grid Slots walks from the block's start in
// steps of the slot length (elapsed time, so across a clock change inside
// the block too). A start in no working block is left to Bookable and
// passes. It returns a ValidationError on body.start naming the grid and
// the nearest starts on it, in the schedule's zone.
func (s Schedule) OnGrid(start time.Time, dur time.Duration) error {
	step := s.Slot
	if step <= 0 {
		step = dur
	}
	end := start.Add(dur)
	var in *Interval
	for _, b := range s.blocks(start, end) {
		if start.Before(b.Start) || end.After(b.End) {
			continue
		}
		if start.Sub(b.Start)%step == 0 {
			return nil
		}
		if in == nil {
			in = &b
		}
	}
	if in == nil {
		return nil
	}
	loc := s.Location()
	prev := in.Start.Add(start.Sub(in.Start) / step * step)
	nearest := prev.In(loc).Format("15:04")
	if next := prev.Add(step); !next.Add(dur).After(in.End) {
		nearest += " or " + next.In(loc).Format("15:04")
	}
	return &ValidationError{Field: "body.start", Message: fmt.Sprintf("must be on the %s grid of the mentor's working hours (nearest: %s %s)",
		gridName(step), nearest, s.TimeZone)}
}

// gridName writes a slot length as "30-minute" or "90-minute".
func gridName(step time.Duration) string {
	if step%time.Minute == 0 {
		return fmt.Sprintf("%d-minute", step/time.Minute)
	}
	return step.String()
}

// calendarBusy extends calendar busy blocks by the buffer on their end, so
// the gap after a busy block is kept too.
func calendarBusy(in []Interval, buffer time.Duration) []Busy {
	out := make([]Busy, 0, len(in))
	for _, b := range in {
		out = append(out, Busy{b.Start, b.End.Add(buffer)})
	}
	return out
}

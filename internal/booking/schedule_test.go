package booking

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func ts(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func hours(d time.Weekday, from, to string) WorkingHours {
	a, err := ParseClock(from)
	if err != nil {
		panic(err)
	}
	b, err := ParseClock(to)
	if err != nil {
		panic(err)
	}
	return WorkingHours{Weekday: d, StartMin: a, EndMin: b}
}

func allWeek(from, to string) []WorkingHours {
	var out []WorkingHours
	for d := time.Sunday; d <= time.Saturday; d++ {
		out = append(out, hours(d, from, to))
	}
	return out
}

func TestSlots(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		sch   Schedule
		q     AvailabilityQuery
		tz    string // output zone; "" = the schedule's
		busy  []Busy
		want  []string // slot starts, RFC 3339 in the output zone
		wantD time.Duration
	}{
		{
			name: "Berlin autumn: 01:00-04:00 on the night clocks go back holds four real hours",
			sch:  Schedule{TimeZone: "Europe/Berlin", WorkingHours: []WorkingHours{hours(time.Sunday, "01:00", "04:00")}, Slot: time.Hour},
			q:    AvailabilityQuery{From: ts(t, "2026-10-25T00:00:00+02:00"), To: ts(t, "2026-10-26T00:00:00+01:00"), Now: ts(t, "2026-10-01T00:00:00Z")},
			want: []string{"2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"},
		},
		{
			name: "Berlin spring: 01:00-04:00 on the night clocks go forward holds two real hours",
			sch:  Schedule{TimeZone: "Europe/Berlin", WorkingHours: []WorkingHours{hours(time.Sunday, "01:00", "04:00")}, Slot: time.Hour},
			q:    AvailabilityQuery{From: ts(t, "2026-03-29T00:00:00+01:00"), To: ts(t, "2026-03-30T00:00:00+02:00"), Now: ts(t, "2026-03-01T00:00:00Z")},
			want: []string{"2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"},
		},
		{
			name: "Berlin working hours keep their wall time across the change",
			sch:  Schedule{TimeZone: "Europe/Berlin", WorkingHours: allWeek("09:00", "10:00"), Slot: time.Hour},
			q:    AvailabilityQuery{From: ts(t, "2026-10-24T00:00:00Z"), To: ts(t, "2026-10-27T00:00:00Z"), Now: ts(t, "2026-10-01T00:00:00Z")},
			tz:   "UTC",
			want: []string{"2026-10-24T07:00:00Z", "2026-10-25T08:00:00Z", "2026-10-26T08:00:00Z"},
		},
		{
			name: "New York autumn, shown in Berlin (whose change came a week earlier)",
			sch:  Schedule{TimeZone: "America/New_York", WorkingHours: allWeek("09:00", "10:00"), Slot: time.Hour},
			q:    AvailabilityQuery{From: ts(t, "2026-10-31T00:00:00-04:00"), To: ts(t, "2026-11-03T00:00:00-05:00"), Now: ts(t, "2026-10-01T00:00:00Z")},
			tz:   "Europe/Berlin",
			want: []string{"2026-10-31T14:00:00+01:00", "2026-11-01T15:00:00+01:00", "2026-11-02T15:00:00+01:00"},
		},
		{
			name: "New York spring: 01:00-04:00 holds two real hours",
			sch:  Schedule{TimeZone: "America/New_York", WorkingHours: []WorkingHours{hours(time.Sunday, "01:00", "04:00")}, Slot: time.Hour},
			q:    AvailabilityQuery{From: ts(t, "2026-03-08T00:00:00-05:00"), To: ts(t, "2026-03-09T00:00:00-04:00"), Now: ts(t, "2026-03-01T00:00:00Z")},
			tz:   "UTC",
			want: []string{"2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"},
		},
		{
			name: "busy time and the buffer after it",
			sch:  Schedule{TimeZone: "Europe/Berlin", WorkingHours: []WorkingHours{hours(time.Wednesday, "09:00", "12:00")}, Slot: time.Hour, Buffer: 15 * time.Minute},
			q:    AvailabilityQuery{From: ts(t, "2026-12-09T00:00:00+01:00"), To: ts(t, "2026-12-10T00:00:00+01:00"), Now: ts(t, "2026-12-01T00:00:00Z")},
			busy: calendarBusy([]Interval{{ts(t, "2026-12-09T10:00:00+01:00"), ts(t, "2026-12-09T10:30:00+01:00")}}, 15*time.Minute),
			want: []string{"2026-12-09T11:00:00+01:00"},
		},
		{
			name: "the buffer before a booking",
			sch:  Schedule{TimeZone: "Europe/Berlin", WorkingHours: []WorkingHours{hours(time.Wednesday, "09:00", "12:00")}, Slot: time.Hour, Buffer: 15 * time.Minute},
			q:    AvailabilityQuery{From: ts(t, "2026-12-09T00:00:00+01:00"), To: ts(t, "2026-12-10T00:00:00+01:00"), Now: ts(t, "2026-12-01T00:00:00Z")},
			busy: []Busy{{ts(t, "2026-12-09T11:00:00+01:00"), ts(t, "2026-12-09T12:15:00+01:00")}},
			want: []string{"2026-12-09T09:00:00+01:00"},
		},
		{
			name: "minimum notice and maximum advance",
			sch: Schedule{TimeZone: "Europe/Berlin", WorkingHours: allWeek("09:00", "12:00"), Slot: time.Hour,
				MinNotice: time.Hour, MaxAdvance: 26 * time.Hour},
			q:    AvailabilityQuery{From: ts(t, "2026-12-09T00:00:00+01:00"), To: ts(t, "2026-12-12T00:00:00+01:00"), Now: ts(t, "2026-12-09T08:30:00+01:00")},
			want: []string{"2026-12-09T10:00:00+01:00", "2026-12-09T11:00:00+01:00", "2026-12-10T09:00:00+01:00"},
		},
		{
			name:  "a shorter session on the slot grid",
			sch:   Schedule{TimeZone: "Europe/Berlin", WorkingHours: []WorkingHours{hours(time.Monday, "09:00", "11:00"), hours(time.Monday, "13:00", "14:00")}, Slot: time.Hour},
			q:     AvailabilityQuery{From: ts(t, "2026-12-07T00:00:00+01:00"), To: ts(t, "2026-12-08T00:00:00+01:00"), Duration: 30 * time.Minute, Now: ts(t, "2026-12-01T00:00:00Z")},
			want:  []string{"2026-12-07T09:00:00+01:00", "2026-12-07T10:00:00+01:00", "2026-12-07T13:00:00+01:00"},
			wantD: 30 * time.Minute,
		},
		{
			name:  "a longer session than the slot needs room in the block",
			sch:   Schedule{TimeZone: "Europe/Berlin", WorkingHours: []WorkingHours{hours(time.Monday, "09:00", "11:00")}, Slot: time.Hour},
			q:     AvailabilityQuery{From: ts(t, "2026-12-07T00:00:00+01:00"), To: ts(t, "2026-12-08T00:00:00+01:00"), Duration: 90 * time.Minute, Now: ts(t, "2026-12-01T00:00:00Z")},
			want:  []string{"2026-12-07T09:00:00+01:00"},
			wantD: 90 * time.Minute,
		},
		{
			name: "working until midnight",
			sch:  Schedule{TimeZone: "America/New_York", WorkingHours: []WorkingHours{hours(time.Friday, "22:00", "24:00")}, Slot: time.Hour},
			q:    AvailabilityQuery{From: ts(t, "2026-12-11T00:00:00-05:00"), To: ts(t, "2026-12-13T00:00:00-05:00"), Now: ts(t, "2026-12-01T00:00:00Z")},
			want: []string{"2026-12-11T22:00:00-05:00", "2026-12-11T23:00:00-05:00"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := tt.q
			if tt.tz != "" {
				q.Location = mustLoad(t, tt.tz)
			}
			got := tt.sch.Slots(q, tt.busy)
			var starts []string
			for _, s := range got {
				starts = append(starts, s.Start.Format(time.RFC3339))
				d := tt.wantD
				if d == 0 {
					d = time.Hour
				}
				if s.End.Sub(s.Start) != d {
					t.Errorf("slot %s lasts %s, want %s", s.Start, s.End.Sub(s.Start), d)
				}
			}
			if diff := cmp.Diff(tt.want, starts); diff != "" {
				t.Errorf("slots (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBookable(t *testing.T) {
	t.Parallel()
	sch := Schedule{TimeZone: "Europe/Berlin", WorkingHours: []WorkingHours{hours(time.Wednesday, "09:00", "12:00")},
		Slot: time.Hour, MinNotice: 12 * time.Hour, MaxAdvance: 30 * 24 * time.Hour}
	now := ts(t, "2026-12-01T00:00:00Z")
	tests := []struct {
		start string
		dur   time.Duration
		ok    bool
	}{
		{"2026-12-09T09:00:00+01:00", time.Hour, true},
		{"2026-12-09T10:30:00+01:00", 90 * time.Minute, true},
		{"2026-12-09T11:30:00+01:00", time.Hour, false}, // runs past 12:00
		{"2026-12-09T08:30:00+01:00", time.Hour, false}, // starts before 09:00
		{"2026-12-10T09:00:00+01:00", time.Hour, false}, // Thursday
		{"2026-12-01T09:00:00+01:00", time.Hour, false}, // less than 12h notice? (it is Tuesday anyway)
		{"2027-01-13T09:00:00+01:00", time.Hour, false}, // beyond 30 days
	}
	for _, tt := range tests {
		err := sch.Bookable(ts(t, tt.start), tt.dur, now)
		var ve *ValidationError
		if tt.ok != (err == nil) || (err != nil && !errors.As(err, &ve)) {
			t.Errorf("Bookable(%s, %s) = %v, want ok=%v", tt.start, tt.dur, err, tt.ok)
		}
	}
}

func TestScheduleValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sch  Schedule
		// want is the error's fields (Field, then Also); nil: valid.
		want []string
	}{
		{"good", Schedule{TimeZone: "Europe/Berlin", Slot: time.Hour, WorkingHours: []WorkingHours{hours(time.Monday, "13:00", "17:00"), hours(time.Monday, "09:00", "12:00")}}, nil},
		{"touching blocks", Schedule{TimeZone: "UTC", Slot: time.Hour, WorkingHours: []WorkingHours{hours(time.Monday, "09:00", "12:00"), hours(time.Monday, "12:00", "13:00")}}, nil},
		{"unknown zone", Schedule{TimeZone: "Mars/Olympus", Slot: time.Hour}, []string{"body.timezone"}},
		{"inverted", Schedule{TimeZone: "UTC", Slot: time.Hour, WorkingHours: []WorkingHours{hours(time.Monday, "12:00", "09:00")}}, []string{"body.working_hours.0.end"}},
		{"inverted, named by its index as sent", Schedule{TimeZone: "UTC", Slot: time.Hour, WorkingHours: []WorkingHours{
			hours(time.Tuesday, "09:00", "10:00"), hours(time.Wednesday, "09:00", "10:00"), hours(time.Monday, "12:00", "09:00")}},
			[]string{"body.working_hours.2.end"}},
		{"empty block", Schedule{TimeZone: "UTC", Slot: time.Hour, WorkingHours: []WorkingHours{hours(time.Friday, "09:00", "10:00"), hours(time.Monday, "09:00", "09:00")}}, []string{"body.working_hours.1.end"}},
		{"overlapping", Schedule{TimeZone: "UTC", Slot: time.Hour, WorkingHours: []WorkingHours{hours(time.Monday, "09:00", "12:00"), hours(time.Monday, "11:00", "13:00")}},
			[]string{"body.working_hours.1", "body.working_hours.0"}},
		{"overlapping, both named by their index as sent", Schedule{TimeZone: "UTC", Slot: time.Hour, WorkingHours: []WorkingHours{
			hours(time.Monday, "13:00", "17:00"), hours(time.Tuesday, "09:00", "10:00"), hours(time.Sunday, "09:00", "10:00"), hours(time.Monday, "11:00", "14:00")}},
			[]string{"body.working_hours.3", "body.working_hours.0"}},
		{"one block inside another", Schedule{TimeZone: "UTC", Slot: time.Hour, WorkingHours: []WorkingHours{
			hours(time.Monday, "10:00", "11:00"), hours(time.Monday, "12:00", "13:00"), hours(time.Monday, "09:00", "17:00")}},
			[]string{"body.working_hours.2", "body.working_hours.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.sch.Validate()
			var got []string
			var ve *ValidationError
			if errors.As(err, &ve) {
				got = append([]string{ve.Field}, ve.Also...)
			} else if err != nil {
				t.Fatalf("Validate() = %v, not a ValidationError", err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("Validate() = %v; fields (-got +want):\n%s", err, diff)
			}
		})
	}
	t.Run("sorts a valid schedule", func(t *testing.T) {
		t.Parallel()
		sch := Schedule{TimeZone: "UTC", Slot: time.Hour, WorkingHours: []WorkingHours{hours(time.Tuesday, "09:00", "10:00"), hours(time.Monday, "13:00", "14:00"), hours(time.Monday, "09:00", "10:00")}}
		if err := sch.Validate(); err != nil {
			t.Fatal(err)
		}
		want := []WorkingHours{hours(time.Monday, "09:00", "10:00"), hours(time.Monday, "13:00", "14:00"), hours(time.Tuesday, "09:00", "10:00")}
		if diff := cmp.Diff(sch.WorkingHours, want); diff != "" {
			t.Errorf("WorkingHours (-got +want):\n%s", diff)
		}
	})
}

func TestParseClock(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"00:00": 0, "09:30": 570, "24:00": 1440, "23:59": 1439} {
		got, err := ParseClock(in)
		if err != nil || got != want {
			t.Errorf("ParseClock(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"24:30", "9:00", "12:60", "ab:cd", ""} {
		if _, err := ParseClock(in); err == nil {
			t.Errorf("ParseClock(%q) succeeded", in)
		}
	}
}

// TestSlotsWhereMidnightIsSkipped: in zones whose clocks skip midnight when
// they spring forward (Havana, Santiago, the Azores go from 00:00 straight to
// 01:00), that day's working hours are offered and bookable like any other
// day's. Walking the days by instants looped forever there: time.Date puts
// the missing midnight at 23:00 of the day before, and the next day's
// midnight, computed from that, was the same instant again, so availability
// and booking requests for a range over that day never returned.
func TestSlotsWhereMidnightIsSkipped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		zone      string
		sat, mon  string // local midnights around the Sunday without one
		want      []string
		bookStart string
	}{
		{"America/Havana", "2027-03-13T00:00:00-05:00", "2027-03-15T00:00:00-04:00",
			[]string{"2027-03-14T09:00:00-04:00", "2027-03-14T10:00:00-04:00", "2027-03-14T11:00:00-04:00"}, "2027-03-14T10:00:00-04:00"},
		{"America/Santiago", "2027-09-04T00:00:00-04:00", "2027-09-06T00:00:00-03:00",
			[]string{"2027-09-05T09:00:00-03:00", "2027-09-05T10:00:00-03:00", "2027-09-05T11:00:00-03:00"}, "2027-09-05T10:00:00-03:00"},
		{"Atlantic/Azores", "2027-03-27T00:00:00-01:00", "2027-03-29T00:00:00Z",
			[]string{"2027-03-28T09:00:00Z", "2027-03-28T10:00:00Z", "2027-03-28T11:00:00Z"}, "2027-03-28T10:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.zone, func(t *testing.T) {
			t.Parallel()
			sch := Schedule{TimeZone: tt.zone, WorkingHours: []WorkingHours{hours(time.Sunday, "09:00", "12:00")},
				Slot: time.Hour, MaxAdvance: 365 * 24 * time.Hour}
			now := ts(t, "2027-03-01T00:00:00Z")
			var got []string
			for _, s := range sch.Slots(AvailabilityQuery{From: ts(t, tt.sat), To: ts(t, tt.mon), Now: now}, nil) {
				got = append(got, s.Start.Format(time.RFC3339))
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("Sunday slots (-got +want):\n%s", diff)
			}
			if err := sch.Bookable(ts(t, tt.bookStart), time.Hour, now); err != nil {
				t.Errorf("Bookable(%s) = %v, want nil", tt.bookStart, err)
			}
		})
	}
}

// TestOnGrid: a start is on the grid when it is one the working block that
// holds the session offers: the block's start plus whole slots, in the
// mentor's zone whatever zone the request is written in. An off-grid start
// is a ValidationError on body.start naming the grid and the nearest starts.
func TestOnGrid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		sch   Schedule
		start string
		dur   time.Duration
		want  string // "" for on the grid
	}{
		{"on the hour", berlinWed(30*time.Minute, "09:00", "12:00"), "2026-12-09T10:00:00+01:00", time.Hour, ""},
		{"half past", berlinWed(30*time.Minute, "09:00", "12:00"), "2026-12-09T10:30:00+01:00", time.Hour, ""},
		{"written in another zone", berlinWed(30*time.Minute, "09:00", "12:00"), "2026-12-09T04:30:00-05:00", time.Hour, ""},
		{"quarter past", berlinWed(30*time.Minute, "09:00", "12:00"), "2026-12-09T10:15:00+01:00", time.Hour,
			"must be on the 30-minute grid of the mentor's working hours (nearest: 10:00 or 10:30 Europe/Berlin)"},
		{"a second off", berlinWed(30*time.Minute, "09:00", "12:00"), "2026-12-09T10:00:01+01:00", time.Hour,
			"must be on the 30-minute grid of the mentor's working hours (nearest: 10:00 or 10:30 Europe/Berlin)"},
		{"next start would run past the block", berlinWed(time.Hour, "09:00", "12:00"), "2026-12-09T10:30:00+01:00", 90 * time.Minute,
			"must be on the 60-minute grid of the mentor's working hours (nearest: 10:00 Europe/Berlin)"},
		{"grid from the block's start", berlinWed(time.Hour, "09:15", "12:15"), "2026-12-09T10:15:00+01:00", time.Hour, ""},
		{"the hour off a quarter-past block", berlinWed(time.Hour, "09:15", "12:15"), "2026-12-09T10:00:00+01:00", time.Hour,
			"must be on the 60-minute grid of the mentor's working hours (nearest: 09:15 or 10:15 Europe/Berlin)"},
		{"45-minute slots", berlinWed(45*time.Minute, "09:00", "12:00"), "2026-12-09T10:30:00+01:00", 30 * time.Minute, ""},
		{"UTC's hour in Kathmandu", Schedule{TimeZone: "Asia/Kathmandu", WorkingHours: []WorkingHours{hours(time.Wednesday, "09:00", "17:00")}, Slot: time.Hour},
			"2026-12-09T06:00:00Z", time.Hour, "must be on the 60-minute grid of the mentor's working hours (nearest: 11:00 or 12:00 Asia/Kathmandu)"},
		{"Kathmandu's hour", Schedule{TimeZone: "Asia/Kathmandu", WorkingHours: []WorkingHours{hours(time.Wednesday, "09:00", "17:00")}, Slot: time.Hour},
			"2026-12-09T05:15:00Z", time.Hour, ""},
		{"outside working hours is Bookable's", berlinWed(30*time.Minute, "09:00", "12:00"), "2026-12-09T07:15:00+01:00", time.Hour, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.sch.OnGrid(ts(t, tt.start), tt.dur)
			if tt.want == "" {
				if err != nil {
					t.Errorf("OnGrid(%s, %s) = %v, want nil", tt.start, tt.dur, err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != "body.start" || ve.Message != tt.want {
				t.Errorf("OnGrid(%s, %s) = %#v, want body.start %q", tt.start, tt.dur, err, tt.want)
			}
		})
	}
}

func berlinWed(slot time.Duration, from, to string) Schedule {
	return Schedule{TimeZone: "Europe/Berlin", WorkingHours: []WorkingHours{hours(time.Wednesday, from, to)}, Slot: slot}
}

// TestOnGridIsWhatSlotsOffer: over days with clock changes (in blocks that
// span them, in a zone that moves by half an hour, in one that skips
// midnight) and ordinary days, with slot lengths that do and do not divide
// the hour, every start Slots offers passes Bookable and OnGrid, and every
// start that passes both is offered: booking accepts exactly the starts
// availability shows, busy time and notice aside.
func TestOnGridIsWhatSlotsOffer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		zone     string
		from, to string // local midnights around the clock change
		hours    []WorkingHours
	}{
		{"Europe/Berlin", "2027-03-27T00:00:00+01:00", "2027-03-30T00:00:00+02:00", allWeek("00:30", "05:00")},
		{"Europe/Berlin", "2027-10-30T00:00:00+02:00", "2027-11-02T00:00:00+01:00", allWeek("01:15", "04:45")},
		{"Europe/Berlin", "2027-10-30T00:00:00+02:00", "2027-11-02T00:00:00+01:00", append(allWeek("00:00", "03:00"), allWeek("09:10", "17:00")...)},
		{"Australia/Lord_Howe", "2027-04-03T00:00:00+11:00", "2027-04-06T00:00:00+10:30", allWeek("00:00", "24:00")},
		{"Australia/Lord_Howe", "2027-10-02T00:00:00+10:30", "2027-10-05T00:00:00+11:00", allWeek("01:00", "03:30")},
		{"America/Havana", "2027-03-13T00:00:00-05:00", "2027-03-16T00:00:00-04:00", allWeek("00:00", "03:00")},
		{"Asia/Kathmandu", "2027-03-13T00:00:00+05:45", "2027-03-16T00:00:00+05:45", allWeek("08:20", "18:00")},
	}
	now := ts(t, "2027-01-01T00:00:00Z")
	for _, tt := range tests {
		for _, slot := range []time.Duration{15 * time.Minute, 30 * time.Minute, 45 * time.Minute, time.Hour, 90 * time.Minute} {
			for _, dur := range []time.Duration{30 * time.Minute, time.Hour} {
				sch := Schedule{TimeZone: tt.zone, WorkingHours: tt.hours, Slot: slot, MaxAdvance: 0}
				if err := sch.Validate(); err != nil {
					t.Fatal(err)
				}
				from, to := ts(t, tt.from), ts(t, tt.to)
				offered := map[time.Time]bool{}
				for _, s := range sch.Slots(AvailabilityQuery{From: from, To: to, Duration: dur, Now: now}, nil) {
					offered[s.Start.UTC()] = true
				}
				if len(offered) == 0 {
					t.Fatalf("%s %s slot %s: no slots", tt.zone, tt.from, slot)
				}
				for start := from; !start.Add(dur).After(to); start = start.Add(5 * time.Minute) {
					ok := sch.Bookable(start, dur, now) == nil && sch.OnGrid(start, dur) == nil
					if ok != offered[start.UTC()] {
						t.Errorf("%s slot %s, %s from %s: accepted %t, offered %t", tt.zone, slot, dur,
							start.In(sch.Location()).Format(time.RFC3339), ok, offered[start.UTC()])
					}
				}
			}
		}
	}
}

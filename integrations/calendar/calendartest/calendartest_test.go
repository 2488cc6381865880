package calendartest_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/calendar/calendartest"
)

// memCalendar is a straightforward in-memory calendar.Calendar used to check
// that the suite itself passes against a correct implementation.
type memCalendar struct {
	mu      sync.Mutex
	version int
	epoch   int  // bumped by ExpireCursors
	gone    bool // set by DeleteCalendar
	events  map[string]*memEvent
	deleted map[string]int // id → version of deletion
}

type memEvent struct {
	ev      calendar.Event
	weekly  int
	version int
}

func newMem() *memCalendar {
	return &memCalendar{events: map[string]*memEvent{}, deleted: map[string]int{}}
}

func (m *memCalendar) put(e *memEvent) {
	m.version++
	e.version = m.version
	e.ev.ETag = strconv.Itoa(m.version)
	m.events[e.ev.ID] = e
	delete(m.deleted, e.ev.ID)
}

func (m *memCalendar) FreeBusy(_ context.Context, from, to time.Time) ([]calendar.Busy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return nil, calendar.ErrCalendarNotFound
	}
	var out []calendar.Busy
	for _, e := range m.events {
		loc, err := time.LoadLocation(e.ev.TimeZone)
		if err != nil {
			return nil, err
		}
		n := max(e.weekly, 1)
		s, en := e.ev.Start.In(loc), e.ev.End.In(loc)
		for i := range n {
			bs, be := s, en
			if i > 0 { // AddDate re-resolves the wall time, which would lose an instant in a repeated hour
				bs, be = s.AddDate(0, 0, 7*i), en.AddDate(0, 0, 7*i)
			}
			if bs.Before(to) && be.After(from) {
				out = append(out, calendar.Busy{Start: bs.UTC(), End: be.UTC()})
			}
		}
	}
	slices.SortFunc(out, func(a, b calendar.Busy) int { return a.Start.Compare(b.Start) })
	var merged []calendar.Busy
	for _, b := range out {
		if l := len(merged); l > 0 && !b.Start.After(merged[l-1].End) {
			if b.End.After(merged[l-1].End) {
				merged[l-1].End = b.End
			}
			continue
		}
		merged = append(merged, b)
	}
	return merged, nil
}

func (m *memCalendar) CreateEvent(_ context.Context, ev calendar.Event) (calendar.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return calendar.Event{}, calendar.ErrCalendarNotFound
	}
	ev.ID = calendar.EventID(ev.BookingID)
	if e, ok := m.events[ev.ID]; ok {
		if e.ev.BookingID != ev.BookingID {
			return calendar.Event{}, calendar.ErrConflict
		}
		return e.ev, nil
	}
	m.put(&memEvent{ev: ev})
	return m.events[ev.ID].ev, nil
}

func (m *memCalendar) UpdateEvent(_ context.Context, ev calendar.Event) (calendar.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ev.ID = calendar.EventID(ev.BookingID)
	e, ok := m.events[ev.ID]
	if !ok || e.ev.BookingID != ev.BookingID {
		return calendar.Event{}, calendar.ErrNotFound
	}
	ev.Sequence = e.ev.Sequence + 1
	m.put(&memEvent{ev: ev})
	return m.events[ev.ID].ev, nil
}

func (m *memCalendar) DeleteEvent(_ context.Context, bookingID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.del(calendar.EventID(bookingID))
}

func (m *memCalendar) del(id string) error {
	if _, ok := m.events[id]; ok {
		delete(m.events, id)
		m.version++
		m.deleted[id] = m.version
	}
	return nil
}

func (m *memCalendar) GetEvent(_ context.Context, bookingID string) (calendar.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.events[calendar.EventID(bookingID)]
	if !ok {
		return calendar.Event{}, calendar.ErrNotFound
	}
	return e.ev, nil
}

func (m *memCalendar) Changes(_ context.Context, cursor string) (calendar.ChangeSet, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return calendar.ChangeSet{}, calendar.ErrCalendarNotFound
	}
	var epoch, since int
	reset := false
	if cursor != "" {
		if _, err := fmt.Sscanf(cursor, "%d/%d", &epoch, &since); err != nil || epoch != m.epoch {
			reset, since = true, 0
		}
	}
	var cs calendar.ChangeSet
	cs.Reset = reset
	for id, e := range m.events {
		if e.version > since {
			ev := e.ev
			cs.Changes = append(cs.Changes, calendar.Change{ID: id, BookingID: ev.BookingID, Event: &ev})
		}
	}
	if since > 0 {
		for id, v := range m.deleted {
			if v > since {
				cs.Changes = append(cs.Changes, calendar.Change{ID: id, Deleted: true})
			}
		}
	}
	cs.Cursor = fmt.Sprintf("%d/%d", m.epoch, m.version)
	return cs, nil
}

type memExternal struct {
	m *memCalendar
	n int
}

func (x *memExternal) AddForeign(_ context.Context, f calendartest.ForeignEvent) (string, error) {
	x.m.mu.Lock()
	defer x.m.mu.Unlock()
	if f.ID == "" {
		x.n++
		f.ID = fmt.Sprintf("foreign-%d", x.n)
	}
	x.m.put(&memEvent{ev: calendar.Event{ID: f.ID, Summary: f.Summary, Start: f.Start, End: f.End, TimeZone: f.TimeZone}, weekly: f.WeeklyCount})
	return f.ID, nil
}

func (x *memExternal) Move(_ context.Context, id string, start, end time.Time) error {
	x.m.mu.Lock()
	defer x.m.mu.Unlock()
	e, ok := x.m.events[id]
	if !ok {
		return calendar.ErrNotFound
	}
	c := *e
	c.ev.Start, c.ev.End = start, end
	x.m.put(&c)
	return nil
}

func (x *memExternal) Delete(_ context.Context, id string) error {
	x.m.mu.Lock()
	defer x.m.mu.Unlock()
	return x.m.del(id)
}

func (x *memExternal) ExpireCursors(context.Context) error {
	x.m.mu.Lock()
	defer x.m.mu.Unlock()
	x.m.epoch++
	return nil
}

func (x *memExternal) DeleteCalendar(context.Context) error {
	x.m.mu.Lock()
	defer x.m.mu.Unlock()
	x.m.gone = true
	clear(x.m.events)
	return nil
}

var (
	_ calendartest.CursorExpirer   = (*memExternal)(nil)
	_ calendartest.CalendarDeleter = (*memExternal)(nil)
)

// TestSuiteAgainstReference runs the suite against the in-memory reference
// implementation, so a broken case is caught here before any backend.
func TestSuiteAgainstReference(t *testing.T) {
	t.Parallel()
	calendartest.Run(t, func(t *testing.T) calendartest.Backend {
		m := newMem()
		return calendartest.Backend{Calendar: m, External: &memExternal{m: m}}
	})
}

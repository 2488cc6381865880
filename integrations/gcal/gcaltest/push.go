package gcaltest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	calendarv3 "google.golang.org/api/calendar/v3"
)

// Resource states sent in X-Goog-Resource-State.
const (
	StateSync      = "sync"
	StateExists    = "exists"
	StateNotExists = "not_exists"
)

// ErrNotFound is returned by the helpers for an unknown calendar, event or channel.
var ErrNotFound = errors.New("gcaltest: not found")

// ErrOwner is the error of UnshareCalendar for a calendar the account owns:
// an owner deletes its calendar (DeleteCalendar), it does not unshare it.
var ErrOwner = errors.New("gcaltest: the account owns the calendar")

// ChannelInfo describes a live notification channel.
type ChannelInfo struct {
	ID, ResourceID, ResourceURI string
	CalendarID                  string
	Address, Token              string
	Expiration                  time.Time
	// Messages is the number of the last message sent (0 = none yet).
	Messages int64
}

// Delivery is the outcome of one push notification.
type Delivery struct {
	ChannelID string
	// State is the X-Goog-Resource-State that was sent.
	State string
	// MessageNumber is the X-Goog-Message-Number that was sent.
	MessageNumber int64
	// Status is the receiver's HTTP status (0 when the request failed).
	Status int
	Err    error
}

// Channels returns the live (unexpired, unstopped) channels on a calendar's
// events, ordered by id.
func (s *Server) Channels(calendarID string) []ChannelInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	calendarID = s.resolveCalendarID(calendarID)
	var out []ChannelInfo
	for _, ch := range s.channels {
		if ch.calendarID == calendarID && s.now().Before(ch.expiration) {
			out = append(out, ChannelInfo{
				ID: ch.id, ResourceID: ch.resourceID, ResourceURI: ch.resourceURI, CalendarID: ch.calendarID,
				Address: ch.address, Token: ch.token, Expiration: ch.expiration, Messages: ch.messages,
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Push sends a notification with the given resource state to every live
// channel watching the calendar's events, and reports each delivery.
func (s *Server) Push(ctx context.Context, calendarID, state string) []Delivery {
	var out []Delivery
	for _, ch := range s.Channels(calendarID) {
		d, _ := s.PushChannel(ctx, ch.ID, state)
		out = append(out, d)
	}
	return out
}

// PushChannel sends one notification to a channel's address, as Google does:
// a POST without body carrying the X-Goog-* headers. A non-2xx answer is
// reported in Delivery.Status, not as an error.
func (s *Server) PushChannel(ctx context.Context, channelID, state string) (Delivery, error) {
	s.mu.Lock()
	ch := s.channels[channelID]
	if ch == nil || !s.now().Before(ch.expiration) {
		s.mu.Unlock()
		return Delivery{ChannelID: channelID}, fmt.Errorf("gcaltest: push to channel %q: %w", channelID, ErrNotFound)
	}
	ch.messages++
	c := *ch
	s.mu.Unlock()

	d := Delivery{ChannelID: c.id, State: state, MessageNumber: c.messages}
	defer func() {
		s.mu.Lock()
		s.deliveries = append(s.deliveries, d)
		s.mu.Unlock()
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.address, http.NoBody)
	if err != nil {
		d.Err = err
		return d, err
	}
	h := req.Header
	h.Set("X-Goog-Channel-ID", c.id)
	if c.token != "" {
		h.Set("X-Goog-Channel-Token", c.token)
	}
	h.Set("X-Goog-Channel-Expiration", c.expiration.UTC().Format(http.TimeFormat))
	h.Set("X-Goog-Resource-ID", c.resourceID)
	h.Set("X-Goog-Resource-URI", c.resourceURI)
	h.Set("X-Goog-Resource-State", state)
	h.Set("X-Goog-Message-Number", strconv.FormatInt(c.messages, 10))
	h.Set("User-Agent", "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)")
	resp, err := s.opts.PushClient.Do(req)
	if err != nil {
		d.Err = err
		return d, fmt.Errorf("gcaltest: push to channel %q: %w", channelID, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	d.Status = resp.StatusCode
	return d, nil
}

// Deliveries returns every notification sent so far (by PushChannel, Push
// and AutoPush), in the order their deliveries ended.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}

// autoPush notifies the calendar's channels in the background when
// Options.AutoPush is set. Call with s.mu held.
func (s *Server) autoPush(cs *calendarState) {
	if !s.opts.AutoPush {
		return
	}
	id := cs.info.ID
	go s.Push(context.Background(), id, StateExists)
}

// resolveCalendarID maps "primary" to the first user's primary calendar.
// Call with s.mu held.
func (s *Server) resolveCalendarID(id string) string {
	if id == "primary" {
		return s.userOrder[0]
	}
	return id
}

// ExternalEvent is an event the user creates in their own calendar (in the
// Google Calendar UI, from the gateway's point of view).
type ExternalEvent struct {
	// ID is optional; when set it must be a valid event id.
	ID      string
	Summary string
	Start   time.Time
	End     time.Time
	// TimeZone defaults to the calendar's zone.
	TimeZone string
	// Recurrence holds RRULE/EXDATE/RDATE lines.
	Recurrence []string
	// Transparent events do not block time ("Show as available").
	Transparent bool
}

// PutEvent creates an event as the calendar's owner and returns its id.
func (s *Server) PutEvent(calendarID string, ev ExternalEvent) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.calendars[s.resolveCalendarID(calendarID)]
	if cs == nil {
		return "", fmt.Errorf("gcaltest: calendar %q: %w", calendarID, ErrNotFound)
	}
	id := ev.ID
	if id == "" {
		id = randomID(26)
	}
	if !validEventID(id) {
		return "", fmt.Errorf("gcaltest: invalid event id %q", id)
	}
	if _, dup := cs.events[id]; dup {
		return "", fmt.Errorf("gcaltest: event %q exists", id)
	}
	tz := ev.TimeZone
	if tz == "" {
		tz = cs.info.TimeZone
	}
	body := map[string]any{
		"id": id, "summary": ev.Summary,
		"start": map[string]any{"dateTime": ev.Start.Format(time.RFC3339), "timeZone": tz},
		"end":   map[string]any{"dateTime": ev.End.Format(time.RFC3339), "timeZone": tz},
	}
	if len(ev.Recurrence) > 0 {
		rec := make([]any, len(ev.Recurrence))
		for i, r := range ev.Recurrence {
			rec[i] = r
		}
		body["recurrence"] = rec
	}
	if ev.Transparent {
		body["transparency"] = "transparent"
	}
	if res := s.normalizeEvent(cs, body); res != nil {
		return "", fmt.Errorf("gcaltest: invalid event: %s", res.err.Message)
	}
	now := s.now().UTC().Format(rfc3339Milli)
	body["created"] = now
	body["iCalUID"] = id + "@google.com"
	body["creator"] = map[string]any{"email": cs.owner, "self": true}
	body["organizer"] = organizer(cs)
	body["sequence"] = json.Number("0")
	st := &storedEvent{data: body}
	cs.events[id] = st
	s.touch(cs, st, now)
	s.autoPush(cs)
	return id, nil
}

// MoveEvent changes an event's start and end as the calendar's owner
// (dragging it in the UI); the sequence is bumped like Google does.
func (s *Server) MoveEvent(calendarID, eventID string, start, end time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ev, err := s.lookup(calendarID, eventID)
	if err != nil {
		return err
	}
	next := deepCopy(ev.data)
	for key, t := range map[string]time.Time{"start": start, "end": end} {
		m, _ := next[key].(map[string]any)
		if m == nil {
			m = map[string]any{}
			next[key] = m
		}
		delete(m, "date")
		m["dateTime"] = t.Format(time.RFC3339)
	}
	if res := s.normalizeEvent(cs, next); res != nil {
		return fmt.Errorf("gcaltest: move event: %s", res.err.Message)
	}
	seq, _ := strconv.Atoi(fmt.Sprint(next["sequence"]))
	next["sequence"] = json.Number(strconv.Itoa(seq + 1))
	ev.data = next
	s.touch(cs, ev, s.now().UTC().Format(rfc3339Milli))
	s.autoPush(cs)
	return nil
}

// DeleteEvent deletes an event as the calendar's owner. Like Google it
// stays retrievable with status "cancelled".
func (s *Server) DeleteEvent(calendarID, eventID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ev, err := s.lookup(calendarID, eventID)
	if err != nil {
		return err
	}
	if ev.cancelled {
		return fmt.Errorf("gcaltest: event %q already deleted", eventID)
	}
	ev.data["status"] = "cancelled"
	s.touch(cs, ev, s.now().UTC().Format(rfc3339Milli))
	s.autoPush(cs)
	return nil
}

func (s *Server) lookup(calendarID, eventID string) (*calendarState, *storedEvent, error) {
	cs := s.calendars[s.resolveCalendarID(calendarID)]
	if cs == nil {
		return nil, nil, fmt.Errorf("gcaltest: calendar %q: %w", calendarID, ErrNotFound)
	}
	ev := cs.events[eventID]
	if ev == nil {
		return nil, nil, fmt.Errorf("gcaltest: event %q: %w", eventID, ErrNotFound)
	}
	return cs, ev, nil
}

// Event returns the stored event resource (cancelled ones included), decoded
// from the JSON the API would return. It is an independent read path for tests.
func (s *Server) Event(calendarID, eventID string) (*calendarv3.Event, error) {
	s.mu.Lock()
	_, ev, err := s.lookup(calendarID, eventID)
	var b []byte
	if err == nil {
		b, err = json.Marshal(ev.data)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out calendarv3.Event
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Calendar returns a calendar's id, summary and time zone, or an error
// matching ErrNotFound. It is an independent read path for tests and the
// sandbox's controls.
func (s *Server) Calendar(id string) (Calendar, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.calendars[s.resolveCalendarID(id)]
	if cs == nil {
		return Calendar{}, fmt.Errorf("gcaltest: calendar %q: %w", id, ErrNotFound)
	}
	return cs.info, nil
}

// EventCount returns the number of events that exist (not cancelled) in a calendar.
func (s *Server) EventCount(calendarID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.calendars[s.resolveCalendarID(calendarID)]
	if cs == nil {
		return 0
	}
	n := 0
	for _, ev := range cs.events {
		if !ev.cancelled {
			n++
		}
	}
	return n
}

// DeleteCalendar deletes a secondary calendar as its owner would in the
// Google Calendar UI: its events and push channels go with it, it leaves
// the owner's calendar list, and every call on it answers 404 notFound.
// Like calendars.delete, it refuses a primary calendar.
func (s *Server) DeleteCalendar(calendarID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.resolveCalendarID(calendarID)
	cs := s.calendars[id]
	if cs == nil {
		return fmt.Errorf("gcaltest: calendar %q: %w", calendarID, ErrNotFound)
	}
	if cs.primary {
		return fmt.Errorf("gcaltest: calendar %q is a primary calendar, which cannot be deleted", calendarID)
	}
	delete(s.calendars, id)
	for _, u := range s.users {
		// The owner's list and the lists of everyone it was shared with.
		u.calendars = slices.DeleteFunc(u.calendars, func(c string) bool { return c == id })
		delete(u.roles, id)
	}
	for chID, ch := range s.channels {
		if ch.calendarID == id {
			delete(s.channels, chID)
		}
	}
	return nil
}

// UnshareCalendar takes a calendar shared with the account email (one
// AddCalendar added with RoleWriter, RoleReader or RoleFreeBusyReader) out
// of its calendar list, and the account loses its access to it: every call
// of the account on it answers 404 notFound, as after the owner deletes
// the account's rule (acl.delete) or the account removes the calendar from
// its list (calendarList.delete, "Removes a calendar from the user's
// calendar list",
// https://developers.google.com/calendar/api/v3/reference/calendarList/delete).
// The calendar, its events and the other accounts' access stay. It fails
// with ErrNotFound for an unknown account or a calendar not shared with
// it, and with ErrOwner for a calendar the account owns (its primary
// calendar, or a secondary one, which DeleteCalendar deletes).
func (s *Server) UnshareCalendar(email, calendarID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[strings.ToLower(email)]
	if u == nil {
		return fmt.Errorf("gcaltest: account %q: %w", email, ErrNotFound)
	}
	id := calendarID
	if id == "primary" {
		id = u.calendars[0]
	}
	cs := s.calendars[id]
	if cs != nil && cs.owner == u.email {
		return fmt.Errorf("gcaltest: calendar %q of %q: %w", calendarID, u.email, ErrOwner)
	}
	if cs == nil || u.roles[id] == "" {
		return fmt.Errorf("gcaltest: calendar %q is not shared with %q: %w", calendarID, u.email, ErrNotFound)
	}
	delete(u.roles, id)
	u.calendars = slices.DeleteFunc(u.calendars, func(c string) bool { return c == id })
	return nil
}

// AddCalendar adds calendar c to the calendar list of the account email
// with the given access role (RoleOwner, RoleWriter, RoleReader or
// RoleFreeBusyReader). RoleOwner creates a secondary calendar the account
// owns, as calendars.insert would; the other roles add a calendar of
// another owner shared with the account, as accepting a share in the
// Google Calendar UI does: calendarList.list reports the role as the
// entry's accessRole, freebusy.query answers for it with any role, event
// writes answer 403 requiredAccessLevel without writer access. A calendar
// that exists already (another account's secondary or shared calendar) is
// shared with email as it is; c's other fields are then ignored. Events
// are put on it with PutEvent. An empty TimeZone is "UTC". It fails for an
// unknown account, an unknown role, RoleOwner or a primary calendar's id
// for a calendar that exists, or one already in email's list.
func (s *Server) AddCalendar(email string, c Calendar, accessRole string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[strings.ToLower(email)]
	if u == nil {
		return fmt.Errorf("gcaltest: account %q: %w", email, ErrNotFound)
	}
	switch accessRole {
	case RoleOwner, RoleWriter, RoleReader, RoleFreeBusyReader:
	default:
		return fmt.Errorf("gcaltest: access role %q: want owner, writer, reader or freeBusyReader", accessRole)
	}
	if c.ID == "" || c.ID == "primary" || s.users[strings.ToLower(c.ID)] != nil || slices.Contains(u.calendars, c.ID) {
		return fmt.Errorf("gcaltest: calendar id %q is empty or in use", c.ID)
	}
	if s.calendars[c.ID] != nil {
		if accessRole == RoleOwner {
			return fmt.Errorf("gcaltest: calendar id %q is in use", c.ID)
		}
		u.roles[c.ID] = accessRole
		u.calendars = append(u.calendars, c.ID)
		return nil
	}
	if c.TimeZone == "" {
		c.TimeZone = "UTC"
	}
	owner := u.email
	if accessRole != RoleOwner {
		owner = "" // another account's calendar, shared with u
		u.roles[c.ID] = accessRole
	}
	s.calendars[c.ID] = newCalendarState(c, owner, false)
	u.calendars = append(u.calendars, c.ID)
	return nil
}

// ExpireSyncTokens invalidates every sync token (and page token of an
// incremental listing) issued so far for the calendar: using one answers
// 410 fullSyncRequired.
func (s *Server) ExpireSyncTokens(calendarID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs := s.calendars[s.resolveCalendarID(calendarID)]; cs != nil {
		cs.minSync = s.nextSerial()
	}
}

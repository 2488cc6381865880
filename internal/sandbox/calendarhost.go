package sandbox

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
)

// Calendar person controls: a user moves or deletes a booking's event in
// their own calendar, as the gateway's change sync sees people do. They are
// served on the simulator's address, keyed by booking id:
//
//	POST CalDAVHostPath + "{bookingId}/move"   {"start_time": …, "duration_minutes": …}
//	POST CalDAVHostPath + "{bookingId}/delete"
//	POST GoogleHostPath + "{bookingId}/move"   {…, "calendar": "mentor@example.com"}
//	POST GoogleHostPath + "{bookingId}/delete" {"calendar": …}
//
// The CalDAV control changes the event of the sandbox CalDAV user over
// CalDAV itself; the gateway sees it at its next poll
// (GATEWAY_CALDAV_POLL_INTERVAL). The Google control changes the event in
// the named Google calendar (default mentor@example.com), and the simulator
// sends the gateway the push notification Google would.
const (
	CalDAVHostPath = "/_sandbox/caldav/events/"
	GoogleHostPath = "/_sandbox/google/events/"
)

// Calendar person actions.
const (
	CalendarMove   = "move"
	CalendarDelete = "delete"
)

// DefaultGoogleCalendar is the Google calendar the Google control acts in
// when the request names none: the sandbox mentor's.
const DefaultGoogleCalendar = "mentor@example.com"

// CalendarHostRequest is the JSON body of a calendar person control.
type CalendarHostRequest struct {
	// StartTime and DurationMinutes are the new time of a move (StartTime
	// required; DurationMinutes 0 keeps the duration).
	StartTime       time.Time `json:"start_time,omitzero"`
	DurationMinutes int       `json:"duration_minutes,omitempty"`
	// Calendar is the Google calendar to act in (Google only).
	Calendar string `json:"calendar,omitempty"`
}

// CalendarHostResult is the answer of a calendar person control: what was
// done to the booking's event, and its time after a move.
type CalendarHostResult struct {
	BookingID string    `json:"booking_id"`
	Action    string    `json:"action"`
	Start     time.Time `json:"start,omitzero"`
	End       time.Time `json:"end,omitzero"`
}

// calendarRequest parses a calendar control: the booking id, the action
// and the body, or the problem to answer.
func calendarRequest(prefix, rest string, body []byte) (id, action string, in CalendarHostRequest, status int, detail string) {
	id, action, ok := strings.Cut(rest, "/")
	if !ok || id == "" || (action != CalendarMove && action != CalendarDelete) {
		return "", "", in, http.StatusNotFound, "Use POST " + prefix + "{bookingId}/move or …/delete."
	}
	if err := decodeControl(body, &in); err != nil {
		return "", "", in, http.StatusBadRequest, "The body is not a calendar control request: " + err.Error()
	}
	if action == CalendarMove && in.StartTime.IsZero() {
		return "", "", in, http.StatusBadRequest, "A move needs start_time (RFC 3339)."
	}
	if in.DurationMinutes < 0 || in.DurationMinutes > 24*60 {
		return "", "", in, http.StatusBadRequest, "duration_minutes must be between 1 and 1440 (0 keeps the duration)."
	}
	return id, action, in, http.StatusOK, ""
}

// moved is the new time of an event that lasted from start to end.
func moved(in CalendarHostRequest, start, end time.Time) (time.Time, time.Time) {
	d := end.Sub(start)
	if in.DurationMinutes > 0 {
		d = time.Duration(in.DurationMinutes) * time.Minute
	}
	return in.StartTime, in.StartTime.Add(d)
}

// caldavHost performs the CalDAV person controls as the sandbox CalDAV user.
type caldavHost struct{ env *Env }

// serve handles POST CalDAVHostPath + "{bookingId}/{action}" (see control.act).
func (h *caldavHost) serve(r *http.Request, rest string, body []byte) (any, int, string) {
	id, action, in, status, detail := calendarRequest(CalDAVHostPath, rest, body)
	if detail != "" {
		return nil, status, detail
	}
	cal, err := caldav.New(h.env.URLs["caldav"]+caldavtest.CalendarPath(CalDAVUser, caldavtest.DefaultCalendar), CalDAVUser, CalDAVPassword,
		caldav.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if err != nil {
		return nil, http.StatusInternalServerError, err.Error()
	}
	ev, err := cal.GetEvent(r.Context(), id)
	if errors.Is(err, calendar.ErrNotFound) {
		return nil, http.StatusNotFound, fmt.Sprintf("The sandbox CalDAV calendar of %q has no event of booking %s.", CalDAVUser, id)
	}
	if err != nil {
		return nil, http.StatusInternalServerError, err.Error()
	}
	res := CalendarHostResult{BookingID: id, Action: action}
	if action == CalendarDelete {
		err = cal.DeleteEvent(r.Context(), id)
	} else {
		ev.Start, ev.End = moved(in, ev.Start, ev.End)
		res.Start, res.End = ev.Start, ev.End
		_, err = cal.UpdateEvent(r.Context(), ev)
	}
	if err != nil {
		return nil, http.StatusInternalServerError, err.Error()
	}
	return res, http.StatusOK, ""
}

// googleHost performs the Google person controls in the simulator.
type googleHost struct{ sim *gcaltest.Server }

// serve handles POST GoogleHostPath + "{bookingId}/{action}" (see control.act).
func (h *googleHost) serve(_ *http.Request, rest string, body []byte) (any, int, string) {
	id, action, in, status, detail := calendarRequest(GoogleHostPath, rest, body)
	if detail != "" {
		return nil, status, detail
	}
	cal := in.Calendar
	if cal == "" {
		cal = DefaultGoogleCalendar
	}
	eventID := calendar.EventID(id)
	ev, err := h.sim.Event(cal, eventID)
	if err != nil || ev.Status == "cancelled" {
		return nil, http.StatusNotFound, fmt.Sprintf("The sandbox Google calendar %q has no event of booking %s.", cal, id)
	}
	res := CalendarHostResult{BookingID: id, Action: action}
	if action == CalendarDelete {
		err = h.sim.DeleteEvent(cal, eventID)
	} else {
		start, serr := time.Parse(time.RFC3339, ev.Start.DateTime)
		end, eerr := time.Parse(time.RFC3339, ev.End.DateTime)
		if serr != nil || eerr != nil {
			return nil, http.StatusBadRequest, "The event has no time of day to move (an all-day event?)."
		}
		res.Start, res.End = moved(in, start, end)
		err = h.sim.MoveEvent(cal, eventID, res.Start, res.End)
	}
	if err != nil {
		return nil, http.StatusBadRequest, err.Error()
	}
	return res, http.StatusOK, ""
}

package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
)

// ZoomHostPath is the path of the sandbox Zoom's host controls, on the Zoom
// simulator's address: POST ZoomHostPath + "{meetingId}/{action}". Real Zoom
// has no such endpoint; the sandbox serves it so that a developer can play
// what happens in Zoom's app (the meeting starts, people join and leave, the
// host moves or deletes the meeting) and watch the gateway receive the
// signed webhooks Zoom would send for it.
const ZoomHostPath = "/_sandbox/zoom/meetings/"

// Zoom host actions (the last path segment of a host control).
const (
	ZoomStart  = "start"  // meeting.started
	ZoomEnd    = "end"    // meeting.ended
	ZoomJoin   = "join"   // meeting.participant_joined
	ZoomLeave  = "leave"  // meeting.participant_left
	ZoomMove   = "move"   // the host changes the time: meeting.updated
	ZoomDelete = "delete" // the host deletes the meeting: meeting.deleted
)

// ZoomHostActions lists every action, in the order a session goes through them.
var ZoomHostActions = []string{ZoomStart, ZoomJoin, ZoomLeave, ZoomEnd, ZoomMove, ZoomDelete}

// ZoomHostRequest is the optional JSON body of a host control.
type ZoomHostRequest struct {
	// StartTime and DurationMinutes are the new time of a move (StartTime
	// required; DurationMinutes 0 keeps the duration).
	StartTime       time.Time `json:"start_time,omitzero"`
	DurationMinutes int       `json:"duration_minutes,omitempty"`
	// UserName and Email are the participant who joins or leaves (one of
	// them required).
	UserName string `json:"user_name,omitempty"`
	Email    string `json:"email,omitempty"`
}

// ZoomHostResult is the answer of a host control: the webhook event the
// gateway accepted (a 2xx). When the gateway refuses or cannot be reached
// the control answers 502.
type ZoomHostResult struct {
	MeetingID int64  `json:"meeting_id"`
	Event     string `json:"event"`
}

// control serves a simulator's sandbox controls, POST requests under one
// of its routes' prefixes, and passes every other request to the simulator.
type control struct {
	routes []route
	sim    http.Handler
	// webhook is the gateway's endpoint the controls deliver to; without
	// one they answer 503, unless noWebhook (the change reaches the gateway
	// by the provider's own push or by the gateway's poll).
	webhook   string
	noWebhook bool
}

// route is one kind of control of a simulator: the requests under prefix.
type route struct {
	prefix string
	// act handles a control: rest is the path after prefix, body the raw
	// request body (perhaps empty). It returns the answer, or the status
	// and detail of a problem.
	act func(r *http.Request, rest string, body []byte) (res any, status int, detail string)
}

func (c *control) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var (
		rt   route
		rest string
		ok   bool
	)
	for _, rt = range c.routes {
		if rest, ok = strings.CutPrefix(r.URL.Path, rt.prefix); ok {
			break
		}
	}
	if !ok {
		c.sim.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		hostProblem(w, http.StatusMethodNotAllowed, "Sandbox controls are POST requests.")
		return
	}
	if c.webhook == "" && !c.noWebhook {
		hostProblem(w, http.StatusServiceUnavailable, "The sandbox has no webhook endpoint of the gateway configured.")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		hostProblem(w, http.StatusBadRequest, "The body could not be read: "+err.Error())
		return
	}
	res, status, detail := rt.act(r, rest, body)
	if detail != "" {
		hostProblem(w, status, detail)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

// decodeControl decodes a control's JSON body into v, refusing unknown
// fields; an empty body leaves v as it is.
func decodeControl(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// zoomHost performs the host controls of the sandbox Zoom.
type zoomHost struct {
	sim         *zoomtest.Server
	url, secret string
}

// serve handles POST ZoomHostPath + "{meetingId}/{action}" (see control.act).
func (h *zoomHost) serve(r *http.Request, rest string, body []byte) (any, int, string) {
	idText, action, ok := strings.Cut(rest, "/")
	id, err := strconv.ParseInt(idText, 10, 64)
	if !ok || err != nil || id <= 0 {
		return nil, http.StatusNotFound, "Use POST " + ZoomHostPath + "{meetingId}/{action} with a numeric Zoom meeting id."
	}
	var in ZoomHostRequest
	if err := decodeControl(body, &in); err != nil {
		return nil, http.StatusBadRequest, "The body is not a host control request: " + err.Error()
	}
	return h.act(r, id, action, in)
}

// act performs action on meeting id and sends its webhook. When it cannot,
// it returns the status and detail of the problem to answer with.
func (h *zoomHost) act(r *http.Request, id int64, action string, in ZoomHostRequest) (res ZoomHostResult, status int, detail string) {
	var (
		event   string
		payload map[string]any
		err     error
	)
	switch action {
	case ZoomStart, ZoomEnd:
		event = map[string]string{ZoomStart: zoomtest.EventMeetingStarted, ZoomEnd: zoomtest.EventMeetingEnded}[action]
		payload, err = h.sim.MeetingEvent(event, id, nil)
	case ZoomJoin, ZoomLeave:
		event = map[string]string{ZoomJoin: zoomtest.EventMeetingParticipantJoined, ZoomLeave: zoomtest.EventMeetingParticipantLeft}[action]
		if in.UserName == "" && in.Email == "" {
			return res, http.StatusBadRequest, "Name the participant: user_name or email."
		}
		who := in.Email
		if who == "" {
			who = in.UserName
		}
		payload, err = h.sim.MeetingEvent(event, id, &zoomtest.Participant{UserID: "sandbox-" + strings.ToLower(who), UserName: in.UserName, Email: in.Email})
	case ZoomMove:
		if in.StartTime.IsZero() {
			return res, http.StatusBadRequest, "A move needs start_time (RFC 3339)."
		}
		event = zoomtest.EventMeetingUpdated
		if err = h.sim.MoveMeeting(id, in.StartTime, time.Duration(in.DurationMinutes)*time.Minute); err == nil {
			payload, err = h.sim.MeetingEvent(event, id, nil)
		}
	case ZoomDelete:
		event = zoomtest.EventMeetingDeleted
		payload, err = h.sim.DeleteMeeting(id)
	default:
		return res, http.StatusNotFound, fmt.Sprintf("Unknown action %q; one of %s.", action, strings.Join(ZoomHostActions, ", "))
	}
	switch {
	case errors.Is(err, zoomtest.ErrNoMeeting):
		return res, http.StatusNotFound, fmt.Sprintf("The sandbox Zoom has no meeting %d.", id)
	case err != nil:
		return res, http.StatusBadRequest, err.Error()
	}
	if err := h.sim.SendEvent(r.Context(), h.url, h.secret, event, payload); err != nil {
		return res, http.StatusBadGateway, fmt.Sprintf("The gateway did not take the %s webhook: %v", event, err)
	}
	return ZoomHostResult{MeetingID: id, Event: event}, http.StatusOK, ""
}

// hostProblem writes an RFC 9457 problem.
func hostProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(status), "status": status, "detail": detail})
}

// WriteURLs records where the simulators listen in the file path (JSON,
// provider name to base URL), for the `gateway sandbox` command run from
// the same folder.
func (e *Env) WriteURLs(path string) error {
	b, err := json.Marshal(e.URLs)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// ReadURLs reads a file written by WriteURLs.
func ReadURLs(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var urls map[string]string
	if err := json.Unmarshal(b, &urls); err != nil {
		return nil, fmt.Errorf("sandbox: %s: %w", path, err)
	}
	return urls, nil
}

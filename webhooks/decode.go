package webhooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spotlight/gateway/integrations/jira"
)

// ErrUndecodable reports a body that verified but cannot be decoded; the
// delivery is stored as poison.
var ErrUndecodable = errors.New("webhooks: undecodable payload")

// Zoom event names the gateway handles.
const (
	ZoomURLValidation     = "endpoint.url_validation"
	ZoomMeetingStarted    = "meeting.started"
	ZoomMeetingEnded      = "meeting.ended"
	ZoomParticipantJoined = "meeting.participant_joined"
	ZoomParticipantLeft   = "meeting.participant_left"
	ZoomMeetingDeleted    = "meeting.deleted"
	ZoomMeetingUpdated    = "meeting.updated"
)

// ZoomEvent is a decoded Zoom event notification.
type ZoomEvent struct {
	// Event is the event name ("meeting.started").
	Event string
	// TS is event_ts, milliseconds since the epoch.
	TS        int64
	AccountID string
	// Operator is the email of who changed the meeting (updated, deleted).
	Operator string
	// Meeting is payload.object for meeting events.
	Meeting ZoomMeeting
	// Old is payload.old_object of meeting.updated (only the changed fields).
	Old *ZoomMeeting
	// Participant is payload.object.participant of participant events.
	Participant *ZoomParticipant
	// PlainToken is payload.plainToken of endpoint.url_validation.
	PlainToken string
}

// ZoomMeeting is the meeting object of a Zoom event. Zero fields were absent.
type ZoomMeeting struct {
	// ID is the numeric meeting id as a decimal string (Zoom sends a string
	// in most events and a number in some).
	ID        string
	UUID      string
	Topic     string
	StartTime time.Time
	EndTime   time.Time
	// Duration in minutes; 0 when absent.
	Duration int
	TimeZone string
}

// ZoomParticipant is a participant of a participant_joined/left event.
type ZoomParticipant struct {
	UserID   string
	UserName string
	ID       string
	Email    string
	// At is join_time or leave_time.
	At time.Time
}

// flexID accepts a JSON string or number.
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	if _, err := strconv.ParseInt(n.String(), 10, 64); err != nil {
		return fmt.Errorf("id %s is not an integer", n)
	}
	*f = flexID(n.String())
	return nil
}

type zoomMeetingJSON struct {
	ID          flexID           `json:"id"`
	UUID        string           `json:"uuid"`
	Topic       string           `json:"topic"`
	StartTime   string           `json:"start_time"`
	EndTime     string           `json:"end_time"`
	Duration    *int             `json:"duration"`
	TimeZone    string           `json:"timezone"`
	Participant *participantJSON `json:"participant"`
}

type participantJSON struct {
	UserID    string `json:"user_id"`
	UserName  string `json:"user_name"`
	ID        string `json:"id"`
	Email     string `json:"email"`
	JoinTime  string `json:"join_time"`
	LeaveTime string `json:"leave_time"`
}

func parseZoomTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339, s)
}

func (j *zoomMeetingJSON) meeting() (ZoomMeeting, error) {
	m := ZoomMeeting{ID: string(j.ID), UUID: j.UUID, Topic: j.Topic, TimeZone: j.TimeZone}
	var err error
	if m.StartTime, err = parseZoomTime(j.StartTime); err != nil {
		return m, fmt.Errorf("start_time: %w", err)
	}
	if m.EndTime, err = parseZoomTime(j.EndTime); err != nil {
		return m, fmt.Errorf("end_time: %w", err)
	}
	if j.Duration != nil {
		if *j.Duration < 0 {
			return m, errors.New("negative duration")
		}
		m.Duration = *j.Duration
	}
	return m, nil
}

// DecodeZoom decodes a Zoom event notification body. A body that is not a
// JSON object with an "event" or whose meeting fields have the wrong types
// gives an error wrapping ErrUndecodable.
func DecodeZoom(body []byte) (*ZoomEvent, error) {
	var p struct {
		Event   string `json:"event"`
		EventTS int64  `json:"event_ts"`
		Payload struct {
			AccountID  string           `json:"account_id"`
			Operator   string           `json:"operator"`
			PlainToken string           `json:"plainToken"`
			Object     *zoomMeetingJSON `json:"object"`
			OldObject  *zoomMeetingJSON `json:"old_object"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("%w: zoom: %v", ErrUndecodable, err)
	}
	if p.Event == "" {
		return nil, fmt.Errorf("%w: zoom: no event", ErrUndecodable)
	}
	ev := &ZoomEvent{Event: p.Event, TS: p.EventTS, AccountID: p.Payload.AccountID, Operator: p.Payload.Operator, PlainToken: p.Payload.PlainToken}
	if p.Event == ZoomURLValidation {
		if p.Payload.PlainToken == "" || len(p.Payload.PlainToken) > 256 {
			return nil, fmt.Errorf("%w: zoom: url_validation without a plainToken", ErrUndecodable)
		}
		return ev, nil
	}
	if o := p.Payload.Object; o != nil {
		m, err := o.meeting()
		if err != nil {
			return nil, fmt.Errorf("%w: zoom: object: %v", ErrUndecodable, err)
		}
		ev.Meeting = m
		if pj := o.Participant; pj != nil {
			part := &ZoomParticipant{UserID: pj.UserID, UserName: pj.UserName, ID: pj.ID, Email: pj.Email}
			at := pj.JoinTime
			if pj.LeaveTime != "" {
				at = pj.LeaveTime
			}
			if part.At, err = parseZoomTime(at); err != nil {
				return nil, fmt.Errorf("%w: zoom: participant time: %v", ErrUndecodable, err)
			}
			ev.Participant = part
		}
	}
	if o := p.Payload.OldObject; o != nil {
		m, err := o.meeting()
		if err != nil {
			return nil, fmt.Errorf("%w: zoom: old_object: %v", ErrUndecodable, err)
		}
		ev.Old = &m
	}
	return ev, nil
}

// DecodeJira decodes a Jira issue webhook body (jira.ParseWebhook), giving
// an error wrapping ErrUndecodable when it cannot.
func DecodeJira(body []byte, bookingField string) (*jira.WebhookEvent, error) {
	ev, err := jira.ParseWebhook(body, bookingField)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	return ev, nil
}

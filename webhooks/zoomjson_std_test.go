package webhooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// The encoding/json implementation of DecodeZoom, kept as the reference for
// FuzzDecodeZoomMatchesStd: the fast decoder must accept exactly the bodies
// it accepts, with deep-equal results.

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

// decodeZoomStd is DecodeZoom as it was written with encoding/json: the
// reference the fast decoder must agree with.
func decodeZoomStd(body []byte) (*ZoomEvent, error) {
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

package webhooks

import (
	"errors"
	"fmt"
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

func parseZoomTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339, s)
}

// DecodeZoom decodes a Zoom event notification body. A body that is not a
// JSON object with an "event" or whose meeting fields have the wrong types
// gives an error wrapping ErrUndecodable.
//
// It runs on every Zoom delivery, so instead of encoding/json it uses a
// scanner that knows the shape of the event (zoomjson.go): it checks the
// body and keeps where the fields it reads are, then copies their values
// into one string. It accepts exactly the bodies encoding/json would, with
// the same results (FuzzDecodeZoomMatchesStd).
func DecodeZoom(body []byte) (*ZoomEvent, error) { return decodeZoom(body, false) }

// decodeZoom is DecodeZoom; with alias, the event's strings that need no
// unescaping point into body instead of being copied (body must never be
// modified afterwards: a Delivery's body, which nothing writes to once read).
func decodeZoom(body []byte, alias bool) (*ZoomEvent, error) {
	var p zoomEventSpans
	if err := decodeZoomJSON(body, &p); err != nil {
		return nil, fmt.Errorf("%w: zoom: %v", ErrUndecodable, err)
	}
	if p.event.empty() {
		return nil, fmt.Errorf("%w: zoom: no event", ErrUndecodable)
	}
	// The strings of the event, in this order: spans in, values out.
	const (
		event, accountID, operator, plainToken = 0, 1, 2, 3
		object                                 = 4                    // 6 meeting strings
		old                                    = object + meetingStrs // 6 more
		participant                            = old + meetingStrs    // 5
		all                                    = participant + 5
	)
	var (
		spans [all]zoomSpan
		strs  [all]string
	)
	spans[event], spans[accountID], spans[operator], spans[plainToken] = p.event, p.accountID, p.operator, p.plainToken
	if zoomValueIs(body, p.event, ZoomURLValidation) {
		zoomStrings(body, spans[:object], strs[:object], alias)
		if strs[plainToken] == "" || len(strs[plainToken]) > 256 {
			return nil, fmt.Errorf("%w: zoom: url_validation without a plainToken", ErrUndecodable)
		}
		return &ZoomEvent{Event: strs[event], TS: p.ts, AccountID: strs[accountID], Operator: strs[operator], PlainToken: strs[plainToken]}, nil
	}
	o, part := &p.object, &p.object.participant
	if o.present {
		o.spans(spans[object:old])
		if part.present {
			spans[participant], spans[participant+1], spans[participant+2], spans[participant+3] = part.userID, part.userName, part.id, part.email
			spans[participant+4] = part.join
			if !part.leave.empty() {
				spans[participant+4] = part.leave
			}
		}
	}
	if p.old.present {
		p.old.spans(spans[old:participant])
	}
	zoomStrings(body, spans[:], strs[:], alias)

	// One allocation for the event and the structs it points to.
	var ev *ZoomEvent
	if (o.present && part.present) || p.old.present {
		x := new(struct {
			ev   ZoomEvent
			old  ZoomMeeting
			part ZoomParticipant
		})
		ev = &x.ev
		if p.old.present {
			ev.Old = &x.old
		}
		if o.present && part.present {
			ev.Participant = &x.part
		}
	} else {
		ev = new(ZoomEvent)
	}
	ev.Event, ev.TS, ev.AccountID, ev.Operator, ev.PlainToken = strs[event], p.ts, strs[accountID], strs[operator], strs[plainToken]
	var err error
	if o.present {
		if ev.Meeting, err = o.meeting(strs[object:old]); err != nil {
			return nil, fmt.Errorf("%w: zoom: object: %v", ErrUndecodable, err)
		}
		if pt := ev.Participant; pt != nil {
			s := strs[participant:]
			pt.UserID, pt.UserName, pt.ID, pt.Email = s[0], s[1], s[2], s[3]
			if pt.At, err = parseZoomTime(s[4]); err != nil {
				return nil, fmt.Errorf("%w: zoom: participant time: %v", ErrUndecodable, err)
			}
		}
	}
	if p.old.present {
		if *ev.Old, err = p.old.meeting(strs[old:participant]); err != nil {
			return nil, fmt.Errorf("%w: zoom: old_object: %v", ErrUndecodable, err)
		}
	}
	return ev, nil
}

// meetingStrs is how many strings a meeting has: id, uuid, topic, timezone,
// start_time, end_time.
const meetingStrs = 6

func (m *zoomMeetingSpans) spans(dst []zoomSpan) {
	dst[0], dst[1], dst[2], dst[3], dst[4], dst[5] = m.id, m.uuid, m.topic, m.tz, m.start, m.end
}

// meeting builds the meeting from its strings (in the order of spans).
func (m *zoomMeetingSpans) meeting(s []string) (ZoomMeeting, error) {
	mt := ZoomMeeting{ID: s[0], UUID: s[1], Topic: s[2], TimeZone: s[3]}
	var err error
	if mt.StartTime, err = parseZoomTime(s[4]); err != nil {
		return mt, fmt.Errorf("start_time: %w", err)
	}
	if mt.EndTime, err = parseZoomTime(s[5]); err != nil {
		return mt, fmt.Errorf("end_time: %w", err)
	}
	if m.hasDuration {
		if m.duration < 0 {
			return mt, errors.New("negative duration")
		}
		mt.Duration = m.duration
	}
	return mt, nil
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

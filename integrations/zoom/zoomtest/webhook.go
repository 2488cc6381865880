package zoomtest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Webhook event names the simulator can emit for a meeting it holds.
const (
	EventMeetingStarted           = "meeting.started"
	EventMeetingEnded             = "meeting.ended"
	EventMeetingParticipantJoined = "meeting.participant_joined"
	EventMeetingParticipantLeft   = "meeting.participant_left"
	EventMeetingDeleted           = "meeting.deleted"
	EventMeetingUpdated           = "meeting.updated"
	EventURLValidation            = "endpoint.url_validation"
)

// ErrWebhookRejected is returned (wrapped) when the receiver answers a
// webhook with a non-2xx status or a wrong url_validation answer.
var ErrWebhookRejected = errors.New("zoomtest: webhook rejected")

// Sign returns Zoom's x-zm-signature for a body sent at timestamp ts (Unix
// seconds as sent in x-zm-request-timestamp):
// "v0=" + hex(HMAC-SHA256(secret, "v0:" + ts + ":" + body)).
func Sign(secret, ts string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + ts + ":"))
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// envelope is the body of every Zoom webhook.
type envelope struct {
	Event   string `json:"event"`
	EventTS int64  `json:"event_ts"`
	Payload any    `json:"payload"`
}

// SendEvent POSTs a webhook {event, event_ts, payload} to url, signed with
// secret like Zoom (x-zm-signature, x-zm-request-timestamp). A non-2xx
// answer is an error wrapping ErrWebhookRejected.
func (s *Server) SendEvent(ctx context.Context, url, secret, event string, payload any) error {
	_, err := s.send(ctx, url, secret, event, payload)
	return err
}

func (s *Server) send(ctx context.Context, url, secret, event string, payload any) ([]byte, error) {
	now := s.opts.Now()
	body, err := json.Marshal(envelope{Event: event, EventTS: now.UnixMilli(), Payload: payload})
	if err != nil {
		return nil, fmt.Errorf("zoomtest: encode %s: %w", event, err)
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("zoomtest: send %s: %w", event, err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", webhookUserAgent)
	req.Header.Set("x-zm-request-timestamp", ts)
	req.Header.Set("x-zm-signature", Sign(secret, ts, body))
	req.Header.Set("x-zm-trackingid", "v=2.0;clid=aw1;rid="+s.randString(12))
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("zoomtest: send %s: %w", event, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return b, fmt.Errorf("zoomtest: send %s: HTTP %d: %w", event, resp.StatusCode, ErrWebhookRejected)
	}
	return b, nil
}

// notify delivers an event of an API change to Options.WebhookURL, in the
// background (see Options.WebhookURL).
func (s *Server) notify(event string, payload map[string]any) {
	if s.opts.WebhookURL == "" {
		return
	}
	s.webhooks.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.SendEvent(ctx, s.opts.WebhookURL, s.opts.WebhookSecret, event, payload)
	})
}

// Wait waits until the automatic deliveries started so far are done (see
// Options.WebhookURL) or ctx ends.
func (s *Server) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.webhooks.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SendURLValidation sends endpoint.url_validation with a fresh plainToken
// and checks the answer {plainToken, encryptedToken} where encryptedToken is
// hex(HMAC-SHA256(secret, plainToken)), as Zoom does before enabling an
// endpoint (and every 72 hours).
func (s *Server) SendURLValidation(ctx context.Context, url, secret string) error {
	plain := s.randString(16)
	b, err := s.send(ctx, url, secret, EventURLValidation, map[string]string{"plainToken": plain})
	if err != nil {
		return err
	}
	var ans struct {
		PlainToken     string `json:"plainToken"`
		EncryptedToken string `json:"encryptedToken"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return fmt.Errorf("zoomtest: url validation answer is not JSON: %w", ErrWebhookRejected)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(plain))
	want := hex.EncodeToString(mac.Sum(nil))
	if ans.PlainToken != plain || !hmac.Equal([]byte(ans.EncryptedToken), []byte(want)) {
		return fmt.Errorf("zoomtest: url validation answer does not match: %w", ErrWebhookRejected)
	}
	return nil
}

// Participant is a meeting participant in participant_joined/left events.
type Participant struct {
	UserID   string // Zoom's per-meeting participant user id
	UserName string
	ID       string // Zoom user id when the participant is signed in
	Email    string
}

// ErrUnknownEvent is returned by MeetingEvent for an event it cannot build.
var ErrUnknownEvent = errors.New("zoomtest: unknown meeting event")

// setRunning records when meeting id's current instance started (zero: it
// ended).
func (s *Server) setRunning(id int64, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.meetings[id]; ok {
		m.running = at
	}
}

// ErrNoMeeting is returned by MeetingEvent for a meeting the simulator does
// not hold.
var ErrNoMeeting = errors.New("zoomtest: no such meeting")

// MeetingEvent builds the payload of a meeting event for a meeting the
// simulator holds, in Zoom's shape: {account_id, object{…}} plus operator
// fields for meeting.updated/deleted. p is needed for participant events.
// A meeting.started starts an instance of the meeting, whose start_time the
// next meeting.ended reports.
func (s *Server) MeetingEvent(event string, meetingID int64, p *Participant) (map[string]any, error) {
	now := s.opts.Now().UTC()
	s.mu.Lock()
	m, ok := s.meetings[meetingID]
	var cur meeting
	if ok {
		cur = *m
	}
	prev, hasPrev := s.previous[meetingID]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrNoMeeting, meetingID)
	}
	object := map[string]any{
		"uuid": cur.UUID, "id": strconv.FormatInt(cur.ID, 10), "host_id": cur.HostID, "topic": cur.Topic,
		"type": cur.Type, "start_time": cur.startTime(), "timezone": cur.Timezone, "duration": cur.Duration,
	}
	payload := map[string]any{"account_id": s.opts.AccountID, "object": object}
	operator := cur.HostEmail
	switch event {
	case EventMeetingStarted:
		object["start_time"] = now.Format(zoomTimeLayout)
		s.setRunning(meetingID, now)
	case EventMeetingEnded:
		// As Zoom's: when the instance that ended started (its scheduled
		// start if the simulator did not see it start).
		object["start_time"] = cur.startTime()
		if !cur.running.IsZero() {
			object["start_time"] = cur.running.UTC().Format(zoomTimeLayout)
		}
		object["end_time"] = now.Format(zoomTimeLayout)
		s.setRunning(meetingID, time.Time{})
	case EventMeetingParticipantJoined, EventMeetingParticipantLeft:
		if p == nil {
			return nil, fmt.Errorf("zoomtest: %s needs a participant", event)
		}
		part := map[string]any{
			"user_id": p.UserID, "user_name": p.UserName, "id": p.ID, "email": p.Email,
			"participant_uuid": s.randString(16),
		}
		if event == EventMeetingParticipantJoined {
			part["join_time"] = now.Format(zoomTimeLayout)
		} else {
			part["leave_time"] = now.Format(zoomTimeLayout)
			part["leave_reason"] = "left the meeting. Reason : left the meeting"
		}
		object["participant"] = part
	case EventMeetingDeleted:
		object["id"] = cur.ID
		payload["operator"] = operator
		payload["operator_id"] = cur.HostID
	case EventMeetingUpdated:
		newer := map[string]any{"id": cur.ID, "uuid": cur.UUID}
		older := map[string]any{"id": cur.ID, "uuid": cur.UUID}
		if hasPrev {
			for k, v := range fieldsOf(&cur) {
				if ov := fieldsOf(&prev)[k]; ov != v {
					newer[k], older[k] = v, ov
				}
			}
		}
		payload = map[string]any{
			"account_id": s.opts.AccountID, "operator": operator, "operator_id": cur.HostID,
			"object": newer, "old_object": older, "time_stamp": now.UnixMilli(),
		}
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownEvent, event)
	}
	return payload, nil
}

func fieldsOf(m *meeting) map[string]any {
	return map[string]any{
		"topic": m.Topic, "type": m.Type, "start_time": m.startTime(), "duration": m.Duration,
		"timezone": m.Timezone, "agenda": m.Agenda,
	}
}

// SendMeetingEvent builds a meeting event with MeetingEvent and sends it
// with SendEvent.
func (s *Server) SendMeetingEvent(ctx context.Context, url, secret, event string, meetingID int64, p *Participant) error {
	payload, err := s.MeetingEvent(event, meetingID, p)
	if err != nil {
		return err
	}
	return s.SendEvent(ctx, url, secret, event, payload)
}

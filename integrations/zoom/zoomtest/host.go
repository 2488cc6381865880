package zoomtest

import (
	"fmt"
	"time"
)

// MoveMeeting changes a meeting's start time, and its duration when
// duration > 0, the way its host does in the Zoom app or web portal rather
// than through the API: no token, no rate limit. The version before the move
// is kept for the old_object of meeting.updated (see MeetingEvent).
func (s *Server) MoveMeeting(id int64, start time.Time, duration time.Duration) error {
	if start.IsZero() {
		return fmt.Errorf("zoomtest: move meeting %d: no start time", id)
	}
	if duration < 0 || duration > 7*24*time.Hour || duration%time.Minute != 0 {
		return fmt.Errorf("zoomtest: move meeting %d: duration %s is not whole minutes up to a week", id, duration)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.meetings[id]
	if !ok {
		return fmt.Errorf("%w: %d", ErrNoMeeting, id)
	}
	s.previous[id] = *cur
	cur.start = start.UTC().Truncate(time.Second)
	if duration > 0 {
		cur.Duration = int(duration / time.Minute)
	}
	return nil
}

// DeleteMeeting deletes a meeting the way its host does in the Zoom app and
// returns the payload of the meeting.deleted event Zoom sends for it, built
// while the meeting still existed.
func (s *Server) DeleteMeeting(id int64) (map[string]any, error) {
	payload, err := s.MeetingEvent(EventMeetingDeleted, id, nil)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	_, ok := s.meetings[id]
	delete(s.meetings, id)
	delete(s.previous, id)
	s.mu.Unlock()
	if !ok { // deleted meanwhile
		return nil, fmt.Errorf("%w: %d", ErrNoMeeting, id)
	}
	return payload, nil
}

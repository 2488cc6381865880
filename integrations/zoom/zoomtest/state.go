package zoomtest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// stateVersion is the version of the format written by MarshalState.
const stateVersion = 1

// stateJSON is the saved state. Its types are independent of the ones the
// simulator works with so that the format only changes on purpose.
type stateJSON struct {
	Version  int                  `json:"version"`
	Tokens   map[string]time.Time `json:"tokens"`   // access token → expiry
	Users    map[string]string    `json:"users"`    // id or lower-case email → user id
	Meetings []meetingState       `json:"meetings"` // by id
	Previous []meetingState       `json:"previous"` // before the last update, by id
}

// meetingState is a saved meeting. Settings keeps the shape of Zoom's
// settings object.
type meetingState struct {
	ID        int64     `json:"id"`
	UUID      string    `json:"uuid"`
	HostID    string    `json:"host_id"`
	HostEmail string    `json:"host_email,omitempty"`
	Topic     string    `json:"topic"`
	Type      int       `json:"type"`
	Start     time.Time `json:"start,omitzero"`
	Duration  int       `json:"duration"`
	Timezone  string    `json:"timezone,omitempty"`
	Agenda    string    `json:"agenda,omitempty"`
	Password  string    `json:"password,omitempty"`
	Created   time.Time `json:"created"`
	Settings  settings  `json:"settings"`
	JoinURL   string    `json:"join_url"`
	StartURL  string    `json:"start_url"`
	Running   time.Time `json:"running,omitzero"`
}

func saveMeeting(m *meeting) meetingState {
	return meetingState{
		ID: m.ID, UUID: m.UUID, HostID: m.HostID, HostEmail: m.HostEmail, Topic: m.Topic, Type: m.Type,
		Start: m.start, Duration: m.Duration, Timezone: m.Timezone, Agenda: m.Agenda, Password: m.Password,
		Created: m.created, Settings: m.Settings, JoinURL: m.JoinURL, StartURL: m.StartURL, Running: m.running,
	}
}

func (ms *meetingState) meeting() meeting {
	return meeting{
		ID: ms.ID, UUID: ms.UUID, HostID: ms.HostID, HostEmail: ms.HostEmail, Topic: ms.Topic, Type: ms.Type,
		start: ms.Start, Duration: ms.Duration, Timezone: ms.Timezone, Agenda: ms.Agenda, Password: ms.Password,
		created: ms.Created, Settings: ms.Settings, JoinURL: ms.JoinURL, StartURL: ms.StartURL, running: ms.Running,
	}
}

// MarshalState returns everything the simulator holds that a client would
// miss after a restart, as JSON: the access tokens with their expiry, the
// users, the meetings and the version of each meeting before its last
// update (meeting.updated's old_object). Options, faults, rate-limit windows
// and counters are not part of it. The JSON carries "version": 1.
func (s *Server) MarshalState() ([]byte, error) {
	s.mu.Lock()
	st := stateJSON{
		Version:  stateVersion,
		Tokens:   make(map[string]time.Time, len(s.tokens)),
		Users:    make(map[string]string, len(s.users)),
		Meetings: make([]meetingState, 0, len(s.meetings)),
		Previous: make([]meetingState, 0, len(s.previous)),
	}
	for tok, exp := range s.tokens {
		st.Tokens[tok] = exp
	}
	for k, id := range s.users {
		st.Users[k] = id
	}
	for _, m := range s.meetings {
		st.Meetings = append(st.Meetings, saveMeeting(m))
	}
	for _, m := range s.previous {
		st.Previous = append(st.Previous, saveMeeting(&m))
	}
	s.mu.Unlock()
	for _, ms := range [][]meetingState{st.Meetings, st.Previous} {
		sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("zoomtest: marshal state: %w", err)
	}
	return b, nil
}

// UnmarshalState replaces the simulator's state with one MarshalState
// returned, possibly by another Server: tokens, users, meetings and previous
// meeting versions. The users of s's Options stay known. On error (malformed
// JSON, a version other than 1, an inconsistent state) s is left unchanged.
func (s *Server) UnmarshalState(b []byte) error {
	var st stateJSON
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("zoomtest: unmarshal state: %w", err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("zoomtest: unmarshal state: unsupported version %d, want %d", st.Version, stateVersion)
	}
	tokens := make(map[string]time.Time, len(st.Tokens))
	for tok, exp := range st.Tokens {
		tokens[tok] = exp
	}
	users := make(map[string]string, len(st.Users)+2*len(s.opts.Users))
	for k, id := range st.Users {
		users[k] = id
	}
	for _, u := range s.opts.Users {
		users[u.ID] = u.ID
		if u.Email != "" {
			users[strings.ToLower(u.Email)] = u.ID
		}
	}
	meetings := make(map[int64]*meeting, len(st.Meetings))
	for i := range st.Meetings {
		m := st.Meetings[i].meeting()
		if _, dup := meetings[m.ID]; dup {
			return fmt.Errorf("zoomtest: unmarshal state: meeting %d appears twice", m.ID)
		}
		meetings[m.ID] = &m
	}
	previous := make(map[int64]meeting, len(st.Previous))
	for i := range st.Previous {
		m := st.Previous[i].meeting()
		if _, ok := meetings[m.ID]; !ok {
			return fmt.Errorf("zoomtest: unmarshal state: previous version of meeting %d, which does not exist", m.ID)
		}
		if _, dup := previous[m.ID]; dup {
			return fmt.Errorf("zoomtest: unmarshal state: previous version of meeting %d appears twice", m.ID)
		}
		previous[m.ID] = m
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens, s.users, s.meetings, s.previous = tokens, users, meetings, previous
	return nil
}

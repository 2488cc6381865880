package zoomtest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Route patterns of the simulator, as used by Requests and Fault.Route.
const (
	RouteToken         = "POST /oauth/token"
	RouteCreateMeeting = "POST /v2/users/{userId}/meetings"
	RouteListMeetings  = "GET /v2/users/{userId}/meetings"
	RouteGetMeeting    = "GET /v2/meetings/{meetingId}"
	RouteUpdateMeeting = "PATCH /v2/meetings/{meetingId}"
	RouteDeleteMeeting = "DELETE /v2/meetings/{meetingId}"
)

// Zoom meeting types.
const (
	typeInstant            = 1
	typeScheduled          = 2
	typeRecurringNoFixed   = 3
	typeRecurringFixedTime = 8
)

const zoomTimeLayout = "2006-01-02T15:04:05Z"

type settings struct {
	HostVideo        bool   `json:"host_video"`
	ParticipantVideo bool   `json:"participant_video"`
	JoinBeforeHost   bool   `json:"join_before_host"`
	JBHTime          int    `json:"jbh_time"`
	MuteUponEntry    bool   `json:"mute_upon_entry"`
	WaitingRoom      bool   `json:"waiting_room"`
	AutoRecording    string `json:"auto_recording"`
	ApprovalType     int    `json:"approval_type"`
	Audio            string `json:"audio"`
}

// meeting is the stored state of a meeting.
type meeting struct {
	ID        int64
	UUID      string
	HostID    string
	HostEmail string
	Topic     string
	Type      int
	start     time.Time // zero for instant / no-fixed-time meetings
	Duration  int       // minutes
	Timezone  string
	Agenda    string
	Password  string
	created   time.Time
	Settings  settings
	JoinURL   string
	StartURL  string
	// running is when the meeting's current instance started (a
	// meeting.started event); zero when it is not running.
	running time.Time
}

// meetingJSON is Zoom's meeting object (Get a meeting / Create a meeting).
type meetingJSON struct {
	UUID        string   `json:"uuid"`
	ID          int64    `json:"id"`
	HostID      string   `json:"host_id"`
	HostEmail   string   `json:"host_email,omitempty"`
	Topic       string   `json:"topic"`
	Type        int      `json:"type"`
	Status      string   `json:"status"`
	StartTime   string   `json:"start_time,omitempty"`
	Duration    int      `json:"duration"`
	Timezone    string   `json:"timezone,omitempty"`
	Agenda      string   `json:"agenda,omitempty"`
	CreatedAt   string   `json:"created_at"`
	StartURL    string   `json:"start_url"`
	JoinURL     string   `json:"join_url"`
	Password    string   `json:"password,omitempty"`
	Settings    settings `json:"settings"`
	PreSchedule bool     `json:"pre_schedule"`
}

// listItemJSON is one entry of List meetings.
type listItemJSON struct {
	UUID      string `json:"uuid"`
	ID        int64  `json:"id"`
	HostID    string `json:"host_id"`
	Topic     string `json:"topic"`
	Type      int    `json:"type"`
	StartTime string `json:"start_time,omitempty"`
	Duration  int    `json:"duration"`
	Timezone  string `json:"timezone,omitempty"`
	Agenda    string `json:"agenda,omitempty"`
	CreatedAt string `json:"created_at"`
	JoinURL   string `json:"join_url"`
}

func (m *meeting) startTime() string {
	if m.start.IsZero() {
		return ""
	}
	return m.start.UTC().Format(zoomTimeLayout)
}

func (m *meeting) status(now time.Time) string {
	if !m.start.IsZero() && !now.Before(m.start) && now.Before(m.end()) {
		return "started"
	}
	return "waiting"
}

func (m *meeting) end() time.Time { return m.start.Add(time.Duration(m.Duration) * time.Minute) }

func (m *meeting) json(now time.Time) meetingJSON {
	return meetingJSON{
		UUID: m.UUID, ID: m.ID, HostID: m.HostID, HostEmail: m.HostEmail, Topic: m.Topic, Type: m.Type,
		Status: m.status(now), StartTime: m.startTime(), Duration: m.Duration, Timezone: m.Timezone,
		Agenda: m.Agenda, CreatedAt: m.created.UTC().Format(zoomTimeLayout), StartURL: m.StartURL,
		JoinURL: m.JoinURL, Password: m.Password, Settings: m.Settings,
	}
}

// listItem is the meeting as List meetings shows it: its agenda cut to
// listAgendaLength characters, as Zoom documents for that endpoint ("The
// length of agenda gets truncated to 250 characters when you list all
// meetings for a user"); Get a meeting returns it whole.
func (m *meeting) listItem() listItemJSON {
	agenda := m.Agenda
	if r := []rune(agenda); len(r) > listAgendaLength {
		agenda = string(r[:listAgendaLength])
	}
	return listItemJSON{
		UUID: m.UUID, ID: m.ID, HostID: m.HostID, Topic: m.Topic, Type: m.Type, StartTime: m.startTime(),
		Duration: m.Duration, Timezone: m.Timezone, Agenda: agenda,
		CreatedAt: m.created.UTC().Format(zoomTimeLayout), JoinURL: m.JoinURL,
	}
}

// meetingInput is the request body of create (all fields) and update
// (fields present are changed).
type meetingInput struct {
	Topic     *string        `json:"topic"`
	Type      *int           `json:"type"`
	StartTime *string        `json:"start_time"`
	Duration  *int           `json:"duration"`
	Timezone  *string        `json:"timezone"`
	Agenda    *string        `json:"agenda"`
	Password  *string        `json:"password"`
	Settings  *settingsInput `json:"settings"`
}

type settingsInput struct {
	HostVideo        *bool   `json:"host_video"`
	ParticipantVideo *bool   `json:"participant_video"`
	JoinBeforeHost   *bool   `json:"join_before_host"`
	JBHTime          *int    `json:"jbh_time"`
	MuteUponEntry    *bool   `json:"mute_upon_entry"`
	WaitingRoom      *bool   `json:"waiting_room"`
	AutoRecording    *string `json:"auto_recording"`
	ApprovalType     *int    `json:"approval_type"`
	Audio            *string `json:"audio"`
}

// apply validates in and applies it to m; create requires the fields a
// scheduled meeting needs.
func (in *meetingInput) apply(m *meeting, create bool) []fieldError {
	var errs []fieldError
	bad := func(field string) { errs = append(errs, fieldError{Field: field, Message: "Invalid field."}) }
	if in.Type != nil {
		switch *in.Type {
		case typeInstant, typeScheduled, typeRecurringNoFixed, typeRecurringFixedTime:
			m.Type = *in.Type
		default:
			bad("type")
		}
	}
	if in.Topic != nil {
		if len([]rune(*in.Topic)) > maxTopicLength {
			bad("topic")
		} else {
			m.Topic = *in.Topic
		}
	}
	if in.Agenda != nil {
		if len([]rune(*in.Agenda)) > maxAgendaLength {
			bad("agenda")
		} else {
			m.Agenda = *in.Agenda
		}
	}
	if in.Timezone != nil {
		if *in.Timezone != "" {
			if _, err := time.LoadLocation(*in.Timezone); err != nil {
				bad("timezone")
			} else {
				m.Timezone = *in.Timezone
			}
		}
	}
	if in.Duration != nil {
		if *in.Duration < 0 || *in.Duration > 24*60*7 {
			bad("duration")
		} else {
			m.Duration = *in.Duration
		}
	}
	if in.StartTime != nil {
		t, ok := parseStart(*in.StartTime, m.Timezone)
		if !ok {
			bad("start_time")
		} else {
			m.start = t
		}
	}
	if in.Password != nil {
		if len(*in.Password) > 10 {
			bad("password")
		} else {
			m.Password = *in.Password
		}
	}
	if st := in.Settings; st != nil {
		setBool := func(dst *bool, src *bool) {
			if src != nil {
				*dst = *src
			}
		}
		setBool(&m.Settings.HostVideo, st.HostVideo)
		setBool(&m.Settings.ParticipantVideo, st.ParticipantVideo)
		setBool(&m.Settings.JoinBeforeHost, st.JoinBeforeHost)
		setBool(&m.Settings.MuteUponEntry, st.MuteUponEntry)
		setBool(&m.Settings.WaitingRoom, st.WaitingRoom)
		if v := st.AutoRecording; v != nil {
			switch *v {
			case "local", "cloud", "none":
				m.Settings.AutoRecording = *v
			default:
				bad("settings.auto_recording")
			}
		}
		if v := st.ApprovalType; v != nil {
			if *v < 0 || *v > 2 {
				bad("settings.approval_type")
			} else {
				m.Settings.ApprovalType = *v
			}
		}
		if v := st.JBHTime; v != nil {
			switch *v {
			case 0, 5, 10, 15:
				m.Settings.JBHTime = *v
			default:
				bad("settings.jbh_time")
			}
		}
		if v := st.Audio; v != nil {
			switch *v {
			case "both", "telephony", "voip", "thirdParty":
				m.Settings.Audio = *v
			default:
				bad("settings.audio")
			}
		}
	}
	if create && (m.Type == typeScheduled || m.Type == typeRecurringFixedTime) {
		if in.StartTime == nil {
			bad("start_time")
		}
		if in.Duration == nil {
			bad("duration")
		}
	}
	return errs
}

// parseStart parses Zoom's start_time: "yyyy-MM-ddTHH:mm:ssZ" is GMT,
// without the Z it is local time in the meeting's timezone.
func parseStart(v, tz string) (time.Time, bool) {
	if t, err := time.Parse(zoomTimeLayout, v); err == nil {
		return t, true
	}
	loc := time.UTC
	if tz != "" {
		if l, err := time.LoadLocation(tz); err == nil {
			loc = l
		}
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04:05", v, loc); err == nil {
		return t.UTC(), true
	}
	return time.Time{}, false
}

// resolveUser maps a path userId to the canonical user id, answering 404
// code 1001 for users the account does not have.
func (s *Server) resolveUser(w http.ResponseWriter, userID string) (id, email string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.opts.Users) == 0 {
		return userID, "", true
	}
	c, found := s.users[userID]
	if !found {
		c, found = s.users[strings.ToLower(userID)]
	}
	if !found {
		writeError(w, http.StatusNotFound, 1001, fmt.Sprintf("User does not exist: %s.", userID))
		return "", "", false
	}
	for _, u := range s.opts.Users {
		if u.ID == c {
			email = u.Email
		}
	}
	return c, email, true
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	userID, email, ok := s.resolveUser(w, r.PathValue("userId"))
	if !ok {
		return
	}
	var in meetingInput
	if !decodeBody(w, r, &in) {
		return
	}
	now := s.opts.Now()
	m := &meeting{
		HostID: userID, HostEmail: email, Type: typeScheduled, Topic: "Zoom meeting", Duration: 60,
		Timezone: "UTC", created: now,
		Settings: settings{HostVideo: false, ParticipantVideo: false, MuteUponEntry: false, WaitingRoom: false,
			AutoRecording: "none", ApprovalType: 2, Audio: "voip"},
	}
	// Apply the timezone first so a local start_time is read in it.
	if in.Timezone != nil {
		if _, err := time.LoadLocation(*in.Timezone); err == nil && *in.Timezone != "" {
			m.Timezone = *in.Timezone
		}
	}
	if errs := in.apply(m, true); len(errs) > 0 {
		writeValidation(w, errs...)
		return
	}
	if !s.dailyLimit(w, userID) {
		return
	}
	if m.Password == "" {
		m.Password = strconv.Itoa(100000 + s.intN(900000))
	}
	s.mu.Lock()
	for {
		m.ID = 80000000000 + s.rnd.Int64N(10000000000)
		if _, taken := s.meetings[m.ID]; !taken {
			break
		}
	}
	s.mu.Unlock()
	m.UUID = s.randString(16)[:22] + "=="
	pwd := s.randString(24)
	m.JoinURL = fmt.Sprintf("%s/j/%d?pwd=%s", s.opts.JoinHost, m.ID, pwd)
	m.StartURL = fmt.Sprintf("%s/s/%d?zak=%s", s.opts.JoinHost, m.ID, s.randString(48))
	s.mu.Lock()
	s.meetings[m.ID] = m
	out := m.json(now)
	s.mu.Unlock()
	w.Header().Set("Location", fmt.Sprintf("https://api.zoom.us/v2/meetings/%d", m.ID))
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) intN(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rnd.IntN(n)
}

// lookup finds a meeting or answers 404 code 3001. The caller holds no lock.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (int64, bool) {
	raw := r.PathValue("meetingId")
	id, err := strconv.ParseInt(raw, 10, 64)
	s.mu.Lock()
	_, found := s.meetings[id]
	s.mu.Unlock()
	if err != nil || !found {
		writeError(w, http.StatusNotFound, 3001, fmt.Sprintf("Meeting does not exist: %s.", raw))
		return 0, false
	}
	return id, true
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	id, ok := s.lookup(w, r)
	if !ok {
		return
	}
	now := s.opts.Now()
	s.mu.Lock()
	m, found := s.meetings[id]
	var out meetingJSON
	if found {
		out = m.json(now)
	}
	s.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, 3001, fmt.Sprintf("Meeting does not exist: %d.", id))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request) {
	id, ok := s.lookup(w, r)
	if !ok {
		return
	}
	var in meetingInput
	if !decodeBody(w, r, &in) {
		return
	}
	s.mu.Lock()
	m, found := s.meetings[id]
	var draft meeting
	if found {
		draft = *m
	}
	s.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, 3001, fmt.Sprintf("Meeting does not exist: %d.", id))
		return
	}
	if in.Timezone != nil && *in.Timezone != "" {
		if _, err := time.LoadLocation(*in.Timezone); err == nil {
			draft.Timezone = *in.Timezone
		}
	}
	if errs := in.apply(&draft, false); len(errs) > 0 {
		writeValidation(w, errs...)
		return
	}
	if !s.dailyLimit(w, draft.HostID) {
		return
	}
	s.mu.Lock()
	if cur, still := s.meetings[id]; still {
		s.previous[id] = *cur
		*cur = draft
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	if payload, err := s.MeetingEvent(EventMeetingUpdated, id, nil); err == nil {
		s.notify(EventMeetingUpdated, payload)
	}
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	id, ok := s.lookup(w, r)
	if !ok {
		return
	}
	payload, _ := s.MeetingEvent(EventMeetingDeleted, id, nil)
	s.mu.Lock()
	_, found := s.meetings[id]
	delete(s.meetings, id)
	delete(s.previous, id)
	s.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, 3001, fmt.Sprintf("Meeting does not exist: %d.", id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
	if payload != nil {
		s.notify(EventMeetingDeleted, payload)
	}
}

type listJSON struct {
	PageSize      int            `json:"page_size"`
	TotalRecords  int            `json:"total_records"`
	NextPageToken string         `json:"next_page_token"`
	Meetings      []listItemJSON `json:"meetings"`
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	userID, _, ok := s.resolveUser(w, r.PathValue("userId"))
	if !ok {
		return
	}
	q := r.URL.Query()
	typ := q.Get("type")
	if typ == "" {
		typ = "scheduled"
	}
	pageSize := defaultPageSize
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeValidation(w, fieldError{Field: "page_size", Message: "Invalid field."})
			return
		}
		pageSize = min(n, maxPageSize)
	}
	offset := 0
	if tok := q.Get("next_page_token"); tok != "" {
		n, valid := decodePageToken(tok, userID, typ)
		if !valid {
			writeError(w, http.StatusBadRequest, 300, "The next page token is invalid or expired.")
			return
		}
		offset = n
	}
	now := s.opts.Now()
	s.mu.Lock()
	all := s.sortedMeetings(userID)
	s.mu.Unlock()
	var sel []meeting
	for _, m := range all {
		fixed := !m.start.IsZero()
		var keep bool
		switch typ {
		case "scheduled":
			keep = m.Type != typeInstant
		case "live":
			keep = fixed && !now.Before(m.start) && now.Before(m.end())
		case "upcoming", "upcoming_meetings":
			keep = !fixed || now.Before(m.end())
		case "previous_meetings":
			keep = fixed && !now.Before(m.end())
		default:
			writeValidation(w, fieldError{Field: "type", Message: "Invalid field."})
			return
		}
		if keep {
			sel = append(sel, m)
		}
	}
	out := listJSON{PageSize: pageSize, TotalRecords: len(sel), Meetings: []listItemJSON{}}
	end := min(offset+pageSize, len(sel))
	for i := offset; i < end; i++ {
		out.Meetings = append(out.Meetings, sel[i].listItem())
	}
	if end < len(sel) {
		out.NextPageToken = encodePageToken(end, userID, typ)
	}
	writeJSON(w, http.StatusOK, out)
}

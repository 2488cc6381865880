package gcaltest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// stateVersion is the version of the format written by MarshalState.
const stateVersion = 1

// stateJSON is the saved state. Its types are independent of the ones the
// simulator works with so that the format only changes on purpose.
type stateJSON struct {
	Version   int                     `json:"version"`
	Serial    int64                   `json:"serial"`    // last serial issued (etags, sync tokens)
	Users     []userJSON              `json:"users"`     // in the order the simulator knows them
	Calendars map[string]calendarJSON `json:"calendars"` // by calendar id
	Access    map[string]accessJSON   `json:"accessTokens"`
	Grants    map[string]grantJSON    `json:"grants"` // by refresh token
	Channels  map[string]channelJSON  `json:"channels"`
}

type userJSON struct {
	Email     string   `json:"email"`
	Calendars []string `json:"calendars"` // primary first
	// Roles are the access roles on calendars of others shared with the user.
	Roles map[string]string `json:"roles,omitempty"`
}

type calendarJSON struct {
	Summary    string               `json:"summary"`
	TimeZone   string               `json:"timeZone"`
	Owner      string               `json:"owner"`
	Primary    bool                 `json:"primary,omitempty"`
	ResourceID string               `json:"resourceId"`
	MinSync    int64                `json:"minSync,omitempty"`
	Events     map[string]eventJSON `json:"events"` // cancelled ones included
}

// eventJSON is a stored event; whether it is cancelled follows from the
// status in Data.
type eventJSON struct {
	Seq  int64           `json:"seq"`
	Data json.RawMessage `json:"data"` // the event resource as the API returns it
}

type accessJSON struct {
	User    string    `json:"user"`
	Scopes  []string  `json:"scopes"`
	Expires time.Time `json:"expires"`
	Grant   string    `json:"refreshToken,omitempty"` // the grant it was minted from
	Revoked bool      `json:"revoked,omitempty"`
}

type grantJSON struct {
	ClientID string   `json:"clientId"`
	User     string   `json:"user"`
	Scopes   []string `json:"scopes"`
	Revoked  bool     `json:"revoked,omitempty"`
}

type channelJSON struct {
	ResourceID  string    `json:"resourceId"`
	ResourceURI string    `json:"resourceUri"`
	CalendarID  string    `json:"calendarId"`
	User        string    `json:"user"`
	Address     string    `json:"address"`
	Token       string    `json:"token,omitempty"`
	Expiration  time.Time `json:"expiration"`
	Messages    int64     `json:"messages"`
}

// MarshalState returns everything the simulator holds that a client or user
// would miss after a restart, as JSON: users and their calendars, events
// (deleted ones included) with what backs incremental sync, access tokens,
// refresh-token grants and push channels. Options, registered clients,
// pending authorization codes, faults, DenyConsent and Stats are not part of
// it. The JSON carries "version": 1.
func (s *Server) MarshalState() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock() // event data is marshaled in place, under the lock
	st := stateJSON{
		Version:   stateVersion,
		Serial:    s.serial,
		Users:     make([]userJSON, 0, len(s.userOrder)),
		Calendars: make(map[string]calendarJSON, len(s.calendars)),
		Access:    make(map[string]accessJSON, len(s.access)),
		Grants:    make(map[string]grantJSON, len(s.refresh)),
		Channels:  make(map[string]channelJSON, len(s.channels)),
	}
	for _, email := range s.userOrder {
		u := s.users[email]
		st.Users = append(st.Users, userJSON{Email: u.email, Calendars: u.calendars, Roles: u.roles})
	}
	for id, cs := range s.calendars {
		cj := calendarJSON{
			Summary: cs.info.Summary, TimeZone: cs.info.TimeZone, Owner: cs.owner, Primary: cs.primary,
			ResourceID: cs.resourceID, MinSync: cs.minSync, Events: make(map[string]eventJSON, len(cs.events)),
		}
		for eid, ev := range cs.events {
			data, err := json.Marshal(ev.data)
			if err != nil {
				return nil, fmt.Errorf("gcaltest: marshal state: event %q: %w", eid, err)
			}
			cj.Events[eid] = eventJSON{Seq: ev.seq, Data: data}
		}
		st.Calendars[id] = cj
	}
	for tok, t := range s.access {
		aj := accessJSON{User: t.user, Scopes: t.scopes, Expires: t.expires, Revoked: t.revoked}
		if t.grant != nil {
			aj.Grant = t.grant.refreshToken
		}
		st.Access[tok] = aj
	}
	for rt, g := range s.refresh {
		st.Grants[rt] = grantJSON{ClientID: g.clientID, User: g.user, Scopes: g.scopes, Revoked: g.revoked}
	}
	for id, ch := range s.channels {
		st.Channels[id] = channelJSON{
			ResourceID: ch.resourceID, ResourceURI: ch.resourceURI, CalendarID: ch.calendarID, User: ch.user,
			Address: ch.address, Token: ch.token, Expiration: ch.expiration, Messages: ch.messages,
		}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("gcaltest: marshal state: %w", err)
	}
	return b, nil
}

// UnmarshalState replaces the simulator's state with one MarshalState
// returned, possibly by another Server: the users and calendars of the state
// replace those made from Options.Users, and pending authorization codes are
// dropped. Options, faults, DenyConsent and Stats are kept. On error
// (malformed JSON, a version other than 1, an inconsistent state) s is left
// unchanged.
func (s *Server) UnmarshalState(b []byte) error {
	var st stateJSON
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("gcaltest: unmarshal state: %w", err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("gcaltest: unmarshal state: unsupported version %d, want %d", st.Version, stateVersion)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("gcaltest: unmarshal state: "+format, args...)
	}
	if len(st.Users) == 0 {
		return fail("no users")
	}

	calendars := make(map[string]*calendarState, len(st.Calendars))
	for id, cj := range st.Calendars {
		cs := &calendarState{
			info: Calendar{ID: id, Summary: cj.Summary, TimeZone: cj.TimeZone}, owner: cj.Owner, primary: cj.Primary,
			resourceID: cj.ResourceID, minSync: cj.MinSync, events: make(map[string]*storedEvent, len(cj.Events)),
		}
		if cj.MinSync > st.Serial {
			return fail("calendar %q: minSync beyond serial", id)
		}
		for eid, ej := range cj.Events {
			var data map[string]any
			d := json.NewDecoder(bytes.NewReader(ej.Data))
			d.UseNumber() // as the API handlers store numbers
			if err := d.Decode(&data); err != nil || data == nil || data["id"] != eid || ej.Seq > st.Serial {
				return fail("calendar %q: bad event %q", id, eid)
			}
			cs.events[eid] = &storedEvent{data: data, seq: ej.Seq, cancelled: data["status"] == "cancelled"}
		}
		calendars[id] = cs
	}

	users := make(map[string]*user, len(st.Users))
	order := make([]string, 0, len(st.Users))
	for _, us := range st.Users {
		if len(us.Calendars) == 0 {
			return fail("user %q has no calendar", us.Email)
		}
		for _, id := range us.Calendars {
			if calendars[id] == nil {
				return fail("user %q: unknown calendar %q", us.Email, id)
			}
		}
		roles := make(map[string]string, len(us.Roles))
		for id, role := range us.Roles {
			if calendars[id] == nil || !slices.Contains(us.Calendars, id) {
				return fail("user %q: role on unknown calendar %q", us.Email, id)
			}
			roles[id] = role
		}
		users[us.Email] = &user{email: us.Email, calendars: append([]string(nil), us.Calendars...), roles: roles}
		order = append(order, us.Email)
	}

	grants := make(map[string]*grant, len(st.Grants))
	for rt, gj := range st.Grants {
		if users[gj.User] == nil {
			return fail("grant of unknown user %q", gj.User)
		}
		grants[rt] = &grant{refreshToken: rt, clientID: gj.ClientID, user: gj.User, scopes: gj.Scopes, revoked: gj.Revoked}
	}
	access := make(map[string]*accessToken, len(st.Access))
	for tok, aj := range st.Access {
		if users[aj.User] == nil {
			return fail("access token of unknown user %q", aj.User)
		}
		t := &accessToken{user: aj.User, scopes: aj.Scopes, expires: aj.Expires, revoked: aj.Revoked}
		if aj.Grant != "" {
			if t.grant = grants[aj.Grant]; t.grant == nil {
				return fail("access token of an unknown grant")
			}
		}
		access[tok] = t
	}
	channels := make(map[string]*channel, len(st.Channels))
	for id, cj := range st.Channels {
		channels[id] = &channel{
			id: id, resourceID: cj.ResourceID, resourceURI: cj.ResourceURI, calendarID: cj.CalendarID, user: cj.User,
			address: cj.Address, token: cj.Token, expiration: cj.Expiration, messages: cj.Messages,
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.serial = st.Serial
	s.users, s.userOrder, s.calendars = users, order, calendars
	s.access, s.refresh, s.channels = access, grants, channels
	s.codes = map[string]*authCode{}
	return nil
}

package caldavtest

import (
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	webdavcaldav "github.com/emersion/go-webdav/caldav"
)

// stateVersion is the version of the JSON MarshalState writes.
const stateVersion = 1

// stateSnapshot is the JSON form of a Server's state.
type stateSnapshot struct {
	Version   int                `json:"version"`
	Epoch     int                `json:"epoch"`
	Calendars []calendarSnapshot `json:"calendars"`
}

// calendarSnapshot is one calendar collection. Path is both the key in
// Server.cals and the collection's webdavcaldav.Calendar.Path.
type calendarSnapshot struct {
	Path                  string           `json:"path"`
	Name                  string           `json:"name"`
	Description           string           `json:"description"`
	MaxResourceSize       int64            `json:"maxResourceSize"`
	SupportedComponentSet []string         `json:"supportedComponentSet"`
	Version               int64            `json:"version"`
	Objects               []objectSnapshot `json:"objects"`
	Deleted               map[string]int64 `json:"deleted"` // object path → version of deletion
}

// objectSnapshot is one calendar object resource. Data is []byte so that
// encoding/json stores it as base64 and it round-trips byte for byte, even
// when it is not valid UTF-8.
type objectSnapshot struct {
	Path    string    `json:"path"`
	Data    []byte    `json:"data"`
	UID     string    `json:"uid"`
	ETag    string    `json:"etag"`
	ModTime time.Time `json:"modTime"`
	Version int64     `json:"version"`
}

// MarshalState returns everything the server holds — its calendars with
// their properties, objects and deletion log, and the sync-token epoch — as
// JSON, for UnmarshalState to restore in this or a later process. Options
// (users and passwords) are not part of the state. The output is
// deterministic: calendars and objects are sorted by path.
func (s *Server) MarshalState() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := stateSnapshot{Version: stateVersion, Epoch: s.epoch, Calendars: make([]calendarSnapshot, 0, len(s.cals))}
	for p, c := range s.cals {
		cs := calendarSnapshot{
			Path:                  p,
			Name:                  c.info.Name,
			Description:           c.info.Description,
			MaxResourceSize:       c.info.MaxResourceSize,
			SupportedComponentSet: c.info.SupportedComponentSet,
			Version:               c.version,
			Objects:               make([]objectSnapshot, 0, len(c.objects)),
			Deleted:               c.deleted,
		}
		for _, o := range c.objects {
			cs.Objects = append(cs.Objects, objectSnapshot{
				Path: o.path, Data: o.data, UID: o.uid, ETag: o.etag, ModTime: o.modTime, Version: o.version,
			})
		}
		sort.Slice(cs.Objects, func(i, j int) bool { return cs.Objects[i].Path < cs.Objects[j].Path })
		st.Calendars = append(st.Calendars, cs)
	}
	sort.Slice(st.Calendars, func(i, j int) bool { return st.Calendars[i].Path < st.Calendars[j].Path })
	return json.Marshal(st)
}

// UnmarshalState replaces the server's state with one MarshalState returned,
// possibly by another Server or process. Sync tokens and etags handed out
// before the state was saved stay valid. The calendars are replaced
// wholesale: a user of Options with no calendar in the state has none
// afterwards (CreateCalendar adds one). On error (malformed JSON, a version
// other than 1, an inconsistent state) the server's state is left unchanged.
func (s *Server) UnmarshalState(b []byte) error {
	var st stateSnapshot
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("caldavtest: decode state: %w", err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("caldavtest: state version %d, want %d", st.Version, stateVersion)
	}
	cals := make(map[string]*memCalendar, len(st.Calendars))
	for _, cs := range st.Calendars {
		if !strings.HasPrefix(cs.Path, "/") || !strings.HasSuffix(cs.Path, "/") {
			return fmt.Errorf("caldavtest: state: bad calendar path %q", cs.Path)
		}
		if _, dup := cals[cs.Path]; dup {
			return fmt.Errorf("caldavtest: state: calendar %q twice", cs.Path)
		}
		c := &memCalendar{
			info: webdavcaldav.Calendar{
				Path:                  cs.Path,
				Name:                  cs.Name,
				Description:           cs.Description,
				MaxResourceSize:       cs.MaxResourceSize,
				SupportedComponentSet: cs.SupportedComponentSet,
			},
			version: cs.Version,
			objects: make(map[string]*memObject, len(cs.Objects)),
			deleted: make(map[string]int64, len(cs.Deleted)),
		}
		for _, o := range cs.Objects {
			if path.Dir(o.Path)+"/" != cs.Path {
				return fmt.Errorf("caldavtest: state: object %q is not in calendar %q", o.Path, cs.Path)
			}
			if _, dup := c.objects[o.Path]; dup {
				return fmt.Errorf("caldavtest: state: object %q twice", o.Path)
			}
			c.objects[o.Path] = &memObject{
				path: o.Path, data: o.Data, uid: o.UID, etag: o.ETag, modTime: o.ModTime, version: o.Version,
			}
		}
		for p, v := range cs.Deleted {
			c.deleted[p] = v
		}
		cals[cs.Path] = c
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch = st.Epoch
	s.cals = cals
	return nil
}

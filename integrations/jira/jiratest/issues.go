package jiratest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// jiraTime is the timestamp layout of Jira REST responses.
const jiraTime = "2006-01-02T15:04:05.000-0700"

// maxBody caps request bodies, like Jira's own limits (generous here).
const maxBody = 1 << 20

type issue struct {
	id, key     string
	project     Project
	itype       IssueType
	summary     string
	description json.RawMessage // ADF document, nil when empty
	labels      []string
	status      Status
	custom      map[string]string
	reporter    string // account id
	created     time.Time
	updated     time.Time
	comments    []comment
}

type comment struct {
	id      string
	body    json.RawMessage
	author  string
	created time.Time
}

// Issue is a read-only copy of a simulated issue, for assertions.
type Issue struct {
	ID, Key, ProjectKey, IssueType string
	Summary                        string
	Description                    json.RawMessage // ADF, nil when unset
	Labels                         []string
	Status                         string
	CustomFields                   map[string]string
	ReporterAccountID              string
	Comments                       []Comment
	Created, Updated               time.Time
}

// Comment is a read-only copy of an issue comment.
type Comment struct {
	ID              string
	Body            json.RawMessage // ADF
	AuthorAccountID string
	Created         time.Time
}

func (i *issue) view() Issue {
	v := Issue{
		ID: i.id, Key: i.key, ProjectKey: i.project.Key, IssueType: i.itype.Name,
		Summary: i.summary, Description: slices.Clone(i.description),
		Labels: slices.Clone(i.labels), Status: i.status.Name,
		CustomFields: map[string]string{}, ReporterAccountID: i.reporter,
		Created: i.created, Updated: i.updated,
	}
	for k, val := range i.custom {
		v.CustomFields[k] = val
	}
	for _, c := range i.comments {
		v.Comments = append(v.Comments, Comment{ID: c.id, Body: slices.Clone(c.body), AuthorAccountID: c.author, Created: c.created})
	}
	return v
}

// Issue returns a copy of the issue with the given key or id.
func (s *Server) Issue(keyOrID string) (Issue, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.lookup(keyOrID); i != nil {
		return i.view(), true
	}
	return Issue{}, false
}

// Issues returns copies of all existing issues in creation order.
func (s *Server) Issues() []Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Issue, 0, len(s.issues))
	for _, i := range s.sortedLocked() {
		out = append(out, i.view())
	}
	return out
}

// sortedLocked returns the existing issues in creation (= id) order; s.mu
// held. The slice must not be modified.
func (s *Server) sortedLocked() []*issue { return s.order }

func cmpNumeric(a, b string) int {
	x, _ := strconv.Atoi(a)
	y, _ := strconv.Atoi(b)
	return x - y
}

// lookup finds an issue by key (case-insensitive) or numeric id; s.mu held.
func (s *Server) lookup(keyOrID string) *issue {
	if i, ok := s.byID[keyOrID]; ok {
		return i
	}
	return s.issues[strings.ToUpper(keyOrID)]
}

func notFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, nil, "Issue does not exist or you do not have permission to see it.")
}

// readJSON decodes a JSON object body; it answers 400/415 itself and reports
// false on failure.
func readJSON(w http.ResponseWriter, r *http.Request, v any, strict bool) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, nil, "Unsupported Media Type: expected application/json, got "+strconv.Quote(ct))
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, nil, "Could not read request body.")
		return false
	}
	if len(body) > maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, nil, "Request body too large.")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, nil, "Invalid request payload. Refer to the REST API documentation and try again. ("+err.Error()+")")
		return false
	}
	return true
}

type editRequest struct {
	Fields map[string]json.RawMessage              `json:"fields"`
	Update map[string][]map[string]json.RawMessage `json:"update"`
}

// fieldChange is a validated change to one field.
type fieldChange struct {
	field string
	apply func(i *issue)
}

// parseFields validates the "fields" of a create or edit; it returns the
// changes and Jira's per-field error messages.
func (s *Server) parseFields(fields map[string]json.RawMessage, creating bool) (changes []fieldChange, errs map[string]string) {
	errs = map[string]string{}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range fields {
			if !yield(k) {
				return
			}
		}
	})
	for _, name := range names {
		raw := fields[name]
		switch {
		case name == "project" && creating:
			var ref struct{ ID, Key string }
			_ = json.Unmarshal(raw, &ref)
			p, ok := s.project(ref.ID, ref.Key)
			if !ok {
				errs["project"] = "Specify a valid project ID or key"
				continue
			}
			changes = append(changes, fieldChange{name, func(i *issue) { i.project = p }})
		case name == "issuetype":
			var ref struct{ ID, Name string }
			_ = json.Unmarshal(raw, &ref)
			if ref.ID == "" && ref.Name == "" {
				errs["issuetype"] = "Specify an issue type"
				continue
			}
			t, ok := s.issueType(ref.ID, ref.Name)
			if !ok {
				errs["issuetype"] = "Specify a valid issue type"
				continue
			}
			changes = append(changes, fieldChange{name, func(i *issue) { i.itype = t }})
		case name == "summary":
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				errs["summary"] = "Operation value must be a string"
				continue
			}
			v = strings.TrimSpace(v)
			switch {
			case v == "":
				errs["summary"] = "You must specify a summary of the issue."
			case strings.ContainsAny(v, "\r\n"):
				errs["summary"] = summaryNewlineMessage
			case len([]rune(v)) > 255:
				errs["summary"] = "Summary must be less than 255 characters."
			default:
				changes = append(changes, fieldChange{name, func(i *issue) { i.summary = v }})
			}
		case name == "description":
			if string(bytes.TrimSpace(raw)) == "null" {
				changes = append(changes, fieldChange{name, func(i *issue) { i.description = nil }})
				continue
			}
			if err := validateADF(raw); err != nil {
				errs["description"] = adfErrorMessage
				s.log.Debug("jiratest: invalid ADF", "field", name, "reason", err.Error())
				continue
			}
			doc := compactJSON(raw)
			changes = append(changes, fieldChange{name, func(i *issue) { i.description = doc }})
		case name == "labels":
			var v []string
			if err := json.Unmarshal(raw, &v); err != nil {
				errs["labels"] = "Operation value must be an array of strings"
				continue
			}
			if msg := checkLabels(v); msg != "" {
				errs["labels"] = msg
				continue
			}
			v = dedupe(v)
			changes = append(changes, fieldChange{name, func(i *issue) { i.labels = v }})
		case slices.Contains(s.opts.CustomFields, name):
			if string(bytes.TrimSpace(raw)) == "null" {
				changes = append(changes, fieldChange{name, func(i *issue) { delete(i.custom, name) }})
				continue
			}
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				errs[name] = "Operation value must be a string"
				continue
			}
			if len([]rune(v)) > 255 {
				errs[name] = "The entered text is too long. It exceeds the allowed limit of 255 characters."
				continue
			}
			changes = append(changes, fieldChange{name, func(i *issue) { i.custom[name] = v }})
		default:
			errs[name] = fmt.Sprintf("Field '%s' cannot be set. It is not on the appropriate screen, or unknown.", name)
		}
	}
	return changes, errs
}

// summaryNewlineMessage is Jira's answer to a summary with a line break in
// it (a single-line field).
const summaryNewlineMessage = "The summary is invalid because it contains newline characters."

const adfErrorMessage = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"

func checkLabels(v []string) string {
	for _, l := range v {
		switch {
		case l == "":
			return "The label can not be empty."
		case strings.ContainsAny(l, " \t\r\n"):
			return fmt.Sprintf("The label '%s' contains spaces which is invalid.", l)
		case len([]rune(l)) > 255:
			return fmt.Sprintf("The label '%s' exceeds the maximum length for a single label of 255 characters.", l)
		}
	}
	return ""
}

func dedupe(v []string) []string {
	out := make([]string, 0, len(v))
	for _, l := range v {
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

func compactJSON(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return slices.Clone(raw)
	}
	return b.Bytes()
}

func (s *Server) project(id, key string) (Project, bool) {
	for _, p := range s.opts.Projects {
		if (id != "" && p.ID == id) || (key != "" && strings.EqualFold(p.Key, key)) {
			return p, true
		}
	}
	return Project{}, false
}

func (s *Server) issueType(id, name string) (IssueType, bool) {
	for _, t := range s.opts.IssueTypes {
		if (id != "" && t.ID == id) || (name != "" && strings.EqualFold(t.Name, name)) {
			return t, true
		}
	}
	return IssueType{}, false
}

func (s *Server) createIssue(w http.ResponseWriter, r *http.Request, a *Account) {
	var req editRequest
	if !readJSON(w, r, &req, false) {
		return
	}
	changes, errs := s.parseFields(req.Fields, true)
	for _, required := range []struct{ field, msg string }{
		{"project", "Specify a valid project ID or key"},
		{"issuetype", "Specify an issue type"},
		{"summary", "You must specify a summary of the issue."},
	} {
		if _, ok := req.Fields[required.field]; !ok {
			errs[required.field] = required.msg
		}
	}
	if len(req.Update) > 0 {
		for k := range req.Update {
			errs[k] = fmt.Sprintf("Field '%s' cannot be set. It is not on the appropriate screen, or unknown.", k)
		}
	}
	if len(errs) > 0 {
		writeError(w, http.StatusBadRequest, errs)
		return
	}
	now := s.now()
	s.mu.Lock()
	i := &issue{custom: map[string]string{}, reporter: a.AccountID, created: now, updated: now}
	for _, c := range changes {
		c.apply(i)
	}
	i.status = s.statuses[strings.ToLower(s.opts.Workflow.Initial)]
	s.nextID++
	i.id = strconv.Itoa(s.nextID)
	s.nextNum[i.project.Key]++
	i.key = fmt.Sprintf("%s-%d", i.project.Key, s.nextNum[i.project.Key])
	s.issues[i.key] = i
	s.byID[i.id] = i
	s.order = append(s.order, i)
	ev := s.eventLocked(i, EventIssueCreated, a.AccountID, nil)
	s.mu.Unlock()
	s.emit(ev)
	base := s.baseOf(r)
	writeJSON(w, http.StatusCreated, map[string]string{"id": i.id, "key": i.key, "self": base + "/rest/api/3/issue/" + i.id})
}

func (s *Server) baseOf(r *http.Request) string {
	if s.opts.BaseURL != "" {
		return strings.TrimRight(s.opts.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) getIssue(w http.ResponseWriter, r *http.Request, _ *Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.lookup(r.PathValue("key"))
	if i == nil {
		notFound(w)
		return
	}
	want := parseFieldList(r.URL.Query().Get("fields"))
	if len(want) == 0 {
		want = []string{"*all"}
	}
	writeJSON(w, http.StatusOK, s.issueJSON(i, s.baseOf(r), want))
}

func parseFieldList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// issueJSON renders an issue as Jira does, with the fields in want ("*all",
// "*navigable" or field ids); s.mu held.
func (s *Server) issueJSON(i *issue, base string, want []string) map[string]any {
	all := map[string]any{
		"summary":     i.summary,
		"description": nullable(i.description),
		"labels":      append([]string{}, i.labels...),
		"status":      s.statusJSON(i.status, base),
		"issuetype": map[string]any{
			"self": base + "/rest/api/3/issuetype/" + i.itype.ID, "id": i.itype.ID,
			"name": i.itype.Name, "subtask": false,
		},
		"project": map[string]any{
			"self": base + "/rest/api/3/project/" + i.project.ID, "id": i.project.ID,
			"key": i.project.Key, "name": i.project.Name,
		},
		"reporter": s.userJSON(i.reporter),
		"creator":  s.userJSON(i.reporter),
		"created":  i.created.Format(jiraTime),
		"updated":  i.updated.Format(jiraTime),
	}
	for _, cf := range s.opts.CustomFields {
		if v, ok := i.custom[cf]; ok {
			all[cf] = v
		} else {
			all[cf] = nil
		}
	}
	fields := map[string]any{}
	for _, f := range want {
		switch f {
		case "*all", "*navigable":
			for k, v := range all {
				fields[k] = v
			}
		default:
			if strings.HasPrefix(f, "-") {
				continue
			}
			if v, ok := all[f]; ok {
				fields[f] = v
			}
		}
	}
	for _, f := range want {
		if name, ok := strings.CutPrefix(f, "-"); ok {
			delete(fields, name)
		}
	}
	return map[string]any{
		"expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
		"id":     i.id, "key": i.key, "self": base + "/rest/api/3/issue/" + i.id,
		"fields": fields,
	}
}

func nullable(raw json.RawMessage) any {
	if raw == nil {
		return nil
	}
	return raw
}

func (s *Server) statusJSON(st Status, base string) map[string]any {
	cat := categories[st.Category]
	return map[string]any{
		"self": base + "/rest/api/3/status/" + st.ID, "id": st.ID, "name": st.Name, "description": "",
		"statusCategory": map[string]any{
			"self": base + "/rest/api/3/statuscategory/" + strconv.Itoa(cat.id),
			"id":   cat.id, "key": st.Category, "colorName": cat.color, "name": cat.name,
		},
	}
}

var categories = map[string]struct {
	id          int
	name, color string
}{
	"new":           {2, "To Do", "blue-gray"},
	"indeterminate": {4, "In Progress", "yellow"},
	"done":          {3, "Done", "green"},
}

func (s *Server) userJSON(accountID string) map[string]any {
	for _, a := range s.opts.Accounts {
		if a.AccountID == accountID {
			return map[string]any{"accountId": a.AccountID, "displayName": a.DisplayName, "active": true, "accountType": "atlassian"}
		}
	}
	return map[string]any{"accountId": accountID, "active": true, "accountType": "atlassian"}
}

func (s *Server) editIssue(w http.ResponseWriter, r *http.Request, a *Account) {
	var req editRequest
	if !readJSON(w, r, &req, false) {
		return
	}
	if _, ok := req.Fields["project"]; ok {
		// Moving issues between projects is not possible through edit.
		writeError(w, http.StatusBadRequest, map[string]string{"project": "Field 'project' cannot be set. It is not on the appropriate screen, or unknown."})
		return
	}
	changes, errs := s.parseFields(req.Fields, false)
	labelOps, summarySet, uerrs := parseUpdate(req.Update)
	for k, v := range uerrs {
		errs[k] = v
	}
	if _, both := req.Fields["labels"]; both && labelOps != nil {
		errs["labels"] = "Field 'labels' cannot be set in both 'fields' and 'update'."
	}
	if len(errs) > 0 {
		writeError(w, http.StatusBadRequest, errs)
		return
	}
	s.mu.Lock()
	i := s.lookup(r.PathValue("key"))
	if i == nil {
		s.mu.Unlock()
		notFound(w)
		return
	}
	before := *i
	before.labels = slices.Clone(i.labels)
	before.custom = map[string]string{}
	for k, v := range i.custom {
		before.custom[k] = v
	}
	for _, c := range changes {
		c.apply(i)
	}
	if summarySet != nil {
		i.summary = *summarySet
	}
	if labelOps != nil {
		i.labels = labelOps(i.labels)
	}
	items := s.diff(&before, i)
	var ev *Event
	if len(items) > 0 {
		i.updated = s.now()
		ev = s.eventLocked(i, EventIssueUpdated, a.AccountID, items)
	}
	s.mu.Unlock()
	if ev != nil {
		s.emit(ev)
	}
	w.WriteHeader(http.StatusNoContent)
}

// parseUpdate handles the "update" verbs the simulator supports: labels
// add/remove/set and summary set.
func parseUpdate(u map[string][]map[string]json.RawMessage) (labels func([]string) []string, summary *string, errs map[string]string) {
	errs = map[string]string{}
	for field, ops := range u {
		switch field {
		case "labels":
			var steps []func([]string) []string
			for _, op := range ops {
				for verb, raw := range op {
					switch verb {
					case "add", "remove":
						var l string
						if json.Unmarshal(raw, &l) != nil || checkLabels([]string{l}) != "" {
							errs["labels"] = "Invalid label."
							continue
						}
						if verb == "add" {
							steps = append(steps, func(cur []string) []string { return dedupe(append(cur, l)) })
						} else {
							steps = append(steps, func(cur []string) []string {
								return slices.DeleteFunc(cur, func(x string) bool { return x == l })
							})
						}
					case "set":
						var ls []string
						if json.Unmarshal(raw, &ls) != nil || checkLabels(ls) != "" {
							errs["labels"] = "Invalid label."
							continue
						}
						steps = append(steps, func([]string) []string { return dedupe(ls) })
					default:
						errs["labels"] = fmt.Sprintf("Operation '%s' is not supported for field 'labels'.", verb)
					}
				}
			}
			labels = func(cur []string) []string {
				cur = slices.Clone(cur)
				for _, st := range steps {
					cur = st(cur)
				}
				return cur
			}
		case "summary":
			for _, op := range ops {
				raw, ok := op["set"]
				var v string
				if !ok || len(op) != 1 || json.Unmarshal(raw, &v) != nil || strings.TrimSpace(v) == "" {
					errs["summary"] = "You must specify a summary of the issue."
					continue
				}
				v = strings.TrimSpace(v)
				if strings.ContainsAny(v, "\r\n") {
					errs["summary"] = summaryNewlineMessage
					continue
				}
				summary = &v
			}
		default:
			errs[field] = fmt.Sprintf("Field '%s' cannot be set. It is not on the appropriate screen, or unknown.", field)
		}
	}
	return labels, summary, errs
}

// diff returns Jira changelog items for what changed between a and b.
func (s *Server) diff(a, b *issue) []ChangelogItem {
	var items []ChangelogItem
	if a.summary != b.summary {
		items = append(items, ChangelogItem{Field: "summary", FieldType: "jira", FieldID: "summary", FromString: a.summary, ToString: b.summary})
	}
	if !bytes.Equal(a.description, b.description) {
		items = append(items, ChangelogItem{Field: "description", FieldType: "jira", FieldID: "description", FromString: plainText(a.description), ToString: plainText(b.description)})
	}
	if !slices.Equal(a.labels, b.labels) {
		items = append(items, ChangelogItem{Field: "labels", FieldType: "jira", FieldID: "labels", FromString: strings.Join(a.labels, " "), ToString: strings.Join(b.labels, " ")})
	}
	if a.itype != b.itype {
		items = append(items, ChangelogItem{Field: "issuetype", FieldType: "jira", FieldID: "issuetype", From: a.itype.ID, FromString: a.itype.Name, To: b.itype.ID, ToString: b.itype.Name})
	}
	for _, cf := range s.opts.CustomFields {
		if a.custom[cf] != b.custom[cf] {
			items = append(items, ChangelogItem{Field: cf, FieldType: "custom", FieldID: cf, FromString: a.custom[cf], ToString: b.custom[cf]})
		}
	}
	if a.status != b.status {
		items = append(items, ChangelogItem{Field: "status", FieldType: "jira", FieldID: "status", From: a.status.ID, FromString: a.status.Name, To: b.status.ID, ToString: b.status.Name})
	}
	return items
}

func (s *Server) deleteIssue(w http.ResponseWriter, r *http.Request, a *Account) {
	s.mu.Lock()
	i := s.lookup(r.PathValue("key"))
	if i == nil {
		s.mu.Unlock()
		notFound(w)
		return
	}
	delete(s.issues, i.key)
	delete(s.byID, i.id)
	s.order = slices.DeleteFunc(slices.Clone(s.order), func(x *issue) bool { return x == i })
	s.deleted[i.key] = i
	ev := s.eventLocked(i, EventIssueDeleted, a.AccountID, nil)
	s.mu.Unlock()
	s.emit(ev)
	w.WriteHeader(http.StatusNoContent)
}

// available lists the transitions possible from status st.
func (s *Server) available(st Status) []Transition {
	var out []Transition
	for _, t := range s.opts.Workflow.Transitions {
		if len(t.From) == 0 {
			if !strings.EqualFold(t.To, st.Name) {
				out = append(out, t)
			}
			continue
		}
		if slices.ContainsFunc(t.From, func(f string) bool { return strings.EqualFold(f, st.Name) }) {
			out = append(out, t)
		}
	}
	return out
}

func (s *Server) getTransitions(w http.ResponseWriter, r *http.Request, _ *Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.lookup(r.PathValue("key"))
	if i == nil {
		notFound(w)
		return
	}
	base := s.baseOf(r)
	list := []map[string]any{}
	for _, t := range s.available(i.status) {
		if id := r.URL.Query().Get("transitionId"); id != "" && id != t.ID {
			continue
		}
		to := s.statuses[strings.ToLower(t.To)]
		list = append(list, map[string]any{
			"id": t.ID, "name": t.Name, "to": s.statusJSON(to, base),
			"hasScreen": false, "isGlobal": len(t.From) == 0, "isInitial": false,
			"isAvailable": true, "isConditional": false, "isLooped": false,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"expand": "transitions", "transitions": list})
}

func (s *Server) doTransition(w http.ResponseWriter, r *http.Request, a *Account) {
	var req struct {
		Transition *struct {
			ID string `json:"id"`
		} `json:"transition"`
		Fields map[string]json.RawMessage `json:"fields"`
		Update map[string]json.RawMessage `json:"update"`
	}
	if !readJSON(w, r, &req, false) {
		return
	}
	if req.Transition == nil || req.Transition.ID == "" {
		writeError(w, http.StatusBadRequest, nil, "Missing 'transition' identifier")
		return
	}
	if len(req.Fields) > 0 || len(req.Update) > 0 {
		errs := map[string]string{}
		for k := range req.Fields {
			errs[k] = fmt.Sprintf("Field '%s' cannot be set. It is not on the appropriate screen, or unknown.", k)
		}
		for k := range req.Update {
			errs[k] = fmt.Sprintf("Field '%s' cannot be set. It is not on the appropriate screen, or unknown.", k)
		}
		writeError(w, http.StatusBadRequest, errs)
		return
	}
	s.mu.Lock()
	i := s.lookup(r.PathValue("key"))
	if i == nil {
		s.mu.Unlock()
		notFound(w)
		return
	}
	var found *Transition
	for _, t := range s.available(i.status) {
		if t.ID == req.Transition.ID {
			found = &t
			break
		}
	}
	if found == nil {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, nil, fmt.Sprintf("Transition id '%s' is not valid for this issue.", req.Transition.ID))
		return
	}
	ev := s.setStatusLocked(i, s.statuses[strings.ToLower(found.To)], a.AccountID)
	s.mu.Unlock()
	s.emit(ev)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) setStatusLocked(i *issue, to Status, actor string) *Event {
	before := *i
	i.status = to
	i.updated = s.now()
	return s.eventLocked(i, EventIssueUpdated, actor, s.diff(&before, i))
}

// SetStatus moves an issue to the named status directly, the way a person
// in the Jira UI would (no transition check, actor is the first account), and
// returns the changelog items; it does not send a webhook by itself, so
// tests choose whether and how to deliver one (SendWebhook).
func (s *Server) SetStatus(keyOrID, status string) ([]ChangelogItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.lookup(keyOrID)
	if i == nil {
		return nil, fmt.Errorf("jiratest: issue %s does not exist", keyOrID)
	}
	st, ok := s.statuses[strings.ToLower(status)]
	if !ok {
		return nil, fmt.Errorf("jiratest: unknown status %q", status)
	}
	ev := s.setStatusLocked(i, st, s.opts.Accounts[0].AccountID)
	return ev.Changelog, nil
}

func (s *Server) addComment(w http.ResponseWriter, r *http.Request, a *Account) {
	var req struct {
		Body json.RawMessage `json:"body"`
	}
	if !readJSON(w, r, &req, false) {
		return
	}
	if len(bytes.TrimSpace(req.Body)) == 0 || string(bytes.TrimSpace(req.Body)) == "null" {
		writeError(w, http.StatusBadRequest, map[string]string{"comment": "Comment body can not be empty!"})
		return
	}
	if err := validateADF(req.Body); err != nil {
		writeError(w, http.StatusBadRequest, map[string]string{"comment": "Comment body is not valid!"})
		return
	}
	s.mu.Lock()
	i := s.lookup(r.PathValue("key"))
	if i == nil {
		s.mu.Unlock()
		notFound(w)
		return
	}
	s.nextCmt++
	c := comment{id: strconv.Itoa(s.nextCmt), body: compactJSON(req.Body), author: a.AccountID, created: s.now()}
	i.comments = append(i.comments, c)
	out := s.commentJSON(i, c, s.baseOf(r))
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) commentJSON(i *issue, c comment, base string) map[string]any {
	return map[string]any{
		"self":   base + "/rest/api/3/issue/" + i.id + "/comment/" + c.id,
		"id":     c.id,
		"author": s.userJSON(c.author), "updateAuthor": s.userJSON(c.author),
		"body":    c.body,
		"created": c.created.Format(jiraTime), "updated": c.created.Format(jiraTime),
		"jsdPublic": true,
	}
}

func (s *Server) getComments(w http.ResponseWriter, r *http.Request, _ *Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.lookup(r.PathValue("key"))
	if i == nil {
		notFound(w)
		return
	}
	base := s.baseOf(r)
	list := []map[string]any{}
	for _, c := range i.comments {
		list = append(list, s.commentJSON(i, c, base))
	}
	writeJSON(w, http.StatusOK, map[string]any{"startAt": 0, "maxResults": 5000, "total": len(list), "comments": list})
}

func (s *Server) myself(w http.ResponseWriter, r *http.Request, a *Account) {
	u := s.userJSON(a.AccountID)
	u["emailAddress"] = a.Email
	u["self"] = s.baseOf(r) + "/rest/api/3/user?accountId=" + a.AccountID
	writeJSON(w, http.StatusOK, u)
}

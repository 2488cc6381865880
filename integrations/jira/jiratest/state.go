package jiratest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// stateVersion is the "version" MarshalState writes and UnmarshalState
// accepts.
const stateVersion = 1

// savedState is the saved form of a Server's data. Configuration (Options,
// workflow, limiters), request counters, faults and webhook deliveries are
// not part of it.
type savedState struct {
	Version int `json:"version"`
	// Issues are the existing issues in creation order.
	Issues []savedIssue `json:"issues"`
	// Deleted are the tombstones of deleted issues (SendWebhook can still
	// render them), by id.
	Deleted  []savedIssue  `json:"deleted"`
	Counters savedCounters `json:"counters"`
}

// savedCounters holds the last value handed out of each sequence, so that
// nothing is numbered twice after a restore.
type savedCounters struct {
	IssueID     int            `json:"issueId"`
	IssueNumber map[string]int `json:"issueNumber"` // by project key
	CommentID   int            `json:"commentId"`
	Changelog   int            `json:"changelog"`
}

type savedIssue struct {
	ID          string            `json:"id"`
	Key         string            `json:"key"`
	Project     savedProject      `json:"project"`
	IssueType   savedIssueType    `json:"issueType"`
	Summary     string            `json:"summary"`
	Description json.RawMessage   `json:"description,omitempty"`
	Labels      []string          `json:"labels,omitempty"`
	Status      savedStatus       `json:"status"`
	Custom      map[string]string `json:"customFields,omitempty"`
	Reporter    string            `json:"reporter"`
	Created     time.Time         `json:"created"`
	Updated     time.Time         `json:"updated"`
	Comments    []savedComment    `json:"comments,omitempty"`
}

type savedProject struct {
	ID   string `json:"id"`
	Key  string `json:"key"`
	Name string `json:"name"`
}

type savedIssueType struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type savedStatus struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Category string `json:"category"`
}

type savedComment struct {
	ID      string          `json:"id"`
	Body    json.RawMessage `json:"body"`
	Author  string          `json:"author"`
	Created time.Time       `json:"created"`
}

// MarshalState returns everything the simulator holds that a client would
// miss after a restart — issues with their fields and comments, tombstones
// of deleted issues and the id, key and changelog counters — as JSON with a
// top-level "version". Configuration, request counters, faults and webhook
// deliveries are left out. Feed the result to UnmarshalState of a Server
// created with the same Options.
func (s *Server) MarshalState() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := savedState{
		Version: stateVersion,
		Issues:  []savedIssue{},
		Deleted: []savedIssue{},
		Counters: savedCounters{
			IssueID: s.nextID, IssueNumber: s.nextNum,
			CommentID: s.nextCmt, Changelog: s.nextChange,
		},
	}
	for _, i := range s.order {
		st.Issues = append(st.Issues, saveIssue(i))
	}
	for _, i := range s.deleted {
		st.Deleted = append(st.Deleted, saveIssue(i))
	}
	slices.SortFunc(st.Deleted, func(a, b savedIssue) int { return cmpNumeric(a.ID, b.ID) })
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("jiratest: marshal state: %w", err)
	}
	return b, nil
}

// UnmarshalState replaces the simulator's state with one MarshalState
// returned, so issues, comments, tombstones and counters carry over a
// restart. It rejects malformed JSON, another "version" and inconsistent
// data (duplicate keys or ids, numbers beyond their counters) with an error,
// leaving the current state unchanged.
func (s *Server) UnmarshalState(b []byte) error {
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("jiratest: unmarshal state: %w", err)
	}
	if v.Version != stateVersion {
		return fmt.Errorf("jiratest: unmarshal state: unsupported version %d, want %d", v.Version, stateVersion)
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("jiratest: unmarshal state: %w", err)
	}
	c := st.Counters
	issues, byID, deleted := map[string]*issue{}, map[string]*issue{}, map[string]*issue{}
	order := make([]*issue, 0, len(st.Issues))
	seenID := map[string]bool{}
	add := func(j savedIssue) (*issue, error) {
		if err := j.check(c, seenID, issues, deleted); err != nil {
			return nil, fmt.Errorf("jiratest: unmarshal state: issue %q: %w", j.Key, err)
		}
		seenID[j.ID] = true
		return j.restore(), nil
	}
	for _, j := range st.Issues {
		i, err := add(j)
		if err != nil {
			return err
		}
		issues[i.key], byID[i.id] = i, i
		order = append(order, i)
	}
	for _, j := range st.Deleted {
		i, err := add(j)
		if err != nil {
			return err
		}
		deleted[i.key] = i
	}
	if c.IssueNumber == nil {
		c.IssueNumber = map[string]int{}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.issues, s.byID, s.order, s.deleted = issues, byID, order, deleted
	s.nextID, s.nextNum, s.nextCmt, s.nextChange = c.IssueID, c.IssueNumber, c.CommentID, c.Changelog
	return nil
}

func saveIssue(i *issue) savedIssue {
	j := savedIssue{
		ID: i.id, Key: i.key,
		Project:   savedProject{ID: i.project.ID, Key: i.project.Key, Name: i.project.Name},
		IssueType: savedIssueType{ID: i.itype.ID, Name: i.itype.Name},
		Summary:   i.summary, Description: i.description, Labels: i.labels,
		Status:   savedStatus{ID: i.status.ID, Name: i.status.Name, Category: i.status.Category},
		Custom:   i.custom,
		Reporter: i.reporter, Created: i.created, Updated: i.updated,
	}
	for _, c := range i.comments {
		j.Comments = append(j.Comments, savedComment{ID: c.id, Body: c.body, Author: c.author, Created: c.created})
	}
	return j
}

// check reports whether j is consistent with the counters and with the
// issues (seen ids, existing and deleted keys) restored before it.
func (j savedIssue) check(c savedCounters, seenID map[string]bool, issues, deleted map[string]*issue) error {
	if err := withinCounter("id", j.ID, c.IssueID); err != nil {
		return err
	}
	num, ok := strings.CutPrefix(j.Key, j.Project.Key+"-")
	if !ok || j.Project.Key == "" {
		return fmt.Errorf("key does not belong to project %q", j.Project.Key)
	}
	if err := withinCounter("issue number", num, c.IssueNumber[j.Project.Key]); err != nil {
		return err
	}
	if seenID[j.ID] || issues[j.Key] != nil || deleted[j.Key] != nil {
		return errors.New("duplicate key or id")
	}
	for _, cm := range j.Comments {
		if err := withinCounter("comment id", cm.ID, c.CommentID); err != nil {
			return err
		}
	}
	return nil
}

func withinCounter(what, n string, counter int) error {
	v, err := strconv.Atoi(n)
	if err != nil || v < 1 {
		return fmt.Errorf("%s %q is not a positive number", what, n)
	}
	if v > counter {
		return fmt.Errorf("%s %s is beyond its counter %d", what, n, counter)
	}
	return nil
}

func (j savedIssue) restore() *issue {
	i := &issue{
		id: j.ID, key: j.Key,
		project:     Project{ID: j.Project.ID, Key: j.Project.Key, Name: j.Project.Name},
		itype:       IssueType{ID: j.IssueType.ID, Name: j.IssueType.Name},
		summary:     j.Summary,
		description: restoreDoc(j.Description),
		labels:      j.Labels,
		status:      Status{ID: j.Status.ID, Name: j.Status.Name, Category: j.Status.Category},
		custom:      map[string]string{},
		reporter:    j.Reporter, created: j.Created, updated: j.Updated,
	}
	for k, v := range j.Custom {
		i.custom[k] = v
	}
	for _, c := range j.Comments {
		i.comments = append(i.comments, comment{id: c.ID, body: restoreDoc(c.Body), author: c.Author, created: c.Created})
	}
	return i
}

// restoreDoc compacts an ADF document as the API stores it; JSON null is no
// document.
func restoreDoc(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil
	}
	return compactJSON(raw)
}

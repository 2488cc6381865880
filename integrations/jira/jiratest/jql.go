package jiratest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// The JQL subset the simulator understands
// (https://support.atlassian.com/jira-software-cloud/docs/use-advanced-search-with-jira-query-language-jql/):
//
//	query   = [or] ["ORDER BY" field [ASC|DESC] {"," field [ASC|DESC]}]
//	or      = and {"OR" and}
//	and     = unary {"AND" unary}
//	unary   = "NOT" unary | "(" or ")" | clause
//	clause  = field op value
//	op      = "=" | "!=" | "~" | "!~" | "IN" | "NOT IN" | "IS" | "IS NOT"
//	value   = word | "quoted" | 'quoted' | "(" value {"," value} ")" | EMPTY | NULL
//
// Fields: project, key (issuekey), issuetype (type), status, labels,
// summary (~ only, like every text field), text (~ on summary and
// description) and the configured custom fields, by id or as cf[NNNNN]
// (text custom fields support ~ and IS only, as in Jira). Keywords are
// case-insensitive. Anything else is answered 400 "Error in the JQL Query:
// …", unknown fields and values with Jira's messages, and a query without a
// restriction with the "Unbounded JQL" error of the enhanced search.

type jqlError struct{ msg string }

func (e *jqlError) Error() string { return e.msg }

type token struct {
	kind string // "word", "string", "op", "(", ")", ","
	text string
	pos  int // 1-based character
}

func lexJQL(q string) ([]token, error) {
	var toks []token
	rs := []rune(q)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '(' || r == ')' || r == ',':
			toks = append(toks, token{string(r), string(r), i + 1})
			i++
		case r == '"' || r == '\'':
			start := i
			var b strings.Builder
			i++
			closed := false
			for i < len(rs) {
				c := rs[i]
				if c == '\\' && i+1 < len(rs) {
					b.WriteRune(rs[i+1])
					i += 2
					continue
				}
				if c == r {
					closed = true
					i++
					break
				}
				b.WriteRune(c)
				i++
			}
			if !closed {
				return nil, &jqlError{fmt.Sprintf("Error in the JQL Query: The quoted string %s has not been completed. (line 1, character %d)", string(rs[start:]), start+1)}
			}
			toks = append(toks, token{"string", b.String(), start + 1})
		case r == '=' || r == '~':
			toks = append(toks, token{"op", string(r), i + 1})
			i++
		case r == '!':
			if i+1 < len(rs) && (rs[i+1] == '=' || rs[i+1] == '~') {
				toks = append(toks, token{"op", string(rs[i : i+2]), i + 1})
				i += 2
				continue
			}
			return nil, &jqlError{fmt.Sprintf("Error in the JQL Query: The character '!' is a reserved JQL character. You must enclose it in a string or use the escape '\\u0021' instead. (line 1, character %d)", i+1)}
		case r == '<' || r == '>':
			return nil, &jqlError{fmt.Sprintf("Error in the JQL Query: The operator '%c' is not supported by this simulator. (line 1, character %d)", r, i+1)}
		case unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("_-.@[]", r):
			start := i
			for i < len(rs) && (unicode.IsLetter(rs[i]) || unicode.IsDigit(rs[i]) || strings.ContainsRune("_-.@[]", rs[i])) {
				i++
			}
			toks = append(toks, token{"word", string(rs[start:i]), start + 1})
		default:
			return nil, &jqlError{fmt.Sprintf("Error in the JQL Query: The character '%c' is a reserved JQL character. You must enclose it in a string or use the escape '\\u%04x' instead. (line 1, character %d)", r, r, i+1)}
		}
	}
	return toks, nil
}

type predicate func(*issue) bool

type orderKey struct {
	field string
	desc  bool
}

type jqlParser struct {
	s    *Server
	toks []token
	pos  int
}

func (p *jqlParser) peek() *token {
	if p.pos < len(p.toks) {
		return &p.toks[p.pos]
	}
	return nil
}

func (p *jqlParser) isWord(t *token, w string) bool {
	return t != nil && t.kind == "word" && strings.EqualFold(t.text, w)
}

func (p *jqlParser) errorf(format string, args ...any) error {
	char := 1
	if t := p.peek(); t != nil {
		char = t.pos
	} else if len(p.toks) > 0 {
		last := p.toks[len(p.toks)-1]
		char = last.pos + len([]rune(last.text))
	}
	return &jqlError{fmt.Sprintf("Error in the JQL Query: "+format+" (line 1, character %d)", append(args, char)...)}
}

func (p *jqlParser) got() string {
	if t := p.peek(); t != nil {
		return "'" + t.text + "'"
	}
	return "the end of the query"
}

// compileJQL parses q; where is nil for a query without restriction.
func (s *Server) compileJQL(q string) (where predicate, order []orderKey, err error) {
	toks, err := lexJQL(q)
	if err != nil {
		return nil, nil, err
	}
	p := &jqlParser{s: s, toks: toks}
	if t := p.peek(); t != nil && !p.isWord(t, "order") {
		where, err = p.or()
		if err != nil {
			return nil, nil, err
		}
	}
	if t := p.peek(); t != nil {
		if !p.isWord(t, "order") {
			return nil, nil, p.errorf("Expecting either 'OR' or 'AND' but got %s.", p.got())
		}
		p.pos++
		if !p.isWord(p.peek(), "by") {
			return nil, nil, p.errorf("Expecting 'BY' but got %s.", p.got())
		}
		p.pos++
		for {
			t := p.peek()
			if t == nil || (t.kind != "word" && t.kind != "string") {
				return nil, nil, p.errorf("Expecting a field name but got %s.", p.got())
			}
			f := strings.ToLower(t.text)
			switch f {
			case "key", "issuekey", "id", "created", "updated", "summary", "status":
			default:
				return nil, nil, &jqlError{fmt.Sprintf("Not able to sort using field '%s'.", t.text)}
			}
			p.pos++
			k := orderKey{field: f}
			if n := p.peek(); p.isWord(n, "asc") || p.isWord(n, "desc") {
				k.desc = strings.EqualFold(n.text, "desc")
				p.pos++
			}
			order = append(order, k)
			if n := p.peek(); n != nil && n.kind == "," {
				p.pos++
				continue
			}
			break
		}
		if p.peek() != nil {
			return nil, nil, p.errorf("Expecting ',' or the end of the query but got %s.", p.got())
		}
	}
	return where, order, nil
}

func (p *jqlParser) or() (predicate, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.isWord(p.peek(), "or") {
		p.pos++
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(i *issue) bool { return l(i) || right(i) }
	}
	return left, nil
}

func (p *jqlParser) and() (predicate, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.isWord(p.peek(), "and") {
		p.pos++
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(i *issue) bool { return l(i) && right(i) }
	}
	return left, nil
}

func (p *jqlParser) unary() (predicate, error) {
	t := p.peek()
	switch {
	case t == nil:
		return nil, p.errorf("Expecting a field name but got the end of the query.")
	case p.isWord(t, "not"):
		p.pos++
		inner, err := p.unary()
		if err != nil {
			return nil, err
		}
		return func(i *issue) bool { return !inner(i) }, nil
	case t.kind == "(":
		p.pos++
		inner, err := p.or()
		if err != nil {
			return nil, err
		}
		if n := p.peek(); n == nil || n.kind != ")" {
			return nil, p.errorf("Expecting ')' but got %s.", p.got())
		}
		p.pos++
		return inner, nil
	}
	return p.clause()
}

// operator reads the operator after a field name.
func (p *jqlParser) operator() (string, error) {
	t := p.peek()
	const valid = "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'."
	if t == nil {
		return "", p.errorf("Expecting operator but got the end of the query. " + valid)
	}
	switch {
	case t.kind == "op":
		p.pos++
		return t.text, nil
	case p.isWord(t, "in"):
		p.pos++
		return "in", nil
	case p.isWord(t, "is"):
		p.pos++
		if p.isWord(p.peek(), "not") {
			p.pos++
			return "is not", nil
		}
		return "is", nil
	case p.isWord(t, "not"):
		p.pos++
		if !p.isWord(p.peek(), "in") {
			return "", p.errorf("Expecting 'IN' but got %s.", p.got())
		}
		p.pos++
		return "not in", nil
	}
	return "", p.errorf("Expecting operator but got %s. "+valid, p.got())
}

// values reads one value, or a parenthesised list for IN / NOT IN.
func (p *jqlParser) values(op string) ([]string, bool, error) {
	if op == "is" || op == "is not" {
		t := p.peek()
		if !p.isWord(t, "empty") && !p.isWord(t, "null") {
			return nil, false, p.errorf("Expecting 'EMPTY' or 'NULL' but got %s.", p.got())
		}
		p.pos++
		return nil, true, nil
	}
	one := func() (string, error) {
		t := p.peek()
		if t == nil || (t.kind != "word" && t.kind != "string") {
			return "", p.errorf("Expecting either a value, list or function but got %s.", p.got())
		}
		if t.kind == "word" && (strings.EqualFold(t.text, "and") || strings.EqualFold(t.text, "or") || strings.EqualFold(t.text, "order")) {
			return "", p.errorf("Expecting either a value, list or function but got %s.", p.got())
		}
		p.pos++
		return t.text, nil
	}
	if op != "in" && op != "not in" {
		v, err := one()
		return []string{v}, false, err
	}
	if t := p.peek(); t == nil || t.kind != "(" {
		return nil, false, p.errorf("Expecting '(' but got %s.", p.got())
	}
	p.pos++
	var out []string
	for {
		v, err := one()
		if err != nil {
			return nil, false, err
		}
		out = append(out, v)
		t := p.peek()
		if t != nil && t.kind == "," {
			p.pos++
			continue
		}
		if t == nil || t.kind != ")" {
			return nil, false, p.errorf("Expecting ')' but got %s.", p.got())
		}
		p.pos++
		return out, false, nil
	}
}

func (p *jqlParser) clause() (predicate, error) {
	t := p.peek()
	if t.kind != "word" && t.kind != "string" {
		return nil, p.errorf("Expecting a field name but got %s.", p.got())
	}
	p.pos++
	field := strings.ToLower(t.text)
	if num, ok := strings.CutPrefix(field, "cf["); ok && strings.HasSuffix(num, "]") {
		field = "customfield_" + strings.TrimSuffix(num, "]")
	}
	op, err := p.operator()
	if err != nil {
		return nil, err
	}
	vals, empty, err := p.values(op)
	if err != nil {
		return nil, err
	}
	s := p.s
	unsupported := func() error {
		return &jqlError{fmt.Sprintf("The operator '%s' is not supported by the '%s' field.", strings.ToUpper(op), t.text)}
	}
	// match builds an equality-style predicate from a per-value test.
	match := func(has func(i *issue, v string) bool) (predicate, error) {
		switch op {
		case "=", "in":
			return func(i *issue) bool { return slices.ContainsFunc(vals, func(v string) bool { return has(i, v) }) }, nil
		case "!=", "not in":
			return func(i *issue) bool { return !slices.ContainsFunc(vals, func(v string) bool { return has(i, v) }) }, nil
		}
		return nil, unsupported()
	}
	switch field {
	case "project":
		for _, v := range vals {
			if _, ok := s.projectByAny(v); !ok {
				return nil, &jqlError{fmt.Sprintf("The value '%s' does not exist for the field 'project'.", v)}
			}
		}
		return match(func(i *issue, v string) bool { pr, _ := s.projectByAny(v); return i.project.ID == pr.ID })
	case "key", "issuekey", "id":
		s.mu.Lock()
		for _, v := range vals {
			if s.lookup(v) == nil {
				s.mu.Unlock()
				return nil, &jqlError{fmt.Sprintf("An issue with key '%s' does not exist for field '%s'.", v, t.text)}
			}
		}
		s.mu.Unlock()
		return match(func(i *issue, v string) bool { return strings.EqualFold(i.key, v) || i.id == v })
	case "issuetype", "type":
		for _, v := range vals {
			if _, ok := s.issueType(v, v); !ok {
				return nil, &jqlError{fmt.Sprintf("The value '%s' does not exist for the field '%s'.", v, t.text)}
			}
		}
		return match(func(i *issue, v string) bool { return strings.EqualFold(i.itype.Name, v) || i.itype.ID == v })
	case "status":
		for _, v := range vals {
			if !s.statusExists(v) {
				return nil, &jqlError{fmt.Sprintf("The value '%s' does not exist for the field 'status'.", v)}
			}
		}
		return match(func(i *issue, v string) bool { return strings.EqualFold(i.status.Name, v) || i.status.ID == v })
	case "labels":
		if op == "is" || op == "is not" {
			want := op == "is"
			return func(i *issue) bool { return (len(i.labels) == 0) == want }, nil
		}
		has := func(i *issue, v string) bool { return slices.Contains(i.labels, v) }
		switch op {
		case "=", "in":
			return match(has)
		case "!=", "not in":
			// As in Jira, negative label clauses never match issues without labels.
			neg, _ := match(has)
			return func(i *issue) bool { return len(i.labels) > 0 && neg(i) }, nil
		}
		return nil, unsupported()
	case "summary", "text", "description":
		return textClause(op, vals, empty, unsupported, func(i *issue) string {
			switch field {
			case "summary":
				return i.summary
			case "description":
				return plainText(i.description)
			}
			return i.summary + "\n" + plainText(i.description)
		})
	}
	if slices.Contains(s.opts.CustomFields, field) {
		return textClause(op, vals, empty, unsupported, func(i *issue) string { return i.custom[field] })
	}
	return nil, &jqlError{fmt.Sprintf("Field '%s' does not exist or you do not have permission to view it.", t.text)}
}

// textClause implements ~, !~, IS [NOT] EMPTY for text fields: a ~ match is
// a case-insensitive match of every word of the value.
func textClause(op string, vals []string, empty bool, unsupported func() error, get func(*issue) string) (predicate, error) {
	switch op {
	case "is", "is not":
		want := op == "is"
		_ = empty
		return func(i *issue) bool { return (strings.TrimSpace(get(i)) == "") == want }, nil
	case "~", "!~":
		words := strings.Fields(strings.ToLower(vals[0]))
		contains := func(i *issue) bool {
			text := strings.ToLower(get(i))
			for _, w := range words {
				if !strings.Contains(text, w) {
					return false
				}
			}
			return len(words) > 0
		}
		if op == "~" {
			return contains, nil
		}
		return func(i *issue) bool { return !contains(i) }, nil
	}
	return nil, unsupported()
}

func (s *Server) projectByAny(v string) (Project, bool) {
	for _, p := range s.opts.Projects {
		if strings.EqualFold(p.Key, v) || p.ID == v || strings.EqualFold(p.Name, v) {
			return p, true
		}
	}
	return Project{}, false
}

func (s *Server) statusExists(v string) bool {
	for _, st := range s.opts.Workflow.Statuses {
		if strings.EqualFold(st.Name, v) || st.ID == v {
			return true
		}
	}
	return false
}

type searchRequest struct {
	JQL             string   `json:"jql"`
	Fields          []string `json:"fields"`
	MaxResults      *int     `json:"maxResults"`
	NextPageToken   string   `json:"nextPageToken"`
	Expand          string   `json:"expand"`
	Properties      []string `json:"properties"`
	FieldsByKeys    bool     `json:"fieldsByKeys"`
	ReconcileIssues []int    `json:"reconcileIssues"`
	FailFast        bool     `json:"failFast"`
}

func (s *Server) searchPost(w http.ResponseWriter, r *http.Request, _ *Account) {
	var req searchRequest
	if !readJSON(w, r, &req, true) {
		return
	}
	s.search(w, r, req)
}

func (s *Server) searchGet(w http.ResponseWriter, r *http.Request, _ *Account) {
	q := r.URL.Query()
	req := searchRequest{JQL: q.Get("jql"), NextPageToken: q.Get("nextPageToken"), Fields: parseFieldList(q.Get("fields"))}
	if m := q.Get("maxResults"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil {
			writeError(w, http.StatusBadRequest, nil, "The value '"+m+"' is invalid for the maxResults parameter.")
			return
		}
		req.MaxResults = &n
	}
	s.search(w, r, req)
}

func (s *Server) search(w http.ResponseWriter, r *http.Request, req searchRequest) {
	where, order, err := s.compileJQL(req.JQL)
	if err != nil {
		writeError(w, http.StatusBadRequest, nil, err.Error())
		return
	}
	if where == nil {
		writeError(w, http.StatusBadRequest, nil, "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.")
		return
	}
	onlyIDs := len(req.Fields) == 0 || !slices.ContainsFunc(req.Fields, func(f string) bool { return f != "id" && f != "key" })
	limit := 50
	if req.MaxResults != nil {
		limit = *req.MaxResults
	}
	ceiling := 100
	if onlyIDs {
		ceiling = 5000
	}
	limit = min(max(limit, 1), ceiling)
	offset := 0
	if req.NextPageToken != "" {
		offset, err = decodePageToken(req.NextPageToken, req.JQL)
		if err != nil {
			writeError(w, http.StatusBadRequest, nil, "The provided next page token is invalid or expired.")
			return
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var hits []*issue
	for _, i := range s.sortedLocked() {
		if where(i) {
			hits = append(hits, i)
		}
	}
	if len(order) > 0 {
		slices.SortStableFunc(hits, func(a, b *issue) int {
			for _, k := range order {
				var c int
				switch k.field {
				case "key", "issuekey", "id":
					c = cmpNumeric(a.id, b.id)
				case "created":
					c = a.created.Compare(b.created)
				case "updated":
					c = a.updated.Compare(b.updated)
				case "summary":
					c = strings.Compare(a.summary, b.summary)
				case "status":
					c = strings.Compare(a.status.Name, b.status.Name)
				}
				if k.desc {
					c = -c
				}
				if c != 0 {
					return c
				}
			}
			return 0
		})
	}
	base := s.baseOf(r)
	page := []map[string]any{}
	end := min(offset+limit, len(hits))
	for _, i := range hits[min(offset, len(hits)):end] {
		if len(req.Fields) == 0 {
			page = append(page, map[string]any{"id": i.id})
			continue
		}
		page = append(page, s.issueJSON(i, base, req.Fields))
	}
	resp := map[string]any{"issues": page, "isLast": end >= len(hits)}
	if end < len(hits) {
		resp["nextPageToken"] = encodePageToken(end, req.JQL)
	}
	writeJSON(w, http.StatusOK, resp)
}

func jqlDigest(jql string) string {
	sum := sha256.Sum256([]byte(jql))
	return hex.EncodeToString(sum[:6])
}

func encodePageToken(offset int, jql string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(offset) + ":" + jqlDigest(jql)))
}

func decodePageToken(tok, jql string) (int, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, err
	}
	off, digest, ok := strings.Cut(string(raw), ":")
	if !ok || digest != jqlDigest(jql) {
		return 0, fmt.Errorf("token for another query")
	}
	return strconv.Atoi(off)
}

package client

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"
)

// ProblemTypeBase is the prefix of every problem type URI the gateway sends;
// Problem.Slug gives what follows it.
const ProblemTypeBase = "https://spotlight.dev/problems/"

// Error makes a problem an error: its status, title, detail and request id,
// which is what to quote when reporting it.
func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString("gateway: ")
	b.WriteString(http.StatusText(p.Status))
	if p.Status != 0 {
		b.WriteString(" (")
		b.WriteString(p.Slug())
		b.WriteString(")")
	}
	if p.Detail != nil && *p.Detail != "" {
		b.WriteString(": ")
		b.WriteString(*p.Detail)
	} else if p.Title != "" {
		b.WriteString(": ")
		b.WriteString(p.Title)
	}
	if p.RequestId != nil && *p.RequestId != "" {
		b.WriteString(" [request_id ")
		b.WriteString(*p.RequestId)
		b.WriteString("]")
	}
	return b.String()
}

// Slug is the problem type without ProblemTypeBase (`booking-overlap`,
// `precondition-failed`, ...), or the whole type when it is another URI.
func (p Problem) Slug() string {
	return strings.TrimPrefix(p.Type, ProblemTypeBase)
}

// ParseProblem decodes the problem of any answer of the gateway: resp is a
// generated response's HTTPResponse and body its Body. It reports false when
// the answer is not application/problem+json (a success, or an error from a
// proxy in front of the gateway). Unlike the generated ApplicationproblemJSONnnn
// fields, it works for every status, including those an operation does not
// declare (a 405 or 504, say).
func ParseProblem(resp *http.Response, body []byte) (*Problem, bool) {
	if resp == nil {
		return nil, false
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "application/problem+json" {
		return nil, false
	}
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, false
	}
	if p.Status == 0 {
		p.Status = resp.StatusCode
	}
	return &p, true
}

// Problem returns the members p shares with every problem, without the
// booking id.
func (p BookingProblem) Problem() Problem {
	return Problem{Type: p.Type, Title: p.Title, Status: p.Status, Detail: p.Detail, Instance: p.Instance,
		RequestId: p.RequestId, Errors: p.Errors}
}

// Error makes a booking's problem an error, as Problem.Error does, with
// the booking's id.
func (p BookingProblem) Error() string {
	return p.Problem().Error() + " [booking_id " + p.BookingId.String() + "]"
}

// Slug is the problem type without ProblemTypeBase, as Problem.Slug.
func (p BookingProblem) Slug() string { return p.Problem().Slug() }

package jira

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spotlight/gateway/integrations/outbound"
)

// ensureAttempts bounds EnsureIssue's create attempts.
const ensureAttempts = 3

// EnsureIssue returns the issue of booking bookingID, creating it from in
// when there is none, so that one booking yields one issue however often it
// is called and whatever failed before:
//
//  1. search the project for the booking label (BookingLabel); an existing
//     issue is returned with created=false;
//  2. create the issue (labelled, and with the booking field when
//     configured);
//  3. after an ambiguous failure (connection lost after sending, 5xx) search
//     again: an issue found there was created by the lost request and is
//     returned with created=true; otherwise create again. A 429 is waited
//     out when its Retry-After is short. Permanent failures (4xx) are
//     returned at once.
//
// Concurrent EnsureIssue calls for the same booking can still race between
// search and create; callers serialise per booking (the job queue does).
// A create that went unanswered (a timeout, a lost connection, 502/504) may
// still be at work in Jira, and its issue show only later; so may one of an
// earlier call whose caller gave up (in.Uncertain). Then the search of step
// 1 or 3 is repeated with backoff for the settle time (WithCreateSettle)
// before creating. A create that shows only after that, or that Jira's
// search lags by longer, still leaves a duplicate; the booking-id field and
// label let a reconciliation job find such duplicates.
func (c *Client) EnsureIssue(ctx context.Context, bookingID string, in IssueInput) (ref *IssueRef, created bool, err error) {
	if bookingID == "" {
		return nil, false, errors.New("jira: ensure issue: booking id required")
	}
	in.BookingID = bookingID
	if _, err := c.createFields(in); err != nil {
		return nil, false, fmt.Errorf("jira: ensure issue: %w", err)
	}
	log := c.log.With("provider", Provider, "booking_id", bookingID)
	if ref, err := c.findSettled(ctx, in.ProjectKey, bookingID, in.Uncertain); err != nil || ref != nil {
		return ref, false, err
	}
	var lastErr error
	for attempt := 1; attempt <= ensureAttempts; attempt++ {
		ref, err := c.CreateIssue(ctx, in)
		if err == nil {
			return ref, true, nil
		}
		lastErr = err
		var oe *outbound.Error
		switch {
		case ctx.Err() != nil:
			return nil, false, err
		case ambiguous(err):
			found, ferr := c.findSettled(ctx, in.ProjectKey, bookingID, unanswered(err))
			if ferr != nil {
				return nil, false, errors.Join(err, ferr)
			}
			if found != nil {
				log.DebugContext(ctx, "jira create applied although its response was lost", "issue", found.Key)
				return found, true, nil
			}
			log.DebugContext(ctx, "jira create failed before applying; creating again", "attempt", attempt)
		case errors.As(err, &oe) && oe.Status == 429 && oe.RetryAfter > 0 && oe.RetryAfter <= c.maxWait:
			if serr := c.sleep(ctx, oe.RetryAfter); serr != nil {
				return nil, false, err
			}
		default:
			return nil, false, err
		}
	}
	return nil, false, lastErr
}

// findSettled is findBooking; with settle, an issue not found is searched
// for again, with backoff, until the settle time has been waited.
func (c *Client) findSettled(ctx context.Context, projectKey, bookingID string, settle bool) (*IssueRef, error) {
	wait, waited := 100*time.Millisecond, time.Duration(0)
	for {
		ref, err := c.findBooking(ctx, projectKey, bookingID)
		if err != nil || ref != nil || !settle || waited >= c.settle {
			return ref, err
		}
		d := min(wait, c.settle-waited)
		if err := c.sleep(ctx, d); err != nil {
			return nil, err
		}
		waited += d
		wait *= 2
	}
}

// FindBookingIssue returns the issue carrying the booking label of bookingID
// in project, or ErrNotFound.
func (c *Client) FindBookingIssue(ctx context.Context, projectKey, bookingID string) (*IssueRef, error) {
	ref, err := c.findBooking(ctx, projectKey, bookingID)
	if err != nil {
		return nil, err
	}
	if ref == nil {
		return nil, fmt.Errorf("jira: booking %s: %w", bookingID, ErrNotFound)
	}
	return ref, nil
}

func (c *Client) findBooking(ctx context.Context, projectKey, bookingID string) (*IssueRef, error) {
	jql := fmt.Sprintf("project = %s AND labels = %s ORDER BY created ASC", QuoteJQL(projectKey), QuoteJQL(BookingLabel(bookingID)))
	found, err := c.SearchJQL(ctx, jql, &SearchOptions{Fields: []string{"created"}, PageSize: 10, Limit: 10})
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, nil
	}
	if len(found) > 1 {
		c.log.WarnContext(ctx, "jira has several issues for one booking; using the oldest",
			"provider", Provider, "booking_id", bookingID, "issues", len(found), "issue", found[0].Key)
	}
	return &IssueRef{ID: found[0].ID, Key: found[0].Key, Self: found[0].Self}, nil
}

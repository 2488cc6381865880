package connect

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Info is a connection record. It never holds a secret.
type Info struct {
	UserSub      string
	Provider     string
	Status       string
	AccountEmail string
	// CalendarID is the chosen Google calendar id, or the CalDAV calendar path.
	CalendarID   string
	CalendarName string
	// CalendarURL is the absolute URL of the CalDAV calendar collection.
	CalendarURL string
	// ServerURL is the CalDAV server the user named.
	ServerURL string
	// BusyCalendars are the calendars whose busy time counts, as the user
	// chose them (MaxBusyCalendars at most); the chosen calendar counts
	// whether listed or not. Empty (never chosen): the chosen calendar
	// only. Busy gives the calendars that count.
	BusyCalendars []CalendarRef
	LastError     string
	ConnectedAt   time.Time
	UpdatedAt     time.Time
}

// CalendarRef names one calendar of a connected account.
type CalendarRef struct {
	// ID is the Google calendar id, or the CalDAV calendar's path.
	ID   string `json:"id"`
	Name string `json:"name"`
	// URL is the absolute URL of a CalDAV calendar collection (empty for Google).
	URL string `json:"url,omitempty"`
}

// Busy returns the calendars whose busy time counts for the connection:
// the chosen calendar first, then the other BusyCalendars in the user's
// order, none twice. Empty when no calendar is chosen.
func (in Info) Busy() []CalendarRef {
	if in.CalendarID == "" {
		return nil
	}
	out := []CalendarRef{{ID: in.CalendarID, Name: in.CalendarName, URL: in.CalendarURL}}
	for _, r := range in.BusyCalendars {
		if !slices.ContainsFunc(out, func(o CalendarRef) bool { return o.ID == r.ID }) {
			out = append(out, r)
		}
	}
	return out
}

// MaxBusyCalendars is the most calendars a connection's BusyCalendars
// lists (freebusy.query answers for at most 50 calendars at once).
const MaxBusyCalendars = 20

const connColumns = `user_sub, provider, status, account_email, calendar_id, calendar_name, calendar_url, server_url, busy_calendars, last_error, connected_at, updated_at`

func scanInfo(row interface{ Scan(...any) error }) (Info, error) {
	var in Info
	var connected, updated int64
	var busy string
	err := row.Scan(&in.UserSub, &in.Provider, &in.Status, &in.AccountEmail, &in.CalendarID, &in.CalendarName,
		&in.CalendarURL, &in.ServerURL, &busy, &in.LastError, &connected, &updated)
	in.ConnectedAt, in.UpdatedAt = fromMicros(connected), fromMicros(updated)
	if err == nil && busy != "" {
		if jerr := json.Unmarshal([]byte(busy), &in.BusyCalendars); jerr != nil {
			err = fmt.Errorf("busy_calendars of %s/%s is not a JSON list of calendars: %w", in.UserSub, in.Provider, jerr)
		}
	}
	return in, err
}

// encodeBusy is the busy_calendars column of refs (empty for none).
func encodeBusy(refs []CalendarRef) (string, error) {
	if len(refs) == 0 {
		return "", nil
	}
	b, err := json.Marshal(refs)
	if err != nil {
		return "", fmt.Errorf("connect: encode busy calendars: %w", err)
	}
	return string(b), nil
}

// get returns one connection or ErrNotConnected.
func (s *Service) get(ctx context.Context, sub, provider string) (Info, error) {
	row := s.db.DB().QueryRowContext(ctx, s.db.Rebind(`SELECT `+connColumns+` FROM connections WHERE user_sub = ? AND provider = ?`), sub, provider)
	in, err := scanInfo(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Info{}, fmt.Errorf("%w to %s", ErrNotConnected, provider)
	}
	if err != nil {
		return Info{}, fmt.Errorf("connect: read connection: %w", err)
	}
	return in, nil
}

// List returns the user's connections, the most recently connected first.
func (s *Service) List(ctx context.Context, sub string) ([]Info, error) {
	return s.query(ctx, `SELECT `+connColumns+` FROM connections WHERE user_sub = ? ORDER BY connected_at DESC, provider`, sub)
}

// Connected returns every connected user of a provider (e.g. for CalDAV polling).
func (s *Service) Connected(ctx context.Context, provider string) ([]Info, error) {
	return s.query(ctx, `SELECT `+connColumns+` FROM connections WHERE provider = ? AND status = ? ORDER BY user_sub`, provider, StatusConnected)
}

func (s *Service) query(ctx context.Context, q string, args ...any) ([]Info, error) {
	rows, err := s.db.DB().QueryContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("connect: list connections: %w", err)
	}
	defer rows.Close()
	var out []Info
	for rows.Next() {
		in, err := scanInfo(rows)
		if err != nil {
			return nil, fmt.Errorf("connect: list connections: %w", err)
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// upsert writes a connected record (resetting status, error and sync cursor).
func (s *Service) upsert(ctx context.Context, in Info) error {
	now := micros(s.now())
	busy, err := encodeBusy(in.BusyCalendars)
	if err != nil {
		return err
	}
	_, err = s.db.DB().ExecContext(ctx, s.db.Rebind(`INSERT INTO connections
		(user_sub, provider, status, account_email, calendar_id, calendar_name, calendar_url, server_url, busy_calendars, last_error, sync_cursor, connected_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', ?, ?)
		ON CONFLICT (user_sub, provider) DO UPDATE SET status = excluded.status, account_email = excluded.account_email,
		calendar_id = excluded.calendar_id, calendar_name = excluded.calendar_name, calendar_url = excluded.calendar_url,
		server_url = excluded.server_url, busy_calendars = excluded.busy_calendars, last_error = '', sync_cursor = '',
		connected_at = excluded.connected_at, updated_at = excluded.updated_at`),
		in.UserSub, in.Provider, StatusConnected, in.AccountEmail, in.CalendarID, in.CalendarName, in.CalendarURL, in.ServerURL, busy, now, now)
	if err != nil {
		return fmt.Errorf("connect: save connection: %w", err)
	}
	return nil
}

// setCalendar records a newly chosen calendar and forgets the sync cursor;
// a connection in status error (its calendar was gone) is connected again.
// busy, when not nil, replaces the busy calendars in the same statement.
func (s *Service) setCalendar(ctx context.Context, sub, provider, id, name, calURL string, busy *[]CalendarRef) error {
	var busyCol sql.NullString
	if busy != nil {
		enc, err := encodeBusy(*busy)
		if err != nil {
			return err
		}
		busyCol = sql.NullString{String: enc, Valid: true}
	}
	// A connection whose calendar was gone (status error) works again.
	_, err := s.db.DB().ExecContext(ctx, s.db.Rebind(`UPDATE connections SET calendar_id = ?, calendar_name = ?, calendar_url = ?,
		busy_calendars = COALESCE(?, busy_calendars), sync_cursor = '', updated_at = ?,
		last_error = CASE WHEN status = ? THEN '' ELSE last_error END,
		status = CASE WHEN status = ? THEN ? ELSE status END
		WHERE user_sub = ? AND provider = ?`), id, name, calURL, busyCol, micros(s.now()), StatusError, StatusError, StatusConnected, sub, provider)
	if err != nil {
		return fmt.Errorf("connect: choose calendar: %w", err)
	}
	return nil
}

// setBusyCalendars records the calendars whose busy time counts.
func (s *Service) setBusyCalendars(ctx context.Context, sub, provider string, refs []CalendarRef) error {
	busy, err := encodeBusy(refs)
	if err != nil {
		return err
	}
	_, err = s.db.DB().ExecContext(ctx, s.db.Rebind(`UPDATE connections SET busy_calendars = ?, updated_at = ?
		WHERE user_sub = ? AND provider = ?`), busy, micros(s.now()), sub, provider)
	if err != nil {
		return fmt.Errorf("connect: set busy calendars: %w", err)
	}
	return nil
}

// setStatus marks a connection (no-op when it does not exist).
func (s *Service) setStatus(ctx context.Context, sub, provider, status, lastError string) error {
	_, err := s.db.DB().ExecContext(ctx, s.db.Rebind(`UPDATE connections SET status = ?, last_error = ?, updated_at = ?
		WHERE user_sub = ? AND provider = ?`), status, lastError, micros(s.now()), sub, provider)
	if err != nil {
		return fmt.Errorf("connect: set status: %w", err)
	}
	return nil
}

// markNeedsReauth records a revocation, logging it once.
func (s *Service) markNeedsReauth(ctx context.Context, sub, provider, why string) {
	if err := s.setStatus(context.WithoutCancel(ctx), sub, provider, StatusNeedsReauth, why); err != nil {
		s.log.ErrorContext(ctx, "mark connection needs_reauth", "provider", provider, "sub", sub, "error", err.Error())
		return
	}
	s.log.WarnContext(ctx, "connection needs reauthorization", "provider", provider, "sub", sub, "reason", why)
}

// calendarGoneReason is the last_error of a connection whose calendar is gone.
const calendarGoneReason = "the connected calendar no longer exists or is no longer shared with the account; choose another calendar"

// markCalendarGone gives the connection in status error when it is still
// connected to the same calendar, logging it once.
func (s *Service) markCalendarGone(ctx context.Context, in Info) {
	res, err := s.db.DB().ExecContext(context.WithoutCancel(ctx), s.db.Rebind(`UPDATE connections SET status = ?, last_error = ?, updated_at = ?
		WHERE user_sub = ? AND provider = ? AND calendar_id = ? AND status = ?`),
		StatusError, calendarGoneReason, micros(s.now()), in.UserSub, in.Provider, in.CalendarID, StatusConnected)
	if err != nil {
		s.log.ErrorContext(ctx, "mark connection error", "provider", in.Provider, "sub", in.UserSub, "error", err.Error())
		return
	}
	if n, _ := res.RowsAffected(); n > 0 {
		s.log.WarnContext(ctx, "connected calendar is gone", "provider", in.Provider, "sub", in.UserSub, "reason", calendarGoneReason)
	}
}

// deleteRecords removes the connection and its channels, leases and states.
func (s *Service) deleteRecords(ctx context.Context, sub, provider string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM connections WHERE user_sub = ? AND provider = ?`,
			`DELETE FROM calendar_channels WHERE user_sub = ? AND provider = ?`,
			`DELETE FROM token_leases WHERE user_sub = ? AND provider = ?`,
		} {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(q), sub, provider); err != nil {
				return fmt.Errorf("connect: delete connection: %w", err)
			}
		}
		return nil
	})
}

// SyncCursor returns the stored change-sync cursor of a connection ("" when
// never synced or after the calendar changed); ErrNotConnected without one.
func (s *Service) SyncCursor(ctx context.Context, sub, provider string) (string, error) {
	var cur string
	err := s.db.DB().QueryRowContext(ctx, s.db.Rebind(`SELECT sync_cursor FROM connections WHERE user_sub = ? AND provider = ?`), sub, provider).Scan(&cur)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w to %s", ErrNotConnected, provider)
	}
	if err != nil {
		return "", fmt.Errorf("connect: read sync cursor: %w", err)
	}
	return cur, nil
}

// SetSyncCursor stores the change-sync cursor of a connection.
func (s *Service) SetSyncCursor(ctx context.Context, sub, provider, cursor string) error {
	res, err := s.db.DB().ExecContext(ctx, s.db.Rebind(`UPDATE connections SET sync_cursor = ? WHERE user_sub = ? AND provider = ?`), cursor, sub, provider)
	if err != nil {
		return fmt.Errorf("connect: store sync cursor: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w to %s", ErrNotConnected, provider)
	}
	return nil
}

// acquireLease takes the refresh lease of (sub, provider) for holder unless
// another holder has an unexpired one.
func (s *Service) acquireLease(ctx context.Context, sub, provider, holder string) (bool, error) {
	now := s.now()
	res, err := s.db.DB().ExecContext(ctx, s.db.Rebind(`INSERT INTO token_leases (user_sub, provider, holder, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_sub, provider) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE token_leases.expires_at < ?`), sub, provider, holder, micros(now.Add(s.cfg.LeaseTTL)), micros(now))
	if err != nil {
		return false, fmt.Errorf("connect: refresh lease: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("connect: refresh lease: %w", err)
	}
	return n == 1, nil
}

func (s *Service) releaseLease(ctx context.Context, sub, provider, holder string) {
	_, err := s.db.DB().ExecContext(context.WithoutCancel(ctx), s.db.Rebind(`DELETE FROM token_leases WHERE user_sub = ? AND provider = ? AND holder = ?`), sub, provider, holder)
	if err != nil {
		s.log.WarnContext(ctx, "release refresh lease", "provider", provider, "sub", sub, "error", err.Error())
	}
}

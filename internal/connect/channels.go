package connect

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/gcal"
)

// Channel is a Google push channel on a user's calendar. The channel token
// is not kept: only its SHA-256 hash, checked by VerifyChannelToken.
type Channel struct {
	ID         string
	UserSub    string
	CalendarID string
	ResourceID string
	Expiration time.Time
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

const channelColumns = `channel_id, user_sub, calendar_id, resource_id, token_hash, expires_at`

func scanChannel(row interface{ Scan(...any) error }) (Channel, []byte, error) {
	var c Channel
	var hash []byte
	var exp int64
	err := row.Scan(&c.ID, &c.UserSub, &c.CalendarID, &c.ResourceID, &hash, &exp)
	c.Expiration = fromMicros(exp)
	return c, hash, err
}

// LookupChannel returns a channel by id, or ErrUnknownChannel.
func (s *Service) LookupChannel(ctx context.Context, channelID string) (Channel, error) {
	c, _, err := s.lookupChannel(ctx, channelID)
	return c, err
}

func (s *Service) lookupChannel(ctx context.Context, channelID string) (Channel, []byte, error) {
	row := s.db.DB().QueryRowContext(ctx, s.db.Rebind(`SELECT `+channelColumns+` FROM calendar_channels WHERE channel_id = ?`), channelID)
	c, hash, err := scanChannel(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Channel{}, nil, ErrUnknownChannel
	}
	if err != nil {
		return Channel{}, nil, fmt.Errorf("connect: read channel: %w", err)
	}
	return c, hash, nil
}

// VerifyChannelToken returns the channel when token is its token
// (X-Goog-Channel-Token), comparing hashes in constant time. An unknown
// channel and a wrong token both give ErrUnknownChannel.
func (s *Service) VerifyChannelToken(ctx context.Context, channelID, token string) (Channel, error) {
	c, hash, err := s.lookupChannel(ctx, channelID)
	got := tokenHash(token)
	if errors.Is(err, ErrUnknownChannel) {
		subtle.ConstantTimeCompare(got, make([]byte, len(got))) // same work as a known channel
		return Channel{}, ErrUnknownChannel
	}
	if err != nil {
		return Channel{}, err
	}
	if subtle.ConstantTimeCompare(got, hash) != 1 {
		return Channel{}, ErrUnknownChannel
	}
	return c, nil
}

func (s *Service) userChannels(ctx context.Context, sub string) ([]Channel, error) {
	rows, err := s.db.DB().QueryContext(ctx, s.db.Rebind(`SELECT `+channelColumns+` FROM calendar_channels WHERE user_sub = ? AND provider = ?`), sub, ProviderGoogle)
	if err != nil {
		return nil, fmt.Errorf("connect: list channels: %w", err)
	}
	defer rows.Close()
	var out []Channel
	for rows.Next() {
		c, _, err := scanChannel(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *Service) insertChannel(ctx context.Context, tx *sql.Tx, sub string, ch gcal.Channel) error {
	_, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO calendar_channels (channel_id, user_sub, provider, calendar_id, resource_id, token_hash, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), ch.ID, sub, ProviderGoogle, ch.CalendarID, ch.ResourceID, tokenHash(ch.Token), micros(ch.Expiration), micros(s.now()))
	if err != nil {
		return fmt.Errorf("connect: store channel: %w", err)
	}
	return nil
}

func (s *Service) deleteChannel(ctx context.Context, id string) error {
	_, err := s.db.DB().ExecContext(ctx, s.db.Rebind(`DELETE FROM calendar_channels WHERE channel_id = ?`), id)
	return err
}

// stopChannels stops (best effort) and forgets every channel of sub.
func (s *Service) stopChannels(ctx context.Context, sub string, ts oauth2.TokenSource) {
	chans, err := s.userChannels(ctx, sub)
	if err != nil {
		s.log.WarnContext(ctx, "list push channels", "provider", ProviderGoogle, "sub", sub, "error", err.Error())
		return
	}
	if len(chans) == 0 {
		return
	}
	cl, err := s.newGoogleClient(ctx, ts, "primary")
	for _, c := range chans {
		if err == nil {
			if serr := cl.StopChannel(ctx, gcal.Channel{ID: c.ID, ResourceID: c.ResourceID}); serr != nil {
				s.log.WarnContext(ctx, "stop push channel", "provider", ProviderGoogle, "sub", sub, "channel_id", c.ID, "error", serr.Error())
			}
		}
		if derr := s.deleteChannel(ctx, c.ID); derr != nil {
			s.log.WarnContext(ctx, "forget push channel", "provider", ProviderGoogle, "sub", sub, "error", derr.Error())
		}
	}
}

// rewatch replaces sub's push channels by one on calendarID. Push is an
// optimisation (the change sync also runs periodically), so failures are
// logged, not returned.
func (s *Service) rewatch(ctx context.Context, sub, calendarID string) {
	ts := s.TokenSource(sub)
	s.stopChannels(ctx, sub, ts)
	cl, err := s.newGoogleClient(ctx, ts, calendarID)
	if err == nil {
		var ch gcal.Channel
		ch, err = cl.Watch(ctx, calendarID, s.PushURL(), s.cfg.Google.ChannelTTL)
		if err == nil {
			err = s.db.InTx(ctx, func(tx *sql.Tx) error { return s.insertChannel(ctx, tx, sub, ch) })
		}
	}
	if err != nil {
		s.log.WarnContext(ctx, "open push channel failed; changes are found by the periodic sync", "provider", ProviderGoogle, "sub", sub, "error", err.Error())
	}
}

// RenewChannels replaces every channel that expires before the given time
// (run it periodically, e.g. hourly with before = now + 24h). Channels of
// users who disconnected or must reconnect are dropped. It returns how many
// channels were renewed; errors of single channels are joined.
func (s *Service) RenewChannels(ctx context.Context, before time.Time) (int, error) {
	rows, err := s.db.DB().QueryContext(ctx, s.db.Rebind(`SELECT `+channelColumns+` FROM calendar_channels WHERE provider = ? AND expires_at < ? ORDER BY expires_at`),
		ProviderGoogle, micros(before))
	if err != nil {
		return 0, fmt.Errorf("connect: list expiring channels: %w", err)
	}
	var due []Channel
	for rows.Next() {
		c, _, err := scanChannel(rows)
		if err != nil {
			rows.Close()
			return 0, err
		}
		due = append(due, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	renewed := 0
	var errs []error
	for _, old := range due {
		in, err := s.get(ctx, old.UserSub, ProviderGoogle)
		if err != nil || in.Status != StatusConnected || in.CalendarID != old.CalendarID {
			// Gone, revoked, or a stale channel of a previous calendar.
			if derr := s.deleteChannel(ctx, old.ID); derr != nil {
				errs = append(errs, derr)
			}
			continue
		}
		cl, err := s.googleClient(ctx, old.UserSub, old.CalendarID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ch, err := cl.RenewChannel(ctx, gcal.Channel{ID: old.ID, ResourceID: old.ResourceID, CalendarID: old.CalendarID}, s.PushURL(), s.cfg.Google.ChannelTTL)
		if err != nil {
			if revoked(err) {
				_ = s.deleteChannel(ctx, old.ID)
				continue
			}
			if errors.Is(err, calendar.ErrCalendarNotFound) {
				s.markCalendarGone(ctx, in)
				_ = s.deleteChannel(ctx, old.ID)
				continue
			}
			errs = append(errs, fmt.Errorf("connect: renew channel of %s: %w", old.UserSub, err))
			continue
		}
		err = s.db.InTx(ctx, func(tx *sql.Tx) error {
			if err := s.insertChannel(ctx, tx, old.UserSub, ch); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM calendar_channels WHERE channel_id = ?`), old.ID)
			return err
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		renewed++
	}
	return renewed, errors.Join(errs...)
}

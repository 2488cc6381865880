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
//
// A channel replaced by its renewal is kept until it expires, so that a
// notification it delivered before the renewal still leads to a sync of
// its calendar when it is processed after it (LookupChannel); it is
// accepted as a sender (VerifyChannelToken) only until it is stopped at
// Google. Disconnecting or choosing another calendar forgets every channel
// of the user, replaced ones included.
//
// A channel is stored before events.watch opens it, because Google sends
// its first notification (resource state "sync") as soon as it exists,
// possibly before the watch call answers: until the answer fills in its
// ResourceID and Expiration the channel is pending (ResourceID is empty).
// A pending channel is accepted as a sender while its watch call may still
// run (watchTimeout), and is never renewed; a failed watch forgets it.
// One older than orphanAfter was opened by a replica that stopped before
// the answer came: its first notification, which carries its resource id,
// has it stopped at Google (VerifyChannelToken), and it is forgotten once
// it would have expired anyway (retireChannels).
type Channel struct {
	ID         string
	UserSub    string
	CalendarID string
	ResourceID string
	Expiration time.Time
	// ReplacedBy is the id of the channel that replaced this one when it
	// was renewed; "" for the channel in use; its own id for an orphaned
	// channel (see VerifyChannelToken), which nothing replaces.
	ReplacedBy string
	// Stopped is when channels.stop stopped this replaced channel; zero
	// while it may still deliver (the stop failed or is yet to come).
	Stopped time.Time

	created time.Time
}

// pending reports whether c is being opened: stored before events.watch
// answered, it has no resource id and no expiration yet.
func (c Channel) pending() bool { return c.ResourceID == "" }

// delivers reports whether Google may still send notifications on c at now:
// it is being opened, or it has not expired and was not stopped.
func (c Channel) delivers(now time.Time) bool {
	return c.pending() || now.Before(c.Expiration) && c.Stopped.IsZero()
}

// watchTimeout bounds the events.watch call that opens a channel
// (openChannel): a pending channel older than that has no call waiting
// for its answer any more.
const watchTimeout = 2 * time.Minute

// orphanAfter is the age from which a pending channel is orphaned: its
// watch call is over (watchTimeout), with a margin for the clocks of the
// replicas and a slow database. Its notifications have it stopped
// (VerifyChannelToken).
const orphanAfter = 10 * time.Minute

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

const channelColumns = `channel_id, user_sub, calendar_id, resource_id, token_hash, expires_at, replaced_by, stopped_at, created_at`

func scanChannel(row interface{ Scan(...any) error }) (Channel, []byte, error) {
	var c Channel
	var hash []byte
	var exp, stopped, created int64
	err := row.Scan(&c.ID, &c.UserSub, &c.CalendarID, &c.ResourceID, &hash, &exp, &c.ReplacedBy, &stopped, &created)
	c.Expiration, c.created = fromMicros(exp), fromMicros(created)
	if stopped != 0 {
		c.Stopped = fromMicros(stopped)
	}
	return c, hash, err
}

// LookupChannel returns a channel by id, or ErrUnknownChannel: the channel
// in use, or one replaced by its renewal until it expires (the calendar and
// user a notification it delivered is about).
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
// (X-Goog-Channel-Token), comparing hashes in constant time, and Google may
// still deliver on it: it has not expired, and a channel replaced by its
// renewal was not stopped yet (its stop failed). A pending channel (see
// Channel) is accepted while its watch call may still run: its "sync"
// message may come before events.watch answered. An unknown, expired or
// stopped channel and a wrong token all give ErrUnknownChannel.
//
// A pending channel older than orphanAfter is orphaned: the replica that
// opened it stopped before the watch answered. Its notification carries
// the resource id (resourceID, X-Goog-Resource-ID) the answer would have
// given, so it is stopped at Google with it (stopOrphaned) and
// ErrOrphanedChannel returned: a genuine channel of the gateway, whose
// notifications are not processed.
func (s *Service) VerifyChannelToken(ctx context.Context, channelID, token, resourceID string) (Channel, error) {
	c, hash, err := s.lookupChannel(ctx, channelID)
	got := tokenHash(token)
	if errors.Is(err, ErrUnknownChannel) {
		subtle.ConstantTimeCompare(got, make([]byte, len(got))) // same work as a known channel
		return Channel{}, ErrUnknownChannel
	}
	if err != nil {
		return Channel{}, err
	}
	if subtle.ConstantTimeCompare(got, hash) != 1 || !c.delivers(s.now()) {
		return Channel{}, ErrUnknownChannel
	}
	if c.pending() && !c.created.After(s.now().Add(-orphanAfter)) {
		if resourceID == "" {
			return Channel{}, ErrUnknownChannel
		}
		return Channel{}, s.stopOrphaned(ctx, c, resourceID)
	}
	return c, nil
}

// stopOrphaned stops the orphaned pending channel c (see
// VerifyChannelToken) with the resource id its notification named. It
// first completes c in the database as a channel replaced by nothing
// (replaced_by is its own id) that expires when its watch asked it to,
// only if it is still pending: so a late watch answer can no longer
// complete it (openChannel then stops it itself), it is never renewed, and
// a failed stop is tried again by the next renewal run (retireChannels),
// as for a replaced channel; it is forgotten once expired. A notification
// racing this one finds it completed and is accepted as a replaced
// channel's until the stop succeeded.
func (s *Service) stopOrphaned(ctx context.Context, c Channel, resourceID string) error {
	c.ResourceID, c.ReplacedBy = resourceID, c.ID
	c.Expiration = c.created.Add(s.cfg.Google.ChannelTTL)
	res, err := s.db.DB().ExecContext(ctx, s.db.Rebind(`UPDATE calendar_channels SET resource_id = ?, expires_at = ?, replaced_by = ?
		WHERE channel_id = ? AND resource_id = ''`), c.ResourceID, micros(c.Expiration), c.ReplacedBy, c.ID)
	if err != nil {
		return fmt.Errorf("connect: claim orphaned channel: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		// Completed or forgotten meanwhile: as the next notification
		// will find it.
		return errors.Join(ErrUnknownChannel, err)
	}
	s.log.InfoContext(ctx, "stopping a push channel its replica left pending", "provider", ProviderGoogle, "sub", c.UserSub, "channel_id", c.ID)
	cl, err := s.googleClient(ctx, c.UserSub, c.CalendarID)
	if err != nil {
		s.log.WarnContext(ctx, "stop orphaned push channel; the next renewal run tries again", "provider", ProviderGoogle, "sub", c.UserSub, "error", err.Error())
		return ErrOrphanedChannel
	}
	s.stopReplaced(ctx, cl, c)
	return ErrOrphanedChannel
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

// insertPending stores ch (from gcal.NewChannel) as a pending channel of
// sub: without resource id and expiration, which the watch answer gives.
func (s *Service) insertPending(ctx context.Context, sub string, ch gcal.Channel) error {
	_, err := s.db.DB().ExecContext(ctx, s.db.Rebind(`INSERT INTO calendar_channels (channel_id, user_sub, provider, calendar_id, resource_id, token_hash, expires_at, created_at)
		VALUES (?, ?, ?, ?, '', ?, 0, ?)`), ch.ID, sub, ProviderGoogle, ch.CalendarID, tokenHash(ch.Token), micros(s.now()))
	if err != nil {
		return fmt.Errorf("connect: store channel: %w", err)
	}
	return nil
}

// openChannel opens a push channel of sub on calendarID with cl. The
// channel is stored, pending, before events.watch is called, so that its
// "sync" message, which may come before the answer, is accepted; the answer
// completes it, and complete, when not nil, runs in the same transaction
// (a renewal marks the old channel replaced there). A failed watch forgets
// the channel. When the pending channel was forgotten meanwhile (a
// disconnect or another calendar chosen: errChannelReplaced), the
// connection no longer watches calendarID (disconnected, another calendar
// chosen by another replica, not connected any more: errChannelReplaced
// too) or complete fails, the opened channel is stopped and forgotten:
// unknown to the gateway, it would only be refused, and on a calendar the
// connection left it would only cost notifications.
func (s *Service) openChannel(ctx context.Context, cl *gcal.Client, sub, calendarID string, complete func(tx *sql.Tx, ch gcal.Channel) error) (gcal.Channel, error) {
	ch, err := gcal.NewChannel(calendarID)
	if err != nil {
		return gcal.Channel{}, err
	}
	if err := s.insertPending(ctx, sub, ch); err != nil {
		return gcal.Channel{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, watchTimeout)
	opened, err := cl.Open(wctx, ch, s.PushURL(), s.cfg.Google.ChannelTTL)
	cancel()
	if err != nil {
		if derr := s.deleteChannel(context.WithoutCancel(ctx), ch.ID); derr != nil {
			s.log.WarnContext(ctx, "forget unopened push channel", "provider", ProviderGoogle, "sub", sub, "error", derr.Error())
		}
		return gcal.Channel{}, err
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		// The connection still watches calendarID. The update takes the
		// connection's row lock first, as a disconnect's deleteRecords
		// does, so a calendar choice (setCalendar) either committed before,
		// and the channel is not stored, or waits for this transaction, and
		// its rewatch lists the channel and stops it.
		res, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE connections SET updated_at = updated_at
			WHERE user_sub = ? AND provider = ? AND calendar_id = ? AND status = ?`), sub, ProviderGoogle, calendarID, StatusConnected)
		if err != nil {
			return fmt.Errorf("connect: check connection of opened channel: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errors.Join(errChannelReplaced, err)
		}
		res, err = tx.ExecContext(ctx, s.db.Rebind(`UPDATE calendar_channels SET resource_id = ?, expires_at = ? WHERE channel_id = ? AND resource_id = ''`),
			opened.ResourceID, micros(opened.Expiration), opened.ID)
		if err != nil {
			return fmt.Errorf("connect: store opened channel: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errors.Join(errChannelReplaced, err)
		}
		if complete != nil {
			return complete(tx, opened)
		}
		return nil
	})
	if err != nil {
		nc := context.WithoutCancel(ctx)
		if serr := cl.StopChannel(nc, opened); serr != nil {
			s.log.WarnContext(ctx, "stop unstored push channel", "provider", ProviderGoogle, "sub", sub, "error", serr.Error())
		}
		if derr := s.deleteChannel(nc, opened.ID); derr != nil {
			s.log.WarnContext(ctx, "forget unstored push channel", "provider", ProviderGoogle, "sub", sub, "error", derr.Error())
		}
		return gcal.Channel{}, err
	}
	return opened, nil
}

func (s *Service) deleteChannel(ctx context.Context, id string) error {
	_, err := s.db.DB().ExecContext(ctx, s.db.Rebind(`DELETE FROM calendar_channels WHERE channel_id = ?`), id)
	return err
}

// stopChannels stops (best effort) and forgets every channel of sub,
// replaced and pending ones included: their notifications are refused from
// then on, and those stored before are not processed (LookupChannel no
// longer knows them). A pending channel is not stopped here (its resource
// id is not known yet): the openChannel waiting for its watch answer finds
// it gone and stops it. A channel that a renewal run (another replica)
// replaced after the list was read is stopped and forgotten with the one it
// replaced (forgetChannel).
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
	if err != nil {
		cl = nil
	}
	done := map[string]bool{}
	for _, c := range chans {
		s.forgetChannel(ctx, cl, sub, c, done)
	}
}

// forgetChannel stops c at Google (when cl is not nil and c may still
// deliver) and deletes it, then does the same for the channel that replaced
// it, if any. A renewal marks the channel it renews replaced in the
// transaction that stores its successor, and fails when the channel is
// gone: so either the renewal failed (and stops its successor itself), or
// the delete reads which channel replaced it, and that one is forgotten too.
// done holds the ids forgotten already.
func (s *Service) forgetChannel(ctx context.Context, cl *gcal.Client, sub string, c Channel, done map[string]bool) {
	for !done[c.ID] {
		done[c.ID] = true
		if cl != nil && c.Stopped.IsZero() && !c.pending() {
			if serr := cl.StopChannel(ctx, gcal.Channel{ID: c.ID, ResourceID: c.ResourceID}); serr != nil {
				s.log.WarnContext(ctx, "stop push channel", "provider", ProviderGoogle, "sub", sub, "channel_id", c.ID, "error", serr.Error())
			}
		}
		var next string
		err := s.db.DB().QueryRowContext(ctx, s.db.Rebind(`DELETE FROM calendar_channels WHERE channel_id = ? RETURNING replaced_by`), c.ID).Scan(&next)
		if errors.Is(err, sql.ErrNoRows) || err == nil && next == "" {
			return
		}
		if err != nil {
			s.log.WarnContext(ctx, "forget push channel", "provider", ProviderGoogle, "sub", sub, "error", err.Error())
			return
		}
		if c, _, err = s.lookupChannel(ctx, next); err != nil {
			if !errors.Is(err, ErrUnknownChannel) {
				s.log.WarnContext(ctx, "read replacing push channel", "provider", ProviderGoogle, "sub", sub, "error", err.Error())
			}
			return
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
		_, err = s.openChannel(ctx, cl, sub, calendarID, nil)
	}
	switch {
	case errors.Is(err, errChannelReplaced):
		s.log.InfoContext(ctx, "push channel not kept: the connection changed meanwhile", "provider", ProviderGoogle, "sub", sub)
	case err != nil:
		s.log.WarnContext(ctx, "open push channel failed; changes are found by the periodic sync", "provider", ProviderGoogle, "sub", sub, "error", err.Error())
	}
}

// RenewChannels replaces every channel that expires before the given time
// (run it periodically, e.g. hourly with before = now + 24h), and opens one
// for every connection that has none Google delivers on (watchUnwatched).
// Channels of users who disconnected or must reconnect are dropped. It
// returns the channels it opened (the callers sync their calendars: see
// below); errors of single channels are joined.
//
// A renewal opens the new channel and stores it before it stops the old
// one (stored pending before events.watch, see Channel), so every change
// is notified on a channel the gateway accepts, the new one's "sync"
// message included; pending channels are not renewed; the
// old one is kept, marked replaced, until it expires (see Channel). A
// replaced channel whose stop failed is stopped again on the next run;
// replaced channels that expired are forgotten. A notification the old
// channel sent before its stop and that arrives (or is retried) after it is
// refused; its change is found by syncing the renewed channel's calendar
// after the renewal, which the caller does.
func (s *Service) RenewChannels(ctx context.Context, before time.Time) ([]Channel, error) {
	var errs []error
	if err := s.retireChannels(ctx); err != nil {
		errs = append(errs, err)
	}
	rows, err := s.db.DB().QueryContext(ctx, s.db.Rebind(`SELECT `+channelColumns+` FROM calendar_channels
		WHERE provider = ? AND replaced_by = '' AND resource_id <> '' AND expires_at < ? ORDER BY expires_at`), ProviderGoogle, micros(before))
	if err != nil {
		return nil, errors.Join(append(errs, fmt.Errorf("connect: list expiring channels: %w", err))...)
	}
	var due []Channel
	for rows.Next() {
		c, _, err := scanChannel(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		due = append(due, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var renewed []Channel
	for _, old := range due {
		ch, ok, err := s.renewChannel(ctx, old)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			renewed = append(renewed, ch)
		}
	}
	opened, err := s.watchUnwatched(ctx)
	return append(renewed, opened...), errors.Join(append(errs, err)...)
}

// watchUnwatched opens a channel on the calendar of every connected Google
// connection that has none Google delivers on: its watch failed when the
// user connected or chose the calendar (Google unavailable), or the replica
// that called it stopped before the answer (the channel is orphaned, see
// VerifyChannelToken). Without it such a connection had no push until the
// user connected again, only the periodic sync. A channel pending for less
// than orphanAfter counts as one in use (its watch may still answer).
func (s *Service) watchUnwatched(ctx context.Context) ([]Channel, error) {
	rows, err := s.db.DB().QueryContext(ctx, s.db.Rebind(`SELECT user_sub, calendar_id FROM connections c
		WHERE provider = ? AND status = ? AND calendar_id <> '' AND NOT EXISTS (SELECT 1 FROM calendar_channels ch
			WHERE ch.provider = c.provider AND ch.user_sub = c.user_sub AND ch.calendar_id = c.calendar_id
			AND ch.replaced_by = '' AND (ch.resource_id <> '' OR ch.created_at > ?))
		ORDER BY user_sub`), ProviderGoogle, StatusConnected, micros(s.now().Add(-orphanAfter)))
	if err != nil {
		return nil, fmt.Errorf("connect: list connections without push: %w", err)
	}
	type unwatched struct{ sub, calendarID string }
	var todo []unwatched
	for rows.Next() {
		var u unwatched
		if err := rows.Scan(&u.sub, &u.calendarID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("connect: list connections without push: %w", err)
		}
		todo = append(todo, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("connect: list connections without push: %w", err)
	}
	var opened []Channel
	var errs []error
	for _, u := range todo {
		cl, err := s.googleClient(ctx, u.sub, u.calendarID)
		if err == nil {
			var ch gcal.Channel
			ch, err = s.openChannel(ctx, cl, u.sub, u.calendarID, func(tx *sql.Tx, ch gcal.Channel) error {
				// Another replica's connect or calendar choice opened one
				// meanwhile: keep that one.
				var n int
				err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM calendar_channels WHERE provider = ? AND user_sub = ?
					AND calendar_id = ? AND channel_id <> ? AND replaced_by = '' AND (resource_id <> '' OR created_at > ?)`),
					ProviderGoogle, u.sub, u.calendarID, ch.ID, micros(s.now().Add(-orphanAfter))).Scan(&n)
				if err != nil {
					return fmt.Errorf("connect: check channels of %s: %w", u.sub, err)
				}
				if n > 0 {
					return errChannelReplaced
				}
				return nil
			})
			if err == nil {
				opened = append(opened, Channel{ID: ch.ID, UserSub: u.sub, CalendarID: u.calendarID, ResourceID: ch.ResourceID, Expiration: ch.Expiration})
				s.log.InfoContext(ctx, "push channel opened for a connection that had none", "provider", ProviderGoogle, "sub", u.sub)
				continue
			}
		}
		switch {
		case errors.Is(err, errChannelReplaced):
		case revoked(err) || errors.Is(err, calendar.ErrCalendarNotFound):
			// The connection's own calls find it needs_reauth or its
			// calendar gone; nothing to watch until then.
		default:
			errs = append(errs, fmt.Errorf("connect: open push channel of %s: %w", u.sub, err))
		}
	}
	return opened, errors.Join(errs...)
}

// errChannelReplaced: the channel being opened or renewed was renewed or
// forgotten (a disconnect, another calendar chosen) meanwhile, or the
// connection no longer watches its calendar.
var errChannelReplaced = errors.New("connect: channel renewed or forgotten meanwhile")

// renewChannel replaces old by a new channel on the same calendar and
// reports whether it did.
func (s *Service) renewChannel(ctx context.Context, old Channel) (Channel, bool, error) {
	in, err := s.get(ctx, old.UserSub, ProviderGoogle)
	if err != nil || in.Status != StatusConnected || in.CalendarID != old.CalendarID {
		// Gone, revoked, or a stale channel of a previous calendar.
		return Channel{}, false, s.deleteChannel(ctx, old.ID)
	}
	cl, err := s.googleClient(ctx, old.UserSub, old.CalendarID)
	if err != nil {
		return Channel{}, false, err
	}
	ch, err := s.openChannel(ctx, cl, old.UserSub, old.CalendarID, func(tx *sql.Tx, ch gcal.Channel) error {
		res, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE calendar_channels SET replaced_by = ? WHERE channel_id = ? AND replaced_by = ''`), ch.ID, old.ID)
		if err != nil {
			return fmt.Errorf("connect: mark channel replaced: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errors.Join(errChannelReplaced, err)
		}
		return nil
	})
	switch {
	case err == nil:
	case revoked(err):
		_ = s.deleteChannel(ctx, old.ID)
		return Channel{}, false, nil
	case errors.Is(err, calendar.ErrCalendarNotFound):
		s.markCalendarGone(ctx, in)
		_ = s.deleteChannel(ctx, old.ID)
		return Channel{}, false, nil
	case errors.Is(err, errChannelReplaced):
		return Channel{}, false, nil
	default:
		return Channel{}, false, fmt.Errorf("connect: renew channel of %s: %w", old.UserSub, err)
	}
	s.stopReplaced(ctx, cl, old)
	return Channel{ID: ch.ID, UserSub: old.UserSub, CalendarID: old.CalendarID, ResourceID: ch.ResourceID, Expiration: ch.Expiration}, true, nil
}

// stopReplaced stops a replaced channel at Google and records it: from then
// on its notifications are refused. A failure is logged; the next renewal
// run tries again, and the channel expires by itself anyway.
func (s *Service) stopReplaced(ctx context.Context, cl *gcal.Client, old Channel) {
	if err := cl.StopChannel(ctx, gcal.Channel{ID: old.ID, ResourceID: old.ResourceID}); err != nil {
		s.log.WarnContext(ctx, "stop replaced push channel; it is accepted until it is stopped or expires", "provider", ProviderGoogle,
			"sub", old.UserSub, "channel_id", old.ID, "error", err.Error())
		return
	}
	if _, err := s.db.DB().ExecContext(ctx, s.db.Rebind(`UPDATE calendar_channels SET stopped_at = ? WHERE channel_id = ?`), micros(s.now()), old.ID); err != nil {
		s.log.WarnContext(ctx, "record stopped push channel", "provider", ProviderGoogle, "sub", old.UserSub, "channel_id", old.ID, "error", err.Error())
	}
}

// retireChannels forgets the replaced channels that expired and the
// pending ones that would have expired (their replica stopped before the
// watch answered, and no notification came to have them stopped: see
// VerifyChannelToken), and stops again the replaced ones whose stop failed
// (orphaned ones included).
func (s *Service) retireChannels(ctx context.Context) error {
	now := micros(s.now())
	if _, err := s.db.DB().ExecContext(ctx, s.db.Rebind(`DELETE FROM calendar_channels WHERE provider = ? AND (replaced_by <> '' AND expires_at <= ?
		OR resource_id = '' AND created_at <= ?)`), ProviderGoogle, now, micros(s.now().Add(-s.cfg.Google.ChannelTTL))); err != nil {
		return fmt.Errorf("connect: forget expired replaced and stale pending channels: %w", err)
	}
	rows, err := s.db.DB().QueryContext(ctx, s.db.Rebind(`SELECT `+channelColumns+` FROM calendar_channels
		WHERE provider = ? AND replaced_by <> '' AND stopped_at = 0 ORDER BY expires_at`), ProviderGoogle)
	if err != nil {
		return fmt.Errorf("connect: list replaced channels: %w", err)
	}
	var live []Channel
	for rows.Next() {
		c, _, err := scanChannel(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("connect: list replaced channels: %w", err)
		}
		live = append(live, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("connect: list replaced channels: %w", err)
	}
	for _, c := range live {
		cl, err := s.googleClient(ctx, c.UserSub, c.CalendarID)
		if err != nil {
			s.log.WarnContext(ctx, "stop replaced push channel", "provider", ProviderGoogle, "sub", c.UserSub, "error", err.Error())
			continue
		}
		s.stopReplaced(ctx, cl, c)
	}
	return nil
}

package webhooks

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river/rivertype"

	"github.com/spotlight/gateway/internal/store"
)

// Providers of webhook deliveries.
const (
	ProviderZoom   = "zoom"
	ProviderJira   = "jira"
	ProviderGoogle = "google"
)

// Statuses of a stored delivery.
const (
	StatusReceived   = "received"
	StatusProcessing = "processing"
	StatusProcessed  = "processed"
	StatusFailed     = "failed"
	StatusPoison     = "poison"
)

// Errors of the event store.
var (
	// ErrNotFound: no delivery with that id.
	ErrNotFound = errors.New("webhooks: delivery not found")
	// ErrBusy: a processing job that holds the delivery is running or
	// queued to run, so it cannot be replayed yet. Replay returns it as a
	// *BusyError, which says which job.
	ErrBusy = errors.New("webhooks: delivery is being processed")
	// ErrPoison: a poison delivery cannot be replayed (its body does not decode).
	ErrPoison = errors.New("webhooks: poison delivery cannot be replayed")
	// ErrBadCursor: the list cursor is not one this gateway issued.
	ErrBadCursor = errors.New("webhooks: invalid cursor")
	// ErrBadRange: the list's To is not after its From.
	ErrBadRange = errors.New("webhooks: list range ends before it starts")
)

// Delivery is one stored webhook delivery.
type Delivery struct {
	ID       string
	Provider string
	// ExternalID is the deduplication key: the provider's delivery id, or
	// "sha256:<hex>" of the body.
	ExternalID string
	EventType  string
	Status     string
	// Headers is the stored safe subset of the request headers. A delivery
	// intake hands to in-process processing has them only when its
	// processing reads them (Google): the others have headersJSON alone.
	Headers map[string]string
	// headersJSON is the headers as stored (see requestHeadersJSON), when
	// intake made them straight from the request; "" for a delivery read
	// from the database or built otherwise (Headers is encoded then).
	headersJSON string
	// Body is the raw body as received. Nothing writes to it once it is
	// read: the Zoom event decoded from it for processing points into it.
	Body        []byte
	ReceivedAt  time.Time
	ProcessedAt time.Time // zero until processed
	Attempts    int
	LastError   string
	BookingID   string
	// Note says what processing did (or why it did nothing).
	Note string
}

// newID returns a time-ordered UUID: the first 48 bits are the Unix
// milliseconds (as in a version 7 UUID), the rest random, with the version
// nibble of a version 4 UUID because the API's uuid format accepts versions
// 1–5 only. Ids of deliveries received together sort together, so
// inserting them touches the right edge of the primary-key index instead
// of a random page per delivery (measured: a quarter less commit time on
// SQLite). 74 random bits keep ids unique.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	ms := uint64(time.Now().UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:])
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// Events reads and updates stored deliveries.
type Events struct {
	db *store.Store
}

// NewEvents returns the delivery store on db.
func NewEvents(db *store.Store) *Events { return &Events{db: db} }

// listColumns, eventColumns and eventsFrom read deliveries with their
// outcomes: a delivery's row is written once at intake; processing records
// its outcome in webhook_outcomes (see migration 0005), whose status, when
// there is one, is the delivery's. listColumns are what a list shows;
// eventColumns add the headers and the body (up to the intake's body limit
// each), which only the detail and processing read.
const (
	listColumns = `e.id, e.provider, e.external_id, e.event_type, ` + eventStatus + `, e.received_at,
		o.processed_at, COALESCE(o.attempts, 0), o.last_error, o.booking_id, o.note`
	eventColumns = listColumns + `, e.headers, e.body`
	eventStatus  = `COALESCE(o.status, e.status)`
	eventsFrom   = ` FROM webhook_events e LEFT JOIN webhook_outcomes o ON o.event_id = e.id`
)

type rowScanner interface{ Scan(dest ...any) error }

// scanDelivery scans a row of listColumns, or of eventColumns when
// withBody.
func scanDelivery(r rowScanner, withBody bool) (Delivery, error) {
	var (
		d                      Delivery
		headers                string
		body                   []byte
		received               int64
		processed              sql.NullInt64
		lastErr, booking, note sql.NullString
	)
	dest := []any{&d.ID, &d.Provider, &d.ExternalID, &d.EventType, &d.Status, &received, &processed,
		&d.Attempts, &lastErr, &booking, &note, &headers, &body}
	if !withBody {
		dest = dest[:len(dest)-2]
	}
	if err := r.Scan(dest...); err != nil {
		return Delivery{}, err
	}
	if withBody {
		d.Body = body
		if headers != "" {
			_ = json.Unmarshal([]byte(headers), &d.Headers)
		}
	}
	d.ReceivedAt = fromMicros(received)
	if processed.Valid {
		d.ProcessedAt = fromMicros(processed.Int64)
	}
	d.LastError, d.BookingID, d.Note = lastErr.String, booking.String, note.String
	return d, nil
}

// Get returns the delivery with its body and headers, or ErrNotFound.
func (e *Events) Get(ctx context.Context, id string) (Delivery, error) {
	row := e.db.DB().QueryRowContext(ctx, e.db.Rebind(`SELECT `+eventColumns+eventsFrom+` WHERE e.id = ?`), id)
	d, err := scanDelivery(row, true)
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, ErrNotFound
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("webhooks: get delivery: %w", err)
	}
	return d, nil
}

// Filter selects deliveries for List. Zero fields do not filter.
type Filter struct {
	Provider string
	Status   string
	// EventType is the provider event type (exact match).
	EventType string
	// From (inclusive) and To (exclusive) bound the received time when not
	// nil: every given bound filters, the zero time.Time too (a To of year
	// 1 selects nothing).
	From, To *time.Time
	// Cursor is a previous page's NextCursor.
	Cursor string
	// Limit is the page size (default 50, at most 200).
	Limit int
}

// Page is one page of List.
type Page struct {
	Items []Delivery // without body and headers
	// NextCursor is "" on the last page.
	NextCursor string
}

func encodeCursor(d Delivery) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(micros(d.ReceivedAt), 10) + "|" + d.ID))
}

func decodeCursor(c string) (int64, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(raw), "|")
	v, err := strconv.ParseInt(ts, 10, 64)
	// The ids this gateway issues are UUIDs; text PostgreSQL refuses (not
	// UTF-8, or a NUL) would fail the query.
	if !ok || err != nil || id == "" || len(id) > 64 || !utf8.ValidString(id) || strings.IndexByte(id, 0) >= 0 {
		return 0, "", ErrBadCursor
	}
	return v, id, nil
}

// List returns deliveries newest first, filtered, one page at a time,
// without their headers and bodies. A range whose To is not after its From
// is ErrBadRange.
func (e *Events) List(ctx context.Context, f Filter) (Page, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, 200)
	q, args, err := listQuery(f)
	if err != nil {
		return Page{}, err
	}
	rows, err := e.db.DB().QueryContext(ctx, e.db.Rebind(q), args...)
	if err != nil {
		return Page{}, fmt.Errorf("webhooks: list deliveries: %w", err)
	}
	defer rows.Close()
	var p Page
	for rows.Next() {
		d, err := scanDelivery(rows, false)
		if err != nil {
			return Page{}, fmt.Errorf("webhooks: list deliveries: %w", err)
		}
		p.Items = append(p.Items, d)
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("webhooks: list deliveries: %w", err)
	}
	if len(p.Items) > f.Limit {
		p.Items = p.Items[:f.Limit]
		p.NextCursor = encodeCursor(p.Items[len(p.Items)-1])
	}
	return p, nil
}

// listQuery is List's query (listColumns, one more row than f.Limit) and
// its arguments.
func listQuery(f Filter) (string, []any, error) {
	if f.From != nil && f.To != nil && !f.To.After(*f.From) {
		return "", nil, ErrBadRange
	}
	var (
		where []string
		args  []any
	)
	if f.Provider != "" {
		where, args = append(where, "e.provider = ?"), append(args, f.Provider)
	}
	if f.Status != "" {
		where, args = append(where, eventStatus+" = ?"), append(args, f.Status)
	}
	if f.EventType != "" {
		where, args = append(where, "e.event_type = ?"), append(args, f.EventType)
	}
	if f.From != nil {
		where, args = append(where, "e.received_at >= ?"), append(args, micros(*f.From))
	}
	if f.To != nil {
		where, args = append(where, "e.received_at < ?"), append(args, micros(*f.To))
	}
	if f.Cursor != "" {
		ts, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return "", nil, err
		}
		where = append(where, "(e.received_at < ? OR (e.received_at = ? AND e.id < ?))")
		args = append(args, ts, ts, id)
	}
	q := `SELECT ` + listColumns + eventsFrom
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY e.received_at DESC, e.id DESC LIMIT " + strconv.Itoa(f.Limit+1)
	return q, args, nil
}

// beginMany returns the deliveries to process (with body) in one read:
// those already processed or poison, or gone, are left out. It writes
// nothing: the processing job is the claim (River runs it once at a time),
// and finishMany records the attempt with its outcome, so each delivery costs
// one write while processed instead of two. Headers are decoded only for
// the providers whose processing reads them.
func (e *Events) beginMany(ctx context.Context, ids []string) ([]Delivery, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	in, list, err := e.idIn(ids)
	if err != nil {
		return nil, err
	}
	args := []any{list, StatusProcessed, StatusPoison}
	q := `SELECT ` + eventColumns + eventsFrom + ` WHERE e.` + in + ` AND ` + eventStatus + ` <> ? AND ` + eventStatus + ` <> ?`
	rows, err := e.db.DB().QueryContext(ctx, e.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("webhooks: start processing: %w", err)
	}
	defer rows.Close()
	out := make([]Delivery, 0, len(ids))
	for rows.Next() {
		d, err := scanDelivery(rows, true)
		if err != nil {
			return nil, fmt.Errorf("webhooks: start processing: %w", err)
		}
		d.Attempts++ // this attempt, recorded by finishMany
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("webhooks: start processing: %w", err)
	}
	// IN (...) returns rows in index order; process in the order given.
	if len(out) > 1 {
		pos := make(map[string]int, len(ids))
		for i, id := range ids {
			if _, ok := pos[id]; !ok {
				pos[id] = i
			}
		}
		slices.SortFunc(out, func(a, b Delivery) int { return pos[a.ID] - pos[b.ID] })
	}
	return out, nil
}

// finishRow is the outcome of processing one delivery.
type finishRow struct {
	id, status, bookingID, note, lastErr string
}

// finishMany records the outcomes of processing in one transaction (see
// finishTx). within, when not nil, runs in the same transaction (it settles
// an in-process job).
func (e *Events) finishMany(ctx context.Context, rows []finishRow, now time.Time, within func(context.Context, *sql.Tx) error) error {
	if len(rows) == 0 && within == nil {
		return nil
	}
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := e.finishTx(ctx, tx, rows, now); err != nil {
			return err
		}
		if within != nil {
			return within(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("webhooks: finish processing: %w", err)
	}
	return nil
}

// finishTx records the outcomes of processing inside tx, in
// webhook_outcomes (one narrow row per delivery, its attempts counted): on
// PostgreSQL one statement (finishStmt), on SQLite one statement per
// distinct outcome (status, booking, note, error), which is usually one
// for a whole job. The SQLite statement is OR FAIL: a statement that
// changes many rows and may abort half-way needs a statement journal
// (every page it touches copied first); OR FAIL needs none, and a failure
// still rolls the whole transaction back (InTx).
func (e *Events) finishTx(ctx context.Context, tx *sql.Tx, rows []finishRow, now time.Time) error {
	if len(rows) == 0 {
		return nil
	}
	if e.db.Dialect() == store.Postgres {
		q, args := finishStmt(rows, now)
		_, err := tx.ExecContext(ctx, e.db.Rebind(q), args...)
		return err
	}
	type outcome struct{ status, bookingID, note, lastErr string }
	var (
		order  []outcome
		groups = make(map[outcome][]string)
	)
	for _, r := range lastPerDelivery(rows) {
		o := outcome{r.status, r.bookingID, r.note, r.lastErr}
		if _, ok := groups[o]; !ok {
			order = append(order, o)
		}
		groups[o] = append(groups[o], r.id)
	}
	const q = `INSERT OR FAIL INTO webhook_outcomes (event_id, status, processed_at, attempts, booking_id, note, last_error)
		SELECT value, ?, ?, 1, ?, ?, ? FROM json_each(?) WHERE true
		ON CONFLICT (event_id) DO UPDATE SET status = excluded.status, processed_at = excluded.processed_at,
			attempts = webhook_outcomes.attempts + 1, booking_id = excluded.booking_id, note = excluded.note,
			last_error = excluded.last_error`
	for _, o := range order {
		_, list, err := e.idIn(groups[o])
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, q, o.status, micros(now), nullString(o.bookingID), nullString(o.note), nullString(o.lastErr), list); err != nil {
			return err
		}
	}
	return nil
}

// lastPerDelivery keeps the last outcome of each delivery in rows: an
// outcome is recorded once per commit (on PostgreSQL one statement may not
// upsert a row twice; on SQLite a second statement would count the attempt
// twice). When no delivery repeats, the rule, rows come back as they are.
func lastPerDelivery(rows []finishRow) []finishRow {
	if !repeatsID(rows) {
		return rows
	}
	seen := make(map[string]int, len(rows))
	out := rows[:0:0]
	for _, r := range rows {
		if i, ok := seen[r.id]; ok {
			out[i] = r
			continue
		}
		seen[r.id] = len(out)
		out = append(out, r)
	}
	return out
}

// rowIDSeed seeds repeatsID's hashes.
var rowIDSeed = maphash.MakeSeed()

// repeatsID reports whether two of rows have the same id, with an
// open-addressing hash set of row positions, at most half full: on the
// stack up to 512 rows (the rule), else one allocation of 8 bytes a row,
// still far less than lastPerDelivery's map and copy.
func repeatsID(rows []finishRow) bool {
	var stack [1024]int32 // position in rows + 1; 0: free
	table := stack[:]
	if 2*len(rows) > len(table) {
		table = make([]int32, 1<<bits.Len(uint(2*len(rows))))
	}
	mask := len(table) - 1
	for i := range rows {
		for j := int(maphash.String(rowIDSeed, rows[i].id)) & mask; ; j = (j + 1) & mask {
			k := table[j]
			if k == 0 {
				table[j] = int32(i + 1)
				break
			}
			if rows[k-1].id == rows[i].id {
				return true
			}
		}
	}
	return false
}

// finishStmt is the statement (PostgreSQL, ? placeholders) recording rows'
// outcomes at once (the last of each delivery), one array per column.
func finishStmt(rows []finishRow, now time.Time) (string, []any) {
	rows = lastPerDelivery(rows)
	cols := make([][]string, 5)
	for i := range cols {
		cols[i] = make([]string, len(rows))
	}
	for i, r := range rows {
		cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i] = r.id, r.status, r.bookingID, r.note, r.lastErr
	}
	return `INSERT INTO webhook_outcomes AS o (event_id, status, processed_at, attempts, booking_id, note, last_error)
		SELECT v.id, v.status, ?, 1, NULLIF(v.booking_id, ''), NULLIF(v.note, ''), NULLIF(v.last_error, '')
		FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[]) AS v(id, status, booking_id, note, last_error)
		ON CONFLICT (event_id) DO UPDATE SET status = EXCLUDED.status, processed_at = EXCLUDED.processed_at,
			attempts = o.attempts + 1, booking_id = EXCLUDED.booking_id, note = EXCLUDED.note, last_error = EXCLUDED.last_error`,
		[]any{micros(now), cols[0], cols[1], cols[2], cols[3], cols[4]}
}

// idIn returns the condition "id is one of ids" with one placeholder, and
// its argument: the statement's text is the same however many ids there
// are, so it stays prepared (the SQLite connection's cache; pgx's on
// PostgreSQL). PostgreSQL takes a text[] (= ANY keeps the primary key
// index even in a plan cached while the table was empty, where a set of
// jsonb elements fell back to a sequential scan); SQLite a JSON array.
func (e *Events) idIn(ids []string) (cond string, arg any, err error) {
	if e.db.Dialect() == store.Postgres {
		return `id = ANY(?::text[])`, ids, nil
	}
	list, err := jsonStrings(ids)
	return `id IN (SELECT value FROM json_each(?))`, list, err
}

// jsonStrings is json.Marshal(ss) as a string, built in one allocation
// when no string needs escaping (printable ASCII but for ", \, <, > and &,
// which delivery ids always are): the same bytes json.Marshal writes then.
func jsonStrings(ss []string) (string, error) {
	if ss == nil {
		return "null", nil
	}
	n := 2
	for _, s := range ss {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				b, err := json.Marshal(ss)
				return string(b), err
			}
		}
		n += len(s) + 3
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
	}
	b.WriteByte(']')
	return b.String(), nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// BusyError is a replay refused because a processing job holds the
// delivery and is running it or about to (errors.Is(err, ErrBusy)): the job
// is running, queued to run (available), or the fallback of in-process
// processing under way where the delivery was received (a hand-off's job,
// scheduled until the hand-off grace has passed). A job that only waits
// for a later retry does not refuse a replay: the replay makes it run now.
type BusyError struct {
	// JobID is River's id of the job.
	JobID int64
	// State is the job's River state: running, available, scheduled (a
	// hand-off's) or pending; or retryable or scheduled when the job
	// runner cannot make a waiting job run now (it is no JobSettler).
	State rivertype.JobState
	// RunsAt is when the job is due (River's scheduled_at): later for a
	// hand-off's job, now or earlier for one that is available (it runs
	// once a worker is free) or running (it was due then).
	RunsAt time.Time
	// Handoff reports that the job is the fallback of in-process processing.
	Handoff bool
}

// Error describes the refusal for logs.
func (e *BusyError) Error() string {
	return fmt.Sprintf("webhooks: delivery is held by processing job %d (%s, due %s)", e.JobID, e.State, e.RunsAt.Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrBusy) hold.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// liveJob is a processing job holding a delivery that may still run.
type liveJob struct {
	id     int64
	state  rivertype.JobState
	runsAt time.Time
	// handoff: j is the fallback of in-process processing, not run by
	// River yet (a hand-off's job River has attempted, after the
	// in-process processing failed or the process died, is River's like
	// any other: scheduled then means snoozed, waiting).
	handoff bool
}

// waiting reports whether j only waits for a later run that nothing is
// doing now: a failed attempt's retry (retryable), or a job scheduled for
// later (snoozed) that is not a hand-off's fallback. A replay makes such
// a job run now instead of queueing another. Any other live job processes
// the delivery now or soon (running; available; a hand-off's job, whose
// deliveries are being processed in process, or about to be).
func (j liveJob) waiting() bool {
	return j.state == rivertype.JobStateRetryable || (j.state == rivertype.JobStateScheduled && !j.handoff)
}

// busy is the refusal of a replay of a delivery j holds.
func (j liveJob) busy() *BusyError {
	return &BusyError{JobID: j.id, State: j.state, RunsAt: j.runsAt, Handoff: j.handoff}
}

// liveJobs returns the processing jobs that hold delivery id (it is one of
// their args' ids: a group commit's job holds all its deliveries) and may
// still run: running, available, scheduled, retryable or pending, not
// completed, cancelled or discarded. River marks a job running from its
// fetch until its outcome is recorded, which covers finishMany; a
// hand-off's job is scheduled, or available shortly before it is due,
// until River first runs it (attempt 0). The
// running ones come first, then by when they are due.
// riversqlite stores args as JSONB, which json_each and json_extract read,
// and scheduled_at as UTC text; PostgreSQL's jsonb ? finds an id in the
// args' array.
func (e *Events) liveJobs(ctx context.Context, tx *sql.Tx, id string) ([]liveJob, error) {
	q := `SELECT river_job.id, river_job.state, CAST(round(unixepoch(river_job.scheduled_at, 'subsec') * 1000000) AS INTEGER),
			coalesce(json_extract(river_job.args, '$.handoff'), 0) = 1 AND river_job.attempt = 0
		FROM river_job, json_each(river_job.args, '$.ids') AS ids
		WHERE river_job.kind = ? AND ids.value = ? AND river_job.state IN ('running', 'available', 'scheduled', 'retryable', 'pending')`
	if e.db.Dialect() == store.Postgres {
		q = `SELECT id, state, (extract(epoch FROM scheduled_at) * 1000000)::bigint, coalesce((args->>'handoff')::boolean, false) AND attempt = 0
			FROM river_job WHERE kind = $1 AND args->'ids' ? $2 AND state IN ('running', 'available', 'scheduled', 'retryable', 'pending')`
	}
	rows, err := tx.QueryContext(ctx, q, ProcessArgs{}.Kind(), id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var jobs []liveJob
	for rows.Next() {
		var (
			j     liveJob
			state string
			due   int64
		)
		if err := rows.Scan(&j.id, &state, &due, &j.handoff); err != nil {
			return nil, err
		}
		j.state, j.runsAt = rivertype.JobState(state), fromMicros(due)
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(jobs, func(a, b liveJob) int {
		if ra, rb := a.state == rivertype.JobStateRunning, b.state == rivertype.JobStateRunning; ra != rb {
			if ra {
				return -1
			}
			return 1
		}
		return a.runsAt.Compare(b.runsAt)
	})
	return jobs, nil
}

// poisonTx records, inside tx, why the poison delivery id could not be
// decoded: its outcome's last_error (status poison, never attempted), so
// the admin API shows the reason next to the stored body.
func (e *Events) poisonTx(ctx context.Context, tx *sql.Tx, id, reason string) error {
	_, err := tx.ExecContext(ctx, e.db.Rebind(`INSERT INTO webhook_outcomes (event_id, status, attempts, last_error)
		VALUES (?, ?, 0, ?) ON CONFLICT (event_id) DO NOTHING`), id, StatusPoison, reason)
	return err
}

// replay sets a delivery back to received inside tx, refusing poison
// (ErrPoison) and a delivery that a processing job is running or about to
// run (a *BusyError, see liveJobs). When a job that holds the delivery
// only waits for a later retry, replay returns it (ok): the caller makes
// it run now instead of queueing another, so that a delivery has one live
// job at most. When there are several (left by versions before this rule)
// it returns the earliest due: made to run now together, they would
// process the delivery at the same time. Without one the caller queues a
// job.
//
// Replays of one delivery run one after the other (on SQLite every write
// transaction does; on PostgreSQL the delivery's row is locked first, and
// the reads after the lock see what an earlier replay committed), so that
// only the first of replays sent together queues a job. The jobs are read
// without a lock: one found waiting may start meanwhile (RetryTx then
// leaves it alone, and it processes the delivery once, as asked), and no
// other transaction gives the delivery a new job.
func (e *Events) replay(ctx context.Context, tx *sql.Tx, id string) (waiting liveJob, ok bool, err error) {
	if e.db.Dialect() == store.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT 1 FROM webhook_events WHERE id = $1 FOR UPDATE`, id); err != nil {
			return liveJob{}, false, fmt.Errorf("webhooks: replay: %w", err)
		}
	}
	var status string
	err = tx.QueryRowContext(ctx, e.db.Rebind(`SELECT `+eventStatus+eventsFrom+` WHERE e.id = ?`), id).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return liveJob{}, false, ErrNotFound
	}
	if err != nil {
		return liveJob{}, false, fmt.Errorf("webhooks: replay: %w", err)
	}
	if status == StatusPoison {
		return liveJob{}, false, ErrPoison
	}
	// Whatever the status, river_job says whether a job holds the
	// delivery. A processed one too: a job retrying another delivery of
	// its group commit would process it again once the replay set it back
	// to received. And "processing", written by earlier versions: the job
	// that wrote it may have crashed or been discarded, and the status
	// alone would refuse the delivery's replay for ever.
	jobs, err := e.liveJobs(ctx, tx, id)
	if err != nil {
		return liveJob{}, false, fmt.Errorf("webhooks: replay: %w", err)
	}
	// A processed delivery's hand-off job that is still scheduled is done
	// with: its in-process processing recorded every outcome of the job,
	// and the job is deleted with a later group commit (a second or so;
	// after a crash it runs once the grace has passed and skips what is
	// processed). It neither refuses the replay nor takes it.
	jobs = slices.DeleteFunc(jobs, func(j liveJob) bool {
		return status == StatusProcessed && j.handoff && j.state == rivertype.JobStateScheduled
	})
	for _, j := range jobs {
		if !j.waiting() {
			return liveJob{}, false, j.busy()
		}
	}
	// A delivery without an outcome is received already. The note was the
	// last processing's; the next one writes its own.
	_, err = tx.ExecContext(ctx, e.db.Rebind(`UPDATE webhook_outcomes SET status = ?, last_error = NULL, processed_at = NULL, note = NULL WHERE event_id = ?`),
		StatusReceived, id)
	if err != nil {
		return liveJob{}, false, fmt.Errorf("webhooks: replay: %w", err)
	}
	if len(jobs) == 0 {
		return liveJob{}, false, nil
	}
	return jobs[0], true, nil
}

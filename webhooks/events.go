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
	// ErrBusy: a processing job holds the delivery now, so it cannot be replayed yet.
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
	if !ok || err != nil || len(id) > 64 {
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

// running reports whether a processing job holding the delivery is running
// now, is queued to run (available: an earlier replay's, or intake's when
// the in-process queue was full), or is the fallback of a hand-off that has
// not run yet (the delivery is with in-process processing, or about to be).
// River marks a job running from its fetch until its outcome is recorded,
// which covers finishMany; a hand-off's job is scheduled, or available
// shortly before it is due. A retryable job (a failed attempt waiting for
// its backoff) does not hold it: replay is how an operator retries now.
// riversqlite stores args as JSONB, which json_each and json_extract read.
func (e *Events) running(ctx context.Context, tx *sql.Tx, id string) (bool, error) {
	q := `SELECT EXISTS (SELECT 1 FROM river_job, json_each(river_job.args, '$.ids') AS ids
		WHERE river_job.kind = ? AND ids.value = ? AND (river_job.state IN ('running', 'available')
			OR (river_job.state = 'scheduled' AND json_extract(river_job.args, '$.handoff') = 1)))`
	if e.db.Dialect() == store.Postgres {
		q = `SELECT EXISTS (SELECT 1 FROM river_job WHERE kind = $1 AND args->'ids' ? $2 AND (state IN ('running', 'available')
			OR (state = 'scheduled' AND (args->>'handoff')::boolean)))`
	}
	var busy bool
	err := tx.QueryRowContext(ctx, q, ProcessArgs{}.Kind(), id).Scan(&busy)
	return busy, err
}

// poisonTx records, inside tx, why the poison delivery id could not be
// decoded: its outcome's last_error (status poison, never attempted), so
// the admin API shows the reason next to the stored body.
func (e *Events) poisonTx(ctx context.Context, tx *sql.Tx, id, reason string) error {
	_, err := tx.ExecContext(ctx, e.db.Rebind(`INSERT INTO webhook_outcomes (event_id, status, attempts, last_error)
		VALUES (?, ?, 0, ?) ON CONFLICT (event_id) DO NOTHING`), id, StatusPoison, reason)
	return err
}

// replay sets a delivery back to received inside tx, refusing one a
// processing job holds now (ErrBusy) or poison (ErrPoison). Replays of one
// delivery run one after the other (on SQLite every write transaction
// does; on PostgreSQL the delivery's row is locked first, and the reads
// after the lock see what an earlier replay committed), so that only the
// first of replays sent together queues a job.
func (e *Events) replay(ctx context.Context, tx *sql.Tx, id string) error {
	if e.db.Dialect() == store.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT 1 FROM webhook_events WHERE id = $1 FOR UPDATE`, id); err != nil {
			return fmt.Errorf("webhooks: replay: %w", err)
		}
	}
	var status string
	err := tx.QueryRowContext(ctx, e.db.Rebind(`SELECT `+eventStatus+eventsFrom+` WHERE e.id = ?`), id).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("webhooks: replay: %w", err)
	}
	if status == StatusPoison {
		return ErrPoison
	}
	// A processed delivery is done with: a running job that holds it (a
	// retry for another delivery of the job) skips it. Any other may be in
	// the hands of a running job now; river_job says whether it is. That
	// includes "processing", written by earlier versions: the job that
	// wrote it may have crashed or been discarded, and the status alone
	// would refuse the delivery's replay for ever.
	if status != StatusProcessed {
		busy, err := e.running(ctx, tx, id)
		if err != nil {
			return fmt.Errorf("webhooks: replay: %w", err)
		}
		if busy {
			return ErrBusy
		}
	}
	// A delivery without an outcome is received already. The note was the
	// last processing's; the next one writes its own.
	_, err = tx.ExecContext(ctx, e.db.Rebind(`UPDATE webhook_outcomes SET status = ?, last_error = NULL, processed_at = NULL, note = NULL WHERE event_id = ?`),
		StatusReceived, id)
	if err != nil {
		return fmt.Errorf("webhooks: replay: %w", err)
	}
	return nil
}

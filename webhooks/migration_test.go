package webhooks_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

// Migration 0005 moves processing outcomes out of webhook_events into
// webhook_outcomes: deliveries stored and processed before it read back
// with the same status, attempts, error, booking and note, and a delivery
// still waiting stays received.
func TestOutcomesSurviveMigration(t *testing.T) {
	t.Parallel()
	urls := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "gateway.db") },
		"postgres": func(t *testing.T) string { return storetest.PostgresURL(t) },
	}
	for name, url := range urls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			db, err := store.Open(ctx, store.Config{URL: url(t)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ms, err := store.Migrations(db.Dialect())
			if err != nil {
				t.Fatal(err)
			}
			// The schema as it was before 0005, as Migrate records it.
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := db.DB().ExecContext(ctx, db.Rebind(q), args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			exec(`CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`)
			for _, m := range ms {
				if m.Version >= 5 {
					break
				}
				exec(m.SQL)
				exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`, m.Version, m.Name, time.Now().UnixMicro())
			}
			received := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
			processed := received.Add(time.Second)
			insert := `INSERT INTO webhook_events (id, provider, external_id, event_type, status, headers, body, received_at,
				processed_at, attempts, last_error, booking_id, note) VALUES (?, 'jira', ?, 'jira:issue_updated', ?, '{}', ?, ?, ?, ?, ?, ?, ?)`
			rows := []struct {
				id, status        string
				processedAt       any
				attempts          int
				lastErr, bk, note any
			}{
				{"11111111-0000-4000-8000-000000000001", webhooks.StatusProcessed, processed.UnixMicro(), 1, nil, "bk-1", "booking cancelled"},
				{"11111111-0000-4000-8000-000000000002", webhooks.StatusFailed, processed.UnixMicro(), 3, "booking busy", nil, nil},
				{"11111111-0000-4000-8000-000000000003", webhooks.StatusReceived, nil, 0, nil, nil, nil},
				{"11111111-0000-4000-8000-000000000004", webhooks.StatusPoison, nil, 0, nil, nil, nil},
			}
			for i, r := range rows {
				exec(insert, r.id, "key-"+r.id, r.status, []byte(`{}`), received.UnixMicro()+int64(i), r.processedAt, r.attempts, r.lastErr, r.bk, r.note)
			}
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			events := webhooks.NewEvents(db)
			for _, r := range rows {
				d, err := events.Get(ctx, r.id)
				if err != nil {
					t.Fatal(err)
				}
				want := webhooks.Delivery{Status: r.status, Attempts: r.attempts, LastError: str(r.lastErr), BookingID: str(r.bk), Note: str(r.note)}
				if r.processedAt != nil {
					want.ProcessedAt = processed
				}
				if d.Status != want.Status || d.Attempts != want.Attempts || d.LastError != want.LastError ||
					d.BookingID != want.BookingID || d.Note != want.Note || !d.ProcessedAt.Equal(want.ProcessedAt) {
					t.Errorf("%s after the migration: %s/%d/%q/%q/%q/%v, want %s/%d/%q/%q/%q/%v", r.id,
						d.Status, d.Attempts, d.LastError, d.BookingID, d.Note, d.ProcessedAt,
						want.Status, want.Attempts, want.LastError, want.BookingID, want.Note, want.ProcessedAt)
				}
			}
			// Listing by status reads the outcomes too.
			page, err := events.List(ctx, webhooks.Filter{Status: webhooks.StatusFailed})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) != 1 || page.Items[0].ID != rows[1].id {
				t.Errorf("failed deliveries: %+v", page.Items)
			}
			assertNoColumn(ctx, t, db.DB(), "processed_at")
		})
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// assertNoColumn fails unless webhook_events lacks column: the outcome
// columns are gone from it.
func assertNoColumn(ctx context.Context, t *testing.T, db *sql.DB, column string) {
	t.Helper()
	if _, err := db.ExecContext(ctx, "SELECT "+column+" FROM webhook_events"); err == nil {
		t.Errorf("webhook_events still has %s", column)
	}
}

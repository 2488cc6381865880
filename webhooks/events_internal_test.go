package webhooks

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestListQuery: the admin list reads what it shows and nothing more (the
// headers and the bodies, up to the intake's body limit each, are for the
// detail and processing), filtered as asked; a range that ends before it
// starts is ErrBadRange.
func TestListQuery(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	cursor := encodeCursor(Delivery{ID: "d-1", ReceivedAt: from})
	tests := []struct {
		name  string
		f     Filter
		where []string
		args  int
		err   error
	}{
		{"all", Filter{Limit: 50}, nil, 0, nil},
		{"filtered", Filter{Provider: ProviderZoom, Status: StatusProcessed, From: from, To: from.Add(time.Hour), Limit: 50},
			[]string{"e.provider = ?", eventStatus + " = ?", "e.received_at >= ?", "e.received_at < ?"}, 4, nil},
		{"next page", Filter{Cursor: cursor, Limit: 50}, []string{"(e.received_at < ? OR (e.received_at = ? AND e.id < ?))"}, 3, nil},
		{"to before from", Filter{From: from, To: from.Add(-time.Hour)}, nil, 0, ErrBadRange},
		{"empty range", Filter{From: from, To: from}, nil, 0, ErrBadRange},
		{"bad cursor", Filter{Cursor: "garbage!"}, nil, 0, ErrBadCursor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, args, err := listQuery(tt.f)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			cols, _, _ := strings.Cut(strings.TrimPrefix(q, "SELECT "), " FROM ")
			if cols != listColumns || strings.Contains(cols, "e.body") || strings.Contains(cols, "e.headers") {
				t.Errorf("selects %s; want the list's columns, without headers and body", cols)
			}
			_, where, _ := strings.Cut(q, " WHERE ")
			where, _, _ = strings.Cut(where, " ORDER BY ")
			if want := strings.Join(tt.where, " AND "); where != want || len(args) != tt.args {
				t.Errorf("where %q with %d args, want %q with %d", where, len(args), want, tt.args)
			}
		})
	}
}

package webhooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
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
		{"filtered", Filter{Provider: ProviderZoom, Status: StatusProcessed, From: &from, To: new(from.Add(time.Hour)), Limit: 50},
			[]string{"e.provider = ?", eventStatus + " = ?", "e.received_at >= ?", "e.received_at < ?"}, 4, nil},
		{"next page", Filter{Cursor: cursor, Limit: 50}, []string{"(e.received_at < ? OR (e.received_at = ? AND e.id < ?))"}, 3, nil},
		{"to before from", Filter{From: &from, To: new(from.Add(-time.Hour))}, nil, 0, ErrBadRange},
		{"empty range", Filter{From: &from, To: &from}, nil, 0, ErrBadRange},
		// The zero time is a bound like any other.
		{"to the zero time", Filter{To: &time.Time{}}, []string{"e.received_at < ?"}, 1, nil},
		{"from the zero time", Filter{From: &time.Time{}}, []string{"e.received_at >= ?"}, 1, nil},
		{"empty range at the zero time", Filter{From: &time.Time{}, To: &time.Time{}}, nil, 0, ErrBadRange},
		{"to the zero time before from", Filter{From: &from, To: &time.Time{}}, nil, 0, ErrBadRange},
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

// lastPerDelivery keeps the last outcome of each delivery, in the order of
// their first outcome, and gives rows back as they are when no delivery
// repeats (as many rows as the stack table takes, and more).
func TestLastPerDelivery(t *testing.T) {
	t.Parallel()
	// want is the map-based reference.
	want := func(rows []finishRow) []finishRow {
		seen := map[string]int{}
		var out []finishRow
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
	rows := func(n int, repeat ...int) []finishRow {
		out := make([]finishRow, 0, n+len(repeat))
		for i := range n {
			out = append(out, finishRow{id: newID(), status: StatusProcessed, note: fmt.Sprint(i)})
		}
		for _, i := range repeat {
			out = append(out, finishRow{id: out[i].id, status: StatusFailed, note: "again"})
		}
		return out
	}
	tests := []struct {
		name    string
		rows    []finishRow
		repeats bool
	}{
		{"none", nil, false},
		{"one", rows(1), false},
		{"distinct", rows(300), false},
		{"as many as the table takes", rows(512), false},
		{"more than the table takes", rows(700), false},
		{"a repeat", rows(40, 7), true},
		{"repeats", rows(300, 0, 299, 0, 150), true},
		{"a repeat beyond the table", rows(700, 3), true},
		{"many more", rows(5000), false},
		{"a repeat among many more", rows(5000, 4999), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := lastPerDelivery(tt.rows)
			if !slices.Equal(got, want(tt.rows)) {
				t.Fatalf("lastPerDelivery: %d rows, want %d", len(got), len(want(tt.rows)))
			}
			if !tt.repeats && len(tt.rows) > 0 && &got[0] != &tt.rows[0] {
				t.Errorf("rows without repeats were copied")
			}
			if r := repeatsID(tt.rows); r != tt.repeats {
				t.Errorf("repeatsID = %v, want %v", r, tt.repeats)
			}
		})
	}
}

// jsonStrings writes what encoding/json writes.
func TestJSONStrings(t *testing.T) {
	t.Parallel()
	for _, ss := range [][]string{
		nil, {}, {""}, {newID(), newID()}, {"a\"b", "c"}, {`back\slash`}, {"<tag>&"}, {"tab\t"}, {"é😀"}, {"bad\xff"}, {"\u2028"}, {"~ !#$%'()*+,-./:;=?@[]^_`{|}"},
	} {
		want, err := json.Marshal(ss)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := jsonStrings(ss); err != nil || got != string(want) {
			t.Errorf("jsonStrings(%q) = %s, %v; want %s", ss, got, err, want)
		}
	}
}

// poisonReason keeps a short decoding error whole and cuts a long one to
// maxPoisonReason bytes without splitting a UTF-8 character.
func TestPoisonReason(t *testing.T) {
	t.Parallel()
	short := errors.New("zoom: invalid JSON at offset 27")
	if got := poisonReason(short); got != short.Error() {
		t.Fatalf("short: %q", got)
	}
	long := errors.New(strings.Repeat("a", maxPoisonReason-1) + "é and more")
	got := poisonReason(long)
	if len(got) != maxPoisonReason-1 || !utf8.ValidString(got) {
		t.Fatalf("long: %d bytes, valid UTF-8 %v; want %d", len(got), utf8.ValidString(got), maxPoisonReason-1)
	}
}

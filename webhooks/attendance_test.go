package webhooks_test

import (
	"testing"
	"time"

	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

func TestAttendanceLog(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		l := &webhooks.AttendanceLog{DB: db}
		at := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
		join := webhooks.Attendance{ParticipantID: "p1", Name: "Ann", Email: "ann@example.com", Joined: true, At: at}
		leave := webhooks.Attendance{ParticipantID: "p1", Name: "Ann", Email: "ann@example.com", Joined: false, At: at.Add(30 * time.Minute)}
		for _, a := range []webhooks.Attendance{join, leave, join} { // the repeated join is a replay
			if err := l.Record(t.Context(), "b1", a); err != nil {
				t.Fatal(err)
			}
		}
		got, err := l.List(t.Context(), "b1")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != join || got[1] != leave {
			t.Fatalf("got %+v", got)
		}
		if other, _ := l.List(t.Context(), "b2"); len(other) != 0 {
			t.Fatalf("b2: %+v", other)
		}
	})
}

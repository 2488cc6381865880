package webhooks

import (
	"context"
	"fmt"

	"github.com/spotlight/gateway/internal/store"
)

// AttendanceLog stores attendance records (the webhook_attendance table),
// for booking services that keep none themselves.
type AttendanceLog struct {
	DB *store.Store
}

// Record stores a; the same join or leave recorded again is a no-op.
func (l *AttendanceLog) Record(ctx context.Context, bookingID string, a Attendance) error {
	joined := 0
	if a.Joined {
		joined = 1
	}
	_, err := l.DB.DB().ExecContext(ctx, l.DB.Rebind(`INSERT INTO webhook_attendance (booking_id, participant_id, name, email, joined, at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (booking_id, participant_id, joined, at) DO NOTHING`),
		bookingID, a.ParticipantID, a.Name, a.Email, joined, micros(a.At))
	if err != nil {
		return fmt.Errorf("webhooks: record attendance: %w", err)
	}
	return nil
}

// List returns a booking's attendance records in time order.
func (l *AttendanceLog) List(ctx context.Context, bookingID string) ([]Attendance, error) {
	rows, err := l.DB.DB().QueryContext(ctx, l.DB.Rebind(`SELECT participant_id, name, email, joined, at FROM webhook_attendance
		WHERE booking_id = ? ORDER BY at, joined DESC, participant_id`), bookingID)
	if err != nil {
		return nil, fmt.Errorf("webhooks: list attendance: %w", err)
	}
	defer rows.Close()
	var out []Attendance
	for rows.Next() {
		var (
			a      Attendance
			joined int
			at     int64
		)
		if err := rows.Scan(&a.ParticipantID, &a.Name, &a.Email, &joined, &at); err != nil {
			return nil, fmt.Errorf("webhooks: list attendance: %w", err)
		}
		a.Joined, a.At = joined == 1, fromMicros(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

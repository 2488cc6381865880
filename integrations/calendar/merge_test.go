package calendar_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotlight/gateway/integrations/calendar"
)

func TestMergeBusy(t *testing.T) {
	t.Parallel()
	at := func(h int) time.Time { return time.Date(2027, 1, 4, h, 0, 0, 0, time.UTC) }
	b := func(s, e int) calendar.Busy { return calendar.Busy{Start: at(s), End: at(e)} }
	tests := []struct {
		name string
		in   []calendar.Busy
		want []calendar.Busy
	}{
		{"none", nil, nil},
		{"one", []calendar.Busy{b(9, 10)}, []calendar.Busy{b(9, 10)}},
		{"unsorted, apart", []calendar.Busy{b(13, 14), b(9, 10)}, []calendar.Busy{b(9, 10), b(13, 14)}},
		{"touching", []calendar.Busy{b(10, 11), b(9, 10)}, []calendar.Busy{b(9, 11)}},
		{"overlapping", []calendar.Busy{b(9, 12), b(10, 11), b(11, 13)}, []calendar.Busy{b(9, 13)}},
		{"contained", []calendar.Busy{b(9, 17), b(10, 11)}, []calendar.Busy{b(9, 17)}},
		{"from several calendars", []calendar.Busy{b(9, 10), b(15, 16), b(9, 10), b(10, 11), b(14, 15)}, []calendar.Busy{b(9, 11), b(14, 16)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(calendar.MergeBusy(tt.in), tt.want); d != "" {
				t.Errorf("MergeBusy (-got +want):\n%s", d)
			}
		})
	}
}

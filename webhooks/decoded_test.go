package webhooks

import (
	"fmt"
	"testing"
	"time"
)

func TestDecodedEvents(t *testing.T) {
	t.Parallel()
	ev := func(i int) *ZoomEvent { return &ZoomEvent{Event: fmt.Sprint(i)} }
	tests := []struct {
		name   string
		maxAge time.Duration
		run    func(c *decodedEvents)
		want   map[string]bool // id → kept
	}{
		{"take returns once", time.Hour, func(c *decodedEvents) {
			c.put("a", ev(1))
			if got := c.take("a"); got == nil || got.Event != "1" {
				t.Errorf("take a = %v", got)
			}
		}, map[string]bool{"a": false}},
		{"drop forgets", time.Hour, func(c *decodedEvents) {
			c.put("a", ev(1))
			c.drop("a")
		}, map[string]bool{"a": false}},
		{"full of unprocessed young events keeps them, not the new one", time.Hour, func(c *decodedEvents) {
			c.put("a", ev(1))
			c.put("b", ev(2))
			c.put("c", ev(3))
		}, map[string]bool{"a": true, "b": true, "c": false}},
		{"a processed oldest makes room", time.Hour, func(c *decodedEvents) {
			c.put("a", ev(1))
			c.put("b", ev(2))
			c.take("a")
			c.put("c", ev(3))
			c.put("d", ev(4)) // b is live and young: d is not kept
		}, map[string]bool{"b": true, "c": true, "d": false}},
		{"an old oldest makes room", -1, func(c *decodedEvents) {
			c.put("a", ev(1))
			c.put("b", ev(2))
			c.put("c", ev(3))
		}, map[string]bool{"a": false, "b": true, "c": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newDecodedEvents(2, tt.maxAge)
			tt.run(c)
			for id, kept := range tt.want {
				if got := c.take(id) != nil; got != kept {
					t.Errorf("%s kept = %v, want %v", id, got, kept)
				}
			}
		})
	}
}

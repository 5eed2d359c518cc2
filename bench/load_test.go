package main

import (
	"encoding/json"
	"regexp"
	"testing"
	"time"
)

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestEventShape checks that generated events are valid JSON with the
// required fields, unique messageIds, about 400 bytes by default and of the
// requested size when padded.
func TestEventShape(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 47, 31, 123e6, time.UTC)
	for _, size := range []int{0, 1000, 4096} {
		g := newEventGen(1, size)
		ids := map[string]bool{}
		var total int
		for range 1000 {
			b := g.appendEvent(nil, now)
			var ev struct {
				Timestamp string `json:"timestamp"`
				EventName string `json:"eventName"`
				MessageID string `json:"messageId"`
			}
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatalf("size %d: invalid JSON %s: %v", size, b, err)
			}
			if ev.Timestamp != "2026-11-25T10:47:31.123Z" || ev.EventName == "" || !uuidRe.MatchString(ev.MessageID) {
				t.Fatalf("size %d: fields of %s", size, b)
			}
			if ids[ev.MessageID] {
				t.Fatalf("repeated messageId %s", ev.MessageID)
			}
			ids[ev.MessageID] = true
			if size > 0 && len(b) != size {
				t.Fatalf("size %d: event of %d bytes: %s", size, len(b), b)
			}
			total += len(b)
		}
		if size == 0 {
			t.Logf("average %d bytes, e.g. %s", total/1000, g.appendEvent(nil, now))
			if avg := total / 1000; avg < 370 || avg > 430 {
				t.Fatalf("default events average %d bytes, want about 400", avg)
			}
		}
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{0.5: 50, 0.99: 99, 1: 100} {
		if got := percentile(ds, p); got != want {
			t.Errorf("percentile(%v) = %d, want %d", p, got, want)
		}
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}

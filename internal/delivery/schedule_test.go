package delivery

import (
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/api"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestScheduleEveryCadence(t *testing.T) {
	now := "2026-11-25T10:47:31Z"
	tests := []struct {
		spec         api.DestinationSpec
		last, next   string
		cutoffOfNext string
	}{
		{api.DestinationSpec{Interval: "1m"}, "2026-11-25T10:47:00Z", "2026-11-25T10:48:00Z", "2026-11-25T10:48:00Z"},
		{api.DestinationSpec{Interval: "5m"}, "2026-11-25T10:45:00Z", "2026-11-25T10:50:00Z", "2026-11-25T10:50:00Z"},
		{api.DestinationSpec{Interval: "15m"}, "2026-11-25T10:45:00Z", "2026-11-25T11:00:00Z", "2026-11-25T11:00:00Z"},
		{api.DestinationSpec{Interval: "1h"}, "2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z", "2026-11-25T11:00:00Z"},
		{api.DestinationSpec{Interval: "2h"}, "2026-11-25T10:00:00Z", "2026-11-25T12:00:00Z", "2026-11-25T12:00:00Z"},
		{api.DestinationSpec{Interval: "4h"}, "2026-11-25T08:00:00Z", "2026-11-25T12:00:00Z", "2026-11-25T12:00:00Z"},
		{api.DestinationSpec{Interval: "6h"}, "2026-11-25T06:00:00Z", "2026-11-25T12:00:00Z", "2026-11-25T12:00:00Z"},
		{api.DestinationSpec{Interval: "12h"}, "2026-11-25T00:00:00Z", "2026-11-25T12:00:00Z", "2026-11-25T12:00:00Z"},
		{api.DestinationSpec{Interval: "24h"}, "2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z", "2026-11-26T00:00:00Z"},
		// daily_at delivers the previous UTC day: the cutoff is midnight.
		{api.DestinationSpec{DailyAt: "05:00"}, "2026-11-25T05:00:00Z", "2026-11-26T05:00:00Z", "2026-11-26T00:00:00Z"},
		{api.DestinationSpec{DailyAt: "23:30"}, "2026-11-24T23:30:00Z", "2026-11-25T23:30:00Z", "2026-11-25T00:00:00Z"},
		{api.DestinationSpec{DailyAt: "10:47"}, "2026-11-25T10:47:00Z", "2026-11-26T10:47:00Z", "2026-11-26T00:00:00Z"},
	}
	for _, tt := range tests {
		name := tt.spec.Interval + tt.spec.DailyAt
		t.Run(name, func(t *testing.T) {
			s, err := ScheduleFor(tt.spec, 0)
			if err != nil {
				t.Fatal(err)
			}
			at := mustTime(t, now)
			if got := s.Last(at); !got.Equal(mustTime(t, tt.last)) {
				t.Errorf("Last(%s) = %s, want %s", now, got, tt.last)
			}
			next := s.Next(at)
			if !next.Equal(mustTime(t, tt.next)) {
				t.Errorf("Next(%s) = %s, want %s", now, next, tt.next)
			}
			if got := s.Cutoff(next); !got.Equal(mustTime(t, tt.cutoffOfNext)) {
				t.Errorf("Cutoff(%s) = %s, want %s", next, got, tt.cutoffOfNext)
			}
			// A window end is its own Last, and Next always moves forward.
			if got := s.Last(next); !got.Equal(next) {
				t.Errorf("Last(window end %s) = %s", next, got)
			}
			if !s.Next(next).After(next) {
				t.Errorf("Next(%s) does not move forward", next)
			}
		})
	}
}

func TestScheduleTickOverride(t *testing.T) {
	s, err := ScheduleFor(api.DestinationSpec{DailyAt: "05:00"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	at := mustTime(t, "2026-11-25T10:47:31Z")
	if got := s.Next(at); !got.Equal(mustTime(t, "2026-11-25T10:47:32Z")) {
		t.Fatalf("Next with a 2s tick = %s", got)
	}
}

func TestScheduleRejectsBadSpec(t *testing.T) {
	for _, spec := range []api.DestinationSpec{{Interval: "fortnight"}, {DailyAt: "25:00"}, {Interval: "0s"}} {
		if _, err := ScheduleFor(spec, 0); err == nil {
			t.Errorf("ScheduleFor(%+v) accepted a bad schedule", spec)
		}
	}
}

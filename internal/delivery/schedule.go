package delivery

import (
	"fmt"
	"time"

	"github.com/auditexport/auditexport/internal/api"
)

// Schedule says when a destination's windows end: every Interval aligned to
// UTC wall-clock boundaries, or once a day at DailyAt (UTC).
type Schedule struct {
	Interval time.Duration // 0 when DailyAt is used
	DailyAt  time.Duration // offset from midnight UTC
}

// ScheduleFor returns the schedule of spec. A non-zero tick replaces the
// destination's own cadence (for tests and dev mode).
func ScheduleFor(spec api.DestinationSpec, tick time.Duration) (Schedule, error) {
	if tick > 0 {
		return Schedule{Interval: tick}, nil
	}
	if spec.DailyAt != "" {
		t, err := time.Parse("15:04", spec.DailyAt)
		if err != nil {
			return Schedule{}, fmt.Errorf("daily_at %q: %w", spec.DailyAt, err)
		}
		return Schedule{DailyAt: time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute}, nil
	}
	d, err := time.ParseDuration(spec.Interval)
	if err != nil || d <= 0 {
		return Schedule{}, fmt.Errorf("interval %q is not a duration", spec.Interval)
	}
	return Schedule{Interval: d}, nil
}

// Last returns the latest window end at or before t.
func (s Schedule) Last(t time.Time) time.Time {
	t = t.UTC()
	if s.Interval > 0 {
		// Truncate counts from the zero time, so any interval that divides
		// 24h lands on UTC wall-clock boundaries (…:00, …:05, 00:00).
		return t.Truncate(s.Interval)
	}
	day := t.Truncate(24 * time.Hour)
	at := day.Add(s.DailyAt)
	if at.After(t) {
		at = at.Add(-24 * time.Hour)
	}
	return at
}

// Next returns the first window end strictly after t.
func (s Schedule) Next(t time.Time) time.Time {
	if s.Interval > 0 {
		return s.Last(t).Add(s.Interval)
	}
	return s.Last(t).Add(24 * time.Hour)
}

// Cutoff is the ingest time before which a window's events were stored. An
// interval window delivers everything stored before it ends; a daily window
// delivers the previous UTC day, so events stored after midnight wait for
// the next day's window.
func (s Schedule) Cutoff(windowEnd time.Time) time.Time {
	if s.Interval > 0 {
		return windowEnd
	}
	return windowEnd.UTC().Truncate(24 * time.Hour)
}

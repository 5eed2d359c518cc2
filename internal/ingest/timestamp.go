package ingest

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// MinTime is the earliest event time accepted. An earlier timestamp is a unit
// or clock mistake, not an audit event.
var MinTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// MaxFuture is how far ahead of the agent's clock an event time may be.
const MaxFuture = 24 * time.Hour

// timeWindow is the accepted range of event times, in Unix milliseconds.
type timeWindow struct {
	min, max int64
}

func newTimeWindow(now time.Time) timeWindow {
	return timeWindow{min: MinTime.UnixMilli(), max: now.Add(MaxFuture).UnixMilli()}
}

// parse reads a timestamp field: a JSON number of epoch milliseconds, a
// string of decimal digits (epoch milliseconds, as platforms that fear
// JavaScript's 53-bit integers send them) or an RFC 3339 string with or
// without fractional seconds. It returns Unix milliseconds, or a reason.
func (w timeWindow) parse(raw []byte) (int64, string) {
	switch c := raw[0]; {
	case c == '"':
		return w.parseString(raw)
	case c == '-' || (c >= '0' && c <= '9'):
		return w.parseNumber(raw)
	}
	return 0, fmt.Sprintf("must be epoch milliseconds (a number) or an RFC 3339 string, got a JSON %s", kind(raw))
}

// parseNumber reads epoch milliseconds. Fractions are truncated toward the
// past; they do not matter at millisecond granularity.
func (w timeWindow) parseNumber(raw []byte) (int64, string) {
	if ms, ok := parseDigits(raw); ok {
		return w.check(ms, raw)
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f < -9e18 || f > 9e18 {
		return 0, fmt.Sprintf("%s is out of range; send epoch milliseconds", raw)
	}
	return w.check(int64(math.Floor(f)), raw)
}

func (w timeWindow) parseString(raw []byte) (int64, string) {
	// Digits never need unescaping, so the raw bytes do.
	if ms, ok := parseDigits(raw[1 : len(raw)-1]); ok {
		return w.check(ms, raw)
	}
	s, ok := stringValue(raw)
	if !ok {
		return 0, "is not a valid JSON string"
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, badTimeReason(s)
	}
	ms := t.UnixMilli()
	if ms < w.min || ms > w.max {
		return 0, w.rangeReason(ms, strconv.Quote(s))
	}
	return ms, ""
}

// badTimeReason explains a string that is not RFC 3339.
func badTimeReason(s string) string {
	if _, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return fmt.Sprintf("%q has no time zone; add Z or an offset such as +02:00 (RFC 3339)", s)
	}
	return fmt.Sprintf("%q is neither an RFC 3339 time such as \"2024-05-01T12:00:00Z\" nor epoch milliseconds", s)
}

// check accepts ms if it is in the window. raw is the value as sent.
func (w timeWindow) check(ms int64, raw []byte) (int64, string) {
	if ms >= w.min && ms <= w.max {
		return ms, ""
	}
	shown := string(raw)
	// Other units of the epoch are the usual mistake, and easy to spot: they
	// land in the window once scaled.
	switch {
	case ms < w.min && ms >= w.min/1000 && ms <= w.max/1000:
		return 0, fmt.Sprintf("%s looks like epoch seconds; send milliseconds (%d)", shown, ms*1000)
	case ms > w.max && ms/1000 >= w.min && ms/1000 <= w.max:
		return 0, fmt.Sprintf("%s looks like epoch microseconds; send milliseconds (%d)", shown, ms/1000)
	case ms > w.max && ms/1000000 >= w.min && ms/1000000 <= w.max:
		return 0, fmt.Sprintf("%s looks like epoch nanoseconds; send milliseconds (%d)", shown, ms/1000000)
	}
	return 0, w.rangeReason(ms, fmt.Sprintf("%s (%s)", shown, formatMs(ms)))
}

func (w timeWindow) rangeReason(ms int64, shown string) string {
	if ms < w.min {
		return fmt.Sprintf("%s is before %s; send the event's time in epoch milliseconds or RFC 3339",
			shown, MinTime.Format(time.DateOnly))
	}
	return fmt.Sprintf("%s is more than %s ahead of the agent's clock; check the sender's clock and units",
		shown, MaxFuture)
}

func formatMs(ms int64) string {
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

// parseDigits parses a non-negative decimal integer of up to 18 digits,
// which cannot overflow int64. Anything else is left to the slow path.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

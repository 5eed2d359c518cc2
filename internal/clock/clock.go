// Package clock is the agent's one source of time. The daemon makes one
// Clock and hands it to the store (its stamps), the API (rate limits,
// backfill, states) and delivery (schedule, retries, retention), so a test
// that moves a fake clock (package clocktest) moves all of them together.
package clock

import "time"

// Clock tells the time and waits.
type Clock interface {
	Now() time.Time
	// After sends the time on the channel once d has passed.
	After(d time.Duration) <-chan time.Time
	// NewTicker ticks every d (d > 0) until stopped.
	NewTicker(d time.Duration) Ticker
}

// Real is the system clock.
type Real struct{}

// Now returns time.Now in UTC.
func (Real) Now() time.Time { return time.Now().UTC() }

// After is time.After.
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// NewTicker is time.NewTicker.
func (Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

// Ticker sends the time on C every period, dropping ticks a slow reader
// misses, like time.Ticker.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

// Offset is the system clock moved by D: Now is time.Now().Add(D), and
// waits last as long as on the system clock. The bench uses it (through
// AUDITEXPORT_BENCH_CLOCK_OFFSET) to bring an hour boundary or a daily_at
// time within a minute of an agent's start.
type Offset struct{ D time.Duration }

// Now returns the system time moved by D, in UTC.
func (o Offset) Now() time.Time { return time.Now().Add(o.D).UTC() }

// After is time.After, with the offset time on the channel.
func (o Offset) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	time.AfterFunc(d, func() { ch <- o.Now() })
	return ch
}

// NewTicker is time.NewTicker; the ticks carry the system time.
func (Offset) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

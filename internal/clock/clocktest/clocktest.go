// Package clocktest is a clock.Clock that only moves when a test moves it,
// so every cadence, retry and expiry can be tested without sleeping.
package clocktest

import (
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/auditexport/auditexport/internal/clock"
)

var _ clock.Clock = (*Fake)(nil)

// Fake is a clock that only moves when Advance or Set is called.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	tickers []*ticker
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewFake returns a Fake set to t.
func NewFake(t time.Time) *Fake { return &Fake{now: t.UTC()} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// After returns a channel that fires when the fake time reaches now+d.
func (f *Fake) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- f.now
		return ch
	}
	f.waiters = append(f.waiters, waiter{at: f.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock by d and fires the waiters that are due.
func (f *Fake) Advance(d time.Duration) { f.Set(f.Now().Add(d)) }

// Set moves the clock to t (never backwards) and fires the waiters that are due.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.After(f.now) {
		f.now = t.UTC()
	}
	sort.Slice(f.waiters, func(i, j int) bool { return f.waiters[i].at.Before(f.waiters[j].at) })
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.at.After(f.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- f.now
	}
	f.waiters = kept
	for _, t := range f.tickers {
		t.fire(f.now)
	}
}

// Waiters is the number of pending After calls; tests use it to know that a
// loop is asleep before they move the clock. Tickers are not counted: a
// loop's ticker is always there, asleep or not.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// NewTicker returns a ticker that ticks each time the fake time passes
// another d. Like time.Ticker it holds one tick: a reader that falls behind
// gets one, not one per period passed.
func (f *Fake) NewTicker(d time.Duration) clock.Ticker {
	if d <= 0 {
		panic("clocktest: non-positive ticker period")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &ticker{f: f, period: d, next: f.now.Add(d), ch: make(chan time.Time, 1)}
	f.tickers = append(f.tickers, t)
	return t
}

// Tickers is the number of tickers not stopped.
func (f *Fake) Tickers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tickers)
}

type ticker struct {
	f      *Fake
	period time.Duration
	next   time.Time // guarded by f.mu
	ch     chan time.Time
}

func (t *ticker) C() <-chan time.Time { return t.ch }

// Stop removes the ticker; a tick already sent stays in the channel.
func (t *ticker) Stop() {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	t.f.tickers = slices.DeleteFunc(t.f.tickers, func(o *ticker) bool { return o == t })
}

// fire ticks once if now has reached the next tick; called with f.mu held.
func (t *ticker) fire(now time.Time) {
	if now.Before(t.next) {
		return
	}
	select {
	case t.ch <- now:
	default:
	}
	for !now.Before(t.next) {
		t.next = t.next.Add(t.period)
	}
}

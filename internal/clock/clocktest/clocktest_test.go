package clocktest

import (
	"testing"
	"time"
)

func TestFakeFiresWaitersInOrder(t *testing.T) {
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	f := NewFake(start)
	late, early := f.After(2*time.Minute), f.After(time.Minute)
	if f.Waiters() != 2 {
		t.Fatalf("Waiters() = %d, want 2", f.Waiters())
	}
	f.Advance(90 * time.Second)
	select {
	case at := <-early:
		if !at.Equal(start.Add(90 * time.Second)) {
			t.Fatalf("fired at %s", at)
		}
	default:
		t.Fatal("the 1m waiter did not fire after 90s")
	}
	select {
	case <-late:
		t.Fatal("the 2m waiter fired after 90s")
	default:
	}
	f.Set(start) // never backwards
	if !f.Now().Equal(start.Add(90 * time.Second)) {
		t.Fatalf("Set moved the clock back to %s", f.Now())
	}
	f.Advance(time.Minute)
	<-late
	if f.Waiters() != 0 {
		t.Fatalf("Waiters() = %d after all fired", f.Waiters())
	}
	select {
	case <-f.After(0):
	default:
		t.Fatal("After(0) did not fire at once")
	}
}

func TestFakeTickerTicksOncePerPeriodAndDropsMissed(t *testing.T) {
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		advance []time.Duration
		ticks   int // ticks received after all the moves, reading only at the end
		next    time.Duration
	}{
		{"before the period", []time.Duration{59 * time.Second}, 0, time.Second},
		{"at the period", []time.Duration{time.Minute}, 1, time.Minute},
		{"three periods at once", []time.Duration{3 * time.Minute}, 1, time.Minute},
		{"three periods one by one, unread", []time.Duration{time.Minute, time.Minute, time.Minute}, 1, time.Minute},
		{"between periods", []time.Duration{90 * time.Second}, 1, 30 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := NewFake(start)
			tk := f.NewTicker(time.Minute)
			defer tk.Stop()
			for _, d := range c.advance {
				f.Advance(d)
			}
			got := 0
			for len(tk.C()) > 0 {
				<-tk.C()
				got++
			}
			if got != c.ticks {
				t.Fatalf("got %d ticks, want %d", got, c.ticks)
			}
			// The next tick is due c.next after now, not earlier.
			f.Advance(c.next - time.Nanosecond)
			if len(tk.C()) != 0 {
				t.Fatalf("ticked %s early", time.Nanosecond)
			}
			f.Advance(time.Nanosecond)
			if len(tk.C()) != 1 {
				t.Fatal("did not tick when the next period was due")
			}
		})
	}
}

func TestFakeTickerStop(t *testing.T) {
	f := NewFake(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	tk := f.NewTicker(time.Second)
	if f.Tickers() != 1 || f.Waiters() != 0 {
		t.Fatalf("Tickers() = %d, Waiters() = %d; want 1, 0", f.Tickers(), f.Waiters())
	}
	tk.Stop()
	f.Advance(time.Hour)
	if len(tk.C()) != 0 || f.Tickers() != 0 {
		t.Fatalf("a stopped ticker ticked (%d) or is still counted (%d)", len(tk.C()), f.Tickers())
	}
}

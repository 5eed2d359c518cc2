package clock

import (
	"testing"
	"time"
)

// Real tells the time in UTC, so stamps compare and print alike whatever
// the machine's zone.
func TestRealIsUTC(t *testing.T) {
	if loc := (Real{}).Now().Location(); loc != time.UTC {
		t.Fatalf("Real.Now() is in %s, want UTC", loc)
	}
}

// The real ticker ticks; the deadline only guards against a hang.
func TestRealTickerTicks(t *testing.T) {
	tk := Real{}.NewTicker(time.Millisecond)
	defer tk.Stop()
	select {
	case <-tk.C():
	case <-time.After(time.Minute):
		t.Fatal("no tick within a minute of a 1ms ticker")
	}
}

func TestOffset(t *testing.T) {
	o := Offset{D: 3 * time.Hour}
	before := time.Now().Add(3 * time.Hour)
	got := o.Now()
	after := time.Now().Add(3 * time.Hour)
	if got.Before(before.Truncate(time.Millisecond)) || got.After(after) {
		t.Fatalf("Offset.Now() = %s, want between %s and %s", got, before, after)
	}
	at := <-o.After(time.Millisecond)
	if at.Before(got) {
		t.Fatalf("After sent %s, before %s", at, got)
	}
}

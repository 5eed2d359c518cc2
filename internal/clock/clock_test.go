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

package clock

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

package testenv

import (
	"testing"
	"time"
)

// HangGuard is how long a test waits for real work (a server to start, a
// delivery to land) before it gives up. It is not a performance budget: the
// waits poll for a condition and return the moment it holds, so a slow or
// busy machine only makes a test take longer. The guard is there to turn a
// hang into a failure that says what was awaited.
const HangGuard = 3 * time.Minute

// pollInterval is how often WaitFor checks its condition.
const pollInterval = 100 * time.Millisecond

// WaitFor polls cond until it reports done, and fails the test after
// HangGuard. cond also returns a description of the state it saw, which the
// failure message shows; what names the awaited condition.
func WaitFor(t testing.TB, what string, cond func() (done bool, state string)) {
	t.Helper()
	WaitForWithin(t, HangGuard, what, cond)
}

// WaitForWithin is WaitFor with another hang guard, for work known to take
// longer than HangGuard.
func WaitForWithin(t testing.TB, guard time.Duration, what string, cond func() (done bool, state string)) {
	t.Helper()
	start := time.Now()
	for {
		done, state := cond()
		if done {
			return
		}
		if time.Since(start) > guard {
			t.Fatalf("hang guard: still waiting for %s after %s; last state: %s", what, guard, state)
		}
		time.Sleep(pollInterval)
	}
}

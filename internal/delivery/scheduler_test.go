package delivery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/clock/clocktest"
	"github.com/auditexport/auditexport/internal/digest"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/signing"
	"github.com/auditexport/auditexport/internal/store"
)

// Each destination's delay is fixed by its id, within the bound and within
// a twelfth of its interval, and the delays of many destinations spread
// over the bound rather than bunching.
func TestSpreadOf(t *testing.T) {
	minute, hourly, daily := Schedule{Interval: time.Minute}, Schedule{Interval: time.Hour}, Schedule{DailyAt: time.Hour}
	tests := []struct {
		name  string
		sched Schedule
		bound time.Duration
		max   time.Duration // exclusive; 0: the spread must be 0
	}{
		{"1m", minute, DefaultSpread, 5 * time.Second},
		{"1h", hourly, DefaultSpread, 5 * time.Second},
		{"daily_at", daily, DefaultSpread, 5 * time.Second},
		{"1s tick", Schedule{Interval: time.Second}, DefaultSpread, time.Second / 12},
		{"none", minute, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lo, hi time.Duration = tt.max, 0
			for i := range 1000 {
				id := fmt.Sprintf("dst_%04d", i)
				s := spreadOf(id, tt.sched, tt.bound)
				if s != spreadOf(id, tt.sched, tt.bound) {
					t.Fatalf("%s: the spread changed between calls", id)
				}
				if s < 0 || (tt.max == 0 && s != 0) || (tt.max > 0 && s >= tt.max) {
					t.Fatalf("%s: spread %s, want in [0, %s)", id, s, tt.max)
				}
				lo, hi = min(lo, s), max(hi, s)
			}
			// 1,000 delays cover most of the bound.
			if tt.max > 0 && (lo > tt.max/10 || hi < tt.max*9/10) {
				t.Fatalf("spreads from %s to %s, want them across [0, %s)", lo, hi, tt.max)
			}
		})
	}
}

// A destination's turn comes its spread after the window end: not a
// millisecond before, and then it delivers.
func TestTurnComesItsSpreadAfterTheWindowEnd(t *testing.T) {
	r := newRigWith(t, "2026-11-25T10:00:30Z", func(o *Options) { o.Spread = DefaultSpread })
	spread := spreadOf("dst_1", Schedule{Interval: time.Minute}, DefaultSpread)
	if spread <= 0 {
		t.Fatalf("dst_1's spread is %s; the test needs one above 0", spread)
	}
	r.destination(api.DestinationSpec{Interval: "1m"})
	ids := r.post(2)
	end := mustTime(t, "2026-11-25T10:01:00Z")
	r.advance(end.Add(spread - time.Millisecond).Format(time.RFC3339Nano))
	r.expectDelivered(nil)
	r.advance(end.Add(spread).Format(time.RFC3339Nano))
	r.expectDelivered(ids)
}

// Destinations waiting for their window end cost an entry in the
// scheduler each, not a goroutine.
func TestWaitingDestinationsHaveNoGoroutine(t *testing.T) {
	const n = 300
	r := newRig(t, "2026-11-25T10:00:30Z")
	ctx := context.Background()
	before := runningGoroutines(t, r)
	for i := 1; i < n; i++ {
		r.createDestination(fmt.Sprintf("dst_%03d", i), api.DestinationSpec{Interval: "1m"})
	}
	r.d.Notify()
	pollUntil(t, "every destination waiting for its window end", func() bool {
		return r.d.sched.waiting() == n && r.clock.Waiters() > 0
	})
	if grown := runtime.NumGoroutine() - before; grown > 20 {
		t.Fatalf("%d destinations waiting added %d goroutines, want a handful", n, grown)
	}
	// And they all deliver at the window end.
	r.post(1)
	r.clock.Set(mustTime(t, "2026-11-25T10:01:00Z"))
	pollUntil(t, "every destination's delivery", func() bool {
		n, err := countDelivered(ctx, r.store, r.tenant.ID)
		return err == nil && n == 300
	})
}

// A destination whose credentials are not ready waits for them without a
// worker: with one worker, a destination stuck in Prepare (STS slow, from
// its loop's start) does not stop another from delivering, and delivers
// once its credentials come.
func TestUnreadyCredentialsHoldNoWorker(t *testing.T) {
	r := newRig(t, "2026-11-25T10:00:30Z") // one worker
	slow := &slowCredsSink{memSink: &memSink{objects: map[string][]byte{}}, release: make(chan struct{})}
	r.sinks.Store("dst_slow", slow)
	r.createDestination("dst_slow", api.DestinationSpec{Interval: "1m"})
	r.createDestination("dst_1", api.DestinationSpec{Interval: "5m"})
	r.d.Notify()
	pollUntil(t, "dst_slow resolving its credentials, dst_1 waiting for its window end", func() bool {
		return slow.prepares.Load() == 1 && r.d.sched.queued() == 1 && r.clock.Waiters() > 0
	})
	ids := r.post(2)

	// 10:05: both windows have ended; dst_1 takes the worker.
	r.clock.Set(mustTime(t, "2026-11-25T10:05:00Z"))
	pollUntil(t, "dst_1's delivery while dst_slow waits for STS", func() bool { return len(r.sink.keys()) == 1 })
	if len(slow.keys()) != 0 {
		t.Fatal("dst_slow delivered before its credentials came")
	}
	close(slow.release)
	pollUntil(t, "dst_slow's delivery once its credentials came", func() bool { return len(slow.keys()) == 1 })
	r.expectDelivered(ids)
	if got := slow.messageIDs(t); len(got) != len(ids) {
		t.Fatalf("dst_slow delivered %v, want %v", got, ids)
	}
}

// Loops waiting for their credentials are served by a few goroutines, not
// one each: with STS stuck, 200 destinations have prepareWorkers calls in
// flight and no goroutine apiece; once STS answers, every one delivers.
func TestPreparesAreBounded(t *testing.T) {
	const n = 200
	r := newRig(t, "2026-11-25T10:00:30Z")
	release := make(chan struct{})
	var inFlight, most atomic.Int32
	before := runningGoroutines(t, r)
	sinks := make([]*slowCredsSink, n+1)
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("dst_%03d", i)
		sinks[i] = &slowCredsSink{memSink: &memSink{objects: map[string][]byte{}}, release: release, inFlight: &inFlight, most: &most}
		r.sinks.Store(id, sinks[i])
		r.createDestination(id, api.DestinationSpec{Interval: "1m"})
	}
	r.d.Notify()
	pollUntil(t, "every worker of the prepare queue waiting for STS", func() bool { return inFlight.Load() == prepareWorkers })
	if grown := runtime.NumGoroutine() - before; grown > prepareWorkers+20 {
		t.Fatalf("%d destinations waiting for STS added %d goroutines, want about %d", n, grown, prepareWorkers)
	}
	close(release)
	ids := r.post(1)
	pollUntil(t, "every destination waiting for its window end", func() bool {
		return r.d.sched.waiting() == n+1 && r.clock.Waiters() > 0
	})
	r.clock.Set(mustTime(t, "2026-11-25T10:01:00Z"))
	for i := 1; i <= n; i++ {
		s := sinks[i]
		pollUntil(t, fmt.Sprintf("dst_%03d's delivery", i), func() bool { return len(s.keys()) == 1 })
		if got := s.messageIDs(t); len(got) != 1 || got[0] != ids[0] {
			t.Fatalf("dst_%03d delivered %v, want %v", i, got, ids)
		}
	}
	if m := most.Load(); m > prepareWorkers {
		t.Fatalf("%d Prepare calls at once, want at most %d", m, prepareWorkers)
	}
}

// runningGoroutines starts dst_000 (writing to the rig's sink) and waits
// for it to wait for its window end, so that the Deliverer's own
// goroutines (the scheduler, the prepare queue's) are all running, then
// counts the goroutines.
func runningGoroutines(t *testing.T, r *rig) int {
	t.Helper()
	r.createDestination("dst_000", api.DestinationSpec{Interval: "1m"})
	r.d.Notify()
	pollUntil(t, "dst_000 waiting for its window end", func() bool { return r.d.sched.waiting() == 1 && r.clock.Waiters() > 0 })
	return runtime.NumGoroutine()
}

// slowCredsSink is a memSink whose credentials are resolved only once
// release is closed. inFlight and most, when set, count the Prepare calls
// waiting across sinks and the most at once.
type slowCredsSink struct {
	*memSink
	release        chan struct{}
	ready          atomic.Bool
	prepares       atomic.Int32
	inFlight, most *atomic.Int32
}

func (s *slowCredsSink) Ready() bool { return s.ready.Load() }

func (s *slowCredsSink) Prepare(ctx context.Context) error {
	if s.ready.Load() {
		return nil
	}
	s.prepares.Add(1)
	if s.inFlight != nil {
		now := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for m := s.most.Load(); now > m && !s.most.CompareAndSwap(m, now); m = s.most.Load() {
		}
	}
	select {
	case <-s.release:
		s.ready.Store(true)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// createDestination stores a destination of the rig's tenant without
// waiting for its loop.
func (r *rig) createDestination(id string, spec api.DestinationSpec) {
	r.t.Helper()
	spec.Bucket, spec.Region, spec.RoleARN, spec.Prefix = "bucket", "us-east-1", "arn:aws:iam::123456789012:role/r", "audit/"+id
	spec.Backfill = "0"
	if err := spec.Normalize(); err != nil {
		r.t.Fatal(err)
	}
	data, _ := json.Marshal(spec)
	if _, err := r.store.CreateDestination(context.Background(), store.Destination{ID: id, TenantID: r.tenant.ID, Spec: data}); err != nil {
		r.t.Fatal(err)
	}
}

// countDelivered is how many of the tenant's destinations have delivered.
func countDelivered(ctx context.Context, st store.Store, tenantID int64) (int, error) {
	dests, err := st.ListDestinations(ctx, tenantID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range dests {
		_, s, err := st.DestinationStatus(ctx, tenantID, d.ID)
		if err != nil {
			return 0, err
		}
		if !s.LastDeliveryAt.IsZero() {
			n++
		}
	}
	return n, nil
}

// A stopped loop's done closes once: at the stop between turns (a loop
// stopped even before its first push, as when Run's context ends while
// it starts loops), or when its turn in flight ends.
func TestStoppedLoopFinishesOnce(t *testing.T) {
	for _, inTurn := range []bool{false, true} {
		t.Run(fmt.Sprintf("in turn %v", inTurn), func(t *testing.T) {
			s := newScheduler(clocktest.NewFake(time.Now()), 1, func(*loop) {})
			l := &loop{done: make(chan struct{}), hard: func() {}, index: -1, busy: inTurn}
			s.stop(l)
			select {
			case <-l.done:
				if inTurn {
					t.Fatal("done closed while the turn is in flight")
				}
			default:
				if !inTurn {
					t.Fatal("done still open after the stop of an idle loop")
				}
			}
			s.push(l, time.Time{}) // the turn's end, or the first push
			select {
			case <-l.done:
			default:
				t.Fatal("done still open after the push")
			}
			if n := s.queued(); n != 0 {
				t.Fatalf("%d loops queued, want the stopped one out", n)
			}
		})
	}
}

// throttledCredsSink is a memSink whose first Prepare fails, as when STS
// throttles, and whose credentials are resolved at the second.
type throttledCredsSink struct {
	*memSink
	prepares atomic.Int32
}

func (s *throttledCredsSink) Ready() bool { return s.prepares.Load() >= 2 }

func (s *throttledCredsSink) Prepare(context.Context) error {
	if s.prepares.Add(1) == 1 {
		return errors.New("Throttling: Rate exceeded")
	}
	return nil
}

// Credentials that fail before the window ends are retried with the
// backoff, and the failure shows, but the window is delivered only once it
// has ended, with every event of it: the retry does not deliver it early.
func TestCredentialsRetryWaitsForTheWindowEnd(t *testing.T) {
	r := newRig(t, "2026-11-25T10:00:30Z")
	sink := &throttledCredsSink{memSink: &memSink{objects: map[string][]byte{}}}
	r.sinks.Store("dst_t", sink)
	r.createDestination("dst_t", api.DestinationSpec{Interval: "1m"})
	r.d.Notify()
	pollUntil(t, "the failed Prepare's retry waiting on the clock", func() bool {
		return sink.prepares.Load() == 1 && r.d.sched.queued() == 1 && r.clock.Waiters() > 0
	})
	if st, err := r.store.GetStatus(context.Background(), "dst_t"); err != nil || !strings.Contains(st.LastError, "Throttling") {
		t.Fatalf("status after the failed Prepare: %+v, %v; want the throttling error", st, err)
	}
	early := r.post(1)

	// 10:00:45: the retry (after at most a second) resolves the
	// credentials, before the window ends.
	r.clock.Set(mustTime(t, "2026-11-25T10:00:45Z"))
	pollUntil(t, "the retried Prepare, then the loop waiting for its window end", func() bool {
		return sink.prepares.Load() >= 2 && r.d.sched.queued() == 1 && r.clock.Waiters() > 0
	})
	if keys := sink.keys(); len(keys) != 0 {
		t.Fatalf("delivered %v before the window ended", keys)
	}
	late := r.post(1)

	r.clock.Set(mustTime(t, "2026-11-25T10:01:00Z"))
	pollUntil(t, "the window's delivery", func() bool { return len(sink.keys()) == 1 })
	if got, want := sink.messageIDs(t), append(early, late...); !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want the whole window %v", got, want)
	}
}

// At an hour's end every destination has its delivery and its digest to
// write. With one worker busy, a digest queued while others' deliveries
// become due waits for them: a is delivering when c's turn comes, and c
// delivers before a's digest is written.
func TestDigestsWaitForTheWindowEndsDeliveries(t *testing.T) {
	ids := []string{"dst_a", "dst_b", "dst_c"}
	minute := Schedule{Interval: time.Minute}
	slices.SortFunc(ids, func(x, y string) int {
		return cmp.Compare(spreadOf(x, minute, DefaultSpread), spreadOf(y, minute, DefaultSpread))
	})
	var spreads []time.Duration
	for _, id := range ids {
		spreads = append(spreads, spreadOf(id, minute, DefaultSpread))
	}
	if spreads[0] == spreads[1] || spreads[1] == spreads[2] {
		t.Fatalf("spreads %v: the test needs three distinct ones", spreads)
	}
	var keys *signing.Keys
	r := newRigWrapped(t, "2026-11-25T10:59:30Z", func(st store.Store) store.Store {
		keys = newKeys(t, st)
		return st
	}, func(o *Options) { o.Signer, o.Spread = keys, DefaultSpread })
	hour := mustTime(t, "2026-11-25T11:00:00Z")
	var mu sync.Mutex
	var order []string
	sink := &hookSink{memSink: r.sink, hook: func(key string) {
		mu.Lock()
		defer mu.Unlock()
		kind := "data"
		if strings.Contains(key, "/"+digest.Folder) {
			kind = "digest"
		}
		order = append(order, kind)
		if len(order) == 1 { // the first delivery: the last destination's turn comes
			r.clock.Set(hour.Add(spreads[2]))
		}
	}}
	for _, id := range ids {
		r.sinks.Store(id, sink)
		r.createDestination(id, api.DestinationSpec{Interval: "1m"})
	}
	r.d.Notify()
	pollUntil(t, "every destination waiting for its window end", func() bool {
		return r.d.sched.waiting() == len(ids) && r.clock.Waiters() > 0
	})
	r.post(3)
	r.clock.Set(hour.Add(spreads[1])) // the first two are due
	pollUntil(t, "every delivery and digest", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 2*len(ids)
	})
	want := []string{"data", "data", "data", "digest", "digest", "digest"}
	if !slices.Equal(order, want) {
		t.Fatalf("uploads in the order %v, want every delivery first", order)
	}
}

// hookSink is a memSink that calls hook with each upload's key first.
type hookSink struct {
	*memSink
	hook func(key string)
}

func (s *hookSink) NewUpload(ctx context.Context, key string, meta s3sink.PutMeta, partSize int) ObjectWriter {
	s.hook(key)
	return s.memSink.NewUpload(ctx, key, meta, partSize)
}

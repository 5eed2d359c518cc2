package delivery

import (
	"container/heap"
	"context"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/auditexport/auditexport/internal/clock"
)

// One scheduler runs every destination. A destination that waits for its
// next window end (or its next hour's digest, or a retry) is an entry in a
// heap of due times, not a sleeping goroutine: with 10,000 destinations
// that is 10,000 small structs instead of 10,000 stacks and timers. When
// the first entry is due and a worker is free, the scheduler hands the
// destination to a goroutine of its own for one turn (see
// Deliverer.runTurn), which holds the worker until it is done and then puts
// the destination back with its next due time.
//
// The workers are taken in due order, and only when one is free does the
// scheduler take the next destination, so a window end with thousands of
// destinations due queues them in the heap, not as goroutines. A turn that
// only writes digests yields to the deliveries due with it (see
// loop.digestTurn): at an hour's end every destination has a digest to
// write, as much work again as its delivery, and the deliveries of that
// window end would otherwise wait behind other destinations' digests.

// DefaultSpread bounds how long after a window end a destination's turn
// comes unless Options.Spread says otherwise. Each destination has its own
// fixed delay within the bound, from a hash of its id, so that the
// destinations of a busy agent reach the store and S3 over a few seconds
// rather than in the same millisecond, always in the same order.
const DefaultSpread = 5 * time.Second

// TurnDelay is how long after each window end of sched the destination id
// gets its turn, with the default spread: what a tool timing a delivery
// from the window end subtracts to time the delivery alone.
func TurnDelay(id string, sched Schedule) time.Duration {
	return spreadOf(id, sched, DefaultSpread)
}

// spreadOf is the destination's delay after each window end and hour
// boundary: a fraction, fixed by its id, of the spread bound. The bound is
// at most a twelfth of the destination's interval (5 s for 1-minute
// windows, less for a shorter tick), so the delay never eats the window.
func spreadOf(id string, sched Schedule, bound time.Duration) time.Duration {
	if sched.Interval > 0 {
		bound = min(bound, sched.Interval/12)
	}
	if bound <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return time.Duration(h.Sum64() % uint64(bound))
}

// scheduler keeps the loops' due times. Loops due now wait in ready, in
// the order they came, or in digests when their turn only writes digests
// (taken only while ready is empty); later ones in the heap.
type scheduler struct {
	clock clock.Clock
	sem   chan struct{} // the workers: one token per turn in flight
	start func(*loop)   // runs a popped loop's turn; it holds one token

	mu      sync.Mutex
	ready   []*loop
	digests []*loop
	later   loopHeap
	wake    chan struct{}
}

func newScheduler(c clock.Clock, workers int, start func(*loop)) *scheduler {
	return &scheduler{clock: c, sem: make(chan struct{}, workers), start: start, wake: make(chan struct{}, 1)}
}

// push queues l for a turn at `at` (now when at is zero or past), unless it
// was stopped. It is called for a loop that has no turn in flight.
func (s *scheduler) push(l *loop, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	turnEnded := l.busy
	l.busy = false
	if l.stopped {
		// A loop stopped between turns was finished by stop; one stopped
		// before its first push too (a loop started as Run's context
		// ends: its context's AfterFunc stops it at once).
		if turnEnded {
			l.finish()
		}
		return
	}
	l.due = at
	if at.IsZero() || !at.After(s.clock.Now()) {
		s.queueDue(l)
	} else {
		heap.Push(&s.later, l)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// stop takes l out of the queues for good. Its done channel closes now, or
// when its turn in flight ends.
func (s *scheduler) stop(l *loop) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.stopped {
		return
	}
	l.stopped = true
	switch {
	case l.index >= 0:
		heap.Remove(&s.later, l.index)
	case l.index == -2:
		s.ready = without(s.ready, l)
	case l.index == -3:
		s.digests = without(s.digests, l)
	}
	l.index = -1
	if !l.busy {
		l.finish()
	}
}

// queued is the number of loops waiting for a turn.
func (s *scheduler) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ready) + len(s.digests) + len(s.later)
}

// waiting is the number of loops waiting for a later time, none due now.
// A loop due now may not have had its first turn: it may not know its
// window end yet (see openLoop).
func (s *scheduler) waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ready) > 0 || len(s.digests) > 0 {
		return 0
	}
	return len(s.later)
}

// run hands due loops to turns until ctx ends. It waits on the clock only
// for the first entry of the heap, and keeps one wait armed: a wait is
// replaced only by an earlier one, so a fake clock sees one waiter per
// distinct time the scheduler is waiting for.
func (s *scheduler) run(ctx context.Context) {
	var armed time.Time
	var fire <-chan time.Time
	for {
		l, next := s.due()
		if l != nil {
			select {
			case s.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			if l = s.take(l); l == nil {
				<-s.sem // stopped meanwhile, or overtaken
				continue
			}
			s.start(l)
			continue
		}
		if !next.IsZero() && (fire == nil || next.Before(armed)) {
			armed, fire = next, s.clock.After(next.Sub(s.clock.Now()))
		}
		select {
		case <-fire:
			fire = nil
		case <-s.wake:
		case <-ctx.Done():
			return
		}
	}
}

// due returns the next loop due now, without taking it, or else the time
// the first later one is due (zero when there is none).
func (s *scheduler) due() (*loop, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	for len(s.later) > 0 && !s.later[0].due.After(now) {
		s.queueDue(heap.Pop(&s.later).(*loop))
	}
	if len(s.ready) > 0 {
		return s.ready[0], time.Time{}
	}
	if len(s.digests) > 0 {
		return s.digests[0], time.Time{}
	}
	if len(s.later) > 0 {
		return nil, s.later[0].due
	}
	return nil, time.Time{}
}

// queueDue queues l, due now, in ready or (a digests-only turn) digests.
func (s *scheduler) queueDue(l *loop) {
	if l.digestTurn {
		s.digests = append(s.digests, l)
		l.index = -3
		return
	}
	s.ready = append(s.ready, l)
	l.index = -2
}

// take dequeues l for its turn; nil when it was stopped since due, or
// when it is a digests-only turn and a delivery has become due meanwhile
// (the caller asks due again).
func (s *scheduler) take(l *loop) *loop {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case l.stopped:
		return nil
	case len(s.ready) > 0:
		if s.ready[0] != l {
			return nil
		}
		s.ready = s.ready[1:]
	case len(s.digests) > 0 && s.digests[0] == l:
		s.digests = s.digests[1:]
	default:
		return nil
	}
	l.index, l.busy = -1, true
	return l
}

// without removes l from loops.
func without(loops []*loop, l *loop) []*loop {
	if i := slices.Index(loops, l); i >= 0 {
		return slices.Delete(loops, i, i+1)
	}
	return loops
}

// loopHeap orders loops by due time.
type loopHeap []*loop

func (h loopHeap) Len() int           { return len(h) }
func (h loopHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h loopHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *loopHeap) Push(x any) {
	l := x.(*loop)
	l.index = len(*h)
	*h = append(*h, l)
}

func (h *loopHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	l.index = -1
	return l
}

// requeue ends l's turn: it queues the next turn at `at` when again, and
// finishes l when it was stopped meanwhile.
func (s *scheduler) requeue(l *loop, at time.Time, again bool) {
	if again {
		s.push(l, at)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l.busy = false
	if l.stopped {
		l.finish()
	}
}

// loopQueue is a queue of loops, served by several goroutines.
type loopQueue struct {
	mu    sync.Mutex
	loops []*loop
	wake  chan struct{} // capacity 1: set while the queue may hold loops
}

func (q *loopQueue) put(l *loop) {
	q.mu.Lock()
	q.loops = append(q.loops, l)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns the first loop, waiting for one; nil once ctx ended.
func (q *loopQueue) take(ctx context.Context) *loop {
	for {
		q.mu.Lock()
		if len(q.loops) > 0 {
			l := q.loops[0]
			q.loops[0] = nil
			q.loops = q.loops[1:]
			more := len(q.loops) > 0
			q.mu.Unlock()
			if more {
				select { // another server takes the next one
				case q.wake <- struct{}{}:
				default:
				}
			}
			return l
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-ctx.Done():
			return nil
		}
	}
}

// Package delivery runs each destination's schedule: at every window end it
// plans the events after the destination's cursor, writes them to the
// customer's bucket and then advances the cursor.
package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/clock"
	"github.com/auditexport/auditexport/internal/destination"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/ocsf"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/store"
)

// DefaultWorkers is how many destinations write at the same time unless
// Options.Workers says otherwise. Most of an attempt is waiting (for S3,
// for a shared commit), so with many small destinations the workers are
// what overlaps those waits; the store batches their writes.
const DefaultWorkers = 32

// Options tune the delivery loop.
type Options struct {
	// Workers bounds how many destinations write at the same time.
	Workers int
	// Tick, when set, replaces every destination's cadence (tests, dev mode).
	Tick time.Duration
	// Spread bounds the fixed delay of each destination's turn after its
	// window end and after each hour boundary (see DefaultSpread, the
	// bound when 0, and spreadOf); negative: no delay.
	Spread time.Duration
	// RetryInitial and RetryMax bound the backoff after a failed attempt.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// FailingAfter is how long a destination fails before its state is "failing".
	FailingAfter time.Duration
	// Refresh is how often the destination list is re-read without a Notify.
	Refresh time.Duration
	// Clock drives the schedule, the retries, the states and the retention
	// sweeps; the system clock when nil.
	Clock clock.Clock
	// Retention is the least time events are kept; 0 keeps them forever.
	Retention time.Duration
	// SweepEvery is how often expired events are deleted.
	SweepEvery time.Duration
	// OCSF maps events for destinations with event_schema = "ocsf"; the
	// built-in rules when nil.
	OCSF *ocsf.Mapper
	// MessageIDField is the events' message id field (ingest's
	// message_id_field), a column of raw Parquet objects; "messageId" when empty.
	MessageIDField string
	// ShutdownGrace is how long an attempt in flight may finish after a
	// stop before it is cancelled.
	ShutdownGrace time.Duration
	// AgentID names this agent in destination leases, logs and the
	// destination status; hostname-pid-random when empty. It must be unique
	// among the agents sharing a store.
	AgentID string
	// LeaseTTL is how long a destination lease lasts unless renewed
	// (DefaultLeaseTTL when 0), and LeaseRenew how often the leases are
	// renewed (DefaultLeaseRenew). Used only with a shared store.
	LeaseTTL   time.Duration
	LeaseRenew time.Duration
	// Signer signs the hourly integrity digests (see digests.go); nil
	// writes none.
	Signer Signer
	// LogRetention is how long the delivery log and the saved digests are
	// kept once a written digest covers them (store.DefaultLogRetention
	// when 0).
	LogRetention time.Duration
}

// Deliverer runs one loop per enabled destination, all on one scheduler.
type Deliverer struct {
	store   store.Store
	sinks   func(s3sink.Target) Sink
	metrics *metrics.Metrics
	log     hclog.Logger
	opts    Options

	sched *scheduler
	prep  loopQueue // loops waiting for their credentials
	wake  chan struct{}

	mu    sync.Mutex
	loops map[string]*loop

	// leased is set when the store is shared: destinations are then
	// delivered only under their lease (see leases.go).
	leased    bool
	leader    atomic.Bool
	leaseWake chan struct{}
	// held and releasing are guarded by mu. renewedAt is when the last
	// successful renewal started, on this machine's clock.
	held      map[string]store.Lease
	releasing map[string]bool
	renewedAt time.Time
	// detached counts loops stopped without waiting and lease releases in
	// progress; Run waits for them before it returns.
	detached sync.WaitGroup
	// lagAt is when the lag gauges were last refreshed, on the machine's
	// clock (reconcile's goroutine only).
	lagAt time.Time
	// version is the store's DestinationsVersion the loops were last
	// reconciled with, -1 before the first (reconcile's goroutine only).
	version int64
}

// loop is one destination's schedule and the state its turns carry from
// one to the next. No goroutine runs for a loop between its turns.
type loop struct {
	updated time.Time
	cancel  context.CancelFunc // stop after the turn in flight
	hard    context.CancelFunc // cancel the turn in flight too
	done    chan struct{}      // closed once stopped with no turn in flight

	ctx   context.Context // ends at a stop
	hctx  context.Context // ends at a stop's deadline or a lost lease
	dest  store.Destination
	spec  api.DestinationSpec
	fence store.Lease // the lease every store write is made under
	sched Schedule
	// spread is the loop's delay after each window end and hour
	// boundary (see spreadOf).
	spread time.Duration

	// Guarded by the scheduler's mu: when the next turn is due, where
	// the loop is queued (an index in the heap, -2 ready, -3 digests,
	// -1 neither), whether a turn is in flight and whether the loop was
	// stopped.
	due     time.Time
	index   int
	busy    bool
	stopped bool

	// Used by the loop's turns, which run one at a time.
	t         *target // nil until the destination's tenant is read
	windowEnd time.Time
	backoff   time.Duration
	retrying  bool // the last attempt failed: the next turn retries it
	// digestTurn is set by a turn whose next one only writes digests:
	// that turn waits while deliveries are due (see scheduler). Read by
	// the scheduler when it queues the loop, after the turn.
	digestTurn bool
	// prepared is set by a turn that only resolved the loop's credentials
	// (outside the workers), and prepErr is how that ended.
	prepared bool
	prepErr  error
}

// finish ends a stopped loop, with the scheduler's mu held, once.
func (l *loop) finish() {
	l.hard()
	close(l.done)
}

// New returns a Deliverer. sinks opens the bucket of a destination's target.
func New(s store.Store, sinks func(s3sink.Target) Sink, m *metrics.Metrics, log hclog.Logger, opts Options) *Deliverer {
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.RetryInitial <= 0 {
		opts.RetryInitial = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 5 * time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 10 * time.Second
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = time.Minute
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 10 * time.Second
	}
	if opts.AgentID == "" {
		opts.AgentID = defaultAgentID()
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.LeaseRenew <= 0 {
		opts.LeaseRenew = DefaultLeaseRenew
	}
	if opts.Spread == 0 {
		opts.Spread = DefaultSpread
	}
	d := &Deliverer{
		store: s, sinks: sinks, metrics: m, log: log.Named("delivery"), opts: opts,
		wake:      make(chan struct{}, 1),
		prep:      loopQueue{wake: make(chan struct{}, 1)},
		loops:     map[string]*loop{},
		version:   -1,
		leased:    s.Shared(),
		leaseWake: make(chan struct{}, 1),
		held:      map[string]store.Lease{},
		releasing: map[string]bool{},
	}
	d.sched = newScheduler(opts.Clock, opts.Workers, func(l *loop) { go d.runTurn(l) })
	if m != nil {
		m.SetStates(d.states)
	}
	return d
}

func (d *Deliverer) now() time.Time { return d.opts.Clock.Now().UTC() }

// Notify tells the Deliverer that destinations changed.
func (d *Deliverer) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run reconciles the destination loops until ctx ends, then waits for the
// loops to stop. A loop stops between objects, never inside a commit, so a
// plan in flight is either committed or re-run at the next start. With a
// shared store, Run also keeps the agent's leases (the heartbeat) and
// releases them once the loops have stopped.
func (d *Deliverer) Run(ctx context.Context) {
	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		d.sched.run(ctx)
	}()
	defer func() { <-schedDone }()
	// The prepare queue is served until every loop has stopped: a stopped
	// loop waiting there finishes only once taken.
	prepCtx, stopPrep := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPrep()
	for range prepareWorkers {
		go d.prepareLoops(prepCtx)
	}
	// Refresh is a poll for changes made by another agent sharing the
	// database: a pace on the machine's clock, not a time the agent keeps.
	// Retention runs on the agent's clock, so its sweeps follow the same
	// time its cutoff is computed from.
	t := time.NewTicker(d.opts.Refresh)
	defer t.Stop()
	sweep := d.opts.Clock.NewTicker(d.opts.SweepEvery)
	defer sweep.Stop()
	// The heartbeat is a pace on the machine's clock too; whether a lease
	// has expired is judged on the database's.
	var beat <-chan time.Time
	if d.leased {
		hb := time.NewTicker(d.opts.LeaseRenew)
		defer hb.Stop()
		beat = hb.C
	}
	polled := false
	for {
		d.reconcile(ctx, polled)
		polled = false
		select {
		case <-ctx.Done():
			d.stopAll()
			if d.leased {
				d.leave()
			}
			return
		case <-t.C:
			polled = true
		case <-d.wake:
		case <-beat:
		case <-d.leaseWake:
		case <-sweep.C():
			if d.runsRetention() {
				d.sweep(ctx)
			}
		}
	}
}

// reconcile starts, restarts and stops the loops to match the store's
// destinations. At a poll (polled) it first reads the destinations'
// version and, while that stands, only refreshes the lag gauges: listing
// and decrypting 10,000 destinations at every poll cost more than the rest
// of an idle agent's work, and the version is one row. With a shared store
// a poll lists anyway: it is also the leases' heartbeat.
func (d *Deliverer) reconcile(ctx context.Context, polled bool) {
	// Read before the list: a change in between moves the version past
	// the one kept, and the next poll lists again.
	version, verr := d.store.DestinationsVersion(ctx)
	if polled && !d.leased && verr == nil && version == d.version {
		d.updateLag(ctx)
		return
	}
	dests, err := d.store.ListDestinations(ctx, 0)
	if err != nil {
		d.log.Error("listing destinations", "error", err)
		if d.leased {
			d.renewFailed(time.Now())
		}
		return
	}
	if verr == nil {
		d.version = version
	}
	if d.leased {
		d.heartbeat(ctx, len(dests))
	}
	d.updateLag(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := map[string]bool{}
	for _, dest := range dests {
		if !d.holdsLocked(dest.ID) {
			continue // delivered by another agent, or being released
		}
		seen[dest.ID] = true
		// The spec too: two updates within a millisecond share updated_at.
		if l, ok := d.loops[dest.ID]; ok && l.updated.Equal(dest.UpdatedAt) && bytes.Equal(l.dest.Spec, dest.Spec) {
			continue
		}
		d.stopLocked(dest.ID)
		d.startLocked(ctx, dest)
	}
	for id := range d.loops {
		if !seen[id] {
			d.stopLocked(id)
		}
	}
}

func (d *Deliverer) startLocked(ctx context.Context, dest store.Destination) {
	spec, err := destination.Decode(dest)
	if err != nil {
		d.log.Error("destination spec unreadable", "destination", dest.ID, "error", err)
		return
	}
	if spec.Enabled != nil && !*spec.Enabled {
		return
	}
	lctx, cancel := context.WithCancel(ctx)
	hctx, hard := context.WithCancel(context.WithoutCancel(ctx))
	l := &loop{
		updated: dest.UpdatedAt, cancel: cancel, hard: hard, done: make(chan struct{}),
		ctx: lctx, hctx: hctx, dest: dest, spec: spec, index: -1,
		fence:   d.held[dest.ID], // the zero Lease, unfenced, with a store that is not shared
		backoff: d.opts.RetryInitial,
	}
	d.loops[dest.ID] = l
	// However the loop is stopped (here, by the leases, by Run's end),
	// it leaves the scheduler and its done closes once no turn is in flight.
	context.AfterFunc(lctx, func() { d.sched.stop(l) })
	l.sched, err = ScheduleFor(spec, d.opts.Tick)
	if err != nil {
		d.log.Error("destination schedule", "destination", dest.ID, "error", err)
		return
	}
	l.spread = spreadOf(dest.ID, l.sched, d.opts.Spread)
	d.sched.push(l, time.Time{})
}

func (d *Deliverer) stopLocked(id string) {
	l, ok := d.loops[id]
	if !ok {
		return
	}
	l.cancel()
	<-l.done
	delete(d.loops, id)
}

func (d *Deliverer) stopAll() {
	d.mu.Lock()
	for id := range d.loops {
		d.stopLocked(id)
	}
	d.mu.Unlock()
	d.detached.Wait()
}

// runTurn runs one turn of l, holding one of the scheduler's workers,
// then gives the worker back and queues l's next turn. A loop whose
// credentials are not ready gives the worker back at once and waits in
// the prepare queue instead (see preparer loop): a role waiting for STS
// (paced at a cold start, or slow) holds up only its own destination.
func (d *Deliverer) runTurn(l *loop) {
	if d.unready(l) {
		<-d.sched.sem
		d.prep.put(l)
		return
	}
	l.prepared = false
	next, again := d.turn(l)
	<-d.sched.sem
	d.sched.requeue(l, next, again)
}

// prepareWorkers is how many goroutines resolve credentials for the
// loops in the prepare queue. AssumeRole is paced (aws.assume_role_per_second,
// 100/s by default): 16 calls in flight keep that pace with STS answering
// in up to 160 ms, where a goroutine per destination would park 10,000 of
// them, and their stacks, through a cold start.
const prepareWorkers = 16

// prepareLoops resolves the credentials of queued loops, then queues each
// for its turn, until ctx ends. Loops stopped meanwhile come through too
// (Prepare returns at once on their ended context), so that they finish.
func (d *Deliverer) prepareLoops(ctx context.Context) {
	for {
		l := d.prep.take(ctx)
		if l == nil {
			return
		}
		r, _ := l.t.sink.(readier)
		l.prepErr, l.prepared = r.Prepare(l.ctx), true
		d.sched.requeue(l, time.Time{}, true)
	}
}

// readier is a Sink that can tell whether its credentials are resolved.
type readier interface {
	preparer
	Ready() bool
}

// unready reports whether l's credentials must be resolved before its turn.
func (d *Deliverer) unready(l *loop) bool {
	if l.t == nil || l.prepared || l.ctx.Err() != nil {
		return false
	}
	r, ok := l.t.sink.(readier)
	return ok && !r.Ready()
}

// turn is all the work of one destination at one moment: once its window
// has ended, a delivery attempt (retried with capped, jittered backoff at
// later turns until it succeeds), then its due digests. It returns when
// the next turn is due; again is false when the loop is over (stopped, or
// its lease lost).
func (d *Deliverer) turn(l *loop) (next time.Time, again bool) {
	ctx := l.ctx
	l.digestTurn = false
	if ctx.Err() != nil {
		return time.Time{}, false
	}
	if l.t == nil {
		if !d.openLoop(l) {
			return d.retryAt(l), ctx.Err() == nil
		}
		// The next turn at once, which first resolves the credentials
		// off the workers: at a cold start every role is assumed (paced)
		// while the first window runs, not after it ends.
		return time.Time{}, true
	}
	t := l.t
	if err := l.prepErr; err != nil {
		// The credentials failed (STS throttling, a role not trusting
		// us): the destination shows the failure and resolves them again
		// after the backoff. Its window is attempted only once ended,
		// as always: attempted now, it would be delivered while open.
		l.prepErr = nil
		if ctx.Err() != nil {
			return time.Time{}, false // stopped while resolving them
		}
		d.fail(ctx, t, err)
		l.retrying = !d.now().Before(l.windowEnd)
		return d.retryAt(l), true
	}
	if l.retrying || !d.now().Before(l.windowEnd) {
		err := d.attempt(ctx, t, l.windowEnd)
		switch {
		case errors.Is(err, store.ErrLeaseLost):
			// Another agent delivers the destination now; the
			// heartbeat drops the lease.
			d.log.Warn("lease lost during delivery", "destination", t.dest.ID, "epoch", t.fence.Epoch, "error", err)
			d.wakeLeases()
			return time.Time{}, false
		case err != nil && ctx.Err() != nil:
			return time.Time{}, false
		case err != nil:
			d.fail(ctx, t, err)
			l.retrying = true
			return d.retryAt(l), true
		}
		l.retrying, l.backoff = false, d.opts.RetryInitial
		l.windowEnd = l.sched.Next(l.windowEnd)
		if now := d.now(); l.windowEnd.Before(now) {
			// Skip windows missed while down: one plan covers them all.
			l.windowEnd = l.sched.Last(now)
		}
		if d.digestsDue(t) {
			// The digests in a turn of their own, after the other
			// destinations' deliveries of this window end.
			l.digestTurn = true
			return time.Time{}, ctx.Err() == nil
		}
	}
	d.writeDigests(ctx, t)
	return d.nextTurn(l), ctx.Err() == nil
}

// openLoop reads the destination's tenant and sets the loop up with its
// first window end (see firstWindowEnd). A failed read is logged and
// retried with the attempts' backoff: a loop that gave up here would not
// come back, since reconcile restarts a loop only when its destination
// changes.
func (d *Deliverer) openLoop(l *loop) bool {
	tenant, err := d.store.TenantByID(l.ctx, l.dest.TenantID)
	if err == nil {
		l.windowEnd, err = d.firstWindowEnd(l, tenant.ID)
	}
	if err != nil {
		if l.ctx.Err() == nil {
			d.log.Error("opening the destination's loop; retrying", "destination", l.dest.ID, "error", err)
		}
		return false
	}
	l.t = &target{dest: l.dest, spec: l.spec, tenant: tenant, sched: l.sched,
		sink: d.sinks(destinationTarget(l.dest.ID, l.spec, tenant.ExternalID)), fence: l.fence, hard: l.hctx}
	l.backoff = d.opts.RetryInitial
	return true
}

// firstWindowEnd is the last window end when that window is still owed:
// a plan of it is pending, or events stored before its cutoff lie past
// the cursor (no agent ran the destination then: it was down, restarting,
// or the lease was moving). Those are delivered at once rather than a
// whole interval later, which for a daily_at destination is a day.
// Otherwise it is the next window end.
func (d *Deliverer) firstWindowEnd(l *loop, tenantID int64) (time.Time, error) {
	now := d.now()
	last := l.sched.Last(now)
	_, err := d.store.PendingPlan(l.ctx, l.dest.ID)
	if err == nil {
		return last, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return time.Time{}, fmt.Errorf("reading the pending plan: %w", err)
	}
	head, err := d.store.LastSeqBefore(l.ctx, tenantID, l.dest.Cursor, l.sched.Cutoff(last))
	if err != nil {
		return time.Time{}, fmt.Errorf("reading head: %w", err)
	}
	if head > l.dest.Cursor {
		return last, nil
	}
	return l.sched.Next(now), nil
}

// nextTurn is when l's next turn is due: its window end, or the end of
// the hour when that comes first (for the hour's digest, so that a
// destination delivered daily still gets its digest each hour), each
// delayed by the loop's spread.
func (d *Deliverer) nextTurn(l *loop) time.Time {
	at := l.windowEnd
	if d.opts.Signer != nil {
		if hour := d.now().Truncate(time.Hour).Add(time.Hour); hour.Before(at) {
			at, l.digestTurn = hour, true
		}
	}
	return at.Add(l.spread)
}

// retryAt is when a failed turn is retried: after the loop's backoff,
// jittered, which then doubles up to RetryMax.
func (d *Deliverer) retryAt(l *loop) time.Time {
	wait := l.backoff/2 + rand.N(l.backoff/2+1)
	l.backoff = min(l.backoff*2, d.opts.RetryMax)
	return d.now().Add(wait)
}

// preparer is a Sink that can resolve its credentials ahead of a write.
type preparer interface {
	Prepare(ctx context.Context) error
}

// attempt runs one delivery attempt for the window ending at windowEnd.
// The turn holds a worker; the credentials are resolved already (see
// runTurn), unless the sink cannot tell, in which case Prepare resolves
// them here.
func (d *Deliverer) attempt(parent context.Context, t *target, windowEnd time.Time) error {
	if p, ok := t.sink.(preparer); ok {
		if err := p.Prepare(parent); err != nil {
			return err
		}
	}
	// A stop (SIGTERM, a changed destination) lets the attempt in flight
	// finish for up to ShutdownGrace, so a shutdown does not cut a batch in
	// half; past that it is cancelled and its persisted plan is re-run at
	// the next start.
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	defer cancel()
	stopGrace := context.AfterFunc(parent, func() { time.AfterFunc(d.opts.ShutdownGrace, cancel) })
	defer stopGrace()
	if t.hard != nil {
		stopHard := context.AfterFunc(t.hard, cancel)
		defer stopHard()
	}
	if !t.synced {
		// The cursor may have moved since the loop read the destination
		// (another agent's last commit before this one took the lease).
		dest, err := d.store.GetDestination(ctx, t.tenant.ID, t.dest.ID)
		if err != nil {
			return err
		}
		t.dest = dest
	}
	t.synced = false
	n, err := d.runOnce(ctx, t, windowEnd)
	if err != nil {
		return err
	}
	t.synced = true
	d.succeed(ctx, t, n)
	return nil
}

// destinationTarget is destination.TargetFor, named after the destination
// in log lines.
func destinationTarget(id string, spec api.DestinationSpec, externalID string) s3sink.Target {
	t := destination.TargetFor(spec, externalID)
	t.Destination = id
	return t
}

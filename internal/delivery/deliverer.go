// Package delivery runs each destination's schedule: at every window end it
// plans the events after the destination's cursor, writes them to the
// customer's bucket and then advances the cursor.
package delivery

import (
	"context"
	"errors"
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

// Deliverer runs one loop per enabled destination.
type Deliverer struct {
	store   store.Store
	sinks   func(s3sink.Target) Sink
	metrics *metrics.Metrics
	log     hclog.Logger
	opts    Options

	sem  chan struct{}
	wake chan struct{}

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
}

type loop struct {
	updated time.Time
	cancel  context.CancelFunc // stop after the attempt in flight
	hard    context.CancelFunc // cancel the attempt in flight too
	done    chan struct{}
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
	d := &Deliverer{
		store: s, sinks: sinks, metrics: m, log: log.Named("delivery"), opts: opts,
		sem:       make(chan struct{}, opts.Workers),
		wake:      make(chan struct{}, 1),
		loops:     map[string]*loop{},
		leased:    s.Shared(),
		leaseWake: make(chan struct{}, 1),
		held:      map[string]store.Lease{},
		releasing: map[string]bool{},
	}
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
	for {
		d.reconcile(ctx)
		select {
		case <-ctx.Done():
			d.stopAll()
			if d.leased {
				d.leave()
			}
			return
		case <-t.C:
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

func (d *Deliverer) reconcile(ctx context.Context) {
	dests, err := d.store.ListDestinations(ctx, 0)
	if err != nil {
		d.log.Error("listing destinations", "error", err)
		if d.leased {
			d.renewFailed(time.Now())
		}
		return
	}
	if d.leased {
		d.heartbeat(ctx, len(dests))
	}
	d.updateLag(ctx, dests)
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := map[string]bool{}
	for _, dest := range dests {
		if !d.holdsLocked(dest.ID) {
			continue // delivered by another agent, or being released
		}
		seen[dest.ID] = true
		if l, ok := d.loops[dest.ID]; ok && l.updated.Equal(dest.UpdatedAt) {
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
	l := &loop{updated: dest.UpdatedAt, cancel: cancel, hard: hard, done: make(chan struct{})}
	d.loops[dest.ID] = l
	fence := d.held[dest.ID] // the zero Lease, unfenced, with a store that is not shared
	go func() {
		defer close(l.done)
		defer hard()
		d.runLoop(lctx, hctx, dest, spec, fence)
	}()
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

// runLoop waits for each window end and delivers, retrying with capped,
// jittered backoff until the attempt succeeds. A failing destination only
// holds its own worker slot while it writes, never while it waits.
// hard ends when the destination's lease is lost: it cancels the attempt in
// flight without the shutdown grace. fence is the lease the loop's writes
// are made under.
func (d *Deliverer) runLoop(ctx, hard context.Context, dest store.Destination, spec api.DestinationSpec, fence store.Lease) {
	sched, err := ScheduleFor(spec, d.opts.Tick)
	if err != nil {
		d.log.Error("destination schedule", "destination", dest.ID, "error", err)
		return
	}
	tenant, ok := d.loadTenant(ctx, dest)
	if !ok {
		return
	}
	t := &target{dest: dest, spec: spec, tenant: tenant, sched: sched, sink: d.sinks(destinationTarget(dest.ID, spec, tenant.ExternalID)),
		fence: fence, hard: hard}
	windowEnd := sched.Last(d.now())
	if _, err := d.store.PendingPlan(ctx, dest.ID); err != nil {
		// No plan in flight: wait for the next window end.
		windowEnd = sched.Next(d.now())
	}
	for {
		if !d.sleepWritingDigests(ctx, t, windowEnd) {
			return
		}
		if !d.deliverWindow(ctx, t, windowEnd) {
			return
		}
		windowEnd = sched.Next(windowEnd)
		if now := d.now(); windowEnd.Before(now) {
			// Skip windows missed while down: one plan covers them all.
			windowEnd = sched.Last(now)
		}
	}
}

// loadTenant reads the destination's tenant, retrying with the attempts'
// backoff until it succeeds; false when ctx ended. A loop that gave up here
// would not come back: reconcile restarts a loop only when its destination
// changes, so a store outage as the loop starts would stop the destination
// until the agent restarts.
func (d *Deliverer) loadTenant(ctx context.Context, dest store.Destination) (store.Tenant, bool) {
	backoff := d.opts.RetryInitial
	for {
		tenant, err := d.store.TenantByID(ctx, dest.TenantID)
		if err == nil {
			return tenant, true
		}
		if ctx.Err() != nil {
			return store.Tenant{}, false
		}
		d.log.Error("reading the destination's tenant; retrying", "destination", dest.ID, "error", err)
		wait := backoff/2 + rand.N(backoff/2+1)
		if !d.sleepUntil(ctx, d.now().Add(wait)) {
			return store.Tenant{}, false
		}
		backoff = min(backoff*2, d.opts.RetryMax)
	}
}

// deliverWindow runs attempts until one succeeds; false when ctx ended.
func (d *Deliverer) deliverWindow(ctx context.Context, t *target, windowEnd time.Time) bool {
	backoff := d.opts.RetryInitial
	for {
		err := d.attempt(ctx, t, windowEnd)
		if err == nil {
			return true
		}
		if errors.Is(err, store.ErrLeaseLost) {
			// Another agent delivers the destination now; the
			// heartbeat drops the lease.
			d.log.Warn("lease lost during delivery", "destination", t.dest.ID, "epoch", t.fence.Epoch, "error", err)
			d.wakeLeases()
			return false
		}
		if ctx.Err() != nil {
			return false
		}
		d.fail(ctx, t, err)
		wait := backoff/2 + rand.N(backoff/2+1)
		if !d.sleepUntil(ctx, d.now().Add(wait)) {
			return false
		}
		backoff = min(backoff*2, d.opts.RetryMax)
	}
}

// preparer is a Sink that can resolve its credentials ahead of a write.
type preparer interface {
	Prepare(ctx context.Context) error
}

func (d *Deliverer) attempt(parent context.Context, t *target, windowEnd time.Time) error {
	// Credentials first, outside the worker pool: a role waiting for
	// STS (paced at a cold start, or slow) holds no worker.
	if p, ok := t.sink.(preparer); ok {
		if err := p.Prepare(parent); err != nil {
			return err
		}
	}
	select {
	case d.sem <- struct{}{}:
	case <-parent.Done():
		return parent.Err()
	}
	defer func() { <-d.sem }()
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

func (d *Deliverer) sleepUntil(ctx context.Context, at time.Time) bool {
	wait := at.Sub(d.now())
	if wait <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-d.opts.Clock.After(wait):
		return true
	case <-ctx.Done():
		return false
	}
}

// destinationTarget is destination.TargetFor, named after the destination
// in log lines.
func destinationTarget(id string, spec api.DestinationSpec, externalID string) s3sink.Target {
	t := destination.TargetFor(spec, externalID)
	t.Destination = id
	return t
}

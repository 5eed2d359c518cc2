package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/auditexport/auditexport/internal/store"
	"github.com/hashicorp/go-hclog"
)

// DefaultMaxBatchEvents is the default cap on the events of one commit:
// enough for every request of ten busy clients of 1,000 events to share
// one commit (4 MB of typical events), where a commit's fixed cost (its
// fsync, its statements) is spread widest.
const DefaultMaxBatchEvents = 10000

// ErrClosed is returned by Submit once Close has been called.
var ErrClosed = errors.New("ingest: committer is closed")

// CommitterOptions tunes group commit.
type CommitterOptions struct {
	// MaxBatchEvents caps the events of one store.Append call. A request
	// larger than that is committed alone; a request is never split. Zero
	// means DefaultMaxBatchEvents.
	MaxBatchEvents int
	// MaxWait is how long a commit waits for more requests to join it. Zero
	// adds no wait: whatever is queued is committed as soon as the previous
	// commit ends. Under load requests pile up while a commit runs, so zero
	// still groups well, without adding latency when the agent is idle.
	MaxWait time.Duration
	// Concurrency is how many commits may run at once; zero means one. A
	// store that takes concurrent transactions (PostgreSQL) overlaps one
	// commit's round trips and WAL flush with the next one's work, which a
	// single commit loop leaves idle; SQLite has one writer, so one loop is
	// all it can use.
	Concurrency int
	// ShareTenants lets several loops commit one tenant's requests at once,
	// for a store whose commits of one tenant overlap (PostgreSQL's take
	// the tenant's head lock only for their last round trip). Otherwise a
	// loop skips the tenants another loop is committing: their commits
	// would only queue on the tenant behind that loop's, so they wait and
	// join a later, larger commit.
	ShareTenants bool
	// Committed, when set, is told the number of events of each successful
	// commit (the agent exports it as a histogram of group commit sizes).
	Committed func(events int)
}

// Committer makes ingest requests durable with group commit: a commit loop
// takes every queued request and stores them all with one store.Append call,
// so that many requests share one transaction and one fsync. With
// Concurrency above one, several loops take turns at the queue.
type Committer struct {
	store store.Store
	opts  CommitterOptions
	log   hclog.Logger

	mu     sync.Mutex
	queue  []*request
	queued int // events in queue
	closed bool
	// busy is the tenants a loop is committing (see take).
	busy map[int64]bool

	wake      chan struct{} // capacity 1: a request arrived
	closing   chan struct{} // closed when Close begins
	done      chan struct{} // closed when every commit loop has exited
	startOnce sync.Once
	closeOnce sync.Once
}

// request is one Submit waiting for its commit.
type request struct {
	batch store.AppendBatch
	reply chan reply // capacity 1, so the commit loop never blocks on it
}

type reply struct {
	res store.AppendResult
	err error
}

// NewCommitter returns a Committer that appends to s. Call Start to begin
// committing and Close to stop. A nil log discards messages.
func NewCommitter(s store.Store, opts CommitterOptions, log hclog.Logger) *Committer {
	if opts.MaxBatchEvents <= 0 {
		opts.MaxBatchEvents = DefaultMaxBatchEvents
	}
	if opts.MaxWait < 0 {
		opts.MaxWait = 0
	}
	opts.Concurrency = max(opts.Concurrency, 1)
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Committer{
		store:   s,
		opts:    opts,
		log:     log,
		busy:    map[int64]bool{},
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// Start starts the commit loops. Calling it again does nothing.
func (c *Committer) Start() {
	c.startOnce.Do(func() {
		var wg sync.WaitGroup
		for range c.opts.Concurrency {
			wg.Go(c.run)
		}
		go func() {
			wg.Wait()
			close(c.done)
		}()
	})
}

// Close stops accepting requests, commits the ones already queued and returns
// once they are answered. It waits for the store however long that takes, so
// close the store only after Close returns. It is safe to call more than once.
func (c *Committer) Close() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.closing)
	})
	// Without a loop nothing would drain the queue.
	c.Start()
	<-c.done
}

// Submit queues b and blocks until it is durable, then returns its result.
// When the store fails, every request of the same commit gets the error and
// none of their events is stored.
//
// If ctx ends first, Submit returns ctx.Err() but b may still be committed:
// it stays queued, and a commit in flight cannot be undone. The client then
// sees an error and retries, which is harmless since events with a stored
// messageId are dropped as duplicates. A ctx that has already ended when
// Submit is called queues nothing.
func (c *Committer) Submit(ctx context.Context, b store.AppendBatch) (store.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return store.AppendResult{}, err
	}
	r := &request{batch: b, reply: make(chan reply, 1)}
	if err := c.enqueue(r); err != nil {
		return store.AppendResult{}, err
	}
	select {
	case rep := <-r.reply:
		return rep.res, rep.err
	case <-ctx.Done():
		return store.AppendResult{}, ctx.Err()
	}
}

func (c *Committer) enqueue(r *request) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.queue = append(c.queue, r)
	c.queued += len(r.batch.Events)
	c.mu.Unlock()
	c.signal()
	return nil
}

// signal wakes a commit loop. A wake-up already pending covers this one,
// because a loop looks at the whole queue each time it wakes.
func (c *Committer) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run is a commit loop.
func (c *Committer) run() {
	for c.waitWork() {
		c.linger()
		group := c.take()
		c.commit(group)
		c.finish(group)
	}
}

// waitWork blocks until a request this loop may take is queued (see take).
// It returns false when the committer is closed and the queue is empty.
func (c *Committer) waitWork() bool {
	for {
		c.mu.Lock()
		ready, closed, n := c.takeableLocked(), c.closed, len(c.queue)
		c.mu.Unlock()
		if ready {
			return true
		}
		if closed && n == 0 {
			return false
		}
		// Once closed, only a commit ending (which signals) can make the
		// rest of the queue takeable.
		closing := c.closing
		if closed {
			closing = nil
		}
		select {
		case <-c.wake:
		case <-closing:
		}
	}
}

// takeableLocked reports whether a queued request's tenant is not being
// committed by another loop (or ShareTenants is set).
func (c *Committer) takeableLocked() bool {
	for _, r := range c.queue {
		if !c.isBusy(r.batch.TenantID) {
			return true
		}
	}
	return false
}

// linger waits up to MaxWait for more requests, and stops early once a full
// batch is queued or Close is called.
func (c *Committer) linger() {
	if c.opts.MaxWait <= 0 {
		return
	}
	timer := time.NewTimer(c.opts.MaxWait)
	defer timer.Stop()
	for {
		c.mu.Lock()
		full, closed := c.queued >= c.opts.MaxBatchEvents, c.closed
		c.mu.Unlock()
		if full || closed {
			return
		}
		select {
		case <-timer.C:
			return
		case <-c.wake:
		case <-c.closing:
		}
	}
}

// take removes the requests of the next commit from the queue: in arrival
// order, up to MaxBatchEvents events, and at least one request, skipping
// the tenants another loop is committing unless ShareTenants is set.
func (c *Committer) take() []*request {
	c.mu.Lock()
	defer c.mu.Unlock()
	var group, rest []*request
	events, full := 0, false
	for _, r := range c.queue {
		size := len(r.batch.Events)
		full = full || len(group) > 0 && events+size > c.opts.MaxBatchEvents
		if full || c.isBusy(r.batch.TenantID) {
			rest = append(rest, r)
			continue
		}
		group = append(group, r)
		events += size
	}
	for _, r := range group {
		c.busy[r.batch.TenantID] = true
	}
	// A new slice, so the queue does not keep the taken events alive.
	c.queue = rest
	c.queued -= events
	if len(c.queue) > 0 {
		c.signal() // the rest is for another loop, if one is idle
	}
	return group
}

// isBusy tells whether another loop is committing the tenant and the
// tenant must wait for it. The caller holds c.mu.
func (c *Committer) isBusy(tenantID int64) bool {
	return !c.opts.ShareTenants && c.busy[tenantID]
}

// finish frees the group's tenants for the other loops.
func (c *Committer) finish(group []*request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range group {
		delete(c.busy, r.batch.TenantID)
	}
	if len(c.queue) > 0 {
		c.signal()
	}
}

// commit appends the group's batches in one call and answers each request.
func (c *Committer) commit(group []*request) {
	if len(group) == 0 {
		return
	}
	batches := make([]store.AppendBatch, len(group))
	events := 0
	for i, r := range group {
		batches[i] = r.batch
		events += len(r.batch.Events)
	}
	start := time.Now()
	// Not a request's context: one client going away must not fail the
	// commit for the others.
	results, err := c.store.Append(context.Background(), batches)
	if err == nil && len(results) != len(batches) {
		err = fmt.Errorf("store returned %d results for %d batches", len(results), len(batches))
	}
	if err != nil {
		c.log.Error("commit failed", "requests", len(group), "events", events, "error", err)
		for _, r := range group {
			r.reply <- reply{err: err}
		}
		return
	}
	c.log.Debug("committed", "requests", len(group), "events", events, "duration", time.Since(start))
	if c.opts.Committed != nil {
		c.opts.Committed(events)
	}
	for i, r := range group {
		r.reply <- reply{res: results[i]}
	}
}

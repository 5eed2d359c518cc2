package delivery

import (
	"context"
	"errors"
	"time"

	"github.com/auditexport/auditexport/internal/destination"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/store"
)

// fail records a failed attempt in the destination's status and metrics.
// The data stays in the store; the loop keeps retrying.
func (d *Deliverer) fail(ctx context.Context, t *target, err error) {
	d.log.Warn("delivery attempt failed", "tenant", t.tenant.Name, "destination", t.dest.ID, "error", err)
	d.recordAttempt(ctx, t, store.Attempt{At: d.now(), Err: err.Error(), Fence: t.fence})
	if d.metrics != nil {
		d.metrics.DeliveryFailed(t.tenant.Name, t.dest.ID)
	}
}

// succeed records a successful attempt (which may have had nothing to
// send). A delivery's commit has already recorded it (last delivery,
// error cleared), and the status shows it as the last attempt too, so
// only an attempt with nothing to send costs a store write of its own.
func (d *Deliverer) succeed(ctx context.Context, t *target, events int64) {
	if events > 0 {
		d.log.Info("delivered", "tenant", t.tenant.Name, "destination", t.dest.ID, "events", events)
		return
	}
	d.recordAttempt(ctx, t, store.Attempt{At: d.now(), Fence: t.fence})
}

// recordAttempt saves an attempt's outcome in one store call, so that it
// cannot undo a concurrent plan commit's counters.
func (d *Deliverer) recordAttempt(ctx context.Context, t *target, a store.Attempt) {
	err := d.store.RecordAttempt(ctx, t.dest.ID, a)
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		// The new holder records its own attempts.
		d.log.Warn("status not saved: lease lost", "destination", t.dest.ID, "epoch", a.Fence.Epoch)
		d.wakeLeases()
	case err != nil:
		d.log.Error("saving status", "destination", t.dest.ID, "error", err)
	}
}

// states lists every destination's state for the state metrics, computed
// at the scrape from the stored status exactly as the API computes it.
func (d *Deliverer) states() []metrics.DestinationState {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	states, err := destination.States(ctx, d.store, d.opts.FailingAfter, d.now())
	if err != nil {
		d.log.Warn("destination states for metrics", "error", err)
		return nil
	}
	return states
}

// lagEvery is how often the lag gauges are refreshed: one read of every
// destination with its tenant's head and oldest undelivered event
// (store.Store.DestinationSummaries), a statement that grows with the
// destinations, not needed at every reconcile.
const lagEvery = time.Minute

// updateLag refreshes the lag gauges of every destination, and the
// agent-wide ones, at most every lagEvery.
func (d *Deliverer) updateLag(ctx context.Context) {
	if d.metrics == nil {
		return
	}
	at := time.Now()
	if at.Sub(d.lagAt) < lagEvery {
		return
	}
	d.lagAt = at
	sums, err := d.store.DestinationSummaries(ctx)
	if err != nil {
		d.log.Warn("computing lag", "error", err)
		return
	}
	now := d.now()
	var maxSeconds, total int64
	for _, sum := range sums {
		events, seconds := destination.SummaryLag(sum, now)
		d.metrics.SetLag(sum.Tenant, sum.Destination.ID, events, seconds)
		maxSeconds, total = max(maxSeconds, seconds), total+events
	}
	d.metrics.SetFleetLag(maxSeconds, total)
}

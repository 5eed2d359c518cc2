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
		d.metrics.DeliveryFailures.WithLabelValues(t.tenant.Name, t.dest.ID).Inc()
	}
}

// succeed records a successful attempt (which may have had nothing to send).
func (d *Deliverer) succeed(ctx context.Context, t *target, events int64) {
	d.recordAttempt(ctx, t, store.Attempt{At: d.now(), Fence: t.fence})
	if events > 0 {
		d.log.Info("delivered", "tenant", t.tenant.Name, "destination", t.dest.ID, "events", events)
	}
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

// updateLag refreshes the lag gauges of every destination.
func (d *Deliverer) updateLag(ctx context.Context, dests []store.Destination) {
	if d.metrics == nil {
		return
	}
	now := d.now()
	for _, dest := range dests {
		tenant, err := d.store.TenantByID(ctx, dest.TenantID)
		if err != nil {
			continue
		}
		events, seconds, err := destination.Lag(ctx, d.store, dest, now)
		if err != nil {
			d.log.Warn("computing lag", "destination", dest.ID, "error", err)
			continue
		}
		d.metrics.LagEvents.WithLabelValues(tenant.Name, dest.ID).Set(float64(events))
		d.metrics.LagSeconds.WithLabelValues(tenant.Name, dest.ID).Set(float64(seconds))
	}
}

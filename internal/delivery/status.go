package delivery

import (
	"context"
	"encoding/json"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/store"
)

// fail records a failed attempt in the destination's status and metrics.
// The data stays in the store; the loop keeps retrying.
func (d *Deliverer) fail(ctx context.Context, t *target, err error) {
	d.log.Warn("delivery attempt failed", "tenant", t.tenant.Name, "destination", t.dest.ID, "error", err)
	d.recordAttempt(ctx, t, store.Attempt{At: d.now(), Err: err.Error()})
	if d.metrics != nil {
		d.metrics.DeliveryFailures.WithLabelValues(t.tenant.Name, t.dest.ID).Inc()
	}
}

// succeed records a successful attempt (which may have had nothing to send).
func (d *Deliverer) succeed(ctx context.Context, t *target, events int64) {
	d.recordAttempt(ctx, t, store.Attempt{At: d.now()})
	if events > 0 {
		d.log.Info("delivered", "tenant", t.tenant.Name, "destination", t.dest.ID, "events", events)
	}
}

// recordAttempt saves an attempt's outcome in one store call, so that it
// cannot undo a concurrent plan commit's counters.
func (d *Deliverer) recordAttempt(ctx context.Context, t *target, a store.Attempt) {
	if err := d.store.RecordAttempt(ctx, t.dest.ID, a); err != nil {
		d.log.Error("saving status", "destination", t.dest.ID, "error", err)
	}
}

// Status computes the API status of a destination: state, lag and counters.
func Status(ctx context.Context, s store.Store, dest store.Destination, spec api.DestinationSpec, failingAfter time.Duration, now time.Time) (api.DestinationStatus, error) {
	st, err := s.GetStatus(ctx, dest.ID)
	if err != nil {
		return api.DestinationStatus{}, err
	}
	head, err := s.Head(ctx, dest.TenantID)
	if err != nil {
		return api.DestinationStatus{}, err
	}
	out := api.DestinationStatus{
		State:            stateOf(st, spec, failingAfter, now),
		LastDeliveryAt:   timePtr(st.LastDeliveryAt),
		LastAttemptAt:    timePtr(st.LastAttemptAt),
		LastError:        st.LastError,
		FailingSince:     timePtr(st.FailingSince),
		Cursor:           dest.Cursor,
		LagEvents:        max(head-dest.Cursor, 0),
		EventsDelivered:  st.EventsDelivered,
		ObjectsDelivered: st.ObjectsDelivered,
		BytesDelivered:   st.BytesDelivered,
	}
	if out.LagEvents > 0 {
		oldest, err := s.OldestAfter(ctx, dest.TenantID, dest.Cursor)
		if err != nil {
			return api.DestinationStatus{}, err
		}
		if !oldest.IsZero() {
			out.LagSeconds = int64(max(now.Sub(oldest), 0) / time.Second)
		}
	}
	return out, nil
}

// stateOf is a destination's state, one of api.States. The API, the
// provider and the metrics all show this one word. A failed last attempt
// (FailingSince set) is retrying until it has lasted failingAfter; an
// attempt that had nothing to send proves nothing about the bucket, so a
// destination stays pending until its first delivery.
func stateOf(st store.Status, spec api.DestinationSpec, failingAfter time.Duration, now time.Time) string {
	switch {
	case spec.Enabled != nil && !*spec.Enabled:
		return api.StatePaused
	case !st.FailingSince.IsZero() && now.Sub(st.FailingSince) >= failingAfter:
		return api.StateFailing
	case !st.FailingSince.IsZero():
		return api.StateRetrying
	case st.LastDeliveryAt.IsZero():
		return api.StatePending
	}
	return api.StateHealthy
}

// states lists every destination's state for the state metrics, computed
// at the scrape from the stored status exactly as the API computes it.
func (d *Deliverer) states() []metrics.DestinationState {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dests, err := d.store.ListDestinations(ctx, 0)
	if err != nil {
		d.log.Warn("listing destinations for metrics", "error", err)
		return nil
	}
	tenants, err := d.store.ListTenants(ctx)
	if err != nil {
		d.log.Warn("listing tenants for metrics", "error", err)
		return nil
	}
	names := make(map[int64]string, len(tenants))
	for _, t := range tenants {
		names[t.ID] = t.Name
	}
	now := d.now()
	out := make([]metrics.DestinationState, 0, len(dests))
	for _, dest := range dests {
		var spec api.DestinationSpec
		if json.Unmarshal(dest.Spec, &spec) != nil {
			continue
		}
		st, err := d.store.GetStatus(ctx, dest.ID)
		if err != nil {
			// Deleted since the list: it has no state any more.
			continue
		}
		out = append(out, metrics.DestinationState{
			Tenant: names[dest.TenantID], Destination: dest.ID,
			State: stateOf(st, spec, d.opts.FailingAfter, now),
		})
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// updateLag refreshes the lag gauges of every destination.
func (d *Deliverer) updateLag(ctx context.Context, dests []store.Destination) {
	if d.metrics == nil {
		return
	}
	now := d.now()
	for _, dest := range dests {
		var spec api.DestinationSpec
		if json.Unmarshal(dest.Spec, &spec) != nil {
			continue
		}
		tenant, err := d.store.TenantByID(ctx, dest.TenantID)
		if err != nil {
			continue
		}
		st, err := Status(ctx, d.store, dest, spec, d.opts.FailingAfter, now)
		if err != nil {
			d.log.Warn("computing lag", "destination", dest.ID, "error", err)
			continue
		}
		d.metrics.LagEvents.WithLabelValues(tenant.Name, dest.ID).Set(float64(st.LagEvents))
		d.metrics.LagSeconds.WithLabelValues(tenant.Name, dest.ID).Set(float64(st.LagSeconds))
	}
}

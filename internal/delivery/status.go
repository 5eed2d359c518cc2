package delivery

import (
	"context"
	"encoding/json"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/store"
)

// fail records a failed attempt in the destination's status and metrics.
// The data stays in the store; the loop keeps retrying.
func (d *Deliverer) fail(ctx context.Context, t *target, err error) {
	now := d.now()
	d.log.Warn("delivery attempt failed", "tenant", t.tenant.Name, "destination", t.dest.ID, "error", err)
	st, gerr := d.store.GetStatus(ctx, t.dest.ID)
	if gerr != nil {
		d.log.Error("reading status", "destination", t.dest.ID, "error", gerr)
		return
	}
	st.LastAttemptAt = now
	st.LastError = err.Error()
	if st.FailingSince.IsZero() {
		st.FailingSince = now
	}
	if serr := d.store.SetStatus(ctx, t.dest.ID, st); serr != nil {
		d.log.Error("saving status", "destination", t.dest.ID, "error", serr)
	}
	if d.metrics != nil {
		d.metrics.DeliveryFailures.WithLabelValues(t.tenant.Name, t.dest.ID).Inc()
		d.metrics.Failing.WithLabelValues(t.tenant.Name, t.dest.ID).Set(1)
	}
}

// succeed records a successful attempt (which may have had nothing to send).
func (d *Deliverer) succeed(ctx context.Context, t *target, events int64) {
	st, err := d.store.GetStatus(ctx, t.dest.ID)
	if err != nil {
		d.log.Error("reading status", "destination", t.dest.ID, "error", err)
		return
	}
	st.LastAttemptAt = d.now()
	st.LastError = ""
	st.FailingSince = time.Time{}
	if err := d.store.SetStatus(ctx, t.dest.ID, st); err != nil {
		d.log.Error("saving status", "destination", t.dest.ID, "error", err)
	}
	if events > 0 {
		d.log.Info("delivered", "tenant", t.tenant.Name, "destination", t.dest.ID, "events", events)
	}
	if d.metrics != nil {
		d.metrics.Failing.WithLabelValues(t.tenant.Name, t.dest.ID).Set(0)
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

func stateOf(st store.Status, spec api.DestinationSpec, failingAfter time.Duration, now time.Time) string {
	switch {
	case spec.Enabled != nil && !*spec.Enabled:
		return api.StatePaused
	case !st.FailingSince.IsZero() && now.Sub(st.FailingSince) >= failingAfter:
		return api.StateFailing
	case st.LastDeliveryAt.IsZero() && st.LastAttemptAt.IsZero():
		return api.StatePending
	}
	return api.StateHealthy
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

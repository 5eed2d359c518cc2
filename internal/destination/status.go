package destination

import (
	"context"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/store"
)

// Status computes the API status of dest, whose stored status is st: state,
// lag and counters. dest and st must be read together
// (store.Store.DestinationStatus), or the cursor and the counters can be of
// different moments.
func Status(ctx context.Context, s store.Store, dest store.Destination, st store.Status, spec api.DestinationSpec, failingAfter time.Duration, now time.Time) (api.DestinationStatus, error) {
	events, seconds, err := Lag(ctx, s, dest, now)
	if err != nil {
		return api.DestinationStatus{}, err
	}
	return api.DestinationStatus{
		State:            stateOf(st, spec, failingAfter, now),
		LastDeliveryAt:   timePtr(st.LastDeliveryAt),
		LastAttemptAt:    timePtr(lastAttempt(st)),
		LastError:        st.LastError,
		FailingSince:     timePtr(st.FailingSince),
		Cursor:           dest.Cursor,
		LagEvents:        events,
		LagSeconds:       seconds,
		EventsDelivered:  st.EventsDelivered,
		ObjectsDelivered: st.ObjectsDelivered,
		BytesDelivered:   st.BytesDelivered,
		DeliveredBy:      st.Holder,
	}, nil
}

// Lag is how many of the tenant's events dest has not delivered yet and
// how long ago the oldest of them was stored (0 when there is none).
func Lag(ctx context.Context, s store.Store, dest store.Destination, now time.Time) (events, seconds int64, err error) {
	head, err := s.Head(ctx, dest.TenantID)
	if err != nil {
		return 0, 0, err
	}
	return LagFrom(ctx, s, dest, head, now)
}

// LagFrom is Lag with the tenant's head already read, for a caller that
// computes the lag of many destinations of one tenant.
func LagFrom(ctx context.Context, s store.Store, dest store.Destination, head int64, now time.Time) (events, seconds int64, err error) {
	events = max(head-dest.Cursor, 0)
	if events == 0 {
		return 0, 0, nil
	}
	oldest, err := s.OldestAfter(ctx, dest.TenantID, dest.Cursor)
	if err != nil {
		return 0, 0, err
	}
	if !oldest.IsZero() {
		seconds = int64(max(now.Sub(oldest), 0) / time.Second)
	}
	return events, seconds, nil
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

// States lists every destination's state for the state metrics, computed
// from the stored status exactly as the API computes it, from one read of
// every destination (store.Store.DestinationSummaries). A destination whose
// spec cannot be read is left out.
func States(ctx context.Context, s store.Store, failingAfter time.Duration, now time.Time) ([]metrics.DestinationState, error) {
	sums, err := s.DestinationSummaries(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]metrics.DestinationState, 0, len(sums))
	for _, sum := range sums {
		spec, err := Decode(sum.Destination)
		if err != nil {
			continue
		}
		out = append(out, metrics.DestinationState{
			Tenant: sum.Tenant, Destination: sum.Destination.ID,
			State: stateOf(sum.Status, spec, failingAfter, now),
		})
	}
	return out, nil
}

// SummaryLag is LagFrom for a destination read by DestinationSummaries,
// which has its tenant's head and oldest undelivered event already.
func SummaryLag(sum store.DestinationSummary, now time.Time) (events, seconds int64) {
	events = max(sum.Head-sum.Destination.Cursor, 0)
	if events > 0 && !sum.OldestUndelivered.IsZero() {
		seconds = int64(max(now.Sub(sum.OldestUndelivered), 0) / time.Second)
	}
	return events, seconds
}

// lastAttempt is the later of the last recorded attempt and the last
// delivery: delivery records a successful delivery in its commit alone,
// which is an attempt as well.
func lastAttempt(st store.Status) time.Time {
	if st.LastDeliveryAt.After(st.LastAttemptAt) {
		return st.LastDeliveryAt
	}
	return st.LastAttemptAt
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/destination"
	"github.com/auditexport/auditexport/internal/metrics"
)

const testFailingAfter = 5 * time.Minute

// apiStatus is the destination's status as the API computes it now.
func (r *rig) apiStatus(id string) api.DestinationStatus {
	r.t.Helper()
	ctx := context.Background()
	dest, stored, err := r.store.DestinationStatus(ctx, r.tenant.ID, id)
	if err != nil {
		r.t.Fatal(err)
	}
	spec, err := destination.Decode(dest)
	if err != nil {
		r.t.Fatal(err)
	}
	st, err := destination.Status(ctx, r.store, dest, stored, spec, testFailingAfter, r.clock.Now())
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// waitState polls the API status until its state is want. The deadline
// only guards against a hang: the clock is fake, the wait is for the loop.
func (r *rig) waitState(id, want string) api.DestinationStatus {
	r.t.Helper()
	deadline := time.Now().Add(time.Minute) // a hang guard, not a budget
	for {
		st := r.apiStatus(id)
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("state is still %q, want %q: %+v", st.State, want, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// stateMetrics scrapes the registry and returns, for destination id, the
// auditexport_destination_state series by state and the failing gauge.
func (r *rig) stateMetrics(id string) (map[string]float64, float64) {
	r.t.Helper()
	families, err := r.metrics.Registry.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	states, failing := map[string]float64{}, -1.0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := labelMap(m)
			if labels["destination"] != id || labels["tenant"] != r.tenant.Name {
				continue
			}
			switch f.GetName() {
			case "auditexport_destination_state":
				states[labels["state"]] = m.GetGauge().GetValue()
			case "auditexport_destination_failing":
				failing = m.GetGauge().GetValue()
			}
		}
	}
	return states, failing
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// expectMetrics checks that the metrics show exactly state for id: one
// auditexport_destination_state series, for that state.
func (r *rig) expectMetrics(id, state string) {
	r.t.Helper()
	states, failing := r.stateMetrics(id)
	if len(states) != 1 || states[state] != 1 {
		r.t.Errorf("auditexport_destination_state of %s = %v, want only {state=%q} 1", id, states, state)
	}
	wantFailing := -1.0 // absent
	if state == api.StateFailing {
		wantFailing = 1
	}
	if failing != wantFailing {
		r.t.Errorf("auditexport_destination_failing = %v (-1: absent), want %v in state %q", failing, wantFailing, state)
	}
}

// A destination walks pending -> retrying -> failing -> healthy -> paused
// through the real loop, and the API and the metrics say the same word at
// every step. A destination that has never delivered and fails is not
// "healthy".
func TestStateTransitions(t *testing.T) {
	r := newRigWith(t, "2026-11-25T10:00:00Z", func(o *Options) { o.FailingAfter = testFailingAfter })
	dest := r.destination(api.DestinationSpec{Interval: "1m"})

	st := r.apiStatus(dest.ID)
	if st.State != api.StatePending || st.LastAttemptAt != nil || st.LastError != "" {
		t.Fatalf("new destination: %+v, want pending with no attempt", st)
	}
	r.expectMetrics(dest.ID, api.StatePending)

	// A window with nothing to send is an attempt, not a delivery.
	r.setClock(mustTime(t, "2026-11-25T10:01:00Z"))
	r.waitAttempt(dest.ID, mustTime(t, "2026-11-25T10:01:00Z"))
	if st := r.apiStatus(dest.ID); st.State != api.StatePending {
		t.Fatalf("after an empty window: state %q, want pending", st.State)
	}

	r.sink.setFailure(errors.New("PutObject: NoSuchBucket"))
	ids := r.post(3)
	firstFailure := mustTime(t, "2026-11-25T10:02:00Z")
	r.setClock(firstFailure)
	st = r.waitState(dest.ID, api.StateRetrying)
	if !strings.Contains(st.LastError, "NoSuchBucket") || st.FailingSince == nil || !st.FailingSince.Equal(firstFailure) ||
		st.LastDeliveryAt != nil || st.LagEvents != 3 {
		t.Fatalf("retrying status: %+v", st)
	}
	r.expectMetrics(dest.ID, api.StateRetrying)

	// Later failures keep failing_since; once they have lasted
	// failing_after the state is failing.
	r.setClock(firstFailure.Add(testFailingAfter - time.Second))
	r.waitAttempt(dest.ID, firstFailure.Add(testFailingAfter-time.Second))
	if st := r.apiStatus(dest.ID); st.State != api.StateRetrying || !st.FailingSince.Equal(firstFailure) {
		t.Fatalf("just before failing_after: %+v, want retrying since %s", st, firstFailure)
	}
	r.setClock(firstFailure.Add(testFailingAfter))
	st = r.waitState(dest.ID, api.StateFailing)
	if !st.FailingSince.Equal(firstFailure) || !strings.Contains(st.LastError, "NoSuchBucket") {
		t.Fatalf("failing status: %+v", st)
	}
	r.expectMetrics(dest.ID, api.StateFailing)

	// The bucket is back: the next retry delivers and clears the error.
	r.sink.setFailure(nil)
	recovered := firstFailure.Add(testFailingAfter + 10*time.Minute)
	r.setClock(recovered)
	r.waitAttempt(dest.ID, recovered)
	st = r.apiStatus(dest.ID)
	if st.State != api.StateHealthy {
		t.Fatalf("after a successful retry: state %q, want healthy", st.State)
	}
	if st.LastError != "" || st.FailingSince != nil || st.LastDeliveryAt == nil || st.EventsDelivered != 3 || st.LagEvents != 0 {
		t.Fatalf("healthy status: %+v", st)
	}
	r.expectDelivered(ids)
	r.expectMetrics(dest.ID, api.StateHealthy)

	// Disabled: paused, whatever the last attempt did.
	r.setEnabled(dest.ID, false)
	if st := r.apiStatus(dest.ID); st.State != api.StatePaused {
		t.Fatalf("disabled: state %q, want paused", st.State)
	}
	r.expectMetrics(dest.ID, api.StatePaused)
}

// setClock moves the clock to at once the loop waits on it: moved earlier,
// the loop's next wait would start from the new time and never end.
func (r *rig) setClock(at time.Time) {
	r.t.Helper()
	r.waitAsleep()
	r.clock.Set(at)
}

// waitAttempt polls until the destination's last attempt is at at.
func (r *rig) waitAttempt(id string, at time.Time) {
	r.t.Helper()
	deadline := time.Now().Add(time.Minute) // a hang guard, not a budget
	for {
		st := r.apiStatus(id)
		if st.LastAttemptAt != nil && st.LastAttemptAt.Equal(at) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no attempt at %s: %+v", at, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (r *rig) setEnabled(id string, enabled bool) {
	r.t.Helper()
	ctx := context.Background()
	dest, err := r.store.GetDestination(ctx, r.tenant.ID, id)
	if err != nil {
		r.t.Fatal(err)
	}
	spec, err := destination.Decode(dest)
	if err != nil {
		r.t.Fatal(err)
	}
	spec.Enabled = &enabled
	data, _ := json.Marshal(spec)
	if _, err := r.store.UpdateDestination(ctx, r.tenant.ID, id, data); err != nil {
		r.t.Fatal(err)
	}
	r.d.Notify()
}

// The lag gauges, per destination and agent-wide, come from one read of
// every destination: events behind the tenant's head and the age of the
// oldest of them.
func TestLagMetrics(t *testing.T) {
	r := newRig(t, "2026-11-25T10:00:30Z")
	r.destination(api.DestinationSpec{Interval: "1h"})
	r.post(4)
	r.advance("2026-11-25T10:02:00Z") // no window end: nothing delivered
	m := metrics.New()
	d := New(r.store, nil, m, hclog.NewNullLogger(), Options{Clock: r.clock})
	d.updateLag(context.Background())
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"auditexport_destination_lag_events", testutil.ToFloat64(m.LagEvents.WithLabelValues("acme", "dst_1")), 4},
		{"auditexport_destination_lag_seconds", testutil.ToFloat64(m.LagSeconds.WithLabelValues("acme", "dst_1")), 90},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	body := scrapeText(t, m)
	for _, line := range []string{"auditexport_destinations_lag_seconds_max 90", "auditexport_destinations_lag_events 4"} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("/metrics has no line %q", line)
		}
	}
}

func scrapeText(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

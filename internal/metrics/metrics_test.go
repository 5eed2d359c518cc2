package metrics

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/auditexport/auditexport/internal/api"
)

// What /metrics holds for many destinations, per destination or not: per
// destination, one state series each (its current state) beside the
// counters and lag; without, no series names a destination and the size
// does not grow with them. Both report the states in aggregate and the
// fleet's lag.
func TestDestinationSeries(t *testing.T) {
	const n = 10_000
	tests := []struct {
		perDestination bool
		maxBytes       int // the whole scrape
	}{
		{perDestination: true, maxBytes: 8 << 20},
		{perDestination: false, maxBytes: 64 << 10},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("per_destination=%v", tt.perDestination), func(t *testing.T) {
			m := NewWith(Options{PerDestination: tt.perDestination})
			states := make([]DestinationState, 0, n)
			for i := range n {
				tenant, id := fmt.Sprintf("t%05d", i), fmt.Sprintf("dst_t%05d", i)
				m.Delivered(tenant, id, 20, 1, 1000)
				m.DigestsWrote(tenant, id, 1)
				m.SetLag(tenant, id, 3, int64(i%60))
				state := api.StateHealthy
				if i%100 == 0 {
					state = api.StateFailing
					m.DeliveryFailed(tenant, id)
				}
				states = append(states, DestinationState{Tenant: tenant, Destination: id, State: state})
			}
			m.SetFleetLag(59, 3*n)
			m.SetStates(func() []DestinationState { return states })
			body := scrape(t, m)
			t.Logf("%d destinations: /metrics is %d bytes", n, len(body))
			if len(body) > tt.maxBytes {
				t.Errorf("/metrics is %d bytes, want at most %d", len(body), tt.maxBytes)
			}

			lines := seriesLines(body)
			wantCount := map[string]string{
				`auditexport_destinations{state="healthy"}`:                                               "9900",
				`auditexport_destinations{state="failing"}`:                                               "100",
				`auditexport_destinations{state="pending"}`:                                               "0",
				`auditexport_destinations_lag_seconds_max`:                                                "59",
				`auditexport_destinations_lag_events`:                                                     "30000",
				`auditexport_events_delivered_total`:                                                      "200000",
				`auditexport_delivery_failures_total`:                                                     "100",
				`auditexport_destination_state{destination="dst_t00000",state="failing",tenant="t00000"}`: "1",
				`auditexport_destination_failing{destination="dst_t00000",tenant="t00000"}`:               "1",
			}
			if tt.perDestination {
				delete(wantCount, `auditexport_events_delivered_total`)
				delete(wantCount, `auditexport_delivery_failures_total`)
				wantCount[`auditexport_events_delivered_total{destination="dst_t00001",tenant="t00001"}`] = "20"
			} else {
				delete(wantCount, `auditexport_destination_state{destination="dst_t00000",state="failing",tenant="t00000"}`)
				delete(wantCount, `auditexport_destination_failing{destination="dst_t00000",tenant="t00000"}`)
			}
			for series, want := range wantCount {
				if got, ok := lines[series]; !ok || got != want {
					t.Errorf("%s = %q (present %v), want %s", series, got, ok, want)
				}
			}
			perDest, stateSeries, failingSeries := 0, 0, 0
			for series := range lines {
				if strings.Contains(series, `destination="`) {
					perDest++
				}
				if strings.HasPrefix(series, "auditexport_destination_state{") {
					stateSeries++
				}
				if strings.HasPrefix(series, "auditexport_destination_failing{") {
					failingSeries++
				}
			}
			switch {
			case tt.perDestination && (stateSeries != n || failingSeries != n/100):
				t.Errorf("%d auditexport_destination_state and %d auditexport_destination_failing series, want one per destination (%d) and one per failing destination (%d)",
					stateSeries, failingSeries, n, n/100)
			case !tt.perDestination && perDest != 0:
				t.Errorf("%d series name a destination, want none", perDest)
			}
		})
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

// seriesLines maps each series of a text exposition to its value.
func seriesLines(body string) map[string]string {
	out := map[string]string{}
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		out[line[:i]] = line[i+1:]
	}
	return out
}

// Package metrics defines the agent's Prometheus metrics in one place so the
// server and the delivery loop report under the same names.
package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/auditexport/auditexport/internal/api"
)

// Metrics holds the agent's collectors and the registry they are in.
type Metrics struct {
	Registry *prometheus.Registry

	EventsIngested   *prometheus.CounterVec // tenant
	EventsDuplicate  *prometheus.CounterVec // tenant
	IngestRejected   *prometheus.CounterVec // tenant, reason
	CommitBatches    prometheus.Histogram
	EventsDelivered  *prometheus.CounterVec // tenant, destination
	ObjectsDelivered *prometheus.CounterVec // tenant, destination
	BytesDelivered   *prometheus.CounterVec // tenant, destination
	DeliveryFailures *prometheus.CounterVec // tenant, destination, call
	DigestsWritten   *prometheus.CounterVec // tenant, destination
	DigestsFailed    *prometheus.CounterVec // tenant, destination
	LagEvents        *prometheus.GaugeVec   // tenant, destination
	LagSeconds       *prometheus.GaugeVec   // tenant, destination
	EventsExpired    *prometheus.CounterVec // tenant
	AuthFailures     *prometheus.CounterVec // reason
	LeasesHeld       prometheus.Gauge
	LeaseHandovers   prometheus.Counter
	LeaseLosses      prometheus.Counter

	// states reports auditexport_destination_state and
	// auditexport_destination_failing; see SetStates.
	states *stateCollector
}

// New creates the metrics in a fresh registry with the Go and process collectors.
func New() *Metrics {
	dest := []string{"tenant", "destination"}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		EventsIngested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditexport_events_ingested_total", Help: "Events stored durably, by tenant.",
		}, []string{"tenant"}),
		EventsDuplicate: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditexport_events_duplicate_total", Help: "Events dropped because their messageId was already stored.",
		}, []string{"tenant"}),
		IngestRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditexport_ingest_rejected_requests_total", Help: "Ingest requests refused, by reason.",
		}, []string{"tenant", "reason"}),
		CommitBatches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "auditexport_ingest_commit_events", Help: "Events per durable commit (group commit size).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		EventsDelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditexport_events_delivered_total", Help: "Events delivered, by destination.",
		}, dest),
		ObjectsDelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditexport_objects_delivered_total", Help: "Objects written, by destination.",
		}, dest),
		BytesDelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditexport_bytes_delivered_total", Help: "Object bytes written (compressed), by destination.",
		}, dest),
		DeliveryFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditexport_delivery_failures_total", Help: "Failed delivery attempts, by destination.",
		}, dest),
		DigestsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditexport_digests_written_total", Help: "Hourly integrity digests written to the bucket, by destination.",
		}, dest),
		DigestsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditexport_digest_failures_total", Help: "Passes that failed to write a due digest (retried at the next pass), by destination.",
		}, dest),
		LagEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditexport_destination_lag_events", Help: "Events stored but not yet delivered.",
		}, dest),
		LagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditexport_destination_lag_seconds", Help: "Age of the oldest undelivered event.",
		}, dest),
		EventsExpired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditexport_events_expired_undelivered_total", Help: "Events deleted at the end of the retention without being delivered (the tenant had no destination).",
		}, []string{"tenant"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditexport_auth_failures_total", Help: "API requests refused before their handler ran: missing or invalid token, wrong scope or tenant, or throttled after too many failures.",
		}, []string{"reason"}),
		LeasesHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditexport_leases_held", Help: "Destination leases this agent holds: the destinations it delivers when several agents share a PostgreSQL database.",
		}),
		LeaseHandovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditexport_lease_handovers_total", Help: "Destination leases this agent claimed after another agent (or an earlier run) had held them.",
		}),
		LeaseLosses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditexport_lease_losses_total", Help: "Destination leases this agent lost before releasing them: not renewed in time or taken over by another agent.",
		}),
		states: newStateCollector(),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.EventsIngested, m.EventsDuplicate, m.IngestRejected, m.CommitBatches,
		m.EventsDelivered, m.ObjectsDelivered, m.BytesDelivered, m.DeliveryFailures,
		m.DigestsWritten, m.DigestsFailed, m.LagEvents, m.LagSeconds, m.EventsExpired, m.AuthFailures,
		m.LeasesHeld, m.LeaseHandovers, m.LeaseLosses, m.states,
	)
	return m
}

// ForgetDestination drops a deleted destination's series.
func (m *Metrics) ForgetDestination(tenant, id string) {
	for _, v := range []*prometheus.CounterVec{m.EventsDelivered, m.ObjectsDelivered, m.BytesDelivered, m.DeliveryFailures,
		m.DigestsWritten, m.DigestsFailed} {
		v.DeleteLabelValues(tenant, id)
	}
	for _, v := range []*prometheus.GaugeVec{m.LagEvents, m.LagSeconds} {
		v.DeleteLabelValues(tenant, id)
	}
}

// DestinationState is one destination's current state, one of api.States.
type DestinationState struct {
	Tenant      string
	Destination string
	State       string
}

// SetStates makes fn the source of the state metrics. fn is called at every
// scrape, so the metrics say what the API would say at that moment: a state
// that changes with time alone (retrying turning failing) needs no attempt
// to show. fn must be safe for concurrent use; nil reports no destination.
func (m *Metrics) SetStates(fn func() []DestinationState) {
	m.states.mu.Lock()
	defer m.states.mu.Unlock()
	m.states.source = fn
}

// stateCollector reports, for every destination, one
// auditexport_destination_state series per state (1 for the current one,
// 0 for the others, so that an alert can match on the label) and
// auditexport_destination_failing.
type stateCollector struct {
	state   *prometheus.Desc
	failing *prometheus.Desc

	mu     sync.Mutex
	source func() []DestinationState
}

func newStateCollector() *stateCollector {
	return &stateCollector{
		state: prometheus.NewDesc("auditexport_destination_state",
			"1 for the destination's current state (pending, healthy, retrying, failing or paused), 0 for the others; the state the API reports.",
			[]string{"tenant", "destination", "state"}, nil),
		failing: prometheus.NewDesc("auditexport_destination_failing",
			"1 while the destination's state is failing: its attempts have failed for delivery.failing_after or longer.",
			[]string{"tenant", "destination"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.failing
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	source := c.source
	c.mu.Unlock()
	if source == nil {
		return
	}
	for _, d := range source() {
		for _, s := range api.States {
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, boolValue(s == d.State), d.Tenant, d.Destination, s)
		}
		ch <- prometheus.MustNewConstMetric(c.failing, prometheus.GaugeValue, boolValue(d.State == api.StateFailing), d.Tenant, d.Destination)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

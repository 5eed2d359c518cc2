// Package metrics defines the agent's Prometheus metrics in one place so the
// server and the delivery loop report under the same names.
package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/auditexport/auditexport/internal/api"
)

// Options choose what the metrics report.
type Options struct {
	// PerDestination reports the delivery series of every destination,
	// labelled with its tenant and id: about eight series a destination
	// (800 KB of /metrics per 1,000 destinations). Without it the
	// delivery counters are agent-wide totals and the states and lag are
	// reported only in aggregate (auditexport_destinations,
	// auditexport_destinations_lag_seconds_max,
	// auditexport_destinations_lag_events), whatever the number of
	// destinations.
	PerDestination bool
}

// Metrics holds the agent's collectors and the registry they are in.
//
// The per-destination vectors (EventsDelivered to LagSeconds) are
// registered only with Options.PerDestination; delivery records through
// the methods (Delivered, DeliveryFailed, …), which also keep the
// agent-wide totals used without it.
type Metrics struct {
	Registry *prometheus.Registry
	opts     Options

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

	// totals are the delivery counters without labels, reported instead
	// of the vectors when the metrics are not per destination.
	totals struct {
		events, objects, bytes, failures, digests, digestFailures prometheus.Counter
	}
	lagMax    prometheus.Gauge
	lagEvents prometheus.Gauge

	// states reports auditexport_destinations and, per destination,
	// auditexport_destination_state and auditexport_destination_failing;
	// see SetStates.
	states *stateCollector
}

// New creates the metrics, per destination, in a fresh registry with the
// Go and process collectors.
func New() *Metrics { return NewWith(Options{PerDestination: true}) }

// NewWith creates the metrics as opts choose, in a fresh registry with the
// Go and process collectors.
func NewWith(opts Options) *Metrics {
	dest := []string{"tenant", "destination"}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		opts:     opts,
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
		lagMax: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditexport_destinations_lag_seconds_max",
			Help: "Age of the oldest undelivered event of any destination: the largest auditexport_destination_lag_seconds.",
		}),
		lagEvents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditexport_destinations_lag_events",
			Help: "Events stored but not yet delivered, summed over the destinations.",
		}),
		states: newStateCollector(opts.PerDestination),
	}
	total := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help + ", all destinations."})
	}
	m.totals.events = total("auditexport_events_delivered_total", "Events delivered")
	m.totals.objects = total("auditexport_objects_delivered_total", "Objects written")
	m.totals.bytes = total("auditexport_bytes_delivered_total", "Object bytes written (compressed)")
	m.totals.failures = total("auditexport_delivery_failures_total", "Failed delivery attempts")
	m.totals.digests = total("auditexport_digests_written_total", "Hourly integrity digests written to the buckets")
	m.totals.digestFailures = total("auditexport_digest_failures_total", "Passes that failed to write a due digest (retried at the next pass)")
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.EventsIngested, m.EventsDuplicate, m.IngestRejected, m.CommitBatches,
		m.EventsExpired, m.AuthFailures,
		m.LeasesHeld, m.LeaseHandovers, m.LeaseLosses, m.lagMax, m.lagEvents, m.states,
	)
	if opts.PerDestination {
		m.Registry.MustRegister(m.EventsDelivered, m.ObjectsDelivered, m.BytesDelivered, m.DeliveryFailures,
			m.DigestsWritten, m.DigestsFailed, m.LagEvents, m.LagSeconds)
	} else {
		m.Registry.MustRegister(m.totals.events, m.totals.objects, m.totals.bytes, m.totals.failures,
			m.totals.digests, m.totals.digestFailures)
	}
	return m
}

// PerDestination reports whether the metrics have series per destination.
func (m *Metrics) PerDestination() bool { return m.opts.PerDestination }

// Delivered counts a committed plan of a destination.
func (m *Metrics) Delivered(tenant, id string, events, objects, bytes int64) {
	if !m.opts.PerDestination {
		m.totals.events.Add(float64(events))
		m.totals.objects.Add(float64(objects))
		m.totals.bytes.Add(float64(bytes))
		return
	}
	m.EventsDelivered.WithLabelValues(tenant, id).Add(float64(events))
	m.ObjectsDelivered.WithLabelValues(tenant, id).Add(float64(objects))
	m.BytesDelivered.WithLabelValues(tenant, id).Add(float64(bytes))
}

// DeliveryFailed counts a failed delivery attempt of a destination.
func (m *Metrics) DeliveryFailed(tenant, id string) {
	if !m.opts.PerDestination {
		m.totals.failures.Inc()
		return
	}
	m.DeliveryFailures.WithLabelValues(tenant, id).Inc()
}

// DigestsWrote counts n digests written for a destination.
func (m *Metrics) DigestsWrote(tenant, id string, n int) {
	if !m.opts.PerDestination {
		m.totals.digests.Add(float64(n))
		return
	}
	m.DigestsWritten.WithLabelValues(tenant, id).Add(float64(n))
}

// DigestFailed counts a digest pass of a destination that failed.
func (m *Metrics) DigestFailed(tenant, id string) {
	if !m.opts.PerDestination {
		m.totals.digestFailures.Inc()
		return
	}
	m.DigestsFailed.WithLabelValues(tenant, id).Inc()
}

// SetLag sets a destination's lag gauges; a no-op unless per destination.
func (m *Metrics) SetLag(tenant, id string, events, seconds int64) {
	if !m.opts.PerDestination {
		return
	}
	m.LagEvents.WithLabelValues(tenant, id).Set(float64(events))
	m.LagSeconds.WithLabelValues(tenant, id).Set(float64(seconds))
}

// SetFleetLag sets the agent-wide lag gauges: the largest lag of any
// destination and the undelivered events of all of them.
func (m *Metrics) SetFleetLag(maxSeconds, events int64) {
	m.lagMax.Set(float64(maxSeconds))
	m.lagEvents.Set(float64(events))
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

// stateCollector reports auditexport_destinations (how many destinations
// are in each state) and, per destination, one auditexport_destination_state
// series for its current state, and auditexport_destination_failing for the
// failing ones. A series per state and destination, five times as many,
// would be most of /metrics at 10,000 destinations, for what one label says.
type stateCollector struct {
	perDestination bool
	count          *prometheus.Desc
	state          *prometheus.Desc
	failing        *prometheus.Desc

	mu     sync.Mutex
	source func() []DestinationState
}

func newStateCollector(perDestination bool) *stateCollector {
	return &stateCollector{
		perDestination: perDestination,
		count: prometheus.NewDesc("auditexport_destinations",
			"Destinations in each state (pending, healthy, retrying, failing, paused), the states the API reports.",
			[]string{"state"}, nil),
		state: prometheus.NewDesc("auditexport_destination_state",
			"1, labelled with the destination's current state (pending, healthy, retrying, failing or paused): the state the API reports. One series per destination: a change of state replaces it.",
			[]string{"tenant", "destination", "state"}, nil),
		failing: prometheus.NewDesc("auditexport_destination_failing",
			"1 while the destination's state is failing: its attempts have failed for delivery.failing_after or longer. Only failing destinations have the series.",
			[]string{"tenant", "destination"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	if c.perDestination {
		ch <- c.state
		ch <- c.failing
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	source := c.source
	c.mu.Unlock()
	var states []DestinationState
	if source != nil {
		states = source()
	}
	counts := make(map[string]int, len(api.States))
	for _, d := range states {
		counts[d.State]++
		if c.perDestination {
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, 1, d.Tenant, d.Destination, d.State)
			if d.State == api.StateFailing {
				ch <- prometheus.MustNewConstMetric(c.failing, prometheus.GaugeValue, 1, d.Tenant, d.Destination)
			}
		}
	}
	for _, s := range api.States {
		ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(counts[s]), s)
	}
}

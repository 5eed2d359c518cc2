// Package metrics defines the agent's Prometheus metrics in one place so the
// server and the delivery loop report under the same names.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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
	LagEvents        *prometheus.GaugeVec   // tenant, destination
	LagSeconds       *prometheus.GaugeVec   // tenant, destination
	Failing          *prometheus.GaugeVec   // tenant, destination
	EventsExpired    *prometheus.CounterVec // tenant
	AuthFailures     *prometheus.CounterVec // reason
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
		LagEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditexport_destination_lag_events", Help: "Events stored but not yet delivered.",
		}, dest),
		LagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditexport_destination_lag_seconds", Help: "Age of the oldest undelivered event.",
		}, dest),
		Failing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditexport_destination_failing", Help: "1 while the destination's last attempt failed.",
		}, dest),
		EventsExpired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditexport_events_expired_undelivered_total", Help: "Events deleted at the end of the retention without being delivered (the tenant had no destination).",
		}, []string{"tenant"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditexport_auth_failures_total", Help: "API requests refused before their handler ran: missing or invalid token, wrong scope or tenant, or throttled after too many failures.",
		}, []string{"reason"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.EventsIngested, m.EventsDuplicate, m.IngestRejected, m.CommitBatches,
		m.EventsDelivered, m.ObjectsDelivered, m.BytesDelivered, m.DeliveryFailures,
		m.LagEvents, m.LagSeconds, m.Failing, m.EventsExpired, m.AuthFailures,
	)
	return m
}

// ForgetDestination drops a deleted destination's series.
func (m *Metrics) ForgetDestination(tenant, id string) {
	for _, v := range []*prometheus.CounterVec{m.EventsDelivered, m.ObjectsDelivered, m.BytesDelivered, m.DeliveryFailures} {
		v.DeleteLabelValues(tenant, id)
	}
	for _, v := range []*prometheus.GaugeVec{m.LagEvents, m.LagSeconds, m.Failing} {
		v.DeleteLabelValues(tenant, id)
	}
}

package ocsf

import (
	"fmt"
	"testing"
	"time"
)

// benchEvents are events of about 450 bytes of the common SaaS shape,
// under names the default rules send to several classes.
func benchEvents() [][]byte {
	names := []string{"user.login", "user.logout", "role.granted", "document.updated", "billing.invoice.paid"}
	events := make([][]byte, 1000)
	for i := range events {
		events[i] = fmt.Appendf(nil, `{"timestamp":"2026-11-25T10:%02d:%02d.%03dZ","eventName":%q,"messageId":"%08x-4abc-8def-%012x",`+
			`"actor":{"id":"usr_%06d","email":"user%06d@example.com","type":"user"},"target":{"id":"org_%04d","type":"organization"},`+
			`"context":{"ip":"10.%d.%d.%d","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0.0.0 Safari/537.36","requestId":"req_%x"},"outcome":"success","version":2}`,
			i/60%60, i%60, i%1000, names[i%len(names)], i, i, i, i, i%500, i%256, (i*7)%256, (i*13)%256, i)
	}
	return events
}

// BenchmarkMap maps events with the default rules; events/s is the
// mapping rate of one core. Map copies each event and returns a new
// Event; MapTo reuses one Event, as the encoders do.
func BenchmarkMap(b *testing.B) {
	m := testMapper(b, Config{})
	events := benchEvents()
	b.Run("Map", func(b *testing.B) {
		b.ReportAllocs()
		n, cpu0 := 0, processCPU()
		for b.Loop() {
			if _, err := m.Map(events[n%len(events)], int64(n)); err != nil {
				b.Fatal(err)
			}
			n++
		}
		reportRate(b, n, cpu0)
	})
	b.Run("MapTo", func(b *testing.B) {
		b.ReportAllocs()
		var ev Event
		n, cpu0 := 0, processCPU()
		for b.Loop() {
			if err := m.MapTo(&ev, events[n%len(events)], int64(n)); err != nil {
				b.Fatal(err)
			}
			n++
		}
		reportRate(b, n, cpu0)
	})
}

// reportRate reports events/s by wall time and by the process's CPU time,
// which a busy machine disturbs less.
func reportRate(b *testing.B, n int, cpu0 time.Duration) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/event")
	}
}

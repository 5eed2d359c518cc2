package ocsf

import (
	"fmt"
	"testing"
)

// BenchmarkMap maps events of about 450 bytes with the default rules;
// events/s is the mapping rate of one core.
func BenchmarkMap(b *testing.B) {
	m := testMapper(b, Config{})
	names := []string{"user.login", "user.logout", "role.granted", "document.updated", "billing.invoice.paid"}
	events := make([][]byte, 1000)
	for i := range events {
		events[i] = fmt.Appendf(nil, `{"timestamp":"2026-11-25T10:%02d:%02d.%03dZ","eventName":%q,"messageId":"%08x-4abc-8def-%012x",`+
			`"actor":{"id":"usr_%06d","email":"user%06d@example.com","type":"user"},"target":{"id":"org_%04d","type":"organization"},`+
			`"context":{"ip":"10.%d.%d.%d","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0.0.0 Safari/537.36","requestId":"req_%x"},"outcome":"success","version":2}`,
			i/60%60, i%60, i%1000, names[i%len(names)], i, i, i, i, i%500, i%256, (i*7)%256, (i*13)%256, i)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := m.Map(events[n%len(events)], int64(n)); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

package ingest

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// Realistic audit events, shaped after Segment, Okta System Log and GitHub
// audit log events, each with the required fields at the top level and
// lookalikes nested inside.
const (
	segmentEvent = `{"type":"track","event":"Workspace Member Invited","eventName":"workspace.member.invited",` +
		`"messageId":"ajs-next-%d-6c2a3f0e-1b7d-4c1e-9a55-2f1d0c9e8b71","timestamp":"%s",` +
		`"userId":"u_8f2a61c0","context":{"ip":"203.0.113.42","userAgent":"Mozilla/5.0 (Macintosh)",` +
		`"library":{"name":"analytics.js","version":"next-1.64.0"}},` +
		`"properties":{"workspaceId":"ws_123","role":"admin","invitee":"jane@example.com","messageId":"nested"}}`
	oktaEvent = `{"uuid":"f5b3a1c2-0d4e-11ef-9a1b-%d","published":"%s","eventType":"user.session.start",` +
		`"eventName":"user.session.start","messageId":"okta-%d","timestamp":"%s",` +
		`"actor":{"id":"00u1a2b3c4d5e6f7g8h9","type":"User","alternateId":"john@example.com"},` +
		`"client":{"ipAddress":"198.51.100.7","geographicalContext":{"city":"Berlin","country":"Germany"}},` +
		`"outcome":{"result":"SUCCESS","reason":null},"severity":"INFO"}`
	githubEvent = `{"@timestamp":%d,"timestamp":%d,"action":"repo.create","eventName":"repo.create",` +
		`"messageId":"gh-%d","_document_id":"Jm9xQ2lhZ0Z4a3l3d0JzU3hRPT0","actor":"octocat","actor_id":583231,` +
		`"org":"acme","repo":"acme/widgets","visibility":"private","operation_type":"create",` +
		`"actor_location":{"country_code":"DE"},"business":"acme-inc","created_at":%d,"programmatic_access_type":null}`
)

// benchBody returns n events, as NDJSON or as a JSON array.
func benchBody(n int, array bool) []byte {
	var buf bytes.Buffer
	now := time.Now()
	if array {
		buf.WriteString("[")
	}
	for i := 0; i < n; i++ {
		if array && i > 0 {
			buf.WriteString(",\n")
		}
		t := now.Add(-time.Duration(i) * time.Millisecond)
		ts, ms := t.UTC().Format(time.RFC3339Nano), t.UnixMilli()
		switch i % 3 {
		case 0:
			fmt.Fprintf(&buf, segmentEvent, i, ts)
		case 1:
			fmt.Fprintf(&buf, oktaEvent, i, ts, i, ts)
		case 2:
			fmt.Fprintf(&buf, githubEvent, ms, ms, i, ms)
		}
		if !array {
			buf.WriteString("\n")
		}
	}
	if array {
		buf.WriteString("]\n")
	}
	return buf.Bytes()
}

func BenchmarkParse(b *testing.B) {
	const n = 1000
	for _, array := range []bool{false, true} {
		name := "ndjson"
		if array {
			name = "array"
		}
		b.Run(name, func(b *testing.B) {
			body := benchBody(n, array)
			events, err := Parse(body, DefaultFields(), Limits{})
			if err != nil || len(events) != n {
				b.Fatalf("got %d events, %v", len(events), err)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := Parse(body, DefaultFields(), Limits{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(len(body))/n, "bytes/event")
		})
	}
}

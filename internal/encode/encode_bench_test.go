package encode

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchEvents returns n audit events of about 400 bytes, varied the way real
// ones are (random ids, addresses and user agents, a few event types), and
// their size as NDJSON.
func benchEvents(n int) ([][]byte, int64) {
	names := []string{"user.login", "user.login", "user.logout", "role.granted", "document.update"}
	agents := []string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Version/17.5 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
		"acme-cli/3.2.0 go1.26 linux/amd64",
	}
	r := rand.New(rand.NewPCG(1, 2))
	events := make([][]byte, n)
	var size int64
	for i := range events {
		user := r.IntN(20000)
		events[i] = fmt.Appendf(nil, `{"timestamp":"2026-11-25T10:%02d:%02d.%03dZ","eventName":%q,"messageId":"%08x-%04x-4%03x-%04x-%012x",`+
			`"actor":{"id":"usr_%06d","email":"user%06d@example.com","type":"user"},"target":{"id":"org_%04d","type":"organization"},`+
			`"context":{"ip":"10.%d.%d.%d","userAgent":%q,"requestId":"req_%x"},"outcome":"success","version":2}`,
			i/60000%60, i/1000%60, i%1000, names[r.IntN(len(names))],
			r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff, r.Uint32()&0x3fff|0x8000, r.Uint64()&0xffffffffffff,
			user, user, r.IntN(500), r.IntN(256), r.IntN(256), r.IntN(256), agents[r.IntN(len(agents))], r.Uint32())
		size += int64(len(events[i])) + 1
	}
	return events, size
}

// countWriter counts what the encoder writes and drops it.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// benchmarkEncode encodes 20,000 events (about 8 MB of NDJSON) into one
// object per iteration. MB/s counts the NDJSON bytes in; "ratio" is NDJSON
// bytes per byte written.
func benchmarkEncode(b *testing.B, format, compression string) {
	events, size := benchEvents(20000)
	var out countWriter
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		out.n = 0
		w, err := NewWriter(&out, format, compression)
		if err != nil {
			b.Fatal(err)
		}
		for _, ev := range events {
			if err := w.Write(ev); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)/float64(out.n), "ratio")
}

func BenchmarkEncodeGzip(b *testing.B) { benchmarkEncode(b, "ndjson", "gzip") }
func BenchmarkEncodeZstd(b *testing.B) { benchmarkEncode(b, "ndjson", "zstd") }
func BenchmarkEncodeNone(b *testing.B) { benchmarkEncode(b, "ndjson", "none") }

// BenchmarkEncodeGzipJSONArray is the opt-in JSON array format, gzip.
func BenchmarkEncodeGzipJSONArray(b *testing.B) { benchmarkEncode(b, "json", "gzip") }

package parquetenc

import (
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/encode"
	"github.com/auditexport/auditexport/internal/ocsf"
)

// The benchmarks encode the same 20,000 events: as raw Parquet, as OCSF
// Parquet (mapped beforehand), and as the gzip NDJSON the agent writes by
// default, for comparison. events/s is per core.

func benchRaw(n int) []RawEvent {
	out := make([]RawEvent, n)
	for i, raw := range sampleEvents(n, 9) {
		out[i] = RawEvent{Time: 1764064800000 + int64(i), Name: "user.login", MessageID: "m", Seq: int64(i), JSON: raw}
	}
	return out
}

func BenchmarkParquetRaw(b *testing.B) {
	events := benchRaw(20000)
	b.ReportAllocs()
	for b.Loop() {
		w, _ := NewRawWriter(discard{}, Options{})
		for _, ev := range events {
			if err := w.WriteRaw(ev); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(events))/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkParquetOCSF(b *testing.B) {
	m := testMapper(b)
	var events []ocsf.Event
	for i, raw := range sampleEvents(20000, 9) {
		ev, err := m.Map(raw, int64(i))
		if err != nil {
			b.Fatal(err)
		}
		if ev.ClassUID == 3002 {
			events = append(events, ev)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		w, _ := NewOCSFWriter(discard{}, 3002, Options{})
		for _, ev := range events {
			if err := w.WriteOCSF(ev); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(events))/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkNDJSONGzip(b *testing.B) {
	events := benchRaw(20000)
	b.ReportAllocs()
	for b.Loop() {
		w, _ := encode.NewWriter(discard{}, "ndjson", "gzip")
		for _, ev := range events {
			if err := w.Write(ev.JSON); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(events))/b.Elapsed().Seconds(), "events/s")
}

// TestPeakHeap writes many events into one object and samples the heap:
// memory is bounded by the row group, not the object. It runs only with
// AUDITEXPORT_MEASURE=1 (it takes a while) and logs what it measured.
func TestPeakHeap(t *testing.T) {
	if os.Getenv("AUDITEXPORT_MEASURE") != "1" {
		t.Skip("set AUDITEXPORT_MEASURE=1 to measure")
	}
	const n = 1_000_000
	sample := sampleEvents(1000, 5)
	var peak uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	}()
	out := &countingWriter{w: discard{}}
	w, _ := NewRawWriter(out, Options{})
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := w.WriteRaw(RawEvent{Time: 1764064800000 + int64(i), Name: "user.login", MessageID: "m", Seq: int64(i), JSON: sample[i%len(sample)]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	close(done)
	t.Logf("raw Parquet, %d events: %d bytes written in %v, peak heap in use %.1f MiB", n, out.n, time.Since(start), float64(peak)/(1<<20))
}

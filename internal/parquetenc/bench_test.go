package parquetenc

import (
	"maps"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/encode"
	"github.com/auditexport/auditexport/internal/ocsf"
)

// BenchmarkFormats measures, in one run over the same 20,000 events (a mix
// the default mapping sends to every class), each way an object can be
// written: gzip NDJSON of the raw events (the agent's default), raw
// Parquet, OCSF mapping alone, OCSF mapped and written as gzip NDJSON, OCSF
// Parquet per class (events mapped beforehand) and OCSF mapped and written
// as Parquet, one writer per class. The stages run in turn within each
// iteration, so a busy machine slows them alike; the ratios to gzip NDJSON
// ("x_gzip") are the figures to compare, events/s moves with the load.
func BenchmarkFormats(b *testing.B) {
	raws := sampleEvents(20000, 9)
	rawEvents := benchRaw(raws)
	m := testMapper(b)
	byClass := map[int32][]ocsf.Event{}
	for i, raw := range raws {
		ev, err := m.Map(raw, int64(i))
		if err != nil {
			b.Fatal(err)
		}
		byClass[ev.ClassUID] = append(byClass[ev.ClassUID], ev)
	}
	type stage struct {
		name string
		n    int
		run  func() error
	}
	stages := []stage{
		{"gzip_ndjson", len(raws), func() error {
			w, _ := encode.NewWriter(discard{}, "ndjson", "gzip")
			for _, raw := range raws {
				if err := w.Write(raw); err != nil {
					return err
				}
			}
			return w.Close()
		}},
		{"raw_parquet", len(raws), func() error {
			w, err := NewRawWriter(discard{}, Options{})
			if err != nil {
				return err
			}
			for _, ev := range rawEvents {
				if err := w.WriteRaw(ev); err != nil {
					return err
				}
			}
			return w.Close()
		}},
		{"ocsf_map", len(raws), func() error {
			var ev ocsf.Event
			for i, raw := range raws {
				if err := m.MapTo(&ev, raw, int64(i)); err != nil {
					return err
				}
			}
			return nil
		}},
		{"ocsf_map_gzip_ndjson", len(raws), func() error {
			w, _ := encode.NewWriter(discard{}, "ndjson", "gzip")
			var ev ocsf.Event
			for i, raw := range raws {
				if err := m.MapTo(&ev, raw, int64(i)); err != nil {
					return err
				}
				if err := w.Write(ev.JSON); err != nil {
					return err
				}
			}
			return w.Close()
		}},
		{"ocsf_map_parquet", len(raws), func() error {
			ws := map[int32]*Writer{}
			var ev ocsf.Event
			for i, raw := range raws {
				if err := m.MapTo(&ev, raw, int64(i)); err != nil {
					return err
				}
				w := ws[ev.ClassUID]
				if w == nil {
					var err error
					if w, err = newBenchOCSFWriter(m, ev.ClassUID); err != nil {
						return err
					}
					ws[ev.ClassUID] = w
				}
				if err := w.WriteOCSF(&ev); err != nil {
					return err
				}
			}
			for _, w := range ws {
				if err := w.Close(); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	uids := slices.Sorted(maps.Keys(byClass))
	for _, uid := range uids {
		events := byClass[uid]
		stages = append(stages, stage{"ocsf_parquet_" + ocsf.ClassByUID(uid).Name, len(events), func() error {
			w, err := newBenchOCSFWriter(m, uid)
			if err != nil {
				return err
			}
			for i := range events {
				if err := w.WriteOCSF(&events[i]); err != nil {
					return err
				}
			}
			return w.Close()
		}})
	}
	wall := make([]time.Duration, len(stages))
	cpu := make([]time.Duration, len(stages))
	iters := 0
	for b.Loop() {
		for i, s := range stages {
			// Each stage starts with a clean heap, so it pays for its own
			// garbage only.
			b.StopTimer()
			runtime.GC()
			b.StartTimer()
			start, startCPU := time.Now(), processCPU()
			if err := s.run(); err != nil {
				b.Fatalf("%s: %v", s.name, err)
			}
			wall[i] += time.Since(start)
			cpu[i] += processCPU() - startCPU
		}
		iters++
	}
	// Rates by the process's CPU time (the stage and its garbage
	// collection) are steadier than wall time on a shared machine.
	rate := func(d []time.Duration, i int) float64 { return float64(iters*stages[i].n) / d[i].Seconds() }
	by := cpu
	if cpu[0] <= 0 {
		by = wall
	}
	b.ReportMetric(rate(by, 0), "gzip_ndjson_events/cpu_s")
	for i, s := range stages {
		if i > 0 {
			b.ReportMetric(rate(by, i)/rate(by, 0), s.name+"_x_gzip")
		}
		b.Logf("%-34s %6d events  %9.0f events/cpu-s  %5.2f x gzip NDJSON  (%9.0f events/s wall, %5.2f x)", s.name, s.n,
			rate(by, i), rate(by, i)/rate(by, 0), rate(wall, i), rate(wall, i)/rate(wall, 0))
	}
}

func benchRaw(raws [][]byte) []RawEvent {
	out := make([]RawEvent, len(raws))
	for i, raw := range raws {
		out[i] = RawEvent{Time: 1764064800000 + int64(i), Name: "user.login", MessageID: "m", Seq: int64(i), JSON: raw}
	}
	return out
}

// TestPeakHeap writes 1M events into one object (raw) or one object per
// class (OCSF, mapped on the way, as delivery does) and samples the heap:
// memory is bounded by the row group, not the object. It runs only with
// AUDITEXPORT_MEASURE=1 (it takes a while) and logs what it measured.
func TestPeakHeap(t *testing.T) {
	if os.Getenv("AUDITEXPORT_MEASURE") != "1" {
		t.Skip("set AUDITEXPORT_MEASURE=1 to measure")
	}
	const n = 1_000_000
	sample := sampleEvents(1000, 5)
	m := testMapper(t)
	tests := []struct {
		name  string
		write func(out *countingWriter) error
	}{
		{"raw", func(out *countingWriter) error {
			w, err := NewRawWriter(out, Options{})
			if err != nil {
				return err
			}
			for i := range n {
				if err := w.WriteRaw(RawEvent{Time: 1764064800000 + int64(i), Name: "user.login", MessageID: "m", Seq: int64(i), JSON: sample[i%len(sample)]}); err != nil {
					return err
				}
			}
			return w.Close()
		}},
		{"ocsf", func(out *countingWriter) error {
			ws := map[int32]*Writer{}
			var ev ocsf.Event
			for i := range n {
				if err := m.MapTo(&ev, sample[i%len(sample)], int64(i)); err != nil {
					return err
				}
				w := ws[ev.ClassUID]
				if w == nil {
					var err error
					if w, err = NewOCSFWriter(out, m, ev.ClassUID, Options{}); err != nil {
						return err
					}
					ws[ev.ClassUID] = w
				}
				if err := w.WriteOCSF(&ev); err != nil {
					return err
				}
			}
			for _, w := range ws {
				if err := w.Close(); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runtime.GC()
			var peak atomic.Uint64
			done, stopped := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(stopped)
				var ms runtime.MemStats
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-done:
						return
					case <-tick.C:
						runtime.ReadMemStats(&ms)
						if ms.HeapInuse > peak.Load() {
							peak.Store(ms.HeapInuse)
						}
					}
				}
			}()
			out := &countingWriter{w: discard{}}
			start := time.Now()
			err := tt.write(out)
			close(done)
			<-stopped
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s Parquet, %d events: %d bytes written in %v, peak heap in use %.1f MiB (row groups of %d MiB)",
				tt.name, n, out.n, time.Since(start), float64(peak.Load())/(1<<20), DefaultRowGroupBytes>>20)
		})
	}
}
func newBenchOCSFWriter(m *ocsf.Mapper, uid int32) (*Writer, error) {
	return NewOCSFWriter(discard{}, m, uid, Options{})
}

// BenchmarkWriteOCSF writes events mapped beforehand into one OCSF Parquet
// object of one class: the writer's cost alone, for profiling.
func BenchmarkWriteOCSF(b *testing.B) {
	m := testMapper(b)
	var events []ocsf.Event
	for i, raw := range sampleEvents(20000, 9) {
		ev, err := m.Map(raw, int64(i))
		if err != nil {
			b.Fatal(err)
		}
		if ev.ClassUID == 3002 { // authentication
			events = append(events, ev)
		}
	}
	b.ReportAllocs()
	n, cpu0 := 0, processCPU()
	var out *countingWriter
	for b.Loop() {
		out = &countingWriter{w: discard{}}
		w, err := NewOCSFWriter(out, m, 3002, Options{})
		if err != nil {
			b.Fatal(err)
		}
		for i := range events {
			if err := w.WriteOCSF(&events[i]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		n += len(events)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(n), "cpu-ns/event")
	b.ReportMetric(float64(out.n)/float64(len(events)), "bytes/event")
}

// BenchmarkWriteRaw writes raw events into one Parquet object.
func BenchmarkWriteRaw(b *testing.B) {
	events := benchRaw(sampleEvents(20000, 9))
	b.ReportAllocs()
	n, cpu0 := 0, processCPU()
	for b.Loop() {
		w, err := NewRawWriter(discard{}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		for _, ev := range events {
			if err := w.WriteRaw(ev); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		n += len(events)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(n), "cpu-ns/event")
}

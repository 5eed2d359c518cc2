package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/destination"
	"github.com/auditexport/auditexport/internal/encode"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/testenv"
)

// stageReps is how many times each stage runs; the fastest run is its limit.
const stageReps = 2

// stageResult is one stage of the delivery pipeline run alone over the
// delivered events.
type stageResult struct {
	events   int64
	bytesIn  int64 // NDJSON bytes the stage stands for, newlines included
	bytesOut int64 // compressed bytes, for compress and PUT
	objects  int
	elapsed  time.Duration
}

func (s stageResult) eventsPerSec() float64 { return float64(s.events) / s.elapsed.Seconds() }
func (s stageResult) mbPerSec() float64     { return float64(s.bytesIn) / 1e6 / s.elapsed.Seconds() }

// stages are the limits of the pipeline on the events of the delivery run.
type stages struct {
	read, compress, put stageResult
	// appendLimit is Append alone on the ingest's events (append.go).
	appendLimit stageResult
	// sizesMatch says that compressing the groups alone gave objects of
	// exactly the sizes the agent delivered: the same work was measured.
	sizesMatch bool
}

// slowest returns the name and result of the slowest stage.
func (s stages) slowest() (string, stageResult) {
	name, r := "store read", s.read
	if s.compress.elapsed > r.elapsed {
		name, r = "compress", s.compress
	}
	if s.put.elapsed > r.elapsed {
		name, r = "PUT", s.put
	}
	return name, r
}

// serial is the rate the three stages would reach one after another,
// without any overlap, in events/s.
func (s stages) serial() float64 {
	t := s.read.elapsed + s.compress.elapsed + s.put.elapsed
	return float64(s.read.events) / t.Seconds()
}

// measureStages times, on the events of the delivery run: reading them out
// of the agent's store (GroupsBy + Scan, as the planner and writer do),
// gzip-encoding them with the encode package into a byte counter, and
// uploading objects of the delivered objects' sizes with s3sink.Upload. The
// agent is stopped; its store (the SQLite file, or the PostgreSQL database)
// is opened with store.Open.
func (w *world) measureStages(ctx context.Context, run *storeRun) error {
	st, err := store.Open(ctx, w.open)
	if err != nil {
		return err
	}
	defer st.Close()
	tenant, err := st.TenantByName(ctx, tenantName)
	if err != nil {
		return err
	}
	spec := w.spec
	if err := spec.Normalize(); err != nil {
		return err
	}
	from, to := int64(1), run.ingest.events

	progress("stage limits (%s): store read", w.st.title)
	run.stages.read, err = best(func() (stageResult, error) { return readStage(ctx, st, tenant.ID, from, to) })
	if err != nil {
		return err
	}
	progress("stage limits (%s): compress", w.st.title)
	var sizes []int64
	run.stages.compress, err = best(func() (stageResult, error) {
		r, s, err := compressStage(ctx, st, tenant.ID, from, to, spec)
		sizes = s
		return r, err
	})
	if err != nil {
		return err
	}
	delivered := make([]int64, 0, len(run.delivery.objects))
	for _, o := range run.delivery.objects {
		delivered = append(delivered, o.size)
	}
	slices.Sort(sizes)
	slices.Sort(delivered)
	run.stages.sizesMatch = slices.Equal(sizes, delivered)

	progress("stage limits (%s): PUT", w.st.title)
	writer, err := w.s3Writer(ctx, spec)
	if err != nil {
		return err
	}
	meta := s3sink.PutMeta{ContentType: encode.ContentType(spec.Format), ContentEncoding: encode.ContentEncoding(spec.Compression)}
	run.stages.put, err = best(func() (stageResult, error) { return putStage(ctx, writer, delivered, meta) })
	if err != nil {
		return err
	}
	run.stages.put.events, run.stages.put.bytesIn = run.stages.read.events, run.stages.read.bytesIn
	return nil
}

// best runs f stageReps times and returns its fastest run.
func best(f func() (stageResult, error)) (stageResult, error) {
	var out stageResult
	for i := range stageReps {
		r, err := f()
		if err != nil {
			return r, err
		}
		if i == 0 || r.elapsed < out.elapsed {
			out = r
		}
	}
	return out, nil
}

// readStage reads every event of from..to as delivery does: Groups, then
// Scan of each group, doing nothing with the bodies.
func readStage(ctx context.Context, st store.Store, tenantID, from, to int64) (stageResult, error) {
	var r stageResult
	start := time.Now()
	groups, err := st.GroupsBy(ctx, tenantID, from, to, nil, 24*time.Hour)
	if err != nil {
		return r, err
	}
	for _, g := range groups {
		err := st.Scan(ctx, tenantID, g, func(ev store.StoredEvent) error {
			r.events++
			r.bytesIn += int64(len(ev.Body)) + 1
			return nil
		})
		if err != nil {
			return r, err
		}
	}
	r.elapsed = time.Since(start)
	if r.events != to-from+1 {
		return r, fmt.Errorf("store read: %d events in %d..%d", r.events, from, to)
	}
	return r, nil
}

// compressChunk is how many bytes of event bodies are read from the store
// before they are encoded; only the encoding is timed.
const compressChunk = 16 << 20

// compressStage encodes each group of from..to into one object, as delivery
// does, into a byte counter, and returns the objects' sizes. The events are
// read from the store in chunks outside the timed sections.
func compressStage(ctx context.Context, st store.Store, tenantID, from, to int64, spec api.DestinationSpec) (stageResult, []int64, error) {
	var r stageResult
	groups, err := st.GroupsBy(ctx, tenantID, from, to, nil, 24*time.Hour)
	if err != nil {
		return r, nil, err
	}
	chunk := make([]byte, 0, compressChunk+64<<10)
	var ends []int
	var sizes []int64
	for _, g := range groups {
		var out countWriter
		start := time.Now()
		enc, err := encode.NewWriter(&out, spec.Format, spec.Compression)
		r.elapsed += time.Since(start)
		if err != nil {
			return r, nil, err
		}
		flush := func() error {
			start := time.Now()
			prev := 0
			for _, end := range ends {
				if err := enc.Write(chunk[prev:end]); err != nil {
					return err
				}
				prev = end
			}
			r.elapsed += time.Since(start)
			chunk, ends = chunk[:0], ends[:0]
			return nil
		}
		err = st.Scan(ctx, tenantID, g, func(ev store.StoredEvent) error {
			chunk = append(chunk, ev.Body...)
			ends = append(ends, len(chunk))
			r.events++
			r.bytesIn += int64(len(ev.Body)) + 1
			if len(chunk) >= compressChunk {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return r, nil, err
		}
		start = time.Now()
		if err := enc.Close(); err != nil {
			return r, nil, err
		}
		r.elapsed += time.Since(start)
		sizes = append(sizes, out.n)
		r.bytesOut += out.n
		r.objects++
	}
	return r, sizes, nil
}

// countWriter counts the bytes written to it and drops them.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// s3Writer is the agent's S3 writer for the destination's target, built the
// way the agent builds it (principal options, static keys, path style).
func (w *world) s3Writer(ctx context.Context, spec api.DestinationSpec) (*s3sink.Writer, error) {
	p, err := s3sink.NewPrincipal(ctx, s3sink.Options{
		Region: region, S3Endpoint: w.s3.url, STSEndpoint: w.s3.url, UsePathStyle: true,
		PrincipalARN: "arn:aws:iam::000000000000:user/auditexport-bench",
		AccessKeyID:  w.s3.accessKey, SecretAccessKey: w.s3.secret,
	})
	if err != nil {
		return nil, err
	}
	return p.Writer(destination.TargetFor(spec, "")), nil
}

// putWrite is the size of each write into an upload, about what the gzip
// encoder hands on at a time.
const putWrite = 32 << 10

// putStage uploads one object per size, one after another as delivery does,
// with s3sink.Upload (a PutObject, or a multipart upload in 8 MiB parts for
// larger objects; CRC32C; If-None-Match: *). The content is random bytes
// made beforehand: compressed data does not compress further, and the
// server does the same work for any bytes.
func putStage(ctx context.Context, writer *s3sink.Writer, sizes []int64, meta s3sink.PutMeta) (stageResult, error) {
	var r stageResult
	payload := make([]byte, 1<<20)
	_, _ = rand.Read(payload) // never fails, see crypto/rand.Read
	run := testenv.RandomKey(8)
	start := time.Now()
	for i, size := range sizes {
		key := fmt.Sprintf("bench-put/%s/%04d.ndjson.gz", run, i)
		up := writer.NewUpload(ctx, key, meta, s3sink.DefaultPartSize)
		for off := int64(0); off < size; {
			p := payload[off%int64(len(payload)):]
			n := min(int64(len(p)), putWrite, size-off)
			if _, err := up.Write(p[:n]); err != nil {
				up.Abort()
				return r, fmt.Errorf("PUT %s: %w", key, err)
			}
			off += n
		}
		res, err := up.Close()
		if err != nil {
			return r, fmt.Errorf("PUT %s: %w", key, err)
		}
		if res.AlreadyExists {
			return r, fmt.Errorf("PUT %s: the key already existed", key)
		}
		r.bytesOut += size
		r.objects++
	}
	r.elapsed = time.Since(start)
	return r, nil
}

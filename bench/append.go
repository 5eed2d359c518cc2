package main

import (
	"context"
	"fmt"
	"time"

	"github.com/auditexport/auditexport/internal/ingest"
	"github.com/auditexport/auditexport/internal/store"
)

// measureAppend times the store's own append limit, against which durable
// ingest is compared: the ingest phase's events (the same generator and
// sizes), parsed outside the timer, appended to a tenant of their own in
// calls of clients × batch events (the most the committer groups into one
// commit with that many clients, up to its cap), one call after the other, as the
// committer commits one tenant's requests. The agent is stopped; the store
// is opened with store.Open. A call holds at most what one commit may
// (ingest.DefaultMaxBatchEvents).
func (w *world) measureAppend(ctx context.Context, o options, run *storeRun) error {
	st, err := store.Open(ctx, w.open)
	if err != nil {
		return err
	}
	defer st.Close()
	progress("stage limits (%s): store append", w.st.title)
	calls, bytes, err := appendCalls(o)
	if err != nil {
		return err
	}
	rep := 0
	run.stages.appendLimit, err = best(func() (stageResult, error) {
		rep++
		t, err := st.CreateTenant(ctx, fmt.Sprintf("append-limit-%d", rep), "bench")
		if err != nil {
			return stageResult{}, err
		}
		return appendStage(ctx, st, t.ID, calls, bytes)
	})
	return err
}

// appendCalls builds the events of o.events in Append calls of o.clients ×
// o.batch events, parsed as the server parses a request.
func appendCalls(o options) ([][]store.AppendBatch, int64, error) {
	var calls [][]store.AppendBatch
	var call []store.AppendBatch
	var bytes int64
	batches := (o.events + int64(o.batch) - 1) / int64(o.batch)
	start := time.Now()
	for i := range batches {
		// A request's events carry the time it was made, as runIngest's
		// do; a millisecond apart, as requests are at least.
		now := start.Add(time.Duration(i) * time.Millisecond)
		n := min(int64(o.batch), o.events-i*int64(o.batch))
		gen := newEventGen(7<<40+uint64(i), 0)
		var body []byte
		for range n {
			body = gen.appendEvent(body, now)
			body = append(body, '\n')
		}
		bytes += int64(len(body))
		events, err := ingest.ParseAt(body, ingest.DefaultFields(), ingest.Limits{}, now)
		if err != nil {
			return nil, 0, err
		}
		call = append(call, store.AppendBatch{Events: events})
		if len(call) == perCall(o) || i == batches-1 {
			calls = append(calls, call)
			call = nil
		}
	}
	return calls, bytes, nil
}

// perCall is how many requests of o.batch events one commit holds: every
// client's, up to the committer's cap.
func perCall(o options) int {
	return max(1, min(o.clients, ingest.DefaultMaxBatchEvents/max(o.batch, 1)))
}

// appendStage appends every call for the tenant and checks that all was
// stored.
func appendStage(ctx context.Context, st store.Store, tenantID int64, calls [][]store.AppendBatch, bytes int64) (stageResult, error) {
	r := stageResult{bytesIn: bytes}
	start := time.Now()
	for _, call := range calls {
		for i := range call {
			call[i].TenantID = tenantID
		}
		res, err := st.Append(ctx, call)
		if err != nil {
			return r, err
		}
		for i, b := range call {
			if res[i].Stored != len(b.Events) {
				return r, fmt.Errorf("store append: stored %d of %d events", res[i].Stored, len(b.Events))
			}
			r.events += int64(res[i].Stored)
		}
	}
	r.elapsed = time.Since(start)
	return r, nil
}

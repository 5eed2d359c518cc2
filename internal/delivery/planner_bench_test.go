package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/store"
)

// BenchmarkPlan measures planning one window over a real SQLite store: the
// window's last sequence (LastSeqBefore), its (event type, day) groups
// (GroupsBy), the plan saved as JSON, read back as runOnce reads it, and the
// key of each group's first object. "events/s" is events planned per second.
func BenchmarkPlan(b *testing.B) {
	for _, c := range []struct {
		events, types, days int
	}{
		{200_000, 3, 1},
		{200_000, 40, 7},
	} {
		b.Run(fmt.Sprintf("events=%dk,types=%d,days=%d", c.events/1000, c.types, c.days), func(b *testing.B) {
			benchmarkPlan(b, c.events, c.types, c.days)
		})
	}
}

func benchmarkPlan(b *testing.B, events, types, days int) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{SQLitePath: filepath.Join(b.TempDir(), "db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	tenant, err := st.CreateTenant(ctx, "acme", "ext")
	if err != nil {
		b.Fatal(err)
	}
	fillStore(b, st, tenant.ID, events, types, days)

	spec := api.DestinationSpec{Bucket: "bucket", Region: "us-east-1", RoleARN: "arn:aws:iam::123456789012:role/r", Prefix: "audit"}
	if err := spec.Normalize(); err != nil {
		b.Fatal(err)
	}
	data, err := json.Marshal(spec)
	if err != nil {
		b.Fatal(err)
	}
	dest, err := st.CreateDestination(ctx, store.Destination{ID: "bench", TenantID: tenant.ID, Spec: data})
	if err != nil {
		b.Fatal(err)
	}
	sched, err := ScheduleFor(spec, 0)
	if err != nil {
		b.Fatal(err)
	}
	d := New(st, func(s3sink.Target) Sink { return nil }, nil, hclog.NewNullLogger(), Options{})
	// The cursor stays at 0 in t, so every iteration plans the same range.
	t := &target{dest: dest, spec: spec, tenant: tenant, sched: sched}
	windowEnd := sched.Next(time.Now())

	groups := 0
	for b.Loop() {
		plan, err := d.newPlan(ctx, t, windowEnd)
		if err != nil {
			b.Fatal(err)
		}
		if plan.ToSeq != int64(events) {
			b.Fatalf("planned up to %d, want %d", plan.ToSeq, events)
		}
		a := &attemptState{t: t, plan: plan}
		if err := json.Unmarshal(plan.Objects, &a.groups); err != nil {
			b.Fatal(err)
		}
		for i := range a.groups {
			_ = d.key(a, &a.groups[i], 1, 0)
		}
		groups = len(a.groups)

		// A destination has one pending plan: commit it, untimed, so the
		// next iteration can save its own.
		b.StopTimer()
		if err := st.CommitPlan(ctx, plan, store.Delivered{}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(groups), "groups")
}

// fillStore appends events of ~400 bytes for the tenant, spread over types
// event types and the last days UTC days, in commits of 5,000 as group
// commit makes them.
func fillStore(b *testing.B, st store.Store, tenantID int64, events, types, days int) {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1-days)
	span := time.Duration(days) * 24 * time.Hour
	for first := 0; first < events; first += 5000 {
		batch := make([]store.Event, 0, 5000)
		for i := first; i < min(first+5000, events); i++ {
			id := fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())
			name := fmt.Sprintf("type.%02d", r.IntN(types))
			// Time runs forward with the sequence, as it does on a live agent.
			ts := start.Add(time.Duration(int64(span) / int64(events) * int64(i))).UnixMilli()
			body := fmt.Sprintf(`{"timestamp":%d,"eventName":%q,"messageId":%q,"actor":{"id":"usr_%06d","type":"user"},"pad":"%0300d"}`,
				ts, name, id, r.IntN(20000), 0)
			batch = append(batch, store.Event{MessageID: id, EventName: name, TimeMs: ts, Body: []byte(body)})
		}
		if _, err := st.Append(context.Background(), []store.AppendBatch{{TenantID: tenantID, Events: batch}}); err != nil {
			b.Fatal(err)
		}
	}
}

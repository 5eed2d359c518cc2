//go:build unix

package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/clock/clocktest"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/testenv"
)

// BenchmarkSmallObject measures what one quiet destination costs at a
// window end: each iteration is a 1-minute window of three events,
// delivered as one gzip NDJSON object through the real S3 writer to
// versitygw, on a real SQLite store, with the hourly digests that fall due
// on the way (one per 60 windows), exactly the work a destination's turn
// does. "cpu-ms/object" is this process's CPU (user + system, the store
// included, versitygw not) per object delivered. Run it with -cpuprofile
// to see where the time goes.
func BenchmarkSmallObject(b *testing.B) {
	ctx := context.Background()
	// S3 keeps connections alive; versitygw only when asked to. Without
	// it every request would cost a TCP connection on both sides.
	b.Setenv("VGW_KEEP_ALIVE", "true")
	b.Setenv("AWS_CA_BUNDLE", "")
	gw := testenv.StartVersityGW(b)
	gw.CreateBucket(b, "small")

	clk := clocktest.NewFake(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	st, err := store.Open(ctx, store.Config{SQLitePath: filepath.Join(b.TempDir(), "db"), Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	tenant, err := st.CreateTenant(ctx, "acme", "ext")
	if err != nil {
		b.Fatal(err)
	}
	spec := api.DestinationSpec{
		Bucket: "small", Region: gw.Region, Prefix: "audit", Interval: "1m", Backfill: "0",
		AccessKeyID: gw.RootKey, SecretAccessKey: gw.RootSecret,
	}
	if err := spec.Normalize(); err != nil {
		b.Fatal(err)
	}
	data, _ := json.Marshal(spec)
	dest, err := st.CreateDestination(ctx, store.Destination{ID: "dst_small", TenantID: tenant.ID, Spec: data})
	if err != nil {
		b.Fatal(err)
	}
	principal, err := s3sink.NewPrincipal(ctx, s3sink.Options{
		Region: gw.Region, S3Endpoint: gw.URL, UsePathStyle: true,
		AccessKeyID: gw.RootKey, SecretAccessKey: gw.RootSecret,
	})
	if err != nil {
		b.Fatal(err)
	}
	d := New(st, func(tg s3sink.Target) Sink { return SinkFor(principal.Writer(tg)) }, metrics.New(),
		hclog.NewNullLogger(), Options{Workers: 1, Clock: clk, Signer: newKeys(b, st)})
	sched, err := ScheduleFor(spec, 0)
	if err != nil {
		b.Fatal(err)
	}
	l := &loop{ctx: ctx, hctx: ctx, dest: dest, spec: spec, sched: sched, backoff: time.Second}
	if !d.openLoop(l) {
		b.Fatal("the destination's tenant was not read")
	}

	seq := 0
	var cpu time.Duration
	objects := 0
	for b.Loop() {
		b.StopTimer()
		windowEnd := l.windowEnd
		clk.Set(windowEnd.Add(-30 * time.Second))
		var evs []store.Event
		for range 3 {
			seq++
			id := fmt.Sprintf("m%08d", seq)
			ms := clk.Now().UnixMilli()
			evs = append(evs, store.Event{MessageID: id, EventName: "user.login", TimeMs: ms,
				Body: fmt.Appendf(nil, `{"timestamp":%d,"eventName":"user.login","messageId":%q,"actor":{"id":"usr_1","type":"user"}}`, ms, id)})
		}
		if _, err := st.Append(ctx, []store.AppendBatch{{TenantID: tenant.ID, Events: evs}}); err != nil {
			b.Fatal(err)
		}
		clk.Set(windowEnd.Add(time.Second))
		before := processCPU(b)
		b.StartTimer()

		if _, again := d.turn(l); !again || l.retrying {
			b.Fatalf("the turn of the window ending %s failed", windowEnd)
		}

		b.StopTimer()
		cpu += processCPU(b) - before
		objects++
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu)/float64(time.Millisecond)/float64(objects), "cpu-ms/object")
}

// processCPU is the user and system CPU this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

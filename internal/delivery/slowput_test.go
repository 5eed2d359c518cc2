package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/clock/clocktest"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/testenv"
)

// One destination whose PUT hangs (the fault proxy holds its connection)
// delays none of hundreds of others: with four workers, the other
// destinations all deliver their window while the stuck one is still in
// flight, and the stuck one delivers once its connection lets go. The
// objects go through the real S3 writer to moto.
func TestSlowPutDelaysNoOtherDestination(t *testing.T) {
	const n = 200
	ctx := context.Background()
	moto := testenv.StartMoto(t)
	moto.CreateBucket(t, "fleet", "us-east-1")
	proxy := testenv.StartFaultProxy(t, moto.S3URL, testenv.FaultOptions{})

	clk := clocktest.NewFake(mustTime(t, "2026-11-25T10:00:30Z"))
	st, err := store.Open(ctx, store.Config{SQLitePath: filepath.Join(t.TempDir(), "db"), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tenant, err := st.CreateTenant(ctx, "acme", "ext")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range n {
		spec := api.DestinationSpec{
			Bucket: "fleet", Region: "us-east-1", Prefix: fmt.Sprintf("d%03d", i), Interval: "1m",
			AccessKeyID: moto.AdminKey, SecretAccessKey: moto.AdminSecret, Backfill: "0",
		}
		if err := spec.Normalize(); err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(spec)
		d, err := st.CreateDestination(ctx, store.Destination{ID: fmt.Sprintf("dst_%03d", i), TenantID: tenant.ID, Spec: data})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	principal, err := s3sink.NewPrincipal(ctx, s3sink.Options{
		Region: "us-east-1", S3Endpoint: proxy.URL(), UsePathStyle: true,
		AccessKeyID: moto.AdminKey, SecretAccessKey: moto.AdminSecret,
	})
	if err != nil {
		t.Fatal(err)
	}
	d := New(st, func(tg s3sink.Target) Sink { return SinkFor(principal.Writer(tg)) }, nil, hclog.NewNullLogger(),
		Options{Workers: 4, Clock: clk, Refresh: 20 * time.Millisecond})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { d.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	pollUntil(t, "every loop waiting for its window end", func() bool { return d.sched.waiting() == n && clk.Waiters() > 0 })
	var evs []store.Event
	for i := range 5 {
		id := fmt.Sprintf("m%d", i)
		evs = append(evs, store.Event{MessageID: id, EventName: "user.login", TimeMs: clk.Now().UnixMilli(),
			Body: fmt.Appendf(nil, `{"timestamp":%d,"eventName":"user.login","messageId":%q}`, clk.Now().UnixMilli(), id)})
	}
	if _, err := st.Append(ctx, []store.AppendBatch{{TenantID: tenant.ID, Events: evs}}); err != nil {
		t.Fatal(err)
	}

	release := proxy.Hold("fleet/d000/")
	defer release()
	// Past the window end by the spread, when every destination's turn has come.
	clk.Set(mustTime(t, "2026-11-25T10:01:00Z").Add(DefaultSpread))

	delivered := func(id string) bool {
		_, s, err := st.DestinationStatus(ctx, tenant.ID, id)
		return err == nil && !s.LastDeliveryAt.IsZero()
	}
	pollUntil(t, "the others' deliveries while d000's PUT is held", func() bool {
		for _, id := range ids[1:] {
			if !delivered(id) {
				return false
			}
		}
		return true
	})
	if proxy.Holding() != 1 || delivered(ids[0]) {
		t.Fatalf("the stuck destination: %d writes held, delivered %v; want its PUT still held", proxy.Holding(), delivered(ids[0]))
	}
	keys := moto.ListKeys(t, "fleet", "")
	if len(keys) != n-1 {
		t.Fatalf("%d objects in the bucket while d000 is stuck, want %d", len(keys), n-1)
	}
	for _, k := range keys {
		if strings.HasPrefix(k, "d000/") {
			t.Fatalf("d000's object %s landed while its PUT was held", k)
		}
	}

	release()
	pollUntil(t, "d000's delivery after its PUT let go", func() bool { return delivered(ids[0]) })
	for key, writes := range proxy.SuccessfulWrites() {
		if writes != 1 {
			t.Errorf("%s written %d times", key, writes)
		}
	}
	if keys := moto.ListKeys(t, "fleet", ""); len(keys) != n {
		t.Fatalf("%d objects in the bucket, want %d", len(keys), n)
	}
}

// pollUntil polls cond; the deadline only guards against a hang.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/clock/clocktest"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/testenv"
)

// pg is the package's PostgreSQL server, started by the first test that
// needs it.
var pg testenv.SharedPostgres

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Close()
	os.Exit(code)
}

// sharedBucket is one in-memory bucket written by several deliverers. It
// records who wrote each object and whether two deliverers ever had an
// upload of the same destination open at once.
type sharedBucket struct {
	mu       sync.Mutex
	objects  map[string][]byte
	byAgent  map[string]int            // objects created, by deliverer
	open     map[string]map[string]int // destination → deliverer → uploads open
	overlaps []string
}

func newSharedBucket() *sharedBucket {
	return &sharedBucket{objects: map[string][]byte{}, byAgent: map[string]int{}, open: map[string]map[string]int{}}
}

// sink is the Sink one deliverer uses for one destination.
func (b *sharedBucket) sink(agent, dest string) Sink {
	return &agentSink{b: b, agent: agent, dest: dest}
}

type agentSink struct {
	b           *sharedBucket
	agent, dest string
}

func (s *agentSink) NewUpload(_ context.Context, key string, _ s3sink.PutMeta, _ int) ObjectWriter {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open[s.dest] == nil {
		b.open[s.dest] = map[string]int{}
	}
	for other, n := range b.open[s.dest] {
		if other != s.agent && n > 0 {
			b.overlaps = append(b.overlaps, fmt.Sprintf("%s by %s while %s writes it", s.dest, s.agent, other))
		}
	}
	b.open[s.dest][s.agent]++
	return &agentUpload{s: s, key: key}
}

type agentUpload struct {
	s    *agentSink
	key  string
	buf  bytes.Buffer
	done bool
}

func (u *agentUpload) Write(p []byte) (int, error) { return u.buf.Write(p) }
func (u *agentUpload) Written() int64              { return int64(u.buf.Len()) }

func (u *agentUpload) finish() {
	if !u.done {
		u.done = true
		u.s.b.open[u.s.dest][u.s.agent]--
	}
}

func (u *agentUpload) Abort() {
	u.s.b.mu.Lock()
	defer u.s.b.mu.Unlock()
	u.finish()
}

func (u *agentUpload) Close() (s3sink.PutResult, error) {
	b := u.s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	u.finish()
	if _, ok := b.objects[u.key]; ok {
		return s3sink.PutResult{AlreadyExists: true}, nil // If-None-Match: *
	}
	b.objects[u.key] = bytes.Clone(u.buf.Bytes())
	b.byAgent[u.s.agent]++
	return s3sink.PutResult{}, nil
}

// messageIDs returns the messageIds in the objects under prefix, sorted.
func (b *sharedBucket) messageIDs(t *testing.T, prefix string) []string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []string
	for k, data := range b.objects {
		if !strings.HasPrefix(k, prefix+"/") {
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		plain, _ := io.ReadAll(zr)
		for line := range strings.Lines(string(plain)) {
			var ev struct{ MessageID string }
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, ev.MessageID)
		}
	}
	slices.Sort(ids)
	return ids
}

// waitFor polls cond, stepping the fake clock a minute each time so that
// the destinations' windows keep ending; the deadline is a hang guard.
func waitFor(t *testing.T, what string, clock *clocktest.Fake, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		clock.Advance(time.Minute)
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// Two deliverers (two agents) share one PostgreSQL store: every event
// reaches every destination exactly once, no destination is written by both
// at the same time, the destinations are split between them, and stopping
// one hands its destinations to the other.
func TestTwoDeliverersShareOnePostgres(t *testing.T) {
	url := pg.Get(t).NewSchema(t)
	clock := clocktest.NewFake(mustTime(t, "2026-11-25T10:00:30Z"))
	ctx := context.Background()
	open := func() store.Store {
		s, err := store.Open(ctx, store.Config{PostgresURL: url, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	admin := open()
	tenant, err := admin.CreateTenant(ctx, "acme", "ext")
	if err != nil {
		t.Fatal(err)
	}
	const destinations = 6
	var prefixes []string
	for i := range destinations {
		spec := api.DestinationSpec{Interval: "1m", Backfill: "0", Bucket: "bucket", Region: "us-east-1",
			RoleARN: "arn:aws:iam::123456789012:role/r", Prefix: fmt.Sprintf("d%d", i)}
		if err := spec.Normalize(); err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(spec)
		if _, err := admin.CreateDestination(ctx, store.Destination{ID: fmt.Sprintf("dst_%d", i), TenantID: tenant.ID, Spec: data}); err != nil {
			t.Fatal(err)
		}
		prefixes = append(prefixes, spec.Prefix)
	}

	bucket := newSharedBucket()
	type agent struct {
		m    *metrics.Metrics
		stop func()
	}
	start := func(name string) agent {
		m := metrics.New()
		d := New(open(), func(tg s3sink.Target) Sink { return bucket.sink(name, tg.Destination) }, m, hclog.NewNullLogger(), Options{
			Workers: 2, Clock: clock, Refresh: 20 * time.Millisecond, AgentID: name,
			// Renewed far more often than it lapses: a slow machine does
			// not lose leases, so the handover tested is the stop's.
			LeaseTTL: 10 * time.Second, LeaseRenew: 50 * time.Millisecond,
		})
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { d.Run(runCtx); close(done) }()
		stop := sync.OnceFunc(func() { cancel(); <-done })
		t.Cleanup(stop)
		return agent{m: m, stop: stop}
	}
	held := func(a agent) int { return int(testutil.ToFloat64(a.m.LeasesHeld)) }

	a, b := start("agent-a"), start("agent-b")
	waitFor(t, "the two deliverers split the destinations", clock, func() bool {
		return held(a) > 0 && held(b) > 0 && held(a)+held(b) == destinations
	})

	var posted []string
	post := func(n int) {
		var evs []store.Event
		for range n {
			id := fmt.Sprintf("m%03d", len(posted)+1)
			posted = append(posted, id)
			now := clock.Now().UnixMilli()
			evs = append(evs, store.Event{MessageID: id, EventName: "user.login", TimeMs: now,
				Body: fmt.Appendf(nil, `{"timestamp":%d,"eventName":"user.login","messageId":%q}`, now, id)})
		}
		if _, err := admin.Append(ctx, []store.AppendBatch{{TenantID: tenant.ID, Events: evs}}); err != nil {
			t.Fatal(err)
		}
	}
	allDelivered := func() bool {
		head, err := admin.Head(ctx, tenant.ID)
		if err != nil {
			t.Fatal(err)
		}
		dests, err := admin.ListDestinations(ctx, tenant.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dests {
			if d.Cursor != head {
				return false
			}
		}
		return true
	}

	for round := range 4 {
		if round == 2 {
			a.stop()
			if held(a) != 0 {
				t.Errorf("agent-a holds %d leases after its stop, want 0", held(a))
			}
			waitFor(t, "agent-b holds every destination", clock, func() bool { return held(b) == destinations })
		}
		post(5)
		waitFor(t, fmt.Sprintf("round %d is delivered", round+1), clock, allDelivered)
	}

	want := slices.Clone(posted)
	slices.Sort(want)
	for _, p := range prefixes {
		if got := bucket.messageIDs(t, p); !slices.Equal(got, want) {
			t.Errorf("destination %s received %v, want each of %v once", p, got, want)
		}
	}
	bucket.mu.Lock()
	if len(bucket.overlaps) > 0 {
		t.Errorf("destinations written by two deliverers at once: %v", bucket.overlaps)
	}
	if bucket.byAgent["agent-a"] == 0 || bucket.byAgent["agent-b"] == 0 {
		t.Errorf("objects by deliverer = %v, want both to have delivered", bucket.byAgent)
	}
	bucket.mu.Unlock()
	if n := testutil.ToFloat64(b.m.LeaseHandovers); n < 1 {
		t.Errorf("agent-b counted %v handovers, want agent-a's destinations", n)
	}
	for i := range destinations {
		st, err := admin.GetStatus(ctx, fmt.Sprintf("dst_%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if st.Holder != "agent-b" {
			t.Errorf("dst_%d is delivered by %q, want agent-b", i, st.Holder)
		}
	}
}

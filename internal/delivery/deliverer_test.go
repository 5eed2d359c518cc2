package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
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
	"github.com/auditexport/auditexport/internal/destination"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/store"
)

// memSink is an in-memory bucket for unit tests of the schedule; the
// end-to-end tests prove delivery against a real S3 server.
type memSink struct {
	mu      sync.Mutex
	objects map[string][]byte
	// started, when set, is told of each upload; each Close then waits delay.
	started chan string
	delay   time.Duration
	// failWith, while set, fails every upload's Close.
	failWith error
}

// setFailure makes uploads fail with err, or succeed again when err is nil.
func (m *memSink) setFailure(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failWith = err
}

func (m *memSink) NewUpload(_ context.Context, key string, _ s3sink.PutMeta, _ int) ObjectWriter {
	if m.started != nil {
		m.started <- key
	}
	return &memUpload{sink: m, key: key}
}

func (m *memSink) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.objects {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// messageIDs returns the messageIds of every delivered event, in key order.
func (m *memSink) messageIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	for _, k := range m.keys() {
		m.mu.Lock()
		data := m.objects[k]
		m.mu.Unlock()
		plain := data
		if strings.HasSuffix(k, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			plain, _ = io.ReadAll(zr)
		}
		for line := range strings.Lines(string(plain)) {
			var ev struct{ MessageID string }
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, ev.MessageID)
		}
	}
	return ids
}

type memUpload struct {
	sink *memSink
	key  string
	buf  bytes.Buffer
}

func (u *memUpload) Write(p []byte) (int, error) { return u.buf.Write(p) }
func (u *memUpload) Written() int64              { return int64(u.buf.Len()) }
func (u *memUpload) Abort()                      {}

func (u *memUpload) Close() (s3sink.PutResult, error) {
	time.Sleep(u.sink.delay)
	u.sink.mu.Lock()
	defer u.sink.mu.Unlock()
	if u.sink.failWith != nil {
		return s3sink.PutResult{}, u.sink.failWith
	}
	if _, ok := u.sink.objects[u.key]; ok {
		return s3sink.PutResult{AlreadyExists: true}, nil
	}
	u.sink.objects[u.key] = bytes.Clone(u.buf.Bytes())
	return s3sink.PutResult{}, nil
}

// rig is a real SQLite store, a fake clock and an in-memory bucket.
type rig struct {
	t     *testing.T
	clock *clocktest.Fake
	store store.Store
	sink  *memSink
	// sinks holds the sinks of destinations that do not write to sink,
	// by destination id.
	sinks   sync.Map
	d       *Deliverer
	start   func() // starts a new Deliverer on the rig's store and sink
	stop    func() // stops the Deliverer and waits for it
	metrics *metrics.Metrics
	tenant  store.Tenant
	seq     int
}

func newRig(t *testing.T, start string) *rig {
	t.Helper()
	return newRigWith(t, start, nil)
}

// newRigWith is newRig with the Deliverer's options changed by tune.
func newRigWith(t *testing.T, start string, tune func(*Options)) *rig {
	t.Helper()
	return newRigWrapped(t, start, nil, tune)
}

// newRigWrapped is newRigWith with the Deliverer's store wrapped by wrap,
// e.g. to inject store failures; the rig itself uses the store unwrapped.
func newRigWrapped(t *testing.T, start string, wrap func(store.Store) store.Store, tune func(*Options)) *rig {
	t.Helper()
	r := &rig{t: t, clock: clocktest.NewFake(mustTime(t, start)), sink: &memSink{objects: map[string][]byte{}}}
	st, err := store.Open(context.Background(), store.Config{SQLitePath: filepath.Join(t.TempDir(), "db"), Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r.store = st
	delivered := st
	if wrap != nil {
		delivered = wrap(st)
	}
	if r.tenant, err = st.CreateTenant(context.Background(), "acme", "ext"); err != nil {
		t.Fatal(err)
	}
	r.metrics = metrics.New()
	opts := Options{
		Workers: 1, Clock: r.clock, Refresh: 20 * time.Millisecond, RetryInitial: time.Second,
		Retention: 7 * 24 * time.Hour, Spread: -1, // turns at the window ends, as the tests move the clock
	}
	if tune != nil {
		tune(&opts)
	}
	r.start = func() {
		r.d = New(delivered, func(tg s3sink.Target) Sink {
			if sink, ok := r.sinks.Load(tg.Destination); ok {
				return sink.(Sink)
			}
			return r.sink
		}, r.metrics, hclog.NewNullLogger(), opts)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { r.d.Run(ctx); close(done) }()
		r.stop = sync.OnceFunc(func() { cancel(); <-done })
	}
	r.start()
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *rig) destination(spec api.DestinationSpec) store.Destination {
	r.t.Helper()
	spec.Bucket, spec.Region, spec.RoleARN, spec.Prefix = "bucket", "us-east-1", "arn:aws:iam::123456789012:role/r", "audit"
	if err := spec.Normalize(); err != nil {
		r.t.Fatal(err)
	}
	ctx := context.Background()
	cursor, err := destination.BackfillCursor(ctx, r.store, r.tenant.ID, spec.Backfill, r.clock.Now())
	if err != nil {
		r.t.Fatal(err)
	}
	data, _ := json.Marshal(spec)
	d, err := r.store.CreateDestination(ctx, store.Destination{ID: "dst_1", TenantID: r.tenant.ID, Spec: data, Cursor: cursor})
	if err != nil {
		r.t.Fatal(err)
	}
	r.d.Notify()
	if *spec.Enabled {
		r.waitAsleep()
	}
	return d
}

// post stores n events stamped with the fake clock's time.
func (r *rig) post(n int) []string {
	r.t.Helper()
	var ids []string
	var evs []store.Event
	for range n {
		r.seq++
		id := fmt.Sprintf("m%d", r.seq)
		ids = append(ids, id)
		body := fmt.Sprintf(`{"timestamp":%d,"eventName":"user.login","messageId":%q}`, r.clock.Now().UnixMilli(), id)
		evs = append(evs, store.Event{MessageID: id, EventName: "user.login", TimeMs: r.clock.Now().UnixMilli(), Body: []byte(body)})
	}
	if _, err := r.store.Append(context.Background(), []store.AppendBatch{{TenantID: r.tenant.ID, Events: evs}}); err != nil {
		r.t.Fatal(err)
	}
	return ids
}

// waitAsleep waits until the destination loop is waiting on the clock.
func (r *rig) waitAsleep() {
	r.t.Helper()
	deadline := time.Now().Add(time.Minute) // a hang guard, not a budget
	for r.clock.Waiters() == 0 {
		if time.Now().After(deadline) {
			r.t.Fatal("the delivery loop never waited on the clock")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// advance moves the clock to at and waits for the loop to go back to sleep.
// A rig has one destination loop, so one waiter: if Set fires it, Waiters
// drops to zero at once and is non-zero again only once the loop has done
// its work and sleeps; if not, the loop sleeps on.
func (r *rig) advance(at string) {
	r.t.Helper()
	r.clock.Set(mustTime(r.t, at))
	r.waitAsleep()
}

func (r *rig) expectDelivered(want []string) {
	r.t.Helper()
	got := r.sink.messageIDs(r.t)
	if !slices.Equal(got, want) {
		r.t.Fatalf("delivered %v, want %v (keys %v)", got, want, r.sink.keys())
	}
}

// tenantOutage is a store whose TenantByID fails its first fails calls, as
// during a database outage.
type tenantOutage struct {
	store.Store
	mu    sync.Mutex
	fails int
	calls int
}

func (s *tenantOutage) TenantByID(ctx context.Context, id int64) (store.Tenant, error) {
	s.mu.Lock()
	s.calls++
	failing := s.calls <= s.fails
	s.mu.Unlock()
	if failing {
		return store.Tenant{}, errors.New("connection refused")
	}
	return s.Store.TenantByID(ctx, id)
}

// A store outage as a destination's loop starts delays the destination; it
// does not stop it until the agent restarts.
func TestLoopStartSurvivesStoreOutage(t *testing.T) {
	outage := &tenantOutage{fails: 2}
	r := newRigWrapped(t, "2026-11-25T10:00:30Z", func(st store.Store) store.Store {
		outage.Store = st
		return outage
	}, nil)
	ids := r.post(3)
	r.destination(api.DestinationSpec{Interval: "1m"}) // the first read fails; the loop waits to retry
	r.advance("2026-11-25T10:00:40Z")                  // the second fails
	r.advance("2026-11-25T10:00:50Z")                  // the third succeeds; the loop waits for 10:01
	r.advance("2026-11-25T10:01:00Z")
	r.expectDelivered(ids)
}

func TestIntervalWindows(t *testing.T) {
	for _, interval := range api.Intervals {
		t.Run(interval, func(t *testing.T) {
			r := newRig(t, "2026-11-25T00:00:30Z")
			r.destination(api.DestinationSpec{Interval: interval})
			d, _ := time.ParseDuration(interval)
			first := r.post(3)
			r.advance(mustTime(t, "2026-11-25T00:00:00Z").Add(d - time.Second).Format(time.RFC3339))
			r.expectDelivered(nil) // not before the window ends
			end := mustTime(t, "2026-11-25T00:00:00Z").Add(d)
			r.advance(end.Format(time.RFC3339))
			r.expectDelivered(first)
			want := "audit/user.login/2026-11-25/acme/" + end.Format("20060102T150405Z") + "_000000000001-000000000003_0001.ndjson.gz"
			if keys := r.sink.keys(); len(keys) != 1 || keys[0] != want {
				t.Fatalf("keys = %v, want [%s]", keys, want)
			}
			// Events stored after a window ends go in the next one.
			second := r.post(2)
			r.advance(end.Add(d).Format(time.RFC3339))
			r.expectDelivered(append(first, second...))
		})
	}
}

func TestDailyAtDeliversThePreviousDay(t *testing.T) {
	r := newRig(t, "2026-11-25T10:00:00Z")
	r.destination(api.DestinationSpec{DailyAt: "05:00", Backfill: "0"})
	day1 := r.post(2)
	r.advance("2026-11-26T01:00:00Z")
	afterMidnight := r.post(1) // stored on the 26th: waits for the 27th
	r.advance("2026-11-26T04:59:59Z")
	r.expectDelivered(nil)
	r.advance("2026-11-26T05:00:00Z")
	r.expectDelivered(day1)
	r.advance("2026-11-27T05:00:00Z")
	r.expectDelivered(append(day1, afterMidnight...))
}

func TestBackfill(t *testing.T) {
	tests := []struct {
		backfill string
		want     []string // of events stored at 08:00, 09:30 and 09:59
	}{
		{"0", nil},
		{"1h", []string{"m2", "m3"}},
		{"24h", []string{"m1", "m2", "m3"}},
	}
	for _, tt := range tests {
		t.Run(tt.backfill, func(t *testing.T) {
			r := newRig(t, "2026-11-25T08:00:00Z")
			r.post(1)
			r.clock.Set(mustTime(t, "2026-11-25T09:30:00Z"))
			r.post(1)
			r.clock.Set(mustTime(t, "2026-11-25T09:59:00Z"))
			r.post(1)
			r.clock.Set(mustTime(t, "2026-11-25T10:00:00Z"))
			r.destination(api.DestinationSpec{Interval: "1h", Backfill: tt.backfill})
			r.advance("2026-11-25T11:00:00Z")
			r.expectDelivered(tt.want)
		})
	}
}

// A window that ended while no agent ran the destination is delivered as
// soon as it runs again, not a whole interval (or day) later.
func TestMissedWindowDeliveredAtStart(t *testing.T) {
	tests := []struct {
		name       string
		spec       api.DestinationSpec
		down, back string // the agent stops at down, starts at back
		wantWindow string // the window end in the delivered key
	}{
		{"interval", api.DestinationSpec{Interval: "1m"}, "2026-11-25T10:00:40Z", "2026-11-25T10:01:20Z", "20261125T100100Z"},
		{"daily_at", api.DestinationSpec{DailyAt: "05:00"}, "2026-11-25T23:00:00Z", "2026-11-26T06:00:00Z", "20261126T050000Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, "2026-11-25T10:00:30Z")
			r.destination(tt.spec)
			ids := r.post(3)
			r.advance(tt.down)
			r.stop()
			r.clock.Set(mustTime(t, tt.back))
			r.start()
			r.waitAsleep() // the first turn is at once, so this is after it
			r.expectDelivered(ids)
			if keys := r.sink.keys(); len(keys) != 1 || !strings.Contains(keys[0], "/"+tt.wantWindow+"_") {
				t.Errorf("keys = %v, want one of the window ending %s", keys, tt.wantWindow)
			}
		})
	}
}

func TestPauseKeepsEventsAndResumeDelivers(t *testing.T) {
	r := newRig(t, "2026-11-25T10:00:00Z")
	off := false
	dest := r.destination(api.DestinationSpec{Interval: "5m", Enabled: &off})
	ids := r.post(4)
	r.clock.Set(mustTime(t, "2026-11-25T10:30:00Z"))
	time.Sleep(50 * time.Millisecond)
	r.expectDelivered(nil)

	spec, err := destination.Decode(dest)
	if err != nil {
		t.Fatal(err)
	}
	on := true
	spec.Enabled = &on
	data, _ := json.Marshal(spec)
	if _, err := r.store.UpdateDestination(context.Background(), r.tenant.ID, dest.ID, data); err != nil {
		t.Fatal(err)
	}
	r.d.Notify()
	r.waitAsleep()
	r.advance("2026-11-25T10:35:00Z")
	r.expectDelivered(ids)
}

func TestMaxObjectBytesSplitsIntoParts(t *testing.T) {
	r := newRig(t, "2026-11-25T10:00:00Z")
	r.destination(api.DestinationSpec{Interval: "1m", Compression: "none", MaxObjectBytes: api.MinObjectBytes})
	// ~12 MiB of uncompressed events: three objects of at most ~5 MiB.
	var ids []string
	for range 12 {
		ids = append(ids, r.postLarge(16, 64<<10)...)
	}
	r.advance("2026-11-25T10:01:00Z")
	r.expectDelivered(ids)
	keys := r.sink.keys()
	if len(keys) != 3 {
		t.Fatalf("got %d objects, want 3: %v", len(keys), keys)
	}
	var size int64
	for _, k := range keys {
		size += int64(len(r.sink.objects[k]))
	}
	st, err := r.store.GetStatus(context.Background(), "dst_1")
	if err != nil {
		t.Fatal(err)
	}
	if st.BytesDelivered != size || st.ObjectsDelivered != 3 || st.EventsDelivered != int64(len(ids)) {
		t.Fatalf("status counts %d bytes, %d objects, %d events; want %d, 3, %d",
			st.BytesDelivered, st.ObjectsDelivered, st.EventsDelivered, size, len(ids))
	}
	for i, k := range keys {
		if !strings.HasSuffix(k, fmt.Sprintf("_%04d.ndjson", i+1)) {
			t.Errorf("object %d has key %s", i+1, k)
		}
		if size := len(r.sink.objects[k]); size > api.MinObjectBytes+64<<10 {
			t.Errorf("object %s is %d bytes, over max_object_bytes plus one event", k, size)
		}
	}
}

// postLarge stores n events of about size bytes each.
func (r *rig) postLarge(n, size int) []string {
	r.t.Helper()
	var ids []string
	var evs []store.Event
	pad := strings.Repeat("x", size)
	for range n {
		r.seq++
		id := fmt.Sprintf("m%d", r.seq)
		ids = append(ids, id)
		body := fmt.Sprintf(`{"timestamp":%d,"eventName":"user.login","messageId":%q,"pad":%q}`, r.clock.Now().UnixMilli(), id, pad)
		evs = append(evs, store.Event{MessageID: id, EventName: "user.login", TimeMs: r.clock.Now().UnixMilli(), Body: []byte(body)})
	}
	if _, err := r.store.Append(context.Background(), []store.AppendBatch{{TenantID: r.tenant.ID, Events: evs}}); err != nil {
		r.t.Fatal(err)
	}
	return ids
}

// stored counts the tenant's events still in the store.
func (r *rig) stored() int64 {
	r.t.Helper()
	head, err := r.store.Head(context.Background(), r.tenant.ID)
	if err != nil {
		r.t.Fatal(err)
	}
	groups, err := r.store.GroupsBy(context.Background(), r.tenant.ID, 1, head, nil, 24*time.Hour)
	if err != nil {
		r.t.Fatal(err)
	}
	var n int64
	for _, g := range groups {
		n += g.Count
	}
	return n
}

func TestRetention(t *testing.T) {
	t.Run("delivered events go after the retention", func(t *testing.T) {
		r := newRig(t, "2026-11-25T10:00:00Z")
		r.destination(api.DestinationSpec{Interval: "1h"})
		r.post(5)
		r.advance("2026-11-25T11:00:00Z")
		r.expectDelivered([]string{"m1", "m2", "m3", "m4", "m5"})
		r.d.sweep(context.Background())
		if n := r.stored(); n != 5 {
			t.Fatalf("%d events left before the retention passed, want 5", n)
		}
		r.clock.Set(mustTime(t, "2026-12-02T10:00:01Z"))
		r.d.sweep(context.Background())
		if n := r.stored(); n != 0 {
			t.Fatalf("%d events left after the retention, want 0", n)
		}
	})
	t.Run("undelivered events stay for a paused destination", func(t *testing.T) {
		r := newRig(t, "2026-11-25T10:00:00Z")
		off := false
		r.destination(api.DestinationSpec{Interval: "1h", Enabled: &off})
		r.post(3)
		r.clock.Set(mustTime(t, "2026-12-25T10:00:00Z"))
		r.d.sweep(context.Background())
		if n := r.stored(); n != 3 {
			t.Fatalf("%d events left, want all 3 kept for the paused destination", n)
		}
	})
	t.Run("a tenant without destinations: expired and counted", func(t *testing.T) {
		r := newRig(t, "2026-11-25T10:00:00Z")
		r.post(4)
		r.clock.Set(mustTime(t, "2026-12-03T10:00:00Z"))
		r.d.sweep(context.Background())
		if n := r.stored(); n != 0 {
			t.Fatalf("%d events left, want 0", n)
		}
		if got := testutil.ToFloat64(r.metrics.EventsExpired.WithLabelValues("acme")); got != 4 {
			t.Fatalf("expired undelivered = %v, want 4", got)
		}
	})
}

// A stop while an object is being written lets the attempt finish and
// commit, instead of cutting the batch and leaving it for the next start.
func TestStopFinishesTheAttemptInFlight(t *testing.T) {
	r := newRig(t, "2026-11-25T10:00:00Z")
	r.sink.started, r.sink.delay = make(chan string, 8), 300*time.Millisecond
	dest := r.destination(api.DestinationSpec{Interval: "1m"})
	r.post(3)
	r.clock.Set(mustTime(t, "2026-11-25T10:01:00Z"))
	select {
	case <-r.sink.started:
	case <-time.After(time.Minute):
		t.Fatal("no upload started")
	}
	r.stop()
	got, err := r.store.GetDestination(context.Background(), r.tenant.ID, dest.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Cursor != 3 {
		t.Fatalf("cursor after stop = %d, want 3: the attempt in flight was cut", got.Cursor)
	}
	if _, err := r.store.PendingPlan(context.Background(), dest.ID); err == nil {
		t.Fatal("a plan is still pending after the stop")
	}
}

// loopOf is the loop of the destination id, nil when it has none.
func (d *Deliverer) loopOf(id string) *loop {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.loops[id]
}

// listCounter counts the Deliverer's destination listings and version
// reads, and signals each version read on polled.
type listCounter struct {
	store.Store
	mu       sync.Mutex
	lists    int
	versions int
	polled   chan struct{}
}

func (s *listCounter) ListDestinations(ctx context.Context, tenantID int64) ([]store.Destination, error) {
	s.mu.Lock()
	s.lists++
	s.mu.Unlock()
	return s.Store.ListDestinations(ctx, tenantID)
}

func (s *listCounter) DestinationsVersion(ctx context.Context) (int64, error) {
	s.mu.Lock()
	s.versions++
	s.mu.Unlock()
	select {
	case s.polled <- struct{}{}:
	default:
	}
	return s.Store.DestinationsVersion(ctx)
}

func (s *listCounter) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lists
}

// awaitPolls waits for n further version reads.
func (s *listCounter) awaitPolls(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-s.polled:
		case <-time.After(time.Minute): // a hang guard, not a budget
			t.Fatal("the Deliverer stopped polling the destinations' version")
		}
	}
}

// The poll lists the destinations only when their version moved: a
// destination written by another process (no Notify) is picked up, and
// polls in between read one row instead of every spec.
func TestPollListsOnlyAfterAChange(t *testing.T) {
	counter := &listCounter{polled: make(chan struct{}, 1)}
	r := newRigWrapped(t, "2026-03-01T10:00:30Z", func(s store.Store) store.Store { counter.Store = s; return counter }, nil)
	ctx := context.Background()
	spec := api.DestinationSpec{Bucket: "bucket", Region: "us-east-1", RoleARN: "arn:aws:iam::123456789012:role/r", Prefix: "audit", Interval: "1m", Backfill: "0"}
	if err := spec.Normalize(); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(spec)
	if _, err := r.store.CreateDestination(ctx, store.Destination{ID: "dst_1", TenantID: r.tenant.ID, Spec: data}); err != nil {
		t.Fatal(err)
	}
	// Picked up by a poll: nothing called Notify.
	for r.d.loopOf("dst_1") == nil {
		counter.awaitPolls(t, 1)
	}

	// Once the reconcile that found it is over, polls do not list.
	counter.awaitPolls(t, 2)
	before := counter.count()
	counter.awaitPolls(t, 3)
	if lists := counter.count() - before; lists != 0 {
		t.Fatalf("%d listings over 3 polls with nothing changed, want 0", lists)
	}

	// A change moves the version: the next poll lists and restarts the loop.
	spec.Prefix = "audit2"
	data, _ = json.Marshal(spec)
	if _, err := r.store.UpdateDestination(ctx, r.tenant.ID, "dst_1", data); err != nil {
		t.Fatal(err)
	}
	for r.d.prefixOf("dst_1") != "audit2" {
		counter.awaitPolls(t, 1)
	}
	if counter.count() == before {
		t.Fatal("the loop was restarted without a listing")
	}
}

// prefixOf is the prefix of the spec the destination's loop runs.
func (d *Deliverer) prefixOf(id string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if l := d.loops[id]; l != nil {
		return l.spec.Prefix
	}
	return ""
}

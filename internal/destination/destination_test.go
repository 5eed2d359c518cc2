package destination

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/clock/clocktest"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/store"
)

const testFailingAfter = 5 * time.Minute

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// fixture is a real SQLite store on a fake clock with one tenant.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	clock  *clocktest.Fake
	store  store.Store
	tenant store.Tenant
	seq    int
}

func newFixture(t *testing.T, start string) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), clock: clocktest.NewFake(mustTime(t, start))}
	st, err := store.Open(f.ctx, store.Config{SQLitePath: filepath.Join(t.TempDir(), "db"), Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.store = st
	if f.tenant, err = st.CreateTenant(f.ctx, "acme", "ext-acme"); err != nil {
		t.Fatal(err)
	}
	return f
}

// post stores n events, received at the fake clock's time.
func (f *fixture) post(n int) {
	f.t.Helper()
	var evs []store.Event
	for range n {
		f.seq++
		evs = append(evs, store.Event{MessageID: fmt.Sprintf("m%d", f.seq), EventName: "user.login", TimeMs: f.clock.Now().UnixMilli(), Body: []byte(`{}`)})
	}
	if _, err := f.store.Append(f.ctx, []store.AppendBatch{{TenantID: f.tenant.ID, Events: evs}}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) destination(id string, spec api.DestinationSpec, cursor int64) store.Destination {
	f.t.Helper()
	data, _ := json.Marshal(spec)
	d, err := f.store.CreateDestination(f.ctx, store.Destination{ID: id, TenantID: f.tenant.ID, Spec: data, Cursor: cursor})
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// status is the API status of id, read as the server reads it.
func (f *fixture) status(id string) api.DestinationStatus {
	f.t.Helper()
	dest, st, err := f.store.DestinationStatus(f.ctx, f.tenant.ID, id)
	if err != nil {
		f.t.Fatal(err)
	}
	spec, err := Decode(dest)
	if err != nil {
		f.t.Fatal(err)
	}
	out, err := Status(f.ctx, f.store, dest, st, spec, testFailingAfter, f.clock.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func TestDecode(t *testing.T) {
	off := false
	cases := []struct {
		name    string
		spec    string
		want    api.DestinationSpec
		wantErr string
	}{
		{"spec", `{"bucket":"b","region":"eu-west-1","enabled":false,"secret_access_key":"s"}`,
			api.DestinationSpec{Bucket: "b", Region: "eu-west-1", Enabled: &off, SecretAccessKey: "s"}, ""},
		{"not JSON", `{"bucket":`, api.DestinationSpec{}, `destination "dst_x": stored spec is unreadable`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode(store.Destination{ID: "dst_x", Spec: []byte(c.spec)})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Bucket != c.want.Bucket || got.Region != c.want.Region || got.SecretAccessKey != c.want.SecretAccessKey ||
				got.Enabled == nil || *got.Enabled != *c.want.Enabled {
				t.Fatalf("Decode = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestTargetFor(t *testing.T) {
	spec := api.DestinationSpec{
		Bucket: "b", Region: "eu-west-1", Prefix: "p", RoleARN: "arn:aws:iam::123456789012:role/r",
		AccessKeyID: "AKIA", SecretAccessKey: "s", Encryption: "aws:kms", KMSKeyARN: "arn:k",
		ACL: "bucket-owner-full-control", StorageClass: "GLACIER_IR", ExpectedBucketOwner: "123456789012",
	}
	want := s3sink.Target{
		Bucket: "b", Region: "eu-west-1", Prefix: "p", RoleARN: "arn:aws:iam::123456789012:role/r", ExternalID: "ext",
		AccessKeyID: "AKIA", SecretAccessKey: "s", Encryption: "aws:kms", KMSKeyARN: "arn:k",
		ACL: "bucket-owner-full-control", StorageClass: "GLACIER_IR", ExpectedBucketOwner: "123456789012",
	}
	if got := TargetFor(spec, "ext"); got != want {
		t.Fatalf("TargetFor = %+v\nwant %+v", got, want)
	}
}

func TestBackfillCursor(t *testing.T) {
	f := newFixture(t, "2026-11-25T10:00:00Z")
	f.post(2) // 10:00
	f.clock.Advance(50 * time.Minute)
	f.post(3) // 10:50
	f.clock.Advance(10 * time.Minute)
	cases := []struct {
		backfill string
		want     int64
		wantErr  bool
	}{
		{"0", 5, false},   // only new events
		{"", 0, true},     // Normalize sets the default before
		{"30m", 2, false}, // the 10:50 events
		{"1h", 0, false},  // everything
		{"7d", 0, false},
		{"soon", 0, true},
	}
	for _, c := range cases {
		got, err := BackfillCursor(f.ctx, f.store, f.tenant.ID, c.backfill, f.clock.Now())
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("BackfillCursor(%q) = %d, %v; want %d (error %v)", c.backfill, got, err, c.want, c.wantErr)
		}
	}
}

// Status shows the cursor and counters as stored, the lag in events and in
// seconds since the oldest undelivered event was stored, and the state.
func TestStatus(t *testing.T) {
	f := newFixture(t, "2026-11-25T10:00:00Z")
	f.post(4)
	f.destination("dst_1", api.DestinationSpec{Interval: "1m"}, 0)
	f.clock.Advance(90 * time.Second)

	st := f.status("dst_1")
	if st.State != api.StatePending || st.Cursor != 0 || st.LagEvents != 4 || st.LagSeconds != 90 || st.LastDeliveryAt != nil {
		t.Fatalf("before delivery: %+v", st)
	}

	p := store.Plan{DestinationID: "dst_1", FromSeq: 1, ToSeq: 3, WindowEnd: f.clock.Now(), Objects: []byte(`[]`)}
	if err := f.store.SavePlan(f.ctx, p); err != nil {
		t.Fatal(err)
	}
	delivered := f.clock.Now()
	if err := f.store.CommitPlan(f.ctx, p, store.Delivered{Events: 3, Objects: 1, Bytes: 30, At: delivered}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	failed := f.clock.Now()
	if err := f.store.RecordAttempt(f.ctx, "dst_1", store.Attempt{At: failed, Err: "SlowDown"}); err != nil {
		t.Fatal(err)
	}
	st = f.status("dst_1")
	if st.State != api.StateRetrying || st.Cursor != 3 || st.LagEvents != 1 || st.LagSeconds != 150 ||
		st.EventsDelivered != 3 || st.ObjectsDelivered != 1 || st.BytesDelivered != 30 ||
		!st.LastDeliveryAt.Equal(delivered) || !st.LastAttemptAt.Equal(failed) || !st.FailingSince.Equal(failed) ||
		st.LastError != "SlowDown" {
		t.Fatalf("after a delivery and a failure: %+v", st)
	}
	if st.LastDeliveryAt.Location() != time.UTC {
		t.Errorf("times are in %s, want UTC", st.LastDeliveryAt.Location())
	}

	f.clock.Advance(testFailingAfter)
	if st := f.status("dst_1"); st.State != api.StateFailing {
		t.Fatalf("failing for failing_after: state %q, want failing", st.State)
	}
}

// States gives the metrics the same word the API gives, for every tenant's
// destinations.
func TestStates(t *testing.T) {
	f := newFixture(t, "2026-11-25T10:00:00Z")
	other, err := f.store.CreateTenant(f.ctx, "globex", "ext-globex")
	if err != nil {
		t.Fatal(err)
	}
	off := false
	f.destination("dst_new", api.DestinationSpec{}, 0)
	f.destination("dst_paused", api.DestinationSpec{Enabled: &off}, 0)
	if _, err := f.store.CreateDestination(f.ctx, store.Destination{ID: "dst_other", TenantID: other.ID, Spec: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.RecordAttempt(f.ctx, "dst_other", store.Attempt{At: f.clock.Now(), Err: "AccessDenied"}); err != nil {
		t.Fatal(err)
	}
	// A spec that cannot be read has no state rather than a wrong one.
	if _, err := f.store.CreateDestination(f.ctx, store.Destination{ID: "dst_broken", TenantID: f.tenant.ID, Spec: []byte(`{`)}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(testFailingAfter)

	got, err := States(f.ctx, f.store, testFailingAfter, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]metrics.DestinationState{
		"dst_new":    {Tenant: "acme", Destination: "dst_new", State: api.StatePending},
		"dst_paused": {Tenant: "acme", Destination: "dst_paused", State: api.StatePaused},
		"dst_other":  {Tenant: "globex", Destination: "dst_other", State: api.StateFailing},
	}
	if len(got) != len(want) {
		t.Fatalf("States = %+v, want %+v", got, want)
	}
	for _, s := range got {
		if want[s.Destination] != s {
			t.Errorf("state of %s = %+v, want %+v", s.Destination, s, want[s.Destination])
		}
	}
}

func TestStateOf(t *testing.T) {
	now := mustTime(t, "2026-11-25T10:00:00Z")
	off, on := false, true
	cases := []struct {
		name string
		st   store.Status
		spec api.DestinationSpec
		want string
	}{
		{"new", store.Status{}, api.DestinationSpec{}, api.StatePending},
		{"empty windows only", store.Status{LastAttemptAt: now}, api.DestinationSpec{Enabled: &on}, api.StatePending},
		{"never delivered, failing briefly", store.Status{LastAttemptAt: now, LastError: "x", FailingSince: now.Add(-time.Minute)}, api.DestinationSpec{}, api.StateRetrying},
		{"never delivered, failing long", store.Status{LastAttemptAt: now, LastError: "x", FailingSince: now.Add(-testFailingAfter)}, api.DestinationSpec{}, api.StateFailing},
		{"delivered", store.Status{LastAttemptAt: now, LastDeliveryAt: now}, api.DestinationSpec{}, api.StateHealthy},
		{"delivered then failing", store.Status{LastDeliveryAt: now.Add(-time.Hour), LastError: "x", FailingSince: now.Add(-time.Hour)}, api.DestinationSpec{}, api.StateFailing},
		{"paused while failing", store.Status{LastError: "x", FailingSince: now.Add(-time.Hour)}, api.DestinationSpec{Enabled: &off}, api.StatePaused},
	}
	for _, c := range cases {
		if got := stateOf(c.st, c.spec, testFailingAfter, now); got != c.want {
			t.Errorf("%s: stateOf = %q, want %q", c.name, got, c.want)
		}
	}
}

// The lag of a destination read with its tenant's head and oldest
// undelivered event: events behind the head, seconds since the oldest of
// them was stored, nothing for a destination at the head.
func TestSummaryLag(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name            string
		cursor, head    int64
		oldest          time.Time
		events, seconds int64
	}{
		{"behind", 10, 25, now.Add(-90 * time.Second), 15, 90},
		{"at the head", 25, 25, time.Time{}, 0, 0},
		{"oldest not found (deleted by retention)", 10, 25, time.Time{}, 15, 0},
		{"oldest in the future (clock skew)", 10, 11, now.Add(time.Second), 1, 0},
		{"cursor past the head", 30, 25, time.Time{}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sum := store.DestinationSummary{Destination: store.Destination{Cursor: tt.cursor}, Head: tt.head, OldestUndelivered: tt.oldest}
			events, seconds := SummaryLag(sum, now)
			if events != tt.events || seconds != tt.seconds {
				t.Fatalf("SummaryLag = %d events, %d s; want %d, %d", events, seconds, tt.events, tt.seconds)
			}
		})
	}
}

// Package storetest is the contract every store engine must meet: one suite of
// subtests exercising each method of store.Store and the invariants delivery
// depends on. An engine's test runs it with a function that opens a new,
// empty store:
//
//	func TestSQLiteContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, o storetest.Options) store.Store {
//			s, err := store.Open(ctx, store.Config{SQLitePath: …, Now: o.Now})
//			…
//		})
//	}
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/clock/clocktest"
	"github.com/auditexport/auditexport/internal/store"
)

// Options is what the suite asks of a new store.
type Options struct {
	// Now is the clock the store must stamp created, updated and received
	// times with. The suite moves it by hand.
	Now func() time.Time
}

// Opener opens a new, empty store that uses o.Now as its clock. The suite
// closes the store.
type Opener func(t *testing.T, o Options) store.Store

// t0 is where the suite's clock starts: a time with milliseconds, so that a
// store that loses them is caught.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123e6, time.UTC)

const day = 24 * time.Hour

// Run runs the contract against stores made by open.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f *fixture)
	}{
		{"Tenants", testTenants},
		{"Tokens", testTokens},
		{"AppendSequences", testAppendSequences},
		{"AppendEmpty", testAppendEmpty},
		{"AppendUnknownTenantStoresNothing", testAppendUnknownTenant},
		{"AppendBodiesByteForByte", testAppendBodies},
		{"Duplicates", testDuplicates},
		{"DuplicatesAfterRetention", testDuplicatesAfterRetention},
		{"ConcurrentAppendersAndReader", testConcurrentAppendersAndReader},
		{"OldestAfter", testOldestAfter},
		{"LastSeqBefore", testLastSeqBefore},
		{"GroupsByDayAndScan", testGroupsByDayAndScan},
		{"GroupsByHour", testGroupsByHour},
		{"ScanLargeGroup", testScanLargeGroup},
		{"ScanMixedGroup", testScanMixedGroup},
		{"ScanStopsOnError", testScanStopsOnError},
		{"DeleteEvents", testDeleteEvents},
		{"Destinations", testDestinations},
		{"DeleteDestinationRemovesStatusAndPlan", testDeleteDestinationCascades},
		{"DestinationsVersion", testDestinationsVersion},
		{"Plans", testPlans},
		{"UpdatePlan", testUpdatePlan},
		{"CommitPlanOnce", testCommitPlanOnce},
		{"RecordAttempt", testRecordAttempt},
		{"RecordAttemptConcurrentWithCommits", testRecordAttemptConcurrentWithCommits},
		{"DestinationStatus", testDestinationStatus},
		{"DestinationStatusConsistentWithCommits", testDestinationStatusConsistent},
		{"DestinationSummaries", testDestinationSummaries},
	}
	tests = append(tests, leaseTests...)
	tests = append(tests, digestTests...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newFixture(t, open))
		})
	}
	t.Run("Close", func(t *testing.T) { testClose(t, open) })
}

// fixture is one new store and the clock it runs on.
type fixture struct {
	s     store.Store
	clock *clocktest.Fake
	ctx   context.Context
}

func newFixture(t *testing.T, open Opener) *fixture {
	t.Helper()
	c := clocktest.NewFake(t0)
	s := open(t, Options{Now: c.Now})
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &fixture{s: s, clock: c, ctx: context.Background()}
}

func (f *fixture) tenant(t *testing.T, name string) store.Tenant {
	t.Helper()
	tn, err := f.s.CreateTenant(f.ctx, name, "ext-"+name)
	if err != nil {
		t.Fatalf("CreateTenant(%q): %v", name, err)
	}
	return tn
}

func (f *fixture) append(t *testing.T, batches ...store.AppendBatch) []store.AppendResult {
	t.Helper()
	res, err := f.s.Append(f.ctx, batches)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return res
}

func (f *fixture) head(t *testing.T, tenantID int64) int64 {
	t.Helper()
	h, err := f.s.Head(f.ctx, tenantID)
	if err != nil {
		t.Fatalf("Head(%d): %v", tenantID, err)
	}
	return h
}

func (f *fixture) destination(t *testing.T, tenantID int64, id string, cursor int64) store.Destination {
	t.Helper()
	d, err := f.s.CreateDestination(f.ctx, store.Destination{ID: id, TenantID: tenantID, Spec: []byte(`{}`), Cursor: cursor})
	if err != nil {
		t.Fatalf("CreateDestination(%q): %v", id, err)
	}
	return d
}

func (f *fixture) status(t *testing.T, destID string) store.Status {
	t.Helper()
	st, err := f.s.GetStatus(f.ctx, destID)
	if err != nil {
		t.Fatalf("GetStatus(%q): %v", destID, err)
	}
	return st
}

// logged is an event as read back through GroupsBy and Scan.
type logged struct {
	Seq  int64
	Name string
	Body string
}

// log reads the tenant's events with from <= seq <= to through GroupsBy and
// Scan, in sequence order: the way delivery reads them.
func (f *fixture) log(t *testing.T, tenantID, from, to int64) []logged {
	t.Helper()
	groups, err := f.s.GroupsBy(f.ctx, tenantID, from, to, nil, day)
	if err != nil {
		t.Fatalf("GroupsBy: %v", err)
	}
	bySeq := map[int64]logged{}
	for _, g := range groups {
		var n int64
		err := f.s.Scan(f.ctx, tenantID, g, func(ev store.StoredEvent) error {
			bySeq[ev.Seq] = logged{ev.Seq, ev.EventName, string(ev.Body)}
			n++
			return nil
		})
		if err != nil {
			t.Fatalf("Scan(%+v): %v", g, err)
		}
		if n != g.Count {
			t.Fatalf("Scan(%+v) read %d events, the group counts %d", g, n, g.Count)
		}
	}
	var out []logged
	for seq := from; seq <= to && len(out) < len(bySeq); seq++ {
		if ev, ok := bySeq[seq]; ok {
			out = append(out, ev)
		}
	}
	return out
}

// logIDs is the message ids of the tenant's events up to its head, in
// sequence order; the suite's bodies are the message ids.
func (f *fixture) logIDs(t *testing.T, tenantID int64) []string {
	t.Helper()
	var ids []string
	for _, ev := range f.log(t, tenantID, 1, f.head(t, tenantID)) {
		ids = append(ids, ev.Body)
	}
	return ids
}

// ev makes an event whose body is its message id, so that what is read back
// tells which event it is.
func ev(id, name string, timeMs int64) store.Event {
	return store.Event{MessageID: id, EventName: name, TimeMs: timeMs, Body: []byte(id)}
}

func batch(tenantID int64, events ...store.Event) store.AppendBatch {
	return store.AppendBatch{TenantID: tenantID, Events: events}
}

func hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func testTenants(t *testing.T, f *fixture) {
	acme, err := f.s.CreateTenant(f.ctx, "acme", "ext-1")
	if err != nil {
		t.Fatal(err)
	}
	want := store.Tenant{ID: acme.ID, Name: "acme", ExternalID: "ext-1", CreatedAt: t0}
	if acme.ID == 0 || acme != want {
		t.Errorf("CreateTenant = %+v, want %+v with an id", acme, want)
	}
	f.clock.Advance(time.Second)
	globex := f.tenant(t, "globex")
	if globex.ID == acme.ID || !globex.CreatedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("second tenant = %+v", globex)
	}

	if _, err := f.s.CreateTenant(f.ctx, "acme", "ext-2"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateTenant with a taken name: err = %v, want ErrConflict", err)
	}

	lookups := []struct {
		name string
		call func() (store.Tenant, error)
		want store.Tenant
		err  error
	}{
		{"by name", func() (store.Tenant, error) { return f.s.TenantByName(f.ctx, "acme") }, acme, nil},
		{"by id", func() (store.Tenant, error) { return f.s.TenantByID(f.ctx, globex.ID) }, globex, nil},
		{"unknown name", func() (store.Tenant, error) { return f.s.TenantByName(f.ctx, "nope") }, store.Tenant{}, store.ErrNotFound},
		{"unknown id", func() (store.Tenant, error) { return f.s.TenantByID(f.ctx, globex.ID+100) }, store.Tenant{}, store.ErrNotFound},
	}
	for _, l := range lookups {
		got, err := l.call()
		if !errors.Is(err, l.err) || (l.err == nil && got != l.want) {
			t.Errorf("%s = %+v, %v; want %+v, %v", l.name, got, err, l.want, l.err)
		}
	}

	all, err := f.s.ListTenants(f.ctx)
	if err != nil || !reflect.DeepEqual(all, []store.Tenant{acme, globex}) {
		t.Errorf("ListTenants = %+v, %v; want acme, globex", all, err)
	}
	if h := f.head(t, acme.ID); h != 0 {
		t.Errorf("Head of a new tenant = %d, want 0", h)
	}
	if _, err := f.s.Head(f.ctx, globex.ID+100); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Head(unknown tenant): err = %v, want ErrNotFound", err)
	}
}

func testTokens(t *testing.T, f *fixture) {
	acme := f.tenant(t, "acme")
	tests := []struct {
		name    string
		token   store.Token
		wantErr error
	}{
		{"tenant manage token", store.Token{Hash: hash("a"), Scope: "manage", TenantID: acme.ID}, nil},
		{"global ingest token", store.Token{Hash: hash("b"), Scope: "ingest"}, nil},
		{"taken hash", store.Token{Hash: hash("a"), Scope: "ingest"}, store.ErrConflict},
		{"unknown tenant", store.Token{Hash: hash("c"), Scope: "manage", TenantID: acme.ID + 100}, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created, err := f.s.CreateToken(f.ctx, tt.token)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("CreateToken: err = %v, want %v", err, tt.wantErr)
				}
				if got, err := f.s.TokenByHash(f.ctx, tt.token.Hash); err == nil && got.Scope == tt.token.Scope && got.TenantID == tt.token.TenantID {
					t.Errorf("the refused token was stored: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.token
			want.ID, want.CreatedAt = created.ID, t0
			if created.ID == 0 || !reflect.DeepEqual(created, want) {
				t.Errorf("CreateToken = %+v, want %+v with an id", created, want)
			}
			got, err := f.s.TokenByHash(f.ctx, tt.token.Hash)
			if err != nil || !reflect.DeepEqual(got, created) {
				t.Errorf("TokenByHash = %+v, %v; want %+v", got, err, created)
			}
		})
	}
	if _, err := f.s.TokenByHash(f.ctx, hash("nope")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByHash(unknown): err = %v, want ErrNotFound", err)
	}
}

func testAppendSequences(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	b := f.tenant(t, "b")

	// Each step is one Append call; the log and heads accumulate.
	steps := []struct {
		name    string
		batches []store.AppendBatch
		want    []store.AppendResult
	}{
		{
			name: "two tenants, two batches of one tenant",
			batches: []store.AppendBatch{
				batch(a.ID, ev("a1", "login", 1), ev("a2", "login", 2)),
				batch(b.ID, ev("b1", "login", 1)),
				batch(a.ID, ev("a3", "logout", 3)),
			},
			want: []store.AppendResult{
				{Stored: 2, FirstSeq: 1, LastSeq: 2},
				{Stored: 1, FirstSeq: 1, LastSeq: 1},
				{Stored: 1, FirstSeq: 3, LastSeq: 3},
			},
		},
		{
			name: "repeats inside the call are duplicates and use no sequence",
			batches: []store.AppendBatch{
				batch(a.ID, ev("a4", "login", 4), ev("a4", "login", 4), ev("a5", "login", 5)),
				batch(a.ID, ev("a5", "login", 5), ev("a6", "login", 6)),
			},
			want: []store.AppendResult{
				{Stored: 2, Duplicates: 1, FirstSeq: 4, LastSeq: 5},
				{Stored: 1, Duplicates: 1, FirstSeq: 6, LastSeq: 6},
			},
		},
		{
			name: "duplicates of earlier calls; the same id in another tenant is new",
			batches: []store.AppendBatch{
				batch(a.ID, ev("a1", "login", 1), ev("a7", "login", 7), ev("a2", "login", 2)),
				batch(b.ID, ev("a1", "login", 1)),
			},
			want: []store.AppendResult{
				{Stored: 1, Duplicates: 2, FirstSeq: 7, LastSeq: 7},
				{Stored: 1, FirstSeq: 2, LastSeq: 2},
			},
		},
		{
			name: "only duplicates and an empty batch",
			batches: []store.AppendBatch{
				batch(b.ID, ev("b1", "login", 1)),
				batch(a.ID),
			},
			want: []store.AppendResult{{Duplicates: 1}, {}},
		},
	}
	for _, st := range steps {
		got := f.append(t, st.batches...)
		if !reflect.DeepEqual(got, st.want) {
			t.Errorf("%s: Append = %+v, want %+v", st.name, got, st.want)
		}
	}

	wantLogs := []struct {
		tenant int64
		ids    []string
	}{
		{a.ID, []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7"}},
		{b.ID, []string{"b1", "a1"}},
	}
	for _, w := range wantLogs {
		if h := f.head(t, w.tenant); h != int64(len(w.ids)) {
			t.Errorf("Head(%d) = %d, want %d", w.tenant, h, len(w.ids))
		}
		if got := f.logIDs(t, w.tenant); !reflect.DeepEqual(got, w.ids) {
			t.Errorf("tenant %d log = %v, want %v", w.tenant, got, w.ids)
		}
	}
}

func testAppendEmpty(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	for _, batches := range [][]store.AppendBatch{nil, {batch(a.ID)}} {
		got, err := f.s.Append(f.ctx, batches)
		if err != nil || len(got) != len(batches) || (len(got) == 1 && got[0] != (store.AppendResult{})) {
			t.Errorf("Append(%v) = %+v, %v; want one zero result per batch", batches, got, err)
		}
	}
	if h := f.head(t, a.ID); h != 0 {
		t.Errorf("Head after empty appends = %d, want 0", h)
	}
}

func testAppendUnknownTenant(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	unknown := a.ID + 100
	// The known tenant's batch comes first and last: whichever order an
	// engine works in, nothing of the call may be stored.
	_, err := f.s.Append(f.ctx, []store.AppendBatch{
		batch(a.ID, ev("a1", "login", 1)),
		batch(unknown, ev("x1", "login", 1)),
		batch(a.ID, ev("a2", "login", 2)),
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Append with an unknown tenant: err = %v, want ErrNotFound", err)
	}
	if h := f.head(t, a.ID); h != 0 {
		t.Errorf("head = %d after a failed call, want 0", h)
	}
	if got := f.log(t, a.ID, 1, 10); len(got) != 0 {
		t.Errorf("the failed call stored %v", got)
	}
	// The failed call left no trace: the same events are new now.
	res := f.append(t, batch(a.ID, ev("a1", "login", 1)))
	if want := (store.AppendResult{Stored: 1, FirstSeq: 1, LastSeq: 1}); res[0] != want {
		t.Errorf("Append after the failed call = %+v, want %+v", res[0], want)
	}
}

func testAppendBodies(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	bodies := [][]byte{
		[]byte(`{"b":1,  "a":2.50, "n":12345678901234567890}`), // odd spacing and numbers
		[]byte("{\"x\":\"caf\u00e9 \\u00e9\"}\n"),
		{0x00, 0xff, 0x7b, 0x0a}, // not even UTF-8
		{},
		nil,
		bytes.Repeat([]byte("x"), 256<<10), // larger than a database page
	}
	var events []store.Event
	for i, b := range bodies {
		events = append(events, store.Event{MessageID: fmt.Sprint(i), EventName: "e", TimeMs: 1, Body: b})
	}
	f.append(t, batch(a.ID, events...))

	got := f.log(t, a.ID, 1, int64(len(bodies)))
	if len(got) != len(bodies) {
		t.Fatalf("read %d events back, want %d", len(got), len(bodies))
	}
	for i, ev := range got {
		if !bytes.Equal([]byte(ev.Body), bodies[i]) {
			t.Errorf("body %d = %.40q (%d bytes), want %.40q (%d bytes)", i, ev.Body, len(ev.Body), bodies[i], len(bodies[i]))
		}
	}
}

// A duplicate is a retry: the same messageId and the same timestamp. The same
// messageId with another timestamp is another event.
func testDuplicates(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	steps := []struct {
		events []store.Event
		want   store.AppendResult
	}{
		{[]store.Event{ev("m-1", "x", 1000), ev("m-1", "x", 1000), ev("m-1", "x", 2000)},
			store.AppendResult{Stored: 2, Duplicates: 1, FirstSeq: 1, LastSeq: 2}},
		// The event name is not part of the key: a retry is the same event.
		{[]store.Event{ev("m-1", "y", 1000), ev("m-2", "x", 1000), ev("m-1", "x", 3000)},
			store.AppendResult{Stored: 2, Duplicates: 1, FirstSeq: 3, LastSeq: 4}},
	}
	for i, st := range steps {
		if got := f.append(t, batch(a.ID, st.events...)); got[0] != st.want {
			t.Errorf("step %d: Append = %+v, want %+v", i, got[0], st.want)
		}
	}
}

// Duplicates are recognised while the first copy is retained: once retention
// deleted it, a resend is stored again, as a new event at the end of the log.
func testDuplicatesAfterRetention(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	f.append(t, batch(a.ID, ev("old", "x", 1), ev("kept", "x", 2)))
	f.clock.Advance(time.Hour)
	f.append(t, batch(a.ID, ev("new", "x", 3)))

	n, err := f.s.DeleteEvents(f.ctx, a.ID, 3, t0.Add(time.Minute), 1)
	if err != nil || n != 1 {
		t.Fatalf("DeleteEvents = %d, %v; want 1", n, err)
	}
	res := f.append(t, batch(a.ID, ev("old", "x", 1), ev("kept", "x", 2), ev("new", "x", 3)))
	if want := (store.AppendResult{Stored: 1, Duplicates: 2, FirstSeq: 4, LastSeq: 4}); res[0] != want {
		t.Errorf("resend after retention = %+v, want %+v (only the deleted event stored again)", res[0], want)
	}
	if got, want := f.logIDs(t, a.ID), []string{"kept", "new", "old"}; !reflect.DeepEqual(got, want) {
		t.Errorf("log = %v, want %v", got, want)
	}
}

// Many appenders for one tenant and a reader following the head: what the
// reader reads up to a head it saw is always dense (1..head, no gap), so no
// event can later appear below a head it saw. This is what lets delivery
// advance its cursor to a head without skipping an event a slower commit
// was still writing.
func testConcurrentAppendersAndReader(t *testing.T, f *fixture) {
	const (
		writers  = 8
		calls    = 12
		perBatch = 20
	)
	a := f.tenant(t, "a")
	ctx, cancel := context.WithTimeout(f.ctx, 5*time.Minute) // hang guard
	defer cancel()

	type result struct {
		writer, call int
		r            store.AppendResult
	}
	results := make(chan result, writers*calls)
	errs := make(chan error, writers+1)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := 0; c < calls; c++ {
				var events []store.Event
				for i := 0; i < perBatch; i++ {
					events = append(events, ev(fmt.Sprintf("w%d-c%d-%d", w, c, i), "e", 1))
				}
				// Every writer also sends an event other writers send:
				// it must be stored once.
				events = append(events, ev(fmt.Sprintf("shared-%d", c), "e", 1))
				res, err := f.s.Append(ctx, []store.AppendBatch{batch(a.ID, events...)})
				if err != nil {
					errs <- fmt.Errorf("writer %d call %d: %w", w, c, err)
					return
				}
				results <- result{w, c, res[0]}
			}
		}()
	}
	writing := make(chan struct{})
	go func() { wg.Wait(); close(writing) }()

	var readerWG sync.WaitGroup
	readerWG.Add(1)
	reads := 0
	go func() {
		defer readerWG.Done()
		var last int64
		for done := false; !done; {
			select {
			case <-writing:
				done = true // one more read after the last commit
			default:
			}
			h, err := ReadDense(ctx, f.s, a.ID)
			if err != nil {
				errs <- err
				return
			}
			if h < last {
				errs <- fmt.Errorf("head went back from %d to %d", last, h)
				return
			}
			last = h
			reads++
		}
	}()
	readerWG.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	total := int64(writers*calls*perBatch + calls)
	seen := make(map[int64]bool)
	lastOfWriter := make(map[int]int64)
	var stored, dups int64
	for r := range results {
		stored += int64(r.r.Stored)
		dups += int64(r.r.Duplicates)
		if r.r.LastSeq-r.r.FirstSeq+1 != int64(r.r.Stored) {
			t.Errorf("result %+v: range does not match the count", r.r)
		}
		for seq := r.r.FirstSeq; seq <= r.r.LastSeq && seq <= total; seq++ {
			if seen[seq] {
				t.Errorf("seq %d handed out twice", seq)
			}
			seen[seq] = true
		}
		// Results arrive in each writer's call order; its later calls
		// committed later and so got later numbers.
		if r.r.FirstSeq <= lastOfWriter[r.writer] {
			t.Errorf("writer %d call %d got seq %d after %d: not in commit order", r.writer, r.call, r.r.FirstSeq, lastOfWriter[r.writer])
		}
		lastOfWriter[r.writer] = r.r.LastSeq
	}
	if stored != total || dups != int64((writers-1)*calls) {
		t.Errorf("stored %d, duplicates %d; want %d, %d", stored, dups, total, (writers-1)*calls)
	}
	if h := f.head(t, a.ID); h != total {
		t.Errorf("final head = %d, want %d", h, total)
	}
	t.Logf("the reader read the log %d times while %d writers appended", reads, writers)
}

// ReadDense reads the tenant's head, then every event up to it through
// GroupsBy and Scan, and returns an error unless what it read is exactly the
// sequence numbers 1..head. It returns the head. Tests of several agents
// sharing a database use it while they append.
func ReadDense(ctx context.Context, s store.Store, tenantID int64) (int64, error) {
	h, err := s.Head(ctx, tenantID)
	if err != nil || h == 0 {
		return h, err
	}
	groups, err := s.GroupsBy(ctx, tenantID, 1, h, nil, day)
	if err != nil {
		return 0, err
	}
	var count int64
	next := int64(1)
	for _, g := range groups {
		count += g.Count
		err := s.Scan(ctx, tenantID, g, func(ev store.StoredEvent) error {
			if ev.Seq != next {
				return fmt.Errorf("read up to head %d: seq %d where %d was due (gap or repeat)", h, ev.Seq, next)
			}
			next++
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	if count != h || next != h+1 {
		return 0, fmt.Errorf("head %d but the groups up to it count %d events and Scan read %d", h, count, next-1)
	}
	return h, nil
}

func testOldestAfter(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	got, err := f.s.OldestAfter(f.ctx, a.ID, 0)
	if err != nil || !got.IsZero() {
		t.Errorf("OldestAfter on an empty log = %v, %v; want zero", got, err)
	}
	f.append(t, batch(a.ID, ev("1", "e", 1), ev("2", "e", 2)))
	t1 := t0.Add(time.Minute)
	f.clock.Set(t1)
	f.append(t, batch(a.ID, ev("3", "e", 3)))

	// The ingest time, not the event's own timestamp (which is 1970).
	tests := []struct {
		seq  int64
		want time.Time
	}{
		{0, t0}, {1, t0}, {2, t1}, {3, time.Time{}}, {10, time.Time{}},
	}
	for _, tt := range tests {
		got, err := f.s.OldestAfter(f.ctx, a.ID, tt.seq)
		if err != nil || !got.Equal(tt.want) || (!got.IsZero() && got.Location() != time.UTC) {
			t.Errorf("OldestAfter(%d) = %v, %v; want %v (UTC)", tt.seq, got, err, tt.want)
		}
	}
}

func testLastSeqBefore(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	if got, err := f.s.LastSeqBefore(f.ctx, a.ID, 0, t0); err != nil || got != 0 {
		t.Errorf("LastSeqBefore on an empty log = %d, %v; want 0", got, err)
	}
	f.append(t, batch(a.ID, ev("1", "e", 1), ev("2", "e", 1), ev("3", "e", 1)))
	t1 := t0.Add(time.Minute)
	f.clock.Set(t1)
	f.append(t, batch(a.ID, ev("4", "e", 1), ev("5", "e", 1)))

	tests := []struct {
		name  string
		after int64
		at    time.Time
		want  int64
	}{
		{"between the two appends", 0, t0.Add(30 * time.Second), 3},
		{"at the second append's time", 0, t1, 3},
		{"the scan starts after `after`", 4, t0.Add(30 * time.Second), 4},
		{"at the first append's time", 0, t0, 0},
		{"before everything", 0, t0.Add(-time.Hour), 0},
		{"after everything", 0, t1.Add(time.Hour), 5},
		{"after everything, from the head", 5, t1.Add(time.Hour), 5},
	}
	for _, tt := range tests {
		got, err := f.s.LastSeqBefore(f.ctx, a.ID, tt.after, tt.at)
		if err != nil || got != tt.want {
			t.Errorf("%s: LastSeqBefore(after %d, %v) = %d, %v; want %d", tt.name, tt.after, tt.at, got, err, tt.want)
		}
	}
	if _, err := f.s.LastSeqBefore(f.ctx, a.ID+100, 0, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LastSeqBefore(unknown tenant): err = %v, want ErrNotFound", err)
	}
}

func testGroupsByDayAndScan(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	b := f.tenant(t, "b")
	dayMs := func(d int) int64 { return int64(d) * day.Milliseconds() }
	// seq 1..9 for tenant a, interleaving names and days.
	f.append(t,
		batch(a.ID,
			ev("1", "login", dayMs(100)+5),
			ev("2", "logout", dayMs(100)+6),
			ev("3", "login", dayMs(101)-1), // last ms of day 100
			ev("4", "login", dayMs(101)),   // first ms of day 101
			ev("5", "logout", dayMs(100)+7),
			ev("6", "login", dayMs(100)+8), // late event for day 100
			ev("7", "delete", dayMs(101)+9),
			ev("8", "login", -1), // 1969-12-31
			ev("9", "logout", dayMs(101)+10),
		),
		batch(b.ID, ev("b1", "login", dayMs(100))),
	)

	utcDay := func(d int) time.Time { return time.Unix(0, 0).UTC().AddDate(0, 0, d) }
	tests := []struct {
		name     string
		from, to int64
		names    []string
		want     []store.Group
		wantSeqs [][]int64
	}{
		{
			name: "everything",
			from: 1, to: 9,
			want: []store.Group{
				{EventName: "login", Day: utcDay(100), FirstSeq: 1, LastSeq: 6, Count: 3},
				{EventName: "logout", Day: utcDay(100), FirstSeq: 2, LastSeq: 5, Count: 2},
				{EventName: "login", Day: utcDay(101), FirstSeq: 4, LastSeq: 4, Count: 1},
				{EventName: "delete", Day: utcDay(101), FirstSeq: 7, LastSeq: 7, Count: 1},
				{EventName: "login", Day: utcDay(-1), FirstSeq: 8, LastSeq: 8, Count: 1},
				{EventName: "logout", Day: utcDay(101), FirstSeq: 9, LastSeq: 9, Count: 1},
			},
			wantSeqs: [][]int64{{1, 3, 6}, {2, 5}, {4}, {7}, {8}, {9}},
		},
		{
			name: "a sub-range",
			from: 3, to: 5,
			want: []store.Group{
				{EventName: "login", Day: utcDay(100), FirstSeq: 3, LastSeq: 3, Count: 1},
				{EventName: "login", Day: utcDay(101), FirstSeq: 4, LastSeq: 4, Count: 1},
				{EventName: "logout", Day: utcDay(100), FirstSeq: 5, LastSeq: 5, Count: 1},
			},
			wantSeqs: [][]int64{{3}, {4}, {5}},
		},
		{
			name: "filtered by name",
			from: 1, to: 9,
			names: []string{"logout", "delete"},
			want: []store.Group{
				{EventName: "logout", Day: utcDay(100), FirstSeq: 2, LastSeq: 5, Count: 2},
				{EventName: "delete", Day: utcDay(101), FirstSeq: 7, LastSeq: 7, Count: 1},
				{EventName: "logout", Day: utcDay(101), FirstSeq: 9, LastSeq: 9, Count: 1},
			},
			wantSeqs: [][]int64{{2, 5}, {7}, {9}},
		},
		{name: "a name with no events", from: 1, to: 9, names: []string{"nope"}},
		{name: "an empty range", from: 10, to: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			groups, err := f.s.GroupsBy(f.ctx, a.ID, tt.from, tt.to, tt.names, day)
			if err != nil {
				t.Fatal(err)
			}
			if len(groups) != 0 || len(tt.want) != 0 {
				if !reflect.DeepEqual(groups, tt.want) {
					t.Fatalf("GroupsBy =\n%+v\nwant\n%+v", groups, tt.want)
				}
			}
			for i, g := range groups {
				if seqs := scanSeqs(t, f, a.ID, g); !reflect.DeepEqual(seqs, tt.wantSeqs[i]) {
					t.Errorf("Scan(%+v) seqs = %v, want %v", g, seqs, tt.wantSeqs[i])
				}
			}
		})
	}

	// The other tenant's events are kept apart, even where sequence
	// numbers, names and days coincide.
	groups, err := f.s.GroupsBy(f.ctx, b.ID, 1, 9, nil, day)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Group{{EventName: "login", Day: utcDay(100), FirstSeq: 1, LastSeq: 1, Count: 1}}
	if !reflect.DeepEqual(groups, want) {
		t.Errorf("GroupsBy(b) = %+v, want %+v", groups, want)
	}
	if seqs := scanSeqs(t, f, b.ID, groups[0]); !reflect.DeepEqual(seqs, []int64{1}) {
		t.Errorf("Scan(b) = %v, want [1]", seqs)
	}
}

// scanSeqs scans g and returns the sequence numbers read, checking that each
// event has the group's name and the body it was stored with.
func scanSeqs(t *testing.T, f *fixture, tenantID int64, g store.Group) []int64 {
	t.Helper()
	var seqs []int64
	err := f.s.Scan(f.ctx, tenantID, g, func(e store.StoredEvent) error {
		if e.EventName != g.EventName {
			t.Errorf("Scan(%+v) gave an event named %q", g, e.EventName)
		}
		seqs = append(seqs, e.Seq)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%+v): %v", g, err)
	}
	return seqs
}

func testGroupsByHour(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var events []store.Event
	for i, off := range []time.Duration{5 * time.Minute, 59 * time.Minute, 61 * time.Minute, 3 * time.Hour} {
		events = append(events, ev(fmt.Sprint(i), "x", base.Add(off).UnixMilli()))
	}
	f.append(t, batch(a.ID, events...))

	groups, err := f.s.GroupsBy(f.ctx, a.ID, 1, 4, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Group{
		{EventName: "x", Day: base, Span: time.Hour, FirstSeq: 1, LastSeq: 2, Count: 2},
		{EventName: "x", Day: base.Add(time.Hour), Span: time.Hour, FirstSeq: 3, LastSeq: 3, Count: 1},
		{EventName: "x", Day: base.Add(3 * time.Hour), Span: time.Hour, FirstSeq: 4, LastSeq: 4, Count: 1},
	}
	if !reflect.DeepEqual(groups, want) {
		t.Fatalf("GroupsBy(1h) =\n%+v\nwant\n%+v", groups, want)
	}
	wantSeqs := [][]int64{{1, 2}, {3}, {4}}
	for i, g := range groups {
		if seqs := scanSeqs(t, f, a.ID, g); !reflect.DeepEqual(seqs, wantSeqs[i]) {
			t.Errorf("Scan(%+v) = %v, want %v", g, seqs, wantSeqs[i])
		}
	}
	for _, span := range []time.Duration{0, -time.Hour, 7 * time.Hour, 48 * time.Hour} {
		if _, err := f.s.GroupsBy(f.ctx, a.ID, 1, 4, nil, span); err == nil {
			t.Errorf("GroupsBy with a span of %s that does not divide a day was accepted", span)
		}
	}
}

// A group larger than any page or buffer an engine reads with, interleaved
// with another name, read whole and by a sub-range; the callback uses the
// store while Scan runs.
func testScanLargeGroup(t *testing.T, f *fixture) {
	const n = 2500
	a := f.tenant(t, "a")
	var events []store.Event
	for i := 1; i <= n; i++ {
		name := "big"
		if i%3 == 0 {
			name = "other"
		}
		events = append(events, ev(fmt.Sprint(i), name, 1000+int64(i)))
	}
	f.append(t, batch(a.ID, events...))

	groups, err := f.s.GroupsBy(f.ctx, a.ID, 1, n, []string{"big"}, day)
	if err != nil || len(groups) != 1 {
		t.Fatalf("GroupsBy = %+v, %v; want one group", groups, err)
	}
	sub := groups[0]
	sub.FirstSeq, sub.LastSeq = 700, 1900
	for _, g := range []store.Group{groups[0], sub} {
		var want []int64
		for seq := g.FirstSeq; seq <= g.LastSeq; seq++ {
			if seq%3 != 0 {
				want = append(want, seq)
			}
		}
		var got []int64
		err := f.s.Scan(f.ctx, a.ID, g, func(e store.StoredEvent) error {
			if string(e.Body) != fmt.Sprint(e.Seq) {
				return fmt.Errorf("seq %d has body %q", e.Seq, e.Body)
			}
			if len(got)%500 == 0 {
				if _, err := f.s.Head(f.ctx, a.ID); err != nil {
					return fmt.Errorf("head inside Scan: %w", err)
				}
			}
			got = append(got, e.Seq)
			return nil
		})
		if err != nil {
			t.Fatalf("Scan(%d..%d): %v", g.FirstSeq, g.LastSeq, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Scan(%d..%d) read %d events, want %d in sequence order", g.FirstSeq, g.LastSeq, len(got), len(want))
		}
	}
}

// A group of several names (Group.Names) is read across every name's
// chunks in sequence order: commits whose names interleave, names split
// into several chunks, more chunks than any page an engine reads, a name
// left out, a sub-range, a time span that cuts some events off, another
// tenant with the same sequence numbers.
func testScanMixedGroup(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	b := f.tenant(t, "b")
	names := []string{"login", "logout", "grant", "left.out"}
	name := func(seq int) string {
		switch {
		case seq%7 == 0:
			return names[3]
		case seq%5 == 0:
			return names[2]
		case seq%2 == 0:
			return names[1]
		}
		return names[0]
	}
	// Day 0 holds every event but those with seq%11 == 0, which fall on
	// day 1: the group of day 0 must leave them out.
	timeOf := func(seq int) int64 {
		if seq%11 == 0 {
			return day.Milliseconds() + int64(seq)
		}
		return int64(seq)
	}
	seq := 0
	for _, size := range []int{3, 1, 2600, 7, 1500} {
		var events []store.Event
		for range size {
			seq++
			events = append(events, ev(fmt.Sprintf("m%d", seq), name(seq), timeOf(seq)))
		}
		f.append(t, batch(a.ID, events...))
		f.append(t, batch(b.ID, ev(fmt.Sprintf("b%d", seq), "login", 0)))
	}
	last := seq

	mixed := store.Group{Names: names[:3], Day: time.Unix(0, 0).UTC(), FirstSeq: 1, LastSeq: int64(last)}
	sub := mixed
	sub.FirstSeq, sub.LastSeq = 2, 4000
	one := mixed
	one.Names = []string{"grant"}
	for _, g := range []store.Group{mixed, sub, one} {
		var want []int64
		for s := g.FirstSeq; s <= g.LastSeq; s++ {
			if slices.Contains(g.Names, name(int(s))) && s%11 != 0 {
				want = append(want, s)
			}
		}
		var got []int64
		err := f.s.Scan(f.ctx, a.ID, g, func(e store.StoredEvent) error {
			if string(e.Body) != fmt.Sprintf("m%d", e.Seq) || e.EventName != name(int(e.Seq)) || e.TimeMs != timeOf(int(e.Seq)) {
				return fmt.Errorf("seq %d came as %q named %q at %d", e.Seq, e.Body, e.EventName, e.TimeMs)
			}
			got = append(got, e.Seq)
			return nil
		})
		if err != nil {
			t.Fatalf("Scan(%v %d..%d): %v", g.Names, g.FirstSeq, g.LastSeq, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Scan(%v %d..%d) read %d events, want %d in sequence order", g.Names, g.FirstSeq, g.LastSeq, len(got), len(want))
		}
	}

	stop := errors.New("stop")
	calls := 0
	err := f.s.Scan(f.ctx, a.ID, mixed, func(store.StoredEvent) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Scan(mixed) = %v after %d calls, want fn's error after 1 call", err, calls)
	}
}

func testScanStopsOnError(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	f.append(t, batch(a.ID, ev("1", "e", 1), ev("2", "e", 2), ev("3", "e", 3)))
	stop := errors.New("stop")
	calls := 0
	g := store.Group{EventName: "e", Day: time.Unix(0, 0).UTC(), FirstSeq: 1, LastSeq: 3}
	err := f.s.Scan(f.ctx, a.ID, g, func(store.StoredEvent) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Scan = %v after %d calls, want fn's error after 1 call", err, calls)
	}
}

func testDeleteEvents(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	b := f.tenant(t, "b")
	var early []store.Event
	for i := 1; i <= 10; i++ {
		early = append(early, ev(fmt.Sprint(i), "e", int64(i)))
	}
	f.append(t, batch(a.ID, early...), batch(b.ID, ev("b1", "e", 1)))
	f.clock.Advance(time.Hour)
	f.append(t, batch(a.ID, ev("11", "e", 11), ev("12", "e", 12)))
	cut := t0.Add(time.Minute) // between the two appends

	steps := []struct {
		name    string
		maxSeq  int64
		before  time.Time
		limit   int
		want    int64
		wantLog []string
	}{
		{"limited, oldest first", 12, cut, 4, 4,
			[]string{"5", "6", "7", "8", "9", "10", "11", "12"}},
		{"bounded by the sequence", 7, cut, 100, 3,
			[]string{"8", "9", "10", "11", "12"}},
		{"bounded by the time", 12, cut, 100, 3,
			[]string{"11", "12"}},
		{"nothing left before the time", 12, cut, 100, 0,
			[]string{"11", "12"}},
	}
	for _, st := range steps {
		n, err := f.s.DeleteEvents(f.ctx, a.ID, st.maxSeq, st.before, st.limit)
		if err != nil || n != st.want {
			t.Errorf("%s: DeleteEvents = %d, %v; want %d", st.name, n, err, st.want)
		}
		if got := f.logIDs(t, a.ID); !reflect.DeepEqual(got, st.wantLog) {
			t.Errorf("%s: log = %v, want %v", st.name, got, st.wantLog)
		}
	}

	// Retention leaves the head, the other tenant and the numbering alone.
	if h := f.head(t, a.ID); h != 12 {
		t.Errorf("Head after deletes = %d, want 12", h)
	}
	if got := f.logIDs(t, b.ID); !reflect.DeepEqual(got, []string{"b1"}) {
		t.Errorf("other tenant's log = %v, want [b1]", got)
	}
	if res := f.append(t, batch(a.ID, ev("13", "e", 13))); res[0].FirstSeq != 13 {
		t.Errorf("append after deletes got seq %d, want 13", res[0].FirstSeq)
	}
}

func testDestinations(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	b := f.tenant(t, "b")

	d1, err := f.s.CreateDestination(f.ctx, store.Destination{ID: "d1", TenantID: a.ID, Spec: []byte(`{"bucket":"one"}`), Cursor: 7})
	if err != nil {
		t.Fatal(err)
	}
	want := store.Destination{ID: "d1", TenantID: a.ID, Spec: []byte(`{"bucket":"one"}`), Cursor: 7, CreatedAt: t0, UpdatedAt: t0}
	if !reflect.DeepEqual(d1, want) {
		t.Errorf("CreateDestination = %+v, want %+v", d1, want)
	}
	f.clock.Advance(time.Second)
	d2, err := f.s.CreateDestination(f.ctx, store.Destination{ID: "d2", TenantID: b.ID, Spec: []byte(`{"bucket":"two"}`)})
	if err != nil {
		t.Fatal(err)
	}

	refused := []struct {
		name string
		d    store.Destination
		err  error
	}{
		{"a taken id, even of another tenant", store.Destination{ID: "d1", TenantID: b.ID, Spec: []byte(`{}`)}, store.ErrConflict},
		{"an unknown tenant", store.Destination{ID: "d3", TenantID: b.ID + 100, Spec: []byte(`{}`)}, store.ErrNotFound},
	}
	for _, r := range refused {
		if _, err := f.s.CreateDestination(f.ctx, r.d); !errors.Is(err, r.err) {
			t.Errorf("CreateDestination with %s: err = %v, want %v", r.name, err, r.err)
		}
	}

	if got, err := f.s.GetDestination(f.ctx, a.ID, "d1"); err != nil || !reflect.DeepEqual(got, d1) {
		t.Errorf("GetDestination = %+v, %v; want %+v", got, err, d1)
	}
	lists := []struct {
		tenantID int64
		want     []store.Destination
	}{
		{a.ID, []store.Destination{d1}},
		{b.ID, []store.Destination{d2}},
		{0, []store.Destination{d1, d2}},
		{b.ID + 100, nil},
	}
	for _, l := range lists {
		got, err := f.s.ListDestinations(f.ctx, l.tenantID)
		if err != nil || len(got) != len(l.want) || (len(got) > 0 && !reflect.DeepEqual(got, l.want)) {
			t.Errorf("ListDestinations(%d) = %+v, %v; want %+v", l.tenantID, got, err, l.want)
		}
	}

	// Tenant isolation: every call naming another tenant's destination
	// (or no destination) is not found, and changes nothing.
	isolation := []struct {
		name string
		call func() error
	}{
		{"get other tenant's", func() error { _, err := f.s.GetDestination(f.ctx, b.ID, "d1"); return err }},
		{"get unknown", func() error { _, err := f.s.GetDestination(f.ctx, a.ID, "nope"); return err }},
		{"update other tenant's", func() error { _, err := f.s.UpdateDestination(f.ctx, b.ID, "d1", []byte(`{"x":1}`)); return err }},
		{"update unknown", func() error { _, err := f.s.UpdateDestination(f.ctx, a.ID, "nope", []byte(`{}`)); return err }},
		{"delete other tenant's", func() error { return f.s.DeleteDestination(f.ctx, b.ID, "d1") }},
		{"delete unknown", func() error { return f.s.DeleteDestination(f.ctx, a.ID, "nope") }},
	}
	for _, tt := range isolation {
		if err := tt.call(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", tt.name, err)
		}
	}
	if got, err := f.s.GetDestination(f.ctx, a.ID, "d1"); err != nil || !reflect.DeepEqual(got, d1) {
		t.Errorf("d1 changed by another tenant's calls: %+v, %v", got, err)
	}

	f.clock.Advance(time.Second)
	up, err := f.s.UpdateDestination(f.ctx, a.ID, "d1", []byte(`{"bucket":"uno"}`))
	if err != nil {
		t.Fatal(err)
	}
	want = d1
	want.Spec, want.UpdatedAt = []byte(`{"bucket":"uno"}`), t0.Add(2*time.Second)
	if !reflect.DeepEqual(up, want) {
		t.Errorf("UpdateDestination = %+v, want %+v (cursor and creation kept)", up, want)
	}
	if got, _ := f.s.GetDestination(f.ctx, a.ID, "d1"); !reflect.DeepEqual(got, up) {
		t.Errorf("GetDestination after update = %+v, want %+v", got, up)
	}

	if err := f.s.DeleteDestination(f.ctx, a.ID, "d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.GetDestination(f.ctx, a.ID, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDestination after delete: err = %v, want ErrNotFound", err)
	}
	if err := f.s.DeleteDestination(f.ctx, a.ID, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}
	if got, _ := f.s.ListDestinations(f.ctx, 0); !reflect.DeepEqual(got, []store.Destination{d2}) {
		t.Errorf("ListDestinations after delete = %+v, want d2 only", got)
	}
}

// testDestinationsVersion: the version changes with every create, update
// and delete, even within one millisecond (the fixture's clock stands
// still here), and stands through the delivery's own writes.
func testDestinationsVersion(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	version := func() int64 {
		t.Helper()
		v, err := f.s.DestinationsVersion(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	steps := []struct {
		name   string
		change func() error
		same   bool
	}{
		{"nothing", func() error { return nil }, true},
		{"create", func() error { f.destination(t, a.ID, "d1", 0); return nil }, false},
		{"create a second", func() error { f.destination(t, a.ID, "d2", 0); return nil }, false},
		{"update", func() error { _, err := f.s.UpdateDestination(f.ctx, a.ID, "d1", []byte(`{"bucket":"b"}`)); return err }, false},
		{"update again, same spec", func() error { _, err := f.s.UpdateDestination(f.ctx, a.ID, "d1", []byte(`{"bucket":"b"}`)); return err }, false},
		{"events, a status, a delivery moving the cursor", func() error {
			f.append(t, batch(a.ID, ev("m1", "login", t0.UnixMilli())))
			if err := f.s.RecordAttempt(f.ctx, "d2", store.Attempt{At: t0}); err != nil {
				return err
			}
			p := store.Plan{DestinationID: "d2", FromSeq: 1, ToSeq: 1, WindowEnd: t0, Objects: []byte(`[]`)}
			if err := f.s.SavePlan(f.ctx, p); err != nil {
				return err
			}
			return f.s.CommitPlan(f.ctx, p, store.Delivered{At: t0, Events: 1})
		}, true},
		{"delete", func() error { return f.s.DeleteDestination(f.ctx, a.ID, "d1") }, false},
		{"delete the last", func() error { return f.s.DeleteDestination(f.ctx, a.ID, "d2") }, false},
	}
	seen := map[int64]string{}
	before := version()
	seen[before] = "the start"
	for _, s := range steps {
		if err := s.change(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		after := version()
		if (after == before) != s.same {
			t.Errorf("%s: version %d -> %d, want same = %v", s.name, before, after, s.same)
		}
		if prev, ok := seen[after]; ok && !s.same {
			t.Errorf("%s: version %d was already that of %s", s.name, after, prev)
		}
		seen[after] = s.name
		before = after
	}
}

func testDeleteDestinationCascades(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	f.destination(t, a.ID, "d1", 0)
	done := store.Plan{DestinationID: "d1", FromSeq: 1, ToSeq: 2, WindowEnd: t0, Objects: []byte(`[]`)}
	if err := f.s.SavePlan(f.ctx, done); err != nil {
		t.Fatal(err)
	}
	if err := f.s.CommitPlan(f.ctx, done, store.Delivered{Events: 2, Objects: 1, Bytes: 10, At: t0}); err != nil {
		t.Fatal(err)
	}
	pending := store.Plan{DestinationID: "d1", FromSeq: 3, ToSeq: 5, WindowEnd: t0, Objects: []byte(`[]`)}
	if err := f.s.SavePlan(f.ctx, pending); err != nil {
		t.Fatal(err)
	}

	if err := f.s.DeleteDestination(f.ctx, a.ID, "d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.GetStatus(f.ctx, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetStatus after delete: err = %v, want ErrNotFound", err)
	}
	if _, err := f.s.PendingPlan(f.ctx, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PendingPlan after delete: err = %v, want ErrNotFound", err)
	}
	if err := f.s.CommitPlan(f.ctx, pending, store.Delivered{Events: 3}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CommitPlan after delete: err = %v, want ErrNotFound", err)
	}
	// A destination created again with the same id starts clean.
	f.destination(t, a.ID, "d1", 0)
	if st := f.status(t, "d1"); st != (store.Status{}) {
		t.Errorf("GetStatus of the new destination = %+v, want zero", st)
	}
	if _, err := f.s.PendingPlan(f.ctx, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the new destination has the old plan: err = %v", err)
	}
}

func testPlans(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	f.destination(t, a.ID, "d1", 10)

	if st := f.status(t, "d1"); st != (store.Status{}) {
		t.Errorf("GetStatus before any delivery = %+v, want zero", st)
	}
	if _, err := f.s.GetStatus(f.ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetStatus(unknown): err = %v, want ErrNotFound", err)
	}
	if _, err := f.s.PendingPlan(f.ctx, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PendingPlan before any: err = %v, want ErrNotFound", err)
	}
	if err := f.s.SavePlan(f.ctx, store.Plan{DestinationID: "nope", Objects: []byte(`[]`)}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SavePlan(unknown destination): err = %v, want ErrNotFound", err)
	}

	p := store.Plan{
		DestinationID: "d1",
		FromSeq:       11,
		ToSeq:         20,
		WindowEnd:     t0,
		Objects:       []byte(`[{"key":"a/b/c.ndjson.gz"}]`),
		CreatedAt:     t0.Add(time.Second),
	}
	if err := f.s.SavePlan(f.ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := f.s.SavePlan(f.ctx, store.Plan{DestinationID: "d1", FromSeq: 11, ToSeq: 30, Objects: []byte(`[]`)}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second SavePlan: err = %v, want ErrConflict", err)
	}
	if got, err := f.s.PendingPlan(f.ctx, "d1"); err != nil || !reflect.DeepEqual(got, p) {
		t.Errorf("PendingPlan = %+v, %v; want %+v", got, err, p)
	}

	// A commit of another plan than the pending one changes nothing.
	stale := p
	stale.ToSeq = 15
	if err := f.s.CommitPlan(f.ctx, stale, store.Delivered{Events: 5}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CommitPlan(stale plan): err = %v, want ErrNotFound", err)
	}
	checkDelivered(t, f, a.ID, "d1", 10, store.Status{})

	at := t0.Add(time.Minute)
	if err := f.s.CommitPlan(f.ctx, p, store.Delivered{Events: 10, Objects: 2, Bytes: 700, At: at}); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, f, a.ID, "d1", 20, store.Status{LastDeliveryAt: at, EventsDelivered: 10, ObjectsDelivered: 2, BytesDelivered: 700})
	if _, err := f.s.PendingPlan(f.ctx, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PendingPlan after commit: err = %v, want ErrNotFound", err)
	}
	if err := f.s.CommitPlan(f.ctx, p, store.Delivered{Events: 10, At: at}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second CommitPlan: err = %v, want ErrNotFound", err)
	}
	checkDelivered(t, f, a.ID, "d1", 20, store.Status{LastDeliveryAt: at, EventsDelivered: 10, ObjectsDelivered: 2, BytesDelivered: 700})

	// The next plan adds to the counters; a zero time is now.
	f.clock.Advance(time.Hour)
	next := store.Plan{DestinationID: "d1", FromSeq: 21, ToSeq: 25, WindowEnd: t0, Objects: []byte(`[]`)}
	if err := f.s.SavePlan(f.ctx, next); err != nil {
		t.Fatal(err)
	}
	if got, err := f.s.PendingPlan(f.ctx, "d1"); err != nil || !got.CreatedAt.Equal(f.clock.Now()) {
		t.Errorf("PendingPlan of a plan saved without a time = %+v, %v; want it created now", got, err)
	}
	if err := f.s.CommitPlan(f.ctx, next, store.Delivered{Events: 5, Objects: 1, Bytes: 50}); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, f, a.ID, "d1", 25, store.Status{LastDeliveryAt: f.clock.Now(), EventsDelivered: 15, ObjectsDelivered: 3, BytesDelivered: 750})
}

// checkDelivered checks a destination's cursor and its delivery counters.
// The error fields are left out: how a commit treats them belongs to the
// attempt-recording contract.
func checkDelivered(t *testing.T, f *fixture, tenantID int64, destID string, cursor int64, want store.Status) {
	t.Helper()
	d, err := f.s.GetDestination(f.ctx, tenantID, destID)
	if err != nil || d.Cursor != cursor {
		t.Errorf("cursor = %d, %v; want %d", d.Cursor, err, cursor)
	}
	st := f.status(t, destID)
	got := store.Status{LastDeliveryAt: st.LastDeliveryAt, EventsDelivered: st.EventsDelivered,
		ObjectsDelivered: st.ObjectsDelivered, BytesDelivered: st.BytesDelivered}
	if !got.LastDeliveryAt.Equal(want.LastDeliveryAt) || got.EventsDelivered != want.EventsDelivered ||
		got.ObjectsDelivered != want.ObjectsDelivered || got.BytesDelivered != want.BytesDelivered {
		t.Errorf("delivery status = %+v, want %+v", got, want)
	}
}

func testUpdatePlan(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	f.destination(t, a.ID, "d1", 0)
	p := store.Plan{DestinationID: "d1", FromSeq: 1, ToSeq: 9, WindowEnd: time.Unix(600, 0).UTC(), Objects: []byte(`[]`)}
	if err := f.s.SavePlan(f.ctx, p); err != nil {
		t.Fatal(err)
	}
	p.Objects = []byte(`[{"key":"k1","parts":[1,5]}]`)
	if err := f.s.UpdatePlan(f.ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := f.s.PendingPlan(f.ctx, "d1")
	if err != nil || string(got.Objects) != string(p.Objects) || got.FromSeq != 1 || got.ToSeq != 9 || !got.WindowEnd.Equal(p.WindowEnd) {
		t.Errorf("PendingPlan after update = %+v, %v; want objects %s", got, err, p.Objects)
	}

	other := p
	other.ToSeq = 5
	if err := f.s.UpdatePlan(f.ctx, other); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdatePlan of another plan: err = %v, want ErrNotFound", err)
	}
	if err := f.s.CommitPlan(f.ctx, p, store.Delivered{Events: 9}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.UpdatePlan(f.ctx, p); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdatePlan after commit: err = %v, want ErrNotFound", err)
	}
}

// Agents racing to commit the same plan: exactly one commit counts, and the
// cursor and counters move once.
func testCommitPlanOnce(t *testing.T, f *fixture) {
	const racers = 6
	a := f.tenant(t, "a")
	f.destination(t, a.ID, "d1", 0)
	p := store.Plan{DestinationID: "d1", FromSeq: 1, ToSeq: 100, WindowEnd: t0, Objects: []byte(`[]`)}
	if err := f.s.SavePlan(f.ctx, p); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, racers)
	start := make(chan struct{})
	for i := 0; i < racers; i++ {
		go func() {
			<-start
			errs <- f.s.CommitPlan(f.ctx, p, store.Delivered{Events: 100, Objects: 1, Bytes: 1000, At: t0})
		}()
	}
	close(start)
	won := 0
	for i := 0; i < racers; i++ {
		err := <-errs
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("a losing CommitPlan: err = %v, want ErrNotFound", err)
		}
	}
	if won != 1 {
		t.Errorf("%d commits of one plan succeeded, want 1", won)
	}
	checkDelivered(t, f, a.ID, "d1", 100, store.Status{LastDeliveryAt: t0, EventsDelivered: 100, ObjectsDelivered: 1, BytesDelivered: 1000})
}

func testRecordAttempt(t *testing.T, f *fixture) {
	ra := f.s
	a := f.tenant(t, "a")
	f.destination(t, a.ID, "d1", 0)
	t1, t2, t3, t4 := t0.Add(time.Minute), t0.Add(2*time.Minute), t0.Add(3*time.Minute), t0.Add(4*time.Minute)

	// Each step is one attempt on d1, which has no status row at first.
	steps := []struct {
		name    string
		attempt store.Attempt
		want    store.Status
	}{
		{"a first failure", store.Attempt{At: t1, Err: "AccessDenied"},
			store.Status{LastAttemptAt: t1, LastError: "AccessDenied", FailingSince: t1}},
		{"another failure keeps failing-since", store.Attempt{At: t2, Err: "SlowDown"},
			store.Status{LastAttemptAt: t2, LastError: "SlowDown", FailingSince: t1}},
		{"a success clears the error", store.Attempt{At: t3},
			store.Status{LastAttemptAt: t3}},
		{"a failure after a success starts failing again", store.Attempt{At: t4, Err: "NoSuchBucket"},
			store.Status{LastAttemptAt: t4, LastError: "NoSuchBucket", FailingSince: t4}},
	}
	for _, st := range steps {
		if err := ra.RecordAttempt(f.ctx, "d1", st.attempt); err != nil {
			t.Fatalf("%s: RecordAttempt: %v", st.name, err)
		}
		if got := f.status(t, "d1"); got != st.want {
			t.Errorf("%s: status = %+v, want %+v", st.name, got, st.want)
		}
	}

	// Attempts leave the delivery counters alone.
	f.destination(t, a.ID, "d2", 0)
	p := store.Plan{DestinationID: "d2", FromSeq: 1, ToSeq: 3, WindowEnd: t0, Objects: []byte(`[]`)}
	if err := f.s.SavePlan(f.ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := f.s.CommitPlan(f.ctx, p, store.Delivered{Events: 3, Objects: 1, Bytes: 9, At: t1}); err != nil {
		t.Fatal(err)
	}
	if err := ra.RecordAttempt(f.ctx, "d2", store.Attempt{At: t2, Err: "boom"}); err != nil {
		t.Fatal(err)
	}
	want := store.Status{LastDeliveryAt: t1, LastAttemptAt: t2, LastError: "boom", FailingSince: t2,
		EventsDelivered: 3, ObjectsDelivered: 1, BytesDelivered: 9}
	if got := f.status(t, "d2"); got != want {
		t.Errorf("status after a commit and a failure = %+v, want %+v", got, want)
	}

	if err := ra.RecordAttempt(f.ctx, "nope", store.Attempt{At: t1, Err: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RecordAttempt(unknown): err = %v, want ErrNotFound", err)
	}
}

// Attempts recorded while plans commit lose none of the commits' counters:
// each is one statement, not a read and a rewrite of the whole status.
func testRecordAttemptConcurrentWithCommits(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	f.destination(t, a.ID, "d1", 0)
	const commits = 20
	errs := make(chan error, 2)
	go func() {
		for i := range commits {
			p := store.Plan{DestinationID: "d1", FromSeq: int64(i + 1), ToSeq: int64(i + 1), WindowEnd: t0, Objects: []byte(`[]`)}
			if err := f.s.SavePlan(f.ctx, p); err != nil {
				errs <- err
				return
			}
			if err := f.s.CommitPlan(f.ctx, p, store.Delivered{Events: 1, Objects: 1, Bytes: 10, At: t0}); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	go func() {
		for i := range commits {
			attempt := store.Attempt{At: t0.Add(time.Duration(i) * time.Second)}
			if i%2 == 0 {
				attempt.Err = "SlowDown"
			}
			if err := f.s.RecordAttempt(f.ctx, "d1", attempt); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st := f.status(t, "d1")
	if st.EventsDelivered != commits || st.ObjectsDelivered != commits || st.BytesDelivered != 10*commits {
		t.Errorf("counters = %d events, %d objects, %d bytes; want %d, %d, %d",
			st.EventsDelivered, st.ObjectsDelivered, st.BytesDelivered, commits, commits, 10*commits)
	}
}

func testDestinationStatus(t *testing.T, f *fixture) {
	a, b := f.tenant(t, "a"), f.tenant(t, "b")
	f.destination(t, a.ID, "d1", 10)

	check := func(when string) {
		t.Helper()
		wantDest, err := f.s.GetDestination(f.ctx, a.ID, "d1")
		if err != nil {
			t.Fatal(err)
		}
		wantStatus := f.status(t, "d1")
		d, st, err := f.s.DestinationStatus(f.ctx, a.ID, "d1")
		if err != nil {
			t.Fatalf("%s: DestinationStatus: %v", when, err)
		}
		if !reflect.DeepEqual(d, wantDest) || st != wantStatus {
			t.Errorf("%s: DestinationStatus = %+v, %+v; want %+v, %+v", when, d, st, wantDest, wantStatus)
		}
	}
	check("new destination")
	if _, st, _ := f.s.DestinationStatus(f.ctx, a.ID, "d1"); st != (store.Status{}) {
		t.Errorf("status of a new destination = %+v, want zero", st)
	}

	p := store.Plan{DestinationID: "d1", FromSeq: 11, ToSeq: 20, WindowEnd: t0, Objects: []byte(`[]`)}
	if err := f.s.SavePlan(f.ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := f.s.CommitPlan(f.ctx, p, store.Delivered{Events: 10, Objects: 1, Bytes: 99, At: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.RecordAttempt(f.ctx, "d1", store.Attempt{At: t0.Add(2 * time.Minute), Err: "SlowDown"}); err != nil {
		t.Fatal(err)
	}
	check("after a commit and a failed attempt")

	for _, c := range []struct {
		name     string
		tenantID int64
		id       string
	}{
		{"unknown destination", a.ID, "nope"},
		{"another tenant's destination", b.ID, "d1"},
	} {
		if _, _, err := f.s.DestinationStatus(f.ctx, c.tenantID, c.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DestinationStatus(%s): err = %v, want ErrNotFound", c.name, err)
		}
	}
}

// DestinationSummaries reads, for every destination of every tenant in
// creation order, what DestinationStatus, Head and OldestAfter read one by
// one.
func testDestinationSummaries(t *testing.T, f *fixture) {
	if got, err := f.s.DestinationSummaries(f.ctx); err != nil || len(got) != 0 {
		t.Fatalf("DestinationSummaries of an empty store = %v, %v; want none", got, err)
	}
	a, b := f.tenant(t, "a"), f.tenant(t, "b")
	f.append(t, batch(a.ID, ev("1", "e", 1), ev("2", "e", 2)))
	t1 := t0.Add(time.Minute)
	f.clock.Set(t1)
	f.append(t, batch(a.ID, ev("3", "e", 3)))
	// Cursors before, inside and at the end of a's events, and b without any.
	tests := []struct {
		id     string
		tenant store.Tenant
		cursor int64
		head   int64
		oldest time.Time
	}{
		{"d1", a, 0, 3, t0},
		{"d2", a, 2, 3, t1},
		{"d3", a, 3, 3, time.Time{}},
		{"d4", b, 0, 0, time.Time{}},
	}
	for _, tt := range tests {
		f.destination(t, tt.tenant.ID, tt.id, tt.cursor)
	}
	if err := f.s.RecordAttempt(f.ctx, "d1", store.Attempt{At: t1, Err: "SlowDown"}); err != nil {
		t.Fatal(err)
	}
	got, err := f.s.DestinationSummaries(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(tests) {
		t.Fatalf("DestinationSummaries = %d destinations, want %d", len(got), len(tests))
	}
	for i, tt := range tests {
		sum := got[i]
		wantDest, wantStatus, err := f.s.DestinationStatus(f.ctx, tt.tenant.ID, tt.id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(sum.Destination, wantDest) || sum.Status != wantStatus {
			t.Errorf("summary %d = %+v, %+v; want %+v, %+v", i, sum.Destination, sum.Status, wantDest, wantStatus)
		}
		if sum.Tenant != tt.tenant.Name || sum.Head != tt.head || !sum.OldestUndelivered.Equal(tt.oldest) ||
			(!sum.OldestUndelivered.IsZero() && sum.OldestUndelivered.Location() != time.UTC) {
			t.Errorf("summary of %s: tenant %q, head %d, oldest undelivered %v; want %q, %d, %v (UTC)",
				tt.id, sum.Tenant, sum.Head, sum.OldestUndelivered, tt.tenant.Name, tt.head, tt.oldest)
		}
	}
	if got[0].Status.LastError != "SlowDown" {
		t.Errorf("d1's summary has last error %q, want its failed attempt's", got[0].Status.LastError)
	}
}

// A reader racing plan commits sees the cursor and the counters of the
// same moment: each commit delivers one event and moves the cursor by one,
// so every read must have cursor == events delivered.
func testDestinationStatusConsistent(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	f.destination(t, a.ID, "d1", 0)
	const commits = 30
	done := make(chan error, 1)
	go func() {
		for i := range int64(commits) {
			p := store.Plan{DestinationID: "d1", FromSeq: i + 1, ToSeq: i + 1, WindowEnd: t0, Objects: []byte(`[]`)}
			if err := f.s.SavePlan(f.ctx, p); err != nil {
				done <- err
				return
			}
			if err := f.s.CommitPlan(f.ctx, p, store.Delivered{Events: 1, Objects: 1, Bytes: 1, At: t0}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		default:
		}
		d, st, err := f.s.DestinationStatus(f.ctx, a.ID, "d1")
		if err != nil {
			t.Fatal(err)
		}
		if d.Cursor != st.EventsDelivered {
			t.Fatalf("read cursor %d beside %d events delivered: not one moment", d.Cursor, st.EventsDelivered)
		}
	}
	if d, st, err := f.s.DestinationStatus(f.ctx, a.ID, "d1"); err != nil || d.Cursor != commits || st.EventsDelivered != commits {
		t.Errorf("after the commits: cursor %d, %d events, %v; want %d", d.Cursor, st.EventsDelivered, err, commits)
	}
}

// A closed store refuses calls with an error; it does not hang or panic.
func testClose(t *testing.T, open Opener) {
	s := open(t, Options{Now: clocktest.NewFake(t0).Now})
	if _, err := s.CreateTenant(context.Background(), "a", "ext"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // hang guard
	defer cancel()
	if _, err := s.TenantByName(ctx, "a"); err == nil {
		t.Error("TenantByName on a closed store succeeded, want an error")
	}
}

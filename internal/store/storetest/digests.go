package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/store"
)

// digestTests are the subtests of the delivery log contract, run by Run.
var digestTests = []struct {
	name string
	fn   func(t *testing.T, f *fixture)
}{
	{"DeliveryLogCommits", testDeliveryLogCommits},
	{"DeliveryLogFailedCommitLogsNothing", testDeliveryLogFailedCommit},
	{"DeliveredObjectsPages", testDeliveredObjectsPages},
	{"Digests", testDigests},
	{"DigestsFenced", testDigestsFenced},
	{"DeliveryLogPrune", testDeliveryLogPrune},
	{"SigningKeys", testSigningKeys},
	{"SigningKeysFirstKeyOnce", testSigningKeysFirstOnce},
}

// commit saves and commits the plan from..to with the given objects.
func (f *fixture) commit(t *testing.T, destID string, from, to int64, objects ...store.LoggedObject) {
	t.Helper()
	p := store.Plan{DestinationID: destID, FromSeq: from, ToSeq: to, WindowEnd: f.clock.Now(), Objects: []byte(`[]`)}
	if err := f.s.SavePlan(f.ctx, p); err != nil {
		t.Fatalf("SavePlan(%d-%d): %v", from, to, err)
	}
	if err := f.s.CommitPlan(f.ctx, p, store.Delivered{Events: to - from + 1, Objects: int64(len(objects)), Log: objects}); err != nil {
		t.Fatalf("CommitPlan(%d-%d): %v", from, to, err)
	}
}

func object(key string, from, to int64) store.LoggedObject {
	return store.LoggedObject{
		Key: key, SHA256: fmt.Sprintf("%064x", from), Size: 100 + from, Events: to - from + 1,
		FirstSeq: from, LastSeq: to,
		OldestEventTime: t0.Add(-time.Duration(from) * time.Second), NewestEventTime: t0.Add(time.Duration(to) * time.Millisecond),
	}
}

// asLogged is o as the log returns it, committed at `at` by commit to.
func asLogged(o store.LoggedObject, commitSeq int64, ord int, at time.Time) store.LoggedObject {
	o.CommitSeq, o.Ord, o.CommittedAt = commitSeq, ord, at
	return o
}

func (f *fixture) commits(t *testing.T, destID string, from int64, before time.Time) []store.LoggedCommit {
	t.Helper()
	cs, err := f.s.CommitsFrom(f.ctx, destID, from, before)
	if err != nil {
		t.Fatalf("CommitsFrom(%s, %d): %v", destID, from, err)
	}
	return cs
}

func testDeliveryLogCommits(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	created := f.clock.Now()
	f.destination(t, a.ID, "d1", 3)
	if cursor, at, err := f.s.LogStart(f.ctx, "d1"); err != nil || cursor != 3 || !at.Equal(created) {
		t.Errorf("LogStart = %d, %s, %v; want 3, %s", cursor, at, err, created)
	}
	if _, _, err := f.s.LogStart(f.ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LogStart(unknown): err = %v, want ErrNotFound", err)
	}
	if cs := f.commits(t, "d1", 0, t0.Add(day)); len(cs) != 0 {
		t.Errorf("commits before any = %+v", cs)
	}

	first := f.clock.Now()
	o1, o2 := object("a/1.ndjson.gz", 4, 7), object("b/1.ndjson.gz", 5, 10)
	f.commit(t, "d1", 4, 10, o1, o2)
	f.clock.Advance(time.Hour)
	second := f.clock.Now()
	f.commit(t, "d1", 11, 12) // every event filtered out: no object, the range still logged
	f.clock.Advance(time.Hour)
	third := f.clock.Now()
	o3 := object("a/2.ndjson.gz", 13, 13)
	f.commit(t, "d1", 13, 13, o3)

	want := []store.LoggedCommit{
		{FromSeq: 4, ToSeq: 10, CommittedAt: first, Objects: []store.LoggedObject{asLogged(o1, 10, 1, first), asLogged(o2, 10, 2, first)}},
		{FromSeq: 11, ToSeq: 12, CommittedAt: second},
		{FromSeq: 13, ToSeq: 13, CommittedAt: third, Objects: []store.LoggedObject{asLogged(o3, 13, 1, third)}},
	}
	tests := []struct {
		name   string
		from   int64
		before time.Time
		want   []store.LoggedCommit
	}{
		{"all", 4, third.Add(time.Millisecond), want},
		{"from the second", 11, third.Add(time.Millisecond), want[1:]},
		{"before the third", 4, third, want[:2]},
		{"before the first", 0, first, nil},
		{"after the last", 14, third.Add(time.Hour), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := f.commits(t, "d1", tt.from, tt.before)
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("CommitsFrom(%d, %s) =\n%+v\nwant\n%+v", tt.from, tt.before, got, tt.want)
			}
		})
	}
}

func testDeliveryLogFailedCommit(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	f.destination(t, a.ID, "d1", 0)
	p := store.Plan{DestinationID: "d1", FromSeq: 1, ToSeq: 5, WindowEnd: t0, Objects: []byte(`[]`)}
	if err := f.s.SavePlan(f.ctx, p); err != nil {
		t.Fatal(err)
	}
	stale := p
	stale.ToSeq = 4
	if err := f.s.CommitPlan(f.ctx, stale, store.Delivered{Log: []store.LoggedObject{object("x", 1, 4)}}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CommitPlan(stale): err = %v, want ErrNotFound", err)
	}
	if cs := f.commits(t, "d1", 0, t0.Add(day)); len(cs) != 0 {
		t.Errorf("a failed commit logged %+v", cs)
	}
	// A zombie's fenced commit logs nothing either.
	l := f.claim(t, "agent-a", 1)[0]
	p.Fence = l
	f.expire(t, "agent-a", "agent-b", "d1")
	if err := f.s.CommitPlan(f.ctx, p, store.Delivered{Log: []store.LoggedObject{object("x", 1, 5)}}); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("CommitPlan by a zombie: err = %v, want ErrLeaseLost", err)
	}
	if cs := f.commits(t, "d1", 0, f.clock.Now().Add(day)); len(cs) != 0 {
		t.Errorf("a zombie's commit logged %+v", cs)
	}
}

func testDeliveredObjectsPages(t *testing.T, f *fixture) {
	a, b := f.tenant(t, "a"), f.tenant(t, "b")
	f.destination(t, a.ID, "d1", 0)
	f.destination(t, b.ID, "d2", 0)
	var all []store.LoggedObject
	for i := range int64(3) {
		at := f.clock.Now()
		x, y := object(fmt.Sprintf("x/%d", i), 10*i+1, 10*i+5), object(fmt.Sprintf("y/%d", i), 10*i+6, 10*i+10)
		f.commit(t, "d1", 10*i+1, 10*i+10, x, y)
		all = append(all, asLogged(x, 10*i+10, 1, at), asLogged(y, 10*i+10, 2, at))
		f.clock.Advance(time.Hour)
	}
	f.commit(t, "d2", 1, 3, object("other", 1, 3))

	list := func(tenantID int64, dest string, q store.ObjectQuery) []store.LoggedObject {
		t.Helper()
		got, err := f.s.DeliveredObjects(f.ctx, tenantID, dest, q)
		if err != nil {
			t.Fatalf("DeliveredObjects(%s, %+v): %v", dest, q, err)
		}
		return got
	}
	// Pages of two walk the log in commit order.
	var paged []store.LoggedObject
	q := store.ObjectQuery{Limit: 2}
	for range 10 {
		page := list(a.ID, "d1", q)
		paged = append(paged, page...)
		if len(page) < q.Limit {
			break
		}
		last := page[len(page)-1]
		q.AfterSeq, q.AfterOrd = last.CommitSeq, last.Ord
	}
	if !reflect.DeepEqual(paged, all) {
		t.Errorf("paged objects =\n%+v\nwant\n%+v", paged, all)
	}
	tests := []struct {
		name   string
		tenant int64
		dest   string
		q      store.ObjectQuery
		want   []store.LoggedObject
	}{
		{"from the second hour", a.ID, "d1", store.ObjectQuery{From: t0.Add(time.Hour), Limit: 10}, all[2:]},
		{"before the second hour", a.ID, "d1", store.ObjectQuery{To: t0.Add(time.Hour), Limit: 10}, all[:2]},
		{"the second hour", a.ID, "d1", store.ObjectQuery{From: t0.Add(time.Hour), To: t0.Add(2 * time.Hour), Limit: 10}, all[2:4]},
		{"another tenant's destination", b.ID, "d1", store.ObjectQuery{Limit: 10}, nil},
		{"unknown destination", a.ID, "nope", store.ObjectQuery{Limit: 10}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := list(tt.tenant, tt.dest, tt.q)
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func savedDigest(dest string, hour time.Time, nextSeq int64) store.SavedDigest {
	return store.SavedDigest{
		DestinationID: dest, Hour: hour, Key: "p/_auditexport/digests/" + dest + "/" + hour.Format("2006010215"),
		Bucket: "bucket", Prefix: "p", NextSeq: nextSeq, Body: []byte("gzip bytes " + hour.String()),
		SHA256: fmt.Sprintf("%064x", hour.Unix()), Signature: "c2ln", KeyID: "0123456789abcdef",
	}
}

func testDigests(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	f.destination(t, a.ID, "d1", 0)
	if _, err := f.s.LastDigest(f.ctx, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LastDigest before any: err = %v, want ErrNotFound", err)
	}
	h1 := t0.Truncate(time.Hour)
	d1 := savedDigest("d1", h1, 11)
	if err := f.s.SaveDigest(f.ctx, d1); err != nil {
		t.Fatal(err)
	}
	if err := f.s.SaveDigest(f.ctx, d1); !errors.Is(err, store.ErrConflict) {
		t.Errorf("SaveDigest twice: err = %v, want ErrConflict", err)
	}
	if err := f.s.SaveDigest(f.ctx, savedDigest("nope", h1, 1)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SaveDigest(unknown destination): err = %v, want ErrNotFound", err)
	}
	want := d1
	want.CreatedAt = f.clock.Now()
	if got, err := f.s.LastDigest(f.ctx, "d1"); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("LastDigest = %+v, %v; want %+v (not written)", got, err, want)
	}
	if err := f.s.MarkDigestWritten(f.ctx, "d1", h1.Add(time.Hour), t0, store.Lease{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MarkDigestWritten(unsaved hour): err = %v, want ErrNotFound", err)
	}
	written := t0.Add(time.Minute)
	if err := f.s.MarkDigestWritten(f.ctx, "d1", h1, written, store.Lease{}); err != nil {
		t.Fatal(err)
	}
	want.WrittenAt = written
	if got, err := f.s.LastDigest(f.ctx, "d1"); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("LastDigest after MarkDigestWritten = %+v, %v; want %+v", got, err, want)
	}
	d2 := savedDigest("d1", h1.Add(time.Hour), 11)
	d2.CreatedAt = t0.Add(time.Hour)
	if err := f.s.SaveDigest(f.ctx, d2); err != nil {
		t.Fatal(err)
	}
	if got, err := f.s.LastDigest(f.ctx, "d1"); err != nil || !reflect.DeepEqual(got, d2) {
		t.Errorf("LastDigest after the next hour's = %+v, %v; want %+v", got, err, d2)
	}
	// Deleting the destination deletes its digests and log.
	f.commit(t, "d1", 1, 2, object("k", 1, 2))
	if err := f.s.DeleteDestination(f.ctx, a.ID, "d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.LastDigest(f.ctx, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LastDigest of a deleted destination: err = %v, want ErrNotFound", err)
	}
	if cs := f.commits(t, "d1", 0, t0.Add(day)); len(cs) != 0 {
		t.Errorf("commits of a deleted destination: %+v", cs)
	}
}

func testDigestsFenced(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	f.destination(t, a.ID, "d1", 0)
	old := f.claim(t, "agent-a", 1)[0]
	h := t0.Truncate(time.Hour)
	d := savedDigest("d1", h, 1)
	d.Fence = old
	if err := f.s.SaveDigest(f.ctx, d); err != nil {
		t.Fatalf("SaveDigest under the lease: %v", err)
	}
	newer := f.expire(t, "agent-a", "agent-b", "d1")

	next := savedDigest("d1", h.Add(time.Hour), 1)
	next.Fence = old
	if err := f.s.SaveDigest(f.ctx, next); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("SaveDigest with the old epoch: err = %v, want ErrLeaseLost", err)
	}
	if err := f.s.MarkDigestWritten(f.ctx, "d1", h, t0, old); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("MarkDigestWritten with the old epoch: err = %v, want ErrLeaseLost", err)
	}
	got, err := f.s.LastDigest(f.ctx, "d1")
	if err != nil || !got.Hour.Equal(h) || !got.WrittenAt.IsZero() {
		t.Errorf("LastDigest after the zombie's writes = %+v, %v; want hour %s, not written", got, err, h)
	}
	// The new holder finishes what it found.
	if err := f.s.MarkDigestWritten(f.ctx, "d1", h, t0, newer); err != nil {
		t.Errorf("MarkDigestWritten by the new holder: %v", err)
	}
	next.Fence = newer
	if err := f.s.SaveDigest(f.ctx, next); err != nil {
		t.Errorf("SaveDigest by the new holder: %v", err)
	}
}

func testDeliveryLogPrune(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	f.destination(t, a.ID, "d1", 0)
	f.destination(t, a.ID, "d2", 0)
	h := t0.Truncate(time.Hour)
	f.commit(t, "d1", 1, 5, object("old", 1, 5)) // covered by a written digest
	f.commit(t, "d1", 6, 8, object("uncovered", 6, 8))
	f.commit(t, "d2", 1, 3, object("d2 old", 1, 3)) // d2's digest is saved, not written
	for i := range 3 {
		d := savedDigest("d1", h.Add(time.Duration(i)*time.Hour), 6)
		if err := f.s.SaveDigest(f.ctx, d); err != nil {
			t.Fatal(err)
		}
		if err := f.s.MarkDigestWritten(f.ctx, "d1", d.Hour, t0, store.Lease{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.s.SaveDigest(f.ctx, savedDigest("d2", h, 4)); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(31 * day)
	f.commit(t, "d1", 9, 9, object("recent", 9, 9))

	n, err := f.s.PruneDeliveryLog(f.ctx, f.clock.Now().Add(-30*day))
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 { // d1's first commit and its first two digests
		t.Errorf("PruneDeliveryLog deleted %d rows, want 3", n)
	}
	var kept []int64
	for _, c := range f.commits(t, "d1", 0, f.clock.Now().Add(day)) {
		kept = append(kept, c.ToSeq)
	}
	if !reflect.DeepEqual(kept, []int64{8, 9}) {
		t.Errorf("d1's commits after pruning end at %v, want [8 9]: the covered old one goes", kept)
	}
	if cs := f.commits(t, "d2", 0, f.clock.Now()); len(cs) != 1 {
		t.Errorf("d2's commits after pruning = %+v, want its one uncovered commit", cs)
	}
	last, err := f.s.LastDigest(f.ctx, "d1")
	if err != nil || !last.Hour.Equal(h.Add(2*time.Hour)) {
		t.Errorf("d1's last digest after pruning = %s, %v; want the last one kept", last.Hour, err)
	}
	if objs, _ := f.s.DeliveredObjects(f.ctx, a.ID, "d1", store.ObjectQuery{Limit: 10}); len(objs) != 2 {
		t.Errorf("d1's objects after pruning = %+v, want uncovered and recent", objs)
	}
}

func signingKey(id string) store.SigningKey {
	return store.SigningKey{KeyID: id, PublicKey: []byte("public " + id), Private: []byte(`{"sealed":"` + id + `"}`)}
}

func testSigningKeys(t *testing.T, f *fixture) {
	if ks, err := f.s.SigningKeys(f.ctx); err != nil || len(ks) != 0 {
		t.Fatalf("SigningKeys of a new store = %+v, %v", ks, err)
	}
	first, err := f.s.AddSigningKey(f.ctx, signingKey("k1"), false)
	if err != nil {
		t.Fatal(err)
	}
	if !first.NotBefore.Equal(t0) || !first.NotAfter.IsZero() {
		t.Errorf("first key valid %s..%s, want from now, open", first.NotBefore, first.NotAfter)
	}
	if _, err := f.s.AddSigningKey(f.ctx, signingKey("k2"), false); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a second first key: err = %v, want ErrConflict", err)
	}
	f.clock.Advance(time.Hour)
	second, err := f.s.AddSigningKey(f.ctx, signingKey("k2"), true)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	third, err := f.s.AddSigningKey(f.ctx, signingKey("k3"), true)
	if err != nil {
		t.Fatal(err)
	}
	first.NotAfter, second.NotAfter = second.NotBefore, third.NotBefore
	want := []store.SigningKey{first, second, third}
	if got, err := f.s.SigningKeys(f.ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("SigningKeys =\n%+v, %v\nwant\n%+v", got, err, want)
	}
}

func testSigningKeysFirstOnce(t *testing.T, f *fixture) {
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = f.s.AddSigningKey(f.ctx, signingKey(fmt.Sprintf("k%d", i)), false)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("AddSigningKey: %v, want nil or ErrConflict", err)
		}
	}
	if ks, err := f.s.SigningKeys(f.ctx); won != 1 || err != nil || len(ks) != 1 {
		t.Errorf("%d agents made a first key, %d keys stored (%v); want exactly one", won, len(ks), err)
	}
}

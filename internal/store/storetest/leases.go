package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/store"
)

// leaseTTL is long enough that no lease of the suite lapses by itself
// while a test runs on a slow machine; expiry is forced with expire.
const leaseTTL = 10 * time.Minute

// leaseTests are the subtests of the lease contract, run by Run.
var leaseTests = []struct {
	name string
	fn   func(t *testing.T, f *fixture)
}{
	{"LeasesRacingHoldersDisjoint", testLeasesDisjoint},
	{"LeaseExpiredTakenOverWithHigherEpoch", testLeaseTakeover},
	{"LeaseZombieFenced", testLeaseZombieFenced},
	{"LeaseFairShare", testLeaseFairShare},
	{"AgentFreshCount", testAgentFreshCount},
	{"LeaseReleaseOnStop", testLeaseRelease},
}

func (f *fixture) destinations(t *testing.T, tenantID int64, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("d%02d", i+1)
		f.destination(t, tenantID, id, 0)
		ids = append(ids, id)
	}
	return ids
}

func (f *fixture) claim(t *testing.T, holder string, limit int) []store.Lease {
	t.Helper()
	ls, err := f.s.ClaimLeases(f.ctx, holder, limit, leaseTTL)
	if err != nil {
		t.Fatalf("ClaimLeases(%s, %d): %v", holder, limit, err)
	}
	for _, l := range ls {
		if l.Holder != holder || l.Epoch < 1 || l.Expires.IsZero() {
			t.Errorf("ClaimLeases(%s) returned %+v", holder, l)
		}
	}
	return ls
}

func leaseIDs(ls []store.Lease) []string {
	var ids []string
	for _, l := range ls {
		ids = append(ids, l.DestinationID)
	}
	sort.Strings(ids)
	return ids
}

// expire makes holder's leases lapse and waits until other can claim
// destID: the lease is renewed for a millisecond, and the suite's clock is
// moved past that for an engine that judges expiry on it, while one that
// uses the database's clock sees the millisecond pass.
func (f *fixture) expire(t *testing.T, holder, other, destID string) store.Lease {
	t.Helper()
	if _, err := f.s.RenewLeases(f.ctx, holder, time.Millisecond); err != nil {
		t.Fatalf("RenewLeases: %v", err)
	}
	f.clock.Advance(time.Second)
	deadline := time.Now().Add(time.Minute) // hang guard
	for {
		for _, l := range f.claim(t, other, 1) {
			if l.DestinationID == destID {
				return l
			}
			t.Fatalf("%s claimed %s, want only %s claimable", other, l.DestinationID, destID)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never got %s after %s's lease expired", other, destID, holder)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

func testLeasesDisjoint(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	all := f.destinations(t, a.ID, 20)
	holders := []string{"agent-a", "agent-b"}
	got := make([][]store.Lease, len(holders))
	var wg sync.WaitGroup
	errs := make(chan error, len(holders))
	for i, h := range holders {
		wg.Go(func() {
			for {
				ls, err := f.s.ClaimLeases(f.ctx, h, 3, leaseTTL)
				if err != nil {
					errs <- err
					return
				}
				if len(ls) == 0 {
					return
				}
				got[i] = append(got[i], ls...)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for i, ls := range got {
		for _, l := range ls {
			if prev, ok := seen[l.DestinationID]; ok {
				t.Errorf("%s claimed by both %s and %s", l.DestinationID, prev, holders[i])
			}
			seen[l.DestinationID] = holders[i]
			if l.Epoch != 1 {
				t.Errorf("first claim of %s has epoch %d, want 1", l.DestinationID, l.Epoch)
			}
		}
	}
	if len(seen) != len(all) {
		t.Errorf("claimed %d of %d destinations: %v", len(seen), len(all), seen)
	}
	if ls := f.claim(t, "agent-c", 10); len(ls) != 0 {
		t.Errorf("a third holder claimed held leases: %v", leaseIDs(ls))
	}
	for id, h := range seen {
		if st := f.status(t, id); st.Holder != h {
			t.Errorf("status of %s names holder %q, want %q", id, st.Holder, h)
		}
	}
	// Renewing keeps the set and the epochs.
	renewed, err := f.s.RenewLeases(f.ctx, "agent-a", leaseTTL)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(leaseIDs(renewed), leaseIDs(got[0])) {
		t.Errorf("RenewLeases = %v, want the claimed %v", leaseIDs(renewed), leaseIDs(got[0]))
	}
	for _, l := range renewed {
		if l.Epoch != 1 {
			t.Errorf("renewing %s changed its epoch to %d", l.DestinationID, l.Epoch)
		}
	}
}

func testLeaseTakeover(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	f.destinations(t, a.ID, 1)
	first := f.claim(t, "agent-a", 5)
	if len(first) != 1 || first[0].Epoch != 1 {
		t.Fatalf("first claim = %+v, want d01 at epoch 1", first)
	}
	if ls := f.claim(t, "agent-b", 5); len(ls) != 0 {
		t.Fatalf("agent-b claimed a held lease: %+v", ls)
	}
	taken := f.expire(t, "agent-a", "agent-b", "d01")
	if taken.Holder != "agent-b" || taken.Epoch != 2 {
		t.Errorf("takeover = %+v, want agent-b at epoch 2", taken)
	}
	if ls, err := f.s.RenewLeases(f.ctx, "agent-a", leaseTTL); err != nil || len(ls) != 0 {
		t.Errorf("RenewLeases of the old holder = %+v, %v; want none", ls, err)
	}
	if st := f.status(t, "d01"); st.Holder != "agent-b" {
		t.Errorf("status names holder %q, want agent-b", st.Holder)
	}
}

// An agent that paused past its lease (a zombie) finds every write refused
// once another agent took the destination over, and the cursor, the plan and
// the status stay as the new holder needs them.
func testLeaseZombieFenced(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	f.destinations(t, a.ID, 2) // d01 has a plan in flight; d02 none
	old := f.claim(t, "agent-a", 2)
	if len(old) != 2 {
		t.Fatalf("claimed %v, want d01 and d02", leaseIDs(old))
	}
	fence := map[string]store.Lease{}
	for _, l := range old {
		fence[l.DestinationID] = l
	}
	p := store.Plan{DestinationID: "d01", FromSeq: 1, ToSeq: 5, WindowEnd: t0, Objects: []byte(`["saved"]`), Fence: fence["d01"]}
	if err := f.s.SavePlan(f.ctx, p); err != nil {
		t.Fatalf("SavePlan under the lease: %v", err)
	}
	p.Objects = []byte(`["recorded"]`)
	if err := f.s.UpdatePlan(f.ctx, p); err != nil {
		t.Fatalf("UpdatePlan under the lease: %v", err)
	}
	if err := f.s.RecordAttempt(f.ctx, "d01", store.Attempt{At: t0, Err: "SlowDown", Fence: fence["d01"]}); err != nil {
		t.Fatalf("RecordAttempt under the lease: %v", err)
	}

	f.expire(t, "agent-a", "agent-b", "d01")
	newD02 := f.expire(t, "agent-a", "agent-b", "d02")
	before := f.status(t, "d01")

	zombie := []struct {
		name string
		call func() error
	}{
		{"SavePlan", func() error {
			return f.s.SavePlan(f.ctx, store.Plan{DestinationID: "d02", FromSeq: 1, ToSeq: 5, WindowEnd: t0, Objects: []byte(`[]`), Fence: fence["d02"]})
		}},
		{"UpdatePlan", func() error {
			q := p
			q.Objects = []byte(`["zombie"]`)
			return f.s.UpdatePlan(f.ctx, q)
		}},
		{"CommitPlan", func() error {
			return f.s.CommitPlan(f.ctx, p, store.Delivered{Events: 5, Objects: 1, Bytes: 10, At: t0})
		}},
		{"RecordAttempt", func() error {
			return f.s.RecordAttempt(f.ctx, "d01", store.Attempt{At: t0.Add(time.Hour), Fence: fence["d01"]})
		}},
	}
	for _, z := range zombie {
		if err := z.call(); !errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("%s with the old epoch: err = %v, want ErrLeaseLost", z.name, err)
		}
	}
	for _, id := range []string{"d01", "d02"} {
		d, err := f.s.GetDestination(f.ctx, a.ID, id)
		if err != nil || d.Cursor != 0 {
			t.Errorf("cursor of %s = %d, %v; want 0: a zombie moved it", id, d.Cursor, err)
		}
	}
	if got, err := f.s.PendingPlan(f.ctx, "d01"); err != nil || string(got.Objects) != `["recorded"]` {
		t.Errorf("plan of d01 = %s, %v; want the recorded one", got.Objects, err)
	}
	if _, err := f.s.PendingPlan(f.ctx, "d02"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a zombie saved a plan for d02: err = %v", err)
	}
	if after := f.status(t, "d01"); after != before {
		t.Errorf("status after the zombie's writes = %+v, want %+v", after, before)
	}

	// The new holder re-runs the plan it found and commits it.
	renewed, err := f.s.RenewLeases(f.ctx, "agent-b", leaseTTL)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range renewed {
		if l.DestinationID == "d01" {
			p.Fence = l
		}
	}
	if p.Fence.Holder != "agent-b" {
		t.Fatalf("agent-b does not hold d01: %+v", renewed)
	}
	if err := f.s.CommitPlan(f.ctx, p, store.Delivered{Events: 5, Objects: 1, Bytes: 10, At: t0}); err != nil {
		t.Fatalf("CommitPlan by the new holder: %v", err)
	}
	if d, _ := f.s.GetDestination(f.ctx, a.ID, "d01"); d.Cursor != 5 {
		t.Errorf("cursor after the new holder's commit = %d, want 5", d.Cursor)
	}
	if err := f.s.SavePlan(f.ctx, store.Plan{DestinationID: "d02", FromSeq: 1, ToSeq: 2, WindowEnd: t0, Objects: []byte(`[]`), Fence: newD02}); err != nil {
		t.Errorf("SavePlan by the new holder: %v", err)
	}
}

func testLeaseFairShare(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	f.destinations(t, a.ID, 30)
	agents := []string{"agent-b", "agent-c", "agent-a"}
	var view store.AgentView
	for _, id := range agents {
		var err error
		if view, err = f.s.RegisterAgent(f.ctx, id, leaseTTL, leaseTTL); err != nil {
			t.Fatal(err)
		}
	}
	if view.Live != 3 || view.Leader != "agent-a" {
		t.Fatalf("RegisterAgent = %+v, want 3 live, led by agent-a", view)
	}
	share := store.FairShare(30, view.Live)
	if share != 11 {
		t.Fatalf("FairShare(30, 3) = %d, want 11", share)
	}
	held := map[string][]string{}
	for _, id := range agents {
		held[id] = leaseIDs(f.claim(t, id, share))
	}
	total := 0
	for id, ls := range held {
		if len(ls) > share {
			t.Errorf("%s holds %d, over its share of %d", id, len(ls), share)
		}
		total += len(ls)
	}
	if total != 30 || len(held["agent-b"]) != 11 || len(held["agent-c"]) != 11 || len(held["agent-a"]) != 8 {
		t.Errorf("held %d in all (%d, %d, %d); want 30 as 11, 11, 8", total,
			len(held["agent-b"]), len(held["agent-c"]), len(held["agent-a"]))
	}

	// agent-c leaves: the two others' share grows to cover its leases.
	if err := f.s.DeregisterAgent(f.ctx, "agent-c"); err != nil {
		t.Fatal(err)
	}
	view, err := f.s.RegisterAgent(f.ctx, "agent-a", leaseTTL, leaseTTL)
	if err != nil || view.Live != 2 {
		t.Fatalf("RegisterAgent after one left = %+v, %v; want 2 live", view, err)
	}
	share = store.FairShare(30, view.Live)
	got := len(held["agent-a"]) + len(f.claim(t, "agent-a", share-len(held["agent-a"])))
	got += len(held["agent-b"]) + len(f.claim(t, "agent-b", share-len(held["agent-b"])))
	if got != 30 {
		t.Errorf("the two agents hold %d after one left, want all 30", got)
	}
	if ls, _ := f.s.RenewLeases(f.ctx, "agent-c", leaseTTL); len(ls) != 0 {
		t.Errorf("the agent that left still holds %v", leaseIDs(ls))
	}
}

func testLeaseRelease(t *testing.T, f *fixture) {
	a := f.tenant(t, "a")
	f.destinations(t, a.ID, 3)
	held := f.claim(t, "agent-a", 3)
	if len(held) != 3 {
		t.Fatalf("claimed %v, want 3", leaseIDs(held))
	}
	if err := f.s.ReleaseLease(f.ctx, held[0]); err != nil {
		t.Fatal(err)
	}
	got := f.claim(t, "agent-b", 3)
	if len(got) != 1 || got[0].DestinationID != held[0].DestinationID || got[0].Epoch != 2 {
		t.Fatalf("after a release agent-b claimed %+v, want %s at epoch 2", got, held[0].DestinationID)
	}
	// Releasing a lease already taken over leaves the new holder's alone.
	if err := f.s.ReleaseLease(f.ctx, held[0]); err != nil {
		t.Fatalf("ReleaseLease of a lost lease: %v", err)
	}
	if st := f.status(t, held[0].DestinationID); st.Holder != "agent-b" {
		t.Errorf("a stale release freed agent-b's lease: holder %q", st.Holder)
	}
	// Stopping: deregistering releases everything at once.
	if _, err := f.s.RegisterAgent(f.ctx, "agent-a", leaseTTL, leaseTTL); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeregisterAgent(f.ctx, "agent-a"); err != nil {
		t.Fatal(err)
	}
	if got := f.claim(t, "agent-b", 3); len(got) != 2 {
		t.Errorf("after agent-a stopped agent-b claimed %v, want its 2", leaseIDs(got))
	}
	if view, err := f.s.RegisterAgent(f.ctx, "agent-b", leaseTTL, leaseTTL); err != nil || view.Live != 1 {
		t.Errorf("RegisterAgent after agent-a left = %+v, %v; want 1 live", view, err)
	}
}

// An agent that stops beating stays live until its TTL but stops counting
// as fresh once its last beat is older than the freshness asked for; the
// caller always counts.
func testAgentFreshCount(t *testing.T, f *fixture) {
	if _, err := f.s.RegisterAgent(f.ctx, "agent-a", leaseTTL, leaseTTL); err != nil {
		t.Fatal(err)
	}
	view, err := f.s.RegisterAgent(f.ctx, "agent-b", leaseTTL, leaseTTL)
	if err != nil || view.Live != 2 || view.Fresh != 2 {
		t.Fatalf("RegisterAgent = %+v, %v; want 2 live, 2 fresh", view, err)
	}
	// agent-a beats no more: with a freshness of 1 ms it soon is live but
	// not fresh. The suite's clock moves on for an engine that stamps
	// beats with it; one on the database's clock sees the millisecond pass.
	f.clock.Advance(time.Second)
	deadline := time.Now().Add(time.Minute) // hang guard
	for {
		view, err = f.s.RegisterAgent(f.ctx, "agent-b", leaseTTL, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if view.Fresh == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RegisterAgent = %+v a minute after agent-a's last beat; want 1 fresh", view)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	if view.Live != 2 || view.Leader != "agent-a" {
		t.Errorf("RegisterAgent = %+v; want agent-a still live (and leading) until its TTL", view)
	}
}

package delivery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/auditexport/auditexport/internal/store"
)

// Several agents sharing a PostgreSQL store each deliver a share of the
// destinations: a destination is delivered only by the agent holding its
// lease, and every write its delivery makes to the store is fenced by the
// lease's epoch (store.Plan.Fence, store.Attempt.Fence). An agent that
// paused past its lease (a GC pause, a stalled disk, a network split)
// therefore cannot record a part, commit a plan or move a cursor once
// another agent took the destination over. The one write fencing cannot
// stop is an object PUT already on the wire; object keys are deterministic
// and every write carries If-None-Match: *, so that PUT is at worst the
// same object the new holder writes again (and gets 412 for), never a
// second copy.
//
// With a store that is not Shared (SQLite) none of this runs: the one agent
// delivers every destination, without a lease or a database call per tick.

const (
	// DefaultLeaseTTL is how long a lease lasts unless renewed: the longest
	// a dead agent's destinations wait for another agent.
	DefaultLeaseTTL = 10 * time.Second
	// DefaultLeaseRenew is the heartbeat: how often leases are renewed and
	// the fair share claimed. A third of the TTL survives two missed beats.
	DefaultLeaseRenew = 3 * time.Second
)

// defaultAgentID is hostname-pid-random: unique per process, and readable
// in logs and in a destination's status.
func defaultAgentID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "agent"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// AgentID is the id this Deliverer holds leases under.
func (d *Deliverer) AgentID() string { return d.opts.AgentID }

// holdsLocked reports whether the destination is delivered here: always
// with a store that is not shared, otherwise while its lease is held and
// not being released.
func (d *Deliverer) holdsLocked(id string) bool {
	if !d.leased {
		return true
	}
	_, ok := d.held[id]
	return ok && !d.releasing[id]
}

// heartbeat registers the agent, renews its leases, drops those it lost,
// and moves towards its fair share of the destinations: releasing the
// excess or claiming more.
func (d *Deliverer) heartbeat(ctx context.Context, destinations int) {
	start := time.Now()
	ttl := d.opts.LeaseTTL
	// Two missed beats and an agent no longer counts towards the shares.
	view, err := d.store.RegisterAgent(ctx, d.opts.AgentID, ttl, 2*d.opts.LeaseRenew)
	if err != nil {
		d.log.Warn("lease heartbeat", "error", err)
		d.renewFailed(start)
		return
	}
	d.leader.Store(view.Leader == d.opts.AgentID)
	renewed, err := d.store.RenewLeases(ctx, d.opts.AgentID, ttl)
	if err != nil {
		d.log.Warn("renewing leases", "error", err)
		d.renewFailed(start)
		return
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	d.renewedAt = start
	still := make(map[string]store.Lease, len(renewed))
	for _, l := range renewed {
		if _, ok := d.held[l.DestinationID]; !ok {
			// Held under this id by an earlier run that did not release
			// it: give it up, so it is claimed again with a new epoch.
			d.releaseAsync(l)
			continue
		}
		still[l.DestinationID] = l
	}
	for id, l := range d.held {
		if _, ok := still[id]; !ok && !d.releasing[id] {
			// (A lease being released goes when its release is done.)
			d.loseLocked(id, l, "not renewed in time or taken over")
		}
	}
	for id, l := range still {
		d.held[id] = l
	}

	active := len(d.held) - len(d.releasing)
	share := store.FairShare(destinations, view.Fresh)
	switch {
	case active > share:
		d.releaseExcessLocked(active - share)
	case active < share:
		claimed, err := d.store.ClaimLeases(ctx, d.opts.AgentID, share-active, ttl)
		if err != nil {
			d.log.Warn("claiming leases", "error", err)
		}
		for _, l := range claimed {
			d.held[l.DestinationID] = l
			if l.Epoch > 1 {
				d.log.Info("lease taken over", "destination", l.DestinationID, "epoch", l.Epoch, "agent", d.opts.AgentID)
				if d.metrics != nil {
					d.metrics.LeaseHandovers.Inc()
				}
			} else {
				d.log.Info("lease claimed", "destination", l.DestinationID, "epoch", l.Epoch, "agent", d.opts.AgentID)
			}
		}
	}
	d.setHeldLocked()
}

// renewFailed drops every lease once the last successful renewal is a TTL
// old: by then the database may have handed them to another agent. The
// agent's own clock measures from before that renewal's call, so it gives
// up no later than the database lets the leases lapse.
func (d *Deliverer) renewFailed(start time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if start.Sub(d.renewedAt) < d.opts.LeaseTTL {
		return
	}
	for id, l := range d.held {
		d.loseLocked(id, l, "not renewed for the lease TTL")
	}
	d.setHeldLocked()
}

// loseLocked stops delivering a destination whose lease is lost. The loop
// is cancelled at once, the attempt in flight too: its store writes would
// fail the fence anyway. It is not waited for here, only at Run's end.
func (d *Deliverer) loseLocked(id string, l store.Lease, why string) {
	d.log.Warn("lease lost", "destination", id, "epoch", l.Epoch, "agent", d.opts.AgentID, "reason", why)
	if d.metrics != nil {
		d.metrics.LeaseLosses.Inc()
	}
	delete(d.held, id)
	delete(d.releasing, id)
	if lp, ok := d.loops[id]; ok {
		delete(d.loops, id)
		lp.hard()
		lp.cancel()
		d.detached.Go(func() { <-lp.done })
	}
}

// releaseExcessLocked releases n leases over the fair share so that other
// agents can claim them. Each is released once the attempt in flight on it
// has finished (as on a stop), without holding up the heartbeat meanwhile;
// until then it is still held, and renewed.
func (d *Deliverer) releaseExcessLocked(n int) {
	var ids []string
	for id := range d.held {
		if !d.releasing[id] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids[len(ids)-n:] {
		d.releasing[id] = true
		l := d.held[id]
		lp := d.loops[id]
		delete(d.loops, id)
		if lp != nil {
			lp.cancel()
		}
		d.detached.Go(func() {
			if lp != nil {
				<-lp.done
			}
			d.release(l)
			d.mu.Lock()
			if d.releasing[id] {
				delete(d.held, id)
				delete(d.releasing, id)
			}
			d.setHeldLocked()
			d.mu.Unlock()
		})
	}
}

func (d *Deliverer) releaseAsync(l store.Lease) {
	d.detached.Go(func() { d.release(l) })
}

func (d *Deliverer) release(l store.Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.ShutdownGrace)
	defer cancel()
	if err := d.store.ReleaseLease(ctx, l); err != nil {
		d.log.Warn("releasing lease", "destination", l.DestinationID, "epoch", l.Epoch, "error", err)
		return
	}
	d.log.Info("lease released", "destination", l.DestinationID, "epoch", l.Epoch, "agent", d.opts.AgentID)
}

// leave runs after every loop stopped at the end of Run: it deregisters the
// agent, which releases its leases, so the other agents take its
// destinations at their next heartbeat instead of after the TTL.
func (d *Deliverer) leave() {
	d.detached.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.ShutdownGrace)
	defer cancel()
	d.mu.Lock()
	n := len(d.held)
	clear(d.held)
	clear(d.releasing)
	d.setHeldLocked()
	d.mu.Unlock()
	if err := d.store.DeregisterAgent(ctx, d.opts.AgentID); err != nil {
		d.log.Warn("releasing leases on stop; they expire after the lease TTL", "error", err)
		return
	}
	d.log.Info("leases released on stop", "agent", d.opts.AgentID, "leases", n)
}

func (d *Deliverer) setHeldLocked() {
	if d.metrics != nil {
		d.metrics.LeasesHeld.Set(float64(len(d.held)))
	}
}

// wakeLeases asks Run for a heartbeat now: a loop found its lease lost.
func (d *Deliverer) wakeLeases() {
	select {
	case d.leaseWake <- struct{}{}:
	default:
	}
}

// runsRetention reports whether this agent sweeps: with a shared store only
// the leader does, so each tenant's retention runs once, not once per
// agent. Two agents briefly both leading at a handover is harmless: a sweep
// deletes only events every destination has delivered, and deleting them
// twice deletes nothing the second time.
func (d *Deliverer) runsRetention() bool {
	return !d.leased || d.leader.Load()
}

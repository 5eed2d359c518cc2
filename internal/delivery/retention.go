package delivery

import (
	"context"
	"time"

	"github.com/auditexport/auditexport/internal/store"
)

// sweepBatch bounds one delete so a large sweep never holds the writer long.
const sweepBatch = 10000

// sweep deletes the events that every destination of their tenant has and
// that are older than the retention. A tenant's events are kept for a
// destination that is paused or failing, whatever their age: a customer's
// audit log is never dropped because their bucket was unreachable. Events of
// a tenant without any destination expire undelivered after the retention;
// they are counted in auditexport_events_expired_undelivered_total.
func (d *Deliverer) sweep(ctx context.Context) {
	d.pruneDeliveryLog(ctx)
	if d.opts.Retention <= 0 {
		return
	}
	tenants, err := d.store.ListTenants(ctx)
	if err != nil {
		d.log.Error("retention: listing tenants", "error", err)
		return
	}
	dests, err := d.store.ListDestinations(ctx, 0)
	if err != nil {
		d.log.Error("retention: listing destinations", "error", err)
		return
	}
	before := d.now().Add(-d.opts.Retention)
	for _, t := range tenants {
		if ctx.Err() != nil {
			return
		}
		n, undelivered, err := d.sweepTenant(ctx, t, dests, before)
		if err != nil {
			d.log.Error("retention", "tenant", t.Name, "error", err)
			continue
		}
		if n > 0 && undelivered && d.metrics != nil {
			d.metrics.EventsExpired.WithLabelValues(t.Name).Add(float64(n))
			d.log.Warn("events expired undelivered: the tenant has no destination", "tenant", t.Name, "events", n)
		}
	}
}

// sweepTenant deletes the tenant's expired, delivered events and returns how
// many, and whether they were undelivered (the tenant has no destination).
//
// Its cost follows what it deletes, not what is retained: a tenant whose
// oldest event is within the retention costs one indexed read and no write,
// and a delete walks the sequence only up to the last event stored before
// the cutoff. Reading every retained row each minute would, at a thousand
// tenants with a week retained, hold the writer most of the time.
func (d *Deliverer) sweepTenant(ctx context.Context, t store.Tenant, dests []store.Destination, before time.Time) (int64, bool, error) {
	first, last, err := d.store.ExpiredRange(ctx, t.ID, before)
	if err != nil || first == 0 {
		return 0, false, err
	}
	limit, undelivered, err := d.sweepLimit(ctx, t, dests)
	if err != nil {
		return 0, false, err
	}
	maxSeq := min(limit, last)
	if maxSeq < first {
		// What expired is not delivered yet (a paused or failing
		// destination): nothing to do.
		return 0, false, nil
	}
	return d.deleteUpTo(ctx, t, maxSeq, before), undelivered, nil
}

// sweepLimit is the highest sequence every destination of the tenant has
// delivered; with no destination, the head (and the events are undelivered).
func (d *Deliverer) sweepLimit(ctx context.Context, t store.Tenant, dests []store.Destination) (int64, bool, error) {
	limit, found := int64(-1), false
	for _, dest := range dests {
		if dest.TenantID != t.ID {
			continue
		}
		if !found || dest.Cursor < limit {
			limit, found = dest.Cursor, true
		}
	}
	if found {
		return limit, false, nil
	}
	head, err := d.store.Head(ctx, t.ID)
	return head, true, err
}

func (d *Deliverer) deleteUpTo(ctx context.Context, t store.Tenant, maxSeq int64, before time.Time) int64 {
	var total int64
	for ctx.Err() == nil {
		n, err := d.store.DeleteEvents(ctx, t.ID, maxSeq, before, sweepBatch)
		if err != nil {
			d.log.Error("retention: deleting events", "tenant", t.Name, "error", err)
			return total
		}
		total += n
		if n < sweepBatch {
			return total
		}
	}
	return total
}

package delivery

import (
	"context"

	"github.com/auditexport/auditexport/internal/store"
)

// Read-ahead of scanAhead: batches of about batchBytes of event bodies, at
// most aheadBatches of them in flight. Memory stays bounded (a few MiB)
// whatever the size of the group.
const (
	batchBytes   = 1 << 20
	aheadBatches = 3
)

// eventBatch holds events copied out of the store, bodies back to back.
type eventBatch struct {
	bodies []byte
	ends   []int
	seqs   []int64
	times  []int64
	names  []string
}

func (b *eventBatch) reset() {
	b.bodies, b.ends, b.seqs, b.times, b.names = b.bodies[:0], b.ends[:0], b.seqs[:0], b.times[:0], b.names[:0]
}

func (b *eventBatch) add(ev store.StoredEvent) {
	b.bodies = append(b.bodies, ev.Body...)
	b.ends = append(b.ends, len(b.bodies))
	b.seqs = append(b.seqs, ev.Seq)
	b.times = append(b.times, ev.TimeMs)
	b.names = append(b.names, ev.EventName)
}

func (b *eventBatch) each(fn func(ev store.StoredEvent) error) error {
	start := 0
	for i, end := range b.ends {
		ev := store.StoredEvent{Seq: b.seqs[i], EventName: b.names[i], TimeMs: b.times[i], Body: b.bodies[start:end]}
		if err := fn(ev); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// scanAhead is store.Scan with the reading done in a second goroutine, so
// that reading the store overlaps compressing and uploading: alone, each
// stage leaves the other core idle. fn sees the events in sequence order and
// must not keep ev.Body. When fn returns an error the read-ahead is dropped.
func (d *Deliverer) scanAhead(ctx context.Context, tenantID int64, g store.Group, fn func(ev store.StoredEvent) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	full := make(chan *eventBatch, aheadBatches)
	free := make(chan *eventBatch, aheadBatches+1)
	for range aheadBatches + 1 {
		free <- &eventBatch{}
	}
	read := make(chan error, 1)
	go func() {
		defer close(full)
		read <- d.readBatches(ctx, tenantID, g, full, free)
	}()
	var err error
	for b := range full {
		if err == nil {
			err = b.each(fn)
			if err != nil {
				cancel() // stop reading; the loop drains what was read
			}
		}
		free <- b
	}
	if rerr := <-read; err == nil {
		err = rerr
	}
	return err
}

// readBatches scans g into batches taken from free and sends them on full.
func (d *Deliverer) readBatches(ctx context.Context, tenantID int64, g store.Group, full, free chan *eventBatch) error {
	b := <-free
	b.reset()
	err := d.store.Scan(ctx, tenantID, g, func(ev store.StoredEvent) error {
		b.add(ev)
		if len(b.bodies) < batchBytes {
			return nil
		}
		if err := send(ctx, full, b); err != nil {
			return err
		}
		select {
		case b = <-free:
			b.reset()
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err == nil && len(b.ends) > 0 {
		err = send(ctx, full, b)
	}
	return err
}

func send(ctx context.Context, full chan *eventBatch, b *eventBatch) error {
	select {
	case full <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

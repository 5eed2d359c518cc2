package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/encode"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/store"
)

// Putter writes one object with a conditional PUT. *s3sink.Writer is one.
type Putter interface {
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64, meta s3sink.PutMeta) (s3sink.PutResult, error)
}

// planObject is one object of a persisted plan. The plan records the group
// each key was built from, so a re-run after a crash reads the same events
// and writes the same bytes under the same key.
type planObject struct {
	Key       string    `json:"key"`
	EventName string    `json:"event_name"`
	Day       time.Time `json:"day"`
	FirstSeq  int64     `json:"first_seq"`
	LastSeq   int64     `json:"last_seq"`
	Count     int64     `json:"count"`
}

// target is what one delivery attempt needs to know about a destination.
type target struct {
	dest   store.Destination
	spec   api.DestinationSpec
	tenant store.Tenant
	put    Putter
}

// runOnce delivers everything between the destination's cursor and the
// tenant's head, as one plan: it re-runs a pending plan first if there is one.
// It returns the number of events delivered.
func (d *Deliverer) runOnce(ctx context.Context, t *target, windowEnd time.Time) (int64, error) {
	plan, err := d.store.PendingPlan(ctx, t.dest.ID)
	if errors.Is(err, store.ErrNotFound) {
		plan, err = d.newPlan(ctx, t, windowEnd)
		if err != nil || plan.ToSeq == 0 {
			return 0, err
		}
	} else if err != nil {
		return 0, fmt.Errorf("reading pending plan: %w", err)
	}
	var objects []planObject
	if err := json.Unmarshal(plan.Objects, &objects); err != nil {
		return 0, fmt.Errorf("decoding plan: %w", err)
	}
	done := store.Delivered{}
	for _, o := range objects {
		size, err := d.writeObject(ctx, t, o)
		if err != nil {
			return 0, err
		}
		done.Events += o.Count
		done.Objects++
		done.Bytes += size
	}
	done.At = d.now()
	if err := d.store.CommitPlan(ctx, plan, done); err != nil {
		return 0, fmt.Errorf("committing plan: %w", err)
	}
	d.record(t, done)
	return done.Events, nil
}

// newPlan builds and saves the plan for (cursor, head]. A zero plan means
// there is nothing to deliver.
func (d *Deliverer) newPlan(ctx context.Context, t *target, windowEnd time.Time) (store.Plan, error) {
	head, err := d.store.Head(ctx, t.tenant.ID)
	if err != nil {
		return store.Plan{}, fmt.Errorf("reading head: %w", err)
	}
	if head <= t.dest.Cursor {
		return store.Plan{}, nil
	}
	groups, err := d.store.Groups(ctx, t.tenant.ID, t.dest.Cursor+1, head, t.spec.EventTypes)
	if err != nil {
		return store.Plan{}, fmt.Errorf("planning: %w", err)
	}
	ext := encode.Extension(t.spec.Format, t.spec.Compression)
	objects := make([]planObject, 0, len(groups))
	for _, g := range groups {
		key := Key(KeyParts{
			Prefix: t.spec.Prefix, EventType: g.EventName, Day: g.Day, Tenant: t.tenant.Name,
			WindowEnd: windowEnd, FirstSeq: g.FirstSeq, LastSeq: g.LastSeq, Ext: ext,
		})
		objects = append(objects, planObject{
			Key: key, EventName: g.EventName, Day: g.Day,
			FirstSeq: g.FirstSeq, LastSeq: g.LastSeq, Count: g.Count,
		})
	}
	data, err := json.Marshal(objects)
	if err != nil {
		return store.Plan{}, err
	}
	plan := store.Plan{
		DestinationID: t.dest.ID, FromSeq: t.dest.Cursor + 1, ToSeq: head,
		WindowEnd: windowEnd, Objects: data, CreatedAt: d.now(),
	}
	if err := d.store.SavePlan(ctx, plan); err != nil {
		return store.Plan{}, fmt.Errorf("saving plan: %w", err)
	}
	return plan, nil
}

// writeObject encodes one object to a spool file (so memory stays flat
// whatever the object's size) and PUTs it. An object that already exists
// (412) counts as written: it is this same object from an earlier attempt.
func (d *Deliverer) writeObject(ctx context.Context, t *target, o planObject) (int64, error) {
	f, err := os.CreateTemp(d.opts.SpoolDir, "object-*")
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()

	sum, err := d.encodeGroup(ctx, t, o, f)
	if err != nil {
		return 0, err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	res, err := t.put.Put(ctx, o.Key, f, size, s3sink.PutMeta{
		ContentType:     encode.ContentType(t.spec.Format),
		ContentEncoding: encode.ContentEncoding(t.spec.Compression),
	})
	if err != nil {
		return 0, err
	}
	d.log.Debug("object written", "destination", t.dest.ID, "key", o.Key, "events", o.Count,
		"bytes", size, "sha256", sum, "already_existed", res.AlreadyExists)
	return size, nil
}

func (d *Deliverer) encodeGroup(ctx context.Context, t *target, o planObject, f *os.File) (string, error) {
	h := sha256.New()
	w, err := encode.NewWriter(io.MultiWriter(f, h), t.spec.Format, t.spec.Compression)
	if err != nil {
		return "", err
	}
	g := store.Group{EventName: o.EventName, Day: o.Day, FirstSeq: o.FirstSeq, LastSeq: o.LastSeq, Count: o.Count}
	err = d.store.Scan(ctx, t.tenant.ID, g, func(ev store.StoredEvent) error {
		return w.Write(ev.Body)
	})
	if err != nil {
		return "", fmt.Errorf("reading events: %w", err)
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("encoding: %w", err)
	}
	if w.Count() != o.Count {
		return "", fmt.Errorf("plan for %s expects %d events, the store returned %d", o.Key, o.Count, w.Count())
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (d *Deliverer) record(t *target, done store.Delivered) {
	if d.metrics == nil {
		return
	}
	labels := []string{t.tenant.Name, t.dest.ID}
	d.metrics.EventsDelivered.WithLabelValues(labels...).Add(float64(done.Events))
	d.metrics.ObjectsDelivered.WithLabelValues(labels...).Add(float64(done.Objects))
	d.metrics.BytesDelivered.WithLabelValues(labels...).Add(float64(done.Bytes))
}

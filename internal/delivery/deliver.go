package delivery

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/encode"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/store"
	"golang.org/x/sync/errgroup"
)

// ObjectWriter streams one object to the bucket. *s3sink.Upload is one.
type ObjectWriter interface {
	io.Writer
	Written() int64
	Close() (s3sink.PutResult, error)
	Abort()
}

// Sink opens object uploads for one destination.
type Sink interface {
	NewUpload(ctx context.Context, key string, meta s3sink.PutMeta, partSize int) ObjectWriter
}

// SinkFor adapts an S3 writer to a Sink.
func SinkFor(w *s3sink.Writer) Sink { return writerSink{w} }

type writerSink struct{ w *s3sink.Writer }

func (s writerSink) NewUpload(ctx context.Context, key string, meta s3sink.PutMeta, partSize int) ObjectWriter {
	return s.w.NewUpload(ctx, key, meta, partSize)
}

// Prepare resolves the writer's credentials (see s3sink.Writer.Prepare).
func (s writerSink) Prepare(ctx context.Context) error { return s.w.Prepare(ctx) }

// Ready reports whether Prepare would return at once (see
// s3sink.Writer.Ready).
func (s writerSink) Ready() bool { return s.w.Ready() }

// planGroup is one (event type, day) group of a persisted plan. Parts lists
// the objects whose boundaries are already fixed: an object's range is
// recorded before it is completed, so a re-run after a crash rewrites the
// same events under the same key (and gets 412 if it had landed).
type planGroup struct {
	EventName string `json:"event_name"`
	// Names makes the group mixed: the events of all these names, in one
	// object (see mixGroups); EventName is then empty.
	Names    []string      `json:"names,omitempty"`
	Day      time.Time     `json:"day"`
	Span     time.Duration `json:"span,omitempty"`
	FirstSeq int64         `json:"first_seq"`
	LastSeq  int64         `json:"last_seq"`
	Count    int64         `json:"count"`
	Parts    []planPart    `json:"parts,omitempty"`
}

// scan is the store group of g's events from seq from to seq to.
func (g *planGroup) scan(from, to int64) store.Group {
	return store.Group{EventName: g.EventName, Names: g.Names, Day: g.Day, Span: g.Span, FirstSeq: from, LastSeq: to}
}

type planPart struct {
	Part     int    `json:"part"`
	Key      string `json:"key"`
	FirstSeq int64  `json:"first_seq"`
	LastSeq  int64  `json:"last_seq"`
	Count    int64  `json:"count"`
	Done     bool   `json:"done,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
	Bytes    int64  `json:"bytes,omitempty"`
	// OldestMs and NewestMs bound the part's event times (Unix ms), for
	// the delivery log and the digests.
	OldestMs int64 `json:"oldest_ms,omitempty"`
	NewestMs int64 `json:"newest_ms,omitempty"`
}

// seen widens the part's event time bounds to include ms.
func (p *planPart) seen(ms int64) {
	if p.Count == 0 || ms < p.OldestMs {
		p.OldestMs = ms
	}
	if p.Count == 0 || ms > p.NewestMs {
		p.NewestMs = ms
	}
}

// logged is the part as the delivery log records it.
func (p planPart) logged() store.LoggedObject {
	return store.LoggedObject{
		Key: p.Key, SHA256: p.SHA256, Size: p.Bytes, Events: p.Count, FirstSeq: p.FirstSeq, LastSeq: p.LastSeq,
		OldestEventTime: msTime(p.OldestMs), NewestEventTime: msTime(p.NewestMs),
	}
}

// msTime is a Unix millisecond time, zero for 0 (a part recorded before
// parts kept their event times).
func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// target is what one delivery attempt needs to know about a destination.
type target struct {
	dest   store.Destination
	spec   api.DestinationSpec
	tenant store.Tenant
	sink   Sink
	sched  Schedule
	// fence is the lease every store write of the destination's plans is
	// made under (the zero Lease when the store is not shared), and hard
	// ends when it is lost.
	fence store.Lease
	hard  context.Context

	// synced is set while t.dest's cursor is the stored one and the
	// destination has no pending plan: after a successful attempt. The
	// loop is the only writer of its destination's plans and cursor
	// (under its lease), so the next attempt need not read either back;
	// a failed attempt clears it, since it may leave a plan behind.
	synced bool
	// digestsDue is when the next digest falls due: until then a digest
	// pass has nothing to write and reads nothing (zero: unknown, read the
	// store).
	digestsDue time.Time
}

// attemptState is one run of a plan.
type attemptState struct {
	t      *target
	plan   store.Plan
	groups []planGroup
	done   store.Delivered
	// saved is set once the plan is in the store. A new plan is saved
	// with its first object's boundaries, just before that object is
	// completed: nothing of the plan is visible in the bucket before, so
	// one store write does the work of two.
	saved bool
	// mu guards groups, done, saved and plan.Objects while groups are
	// written at once (see writeGroups).
	mu sync.Mutex
}

// runOnce delivers the events of the window ending at windowEnd as one plan,
// re-running a pending plan first if there is one. It returns the number of
// events delivered.
func (d *Deliverer) runOnce(ctx context.Context, t *target, windowEnd time.Time) (int64, error) {
	plan, err := d.pendingPlan(ctx, t)
	saved := err == nil
	if errors.Is(err, store.ErrNotFound) {
		plan, err = d.newPlan(ctx, t, windowEnd)
		if err != nil || plan.ToSeq == 0 {
			return 0, err
		}
	} else if err != nil {
		return 0, fmt.Errorf("reading pending plan: %w", err)
	}
	// The plan's writes (parts recorded, the commit) are fenced by the
	// lease: after a takeover they fail with ErrLeaseLost and change
	// nothing. A PUT already sent by then is harmless: its key and bytes
	// are the plan's, and If-None-Match: * makes the new holder's write of
	// the same object a 412, never a second copy.
	plan.Fence = t.fence
	a := &attemptState{t: t, plan: plan, saved: saved}
	if err := json.Unmarshal(plan.Objects, &a.groups); err != nil {
		return 0, fmt.Errorf("decoding plan: %w", err)
	}
	if err := d.writeGroups(ctx, a); err != nil {
		return 0, err
	}
	if !a.saved {
		// No object was written (none of the range's events made one):
		// the plan is saved only so that its commit moves the cursor.
		if err := d.savePlan(ctx, a); err != nil {
			return 0, err
		}
	}
	a.done.At = d.now()
	if err := d.store.CommitPlan(ctx, plan, a.done); err != nil {
		return 0, fmt.Errorf("committing plan: %w", err)
	}
	t.dest.Cursor = plan.ToSeq
	d.record(t, a.done)
	return a.done.Events, nil
}

// pendingPlan is the destination's pending plan, store.ErrNotFound when
// there is none, read from the store unless t is synced.
func (d *Deliverer) pendingPlan(ctx context.Context, t *target) (store.Plan, error) {
	if t.synced {
		return store.Plan{}, store.ErrNotFound
	}
	return d.store.PendingPlan(ctx, t.dest.ID)
}

// newPlan builds the plan for the events after the cursor that were stored
// before the window's cutoff. A zero plan means nothing to do. The plan is
// saved by the first savePlan, before its first object is completed.
func (d *Deliverer) newPlan(ctx context.Context, t *target, windowEnd time.Time) (store.Plan, error) {
	head, err := d.store.LastSeqBefore(ctx, t.tenant.ID, t.dest.Cursor, t.sched.Cutoff(windowEnd))
	if err != nil {
		return store.Plan{}, fmt.Errorf("reading head: %w", err)
	}
	if head <= t.dest.Cursor {
		return store.Plan{}, nil
	}
	groups, err := d.store.GroupsBy(ctx, t.tenant.ID, t.dest.Cursor+1, head, t.spec.EventTypes, groupSpan(t.spec.KeyTemplate))
	if err != nil {
		return store.Plan{}, fmt.Errorf("planning: %w", err)
	}
	if !groupsByName(t.spec) {
		groups = mixGroups(groups)
	}
	pg := make([]planGroup, 0, len(groups))
	for _, g := range groups {
		pg = append(pg, planGroup{EventName: g.EventName, Names: g.Names, Day: g.Day, Span: g.Span, FirstSeq: g.FirstSeq, LastSeq: g.LastSeq, Count: g.Count})
	}
	data, err := json.Marshal(pg)
	if err != nil {
		return store.Plan{}, err
	}
	return store.Plan{
		DestinationID: t.dest.ID, FromSeq: t.dest.Cursor + 1, ToSeq: head,
		WindowEnd: windowEnd, Objects: data, CreatedAt: d.now(), Fence: t.fence,
	}, nil
}

// groupsByName reports whether the destination writes an object per event
// name: its keys name the event type, or its events are mapped to OCSF,
// whose class comes from the name. Otherwise each day's (or hour's) events
// of a window share one object whatever their names: a platform with
// dozens of event names would else write dozens of small objects a window.
func groupsByName(spec api.DestinationSpec) bool {
	tmpl := spec.KeyTemplate
	if tmpl == "" {
		tmpl = api.DefaultKeyTemplate
	}
	return spec.EventSchema == api.EventSchemaOCSF || api.KeyTemplateUses(tmpl)["event_type"]
}

// mixGroups merges the groups of each time span into one group of all
// their names, ordered by first sequence number as GroupsBy orders.
func mixGroups(groups []store.Group) []store.Group {
	var mixed []store.Group
	at := map[int64]int{} // by the span's start, in ms
	for _, g := range groups {
		i, ok := at[g.Day.UnixMilli()]
		if !ok {
			at[g.Day.UnixMilli()] = len(mixed)
			mixed = append(mixed, store.Group{Day: g.Day, Span: g.Span, FirstSeq: g.FirstSeq, LastSeq: g.LastSeq})
			i = len(mixed) - 1
		}
		m := &mixed[i]
		m.Names = append(m.Names, g.EventName)
		m.FirstSeq, m.LastSeq, m.Count = min(m.FirstSeq, g.FirstSeq), max(m.LastSeq, g.LastSeq), m.Count+g.Count
	}
	for i := range mixed {
		slices.Sort(mixed[i].Names)
	}
	slices.SortFunc(mixed, func(a, b store.Group) int { return cmp.Compare(a.FirstSeq, b.FirstSeq) })
	return mixed
}

// groupsAtOnce is how many groups of one plan are written at the same time.
// Encoding (gzip, Parquet) is the slowest step of a large delivery and uses
// one core per object; a plan of several event names keeps two busy. More
// would only add buffers: the agent's other destinations have workers of
// their own.
const groupsAtOnce = 2

// writeGroups writes the plan's groups, groupsAtOnce at a time; the first
// error stops the others (their objects are aborted, and the plan records
// what was written, as after a crash).
func (d *Deliverer) writeGroups(ctx context.Context, a *attemptState) error {
	if len(a.groups) == 1 {
		return d.writeGroup(ctx, a, 0)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(groupsAtOnce)
	for i := range a.groups {
		g.Go(func() error { return d.writeGroup(ctx, a, i) })
	}
	return g.Wait()
}

// writeGroup writes a group's objects: first the parts whose boundaries are
// recorded, then new parts until the group's last event.
func (d *Deliverer) writeGroup(ctx context.Context, a *attemptState, gi int) error {
	g := &a.groups[gi]
	next, part := g.FirstSeq, 1
	a.mu.Lock()
	recorded := slices.Clone(g.Parts)
	a.mu.Unlock()
	for pi, p := range recorded {
		if !p.Done {
			if err := d.rewritePart(ctx, a, gi, pi); err != nil {
				return err
			}
		}
		a.mu.Lock()
		a.count(g.Parts[pi])
		a.mu.Unlock()
		next, part = p.LastSeq+1, p.Part+1
	}
	for next <= g.LastSeq {
		p, err := d.newPart(ctx, a, gi, next, part)
		if err != nil {
			return err
		}
		if p.Count == 0 {
			break // the rest of the range holds no event of this group
		}
		a.mu.Lock()
		a.count(p)
		a.mu.Unlock()
		next, part = p.LastSeq+1, p.Part+1
	}
	return nil
}

// count adds a written object to what the plan's commit records, and to
// the delivery log in the order written. The caller holds a.mu.
func (a *attemptState) count(p planPart) {
	a.done.Events += p.Count
	a.done.Objects++
	a.done.Bytes += p.Bytes
	a.done.Log = append(a.done.Log, p.logged())
}

// errPartFull stops a scan when the object reached max_object_bytes.
var errPartFull = errors.New("part full")

// newPart streams events from seq `from` into a new object until the group
// ends or the object's compressed size reaches max_object_bytes.
func (d *Deliverer) newPart(ctx context.Context, a *attemptState, gi int, from int64, part int) (planPart, error) {
	t, g := a.t, &a.groups[gi]
	class, ok, err := d.partClass(ctx, t, g, from)
	if err != nil || !ok {
		return planPart{Part: part, FirstSeq: from}, err
	}
	p := planPart{Part: part, Key: d.key(a, g, part, class), FirstSeq: from}
	limit := t.spec.MaxObjectBytes
	obj, err := d.openObject(ctx, t, p.Key, class)
	if err != nil {
		return p, err
	}
	err = d.scanAhead(ctx, t.tenant.ID, g.scan(from, g.LastSeq), func(ev store.StoredEvent) error {
		if err := obj.enc.Write(ev); err != nil {
			return err
		}
		p.seen(ev.TimeMs)
		p.LastSeq, p.Count = ev.Seq, p.Count+1
		if obj.up.Written() >= limit {
			return errPartFull
		}
		return nil
	})
	if err != nil && !errors.Is(err, errPartFull) {
		obj.up.Abort()
		return p, fmt.Errorf("reading events: %w", err)
	}
	if p.Count == 0 {
		obj.up.Abort()
		return p, nil
	}
	return d.finishPart(ctx, a, gi, obj, p, true)
}

// rewritePart writes a recorded part again, exactly its recorded range.
func (d *Deliverer) rewritePart(ctx context.Context, a *attemptState, gi, pi int) error {
	a.mu.Lock()
	t, g, p := a.t, &a.groups[gi], a.groups[gi].Parts[pi]
	a.mu.Unlock()
	class, _, err := d.partClass(ctx, t, g, p.FirstSeq)
	if err != nil {
		return err
	}
	obj, err := d.openObject(ctx, t, p.Key, class)
	if err != nil {
		return err
	}
	var n int64
	err = d.scanAhead(ctx, t.tenant.ID, g.scan(p.FirstSeq, p.LastSeq), func(ev store.StoredEvent) error {
		n++
		return obj.enc.Write(ev)
	})
	if err == nil && n != p.Count {
		err = fmt.Errorf("plan for %s expects %d events, the store returned %d", p.Key, p.Count, n)
	}
	if err != nil {
		obj.up.Abort()
		return fmt.Errorf("reading events: %w", err)
	}
	_, err = d.finishPart(ctx, a, gi, obj, p, false)
	return err
}

// object is an object being encoded and uploaded.
type object struct {
	up  ObjectWriter
	enc eventEncoder
	sum hash.Hash
}

func (d *Deliverer) openObject(ctx context.Context, t *target, key string, class int32) (*object, error) {
	up := t.sink.NewUpload(ctx, key, s3sink.PutMeta{
		ContentType:     encode.ContentType(t.spec.Format),
		ContentEncoding: encode.ContentEncoding(t.spec.Compression),
	}, partSize(t.spec.MaxObjectBytes))
	o := &object{up: up, sum: sha256.New()}
	enc, err := d.newEncoder(io.MultiWriter(up, o.sum), t, class)
	if err != nil {
		up.Abort()
		return nil, err
	}
	o.enc = enc
	return o, nil
}

// finishPart flushes the encoder, records the part's boundaries in the plan
// (when new) before completing the object, then marks it done. It returns
// the part with its size and checksum.
//
// The done mark is saved with the next part's boundaries, not on its own:
// after a crash a part that landed but is not marked is written again and
// gets 412, which counts as done. The commit follows the last part, so a
// plan of one object costs two store writes (save, commit).
func (d *Deliverer) finishPart(ctx context.Context, a *attemptState, gi int, o *object, p planPart, isNew bool) (planPart, error) {
	if err := o.enc.Close(); err != nil {
		o.up.Abort()
		return p, fmt.Errorf("encoding: %w", err)
	}
	p.Bytes, p.SHA256 = o.up.Written(), hex.EncodeToString(o.sum.Sum(nil))
	g := &a.groups[gi]
	if isNew {
		a.mu.Lock()
		g.Parts = append(g.Parts, p)
		err := d.savePlan(ctx, a)
		a.mu.Unlock()
		if err != nil {
			o.up.Abort()
			return p, err
		}
	}
	res, err := o.up.Close()
	if err != nil {
		return p, err
	}
	d.log.Debug("object written", "destination", a.t.dest.ID, "key", p.Key, "events", p.Count,
		"bytes", p.Bytes, "sha256", p.SHA256, "already_existed", res.AlreadyExists)
	a.mu.Lock()
	for i := range g.Parts {
		if g.Parts[i].Part == p.Part {
			g.Parts[i].Done, g.Parts[i].Bytes, g.Parts[i].SHA256 = true, p.Bytes, p.SHA256
		}
	}
	a.mu.Unlock()
	return p, nil
}

// savePlan writes the plan with the parts recorded so far: SavePlan the
// first time for a new plan, UpdatePlan after. While groups are written at
// once the caller holds a.mu, so the plan's writes follow one another.
func (d *Deliverer) savePlan(ctx context.Context, a *attemptState) error {
	data, err := json.Marshal(a.groups)
	if err != nil {
		return err
	}
	a.plan.Objects = data
	if !a.saved {
		if err := d.store.SavePlan(ctx, a.plan); err != nil {
			return fmt.Errorf("saving plan: %w", err)
		}
		a.saved = true
		return nil
	}
	if err := d.store.UpdatePlan(ctx, a.plan); err != nil {
		return fmt.Errorf("recording plan: %w", err)
	}
	return nil
}

func (d *Deliverer) key(a *attemptState, g *planGroup, part int, class int32) string {
	t := a.t
	return Key(KeyParts{
		Source: t.spec.SourceName, Region: t.spec.Region, Account: t.spec.Account(), Class: className(class),
		Template: t.spec.KeyTemplate, Prefix: t.spec.Prefix, EventType: g.EventName, Day: g.Day, Tenant: t.tenant.Name,
		WindowStart: t.sched.Last(a.plan.WindowEnd.Add(-time.Nanosecond)), WindowEnd: a.plan.WindowEnd, FirstSeq: g.FirstSeq, LastSeq: g.LastSeq, Part: part,
		Ext: encode.Extension(t.spec.Format, t.spec.Compression),
	})
}

// partSize keeps a max_object_bytes object within S3's 10,000 parts.
func partSize(maxObject int64) int {
	size := int64(s3sink.DefaultPartSize)
	if need := maxObject/(s3sink.MaxParts-1) + 1; need > size {
		size = need
	}
	return int(size)
}

func (d *Deliverer) record(t *target, done store.Delivered) {
	if d.metrics == nil {
		return
	}
	d.metrics.Delivered(t.tenant.Name, t.dest.ID, done.Events, done.Objects, done.Bytes)
}

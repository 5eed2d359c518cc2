package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgLockHeadSQL locks the tenant's head row for the rest of the transaction.
const pgLockHeadSQL = `SELECT head FROM tenant_heads WHERE tenant_id = $1 FOR UPDATE`

// pgInsertEventsSQL stores one tenant's events of an Append in one statement.
// The input holds no repeats (Append drops those first), so the anti-join
// against the stored events is the whole duplicate check; every row it keeps
// is inserted. Each kept row is numbered in input order after the head, the
// head moves by the number inserted, and received_ms never goes below the
// last commit's so that it does not decrease along the sequence (see
// LastSeqBefore). The result is the input positions that were stored, in
// order.
//
// There is deliberately no ON CONFLICT clause: with the head row locked no
// other transaction can insert this tenant's events, so a unique violation
// would be a bug, and skipping the row would leave a gap in the sequence.
const pgInsertEventsSQL = `WITH input AS (
	SELECT * FROM unnest($2::int[], $3::text[], $4::text[], $5::bigint[], $6::bytea[])
		AS u (ord, message_id, event_name, time_ms, body)
), fresh AS (
	SELECT i.*, row_number() OVER (ORDER BY i.ord) AS n
	FROM input i
	WHERE NOT EXISTS (SELECT 1 FROM events e
		WHERE e.tenant_id = $1 AND e.time_ms = i.time_ms AND e.message_id = i.message_id)
), h AS (
	SELECT head, GREATEST(received_ms, $7) AS received_ms
	FROM tenant_heads WHERE tenant_id = $1
), ins AS (
	INSERT INTO events (tenant_id, seq, message_id, event_name, time_ms, received_ms, body)
	SELECT $1, h.head + f.n, f.message_id, f.event_name, f.time_ms, h.received_ms, f.body
	FROM fresh f CROSS JOIN h
	RETURNING 1
), moved AS (
	UPDATE tenant_heads
	SET head = head + (SELECT count(*) FROM ins), received_ms = (SELECT received_ms FROM h)
	WHERE tenant_id = $1 AND EXISTS (SELECT 1 FROM ins)
)
SELECT ord FROM fresh ORDER BY ord`

// Append stores the batches in one transaction. See Store.Append.
//
// Sequence numbers: every commit for a tenant locks the tenant's head row
// (SELECT … FOR UPDATE) before it reads anything else, numbers its events
// from that head and moves the head in the same transaction. This is safe
// with any number of agents at READ COMMITTED (the level every transaction
// here runs at):
//
//   - The row lock serialises committers per tenant: a second transaction
//     waits on it until the first commits (or rolls back), so two commits
//     never take the same numbers and numbers are taken in commit order.
//   - At READ COMMITTED every statement takes a new snapshot. The insert is a
//     separate statement issued after the lock was granted, so it sees the
//     head and the events the previous holder committed: the duplicate check
//     and the numbering are never based on a stale view.
//   - The head and the events it covers become visible together, at commit.
//     A reader that sees head N therefore sees every event up to N, and no
//     transaction still running can commit a number at or below N: it
//     would need the lock, which is granted only after the commits that
//     moved the head to N. Delivery reads up to the head (or a bound below
//     it), so it never passes a number a slower transaction will still
//     commit.
//
// Tenants are locked in id order, so calls spanning several tenants cannot
// deadlock one another. All statements of the call go out in one pipelined
// batch: a commit costs three round trips (begin, the batch, commit)
// whatever the number of events. An unknown tenant fails the whole call with
// an error wrapping ErrNotFound and stores nothing.
func (p *Postgres) Append(ctx context.Context, batches []AppendBatch) ([]AppendResult, error) {
	results := make([]AppendResult, len(batches))
	if !hasEvents(batches) {
		return results, nil
	}
	received := toMs(p.now())
	plans := planAppend(batches)

	err := p.tx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, tp := range plans {
			b.Queue(pgLockHeadSQL, tp.tenantID)
			b.Queue(pgInsertEventsSQL, tp.tenantID, tp.ords, tp.messageIDs, tp.names, tp.times, tp.bodies, received)
		}
		br := tx.SendBatch(ctx, b)
		err := readAppend(br, plans, results)
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return nil, p.fail(ctx, "append", err)
	}
	for i, b := range batches {
		results[i].Duplicates = len(b.Events) - results[i].Stored
	}
	return results, nil
}

// tenantAppend is the part of an Append call for one tenant: its events
// without repeats, as the columns pgInsertEventsSQL takes.
type tenantAppend struct {
	tenantID   int64
	refs       []eventRef // refs[ord] is where input position ord came from
	ords       []int32
	messageIDs []string
	names      []string
	times      []int64
	bodies     [][]byte
}

type eventRef struct{ batch int }

// planAppend groups the calls' events by tenant (in tenant id order) and
// drops the repeats inside the call, which count as duplicates: the first
// copy, in batch and event order, is the one stored.
func planAppend(batches []AppendBatch) []*tenantAppend {
	byTenant := make(map[int64]*tenantAppend)
	type key struct {
		tenant int64
		timeMs int64
		id     string
	}
	seen := make(map[key]bool)
	for i, b := range batches {
		tp := byTenant[b.TenantID]
		if tp == nil {
			tp = &tenantAppend{tenantID: b.TenantID}
			byTenant[b.TenantID] = tp
		}
		for _, ev := range b.Events {
			k := key{b.TenantID, ev.TimeMs, ev.MessageID}
			if seen[k] {
				continue
			}
			seen[k] = true
			tp.ords = append(tp.ords, int32(len(tp.refs)))
			tp.refs = append(tp.refs, eventRef{batch: i})
			tp.messageIDs = append(tp.messageIDs, ev.MessageID)
			tp.names = append(tp.names, ev.EventName)
			tp.times = append(tp.times, ev.TimeMs)
			tp.bodies = append(tp.bodies, nonNil(ev.Body))
		}
	}
	plans := make([]*tenantAppend, 0, len(byTenant))
	for _, tp := range byTenant {
		plans = append(plans, tp)
	}
	slices.SortFunc(plans, func(a, b *tenantAppend) int { return compareInt64(a.tenantID, b.tenantID) })
	return plans
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readAppend reads the batch's answers into results: for each tenant the
// locked head, then the input positions stored, which took head+1, head+2, …
func readAppend(br pgx.BatchResults, plans []*tenantAppend, results []AppendResult) error {
	for _, tp := range plans {
		var head int64
		if err := br.QueryRow().Scan(&head); err != nil {
			return pgNotFound(err, "tenant %d", tp.tenantID)
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		ords, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		for _, ord := range ords {
			head++
			r := &results[tp.refs[ord].batch]
			if r.Stored == 0 {
				r.FirstSeq = head
			}
			r.LastSeq = head
			r.Stored++
		}
	}
	return nil
}

// Head returns the tenant's last sequence number, 0 when it has no events.
// An unknown tenant is an error wrapping ErrNotFound.
func (p *Postgres) Head(ctx context.Context, tenantID int64) (int64, error) {
	var head int64
	err := p.queryRow(ctx, `SELECT head FROM tenant_heads WHERE tenant_id = $1`, []any{tenantID}, &head)
	if err != nil {
		return 0, p.fail(ctx, "head", pgNotFound(err, "tenant %d", tenantID))
	}
	return head, nil
}

// OldestAfter returns when the first event after seq was stored, or the zero
// time when there is none.
func (p *Postgres) OldestAfter(ctx context.Context, tenantID, seq int64) (time.Time, error) {
	var received int64
	err := p.queryRow(ctx, `SELECT received_ms FROM events
		WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT 1`, []any{tenantID, seq}, &received)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, p.fail(ctx, fmt.Sprintf("oldest event after %d", seq), err)
	}
	return time.UnixMilli(received).UTC(), nil
}

// LastSeqBefore returns the last sequence number stored before t. See
// Store.LastSeqBefore. One statement, so the event lookup and the head come
// from the same snapshot. Append keeps received_ms from decreasing along a
// tenant's sequence, so the first entry of the ingest-time index at or after
// t is the least sequence number stored then: the search reads the events
// stored since t, not the backlog after `after`.
func (p *Postgres) LastSeqBefore(ctx context.Context, tenantID, after int64, t time.Time) (int64, error) {
	var seq *int64
	err := p.queryRow(ctx, `SELECT COALESCE(
		(SELECT seq - 1 FROM events
			WHERE tenant_id = $1 AND received_ms >= $2 AND seq > $3
			ORDER BY received_ms, seq LIMIT 1),
		(SELECT head FROM tenant_heads WHERE tenant_id = $1))`,
		[]any{tenantID, t.UnixMilli(), after}, &seq)
	if err != nil {
		return 0, p.fail(ctx, fmt.Sprintf("last sequence before %s", t.Format(time.RFC3339)), err)
	}
	if seq == nil {
		return 0, fmt.Errorf("last sequence before: tenant %d: %w", tenantID, ErrNotFound)
	}
	return *seq, nil
}

// pgSlotExpr is the number of the time span ($1 ms long) holding time_ms,
// rounded toward negative infinity also for times before 1970 (integer
// division truncates toward zero).
const pgSlotExpr = `((time_ms - ((time_ms % $1) + $1) % $1) / $1)`

// GroupsBy lists the (event name, time span) groups in from..to, for spans
// that divide a day (1h, 24h). See Store.GroupsBy.
func (p *Postgres) GroupsBy(ctx context.Context, tenantID, from, to int64, eventNames []string, span time.Duration) ([]Group, error) {
	spanMs := span.Milliseconds()
	if spanMs <= 0 || msPerDay%spanMs != 0 {
		return nil, fmt.Errorf("groups: span %s does not divide a day", span)
	}
	if eventNames == nil {
		eventNames = []string{}
	}
	ctx2, cancel := p.bound(ctx)
	defer cancel()
	rows, err := p.pool.Query(ctx2, `SELECT event_name, `+pgSlotExpr+` AS slot, MIN(seq), MAX(seq), COUNT(*)
		FROM events
		WHERE tenant_id = $2 AND seq >= $3 AND seq <= $4
		  AND (cardinality($5::text[]) = 0 OR event_name = ANY ($5::text[]))
		GROUP BY event_name, slot
		ORDER BY MIN(seq)`, spanMs, tenantID, from, to, eventNames)
	if err != nil {
		return nil, p.fail(ctx, "groups", err)
	}
	gs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Group, error) {
		var g Group
		var slot int64
		if err := row.Scan(&g.EventName, &slot, &g.FirstSeq, &g.LastSeq, &g.Count); err != nil {
			return Group{}, err
		}
		g.Day = time.UnixMilli(slot * spanMs).UTC()
		if spanMs != msPerDay {
			g.Span = span // zero means a day
		}
		return g, nil
	})
	if err != nil {
		return nil, p.fail(ctx, "groups", err)
	}
	return gs, nil
}

// pgScanSQL reads one page of a group through the name index, which visits
// only this group's rows.
const pgScanSQL = `SELECT seq, time_ms, body FROM events
	WHERE tenant_id = $1 AND event_name = $2 AND seq > $3 AND seq <= $4
	  AND time_ms >= $5 AND time_ms < $6
	ORDER BY seq
	LIMIT $7`

// Scan streams the events of group g in sequence order. See Store.Scan.
//
// It reads the group in pages of scanPage events (keyset on seq) and calls
// fn between queries: memory stays bounded, no connection is held while fn
// runs (so fn may use the store even when the pool is small, and a slow fn
// does not pin a connection), and each page gets the call's deadline rather
// than the whole group. The events of a group are never rewritten, so the
// pages add up to one consistent read.
func (p *Postgres) Scan(ctx context.Context, tenantID int64, g Group, fn func(ev StoredEvent) error) error {
	spanMs := msPerDay
	if g.Span > 0 {
		spanMs = g.Span.Milliseconds()
	}
	start := floorDiv(g.Day.UnixMilli(), spanMs) * spanMs

	page := make([]StoredEvent, 0, scanPage)
	after := g.FirstSeq - 1
	for {
		var err error
		page, err = p.scanPage(ctx, tenantID, g.EventName, after, g.LastSeq, start, start+spanMs, page[:0])
		if err != nil {
			return p.fail(ctx, "scan", err)
		}
		for _, ev := range page {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if len(page) < scanPage {
			return nil
		}
		after = page[len(page)-1].Seq
	}
}

// scanPage reads up to scanPage events after seq `after` into page.
func (p *Postgres) scanPage(ctx context.Context, tenantID int64, name string, after, last, start, end int64, page []StoredEvent) ([]StoredEvent, error) {
	ctx, cancel := p.bound(ctx)
	defer cancel()
	rows, err := p.pool.Query(ctx, pgScanSQL, tenantID, name, after, last, start, end, scanPage)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		ev := StoredEvent{EventName: name}
		if err := rows.Scan(&ev.Seq, &ev.TimeMs, &ev.Body); err != nil {
			return nil, err
		}
		page = append(page, ev)
	}
	return page, rows.Err()
}

// DeleteEvents deletes up to limit events of the tenant with seq <= maxSeq
// that were stored before t, oldest first, and returns how many it deleted.
//
// Retention deletes in bounded batches rather than dropping time partitions:
// a partition key would have to be part of every unique index, and neither
// the sequence nor the duplicate key is a time a week of partitions could be
// cut on (retention follows the ingest time and the delivery cursor, while
// duplicates are keyed on the event's own timestamp). Each batch is a short
// transaction, so the dead rows are soon reclaimable, and the events table's
// autovacuum thresholds (see the migration) make vacuum follow the deletes
// so that new events reuse the freed pages.
func (p *Postgres) DeleteEvents(ctx context.Context, tenantID, maxSeq int64, before time.Time, limit int) (int64, error) {
	tag, err := p.exec(ctx, `DELETE FROM events WHERE tenant_id = $1 AND seq IN (
		SELECT seq FROM events WHERE tenant_id = $1 AND seq <= $2 AND received_ms < $3
		ORDER BY seq LIMIT $4)`, tenantID, maxSeq, before.UnixMilli(), limit)
	if err != nil {
		return 0, p.fail(ctx, "delete events", err)
	}
	return tag.RowsAffected(), nil
}

// ExpiredRange returns the sequence range retention may delete from. See
// Store.ExpiredRange. The oldest event comes from the primary key and the
// last one stored before the cutoff from the ingest-time index, read
// backwards: one probe each.
func (p *Postgres) ExpiredRange(ctx context.Context, tenantID int64, before time.Time) (first, last int64, err error) {
	err = p.queryRow(ctx, `SELECT
		COALESCE((SELECT o.seq FROM (SELECT seq, received_ms FROM events WHERE tenant_id = $1 ORDER BY seq LIMIT 1) o
			WHERE o.received_ms < $2), 0),
		COALESCE((SELECT seq FROM events WHERE tenant_id = $1 AND received_ms < $2
			ORDER BY received_ms DESC, seq DESC LIMIT 1), 0)`,
		[]any{tenantID, before.UnixMilli()}, &first, &last)
	if err != nil {
		return 0, 0, p.fail(ctx, "expired range", err)
	}
	if first == 0 {
		return 0, 0, nil
	}
	return first, last, nil
}

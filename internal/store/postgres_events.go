package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgLockHeadsSQL locks the head rows of the call's tenants for the rest of
// the transaction, in tenant id order: the row locks are taken as the sorted
// rows come out, so calls spanning several tenants cannot deadlock.
const pgLockHeadsSQL = `SELECT tenant_id, head, received_ms FROM tenant_heads
	WHERE tenant_id = ANY ($1::bigint[]) ORDER BY tenant_id FOR UPDATE`

// pgProbeSQL returns the input positions (1-based, across all the call's
// tenants) whose messageId and timestamp are already stored.
const pgProbeSQL = `SELECT u.ord FROM unnest($1::bigint[], $2::bigint[], $3::text[]) WITH ORDINALITY
	AS u (tenant_id, time_ms, message_id, ord)
	WHERE EXISTS (SELECT 1 FROM events e
		WHERE e.tenant_id = u.tenant_id AND e.time_ms = u.time_ms AND e.message_id = u.message_id)`

// pgMoveHeadsSQL moves the heads of the tenants that stored events and adds
// one commit mark for each (see the commit_marks migration).
const pgMoveHeadsSQL = `WITH u AS (
	SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[])
		AS u (tenant_id, first_seq, last_seq, received_ms)
), moved AS (
	UPDATE tenant_heads h SET head = u.last_seq, received_ms = u.received_ms
	FROM u WHERE h.tenant_id = u.tenant_id
)
INSERT INTO commit_marks (tenant_id, first_seq, last_seq, received_ms)
SELECT tenant_id, first_seq, last_seq, received_ms FROM u`

// pgEventColumns are the columns Append copies into events.
var pgEventColumns = []string{"tenant_id", "seq", "message_id", "event_name", "time_ms", "received_ms", "body"}

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
//   - At READ COMMITTED every statement takes a new snapshot. The duplicate
//     probe is a separate statement issued after the lock was granted, so
//     it sees the head and the events the previous holder committed: the
//     duplicate check and the numbering are never based on a stale view.
//   - The head and the events it covers become visible together, at commit.
//     A reader that sees head N therefore sees every event up to N, and no
//     transaction still running can commit a number at or below N: it
//     would need the lock, which is granted only after the commits that
//     moved the head to N. Delivery reads up to the head (or a bound below
//     it), so it never passes a number a slower transaction will still
//     commit.
//
// The events go in with COPY (binary), numbered here from the locked heads:
// it is the cheapest way into PostgreSQL, with no per-row statement, array
// parsing or planning. There is deliberately no ON CONFLICT: with the heads
// locked no other transaction can insert these tenants' events, so a unique
// violation would be a bug, and skipping the row would leave a gap in the
// sequence. A commit costs five round trips whatever the number of events
// (begin; locks and probe, pipelined; the copy; heads and marks; commit). An
// unknown tenant fails the whole call with an error wrapping ErrNotFound and
// stores nothing.
func (p *Postgres) Append(ctx context.Context, batches []AppendBatch) ([]AppendResult, error) {
	results := make([]AppendResult, len(batches))
	if !hasEvents(batches) {
		return results, nil
	}
	now := toMs(p.now())
	plans := planAppend(batches)

	err := p.tx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		heads, stored, err := lockAndProbe(ctx, tx, plans)
		if err != nil {
			return err
		}
		moves := numberEvents(plans, heads, stored, now, results)
		if len(moves.tenants) == 0 {
			return nil // every event was a duplicate
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, pgEventColumns, &eventRows{plans: plans, stored: stored}); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, pgMoveHeadsSQL, moves.tenants, moves.first, moves.last, moves.received)
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

// AppendWriters is half the pool, at most 4: enough commits in flight to
// keep the server busy while one waits for its WAL flush, leaving
// connections for delivery and the API.
func (p *Postgres) AppendWriters() int { return min(max(p.maxConns/2, 1), 4) }

// lockAndProbe locks the tenants' heads and finds the events already stored,
// in one pipelined batch. stored[i][j] tells whether plans[i]'s event j is
// new.
func lockAndProbe(ctx context.Context, tx pgx.Tx, plans []*tenantAppend) (map[int64]tenantHead, [][]bool, error) {
	ids := make([]int64, len(plans))
	var tenants, times []int64
	var msgIDs []string
	for i, tp := range plans {
		ids[i] = tp.tenantID
		for j := range tp.messageIDs {
			tenants = append(tenants, tp.tenantID)
			times = append(times, tp.times[j])
			msgIDs = append(msgIDs, tp.messageIDs[j])
		}
	}
	b := &pgx.Batch{}
	b.Queue(pgLockHeadsSQL, ids)
	b.Queue(pgProbeSQL, tenants, times, msgIDs)
	br := tx.SendBatch(ctx, b)
	defer br.Close()

	heads := make(map[int64]tenantHead, len(plans))
	rows, err := br.Query()
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		var id int64
		var h tenantHead
		if err := rows.Scan(&id, &h.head, &h.receivedMs); err != nil {
			return nil, nil, err
		}
		heads[id] = h
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	for _, tp := range plans {
		if _, ok := heads[tp.tenantID]; !ok {
			return nil, nil, fmt.Errorf("tenant %d: %w", tp.tenantID, ErrNotFound)
		}
	}
	dups, err := br.Query()
	if err != nil {
		return nil, nil, err
	}
	ords, err := pgx.CollectRows(dups, pgx.RowTo[int64])
	if err != nil {
		return nil, nil, err
	}
	return heads, markStored(plans, ords), br.Close()
}

// markStored turns the probe's duplicate positions into a per-plan "new"
// flag for each event.
func markStored(plans []*tenantAppend, dupOrds []int64) [][]bool {
	stored := make([][]bool, len(plans))
	offsets := make([]int64, len(plans))
	var n int64
	for i, tp := range plans {
		stored[i] = make([]bool, len(tp.messageIDs))
		for j := range stored[i] {
			stored[i][j] = true
		}
		offsets[i] = n
		n += int64(len(tp.messageIDs))
	}
	for _, ord := range dupOrds {
		pos := ord - 1
		i, _ := slices.BinarySearch(offsets, pos+1)
		i-- // the last plan starting at or before pos
		stored[i][pos-offsets[i]] = false
	}
	return stored
}

// eventRows feeds the new events to COPY, plan by plan.
type eventRows struct {
	plans  []*tenantAppend
	stored [][]bool
	i, j   int
	row    []any
}

func (r *eventRows) Next() bool {
	for r.i < len(r.plans) {
		if r.j >= len(r.stored[r.i]) {
			r.i, r.j = r.i+1, 0
			continue
		}
		if r.stored[r.i][r.j] {
			return true
		}
		r.j++
	}
	return false
}

func (r *eventRows) Values() ([]any, error) {
	tp, j := r.plans[r.i], r.j
	r.j++
	r.row = append(r.row[:0], tp.tenantID, tp.seqs[j], tp.messageIDs[j], tp.names[j], tp.times[j], tp.receivedMs, tp.bodies[j])
	return r.row, nil
}

func (r *eventRows) Err() error { return nil }

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
// Store.LastSeqBefore. One statement, so the mark lookup and the head come
// from the same snapshot. A commit's events share their received_ms, which
// never decreases along a tenant's sequence (Append keeps it so), so the
// first commit mark at or after t that reaches past `after` holds the least
// sequence number stored then: the search reads the commits since t, not
// the backlog after `after`.
func (p *Postgres) LastSeqBefore(ctx context.Context, tenantID, after int64, t time.Time) (int64, error) {
	var seq *int64
	err := p.queryRow(ctx, `SELECT COALESCE(
		(SELECT GREATEST(first_seq, $3 + 1) - 1 FROM commit_marks
			WHERE tenant_id = $1 AND received_ms >= $2 AND last_seq > $3
			ORDER BY received_ms, first_seq LIMIT 1),
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
	// The commit marks wholly below what is deleted go with it: deletion
	// is oldest first, so every event of such a mark is gone.
	var n int64
	err := p.queryRow(ctx, `WITH del AS (
		DELETE FROM events WHERE tenant_id = $1 AND seq IN (
			SELECT seq FROM events WHERE tenant_id = $1 AND seq <= $2 AND received_ms < $3
			ORDER BY seq LIMIT $4)
		RETURNING seq
	), marks AS (
		DELETE FROM commit_marks WHERE tenant_id = $1 AND last_seq <= (SELECT max(seq) FROM del)
	)
	SELECT count(*) FROM del`, []any{tenantID, maxSeq, before.UnixMilli(), limit}, &n)
	if err != nil {
		return 0, p.fail(ctx, "delete events", err)
	}
	return n, nil
}

// ExpiredRange returns the sequence range retention may delete from. See
// Store.ExpiredRange. The oldest event comes from the primary key and the
// last one stored before the cutoff from the commit marks, read backwards:
// one probe each.
func (p *Postgres) ExpiredRange(ctx context.Context, tenantID int64, before time.Time) (first, last int64, err error) {
	err = p.queryRow(ctx, `SELECT
		COALESCE((SELECT o.seq FROM (SELECT seq, received_ms FROM events WHERE tenant_id = $1 ORDER BY seq LIMIT 1) o
			WHERE o.received_ms < $2), 0),
		COALESCE((SELECT last_seq FROM commit_marks WHERE tenant_id = $1 AND received_ms < $2
			ORDER BY received_ms DESC, first_seq DESC LIMIT 1), 0)`,
		[]any{tenantID, before.UnixMilli()}, &first, &last)
	if err != nil {
		return 0, 0, p.fail(ctx, "expired range", err)
	}
	if first == 0 {
		return 0, 0, nil
	}
	return first, last, nil
}

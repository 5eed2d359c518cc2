package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
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
	WHERE EXISTS (SELECT 1 FROM event_keys k
		WHERE k.tenant_id = u.tenant_id AND k.time_ms = u.time_ms AND k.message_id = u.message_id)`

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

// pgKeyColumns are the columns Append copies into event_keys.
var pgKeyColumns = []string{"tenant_id", "time_ms", "message_id"}

// pgChunkColumns are the columns of event_chunks, as chunkValues lists them.
var pgChunkColumns = []string{"tenant_id", "event_name", "first_seq", "last_seq", "min_time_ms", "max_time_ms", "count", "received_ms", "data"}

func chunkValues(c chunk) []any {
	return []any{c.tenantID, c.eventName, c.firstSeq, c.lastSeq, c.minTimeMs, c.maxTimeMs, c.count, c.receivedMs, c.data}
}

// pgInsertChunksSQL inserts the chunks of a commit, a column each. They are
// few (about one per event name and tenant), so the arrays cost little, and
// the statement goes in one round trip with the heads' move.
const pgInsertChunksSQL = `INSERT INTO event_chunks
	(tenant_id, event_name, first_seq, last_seq, min_time_ms, max_time_ms, count, received_ms, data)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bytea[])`

// pgShiftChunksSQL gives the chunks a commit inserted with provisional
// numbers (after $2, see Append) their final ones, and their ingest time,
// tenant by tenant: a range scan of the (tenant_id, last_seq) index each.
const pgShiftChunksSQL = `UPDATE event_chunks c
	SET first_seq = c.first_seq - $2 + u.head, last_seq = c.last_seq - $2 + u.head, received_ms = u.received_ms
	FROM unnest($1::bigint[], $3::bigint[], $4::bigint[]) AS u (tenant_id, head, received_ms)
	WHERE c.tenant_id = u.tenant_id AND c.last_seq > $2 AND c.last_seq <= $2 + $5`

// provisionalSpan bounds the provisional numbers of one commit's chunks
// (see Append): a commit numbers fewer events than that.
const provisionalSpan = 1 << 32

// Append stores the batches in one transaction. See Store.Append.
//
// Sequence numbers: every commit for a tenant locks the tenant's head row
// (SELECT … FOR UPDATE), numbers its events from that head and moves the
// head in the same transaction. The lock is taken last, after the work that
// grows with the number of events, so that one tenant's commits overlap:
// while one holds the lock for its last round trip and WAL flush, the next
// has already probed, copied its duplicate keys and inserted its chunks.
// This is safe with any number of agents at READ COMMITTED (the level every
// transaction here runs at):
//
//   - The row lock serialises the numbering per tenant: a second
//     transaction waits on it until the first commits (or rolls back), so
//     two commits never take the same numbers and numbers are taken in
//     commit order.
//   - Before the lock a commit writes only rows no other transaction can
//     see: its duplicate keys and its chunks, the chunks numbered
//     provisionally below zero (a random base per commit, so that two
//     commits' provisional chunks do not wait on each other's unique
//     index entries). The chunk encoding holds sequence deltas only, so the
//     bytes do not depend on the numbers. Under the lock, one statement
//     shifts the chunks' numbers by the head, and the commit marks and the
//     head move.
//   - The head and the events it covers become visible together, at commit.
//     A reader that sees head N therefore sees every event up to N, and no
//     transaction still running can commit a number at or below N: it
//     would need the lock, which is granted only after the commits that
//     moved the head to N. Delivery reads up to the head (or a bound below
//     it), so it never passes a number a slower transaction will still
//     commit.
//   - Duplicates: the probe runs without the lock, so two commits carrying
//     the same new event can both find it new. The duplicate key's unique
//     index then makes the second wait for the first and fail (or the two
//     deadlock, and PostgreSQL fails one); the call is retried, and the
//     retry's probe sees the key. Both happen only when a client resends an
//     event while its first copy is still being committed. A resend probed
//     as a duplicate just before retention deleted its first copy is
//     dropped, as it would have been a moment earlier: retention deletes
//     only delivered events, so the event was delivered once.
//
// The keys, the only rows written per event, go in with COPY (binary): the
// cheapest way into PostgreSQL, with no per-row statement, array parsing or
// planning. A commit costs six round trips whatever the number of events
// (begin; the probe; the keys' copy; the chunks and the lock, pipelined;
// the shift, heads and marks, pipelined; commit). An unknown tenant fails
// the whole call with an error wrapping ErrNotFound and stores nothing.
func (p *Postgres) Append(ctx context.Context, batches []AppendBatch) ([]AppendResult, error) {
	results := make([]AppendResult, len(batches))
	if !hasEvents(batches) {
		return results, nil
	}
	plans := planAppend(batches)
	var err error
	for attempt := 0; ; attempt++ {
		clear(results)
		err = p.tx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			return p.appendTx(ctx, tx, plans, results)
		})
		if code := pgCode(err); attempt < appendRetries && (code == codeUniqueViolation || code == codeDeadlock) {
			continue
		}
		break
	}
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

// appendRetries is how many times Append runs again after a concurrent
// commit of the same new event (see Append).
const appendRetries = 3

func (p *Postgres) appendTx(ctx context.Context, tx pgx.Tx, plans []*tenantAppend, results []AppendResult) error {
	stored, err := probe(ctx, tx, plans)
	if err != nil {
		return err
	}
	// Provisional numbers: every tenant's head taken as base.
	base := -(rand.Int64N(1<<29) + 1) * provisionalSpan
	zero := make(map[int64]tenantHead, len(plans))
	for _, tp := range plans {
		zero[tp.tenantID] = tenantHead{head: base}
	}
	scratch := make([]AppendResult, len(results))
	if moves := numberEvents(plans, zero, stored, 0, scratch); len(moves.tenants) == 0 {
		// Every event was a duplicate; still check the tenants exist.
		_, err := lockHeads(ctx, tx, plans, nil)
		return err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"event_keys"}, pgKeyColumns, &keyRows{plans: plans, stored: stored}); err != nil {
		return err
	}
	var cols chunkColumns
	for _, tp := range plans {
		for _, c := range buildChunks(tp) {
			cols.add(c)
		}
	}
	heads, err := lockHeads(ctx, tx, plans, &cols)
	if err != nil {
		return err
	}
	moves := numberEvents(plans, heads, stored, toMs(p.now()), results)
	var shift struct{ tenants, heads, received []int64 }
	for i, id := range moves.tenants {
		shift.tenants = append(shift.tenants, id)
		shift.heads = append(shift.heads, moves.first[i]-1)
		shift.received = append(shift.received, moves.received[i])
	}
	b := &pgx.Batch{}
	b.Queue(pgShiftChunksSQL, shift.tenants, base, shift.heads, shift.received, int64(provisionalSpan))
	b.Queue(pgMoveHeadsSQL, moves.tenants, moves.first, moves.last, moves.received)
	return tx.SendBatch(ctx, b).Close()
}

// probe finds the events already stored: stored[i][j] tells whether
// plans[i]'s event j is new.
func probe(ctx context.Context, tx pgx.Tx, plans []*tenantAppend) ([][]bool, error) {
	var tenants, times []int64
	var msgIDs []string
	for _, tp := range plans {
		for j := range tp.messageIDs {
			tenants = append(tenants, tp.tenantID)
			times = append(times, tp.times[j])
			msgIDs = append(msgIDs, tp.messageIDs[j])
		}
	}
	rows, err := tx.Query(ctx, pgProbeSQL, tenants, times, msgIDs)
	if err != nil {
		return nil, err
	}
	ords, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	return markStored(plans, ords), nil
}

// lockHeads inserts the chunks (when cols is set) and locks the tenants'
// heads, in one pipelined batch.
func lockHeads(ctx context.Context, tx pgx.Tx, plans []*tenantAppend, cols *chunkColumns) (map[int64]tenantHead, error) {
	ids := make([]int64, len(plans))
	for i, tp := range plans {
		ids[i] = tp.tenantID
	}
	b := &pgx.Batch{}
	if cols != nil {
		b.Queue(pgInsertChunksSQL, cols.tenants, cols.names, cols.first, cols.last, cols.minTime, cols.maxTime, cols.count, cols.received, cols.data)
	}
	b.Queue(pgLockHeadsSQL, ids)
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	if cols != nil {
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	heads := make(map[int64]tenantHead, len(plans))
	for rows.Next() {
		var id int64
		var h tenantHead
		if err := rows.Scan(&id, &h.head, &h.receivedMs); err != nil {
			return nil, err
		}
		heads[id] = h
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, tp := range plans {
		if _, ok := heads[tp.tenantID]; !ok {
			return nil, fmt.Errorf("tenant %d: %w", tp.tenantID, ErrNotFound)
		}
	}
	return heads, br.Close()
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

// chunkColumns are chunks column by column, as pgInsertChunksSQL takes them.
type chunkColumns struct {
	tenants, first, last, minTime, maxTime, count, received []int64
	names                                                   []string
	data                                                    [][]byte
}

func (cc *chunkColumns) add(c chunk) {
	cc.tenants = append(cc.tenants, c.tenantID)
	cc.names = append(cc.names, c.eventName)
	cc.first = append(cc.first, c.firstSeq)
	cc.last = append(cc.last, c.lastSeq)
	cc.minTime = append(cc.minTime, c.minTimeMs)
	cc.maxTime = append(cc.maxTime, c.maxTimeMs)
	cc.count = append(cc.count, c.count)
	cc.received = append(cc.received, c.receivedMs)
	cc.data = append(cc.data, c.data)
}

// keyRows feeds the new events' duplicate keys to COPY, plan by plan.
type keyRows struct {
	plans  []*tenantAppend
	stored [][]bool
	i, j   int
	row    []any
}

func (r *keyRows) Next() bool {
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

func (r *keyRows) Values() ([]any, error) {
	tp, j := r.plans[r.i], r.j
	r.j++
	r.row = append(r.row[:0], tp.tenantID, tp.times[j], tp.messageIDs[j])
	return r.row, nil
}

func (r *keyRows) Err() error { return nil }

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

// pgOldestAfterSQL is when the first event after seq $2 was stored: the
// received_ms of the commit mark holding seq $2 + 1, or of the first mark
// after it when retention deleted up to there. Both are primary key
// lookups, whatever the number of retained marks. The marks start exactly
// at the oldest retained event (DeleteEvents moves a mark it cuts through).
// It is used with the columns tenant_id and seq named by the caller.
func pgOldestAfterSQL(tenant, seq string) string {
	return `COALESCE(
		(SELECT m.received_ms FROM (SELECT received_ms, last_seq FROM commit_marks
			WHERE tenant_id = ` + tenant + ` AND first_seq <= ` + seq + ` + 1
			ORDER BY first_seq DESC LIMIT 1) m
		WHERE m.last_seq > ` + seq + `),
		(SELECT received_ms FROM commit_marks
			WHERE tenant_id = ` + tenant + ` AND first_seq > ` + seq + `
			ORDER BY first_seq LIMIT 1))`
}

// OldestAfter returns when the first event after seq was stored, or the zero
// time when there is none.
func (p *Postgres) OldestAfter(ctx context.Context, tenantID, seq int64) (time.Time, error) {
	var received *int64
	err := p.queryRow(ctx, `SELECT `+pgOldestAfterSQL("$1::bigint", "$2::bigint"), []any{tenantID, seq}, &received)
	if err != nil {
		return time.Time{}, p.fail(ctx, fmt.Sprintf("oldest event after %d", seq), err)
	}
	if received == nil {
		return time.Time{}, nil
	}
	return time.UnixMilli(*received).UTC(), nil
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

// pgSlot is the number of the time span ($1 ms long) holding the time in
// column col, rounded toward negative infinity also for times before 1970
// (integer division truncates toward zero), as floorDiv does.
func pgSlot(col string) string {
	return `((` + col + ` - ((` + col + ` % $1) + $1) % $1) / $1)`
}

// seqBound is the exclusive upper bound on last_seq of the chunks that may
// hold a sequence number at or below to: a chunk spans less than
// chunkMaxSpan numbers. It saturates rather than overflow.
func seqBound(to int64) int64 {
	if to > math.MaxInt64-chunkMaxSpan {
		return math.MaxInt64
	}
	return to + chunkMaxSpan
}

// pgGroupsSQL reads the chunks holding from..to ($3..$4) through the
// sequence index. A chunk's data comes along only when the chunk must be
// decoded to be counted: the CASE is needsDecode, with the slot computed as
// floorDiv does; the others are counted from their columns.
var pgGroupsSQL = `SELECT event_name, first_seq, last_seq, min_time_ms, max_time_ms, count,
		CASE WHEN first_seq < $3 OR last_seq > $4 OR ` + pgSlot("min_time_ms") + ` <> ` + pgSlot("max_time_ms") + `
			THEN data END
	FROM event_chunks
	WHERE tenant_id = $2 AND last_seq >= $3 AND last_seq < $6 AND first_seq <= $4
	  AND (cardinality($5::text[]) = 0 OR event_name = ANY ($5::text[]))`

// GroupsBy lists the (event name, time span) groups in from..to, for spans
// that divide a day (1h, 24h). See Store.GroupsBy.
func (p *Postgres) GroupsBy(ctx context.Context, tenantID, from, to int64, eventNames []string, span time.Duration) ([]Group, error) {
	if err := checkSpan(span); err != nil {
		return nil, err
	}
	if eventNames == nil {
		eventNames = []string{}
	}
	ctx2, cancel := p.bound(ctx)
	defer cancel()
	rows, err := p.pool.Query(ctx2, pgGroupsSQL, span.Milliseconds(), tenantID, from, to, eventNames, seqBound(to))
	if err != nil {
		return nil, p.fail(ctx, "groups", err)
	}
	defer rows.Close()
	add := newGroupAdder(from, to, span)
	for rows.Next() {
		var c chunk
		if err := rows.Scan(&c.eventName, &c.firstSeq, &c.lastSeq, &c.minTimeMs, &c.maxTimeMs, &c.count, &c.data); err != nil {
			return nil, p.fail(ctx, "groups", err)
		}
		if err := add.add(c); err != nil {
			return nil, p.fail(ctx, "groups", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, p.fail(ctx, "groups", err)
	}
	return add.result(), nil
}

// pgScanSQL reads one page of a group's chunks through the name index,
// which visits only this event name's chunks in the group's sequence range;
// the time filter drops those with no event in the group's span.
const pgScanSQL = `SELECT first_seq, last_seq, data FROM event_chunks
	WHERE tenant_id = $1 AND event_name = $2 AND last_seq > $3 AND last_seq < $4 AND first_seq <= $5
	  AND max_time_ms >= $6 AND min_time_ms < $7
	ORDER BY last_seq
	LIMIT $8`

// scanned is a chunk as Scan reads it.
type scanned struct {
	firstSeq, lastSeq int64
	data              []byte
}

// Scan streams the events of group g in sequence order. See Store.Scan.
//
// It reads the group's chunks in pages of scanChunks (keyset on last_seq:
// an event name's chunks do not overlap, so their last_seq order is the
// sequence order) and calls fn between queries: memory stays bounded, no
// connection is held while fn runs (so fn may use the store even when the
// pool is small, and a slow fn does not pin a connection), and each page
// gets the call's deadline rather than the whole group. Retention rewrites
// a chunk only to drop events every destination has delivered, below any
// group being read, and keeps its last_seq, so the pages add up to one
// consistent read.
func (p *Postgres) Scan(ctx context.Context, tenantID int64, g Group, fn func(ev StoredEvent) error) error {
	if len(g.Names) > 0 {
		return p.scanMixed(ctx, tenantID, g, fn)
	}
	start, end := groupBounds(g)
	page := make([]scanned, 0, scanChunks)
	after := g.FirstSeq - 1
	for {
		var err error
		page, err = p.scanPage(ctx, tenantID, g, after, start, end, page[:0])
		if err != nil {
			return p.fail(ctx, "scan", err)
		}
		for _, c := range page {
			if err := scanChunk(c.data, c.firstSeq, g, start, end, fn); err != nil {
				return p.scanError(ctx, err)
			}
		}
		if len(page) < scanChunks {
			return nil
		}
		after = page[len(page)-1].lastSeq
	}
}

// pgScanMixedSQL reads a page of every name's chunks in first_seq order,
// from first_seq $2 on (exclusive) up to $3, holding events from $4 on (see
// mergeScan).
const pgScanMixedSQL = `SELECT event_name, first_seq, data FROM event_chunks
	WHERE tenant_id = $1 AND first_seq > $2 AND first_seq <= $3 AND last_seq >= $4
	  AND max_time_ms >= $5 AND min_time_ms < $6
	ORDER BY first_seq
	LIMIT $7`

// scanMixed streams the events of a group of several names, in pages as
// Scan does, keyed on first_seq.
func (p *Postgres) scanMixed(ctx context.Context, tenantID int64, g Group, fn func(ev StoredEvent) error) error {
	m := newMergeScan(g, fn)
	type row struct {
		name  string
		first int64
		data  []byte
	}
	page := make([]row, 0, scanChunks)
	after := g.FirstSeq - chunkMaxSpan
	for {
		err := func() error {
			ctx, cancel := p.bound(ctx)
			defer cancel()
			rows, err := p.pool.Query(ctx, pgScanMixedSQL, tenantID, after, g.LastSeq, g.FirstSeq, m.start, m.end, scanChunks)
			if err != nil {
				return err
			}
			defer rows.Close()
			page = page[:0]
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.name, &r.first, &r.data); err != nil {
					return err
				}
				page = append(page, r)
			}
			return rows.Err()
		}()
		if err != nil {
			return p.fail(ctx, "scan", err)
		}
		for _, r := range page {
			if err := m.add(r.name, r.first, r.data); err != nil {
				return p.scanError(ctx, err)
			}
		}
		if len(page) < scanChunks {
			break
		}
		after = page[len(page)-1].first
	}
	if err := m.finish(); err != nil {
		return p.scanError(ctx, err)
	}
	return nil
}

// scanError reports a corrupt chunk as the scan's failure; fn's errors
// pass as they are.
func (p *Postgres) scanError(ctx context.Context, err error) error {
	if errors.Is(err, errChunk) {
		return p.fail(ctx, "scan", err)
	}
	return err
}

// scanPage reads up to scanChunks chunks of group g whose last_seq is
// after `after` into page.
func (p *Postgres) scanPage(ctx context.Context, tenantID int64, g Group, after, start, end int64, page []scanned) ([]scanned, error) {
	ctx, cancel := p.bound(ctx)
	defer cancel()
	rows, err := p.pool.Query(ctx, pgScanSQL, tenantID, g.EventName, after, seqBound(g.LastSeq), g.LastSeq, start, end, scanChunks)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var c scanned
		if err := rows.Scan(&c.firstSeq, &c.lastSeq, &c.data); err != nil {
			return nil, err
		}
		page = append(page, c)
	}
	return page, rows.Err()
}

// pgRetentionCutSQL reads the tenant's oldest stored event and the last one
// stored before $2 from the commit marks, which start exactly at the
// oldest event.
const pgRetentionCutSQL = `SELECT
	COALESCE((SELECT first_seq FROM commit_marks WHERE tenant_id = $1 ORDER BY first_seq LIMIT 1), 0),
	COALESCE((SELECT last_seq FROM commit_marks WHERE tenant_id = $1 AND received_ms < $2
		ORDER BY received_ms DESC, first_seq DESC LIMIT 1), 0)`

// DeleteEvents deletes up to limit events of the tenant with seq <= maxSeq
// that were stored before t, oldest first, and returns how many it deleted.
//
// What retention deletes is always a prefix of the tenant's sequence (the
// ingest time never decreases along it), so a call comes down to a cut X:
// the least of maxSeq, the last event stored before t and the oldest event
// + limit - 1. The chunks wholly at or below X go; a chunk X cuts through
// (at most one per event name) is rewritten without its events up to X
// (trimChunk); the deleted events' duplicate keys go with them; and the
// commit marks follow, a mark cut through now starting at X + 1. It is one
// transaction, serialised against the tenant's Append by its head row lock,
// so a commit never sees half a cut.
//
// Retention deletes in bounded batches rather than dropping time partitions:
// a partition key would have to be part of every unique index, and neither
// the sequence nor the duplicate key is a time a week of partitions could be
// cut on (retention follows the ingest time and the delivery cursor, while
// duplicates are keyed on the event's own timestamp). Each batch is a short
// transaction, so the dead rows are soon reclaimable, and the tables'
// autovacuum thresholds (see the migrations) make vacuum follow the deletes
// so that new rows reuse the freed pages.
func (p *Postgres) DeleteEvents(ctx context.Context, tenantID, maxSeq int64, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, nil
	}
	var n int64
	err := p.tx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		n = 0
		b := &pgx.Batch{}
		b.Queue(`SELECT 1 FROM tenant_heads WHERE tenant_id = $1 FOR UPDATE`, tenantID)
		b.Queue(pgRetentionCutSQL, tenantID, before.UnixMilli())
		br := tx.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
		var oldest, lastBefore int64
		if err := br.QueryRow().Scan(&oldest, &lastBefore); err != nil {
			br.Close()
			return err
		}
		if err := br.Close(); err != nil {
			return err
		}
		if oldest == 0 {
			return nil
		}
		cut := min(maxSeq, lastBefore, oldest+int64(limit)-1)
		if cut < oldest {
			return nil
		}
		var err error
		n, err = deleteThrough(ctx, tx, tenantID, oldest, cut)
		return err
	})
	if err != nil {
		return 0, p.fail(ctx, "delete events", err)
	}
	return n, nil
}

// deleteThrough deletes the tenant's events oldest..cut, with their keys
// and commit marks, and returns how many there were.
func deleteThrough(ctx context.Context, tx pgx.Tx, tenantID, oldest, cut int64) (int64, error) {
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM event_chunks WHERE tenant_id = $1 AND last_seq >= $2 AND last_seq <= $3
		RETURNING first_seq, data`, tenantID, oldest, cut)
	b.Queue(`SELECT `+strings.Join(pgChunkColumns, ", ")+` FROM event_chunks
		WHERE tenant_id = $1 AND last_seq > $2 AND last_seq < $3 AND first_seq <= $2`, tenantID, cut, seqBound(cut))
	br := tx.SendBatch(ctx, b)
	defer br.Close()

	var n int64
	var times []int64
	var ids []string
	drop := func(keys []eventKey) {
		for _, k := range keys {
			times = append(times, k.timeMs)
			ids = append(ids, k.messageID)
		}
		n += int64(len(keys))
	}
	deleted, err := br.Query()
	if err != nil {
		return 0, err
	}
	for deleted.Next() {
		var first int64
		var data []byte
		if err := deleted.Scan(&first, &data); err != nil {
			return 0, err
		}
		keys, err := chunkKeys(data, first)
		if err != nil {
			return 0, err
		}
		drop(keys)
	}
	if err := deleted.Err(); err != nil {
		return 0, err
	}
	cutRows, err := br.Query()
	if err != nil {
		return 0, err
	}
	cutThrough, err := pgx.CollectRows(cutRows, scanChunkRow)
	if err != nil {
		return 0, err
	}
	if err := br.Close(); err != nil {
		return 0, err
	}

	b = &pgx.Batch{}
	for _, c := range cutThrough {
		kept, dropped, _, err := trimChunk(c, cut)
		if err != nil {
			return 0, err
		}
		drop(dropped)
		b.Queue(`UPDATE event_chunks SET first_seq = $4, min_time_ms = $5, max_time_ms = $6, count = $7, data = $8
			WHERE tenant_id = $1 AND event_name = $2 AND first_seq = $3`,
			c.tenantID, c.eventName, c.firstSeq, kept.firstSeq, kept.minTimeMs, kept.maxTimeMs, kept.count, kept.data)
	}
	b.Queue(`DELETE FROM event_keys k USING unnest($2::bigint[], $3::text[]) AS u (time_ms, message_id)
		WHERE k.tenant_id = $1 AND k.time_ms = u.time_ms AND k.message_id = u.message_id`, tenantID, times, ids)
	b.Queue(`DELETE FROM commit_marks WHERE tenant_id = $1 AND first_seq <= $2 AND last_seq <= $2`, tenantID, cut)
	b.Queue(`UPDATE commit_marks SET first_seq = $2 + 1 WHERE tenant_id = $1 AND first_seq <= $2 AND last_seq > $2`, tenantID, cut)
	return n, tx.SendBatch(ctx, b).Close()
}

// scanChunkRow reads the pgChunkColumns of a row.
func scanChunkRow(row pgx.CollectableRow) (chunk, error) {
	var c chunk
	err := row.Scan(&c.tenantID, &c.eventName, &c.firstSeq, &c.lastSeq, &c.minTimeMs, &c.maxTimeMs, &c.count, &c.receivedMs, &c.data)
	return c, err
}

// ExpiredRange returns the sequence range retention may delete from. See
// Store.ExpiredRange. The oldest event is where the first commit mark
// starts and the last one stored before the cutoff comes from the marks
// read backwards by ingest time: one probe each.
func (p *Postgres) ExpiredRange(ctx context.Context, tenantID int64, before time.Time) (first, last int64, err error) {
	err = p.queryRow(ctx, `SELECT
		COALESCE((SELECT o.first_seq FROM (SELECT first_seq, received_ms FROM commit_marks
			WHERE tenant_id = $1 ORDER BY first_seq LIMIT 1) o
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

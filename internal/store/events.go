package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

const msPerDay = int64(24 * time.Hour / time.Millisecond)

// Append inserts the duplicate keys many per statement: one statement per
// event spent most of a commit stepping the VM, binding and crossing into
// SQLite per row. Statements are prepared for chunks of appendChunk keys and
// for every power of two below it, so a batch of any size runs on a few
// prepared statements (1000 events: 256×3+128+64+32+8).
const appendChunk = 256

// insertKeysSQL inserts n duplicate keys, skipping those already stored;
// with returning, it also returns the keys it inserted: the events that are
// new.
func insertKeysSQL(n int, returning bool) string {
	q := `INSERT INTO event_keys (tenant_id, time_ms, message_id) VALUES ` +
		strings.TrimSuffix(strings.Repeat(`(?, ?, ?), `, n), `, `) + ` ON CONFLICT DO NOTHING`
	if returning {
		q += ` RETURNING time_ms, message_id`
	}
	return q
}

const (
	insertChunkSQL = `INSERT INTO event_chunks
		(tenant_id, event_name, first_seq, last_seq, min_time_ms, max_time_ms, count, received_ms, data)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertMarkSQL = `INSERT INTO commit_marks (tenant_id, last_seq, first_seq, received_ms) VALUES (?, ?, ?, ?)`
	moveHeadSQL   = `UPDATE tenants SET head_seq = ?, head_received_ms = ? WHERE id = ? AND head_seq < ?`
)

// appendStmts are Append's statements, prepared once on the writer's only
// connection.
type appendStmts struct {
	keys, keysReturning     map[int]*sql.Stmt // by chunk size
	chunk, mark, moveHeadSt *sql.Stmt
	// savepoint, release and rollbackTo undo a chunk of keys that met a
	// stored one (see insertKeyChunk).
	savepoint, release, rollbackTo *sql.Stmt
}

func prepareAppend(ctx context.Context, db *sql.DB) (*appendStmts, error) {
	a := &appendStmts{keys: map[int]*sql.Stmt{}, keysReturning: map[int]*sql.Stmt{}}
	for n := appendChunk; n >= 1; n /= 2 {
		for _, returning := range []bool{false, true} {
			st, err := db.PrepareContext(ctx, insertKeysSQL(n, returning))
			if err != nil {
				return nil, errors.Join(err, a.Close())
			}
			if returning {
				a.keysReturning[n] = st
			} else {
				a.keys[n] = st
			}
		}
	}
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{
		{&a.chunk, insertChunkSQL}, {&a.mark, insertMarkSQL}, {&a.moveHeadSt, moveHeadSQL},
		{&a.savepoint, `SAVEPOINT event_keys`}, {&a.release, `RELEASE event_keys`}, {&a.rollbackTo, `ROLLBACK TO event_keys`},
	} {
		st, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			return nil, errors.Join(err, a.Close())
		}
		*p.st = st
	}
	return a, nil
}

// Close closes the statements.
func (a *appendStmts) Close() error {
	var errs []error
	for _, st := range a.keys {
		errs = append(errs, st.Close())
	}
	for _, st := range a.keysReturning {
		errs = append(errs, st.Close())
	}
	for _, st := range []*sql.Stmt{a.chunk, a.mark, a.moveHeadSt, a.savepoint, a.release, a.rollbackTo} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// chunkSize is the largest prepared chunk size not above n (n > 0).
func chunkSize(n int) int {
	size := appendChunk
	for size > n {
		size /= 2
	}
	return size
}

// slotExpr is the number of the time span (its length in ms bound twice)
// holding the time column c, rounded down also for times before 1970
// (SQLite's integer division truncates toward zero).
func slotExpr(c string) string {
	return `(` + c + ` / ? - (` + c + ` < 0 AND ` + c + ` % ? != 0))`
}

// Append stores the batches in one transaction. See Store.Append.
//
// Sequence numbers are taken from tenants.head_seq inside the write
// transaction, which is the only writer, so they are dense and in commit
// order: a reader never sees seq N+1 before N. The duplicate keys go in
// first; those SQLite skips are the duplicates, so only the new events are
// numbered and a duplicate takes no number. The new events are then stored
// in chunks, with one commit mark per tenant. An unknown tenant fails the
// whole call with an error wrapping ErrNotFound.
func (s *SQLite) Append(ctx context.Context, batches []AppendBatch) ([]AppendResult, error) {
	results := make([]AppendResult, len(batches))
	if !hasEvents(batches) {
		return results, nil
	}
	now := toMs(s.now())
	plans := planAppend(batches)

	err := s.write(ctx, func(tx *sql.Tx) error {
		clear(results)
		ap := appender{ctx: ctx, tx: tx, stmts: s.insertEvent}
		heads := make(map[int64]tenantHead, len(plans))
		stored := make([][]bool, len(plans))
		for i, tp := range plans {
			h, err := s.headTx(ctx, tx, tp.tenantID)
			if err != nil {
				return err
			}
			heads[tp.tenantID] = h
			if stored[i], err = ap.insertKeys(tp); err != nil {
				return err
			}
		}
		moves := numberEvents(plans, heads, stored, now, results)
		for _, tp := range plans {
			for _, c := range buildChunks(tp) {
				if err := ap.insertChunk(c); err != nil {
					return err
				}
			}
		}
		return ap.moveHeads(moves)
	})
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	for i, b := range batches {
		results[i].Duplicates = len(b.Events) - results[i].Stored
	}
	return results, nil
}

// AppendWriters is 1: SQLite has one writer.
func (s *SQLite) AppendWriters() int { return 1 }

func hasEvents(batches []AppendBatch) bool {
	for _, b := range batches {
		if len(b.Events) > 0 {
			return true
		}
	}
	return false
}

// appender writes the events of one Append call in its transaction.
type appender struct {
	ctx   context.Context
	tx    *sql.Tx
	stmts *appendStmts
	args  []any
	// txStmts are the statements bound to tx, by prepared statement.
	txStmts map[*sql.Stmt]*sql.Stmt
}

// stmt returns st bound to the transaction, binding it once per Append.
func (a *appender) stmt(st *sql.Stmt) *sql.Stmt {
	if s, ok := a.txStmts[st]; ok {
		return s
	}
	if a.txStmts == nil {
		a.txStmts = make(map[*sql.Stmt]*sql.Stmt)
	}
	s := a.tx.StmtContext(a.ctx, st)
	a.txStmts[st] = s
	return s
}

// insertKeys inserts the duplicate keys of tp's events and tells, event by
// event, which were new. planAppend dropped the call's own repeats, so a
// key SQLite skips was stored by an earlier commit.
func (a *appender) insertKeys(tp *tenantAppend) ([]bool, error) {
	fresh := make([]bool, len(tp.messageIDs))
	for at := 0; at < len(fresh); {
		n := chunkSize(len(fresh) - at)
		if err := a.insertKeyChunk(tp, at, n, fresh); err != nil {
			return nil, err
		}
		at += n
	}
	return fresh, nil
}

// insertKeyChunk inserts the keys of tp's events at..at+n-1 and marks the
// new ones in fresh. Nearly always every key is new: the insert runs in a
// savepoint and, when it stored all n, that is all. When it skipped some,
// the savepoint is rolled back and the keys inserted again with RETURNING,
// which names the new ones (returning them costs a row each, which the
// usual case need not pay).
func (a *appender) insertKeyChunk(tp *tenantAppend, at, n int, fresh []bool) error {
	args := a.args[:0]
	for j := at; j < at+n; j++ {
		args = append(args, tp.tenantID, tp.times[j], tp.messageIDs[j])
	}
	a.args = args
	if _, err := a.stmt(a.stmts.savepoint).ExecContext(a.ctx); err != nil {
		return err
	}
	res, err := a.stmt(a.stmts.keys[n]).ExecContext(a.ctx, args...)
	if err != nil {
		return err
	}
	stored, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if stored != int64(n) {
		if _, err := a.stmt(a.stmts.rollbackTo).ExecContext(a.ctx); err != nil {
			return err
		}
	}
	if _, err := a.stmt(a.stmts.release).ExecContext(a.ctx); err != nil {
		return err
	}
	if stored == int64(n) {
		for j := at; j < at+n; j++ {
			fresh[j] = true
		}
		return nil
	}
	return a.insertKeysReturning(tp, at, n, fresh)
}

// insertKeysReturning inserts the chunk's keys and marks those SQLite
// returns as inserted.
func (a *appender) insertKeysReturning(tp *tenantAppend, at, n int, fresh []bool) error {
	rows, err := a.stmt(a.stmts.keysReturning[n]).QueryContext(a.ctx, a.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	inserted := make(map[eventKey]bool, n)
	for rows.Next() {
		var k eventKey
		if err := rows.Scan(&k.timeMs, &k.messageID); err != nil {
			return err
		}
		inserted[k] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for j := at; j < at+n; j++ {
		fresh[j] = inserted[eventKey{timeMs: tp.times[j], messageID: tp.messageIDs[j]}]
	}
	return nil
}

func (a *appender) insertChunk(c chunk) error {
	_, err := a.stmt(a.stmts.chunk).ExecContext(a.ctx, c.tenantID, c.eventName, c.firstSeq, c.lastSeq,
		c.minTimeMs, c.maxTimeMs, c.count, c.receivedMs, c.data)
	return err
}

// moveHeads adds a commit mark for each tenant that stored events and moves
// its head.
func (a *appender) moveHeads(m headMoves) error {
	for i, id := range m.tenants {
		if _, err := a.stmt(a.stmts.mark).ExecContext(a.ctx, id, m.last[i], m.first[i], m.received[i]); err != nil {
			return err
		}
		if _, err := a.stmt(a.stmts.moveHeadSt).ExecContext(a.ctx, m.last[i], m.received[i], id, m.last[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s *SQLite) headTx(ctx context.Context, tx *sql.Tx, tenantID int64) (tenantHead, error) {
	var h tenantHead
	err := s.inWrite.queryRowIn(ctx, tx, headSQL, tenantID).Scan(&h.head, &h.receivedMs)
	return h, notFound(err, "tenant %d", tenantID)
}

// headSQL reads a tenant's head in Append's transaction.
const headSQL = `SELECT head_seq, head_received_ms FROM tenants WHERE id = ?`

// Head returns the tenant's last sequence number, 0 when it has no events.
// An unknown tenant is an error wrapping ErrNotFound.
func (s *SQLite) Head(ctx context.Context, tenantID int64) (int64, error) {
	var head int64
	err := s.read.QueryRowContext(ctx,
		`SELECT head_seq FROM tenants WHERE id = ?`, tenantID).Scan(&head)
	if err != nil {
		return 0, fmt.Errorf("head: %w", notFound(err, "tenant %d", tenantID))
	}
	return head, nil
}

// oldestAfterSQL is the commit mark holding the first retained event after
// seq ?2 (its own, or the oldest left when retention deleted past seq): one
// primary-key seek.
const oldestAfterSQL = `SELECT received_ms FROM commit_marks WHERE tenant_id = ? AND last_seq > ? ORDER BY last_seq LIMIT 1`

// OldestAfter returns when the first event after seq was stored, or the zero
// time when there is none.
func (s *SQLite) OldestAfter(ctx context.Context, tenantID, seq int64) (time.Time, error) {
	var received int64
	err := s.read.QueryRowContext(ctx, oldestAfterSQL, tenantID, seq).Scan(&received)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("oldest event after %d: %w", seq, err)
	}
	return time.UnixMilli(received).UTC(), nil
}

// GroupsBy lists the (event name, time span) groups in from..to, for spans
// that divide a day (1h, 24h). See Store.GroupsBy.
func (s *SQLite) GroupsBy(ctx context.Context, tenantID, from, to int64, eventNames []string, span time.Duration) ([]Group, error) {
	if err := checkSpan(span); err != nil {
		return nil, err
	}
	q, args := groupsQuery(tenantID, from, to, eventNames, span.Milliseconds())
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	defer rows.Close()

	adder := newGroupAdder(from, to, span)
	for rows.Next() {
		var c chunk
		var data sql.RawBytes
		if err := rows.Scan(&c.eventName, &c.firstSeq, &c.lastSeq, &c.minTimeMs, &c.maxTimeMs, &c.count, &data); err != nil {
			return nil, fmt.Errorf("groups: %w", err)
		}
		c.data = data
		if err := adder.add(c); err != nil {
			return nil, fmt.Errorf("groups: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	return adder.result(), nil
}

// groupsQuery builds the GroupsBy query over the chunks holding from..to. A
// chunk inside the range and one time span is counted from its columns; the
// others' data is read to count event by event (the CASE is needsDecode).
func groupsQuery(tenantID, from, to int64, eventNames []string, spanMs int64) (string, []any) {
	var b strings.Builder
	b.WriteString(`SELECT event_name, first_seq, last_seq, min_time_ms, max_time_ms, count,
		CASE WHEN first_seq < ? OR last_seq > ? OR ` + slotExpr("min_time_ms") + ` != ` + slotExpr("max_time_ms") + `
			THEN data END
	FROM event_chunks
	WHERE tenant_id = ? AND last_seq >= ? AND last_seq < ? AND first_seq <= ?`)
	args := []any{from, to, spanMs, spanMs, spanMs, spanMs, tenantID, from, to + chunkMaxSpan, to}
	if len(eventNames) > 0 {
		b.WriteString(` AND event_name IN (?` + strings.Repeat(`, ?`, len(eventNames)-1) + `)`)
		for _, n := range eventNames {
			args = append(args, n)
		}
	}
	return b.String(), args
}

// scanSQL reads one group's chunks: its name's, in the sequence range,
// overlapping its time span, in sequence order (a name's chunks do not
// overlap, so last_seq orders them).
const scanSQL = `SELECT first_seq, data
	FROM event_chunks INDEXED BY event_chunks_name
	WHERE tenant_id = ? AND event_name = ? AND last_seq >= ? AND last_seq < ? AND first_seq <= ?
	  AND max_time_ms >= ? AND min_time_ms < ?
	ORDER BY last_seq`

// Scan streams the events of group g in sequence order. See Store.Scan.
//
// The rows are read in a WAL read transaction, which holds no lock a writer
// waits for, so a slow fn does not stall ingest.
func (s *SQLite) Scan(ctx context.Context, tenantID int64, g Group, fn func(ev StoredEvent) error) error {
	if len(g.Names) > 0 {
		return s.scanMixed(ctx, tenantID, g, fn)
	}
	start, end := groupBounds(g)
	rows, err := s.read.QueryContext(ctx, scanSQL,
		tenantID, g.EventName, g.FirstSeq, g.LastSeq+chunkMaxSpan, g.LastSeq, start, end)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	defer rows.Close()

	for rows.Next() {
		// RawBytes avoids a copy per chunk; it is valid until the next
		// call to Next, which is why fn must not keep the body.
		var first int64
		var data sql.RawBytes
		if err := rows.Scan(&first, &data); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		if err := scanChunk(data, first, g, start, end, fn); err != nil {
			if errors.Is(err, errChunk) {
				return fmt.Errorf("scan: %w", err)
			}
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	return nil
}

// scanMixedSQL reads every name's chunks in the sequence range and
// overlapping the time span, in first_seq order (see mergeScan). A chunk
// spans less than chunkMaxSpan, so those holding [from, to] have
// from - span < first_seq <= to.
const scanMixedSQL = `SELECT event_name, first_seq, data
	FROM event_chunks INDEXED BY event_chunks_first
	WHERE tenant_id = ? AND first_seq > ? AND first_seq <= ? AND last_seq >= ?
	  AND max_time_ms >= ? AND min_time_ms < ?
	ORDER BY first_seq`

// scanMixed streams the events of a group of several names.
func (s *SQLite) scanMixed(ctx context.Context, tenantID int64, g Group, fn func(ev StoredEvent) error) error {
	m := newMergeScan(g, fn)
	rows, err := s.read.QueryContext(ctx, scanMixedSQL,
		tenantID, g.FirstSeq-chunkMaxSpan, g.LastSeq, g.FirstSeq, m.start, m.end)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var first int64
		var data sql.RawBytes
		if err := rows.Scan(&name, &first, &data); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		if err := m.add(name, first, data); err != nil {
			return scanError(err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	return scanError(m.finish())
}

// scanError marks a corrupt chunk's error as the scan's; fn's errors pass
// as they are.
func scanError(err error) error {
	if errors.Is(err, errChunk) {
		return fmt.Errorf("scan: %w", err)
	}
	return err
}

// floorDiv divides rounding toward negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// expiredRangeSQL reads the oldest commit mark through the primary key and
// the last one stored before the cutoff through the ingest-time index: one
// probe each, however many events are retained.
const expiredRangeSQL = `SELECT
	COALESCE((SELECT o.first_seq FROM (SELECT first_seq, received_ms FROM commit_marks WHERE tenant_id = ?1
		ORDER BY last_seq LIMIT 1) o WHERE o.received_ms < ?2), 0),
	COALESCE((SELECT last_seq FROM commit_marks INDEXED BY commit_marks_received
		WHERE tenant_id = ?1 AND received_ms < ?2 ORDER BY received_ms DESC, last_seq DESC LIMIT 1), 0)`

// ExpiredRange returns the sequence range retention may delete from. See
// Store.ExpiredRange.
func (s *SQLite) ExpiredRange(ctx context.Context, tenantID int64, before time.Time) (first, last int64, err error) {
	err = s.read.QueryRowContext(ctx, expiredRangeSQL, tenantID, before.UnixMilli()).Scan(&first, &last)
	if err != nil {
		return 0, 0, fmt.Errorf("expired range: %w", err)
	}
	if first == 0 {
		return 0, 0, nil
	}
	return first, last, nil
}

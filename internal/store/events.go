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

// Append writes many events per statement: one statement per event spent
// most of a commit stepping the VM, binding and crossing into SQLite per row.
// Statements are prepared for chunks of appendChunk rows and for every power
// of two below it, so a batch of any size runs on a few prepared statements
// (1000 events: 256×3+128+64+32+8).
const appendChunk = 256

// insertEventsSQL inserts n events. The conflict target is named so that
// only a repeated event (the same messageId and timestamp) is skipped; a
// clash on (tenant_id, seq) would be a bug and must fail.
func insertEventsSQL(n int) string {
	return `INSERT INTO events (tenant_id, seq, message_id, event_name, time_ms, received_ms, body) VALUES ` +
		strings.TrimSuffix(strings.Repeat(`(?, ?, ?, ?, ?, ?, ?), `, n), `, `) +
		` ON CONFLICT (tenant_id, time_ms, message_id) DO NOTHING`
}

// appendStmts are Append's statements, prepared once on the writer's only
// connection, by chunk size.
type appendStmts struct {
	insert map[int]*sql.Stmt
}

func prepareAppend(ctx context.Context, db *sql.DB) (*appendStmts, error) {
	a := &appendStmts{insert: map[int]*sql.Stmt{}}
	for n := appendChunk; n >= 1; n /= 2 {
		ins, err := db.PrepareContext(ctx, insertEventsSQL(n))
		if err != nil {
			return nil, errors.Join(err, a.Close())
		}
		a.insert[n] = ins
	}
	return a, nil
}

// Close closes the statements.
func (a *appendStmts) Close() error {
	var errs []error
	for _, st := range a.insert {
		errs = append(errs, st.Close())
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

// slotExpr is the number of the time span (its length in ms bound twice
// times) holding time_ms, rounded down also for times before 1970 (SQLite's
// integer division truncates toward zero).
const slotExpr = `(time_ms / ? - (time_ms < 0 AND time_ms % ? != 0))`

// Append stores the batches in one transaction. See Store.Append.
//
// Sequence numbers are taken from tenants.head_seq inside the write
// transaction, which is the only writer, so they are dense and in commit
// order: a reader never sees seq N+1 before N. An unknown tenant fails the
// whole call with an error wrapping ErrNotFound.
func (s *SQLite) Append(ctx context.Context, batches []AppendBatch) ([]AppendResult, error) {
	results := make([]AppendResult, len(batches))
	if !hasEvents(batches) {
		return results, nil
	}
	received := toMs(s.now())

	err := s.write(ctx, func(tx *sql.Tx) error {
		ap := appender{ctx: ctx, tx: tx, stmts: s.insertEvent, received: received}
		heads := make(map[int64]int64)
		for i, b := range batches {
			head, ok := heads[b.TenantID]
			if !ok {
				var err error
				if head, err = headTx(ctx, tx, b.TenantID); err != nil {
					return err
				}
			}
			r, err := ap.appendBatch(b, head)
			if err != nil {
				return err
			}
			if r.Stored > 0 {
				head = r.LastSeq
			}
			heads[b.TenantID] = head
			results[i] = r
		}
		return saveHeads(ctx, tx, heads)
	})
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
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

// appender writes the batches of one Append call in its transaction.
type appender struct {
	ctx      context.Context
	tx       *sql.Tx
	stmts    *appendStmts
	received int64
	args     []any
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

// appendBatch inserts b's events after head. A duplicate, of a stored event
// or of an earlier one in the batch, uses no sequence number, so the stored
// events stay dense.
func (a *appender) appendBatch(b AppendBatch, head int64) (AppendResult, error) {
	var r AppendResult
	seq := head + 1
	for evs := b.Events; len(evs) > 0; {
		n := chunkSize(len(evs))
		stored, err := a.insertChunk(b.TenantID, seq, evs[:n])
		if err != nil {
			return AppendResult{}, err
		}
		r.Stored += stored
		r.Duplicates += n - stored
		seq += int64(stored)
		evs = evs[n:]
	}
	if r.Stored > 0 {
		r.FirstSeq, r.LastSeq = head+1, seq-1
	}
	return r, nil
}

// insertChunk stores evs as seq, seq+1, ... less the duplicates, and
// returns how many it stored. The insert numbers the rows before SQLite
// skips the duplicates, so a chunk with one leaves a gap. Duplicates are
// rare (a client's retry), so rather than look every key up first, such a
// chunk is undone and its fresh events, now known, inserted again densely.
// A chunk of nothing but duplicates (a whole request retried) stores nothing
// and needs no second pass.
func (a *appender) insertChunk(tenantID, seq int64, evs []Event) (int, error) {
	n, err := a.insert(tenantID, seq, evs)
	if err != nil || n == len(evs) || n == 0 {
		return n, err
	}
	fresh, err := a.landed(tenantID, seq, evs)
	if err != nil {
		return 0, err
	}
	if _, err := a.tx.ExecContext(a.ctx, `DELETE FROM events WHERE tenant_id = ? AND seq >= ? AND seq < ?`,
		tenantID, seq, seq+int64(len(evs))); err != nil {
		return 0, err
	}
	for stored := 0; stored < len(fresh); {
		chunk := fresh[stored : stored+chunkSize(len(fresh)-stored)]
		n, err := a.insert(tenantID, seq+int64(stored), chunk)
		if err != nil {
			return 0, err
		}
		if n != len(chunk) {
			return 0, fmt.Errorf("stored %d of %d events known to be new", n, len(chunk))
		}
		stored += n
	}
	return len(fresh), nil
}

// landed returns the events of a chunk inserted from seq that were stored,
// in order: those whose sequence number is in the table.
func (a *appender) landed(tenantID, seq int64, evs []Event) ([]Event, error) {
	rows, err := a.tx.QueryContext(a.ctx, `SELECT seq FROM events WHERE tenant_id = ? AND seq >= ? AND seq < ? ORDER BY seq`,
		tenantID, seq, seq+int64(len(evs)))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var fresh []Event
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		fresh = append(fresh, evs[s-seq])
	}
	return fresh, rows.Err()
}

// insert inserts evs (a prepared chunk size) numbered from seq and returns
// how many were stored, the others being duplicates.
func (a *appender) insert(tenantID, seq int64, evs []Event) (int, error) {
	args := a.args[:0]
	for i, ev := range evs {
		args = append(args, tenantID, seq+int64(i), ev.MessageID, ev.EventName, ev.TimeMs, a.received, nonNil(ev.Body))
	}
	a.args = args
	res, err := a.stmt(a.stmts.insert[len(evs)]).ExecContext(a.ctx, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func headTx(ctx context.Context, tx *sql.Tx, tenantID int64) (int64, error) {
	var head int64
	err := tx.QueryRowContext(ctx,
		`SELECT head_seq FROM tenants WHERE id = ?`, tenantID).Scan(&head)
	return head, notFound(err, "tenant %d", tenantID)
}

func saveHeads(ctx context.Context, tx *sql.Tx, heads map[int64]int64) error {
	for id, head := range heads {
		_, err := tx.ExecContext(ctx,
			`UPDATE tenants SET head_seq = ? WHERE id = ? AND head_seq < ?`, head, id, head)
		if err != nil {
			return err
		}
	}
	return nil
}

// Head returns the tenant's last sequence number, 0 when it has no events.
// An unknown tenant is an error wrapping ErrNotFound.
func (s *SQLite) Head(ctx context.Context, tenantID int64) (int64, error) {
	var head int64
	err := s.reader.QueryRowContext(ctx,
		`SELECT head_seq FROM tenants WHERE id = ?`, tenantID).Scan(&head)
	if err != nil {
		return 0, fmt.Errorf("head: %w", notFound(err, "tenant %d", tenantID))
	}
	return head, nil
}

// OldestAfter returns when the first event after seq was stored, or the zero
// time when there is none.
func (s *SQLite) OldestAfter(ctx context.Context, tenantID, seq int64) (time.Time, error) {
	var received int64
	err := s.reader.QueryRowContext(ctx,
		`SELECT received_ms FROM events WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT 1`,
		tenantID, seq).Scan(&received)
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
	spanMs := span.Milliseconds()
	if spanMs <= 0 || msPerDay%spanMs != 0 {
		return nil, fmt.Errorf("groups: span %s does not divide a day", span)
	}
	q, args := groupsQuery(tenantID, from, to, eventNames, spanMs)
	rows, err := s.reader.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	defer rows.Close()

	var gs []Group
	for rows.Next() {
		var g Group
		var slot int64
		if err := rows.Scan(&g.EventName, &slot, &g.FirstSeq, &g.LastSeq, &g.Count); err != nil {
			return nil, fmt.Errorf("groups: %w", err)
		}
		g.Day = time.UnixMilli(slot * spanMs).UTC()
		if spanMs != msPerDay {
			g.Span = span // zero means a day
		}
		gs = append(gs, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	return gs, nil
}

// groupsQuery builds the Groups query. The range is read through the primary
// key, in one pass; the tie-break on the name keeps the order stable.
func groupsQuery(tenantID, from, to int64, eventNames []string, spanMs int64) (string, []any) {
	var b strings.Builder
	b.WriteString(`SELECT event_name, ` + slotExpr + ` AS day, MIN(seq), MAX(seq), COUNT(*)
	FROM events
	WHERE tenant_id = ? AND seq >= ? AND seq <= ?`)
	args := []any{spanMs, spanMs, tenantID, from, to}
	if len(eventNames) > 0 {
		b.WriteString(` AND event_name IN (?` + strings.Repeat(`, ?`, len(eventNames)-1) + `)`)
		for _, n := range eventNames {
			args = append(args, n)
		}
	}
	b.WriteString(`
	GROUP BY event_name, day
	ORDER BY MIN(seq)`)
	return b.String(), args
}

// scanSQL reads one group. Groups of different names interleave in the
// sequence range, so walking the primary key would read every other group's
// rows (and bodies) too; the name index visits only this group's rows. Left
// alone, the planner prefers the primary key, hence INDEXED BY.
const scanSQL = `SELECT seq, time_ms, body
	FROM events INDEXED BY events_name_seq
	WHERE tenant_id = ? AND event_name = ? AND seq >= ? AND seq <= ?
	  AND time_ms >= ? AND time_ms < ?
	ORDER BY seq`

// Scan streams the events of group g in sequence order. See Store.Scan.
//
// The rows are read in a WAL read transaction, which holds no lock a writer
// waits for, so a slow fn does not stall ingest.
func (s *SQLite) Scan(ctx context.Context, tenantID int64, g Group, fn func(ev StoredEvent) error) error {
	spanMs := msPerDay
	if g.Span > 0 {
		spanMs = g.Span.Milliseconds()
	}
	start := floorDiv(g.Day.UnixMilli(), spanMs) * spanMs
	rows, err := s.reader.QueryContext(ctx, scanSQL,
		tenantID, g.EventName, g.FirstSeq, g.LastSeq, start, start+spanMs)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	defer rows.Close()

	ev := StoredEvent{EventName: g.EventName}
	for rows.Next() {
		// RawBytes avoids a copy per row; it is valid until the next
		// call to Next, which is why fn must not keep the body.
		var body sql.RawBytes
		if err := rows.Scan(&ev.Seq, &ev.TimeMs, &body); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		ev.Body = body
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	return nil
}

// floorDiv divides rounding toward negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// expiredRangeSQL reads the oldest event through the primary key and the
// last one stored before the cutoff through the ingest-time index, newest
// first: one probe each, however many events are retained.
const expiredRangeSQL = `SELECT
	COALESCE((SELECT o.seq FROM (SELECT seq, received_ms FROM events WHERE tenant_id = ?1 ORDER BY seq LIMIT 1) o
		WHERE o.received_ms < ?2), 0),
	COALESCE((SELECT seq FROM events INDEXED BY events_received WHERE tenant_id = ?1 AND received_ms < ?2
		ORDER BY received_ms DESC, seq DESC LIMIT 1), 0)`

// ExpiredRange returns the sequence range retention may delete from. See
// Store.ExpiredRange.
func (s *SQLite) ExpiredRange(ctx context.Context, tenantID int64, before time.Time) (first, last int64, err error) {
	err = s.reader.QueryRowContext(ctx, expiredRangeSQL, tenantID, before.UnixMilli()).Scan(&first, &last)
	if err != nil {
		return 0, 0, fmt.Errorf("expired range: %w", err)
	}
	if first == 0 {
		return 0, 0, nil
	}
	return first, last, nil
}

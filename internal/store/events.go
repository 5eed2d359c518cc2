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

// insertEventSQL names the conflict target so that only a repeated event (the
// same messageId and timestamp) is skipped; a clash on (tenant_id, seq) would
// be a bug and must fail.
const insertEventSQL = `INSERT INTO events
	(tenant_id, seq, message_id, event_name, time_ms, received_ms, body)
	VALUES (?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (tenant_id, time_ms, message_id) DO NOTHING`

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
		ins := tx.StmtContext(ctx, s.insertEvent)
		defer ins.Close()

		heads := make(map[int64]int64)
		for i, b := range batches {
			head, ok := heads[b.TenantID]
			if !ok {
				var err error
				if head, err = headTx(ctx, tx, b.TenantID); err != nil {
					return err
				}
			}
			r, err := appendBatch(ctx, ins, b, head, received)
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

func hasEvents(batches []AppendBatch) bool {
	for _, b := range batches {
		if len(b.Events) > 0 {
			return true
		}
	}
	return false
}

// appendBatch inserts b's events after head. A duplicate uses no sequence
// number, so the stored events stay dense.
func appendBatch(ctx context.Context, ins *sql.Stmt, b AppendBatch, head, received int64) (AppendResult, error) {
	var r AppendResult
	for _, ev := range b.Events {
		res, err := ins.ExecContext(ctx, b.TenantID, head+1, ev.MessageID,
			ev.EventName, ev.TimeMs, received, nonNil(ev.Body))
		if err != nil {
			return AppendResult{}, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return AppendResult{}, err
		}
		if n == 0 {
			r.Duplicates++
			continue
		}
		head++
		if r.Stored == 0 {
			r.FirstSeq = head
		}
		r.LastSeq = head
		r.Stored++
	}
	return r, nil
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

package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// lastSeqBeforeSQL finds the first commit after ?3 stored at or after ?2:
// the later of the mark holding ?3+1 (primary key) and the first mark stored
// at or after the time (ingest-time index), as received_ms never decreases
// along the sequence. Without either there is no such event: the head.
const lastSeqBeforeSQL = `SELECT COALESCE(
	(SELECT MAX(m.first_seq, ?3 + 1) - 1 FROM commit_marks m WHERE m.tenant_id = ?1 AND m.last_seq = MAX(
		(SELECT last_seq FROM commit_marks WHERE tenant_id = ?1 AND last_seq > ?3 ORDER BY last_seq LIMIT 1),
		(SELECT last_seq FROM commit_marks INDEXED BY commit_marks_received
			WHERE tenant_id = ?1 AND received_ms >= ?2 ORDER BY received_ms, last_seq LIMIT 1))),
	(SELECT head_seq FROM tenants WHERE id = ?1))`

// LastSeqBefore returns the last sequence number stored before t. See
// Store.LastSeqBefore. One statement, so the marks and the head come from
// the same snapshot.
func (s *SQLite) LastSeqBefore(ctx context.Context, tenantID, after int64, t time.Time) (int64, error) {
	var seq sql.NullInt64
	err := s.read.QueryRowContext(ctx, lastSeqBeforeSQL, tenantID, t.UnixMilli(), after).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("last sequence before %s: %w", t.Format(time.RFC3339), err)
	}
	if !seq.Valid {
		return 0, fmt.Errorf("last sequence before: tenant %d: %w", tenantID, ErrNotFound)
	}
	return seq.Int64, nil
}

// UpdatePlan records p.Objects in the pending plan. See Store.UpdatePlan.
func (s *SQLite) UpdatePlan(ctx context.Context, p Plan) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.checkFence(ctx, tx, p.DestinationID, p.Fence); err != nil {
			return err
		}
		res, err := s.inWrite.execIn(ctx, tx, updatePlanSQL,
			nonNil(p.Objects), p.DestinationID, p.FromSeq, p.ToSeq)
		if err != nil {
			return err
		}
		return requireOne(res, "plan %d-%d of destination %q", p.FromSeq, p.ToSeq, p.DestinationID)
	})
	if err != nil {
		return fmt.Errorf("update plan: %w", err)
	}
	return nil
}

// DeleteEvents deletes up to limit events of the tenant with seq <= maxSeq
// that were stored before t, oldest first, and returns how many it deleted.
//
// Retention only ever deletes a prefix of the sequence (received_ms never
// decreases along it), so the retained events are always oldest..head, dense:
// the call computes the last sequence number to delete and drops the chunks
// up to it, rewrites those it cuts through, and deletes the events'
// duplicate keys and the commit marks with them.
func (s *SQLite) DeleteEvents(ctx context.Context, tenantID, maxSeq int64, before time.Time, limit int) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = deletePrefix(ctx, tx, tenantID, maxSeq, before, limit)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete events: %w", err)
	}
	return n, nil
}

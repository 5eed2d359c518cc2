package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// LastSeqBefore returns the last sequence number stored before t. See
// Store.LastSeqBefore. One statement, so the event lookup and the head come
// from the same snapshot. The ingest-time index bounds the search to the
// events stored since t; left alone, the planner walks the primary key over
// the whole backlog after `after`.
func (s *SQLite) LastSeqBefore(ctx context.Context, tenantID, after int64, t time.Time) (int64, error) {
	var seq sql.NullInt64
	err := s.reader.QueryRowContext(ctx, `SELECT COALESCE(
		(SELECT MIN(seq) - 1 FROM events INDEXED BY events_received
			WHERE tenant_id = ?1 AND received_ms >= ?2 AND seq > ?3),
		(SELECT head_seq FROM tenants WHERE id = ?1))`,
		tenantID, t.UnixMilli(), after).Scan(&seq)
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
		res, err := tx.ExecContext(ctx, `UPDATE plans SET objects = ?
			WHERE destination_id = ? AND from_seq = ? AND to_seq = ?`,
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
func (s *SQLite) DeleteEvents(ctx context.Context, tenantID, maxSeq int64, before time.Time, limit int) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE tenant_id = ?1 AND seq IN (
			SELECT seq FROM events WHERE tenant_id = ?1 AND seq <= ?2 AND received_ms < ?3
			ORDER BY seq LIMIT ?4)`, tenantID, maxSeq, before.UnixMilli(), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete events: %w", err)
	}
	return n, nil
}

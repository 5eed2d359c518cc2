package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// LastSeqBefore returns the last sequence number stored before t. See
// Store.LastSeqBefore.
func (s *SQLite) LastSeqBefore(ctx context.Context, tenantID, after int64, t time.Time) (int64, error) {
	var first int64
	err := s.reader.QueryRowContext(ctx,
		`SELECT seq FROM events WHERE tenant_id = ? AND seq > ? AND received_ms >= ? ORDER BY seq LIMIT 1`,
		tenantID, after, t.UnixMilli()).Scan(&first)
	if errors.Is(err, sql.ErrNoRows) {
		return s.Head(ctx, tenantID)
	}
	if err != nil {
		return 0, fmt.Errorf("backfill start: %w", err)
	}
	return first - 1, nil
}

// UpdatePlan records p.Objects in the pending plan. See Store.UpdatePlan.
func (s *SQLite) UpdatePlan(ctx context.Context, p Plan) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
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

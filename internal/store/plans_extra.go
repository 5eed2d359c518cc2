package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// LastSeqBefore returns the cursor from which a new destination backfills
// events stored since t. See Store.LastSeqBefore.
func (s *SQLite) LastSeqBefore(ctx context.Context, tenantID int64, t time.Time) (int64, error) {
	var first int64
	err := s.reader.QueryRowContext(ctx,
		`SELECT seq FROM events WHERE tenant_id = ? AND received_ms >= ? ORDER BY seq LIMIT 1`,
		tenantID, t.UnixMilli()).Scan(&first)
	if errors.Is(err, sql.ErrNoRows) {
		return s.Head(ctx, tenantID)
	}
	if err != nil {
		return 0, fmt.Errorf("backfill start: %w", err)
	}
	return first - 1, nil
}

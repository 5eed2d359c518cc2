package store

import (
	"context"
	"database/sql"
	"fmt"
)

const destinationColumns = `id, tenant_id, spec, cursor, created_at, updated_at`

// CreateDestination stores d with the id the caller chose. d.Cursor is kept
// as given, so the caller decides where delivery starts (backfill). An
// unknown tenant is an error wrapping ErrNotFound and a taken id one wrapping
// ErrConflict.
func (s *SQLite) CreateDestination(ctx context.Context, d Destination) (Destination, error) {
	d.CreatedAt = s.now()
	d.UpdatedAt = d.CreatedAt
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := tenantExists(ctx, tx, d.TenantID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO destinations
			(id, tenant_id, spec, cursor, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)`,
			d.ID, d.TenantID, nonNil(d.Spec), d.Cursor, toMs(d.CreatedAt), toMs(d.UpdatedAt))
		if err != nil {
			return err
		}
		// Every destination has a lease row, free until claimed.
		if _, err = tx.ExecContext(ctx, `INSERT INTO leases (destination_id) VALUES (?)`, d.ID); err != nil {
			return err
		}
		// The delivery log starts at the cursor delivery starts from.
		_, err = tx.ExecContext(ctx, `INSERT INTO delivery_log_start (destination_id, start_cursor, started_at)
			VALUES (?, ?, ?)`, d.ID, d.Cursor, toMs(d.CreatedAt))
		return err
	})
	if isUnique(err) {
		return Destination{}, fmt.Errorf("destination %q: %w", d.ID, ErrConflict)
	}
	if err != nil {
		return Destination{}, fmt.Errorf("create destination %q: %w", d.ID, err)
	}
	return d, nil
}

// GetDestination returns a destination of the tenant. A destination of
// another tenant is not found: this is where tenants are kept apart.
func (s *SQLite) GetDestination(ctx context.Context, tenantID int64, id string) (Destination, error) {
	row := s.read.QueryRowContext(ctx, `SELECT `+destinationColumns+`
		FROM destinations WHERE id = ? AND tenant_id = ?`, id, tenantID)
	d, err := scanDestination(row)
	if err != nil {
		return Destination{}, notFound(err, "destination %q", id)
	}
	return d, nil
}

// ListDestinations lists a tenant's destinations, or every tenant's when
// tenantID is 0, ordered by creation.
func (s *SQLite) ListDestinations(ctx context.Context, tenantID int64) ([]Destination, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+destinationColumns+`
		FROM destinations WHERE ? = 0 OR tenant_id = ?
		ORDER BY created_at, id`, tenantID, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list destinations: %w", err)
	}
	defer rows.Close()

	var ds []Destination
	for rows.Next() {
		d, err := scanDestination(rows)
		if err != nil {
			return nil, fmt.Errorf("list destinations: %w", err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list destinations: %w", err)
	}
	return ds, nil
}

// DestinationsVersion is the counter the schema's triggers move on every
// change to the destinations.
func (s *SQLite) DestinationsVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.read.QueryRowContext(ctx, destinationsVersionSQL).Scan(&v); err != nil {
		return 0, fmt.Errorf("destinations version: %w", err)
	}
	return v, nil
}

// destinationsVersionSQL is DestinationsVersion's statement on both engines.
const destinationsVersionSQL = `SELECT version FROM destinations_version`

// UpdateDestination replaces the spec of a destination of the tenant. The
// cursor, status and any pending plan are kept.
func (s *SQLite) UpdateDestination(ctx context.Context, tenantID int64, id string, spec []byte) (Destination, error) {
	var d Destination
	err := s.write(ctx, func(tx *sql.Tx) error {
		row := tx.QueryRowContext(ctx, `UPDATE destinations SET spec = ?, updated_at = ?
			WHERE id = ? AND tenant_id = ?
			RETURNING `+destinationColumns,
			nonNil(spec), toMs(s.now()), id, tenantID)
		var err error
		d, err = scanDestination(row)
		return notFound(err, "destination %q", id)
	})
	if err != nil {
		return Destination{}, fmt.Errorf("update destination: %w", err)
	}
	return d, nil
}

// DeleteDestination deletes a destination of the tenant; its status and
// pending plan go with it (ON DELETE CASCADE).
func (s *SQLite) DeleteDestination(ctx context.Context, tenantID int64, id string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`DELETE FROM destinations WHERE id = ? AND tenant_id = ?`, id, tenantID)
		if err != nil {
			return err
		}
		return requireOne(res, "destination %q", id)
	})
	if err != nil {
		return fmt.Errorf("delete destination: %w", err)
	}
	return nil
}

func scanDestination(sc scanner) (Destination, error) {
	var d Destination
	var created, updated int64
	err := sc.Scan(&d.ID, &d.TenantID, &d.Spec, &d.Cursor, &created, &updated)
	if err != nil {
		return Destination{}, err
	}
	d.CreatedAt = fromMs(created)
	d.UpdatedAt = fromMs(updated)
	return d, nil
}

// GetStatus returns a destination's status; a destination that has none yet
// has the zero Status. An unknown destination is an error wrapping
// ErrNotFound.
func (s *SQLite) GetStatus(ctx context.Context, destID string) (Status, error) {
	var st Status
	var lastDelivery, lastAttempt, failingSince int64
	err := s.read.QueryRowContext(ctx, `SELECT
			COALESCE(s.last_delivery_at, 0), COALESCE(s.last_attempt_at, 0),
			COALESCE(s.last_error, ''), COALESCE(s.failing_since, 0),
			COALESCE(s.events_delivered, 0), COALESCE(s.objects_delivered, 0),
			COALESCE(s.bytes_delivered, 0), `+sqliteHolderColumn+`
		FROM destinations d
		LEFT JOIN destination_status s ON s.destination_id = d.id
		WHERE d.id = ?`, toMs(s.now()), destID).
		Scan(&lastDelivery, &lastAttempt, &st.LastError, &failingSince,
			&st.EventsDelivered, &st.ObjectsDelivered, &st.BytesDelivered, &st.Holder)
	if err != nil {
		return Status{}, fmt.Errorf("get status: %w", notFound(err, "destination %q", destID))
	}
	st.LastDeliveryAt = fromMs(lastDelivery)
	st.LastAttemptAt = fromMs(lastAttempt)
	st.FailingSince = fromMs(failingSince)
	return st, nil
}

// DestinationStatus returns a destination of the tenant and its status in
// one statement (see Store.DestinationStatus).
func (s *SQLite) DestinationStatus(ctx context.Context, tenantID int64, id string) (Destination, Status, error) {
	row := s.read.QueryRowContext(ctx, `SELECT `+destinationStatusColumns+`, `+sqliteHolderColumn+`
		FROM destinations d
		LEFT JOIN destination_status s ON s.destination_id = d.id
		WHERE d.id = ? AND d.tenant_id = ?`, toMs(s.now()), id, tenantID)
	d, st, err := scanDestinationStatus(row)
	if err != nil {
		return Destination{}, Status{}, fmt.Errorf("destination status: %w", notFound(err, "destination %q", id))
	}
	return d, st, nil
}

// DestinationSummaries lists every destination with its status, tenant,
// head and oldest undelivered event, in one statement. See
// Store.DestinationSummaries. The oldest event is one primary-key lookup
// per destination: the commit mark holding the event after its cursor.
func (s *SQLite) DestinationSummaries(ctx context.Context) ([]DestinationSummary, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+destinationStatusColumns+`, `+sqliteHolderColumn+`,
			t.name, t.head_seq,
			COALESCE((SELECT m.received_ms FROM commit_marks m
				WHERE m.tenant_id = d.tenant_id AND m.last_seq > d.cursor ORDER BY m.last_seq LIMIT 1), 0)
		FROM destinations d
		JOIN tenants t ON t.id = d.tenant_id
		LEFT JOIN destination_status s ON s.destination_id = d.id
		ORDER BY d.created_at, d.id`, toMs(s.now()))
	if err != nil {
		return nil, fmt.Errorf("destination summaries: %w", err)
	}
	defer rows.Close()
	var out []DestinationSummary
	for rows.Next() {
		sum, err := scanDestinationSummary(rows)
		if err != nil {
			return nil, fmt.Errorf("destination summaries: %w", err)
		}
		out = append(out, sum)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("destination summaries: %w", err)
	}
	return out, nil
}

// scanDestinationSummary reads destinationStatusColumns, the holder, then
// the tenant's name and head and the oldest undelivered event's time.
func scanDestinationSummary(sc scanner) (DestinationSummary, error) {
	var sum DestinationSummary
	var created, updated, lastDelivery, lastAttempt, failingSince, oldest int64
	d, st := &sum.Destination, &sum.Status
	err := sc.Scan(&d.ID, &d.TenantID, &d.Spec, &d.Cursor, &created, &updated,
		&lastDelivery, &lastAttempt, &st.LastError, &failingSince,
		&st.EventsDelivered, &st.ObjectsDelivered, &st.BytesDelivered, &st.Holder,
		&sum.Tenant, &sum.Head, &oldest)
	if err != nil {
		return DestinationSummary{}, err
	}
	d.CreatedAt, d.UpdatedAt = fromMs(created), fromMs(updated)
	st.LastDeliveryAt = fromMs(lastDelivery)
	st.LastAttemptAt = fromMs(lastAttempt)
	st.FailingSince = fromMs(failingSince)
	sum.OldestUndelivered = fromMs(oldest)
	return sum, nil
}

// sqliteHolderColumn is the holder of d's unexpired lease, empty when none;
// its one parameter is the time now in milliseconds.
const sqliteHolderColumn = `COALESCE((SELECT l.holder FROM leases l
	WHERE l.destination_id = d.id AND l.expires_at > ?), '')`

// destinationStatusColumns are a destination's columns then its status's,
// as scanDestinationStatus reads them (followed by the engine's holder
// column); d is destinations, s destination_status.
const destinationStatusColumns = `d.id, d.tenant_id, d.spec, d.cursor, d.created_at, d.updated_at,
	COALESCE(s.last_delivery_at, 0), COALESCE(s.last_attempt_at, 0),
	COALESCE(s.last_error, ''), COALESCE(s.failing_since, 0),
	COALESCE(s.events_delivered, 0), COALESCE(s.objects_delivered, 0),
	COALESCE(s.bytes_delivered, 0)`

func scanDestinationStatus(sc scanner) (Destination, Status, error) {
	var d Destination
	var st Status
	var created, updated, lastDelivery, lastAttempt, failingSince int64
	err := sc.Scan(&d.ID, &d.TenantID, &d.Spec, &d.Cursor, &created, &updated,
		&lastDelivery, &lastAttempt, &st.LastError, &failingSince,
		&st.EventsDelivered, &st.ObjectsDelivered, &st.BytesDelivered, &st.Holder)
	if err != nil {
		return Destination{}, Status{}, err
	}
	d.CreatedAt, d.UpdatedAt = fromMs(created), fromMs(updated)
	st.LastDeliveryAt = fromMs(lastDelivery)
	st.LastAttemptAt = fromMs(lastAttempt)
	st.FailingSince = fromMs(failingSince)
	return d, st, nil
}

// RecordAttempt records the outcome of a delivery attempt in one statement
// (see Store.RecordAttempt). The status row is created when the destination
// has none yet; selecting from destinations makes an unknown destination
// insert nothing, which is how it is told apart.
func (s *SQLite) RecordAttempt(ctx context.Context, destID string, a Attempt) error {
	at := toMs(a.At)
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.checkFence(ctx, tx, destID, a.Fence); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO destination_status
			(destination_id, last_attempt_at, last_error, failing_since)
			SELECT id, ?1, ?2, CASE WHEN ?2 = '' THEN 0 ELSE ?1 END
			FROM destinations WHERE id = ?3
			ON CONFLICT (destination_id) DO UPDATE SET
				last_attempt_at = excluded.last_attempt_at,
				last_error      = excluded.last_error,
				failing_since   = CASE
					WHEN excluded.last_error = '' THEN 0
					WHEN failing_since = 0 THEN excluded.last_attempt_at
					ELSE failing_since
				END`,
			at, a.Err, destID)
		if err != nil {
			return err
		}
		return requireOne(res, "destination %q", destID)
	})
	if err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	return nil
}

// PendingPlan returns the destination's saved plan, or an error wrapping
// ErrNotFound when there is none.
func (s *SQLite) PendingPlan(ctx context.Context, destID string) (Plan, error) {
	p := Plan{DestinationID: destID}
	var windowEnd, created int64
	err := s.read.QueryRowContext(ctx, `SELECT from_seq, to_seq, window_end, objects, created_at
		FROM plans WHERE destination_id = ?`, destID).
		Scan(&p.FromSeq, &p.ToSeq, &windowEnd, &p.Objects, &created)
	if err != nil {
		return Plan{}, fmt.Errorf("pending plan: %w", notFound(err, "plan of destination %q", destID))
	}
	p.WindowEnd = fromMs(windowEnd)
	p.CreatedAt = fromMs(created)
	return p, nil
}

// SavePlan saves p as the destination's pending plan. If one is pending
// already the error wraps ErrConflict; if the destination does not exist, it
// wraps ErrNotFound. A zero p.CreatedAt is set to now.
func (s *SQLite) SavePlan(ctx context.Context, p Plan) error {
	if p.CreatedAt.IsZero() {
		p.CreatedAt = s.now()
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.destinationExists(ctx, tx, p.DestinationID); err != nil {
			return err
		}
		if err := s.checkFence(ctx, tx, p.DestinationID, p.Fence); err != nil {
			return err
		}
		_, err := s.inWrite.execIn(ctx, tx, savePlanSQL,
			p.DestinationID, p.FromSeq, p.ToSeq, toMs(p.WindowEnd), nonNil(p.Objects), toMs(p.CreatedAt))
		if isUnique(err) {
			return fmt.Errorf("plan of destination %q already pending: %w", p.DestinationID, ErrConflict)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("save plan: %w", err)
	}
	return nil
}

// CommitPlan marks p done: in one transaction it deletes the plan, moves the
// cursor to p.ToSeq and records the delivery in the status (counters added,
// error and failing-since cleared). If the plan is gone (or a different plan
// is pending) the error wraps ErrNotFound and nothing changes. A zero d.At
// is set to now.
func (s *SQLite) CommitPlan(ctx context.Context, p Plan, d Delivered) error {
	if d.At.IsZero() {
		d.At = s.now()
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.checkFence(ctx, tx, p.DestinationID, p.Fence); err != nil {
			return err
		}
		res, err := s.inWrite.execIn(ctx, tx, deletePlanSQL, p.DestinationID, p.FromSeq, p.ToSeq)
		if err != nil {
			return err
		}
		if err := requireOne(res, "plan %d-%d of destination %q", p.FromSeq, p.ToSeq, p.DestinationID); err != nil {
			return err
		}
		_, err = s.inWrite.execIn(ctx, tx, moveCursorSQL, p.ToSeq, p.DestinationID)
		if err != nil {
			return err
		}
		_, err = s.inWrite.execIn(ctx, tx, recordDeliverySQL,
			p.DestinationID, toMs(d.At), d.Events, d.Objects, d.Bytes)
		if err != nil {
			return err
		}
		return s.logCommit(ctx, tx, p, d.Log)
	})
	if err != nil {
		return fmt.Errorf("commit plan: %w", err)
	}
	return nil
}

func (s *SQLite) destinationExists(ctx context.Context, tx *sql.Tx, id string) error {
	var one int
	err := s.inWrite.queryRowIn(ctx, tx, destinationExistsSQL, id).Scan(&one)
	return notFound(err, "destination %q", id)
}

// The statements of a delivery's plan, run thousands of times a minute
// with many destinations: prepared once on the writer (writerStmts).
const (
	destinationExistsSQL = `SELECT 1 FROM destinations WHERE id = ?`
	savePlanSQL          = `INSERT INTO plans
		(destination_id, from_seq, to_seq, window_end, objects, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`
	updatePlanSQL = `UPDATE plans SET objects = ?
		WHERE destination_id = ? AND from_seq = ? AND to_seq = ?`
	deletePlanSQL     = `DELETE FROM plans WHERE destination_id = ? AND from_seq = ? AND to_seq = ?`
	moveCursorSQL     = `UPDATE destinations SET cursor = ? WHERE id = ?`
	recordDeliverySQL = `INSERT INTO destination_status
		(destination_id, last_delivery_at, events_delivered, objects_delivered, bytes_delivered)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (destination_id) DO UPDATE SET
			last_delivery_at  = excluded.last_delivery_at,
			last_error        = '',
			failing_since     = 0,
			events_delivered  = events_delivered + excluded.events_delivered,
			objects_delivered = objects_delivered + excluded.objects_delivered,
			bytes_delivered   = bytes_delivered + excluded.bytes_delivered`
	checkFenceSQL = `SELECT 1 FROM leases
		WHERE destination_id = ? AND holder = ? AND epoch = ? AND expires_at > ?`
	logCommitSQL = `INSERT INTO delivery_commits
		(destination_id, to_seq, from_seq, committed_at) VALUES (?, ?, ?, ?)`
	logObjectSQL = `INSERT INTO delivered_objects
		(destination_id, commit_seq, ord, key, sha256, size, events, first_seq, last_seq,
		 oldest_ms, newest_ms, committed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

// writerStmts are the writer's prepared statements: the plan's and the
// write batcher's savepoints.
var writerStmts = []string{
	destinationExistsSQL, savePlanSQL, updatePlanSQL, deletePlanSQL, moveCursorSQL,
	recordDeliverySQL, checkFenceSQL, logCommitSQL, logObjectSQL,
	savepointSQL, rollbackToSQL, releaseSQL, headSQL,
}

// requireOne returns an error wrapping ErrNotFound unless res changed a row.
func requireOne(res sql.Result, format string, args ...any) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound(sql.ErrNoRows, format, args...)
	}
	return nil
}

// nonNil keeps NOT NULL blob columns happy when the caller passes nil.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

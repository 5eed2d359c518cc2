package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// CreateDestination stores d with the id the caller chose. d.Cursor is kept
// as given, so the caller decides where delivery starts (backfill). An
// unknown tenant is an error wrapping ErrNotFound and a taken id one wrapping
// ErrConflict.
func (p *Postgres) CreateDestination(ctx context.Context, d Destination) (Destination, error) {
	d.CreatedAt = p.now()
	d.UpdatedAt = d.CreatedAt
	// The destination, its free lease row and where its delivery log
	// starts are inserted together.
	_, err := p.exec(ctx, `WITH created AS (
			INSERT INTO destinations (id, tenant_id, spec, cursor, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			RETURNING id
		), log_start AS (
			INSERT INTO delivery_log_start (destination_id, start_cursor, started_at)
			SELECT id, $4, $5 FROM created
		)
		INSERT INTO leases (destination_id) SELECT id FROM created`,
		d.ID, d.TenantID, nonNil(d.Spec), d.Cursor, toMs(d.CreatedAt), toMs(d.UpdatedAt))
	switch pgCode(err) {
	case codeUniqueViolation:
		return Destination{}, fmt.Errorf("destination %q: %w", d.ID, ErrConflict)
	case codeForeignKeyViolation:
		return Destination{}, fmt.Errorf("create destination %q: tenant %d: %w", d.ID, d.TenantID, ErrNotFound)
	}
	if err != nil {
		return Destination{}, p.fail(ctx, fmt.Sprintf("create destination %q", d.ID), err)
	}
	return d, nil
}

// GetDestination returns a destination of the tenant. A destination of
// another tenant is not found: this is where tenants are kept apart.
func (p *Postgres) GetDestination(ctx context.Context, tenantID int64, id string) (Destination, error) {
	d, err := p.destination(ctx, `SELECT `+destinationColumns+`
		FROM destinations WHERE id = $1 AND tenant_id = $2`, id, tenantID)
	if err != nil {
		return Destination{}, p.fail(ctx, "get destination", pgNotFound(err, "destination %q", id))
	}
	return d, nil
}

func (p *Postgres) destination(ctx context.Context, sql string, args ...any) (Destination, error) {
	ctx, cancel := p.bound(ctx)
	defer cancel()
	return scanDestination(p.pool.QueryRow(ctx, sql, args...))
}

// ListDestinations lists a tenant's destinations, or every tenant's when
// tenantID is 0, ordered by creation.
func (p *Postgres) ListDestinations(ctx context.Context, tenantID int64) ([]Destination, error) {
	ctx2, cancel := p.bound(ctx)
	defer cancel()
	rows, err := p.pool.Query(ctx2, `SELECT `+destinationColumns+`
		FROM destinations WHERE $1::bigint = 0 OR tenant_id = $1
		ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, p.fail(ctx, "list destinations", err)
	}
	ds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Destination, error) {
		return scanDestination(row)
	})
	if err != nil {
		return nil, p.fail(ctx, "list destinations", err)
	}
	if len(ds) == 0 {
		return nil, nil
	}
	return ds, nil
}

// DestinationsVersion is the counter the schema's triggers move on every
// change to the destinations.
func (p *Postgres) DestinationsVersion(ctx context.Context) (int64, error) {
	ctx2, cancel := p.bound(ctx)
	defer cancel()
	var v int64
	if err := p.pool.QueryRow(ctx2, destinationsVersionSQL).Scan(&v); err != nil {
		return 0, p.fail(ctx, "destinations version", err)
	}
	return v, nil
}

// UpdateDestination replaces the spec of a destination of the tenant. The
// cursor, status and any pending plan are kept.
func (p *Postgres) UpdateDestination(ctx context.Context, tenantID int64, id string, spec []byte) (Destination, error) {
	d, err := p.destination(ctx, `UPDATE destinations SET spec = $1, updated_at = $2
		WHERE id = $3 AND tenant_id = $4
		RETURNING `+destinationColumns,
		nonNil(spec), toMs(p.now()), id, tenantID)
	if err != nil {
		return Destination{}, p.fail(ctx, "update destination", pgNotFound(err, "destination %q", id))
	}
	return d, nil
}

// DeleteDestination deletes a destination of the tenant; its status and
// pending plan go with it (ON DELETE CASCADE).
func (p *Postgres) DeleteDestination(ctx context.Context, tenantID int64, id string) error {
	tag, err := p.exec(ctx, `DELETE FROM destinations WHERE id = $1 AND tenant_id = $2`, id, tenantID)
	if err != nil {
		return p.fail(ctx, "delete destination", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete destination: destination %q: %w", id, ErrNotFound)
	}
	return nil
}

// GetStatus returns a destination's status; a destination that has none yet
// has the zero Status. An unknown destination is an error wrapping
// ErrNotFound.
func (p *Postgres) GetStatus(ctx context.Context, destID string) (Status, error) {
	var st Status
	var lastDelivery, lastAttempt, failingSince int64
	err := p.queryRow(ctx, `SELECT
			COALESCE(s.last_delivery_at, 0), COALESCE(s.last_attempt_at, 0),
			COALESCE(s.last_error, ''), COALESCE(s.failing_since, 0),
			COALESCE(s.events_delivered, 0), COALESCE(s.objects_delivered, 0),
			COALESCE(s.bytes_delivered, 0), `+pgHolderColumn+`
		FROM destinations d
		LEFT JOIN destination_status s ON s.destination_id = d.id
		WHERE d.id = $1`, []any{destID},
		&lastDelivery, &lastAttempt, &st.LastError, &failingSince,
		&st.EventsDelivered, &st.ObjectsDelivered, &st.BytesDelivered, &st.Holder)
	if err != nil {
		return Status{}, p.fail(ctx, "get status", pgNotFound(err, "destination %q", destID))
	}
	st.LastDeliveryAt = fromMs(lastDelivery)
	st.LastAttemptAt = fromMs(lastAttempt)
	st.FailingSince = fromMs(failingSince)
	return st, nil
}

// DestinationStatus returns a destination of the tenant and its status in
// one statement, so one snapshot (see Store.DestinationStatus).
func (p *Postgres) DestinationStatus(ctx context.Context, tenantID int64, id string) (Destination, Status, error) {
	ctx2, cancel := p.bound(ctx)
	defer cancel()
	d, st, err := scanDestinationStatus(p.pool.QueryRow(ctx2, `SELECT `+destinationStatusColumns+`, `+pgHolderColumn+`
		FROM destinations d
		LEFT JOIN destination_status s ON s.destination_id = d.id
		WHERE d.id = $1 AND d.tenant_id = $2`, id, tenantID))
	if err != nil {
		return Destination{}, Status{}, p.fail(ctx, "destination status", pgNotFound(err, "destination %q", id))
	}
	return d, st, nil
}

// DestinationSummaries lists every destination with its status, tenant,
// head and oldest undelivered event, in one statement. See
// Store.DestinationSummaries.
func (p *Postgres) DestinationSummaries(ctx context.Context) ([]DestinationSummary, error) {
	ctx2, cancel := p.bound(ctx)
	defer cancel()
	rows, err := p.pool.Query(ctx2, `SELECT `+destinationStatusColumns+`, `+pgHolderColumn+`,
			t.name, COALESCE(h.head, 0),
			COALESCE(`+pgOldestAfterSQL("d.tenant_id", "d.cursor")+`, 0)
		FROM destinations d
		JOIN tenants t ON t.id = d.tenant_id
		LEFT JOIN tenant_heads h ON h.tenant_id = d.tenant_id
		LEFT JOIN destination_status s ON s.destination_id = d.id
		ORDER BY d.created_at, d.id`)
	if err != nil {
		return nil, p.fail(ctx, "destination summaries", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DestinationSummary, error) {
		return scanDestinationSummary(row)
	})
	if err != nil {
		return nil, p.fail(ctx, "destination summaries", err)
	}
	return out, nil
}

// RecordAttempt updates the destination's status in one statement. See
// Store.RecordAttempt. The statement reads the destination row, so an
// unknown destination changes nothing and is reported as not found.
func (p *Postgres) RecordAttempt(ctx context.Context, destID string, a Attempt) error {
	at := toMs(a.At)
	tag, err := p.exec(ctx, `INSERT INTO destination_status
			(destination_id, last_attempt_at, last_error, failing_since)
		SELECT id, $2, $3, CASE WHEN $3 = '' THEN 0 ELSE $2::bigint END
		FROM destinations WHERE id = $1 AND `+pgFenced("$1", "$4", "$5")+`
		ON CONFLICT (destination_id) DO UPDATE SET
			last_attempt_at = excluded.last_attempt_at,
			last_error      = excluded.last_error,
			failing_since   = CASE
				WHEN excluded.last_error = '' THEN 0
				WHEN destination_status.failing_since = 0 THEN excluded.last_attempt_at
				ELSE destination_status.failing_since
			END`,
		destID, at, a.Err, a.Fence.Holder, a.Fence.Epoch)
	if err == nil && tag.RowsAffected() == 0 {
		return p.lostOr(ctx, "record attempt", destID, a.Fence,
			fmt.Errorf("record attempt: destination %q: %w", destID, ErrNotFound))
	}
	return p.statusWritten(ctx, "record attempt", destID, tag.RowsAffected(), err)
}

// statusWritten turns the outcome of a status upsert into the call's error.
// A destination deleted between the statement's read and its insert fails
// the foreign key: that too is not found.
func (p *Postgres) statusWritten(ctx context.Context, op, destID string, rows int64, err error) error {
	if pgCode(err) == codeForeignKeyViolation || (err == nil && rows == 0) {
		return fmt.Errorf("%s: destination %q: %w", op, destID, ErrNotFound)
	}
	if err != nil {
		return p.fail(ctx, op, err)
	}
	return nil
}

// PendingPlan returns the destination's saved plan, or an error wrapping
// ErrNotFound when there is none.
func (p *Postgres) PendingPlan(ctx context.Context, destID string) (Plan, error) {
	pl := Plan{DestinationID: destID}
	var windowEnd, created int64
	err := p.queryRow(ctx, `SELECT from_seq, to_seq, window_end, objects, created_at
		FROM plans WHERE destination_id = $1`, []any{destID},
		&pl.FromSeq, &pl.ToSeq, &windowEnd, &pl.Objects, &created)
	if err != nil {
		return Plan{}, p.fail(ctx, "pending plan", pgNotFound(err, "plan of destination %q", destID))
	}
	pl.WindowEnd = fromMs(windowEnd)
	pl.CreatedAt = fromMs(created)
	return pl, nil
}

// SavePlan saves pl as the destination's pending plan. If one is pending
// already the error wraps ErrConflict; if the destination does not exist, it
// wraps ErrNotFound. A zero pl.CreatedAt is set to now.
func (p *Postgres) SavePlan(ctx context.Context, pl Plan) error {
	if pl.CreatedAt.IsZero() {
		pl.CreatedAt = p.now()
	}
	tag, err := p.exec(ctx, `INSERT INTO plans
		(destination_id, from_seq, to_seq, window_end, objects, created_at)
		SELECT $1::text, $2::bigint, $3::bigint, $4::bigint, $5::bytea, $6::bigint
		WHERE `+pgFenced("$1", "$7", "$8"),
		pl.DestinationID, pl.FromSeq, pl.ToSeq, toMs(pl.WindowEnd), nonNil(pl.Objects), toMs(pl.CreatedAt),
		pl.Fence.Holder, pl.Fence.Epoch)
	if err == nil && tag.RowsAffected() == 0 {
		return fmt.Errorf("save plan: %w", leaseLost(pl.DestinationID, pl.Fence))
	}
	switch pgCode(err) {
	case codeUniqueViolation:
		return fmt.Errorf("save plan: plan of destination %q already pending: %w", pl.DestinationID, ErrConflict)
	case codeForeignKeyViolation:
		return fmt.Errorf("save plan: destination %q: %w", pl.DestinationID, ErrNotFound)
	}
	if err != nil {
		return p.fail(ctx, "save plan", err)
	}
	return nil
}

// UpdatePlan records pl.Objects in the pending plan. See Store.UpdatePlan.
func (p *Postgres) UpdatePlan(ctx context.Context, pl Plan) error {
	tag, err := p.exec(ctx, `UPDATE plans SET objects = $1
		WHERE destination_id = $2 AND from_seq = $3 AND to_seq = $4
		AND `+pgFenced("$2", "$5", "$6"),
		nonNil(pl.Objects), pl.DestinationID, pl.FromSeq, pl.ToSeq, pl.Fence.Holder, pl.Fence.Epoch)
	if err != nil {
		return p.fail(ctx, "update plan", err)
	}
	if tag.RowsAffected() == 0 {
		return p.lostOr(ctx, "update plan", pl.DestinationID, pl.Fence,
			fmt.Errorf("update plan: plan %d-%d of destination %q: %w",
				pl.FromSeq, pl.ToSeq, pl.DestinationID, ErrNotFound))
	}
	return nil
}

// pgCommitPlanSQL is CommitPlan's single statement. Deleting the plan row
// locks it, so of two agents committing the same plan the second waits, then
// finds the row gone and changes nothing; the cursor and the counters move
// only for the deleted row, and all three changes commit together. The
// delete is fenced: without the lease nothing is deleted, so nothing moves.
var pgCommitPlanSQL = `WITH done AS (
	DELETE FROM plans
	WHERE destination_id = $1 AND from_seq = $2 AND to_seq = $3
	AND ` + pgFenced("$1", "$8", "$9") + `
	RETURNING destination_id
), cursor_moved AS (
	UPDATE destinations SET cursor = $3 WHERE id IN (SELECT destination_id FROM done)
), counted AS (
	INSERT INTO destination_status
		(destination_id, last_delivery_at, events_delivered, objects_delivered, bytes_delivered)
	SELECT destination_id, $4, $5, $6, $7 FROM done
	ON CONFLICT (destination_id) DO UPDATE SET
		last_delivery_at  = excluded.last_delivery_at,
		last_error        = '',
		failing_since     = 0,
		events_delivered  = destination_status.events_delivered + excluded.events_delivered,
		objects_delivered = destination_status.objects_delivered + excluded.objects_delivered,
		bytes_delivered   = destination_status.bytes_delivered + excluded.bytes_delivered
), logged AS (
	INSERT INTO delivery_commits (destination_id, to_seq, from_seq, committed_at)
	SELECT destination_id, $3, $2, $10 FROM done
), objects_logged AS (
	INSERT INTO delivered_objects (destination_id, commit_seq, ord, key, sha256, size, events,
		first_seq, last_seq, oldest_ms, newest_ms, committed_at)
	SELECT done.destination_id, $3, o.ord, o.key, o.sha256, o.size, o.events,
		o.first_seq, o.last_seq, o.oldest_ms, o.newest_ms, $10
	FROM done, jsonb_to_recordset($11::jsonb) AS o(ord integer, key text, sha256 text, size bigint,
		events bigint, first_seq bigint, last_seq bigint, oldest_ms bigint, newest_ms bigint)
)
SELECT count(*) FROM done`

// CommitPlan marks pl done: in one statement it deletes the plan, moves the
// cursor to pl.ToSeq and records the delivery in the status (counters added,
// error and failing-since cleared). If the plan is gone (or a different plan
// is pending) the error wraps ErrNotFound and nothing changes. A zero d.At
// is set to now.
func (p *Postgres) CommitPlan(ctx context.Context, pl Plan, d Delivered) error {
	if d.At.IsZero() {
		d.At = p.now()
	}
	logged, err := pgLoggedObjects(d.Log)
	if err != nil {
		return fmt.Errorf("commit plan: %w", err)
	}
	var n int64
	err = p.queryRow(ctx, pgCommitPlanSQL, []any{pl.DestinationID, pl.FromSeq, pl.ToSeq,
		toMs(d.At), d.Events, d.Objects, d.Bytes, pl.Fence.Holder, pl.Fence.Epoch,
		toMs(p.now()), logged}, &n)
	if err != nil {
		return p.fail(ctx, "commit plan", err)
	}
	if n == 0 {
		return p.lostOr(ctx, "commit plan", pl.DestinationID, pl.Fence,
			fmt.Errorf("commit plan: plan %d-%d of destination %q: %w",
				pl.FromSeq, pl.ToSeq, pl.DestinationID, ErrNotFound))
	}
	return nil
}

package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgNowMs is the database's clock in Unix milliseconds. Lease and agent
// expiry are judged on it alone, so the agents' clocks may disagree.
const pgNowMs = `(extract(epoch FROM now()) * 1000)::bigint`

// pgFenced is the condition that makes a write fenced: true when the write
// carries no fence (an empty holder) or when the holder still holds the
// destination's lease with that epoch, unexpired. The lease row is read FOR
// SHARE, so a claim racing the write either commits first (and the write,
// re-reading the row, finds another holder) or waits for the write to
// commit: no write of an old epoch lands after a takeover.
func pgFenced(dest, holder, epoch string) string {
	return `(` + holder + `::text = '' OR EXISTS (SELECT 1 FROM leases
		WHERE destination_id = ` + dest + ` AND holder = ` + holder + `::text
		AND epoch = ` + epoch + `::bigint AND expires_at > ` + pgNowMs + ` FOR SHARE))`
}

// pgHolderColumn is the holder of d's unexpired lease, empty when none.
const pgHolderColumn = `COALESCE((SELECT l.holder FROM leases l
	WHERE l.destination_id = d.id AND l.expires_at > ` + pgNowMs + `), '')`

// Shared is true: agents share a PostgreSQL database.
func (p *Postgres) Shared() bool { return true }

// RegisterAgent records a heartbeat of agent id. See Leases.RegisterAgent.
func (p *Postgres) RegisterAgent(ctx context.Context, id string, ttl, fresh time.Duration) (AgentView, error) {
	var v AgentView
	err := p.tx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO agents (id, expires_at, seen_at) VALUES ($1, `+pgNowMs+` + $2, `+pgNowMs+`)
			ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, seen_at = excluded.seen_at`, id, ttl.Milliseconds())
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM agents WHERE expires_at <= `+pgNowMs); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE seen_at > `+pgNowMs+` - $1), COALESCE(min(id), '') FROM agents`,
			fresh.Milliseconds()).Scan(&v.Live, &v.Fresh, &v.Leader)
	})
	if err != nil {
		return AgentView{}, p.fail(ctx, fmt.Sprintf("register agent %q", id), err)
	}
	return v, nil
}

// DeregisterAgent removes agent id and releases its leases.
func (p *Postgres) DeregisterAgent(ctx context.Context, id string) error {
	err := p.tx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM agents WHERE id = $1`, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE leases SET holder = '', expires_at = 0 WHERE holder = $1`, id)
		return err
	})
	if err != nil {
		return p.fail(ctx, fmt.Sprintf("deregister agent %q", id), err)
	}
	return nil
}

// pgClaimSQL claims up to $2 free or expired leases. SKIP LOCKED makes
// agents claiming at the same time pass over each other's candidates
// instead of queueing on them, and the row lock re-checks a candidate that
// another claim changed and committed meanwhile: the sets are disjoint.
const pgClaimSQL = `UPDATE leases SET holder = $1, epoch = epoch + 1, expires_at = ` + pgNowMs + ` + $3
WHERE destination_id IN (
	SELECT destination_id FROM leases
	WHERE holder = '' OR expires_at <= ` + pgNowMs + `
	ORDER BY expires_at, destination_id
	LIMIT $2
	FOR UPDATE SKIP LOCKED)
RETURNING ` + leaseColumns

// ClaimLeases claims up to limit claimable leases for holder.
func (p *Postgres) ClaimLeases(ctx context.Context, holder string, limit int, ttl time.Duration) ([]Lease, error) {
	if limit <= 0 {
		return nil, nil
	}
	ls, err := p.leases(ctx, pgClaimSQL, holder, limit, ttl.Milliseconds())
	if err != nil {
		return nil, p.fail(ctx, "claim leases", err)
	}
	return ls, nil
}

// RenewLeases extends holder's unexpired leases.
func (p *Postgres) RenewLeases(ctx context.Context, holder string, ttl time.Duration) ([]Lease, error) {
	ls, err := p.leases(ctx, `UPDATE leases SET expires_at = `+pgNowMs+` + $2
		WHERE holder = $1 AND expires_at > `+pgNowMs+`
		RETURNING `+leaseColumns, holder, ttl.Milliseconds())
	if err != nil {
		return nil, p.fail(ctx, "renew leases", err)
	}
	return ls, nil
}

// ReleaseLease gives l up if it is still held with its epoch.
func (p *Postgres) ReleaseLease(ctx context.Context, l Lease) error {
	_, err := p.exec(ctx, `UPDATE leases SET holder = '', expires_at = 0
		WHERE destination_id = $1 AND holder = $2 AND epoch = $3`, l.DestinationID, l.Holder, l.Epoch)
	if err != nil {
		return p.fail(ctx, fmt.Sprintf("release lease of destination %q", l.DestinationID), err)
	}
	return nil
}

func (p *Postgres) leases(ctx context.Context, sql string, args ...any) ([]Lease, error) {
	ctx, cancel := p.bound(ctx)
	defer cancel()
	rows, err := p.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return collectLeases(rows)
}

// lostOr tells why a fenced write changed nothing: ErrLeaseLost when the
// fence no longer holds, otherwise notFound. It reads after the write, so
// it only explains a failure, never decides one.
func (p *Postgres) lostOr(ctx context.Context, op, destID string, fence Lease, notFound error) error {
	if fence.Holder == "" {
		return notFound
	}
	var held bool
	err := p.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM leases
		WHERE destination_id = $1 AND holder = $2 AND epoch = $3 AND expires_at > `+pgNowMs+`)`,
		[]any{destID, fence.Holder, fence.Epoch}, &held)
	if err != nil {
		return p.fail(ctx, op, err)
	}
	if !held {
		return fmt.Errorf("%s: %w", op, leaseLost(destID, fence))
	}
	return notFound
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrLeaseLost is wrapped by the errors of fenced writes (a Plan's or an
// Attempt's Fence) made without the destination's current lease: it expired
// or another agent took it over. The write changed nothing; the caller must
// stop delivering the destination.
var ErrLeaseLost = errors.New("lease lost")

// Lease is the right of one agent to deliver one destination. Epoch grows by
// one at every claim, so a lease taken over is told apart from the one it
// replaced even when the same agent claims it again.
type Lease struct {
	DestinationID string
	Holder        string
	Epoch         int64
	// Expires is when the lease lapses unless renewed, on the database's
	// clock (PostgreSQL's now(), never an agent's).
	Expires time.Time
}

// AgentView is what RegisterAgent reports about the agents sharing a store.
type AgentView struct {
	// Live is how many agents have registered within their TTL, the caller
	// included.
	Live int
	// Fresh is how many of them sent a heartbeat within the freshness the
	// caller asked for, the caller included. An agent killed without
	// deregistering stays live until its TTL runs out, but stops being
	// fresh after a missed beat or two: shares computed on Fresh grow at
	// once, so the survivors are free to claim its leases the moment they
	// expire.
	Fresh int
	// Leader is the least id among the live agents. Work done once per
	// store rather than once per agent (retention) is done by the leader.
	Leader string
}

// FairShare is how many destination leases one of `agents` live agents
// should hold among `destinations`: an even split rounded up, plus one of
// headroom so that an uneven split does not make agents pass a lease back
// and forth. A single agent holds everything.
//
// The share rebalances by itself: when an agent joins, the others' share
// shrinks and each releases what it holds above it (after the attempt in
// flight) for the newcomer to claim; when an agent leaves or dies, its
// leases are released or expire and the others' grown share lets them
// claim those.
func FairShare(destinations, agents int) int {
	if agents <= 1 {
		return destinations
	}
	return (destinations+agents-1)/agents + 1
}

// Leases is the part of Store that lets several agents share the delivery
// of destinations. Invariants, checked by the contract suite:
//
//   - At any moment at most one holder has an unexpired lease on a
//     destination; concurrent ClaimLeases calls get disjoint sets.
//   - A claim increments the lease's epoch; renewing keeps it.
//   - A lease is claimable when it was never held, was released or has
//     expired on the database's clock.
//   - A fenced write (SavePlan, UpdatePlan, CommitPlan, RecordAttempt with a
//     Fence) succeeds only while its Fence's holder holds the lease with
//     that epoch, unexpired, checked in the statement (or transaction) that
//     writes; otherwise it changes nothing and fails with ErrLeaseLost.
type Leases interface {
	// Shared reports whether several agents may use the store at once
	// (PostgreSQL). When false (SQLite: one agent per file) a single agent
	// delivers every destination without leases or fencing.
	Shared() bool
	// RegisterAgent records a heartbeat of agent id, live for ttl, and
	// reports the live agents and how many beat within fresh.
	RegisterAgent(ctx context.Context, id string, ttl, fresh time.Duration) (AgentView, error)
	// DeregisterAgent removes agent id and releases every lease it holds,
	// so that the others take its destinations at once. Call it only once
	// the agent's deliveries have stopped.
	DeregisterAgent(ctx context.Context, id string) error
	// ClaimLeases claims up to limit claimable destination leases for holder,
	// for ttl, and returns them.
	ClaimLeases(ctx context.Context, holder string, limit int, ttl time.Duration) ([]Lease, error)
	// RenewLeases extends holder's unexpired leases by ttl and returns them;
	// a lease missing from the result is lost.
	RenewLeases(ctx context.Context, holder string, ttl time.Duration) ([]Lease, error)
	// ReleaseLease gives l up if it is still held with its epoch; releasing
	// a lease already lost is not an error.
	ReleaseLease(ctx context.Context, l Lease) error
}

// Shared is false: an SQLite file has one agent.
func (s *SQLite) Shared() bool { return false }

// RegisterAgent records a heartbeat of agent id. See Leases.RegisterAgent.
func (s *SQLite) RegisterAgent(ctx context.Context, id string, ttl, fresh time.Duration) (AgentView, error) {
	var v AgentView
	now := toMs(s.now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO agents (id, expires_at, seen_at) VALUES (?1, ?2, ?3)
			ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, seen_at = excluded.seen_at`,
			id, now+ttl.Milliseconds(), now)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM agents WHERE expires_at <= ?`, now); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE seen_at > ?), COALESCE(min(id), '') FROM agents`,
			now-fresh.Milliseconds()).Scan(&v.Live, &v.Fresh, &v.Leader)
	})
	if err != nil {
		return AgentView{}, fmt.Errorf("register agent %q: %w", id, err)
	}
	return v, nil
}

// DeregisterAgent removes agent id and releases its leases.
func (s *SQLite) DeregisterAgent(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM agents WHERE id = ?`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE leases SET holder = '', expires_at = 0 WHERE holder = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("deregister agent %q: %w", id, err)
	}
	return nil
}

// ClaimLeases claims up to limit claimable leases. The single writer
// connection serialises claims, so concurrent callers get disjoint sets.
func (s *SQLite) ClaimLeases(ctx context.Context, holder string, limit int, ttl time.Duration) ([]Lease, error) {
	if limit <= 0 {
		return nil, nil
	}
	var ls []Lease
	now := toMs(s.now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE leases
			SET holder = ?1, epoch = epoch + 1, expires_at = ?2 + ?3
			WHERE destination_id IN (
				SELECT destination_id FROM leases
				WHERE holder = '' OR expires_at <= ?2
				ORDER BY expires_at, destination_id LIMIT ?4)
			RETURNING `+leaseColumns, holder, now, ttl.Milliseconds(), limit)
		if err != nil {
			return err
		}
		ls, err = scanLeases(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim leases: %w", err)
	}
	return ls, nil
}

// RenewLeases extends holder's unexpired leases.
func (s *SQLite) RenewLeases(ctx context.Context, holder string, ttl time.Duration) ([]Lease, error) {
	var ls []Lease
	now := toMs(s.now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE leases SET expires_at = ?2 + ?3
			WHERE holder = ?1 AND expires_at > ?2
			RETURNING `+leaseColumns, holder, now, ttl.Milliseconds())
		if err != nil {
			return err
		}
		ls, err = scanLeases(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("renew leases: %w", err)
	}
	return ls, nil
}

// ReleaseLease gives l up if it is still held with its epoch.
func (s *SQLite) ReleaseLease(ctx context.Context, l Lease) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE leases SET holder = '', expires_at = 0
			WHERE destination_id = ? AND holder = ? AND epoch = ?`, l.DestinationID, l.Holder, l.Epoch)
		return err
	})
	if err != nil {
		return fmt.Errorf("release lease of destination %q: %w", l.DestinationID, err)
	}
	return nil
}

// checkFence fails with ErrLeaseLost unless fence is zero (an unfenced
// write) or its holder holds the destination's lease with its epoch. It
// runs inside the write transaction, and SQLite has one writer, so no claim
// can come between the check and the write.
func (s *SQLite) checkFence(ctx context.Context, tx *sql.Tx, destID string, fence Lease) error {
	if fence.Holder == "" {
		return nil
	}
	var one int
	err := s.inWrite.queryRowIn(ctx, tx, checkFenceSQL,
		destID, fence.Holder, fence.Epoch, toMs(s.now())).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return leaseLost(destID, fence)
	}
	return err
}

func leaseLost(destID string, fence Lease) error {
	return fmt.Errorf("destination %q: lease epoch %d of %s: %w", destID, fence.Epoch, fence.Holder, ErrLeaseLost)
}

const leaseColumns = `destination_id, holder, epoch, expires_at`

// rowScanner is what *sql.Rows and pgx.Rows have in common.
type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

func scanLeases(rows *sql.Rows) ([]Lease, error) {
	return collectLeases(sqlRows{rows})
}

func collectLeases(rows rowScanner) ([]Lease, error) {
	defer rows.Close()
	var ls []Lease
	for rows.Next() {
		var l Lease
		var expires int64
		if err := rows.Scan(&l.DestinationID, &l.Holder, &l.Epoch, &expires); err != nil {
			return nil, err
		}
		l.Expires = fromMs(expires)
		ls = append(ls, l)
	}
	return ls, rows.Err()
}

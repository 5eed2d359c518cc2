package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgLoggedObjects is a commit's objects as the JSON that CommitPlan's
// statement unpacks with jsonb_to_recordset: one parameter, whatever the
// number of objects.
func pgLoggedObjects(objects []LoggedObject) (string, error) {
	type row struct {
		Ord      int    `json:"ord"`
		Key      string `json:"key"`
		SHA256   string `json:"sha256"`
		Size     int64  `json:"size"`
		Events   int64  `json:"events"`
		FirstSeq int64  `json:"first_seq"`
		LastSeq  int64  `json:"last_seq"`
		Oldest   int64  `json:"oldest_ms"`
		Newest   int64  `json:"newest_ms"`
	}
	rows := make([]row, len(objects))
	for i, o := range objects {
		rows[i] = row{Ord: i + 1, Key: o.Key, SHA256: o.SHA256, Size: o.Size, Events: o.Events,
			FirstSeq: o.FirstSeq, LastSeq: o.LastSeq, Oldest: toMs(o.OldestEventTime), Newest: toMs(o.NewestEventTime)}
	}
	data, err := json.Marshal(rows)
	return string(data), err
}

// LogStart returns where the destination's delivery log began.
func (p *Postgres) LogStart(ctx context.Context, destID string) (int64, time.Time, error) {
	var cursor, at int64
	err := p.queryRow(ctx, `SELECT start_cursor, started_at FROM delivery_log_start
		WHERE destination_id = $1`, []any{destID}, &cursor, &at)
	if err != nil {
		return 0, time.Time{}, p.fail(ctx, "log start", pgNotFound(err, "destination %q", destID))
	}
	return cursor, fromMs(at), nil
}

type pgxRows struct{ pgx.Rows }

func (r pgxRows) Close() { r.Rows.Close() }

// CommitsFrom returns a prefix of the destination's log. See
// DeliveryLog.CommitsFrom. One statement reads the commits and their
// objects, so both come from one snapshot.
func (p *Postgres) CommitsFrom(ctx context.Context, destID string, fromSeq int64, before time.Time) ([]LoggedCommit, error) {
	ctx2, cancel := p.bound(ctx)
	defer cancel()
	rows, err := p.pool.Query(ctx2, `WITH c AS (
			SELECT to_seq, from_seq, committed_at FROM delivery_commits
			WHERE destination_id = $1 AND from_seq >= $2
			AND to_seq < COALESCE((SELECT MIN(to_seq) FROM delivery_commits
				WHERE destination_id = $1 AND from_seq >= $2 AND committed_at >= $3), 9223372036854775807)
		)
		SELECT c.to_seq, c.from_seq, c.committed_at, o.ord IS NOT NULL,
			COALESCE(o.ord, 0), COALESCE(o.key, ''), COALESCE(o.sha256, ''), COALESCE(o.size, 0),
			COALESCE(o.events, 0), COALESCE(o.first_seq, 0), COALESCE(o.last_seq, 0),
			COALESCE(o.oldest_ms, 0), COALESCE(o.newest_ms, 0)
		FROM c LEFT JOIN delivered_objects o ON o.destination_id = $1 AND o.commit_seq = c.to_seq
		ORDER BY c.to_seq, o.ord`, destID, fromSeq, toMs(before))
	if err != nil {
		return nil, p.fail(ctx, "commits", err)
	}
	defer rows.Close()
	var out []LoggedCommit
	for rows.Next() {
		var c LoggedCommit
		var o LoggedObject
		var at, oldest, newest int64
		var hasObject bool
		if err := rows.Scan(&c.ToSeq, &c.FromSeq, &at, &hasObject, &o.Ord, &o.Key, &o.SHA256, &o.Size,
			&o.Events, &o.FirstSeq, &o.LastSeq, &oldest, &newest); err != nil {
			return nil, p.fail(ctx, "commits", err)
		}
		c.CommittedAt = fromMs(at)
		if len(out) == 0 || out[len(out)-1].ToSeq != c.ToSeq {
			out = append(out, c)
		}
		if hasObject {
			o.CommitSeq, o.CommittedAt = c.ToSeq, c.CommittedAt
			o.OldestEventTime, o.NewestEventTime = fromMs(oldest), fromMs(newest)
			last := &out[len(out)-1]
			last.Objects = append(last.Objects, o)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, p.fail(ctx, "commits", err)
	}
	return out, nil
}

// DeliveredObjects lists a page of the delivery log. See
// DeliveryLog.DeliveredObjects.
func (p *Postgres) DeliveredObjects(ctx context.Context, tenantID int64, destID string, q ObjectQuery) ([]LoggedObject, error) {
	to := toMs(q.To)
	if q.To.IsZero() {
		to = 1<<63 - 1
	}
	ctx2, cancel := p.bound(ctx)
	defer cancel()
	rows, err := p.pool.Query(ctx2, `SELECT `+loggedObjectColumns+` FROM delivered_objects
		WHERE destination_id = $1
		AND destination_id IN (SELECT id FROM destinations WHERE id = $1 AND tenant_id = $2)
		AND (commit_seq, ord) > ($3::bigint, $4::integer)
		AND committed_at >= $5 AND committed_at < $6
		ORDER BY commit_seq, ord LIMIT $7`,
		destID, tenantID, q.AfterSeq, q.AfterOrd, toMs(q.From), to, q.Limit)
	if err != nil {
		return nil, p.fail(ctx, "delivered objects", err)
	}
	objects, err := collectObjects(pgxRows{rows})
	if err != nil {
		return nil, p.fail(ctx, "delivered objects", err)
	}
	return objects, nil
}

// LastDigest returns the destination's latest digest.
func (p *Postgres) LastDigest(ctx context.Context, destID string) (SavedDigest, error) {
	ctx2, cancel := p.bound(ctx)
	defer cancel()
	d, err := scanDigest(p.pool.QueryRow(ctx2, `SELECT `+digestColumns+` FROM digests
		WHERE destination_id = $1 ORDER BY hour_start DESC LIMIT 1`, destID))
	if err != nil {
		return SavedDigest{}, p.fail(ctx, "last digest", pgNotFound(err, "digest of destination %q", destID))
	}
	return d, nil
}

// SaveDigest saves a signed digest under its fence, in one statement. See
// DeliveryLog.SaveDigest.
func (p *Postgres) SaveDigest(ctx context.Context, d SavedDigest) error {
	if d.CreatedAt.IsZero() {
		d.CreatedAt = p.now()
	}
	tag, err := p.exec(ctx, `INSERT INTO digests (`+digestColumns+`)
		SELECT $1::text, $2::bigint, $3::text, $4::text, $5::text, $6::bigint, $7::bytea,
			$8::text, $9::text, $10::text, $11::bigint, 0
		WHERE `+pgFenced("$1", "$12", "$13"),
		d.DestinationID, toMs(d.Hour), d.Key, d.Bucket, d.Prefix, d.NextSeq, nonNil(d.Body),
		d.SHA256, d.Signature, d.KeyID, toMs(d.CreatedAt), d.Fence.Holder, d.Fence.Epoch)
	if err == nil && tag.RowsAffected() == 0 {
		return fmt.Errorf("save digest: %w", leaseLost(d.DestinationID, d.Fence))
	}
	switch pgCode(err) {
	case codeUniqueViolation:
		return fmt.Errorf("save digest: digest %s: %w", d.Key, ErrConflict)
	case codeForeignKeyViolation:
		return fmt.Errorf("save digest: destination %q: %w", d.DestinationID, ErrNotFound)
	}
	if err != nil {
		return p.fail(ctx, "save digest", err)
	}
	return nil
}

// MarkDigestWritten records that a saved digest is in the bucket.
func (p *Postgres) MarkDigestWritten(ctx context.Context, destID string, hour, at time.Time, fence Lease) error {
	tag, err := p.exec(ctx, `UPDATE digests SET written_at = $3
		WHERE destination_id = $1 AND hour_start = $2 AND `+pgFenced("$1", "$4", "$5"),
		destID, toMs(hour), toMs(at), fence.Holder, fence.Epoch)
	if err != nil {
		return p.fail(ctx, "mark digest written", err)
	}
	if tag.RowsAffected() == 0 {
		return p.lostOr(ctx, "mark digest written", destID, fence,
			fmt.Errorf("mark digest written: digest of destination %q for %s: %w",
				destID, hour.Format(time.RFC3339), ErrNotFound))
	}
	return nil
}

// PruneDeliveryLog deletes what the log retention lets go. See
// DeliveryLog.PruneDeliveryLog.
func (p *Postgres) PruneDeliveryLog(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	err := p.tx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		for _, q := range []string{pruneCommitsSQL, pruneDigestsSQL} {
			tag, err := tx.Exec(ctx, q, toMs(before))
			if err != nil {
				return err
			}
			total += tag.RowsAffected()
		}
		return nil
	})
	if err != nil {
		return 0, p.fail(ctx, "prune delivery log", err)
	}
	return total, nil
}

// SigningKeys lists every signing key, oldest first.
func (p *Postgres) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	ctx2, cancel := p.bound(ctx)
	defer cancel()
	rows, err := p.pool.Query(ctx2, `SELECT `+signingKeyColumns+` FROM signing_keys
		ORDER BY not_before, key_id`)
	if err != nil {
		return nil, p.fail(ctx, "signing keys", err)
	}
	ks, err := collectSigningKeys(pgxRows{rows})
	if err != nil {
		return nil, p.fail(ctx, "signing keys", err)
	}
	return ks, nil
}

// AddSigningKey adds the current signing key. See DeliveryLog.AddSigningKey.
// The partial unique index on the current key makes two agents adding a
// first key at once, or two rotations at once, end with one current key:
// the loser fails with ErrConflict.
func (p *Postgres) AddSigningKey(ctx context.Context, k SigningKey, rotate bool) (SigningKey, error) {
	k.NotBefore, k.NotAfter = p.now(), time.Time{}
	err := p.tx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if rotate {
			if _, err := tx.Exec(ctx, `UPDATE signing_keys SET not_after = $1 WHERE not_after = 0`,
				toMs(k.NotBefore)); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO signing_keys (`+signingKeyColumns+`)
			VALUES ($1, $2, $3, $4, 0)`, k.KeyID, k.PublicKey, k.Private, toMs(k.NotBefore))
		return err
	})
	if pgCode(err) == codeUniqueViolation {
		return SigningKey{}, fmt.Errorf("add signing key %s: a current key exists, or the key is there already: %w", k.KeyID, ErrConflict)
	}
	if err != nil {
		return SigningKey{}, p.fail(ctx, "add signing key", err)
	}
	return k, nil
}

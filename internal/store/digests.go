package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/auditexport/auditexport/internal/digest"
)

// LoggedObject is one object of the delivery log: an object a committed plan
// wrote, as stored in the bucket.
type LoggedObject struct {
	Key string
	// SHA256 is the lowercase hex SHA-256 of the stored bytes.
	SHA256          string
	Size            int64
	Events          int64
	FirstSeq        int64
	LastSeq         int64
	OldestEventTime time.Time
	NewestEventTime time.Time
	// CommittedAt, CommitSeq and Ord are set by the store: the commit's
	// time (the store's clock), the commit's ToSeq and the object's place
	// in it. (CommitSeq, Ord) is the object's place in commit order.
	CommittedAt time.Time
	CommitSeq   int64
	Ord         int
}

// Digest is o as a digest, and the objects API, list it.
func (o LoggedObject) Digest() digest.Object {
	return digest.Object{
		Key: o.Key, SHA256: o.SHA256, Size: o.Size, Events: o.Events, FirstSeq: o.FirstSeq, LastSeq: o.LastSeq,
		OldestEventTime: o.OldestEventTime, NewestEventTime: o.NewestEventTime, CommittedAt: o.CommittedAt,
	}
}

// LoggedCommit is one committed plan: the range the cursor moved over, and
// the objects it wrote (none when every event was filtered out).
type LoggedCommit struct {
	FromSeq     int64
	ToSeq       int64
	CommittedAt time.Time
	Objects     []LoggedObject
}

// ObjectQuery selects a page of the delivery log.
type ObjectQuery struct {
	// From and To bound the commit time: From <= CommittedAt < To. A zero
	// time leaves that side open.
	From, To time.Time
	// AfterSeq and AfterOrd resume after the object at that place (the
	// last of the previous page); zero starts at the beginning.
	AfterSeq int64
	AfterOrd int
	// Limit is the most objects returned.
	Limit int
}

// SavedDigest is a digest as signed, kept until it is in the bucket and
// after, as the link the next digest makes.
type SavedDigest struct {
	DestinationID string
	// Hour is the start of the UTC hour the digest covers.
	Hour    time.Time
	Key     string
	Bucket  string
	Prefix  string
	NextSeq int64
	// Body is the object's bytes; SHA256, Signature and KeyID are those of
	// digest.Encoded.
	Body      []byte
	SHA256    string
	Signature string
	KeyID     string
	CreatedAt time.Time
	// WrittenAt is zero until MarkDigestWritten.
	WrittenAt time.Time
	// Fence, when its Holder is set, makes SaveDigest fail with
	// ErrLeaseLost, saving nothing, unless that lease is still held.
	Fence Lease
}

// SigningKey is one of the agents' digest signing keys.
type SigningKey struct {
	KeyID     string
	PublicKey []byte
	// Private is the private key sealed by the caller; the store keeps it
	// as it is.
	Private []byte
	// NotBefore is set by AddSigningKey; NotAfter is zero while the key is
	// the current one.
	NotBefore time.Time
	NotAfter  time.Time
}

// DefaultLogRetention is how long delivery log entries and saved digests are
// kept once a written digest covers them; each destination's last digest is
// kept whatever its age, as the link of the next one.
const DefaultLogRetention = 30 * 24 * time.Hour

// DeliveryLog is the part of Store that keeps what was delivered, the
// digests that sign it and their keys. Invariants, checked by the contract
// suite:
//
//   - CommitPlan logs the commit (its range and time) and its objects in
//     the transaction that moves the cursor; a commit that fails logs
//     nothing.
//   - A destination's commits join: each one's FromSeq is the previous
//     one's ToSeq + 1, the first one's LogStart's cursor + 1.
//   - SaveDigest and MarkDigestWritten are fenced like plans; a digest of
//     an hour is saved once.
//   - At most one signing key is current; rotating retires it in the
//     transaction that adds the next.
type DeliveryLog interface {
	// LogStart is the cursor and time at which the destination's delivery
	// log began: its creation (or the upgrade that added the log).
	LogStart(ctx context.Context, destID string) (cursor int64, at time.Time, err error)
	// CommitsFrom returns the destination's logged commits with
	// FromSeq >= fromSeq, in commit order, each with its objects, up to and
	// excluding the first one committed at or after before: always a
	// prefix of the log, so that a commit stamped by a clock behind the
	// others is taken by a later call, never skipped.
	CommitsFrom(ctx context.Context, destID string, fromSeq int64, before time.Time) ([]LoggedCommit, error)
	// DeliveredObjects lists a page of the logged objects of a destination
	// of the tenant, in commit order; a destination of another tenant has
	// none.
	DeliveredObjects(ctx context.Context, tenantID int64, destID string, q ObjectQuery) ([]LoggedObject, error)

	// LastDigest returns the destination's digest of the latest hour, or
	// ErrNotFound.
	LastDigest(ctx context.Context, destID string) (SavedDigest, error)
	// SaveDigest saves a signed digest, not yet written. One of that hour
	// saved already is ErrConflict; an unknown destination ErrNotFound.
	SaveDigest(ctx context.Context, d SavedDigest) error
	// MarkDigestWritten records that the digest of the hour is in the
	// bucket. It fails with ErrNotFound when it is not saved.
	MarkDigestWritten(ctx context.Context, destID string, hour, at time.Time, fence Lease) error
	// PruneDeliveryLog deletes the commits (and their objects) made before
	// `before` that a written digest covers, and the saved digests of the
	// hours before `before` except each destination's last. It returns
	// how many rows it deleted.
	PruneDeliveryLog(ctx context.Context, before time.Time) (int64, error)

	// SigningKeys lists every signing key, oldest first.
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// AddSigningKey adds k as the current key, NotBefore now. With rotate
	// the current key (if any) is retired, NotAfter now, in the same
	// transaction; without, a current key already there is ErrConflict,
	// so that agents starting together make one first key.
	AddSigningKey(ctx context.Context, k SigningKey, rotate bool) (SigningKey, error)
}

// logCommit records a committed plan and its objects; it runs inside
// CommitPlan's transaction, after the plan is known to be pending.
func (s *SQLite) logCommit(ctx context.Context, tx *sql.Tx, p Plan, objects []LoggedObject) error {
	at := toMs(s.now())
	if _, err := s.inWrite.execIn(ctx, tx, logCommitSQL,
		p.DestinationID, p.ToSeq, p.FromSeq, at); err != nil {
		return err
	}
	for i, o := range objects {
		if _, err := s.inWrite.execIn(ctx, tx, logObjectSQL,
			p.DestinationID, p.ToSeq, i+1, o.Key, o.SHA256, o.Size, o.Events, o.FirstSeq, o.LastSeq,
			toMs(o.OldestEventTime), toMs(o.NewestEventTime), at); err != nil {
			return err
		}
	}
	return nil
}

// LogStart returns where the destination's delivery log began.
func (s *SQLite) LogStart(ctx context.Context, destID string) (int64, time.Time, error) {
	var cursor, at int64
	err := s.read.QueryRowContext(ctx, `SELECT start_cursor, started_at
		FROM delivery_log_start WHERE destination_id = ?`, destID).Scan(&cursor, &at)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("log start: %w", notFound(err, "destination %q", destID))
	}
	return cursor, fromMs(at), nil
}

// sqliteCommitsFromSQL selects the prefix of a destination's commits from
// ?2 on that ends before the first one committed at or after ?3.
const sqliteCommitsFromSQL = `SELECT to_seq, from_seq, committed_at FROM delivery_commits
	WHERE destination_id = ?1 AND from_seq >= ?2
	AND to_seq < COALESCE((SELECT MIN(to_seq) FROM delivery_commits
		WHERE destination_id = ?1 AND from_seq >= ?2 AND committed_at >= ?3), 9223372036854775807)
	ORDER BY to_seq`

// CommitsFrom returns a prefix of the destination's log. See
// DeliveryLog.CommitsFrom. Both reads are in one transaction, so the
// objects are those of the commits read.
func (s *SQLite) CommitsFrom(ctx context.Context, destID string, fromSeq int64, before time.Time) ([]LoggedCommit, error) {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("commits: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, sqliteCommitsFromSQL, destID, fromSeq, toMs(before))
	if err != nil {
		return nil, fmt.Errorf("commits: %w", err)
	}
	commits, err := collectCommits(sqlRows{rows})
	if err != nil || len(commits) == 0 {
		return commits, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT `+loggedObjectColumns+` FROM delivered_objects
		WHERE destination_id = ? AND commit_seq BETWEEN ? AND ?
		ORDER BY commit_seq, ord`, destID, commits[0].ToSeq, commits[len(commits)-1].ToSeq)
	if err != nil {
		return nil, fmt.Errorf("commits: objects: %w", err)
	}
	objects, err := collectObjects(sqlRows{rows})
	if err != nil {
		return nil, fmt.Errorf("commits: objects: %w", err)
	}
	return attachObjects(commits, objects), nil
}

// DeliveredObjects lists a page of the delivery log. See
// DeliveryLog.DeliveredObjects.
func (s *SQLite) DeliveredObjects(ctx context.Context, tenantID int64, destID string, q ObjectQuery) ([]LoggedObject, error) {
	to := toMs(q.To)
	if q.To.IsZero() {
		to = 1<<63 - 1
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+loggedObjectColumns+` FROM delivered_objects
		WHERE destination_id = ?1
		AND destination_id IN (SELECT id FROM destinations WHERE id = ?1 AND tenant_id = ?2)
		AND (commit_seq, ord) > (?3, ?4)
		AND committed_at >= ?5 AND committed_at < ?6
		ORDER BY commit_seq, ord LIMIT ?7`,
		destID, tenantID, q.AfterSeq, q.AfterOrd, toMs(q.From), to, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("delivered objects: %w", err)
	}
	objects, err := collectObjects(sqlRows{rows})
	if err != nil {
		return nil, fmt.Errorf("delivered objects: %w", err)
	}
	return objects, nil
}

const loggedObjectColumns = `commit_seq, ord, key, sha256, size, events, first_seq, last_seq,
	oldest_ms, newest_ms, committed_at`

func collectObjects(rows rowScanner) ([]LoggedObject, error) {
	defer rows.Close()
	var out []LoggedObject
	for rows.Next() {
		var o LoggedObject
		var oldest, newest, at int64
		if err := rows.Scan(&o.CommitSeq, &o.Ord, &o.Key, &o.SHA256, &o.Size, &o.Events,
			&o.FirstSeq, &o.LastSeq, &oldest, &newest, &at); err != nil {
			return nil, err
		}
		o.OldestEventTime, o.NewestEventTime, o.CommittedAt = fromMs(oldest), fromMs(newest), fromMs(at)
		out = append(out, o)
	}
	return out, rows.Err()
}

func collectCommits(rows rowScanner) ([]LoggedCommit, error) {
	defer rows.Close()
	var out []LoggedCommit
	for rows.Next() {
		var c LoggedCommit
		var at int64
		if err := rows.Scan(&c.ToSeq, &c.FromSeq, &at); err != nil {
			return nil, err
		}
		c.CommittedAt = fromMs(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// attachObjects gives each commit its objects; both are in commit order.
func attachObjects(commits []LoggedCommit, objects []LoggedObject) []LoggedCommit {
	i := 0
	for ci := range commits {
		for i < len(objects) && objects[i].CommitSeq == commits[ci].ToSeq {
			commits[ci].Objects = append(commits[ci].Objects, objects[i])
			i++
		}
	}
	return commits
}

const digestColumns = `destination_id, hour_start, key, bucket, prefix, next_seq, body,
	sha256, signature, key_id, created_at, written_at`

func scanDigest(sc scanner) (SavedDigest, error) {
	var d SavedDigest
	var hour, created, written int64
	err := sc.Scan(&d.DestinationID, &hour, &d.Key, &d.Bucket, &d.Prefix, &d.NextSeq, &d.Body,
		&d.SHA256, &d.Signature, &d.KeyID, &created, &written)
	d.Hour, d.CreatedAt, d.WrittenAt = fromMs(hour), fromMs(created), fromMs(written)
	return d, err
}

// LastDigest returns the destination's latest digest.
func (s *SQLite) LastDigest(ctx context.Context, destID string) (SavedDigest, error) {
	d, err := scanDigest(s.read.QueryRowContext(ctx, `SELECT `+digestColumns+` FROM digests
		WHERE destination_id = ? ORDER BY hour_start DESC LIMIT 1`, destID))
	if err != nil {
		return SavedDigest{}, fmt.Errorf("last digest: %w", notFound(err, "digest of destination %q", destID))
	}
	return d, nil
}

// SaveDigest saves a signed digest under its fence. See DeliveryLog.SaveDigest.
func (s *SQLite) SaveDigest(ctx context.Context, d SavedDigest) error {
	if d.CreatedAt.IsZero() {
		d.CreatedAt = s.now()
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.destinationExists(ctx, tx, d.DestinationID); err != nil {
			return err
		}
		if err := s.checkFence(ctx, tx, d.DestinationID, d.Fence); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO digests (`+digestColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`,
			d.DestinationID, toMs(d.Hour), d.Key, d.Bucket, d.Prefix, d.NextSeq, nonNil(d.Body),
			d.SHA256, d.Signature, d.KeyID, toMs(d.CreatedAt))
		if isUnique(err) {
			return fmt.Errorf("digest %s: %w", d.Key, ErrConflict)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("save digest: %w", err)
	}
	return nil
}

// MarkDigestWritten records that a saved digest is in the bucket.
func (s *SQLite) MarkDigestWritten(ctx context.Context, destID string, hour, at time.Time, fence Lease) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.checkFence(ctx, tx, destID, fence); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE digests SET written_at = ?
			WHERE destination_id = ? AND hour_start = ?`, toMs(at), destID, toMs(hour))
		if err != nil {
			return err
		}
		return requireOne(res, "digest of destination %q for %s", destID, hour.Format(time.RFC3339))
	})
	if err != nil {
		return fmt.Errorf("mark digest written: %w", err)
	}
	return nil
}

// Prune statements shared by both engines ($1 is the cutoff; SQLite reads it
// as ?1).
// A commit is covered when its range ends before the last written digest's
// next_seq.
const (
	pruneCommitsSQL = `DELETE FROM delivery_commits WHERE committed_at < $1
		AND to_seq < COALESCE((SELECT MAX(g.next_seq) FROM digests g
			WHERE g.destination_id = delivery_commits.destination_id AND g.written_at > 0), 0)`
	pruneDigestsSQL = `DELETE FROM digests WHERE hour_start < $1 AND written_at > 0
		AND hour_start < (SELECT MAX(g.hour_start) FROM digests g
			WHERE g.destination_id = digests.destination_id)`
)

// PruneDeliveryLog deletes what the log retention lets go. See
// DeliveryLog.PruneDeliveryLog.
func (s *SQLite) PruneDeliveryLog(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{pruneCommitsSQL, pruneDigestsSQL} {
			res, err := tx.ExecContext(ctx, strings.ReplaceAll(q, "$1", "?1"), toMs(before))
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune delivery log: %w", err)
	}
	return total, nil
}

const signingKeyColumns = `key_id, public_key, private_key, not_before, not_after`

func collectSigningKeys(rows rowScanner) ([]SigningKey, error) {
	defer rows.Close()
	var out []SigningKey
	for rows.Next() {
		var k SigningKey
		var nb, na int64
		if err := rows.Scan(&k.KeyID, &k.PublicKey, &k.Private, &nb, &na); err != nil {
			return nil, err
		}
		k.NotBefore, k.NotAfter = fromMs(nb), fromMs(na)
		out = append(out, k)
	}
	return out, rows.Err()
}

// SigningKeys lists every signing key, oldest first.
func (s *SQLite) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+signingKeyColumns+` FROM signing_keys
		ORDER BY not_before, key_id`)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	ks, err := collectSigningKeys(sqlRows{rows})
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return ks, nil
}

// AddSigningKey adds the current signing key. See DeliveryLog.AddSigningKey.
func (s *SQLite) AddSigningKey(ctx context.Context, k SigningKey, rotate bool) (SigningKey, error) {
	k.NotBefore, k.NotAfter = s.now(), time.Time{}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if rotate {
			if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET not_after = ? WHERE not_after = 0`,
				toMs(k.NotBefore)); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (`+signingKeyColumns+`)
			VALUES (?, ?, ?, ?, 0)`, k.KeyID, k.PublicKey, k.Private, toMs(k.NotBefore))
		return err
	})
	if isUnique(err) {
		return SigningKey{}, fmt.Errorf("add signing key %s: a current key exists, or the key is there already: %w", k.KeyID, ErrConflict)
	}
	if err != nil {
		return SigningKey{}, fmt.Errorf("add signing key: %w", err)
	}
	return k, nil
}

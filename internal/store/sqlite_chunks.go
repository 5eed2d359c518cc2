package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// deletePrefix deletes the tenant's events up to the cut DeleteEvents
// computes (see there) in tx and returns how many it deleted.
func deletePrefix(ctx context.Context, tx *sql.Tx, tenantID, maxSeq int64, before time.Time, limit int) (int64, error) {
	var oldest, lastBefore int64
	err := tx.QueryRowContext(ctx, expiredRangeSQL, tenantID, before.UnixMilli()).Scan(&oldest, &lastBefore)
	if err != nil || oldest == 0 || limit <= 0 {
		return 0, err
	}
	cut := min(maxSeq, lastBefore, oldest+int64(limit)-1)
	if cut < oldest {
		return 0, nil
	}
	var keys []eventKey
	whole, err := wholeChunks(ctx, tx, tenantID, cut)
	if err != nil {
		return 0, err
	}
	for _, c := range whole {
		ks, err := chunkKeys(c.data, c.firstSeq)
		if err != nil {
			return 0, err
		}
		keys = append(keys, ks...)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM event_chunks WHERE tenant_id = ? AND last_seq <= ?`, tenantID, cut); err != nil {
		return 0, err
	}
	dropped, err := trimChunksAt(ctx, tx, tenantID, cut)
	if err != nil {
		return 0, err
	}
	keys = append(keys, dropped...)
	if err := deleteKeys(ctx, tx, tenantID, keys); err != nil {
		return 0, err
	}
	if int64(len(keys)) != cut-oldest+1 {
		return 0, fmt.Errorf("deleting events %d-%d found %d of them", oldest, cut, len(keys))
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM commit_marks WHERE tenant_id = ? AND last_seq <= ?`, tenantID, cut); err != nil {
		return 0, err
	}
	_, err = tx.ExecContext(ctx, `UPDATE commit_marks SET first_seq = ?2 + 1
		WHERE tenant_id = ?1 AND last_seq = (SELECT MIN(last_seq) FROM commit_marks WHERE tenant_id = ?1) AND first_seq <= ?2`,
		tenantID, cut)
	return int64(len(keys)), err
}

// wholeChunks reads the chunks that end at or before cut.
func wholeChunks(ctx context.Context, tx *sql.Tx, tenantID, cut int64) ([]chunk, error) {
	rows, err := tx.QueryContext(ctx, `SELECT first_seq, data FROM event_chunks INDEXED BY event_chunks_seq
		WHERE tenant_id = ? AND last_seq <= ?`, tenantID, cut)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []chunk
	for rows.Next() {
		var c chunk
		if err := rows.Scan(&c.firstSeq, &c.data); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// trimChunksAt rewrites the chunks holding cut and later events without
// the events up to cut, and returns the keys of those it dropped.
func trimChunksAt(ctx context.Context, tx *sql.Tx, tenantID, cut int64) ([]eventKey, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, event_name, first_seq, last_seq, received_ms, data
		FROM event_chunks INDEXED BY event_chunks_seq
		WHERE tenant_id = ? AND last_seq > ? AND last_seq < ? AND first_seq <= ?`,
		tenantID, cut, cut+chunkMaxSpan, cut)
	if err != nil {
		return nil, err
	}
	type cutChunk struct {
		id int64
		chunk
	}
	var cuts []cutChunk
	for rows.Next() {
		c := cutChunk{chunk: chunk{tenantID: tenantID}}
		if err := rows.Scan(&c.id, &c.eventName, &c.firstSeq, &c.lastSeq, &c.receivedMs, &c.data); err != nil {
			rows.Close()
			return nil, err
		}
		cuts = append(cuts, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var dropped []eventKey
	for _, c := range cuts {
		kept, ks, ok, err := trimChunk(c.chunk, cut)
		if err != nil {
			return nil, err
		}
		dropped = append(dropped, ks...)
		if !ok {
			return nil, fmt.Errorf("chunk %d-%d holds no event after %d", c.firstSeq, c.lastSeq, cut)
		}
		_, err = tx.ExecContext(ctx, `UPDATE event_chunks SET first_seq = ?, min_time_ms = ?, max_time_ms = ?, count = ?, data = ?
			WHERE id = ?`, kept.firstSeq, kept.minTimeMs, kept.maxTimeMs, kept.count, kept.data, c.id)
		if err != nil {
			return nil, err
		}
	}
	return dropped, nil
}

// deleteKeys deletes the duplicate keys of deleted events, so that a resend
// of one is stored again.
func deleteKeys(ctx context.Context, tx *sql.Tx, tenantID int64, keys []eventKey) error {
	if len(keys) == 0 {
		return nil
	}
	st, err := tx.PrepareContext(ctx, `DELETE FROM event_keys WHERE tenant_id = ? AND time_ms = ? AND message_id = ?`)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, k := range keys {
		if _, err := st.ExecContext(ctx, tenantID, k.timeMs, k.messageID); err != nil {
			return err
		}
	}
	return nil
}

// convertEventsPage is how many rows of the old events table the conversion
// reads at a time.
const convertEventsPage = 4096

// convertEvents moves the events of a file from before migration 5 (a row
// per event) into chunks, keys and commit marks, tenant by tenant in
// sequence order, and drops the old table. A commit mark is made per run of
// events with the same ingest time, as a commit stored them.
func convertEvents(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO event_keys (tenant_id, time_ms, message_id)
		SELECT tenant_id, time_ms, message_id FROM events`); err != nil {
		return err
	}
	conv := &eventConverter{ctx: ctx, tx: tx}
	var tenant, seq int64
	for {
		n, err := conv.page(tenant, seq)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		tenant, seq = conv.tp.tenantID, conv.lastSeq
	}
	if err := conv.flush(); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE tenants SET head_received_ms =
			COALESCE((SELECT MAX(received_ms) FROM commit_marks m WHERE m.tenant_id = tenants.id), 0);
		DROP TABLE events;`)
	return err
}

// eventConverter gathers the old rows of one tenant and ingest time into a
// tenantAppend, numbered as stored, and writes it as chunks and a mark.
type eventConverter struct {
	ctx     context.Context
	tx      *sql.Tx
	tp      *tenantAppend
	lastSeq int64
}

// page converts the rows after (tenant, seq) and returns how many it read.
// The page is read whole before any of it is written.
func (c *eventConverter) page(tenant, seq int64) (int, error) {
	rows, err := c.tx.QueryContext(c.ctx, `SELECT tenant_id, seq, message_id, event_name, time_ms, received_ms, body
		FROM events WHERE (tenant_id, seq) > (?, ?) ORDER BY tenant_id, seq LIMIT ?`, tenant, seq, convertEventsPage)
	if err != nil {
		return 0, err
	}
	type oldRow struct {
		tenant, seq, timeMs, received int64
		id, name                      string
		body                          []byte
	}
	var page []oldRow
	for rows.Next() {
		var r oldRow
		if err := rows.Scan(&r.tenant, &r.seq, &r.id, &r.name, &r.timeMs, &r.received, &r.body); err != nil {
			rows.Close()
			return 0, err
		}
		page = append(page, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, r := range page {
		if err := c.add(r.tenant, r.seq, r.id, r.name, r.timeMs, r.received, r.body); err != nil {
			return 0, err
		}
	}
	return len(page), nil
}

func (c *eventConverter) add(tenant, seq int64, id, name string, timeMs, received int64, body []byte) error {
	if c.tp != nil && (c.tp.tenantID != tenant || c.tp.receivedMs != received || len(c.tp.seqs) >= convertEventsPage) {
		if err := c.flush(); err != nil {
			return err
		}
	}
	if c.tp == nil {
		c.tp = &tenantAppend{tenantID: tenant, receivedMs: received}
	}
	tp := c.tp
	tp.seqs = append(tp.seqs, seq)
	tp.messageIDs = append(tp.messageIDs, id)
	tp.names = append(tp.names, name)
	tp.times = append(tp.times, timeMs)
	tp.bodies = append(tp.bodies, body)
	c.lastSeq = seq
	return nil
}

func (c *eventConverter) flush() error {
	tp := c.tp
	if tp == nil {
		return nil
	}
	c.tp = nil
	for _, ch := range buildChunks(tp) {
		_, err := c.tx.ExecContext(c.ctx, insertChunkSQL, ch.tenantID, ch.eventName, ch.firstSeq, ch.lastSeq,
			ch.minTimeMs, ch.maxTimeMs, ch.count, ch.receivedMs, ch.data)
		if err != nil {
			return err
		}
	}
	// A mark per run: the old rows' ingest times only grew along the
	// sequence if the clock did, so a run that went back in time is
	// marked with the previous run's time, as Append would have.
	_, err := c.tx.ExecContext(c.ctx, `INSERT INTO commit_marks (tenant_id, last_seq, first_seq, received_ms)
		VALUES (?1, ?2, ?3, MAX(?4, COALESCE((SELECT MAX(received_ms) FROM commit_marks WHERE tenant_id = ?1), 0)))`,
		tp.tenantID, tp.seqs[len(tp.seqs)-1], tp.seqs[0], tp.receivedMs)
	return err
}

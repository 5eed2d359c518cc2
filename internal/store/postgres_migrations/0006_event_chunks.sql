-- The event log in chunks (see chunk.go): one row holds the events of one
-- tenant and one event name from one commit, and the duplicate key of each
-- event goes to a table of its own, the only per-event write left. The
-- events are converted by a Go step that runs after this file in the same
-- transaction (see pgMigrationSteps), which then drops the events table.

-- A retry repeats an event's messageId and timestamp. The timestamp leads so
-- that inserts land near the end of the index (events arrive roughly in time
-- order) instead of on a random page per event. Retention deletes the keys
-- with their events: the autovacuum settings make vacuum follow those
-- deletes (after 1% of the table is dead rather than the default 20%), so
-- the freed pages are reused and the table stays at about the retained week.
CREATE TABLE event_keys (
	tenant_id  bigint NOT NULL,
	time_ms    bigint NOT NULL,
	message_id text COLLATE "C" NOT NULL,
	PRIMARY KEY (tenant_id, time_ms, message_id)
) WITH (
	autovacuum_vacuum_scale_factor = 0.01,
	autovacuum_vacuum_insert_scale_factor = 0.05,
	autovacuum_analyze_scale_factor = 0.02
);

-- first_seq..last_seq is the chunk's sequence range (at most chunkMaxSpan
-- wide, so a range's chunks are found by last_seq alone), min_time_ms and
-- max_time_ms its events' time span, received_ms when its last event was
-- stored. There is no foreign key to tenants: Append locks the tenant's
-- head row, which is the check.
CREATE TABLE event_chunks (
	tenant_id   bigint NOT NULL,
	event_name  text COLLATE "C" NOT NULL,
	first_seq   bigint NOT NULL,
	last_seq    bigint NOT NULL,
	min_time_ms bigint NOT NULL,
	max_time_ms bigint NOT NULL,
	count       bigint NOT NULL,
	received_ms bigint NOT NULL,
	data        bytea  NOT NULL,
	UNIQUE (tenant_id, event_name, first_seq)
) WITH (
	autovacuum_vacuum_scale_factor = 0.01,
	autovacuum_vacuum_insert_scale_factor = 0.05,
	autovacuum_analyze_scale_factor = 0.02
);

-- Out of line but not compressed: pglz would cost CPU on the commit path,
-- and the bodies are compressed at delivery anyway.
ALTER TABLE event_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- Scan reads one event name's chunks in sequence order.
CREATE INDEX event_chunks_name_last ON event_chunks (tenant_id, event_name, last_seq);

-- GroupsBy over all names and retention read a tenant's chunks by sequence.
CREATE INDEX event_chunks_last ON event_chunks (tenant_id, last_seq);

INSERT INTO event_keys (tenant_id, time_ms, message_id)
SELECT tenant_id, time_ms, message_id FROM events;

-- The commit marks now also say which events are stored (OldestAfter,
-- ExpiredRange and DeleteEvents read the oldest from them), so they start
-- exactly at each tenant's oldest event: the earlier retention kept a
-- mark it had cut through as it was, and the marks of a tenant whose
-- events are all gone.
DELETE FROM commit_marks m
WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = m.tenant_id AND e.seq >= m.first_seq AND e.seq <= m.last_seq);

UPDATE commit_marks m SET first_seq = o.seq
FROM (SELECT tenant_id, min(seq) AS seq FROM events GROUP BY tenant_id) o
WHERE m.tenant_id = o.tenant_id AND m.first_seq < o.seq AND m.last_seq >= o.seq;

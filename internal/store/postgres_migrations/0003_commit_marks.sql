-- One row per tenant per commit instead of an index entry per event for the
-- ingest-time lookups (LastSeqBefore, ExpiredRange): a commit's events share
-- their received_ms, and received_ms never decreases along a tenant's
-- sequence, so the marks answer those lookups as the per-event index did,
-- for one index write per commit rather than one per event.
CREATE TABLE commit_marks (
	tenant_id   bigint NOT NULL,
	first_seq   bigint NOT NULL,
	last_seq    bigint NOT NULL,
	received_ms bigint NOT NULL,
	PRIMARY KEY (tenant_id, first_seq)
);

CREATE INDEX commit_marks_received ON commit_marks (tenant_id, received_ms, first_seq);

INSERT INTO commit_marks (tenant_id, first_seq, last_seq, received_ms)
SELECT tenant_id, min(seq), max(seq), received_ms FROM events GROUP BY tenant_id, received_ms;

DROP INDEX events_received;

-- messageIds and event names are identifiers: compare them byte by byte, as
-- the SQLite engine does, whatever the database's default collation. The
-- duplicate and name indexes then sort with memcmp rather than the locale's
-- rules, which costs every insert.
ALTER TABLE events
	ALTER COLUMN message_id TYPE text COLLATE "C",
	ALTER COLUMN event_name TYPE text COLLATE "C";

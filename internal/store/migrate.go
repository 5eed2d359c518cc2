package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations is the schema history. Entry i brings the database to version
// i+1. Never edit or reorder an entry once released: append a new one.
var migrations = []string{
	// 1: initial schema.
	`
CREATE TABLE tenants (
	id          INTEGER PRIMARY KEY,
	name        TEXT    NOT NULL UNIQUE,
	external_id TEXT    NOT NULL,
	head_seq    INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL
);

CREATE TABLE tokens (
	id         INTEGER PRIMARY KEY,
	hash       BLOB    NOT NULL UNIQUE,
	scope      TEXT    NOT NULL,
	tenant_id  INTEGER REFERENCES tenants (id),
	created_at INTEGER NOT NULL
);

-- The event log, clustered by (tenant_id, seq) so that a delivery range is
-- one contiguous read. There is no foreign key to tenants: Append checks the
-- tenant once per batch rather than once per row.
CREATE TABLE events (
	tenant_id   INTEGER NOT NULL,
	seq         INTEGER NOT NULL,
	message_id  TEXT    NOT NULL,
	event_name  TEXT    NOT NULL,
	time_ms     INTEGER NOT NULL,
	received_ms INTEGER NOT NULL,
	body        BLOB    NOT NULL,
	PRIMARY KEY (tenant_id, seq),
	-- A retry repeats an event's messageId and timestamp. Keying duplicates
	-- on both keeps inserts near the end of the index (events arrive
	-- roughly in time order) instead of on a random page per event, which
	-- is what lets a commit of thousands of events stay cheap.
	UNIQUE (tenant_id, time_ms, message_id)
) WITHOUT ROWID;

-- Scan reads one event name inside a sequence range; this index finds those
-- rows (and filters on the day) without walking the other names' rows.
CREATE INDEX events_name_seq ON events (tenant_id, event_name, seq, time_ms);

-- LastSeqBefore finds where a window's cutoff falls by ingest time without
-- reading event bodies; received_ms only grows, so this index is appended to.
CREATE INDEX events_received ON events (tenant_id, received_ms);

CREATE TABLE destinations (
	id         TEXT    PRIMARY KEY,
	tenant_id  INTEGER NOT NULL REFERENCES tenants (id),
	spec       BLOB    NOT NULL,
	cursor     INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);

CREATE INDEX destinations_tenant ON destinations (tenant_id);

CREATE TABLE destination_status (
	destination_id    TEXT    PRIMARY KEY
	                          REFERENCES destinations (id) ON DELETE CASCADE,
	last_delivery_at  INTEGER NOT NULL DEFAULT 0,
	last_attempt_at   INTEGER NOT NULL DEFAULT 0,
	last_error        TEXT    NOT NULL DEFAULT '',
	failing_since     INTEGER NOT NULL DEFAULT 0,
	events_delivered  INTEGER NOT NULL DEFAULT 0,
	objects_delivered INTEGER NOT NULL DEFAULT 0,
	bytes_delivered   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE plans (
	destination_id TEXT    PRIMARY KEY
	                       REFERENCES destinations (id) ON DELETE CASCADE,
	from_seq       INTEGER NOT NULL,
	to_seq         INTEGER NOT NULL,
	window_end     INTEGER NOT NULL,
	objects        BLOB    NOT NULL,
	created_at     INTEGER NOT NULL
);
`,
	// 2: destination leases and agent heartbeats (see leases.go). Every
	// destination has a lease row; holder '' means free.
	`
CREATE TABLE leases (
	destination_id TEXT    PRIMARY KEY
	                       REFERENCES destinations (id) ON DELETE CASCADE,
	holder         TEXT    NOT NULL DEFAULT '',
	epoch          INTEGER NOT NULL DEFAULT 0,
	expires_at     INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX leases_holder ON leases (holder);

INSERT INTO leases (destination_id) SELECT id FROM destinations;

CREATE TABLE agents (
	id         TEXT    PRIMARY KEY,
	expires_at INTEGER NOT NULL
);
`,
	// 3: the delivery log, the hourly digests and their signing keys (see
	// digests.go).
	`
-- Where a destination's delivery log starts: the cursor and the time the
-- log began (its creation, or this migration for an older destination).
-- The first digest's range starts after that cursor.
CREATE TABLE delivery_log_start (
	destination_id TEXT    PRIMARY KEY
	                       REFERENCES destinations (id) ON DELETE CASCADE,
	start_cursor   INTEGER NOT NULL,
	started_at     INTEGER NOT NULL
);

INSERT INTO delivery_log_start (destination_id, start_cursor, started_at)
	SELECT id, cursor, CAST(strftime('%s', 'now') AS INTEGER) * 1000 FROM destinations;

-- One row per committed plan: the range the cursor moved over. A commit
-- whose events were all filtered out has a row and no object, so the
-- digests' sequence ranges stay exact. to_seq orders a destination's
-- commits: its cursor only moves forward.
CREATE TABLE delivery_commits (
	destination_id TEXT    NOT NULL
	                       REFERENCES destinations (id) ON DELETE CASCADE,
	to_seq         INTEGER NOT NULL,
	from_seq       INTEGER NOT NULL,
	committed_at   INTEGER NOT NULL,
	PRIMARY KEY (destination_id, to_seq)
) WITHOUT ROWID;

CREATE TABLE delivered_objects (
	destination_id TEXT    NOT NULL,
	commit_seq     INTEGER NOT NULL,
	ord            INTEGER NOT NULL,
	key            TEXT    NOT NULL,
	sha256         TEXT    NOT NULL,
	size           INTEGER NOT NULL,
	events         INTEGER NOT NULL,
	first_seq      INTEGER NOT NULL,
	last_seq       INTEGER NOT NULL,
	oldest_ms      INTEGER NOT NULL,
	newest_ms      INTEGER NOT NULL,
	committed_at   INTEGER NOT NULL,
	PRIMARY KEY (destination_id, commit_seq, ord),
	FOREIGN KEY (destination_id, commit_seq)
		REFERENCES delivery_commits (destination_id, to_seq) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE INDEX delivered_objects_time ON delivered_objects (destination_id, committed_at);

-- Digests as signed: saved before the PUT (written_at 0), marked written
-- after it, so a crash in between PUTs the same bytes again.
CREATE TABLE digests (
	destination_id TEXT    NOT NULL
	                       REFERENCES destinations (id) ON DELETE CASCADE,
	hour_start     INTEGER NOT NULL,
	key            TEXT    NOT NULL,
	bucket         TEXT    NOT NULL,
	prefix         TEXT    NOT NULL,
	next_seq       INTEGER NOT NULL,
	body           BLOB    NOT NULL,
	sha256         TEXT    NOT NULL,
	signature      TEXT    NOT NULL,
	key_id         TEXT    NOT NULL,
	created_at     INTEGER NOT NULL,
	written_at     INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (destination_id, hour_start)
) WITHOUT ROWID;

-- The agents' Ed25519 signing keys; private_key is sealed by the agent's
-- keyring. At most one key is current (not_after 0).
CREATE TABLE signing_keys (
	key_id      TEXT    PRIMARY KEY,
	public_key  BLOB    NOT NULL,
	private_key BLOB    NOT NULL,
	not_before  INTEGER NOT NULL,
	not_after   INTEGER NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX signing_keys_current ON signing_keys (not_after) WHERE not_after = 0;
`,
	// 4: when each agent last beat, for the fresh count (AgentView.Fresh).
	`ALTER TABLE agents ADD COLUMN seen_at INTEGER NOT NULL DEFAULT 0;`,
	// 5: the event log in chunks (see chunk.go); convertEvents moves the
	// events of an older file into them and drops the events table.
	`
-- The duplicate keys of the retained events: the only write per event.
CREATE TABLE event_keys (
	tenant_id  INTEGER NOT NULL,
	time_ms    INTEGER NOT NULL,
	message_id TEXT    NOT NULL,
	PRIMARY KEY (tenant_id, time_ms, message_id)
) WITHOUT ROWID;

-- The events, a chunk per tenant, event name and commit. A rowid table on
-- purpose: WITHOUT ROWID keeps the whole row in its key's B-tree, and a
-- seek then reads the chunks' overflow pages to compare keys. data comes
-- last so that the other columns are read without it.
CREATE TABLE event_chunks (
	id          INTEGER PRIMARY KEY,
	tenant_id   INTEGER NOT NULL,
	event_name  TEXT    NOT NULL,
	first_seq   INTEGER NOT NULL,
	last_seq    INTEGER NOT NULL,
	min_time_ms INTEGER NOT NULL,
	max_time_ms INTEGER NOT NULL,
	count       INTEGER NOT NULL,
	received_ms INTEGER NOT NULL,
	data        BLOB    NOT NULL
);

-- Scan reads one name's chunks in a sequence range; GroupsBy and retention
-- all names'. last_seq leads the range: a chunk spans less than
-- chunkMaxSpan, so those holding [from, to] have from <= last_seq < to + span.
CREATE UNIQUE INDEX event_chunks_name ON event_chunks (tenant_id, event_name, last_seq);
CREATE INDEX event_chunks_seq ON event_chunks (tenant_id, last_seq);

-- One row per tenant per commit: the commit's sequence range and ingest
-- time, for the lookups by ingest time (LastSeqBefore, ExpiredRange) and
-- OldestAfter. received_ms never decreases along a tenant's sequence.
CREATE TABLE commit_marks (
	tenant_id   INTEGER NOT NULL,
	last_seq    INTEGER NOT NULL,
	first_seq   INTEGER NOT NULL,
	received_ms INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, last_seq)
) WITHOUT ROWID;

CREATE INDEX commit_marks_received ON commit_marks (tenant_id, received_ms);

-- The ingest time of the tenant's last commit, which the next one's may not
-- go below.
ALTER TABLE tenants ADD COLUMN head_received_ms INTEGER NOT NULL DEFAULT 0;
`,
	// 6: a scan of every name's chunks in first_seq order, for the groups
	// of a destination whose keys do not name the event type (one object
	// per window holds all its names, merged in sequence order).
	`CREATE INDEX event_chunks_first ON event_chunks (tenant_id, first_seq);`,
	// 7: a counter of the changes to the destinations, which the delivery
	// loop polls instead of listing them all (see DestinationsVersion).
	// Cursor moves are not changes: they are the delivery's own writes.
	`
CREATE TABLE destinations_version (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	version INTEGER NOT NULL
);
INSERT INTO destinations_version (id, version) VALUES (1, 0);
CREATE TRIGGER destinations_created AFTER INSERT ON destinations
BEGIN UPDATE destinations_version SET version = version + 1; END;
CREATE TRIGGER destinations_updated AFTER UPDATE OF spec, updated_at ON destinations
BEGIN UPDATE destinations_version SET version = version + 1; END;
CREATE TRIGGER destinations_deleted AFTER DELETE ON destinations
BEGIN UPDATE destinations_version SET version = version + 1; END;
`,
}

// migrationSteps are the parts of a migration written in Go, run in its
// transaction after its SQL, by version: moving data into an encoding SQL
// cannot write.
var migrationSteps = map[int]func(ctx context.Context, tx *sql.Tx) error{
	5: convertEvents,
}

// migrate applies the migrations the database does not have yet, all in one
// transaction. The write transaction starts with BEGIN IMMEDIATE, so two
// processes opening a new file at once do not both apply the same version.
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()

	_, err = tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}

	var version int
	err = tx.QueryRowContext(ctx,
		`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this agent supports (%d): upgrade the agent",
			version, len(migrations))
	}
	if version == len(migrations) {
		return nil
	}

	for i := version; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate to version %d: %w", i+1, err)
		}
		if step := migrationSteps[i+1]; step != nil {
			if err := step(ctx, tx); err != nil {
				return fmt.Errorf("migrate to version %d: %w", i+1, err)
			}
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
			i+1, toMs(now()))
		if err != nil {
			return fmt.Errorf("migrate to version %d: %w", i+1, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

-- The delivery log, the hourly digests and their signing keys (see
-- digests.go). Times are Unix milliseconds, as elsewhere.

-- Where a destination's delivery log starts: the cursor and the time the
-- log began (its creation, or this migration for an older destination).
-- The first digest's range starts after that cursor.
CREATE TABLE delivery_log_start (
	destination_id text   PRIMARY KEY
	                      REFERENCES destinations (id) ON DELETE CASCADE,
	start_cursor   bigint NOT NULL,
	started_at     bigint NOT NULL
);

INSERT INTO delivery_log_start (destination_id, start_cursor, started_at)
	SELECT id, cursor, (extract(epoch FROM now()) * 1000)::bigint FROM destinations;

-- One row per committed plan: the range the cursor moved over. A commit
-- whose events were all filtered out has a row and no object, so the
-- digests' sequence ranges stay exact. to_seq orders a destination's
-- commits: its cursor only moves forward.
CREATE TABLE delivery_commits (
	destination_id text   NOT NULL
	                      REFERENCES destinations (id) ON DELETE CASCADE,
	to_seq         bigint NOT NULL,
	from_seq       bigint NOT NULL,
	committed_at   bigint NOT NULL,
	PRIMARY KEY (destination_id, to_seq)
);

CREATE TABLE delivered_objects (
	destination_id text   NOT NULL,
	commit_seq     bigint NOT NULL,
	ord            integer NOT NULL,
	key            text   NOT NULL,
	sha256         text   NOT NULL,
	size           bigint NOT NULL,
	events         bigint NOT NULL,
	first_seq      bigint NOT NULL,
	last_seq       bigint NOT NULL,
	oldest_ms      bigint NOT NULL,
	newest_ms      bigint NOT NULL,
	committed_at   bigint NOT NULL,
	PRIMARY KEY (destination_id, commit_seq, ord),
	FOREIGN KEY (destination_id, commit_seq)
		REFERENCES delivery_commits (destination_id, to_seq) ON DELETE CASCADE
);

CREATE INDEX delivered_objects_time ON delivered_objects (destination_id, committed_at);

-- Digests as signed: saved before the PUT (written_at 0), marked written
-- after it, so a crash in between PUTs the same bytes again.
CREATE TABLE digests (
	destination_id text   NOT NULL
	                      REFERENCES destinations (id) ON DELETE CASCADE,
	hour_start     bigint NOT NULL,
	key            text   NOT NULL,
	bucket         text   NOT NULL,
	prefix         text   NOT NULL,
	next_seq       bigint NOT NULL,
	body           bytea  NOT NULL,
	sha256         text   NOT NULL,
	signature      text   NOT NULL,
	key_id         text   NOT NULL,
	created_at     bigint NOT NULL,
	written_at     bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (destination_id, hour_start)
);

-- The agents' Ed25519 signing keys, shared by every agent; private_key is
-- sealed by the agents' keyring. At most one key is current (not_after 0).
CREATE TABLE signing_keys (
	key_id      text   PRIMARY KEY,
	public_key  bytea  NOT NULL,
	private_key bytea  NOT NULL,
	not_before  bigint NOT NULL,
	not_after   bigint NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX signing_keys_current ON signing_keys (not_after) WHERE not_after = 0;

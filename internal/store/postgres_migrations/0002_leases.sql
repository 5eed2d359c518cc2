-- Destination leases and agent heartbeats: several agents share the delivery
-- of the destinations, each delivered by one agent at a time. Every
-- destination has a lease row (holder '' means free); expires_at is on the
-- database's clock (now()), never an agent's. epoch grows by one at every
-- claim and fences the holder's writes (see leases.go).
CREATE TABLE leases (
	destination_id text   PRIMARY KEY
	                      REFERENCES destinations (id) ON DELETE CASCADE,
	holder         text   NOT NULL DEFAULT '',
	epoch          bigint NOT NULL DEFAULT 0,
	expires_at     bigint NOT NULL DEFAULT 0
);

CREATE INDEX leases_holder ON leases (holder);

INSERT INTO leases (destination_id) SELECT id FROM destinations;

-- One row per live agent, renewed by its heartbeat: the count sets each
-- agent's fair share of the leases.
CREATE TABLE agents (
	id         text   PRIMARY KEY,
	expires_at bigint NOT NULL
);

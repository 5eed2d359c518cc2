-- When each agent last beat: an agent killed without deregistering stays
-- live until its row expires, but stops counting towards the fair share
-- after a missed beat or two (see Leases.RegisterAgent).
ALTER TABLE agents ADD COLUMN seen_at bigint NOT NULL DEFAULT 0;

-- Scan of a group of several event names (a destination whose keys do not
-- name the event type) reads every name's chunks in first_seq order and
-- merges them into sequence order.
CREATE INDEX event_chunks_first ON event_chunks (tenant_id, first_seq);

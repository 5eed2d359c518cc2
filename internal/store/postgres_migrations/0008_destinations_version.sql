-- A counter of the changes to the destinations, which the delivery loop
-- polls instead of listing them all (see DestinationsVersion). Cursor moves
-- are not changes: they are the delivery's own writes.
CREATE TABLE destinations_version (
	id      integer PRIMARY KEY CHECK (id = 1),
	version bigint NOT NULL
);
INSERT INTO destinations_version (id, version) VALUES (1, 0);

CREATE FUNCTION destinations_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE destinations_version SET version = version + 1;
	RETURN NULL;
END;
$$;

CREATE TRIGGER destinations_changed
	AFTER INSERT OR DELETE OR UPDATE OF spec, updated_at ON destinations
	FOR EACH STATEMENT EXECUTE FUNCTION destinations_version_bump();

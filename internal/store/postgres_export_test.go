package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// MigrationLockKey is the advisory lock migrations take, for the tests of
// package store_test.
const MigrationLockKey = migrationLockKey

// MigratePostgresTo applies the migrations up to version, for a test that
// upgrades a database holding data from an older schema.
func MigratePostgresTo(ctx context.Context, url string, version int) error {
	ms, err := postgresMigrations()
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL)`); err != nil {
		return err
	}
	for _, m := range ms[:version] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if err := applyPgMigration(ctx, tx, m); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations VALUES ($1, 0)`, m.version)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

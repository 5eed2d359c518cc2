package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The PostgreSQL schema history: postgres_migrations/NNNN_name.sql brings the
// database to version NNNN. Never edit or renumber a file once released: add
// a new one.
//
// The runner is the few lines below rather than a migration library such as
// goose: the schema is one linear list applied in one transaction, the
// advisory lock is the only coordination needed, and the refusal of a schema
// newer than the agent matches the SQLite engine's.
//
//go:embed postgres_migrations/*.sql
var postgresMigrationFiles embed.FS

// migrationLockKey is the pg_advisory_xact_lock key that serialises schema
// migrations of agents sharing a database ("auditexp" in ASCII).
const migrationLockKey int64 = 0x6175646974657870

type pgMigration struct {
	version int
	name    string
	sql     string
}

// postgresMigrations returns the embedded migrations in version order. The
// versions must run 1, 2, 3, … without gaps.
func postgresMigrations() ([]pgMigration, error) {
	names, err := fs.Glob(postgresMigrationFiles, "postgres_migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []pgMigration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with its version, as in 0001_initial.sql", base)
		}
		sql, err := fs.ReadFile(postgresMigrationFiles, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, pgMigration{version: v, name: base, sql: string(sql)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: want version %d", m.name, i+1)
		}
	}
	return ms, nil
}

// migratePostgres applies the migrations the database does not have yet, all
// in one transaction (PostgreSQL's DDL is transactional: a failed migration
// leaves the schema as it was). The transaction first takes an advisory lock,
// so an agent starting while another migrates waits for it to commit and then
// finds nothing left to do, instead of racing it.
func migratePostgres(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := postgresMigrations()
	if err != nil {
		return err
	}
	return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			applied_at bigint  NOT NULL
		)`)
		if err != nil {
			return err
		}
		var version int
		err = tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version)
		if err != nil {
			return err
		}
		if version > len(ms) {
			return fmt.Errorf("database schema version %d is newer than this agent supports (%d): upgrade the agent",
				version, len(ms))
		}
		for _, m := range ms[version:] {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migrate to version %d (%s): %w", m.version, m.name, err)
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
				m.version, toMs(now()))
			if err != nil {
				return fmt.Errorf("migrate to version %d (%s): %w", m.version, m.name, err)
			}
		}
		return nil
	})
}

// MigratePostgres brings the schema of the database at url up to date and
// returns, for an operator's migrate command. Agents also migrate when they
// open the store; this lets the schema change be applied (and checked)
// before they are rolled out.
func MigratePostgres(ctx context.Context, url string) error {
	p, err := openPostgres(ctx, url, WithMaxConns(1))
	if err != nil {
		return fmt.Errorf("migrate postgres %s: %w", redact(url), err)
	}
	return p.Close()
}

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
			if err := applyPgMigration(ctx, tx, m); err != nil {
				return err
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

// pgMigrationSteps are the Go steps of some versions, run after that
// version's SQL in the same transaction. A step does what SQL cannot do
// well: converting the per-event rows into chunks needs the chunk encoding,
// which lives in Go only (one encoder for both engines and the readers).
var pgMigrationSteps = map[int]func(ctx context.Context, tx pgx.Tx) error{
	6: pgConvertEventsToChunks,
}

// applyPgMigration runs migration m's SQL and then its Go step, if any.
func applyPgMigration(ctx context.Context, tx pgx.Tx, m pgMigration) error {
	if _, err := tx.Exec(ctx, m.sql); err != nil {
		return fmt.Errorf("migrate to version %d (%s): %w", m.version, m.name, err)
	}
	if step := pgMigrationSteps[m.version]; step != nil {
		if err := step(ctx, tx); err != nil {
			return fmt.Errorf("migrate to version %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

// pgConvertPage is how many events the chunk conversion reads per query.
const pgConvertPage = 10000

// pgConvertEventsToChunks moves the events table's rows into event_chunks,
// tenant by tenant in sequence order, and drops the table (the SQL of
// version 6 already copied the duplicate keys). Reading in keyset pages
// keeps memory bounded whatever the backlog. A chunk takes the received_ms
// of its last event, the latest of its events (received_ms never decreases
// along the sequence).
func pgConvertEventsToChunks(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT DISTINCT tenant_id FROM events ORDER BY tenant_id`)
	if err != nil {
		return err
	}
	tenants, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	for _, tenant := range tenants {
		for after := int64(0); ; {
			last, n, err := pgConvertEventsPage(ctx, tx, tenant, after)
			if err != nil {
				return fmt.Errorf("converting the events of tenant %d after seq %d: %w", tenant, after, err)
			}
			if n < pgConvertPage {
				break
			}
			after = last
		}
	}
	_, err = tx.Exec(ctx, `DROP TABLE events`)
	return err
}

// pgConvertEventsPage converts up to pgConvertPage events of the tenant after
// seq `after` and returns the last seq converted and how many there were.
func pgConvertEventsPage(ctx context.Context, tx pgx.Tx, tenant, after int64) (last int64, n int, err error) {
	rows, err := tx.Query(ctx, `SELECT seq, message_id, event_name, time_ms, received_ms, body FROM events
		WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, tenant, after, pgConvertPage)
	if err != nil {
		return 0, 0, err
	}
	tp := &tenantAppend{tenantID: tenant}
	received := map[int64]int64{}
	for rows.Next() {
		var seq, t, r int64
		var id, name string
		var body []byte
		if err := rows.Scan(&seq, &id, &name, &t, &r, &body); err != nil {
			rows.Close()
			return 0, 0, err
		}
		tp.seqs = append(tp.seqs, seq)
		tp.messageIDs = append(tp.messageIDs, id)
		tp.names = append(tp.names, name)
		tp.times = append(tp.times, t)
		tp.bodies = append(tp.bodies, body)
		received[seq] = r
	}
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	if len(tp.seqs) == 0 {
		return after, 0, nil
	}
	chunks := buildChunks(tp)
	for i := range chunks {
		chunks[i].receivedMs = received[chunks[i].lastSeq]
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"event_chunks"}, pgChunkColumns, pgx.CopyFromSlice(len(chunks), func(i int) ([]any, error) {
		return chunkValues(chunks[i]), nil
	})); err != nil {
		return 0, 0, err
	}
	return tp.seqs[len(tp.seqs)-1], len(tp.seqs), nil
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

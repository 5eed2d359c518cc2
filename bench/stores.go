package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/testenv"
)

// The stores the agent runs on, as -store names them.
const (
	storeSQLite   = "sqlite"
	storePostgres = "postgres"
)

// storeOrder is the order the stores' phases run in, whatever the order of
// -store: SQLite first, so that the rows of the default store never share
// the machine with a PostgreSQL server.
var storeOrder = []string{storeSQLite, storePostgres}

// pgMaxConns is the agent's PostgreSQL pool (store { postgres { max_conns } })
// and the stage-limit reader's.
const pgMaxConns = 8

// pgDatabase is the database the agent uses in the bench's cluster.
const pgDatabase = "auditexport"

// benchStore is the store one agent runs on: its own SQLite file, or a
// database in a throw-away PostgreSQL cluster on loopback.
type benchStore struct {
	name  string // as in -store
	title string // column heading in the table
	desc  string // what it is and how it is set up, for the table's header
	// block is the agent config's store {} block; empty for SQLite, the
	// agent's default (a file in its data directory).
	block string
	// cfg opens the store from the bench for the stage limits, with the
	// agent stopped. The SQLite path is set by newWorld.
	cfg   store.Config
	pid   int // the PostgreSQL postmaster; 0 for SQLite
	close func()
}

func sqliteStore() *benchStore {
	return &benchStore{
		name: storeSQLite, title: "SQLite",
		desc:  "SQLite: the agent's file in its data directory, WAL, synchronous=FULL",
		close: func() {},
	}
}

// pgStoreBlock is the agent's configuration of a PostgreSQL store.
const pgStoreBlock = `
store {
  postgres {
    url       = %q
    max_conns = %d
  }
}
`

// startPostgresStore starts a PostgreSQL cluster under the system temporary
// directory (its server runs as the postgres user when the bench runs as
// root; see testenv.NewPostgres): loopback only, max_connections=50,
// shared_buffers=32MB, fsync on. The agent commits with
// synchronous_commit=on, so a 2xx costs a WAL flush as in production.
func startPostgresStore(ctx context.Context) (*benchStore, error) {
	pg, err := testenv.NewPostgres()
	if err != nil {
		return nil, fmt.Errorf("starting PostgreSQL (or run with -store sqlite): %w", err)
	}
	version, err := pgSetup(ctx, pg.URL("postgres"))
	if err != nil {
		pg.Close()
		return nil, fmt.Errorf("PostgreSQL on %s:%d: %w", pg.Host, pg.Port, err)
	}
	url := pg.URL(pgDatabase)
	return &benchStore{
		name: storePostgres, title: "PostgreSQL",
		desc: fmt.Sprintf("PostgreSQL %s: a cluster of its own on 127.0.0.1:%d, fsync=on, synchronous_commit=on, shared_buffers=32MB, max_connections=50; agent pool max_conns=%d",
			version, pg.Port, pgMaxConns),
		block: fmt.Sprintf(pgStoreBlock, url, pgMaxConns),
		cfg:   store.Config{PostgresURL: url, MaxConns: pgMaxConns},
		pid:   pg.PID(),
		close: pg.Close,
	}, nil
}

// pgSetup creates the agent's database and returns the server's version.
func pgSetup(ctx context.Context, adminURL string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgDatabase); err != nil {
		return "", err
	}
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		return "", err
	}
	return version, nil
}

// startStore starts the store called name.
func startStore(ctx context.Context, name string) (*benchStore, error) {
	if name == storePostgres {
		return startPostgresStore(ctx)
	}
	return sqliteStore(), nil
}

// parseStores reads -store: a comma-separated list of sqlite and postgres,
// returned in storeOrder.
func parseStores(v string) ([]string, error) {
	want := map[string]bool{}
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s != storeSQLite && s != storePostgres {
			return nil, fmt.Errorf("-store %q: a comma-separated list of sqlite and postgres", v)
		}
		want[s] = true
	}
	var out []string
	for _, s := range storeOrder {
		if want[s] {
			out = append(out, s)
		}
	}
	return out, nil
}

// sqlitePath is the SQLite file of an agent with this data directory.
func sqlitePath(dataDir string) string { return filepath.Join(dataDir, "auditexport.db") }

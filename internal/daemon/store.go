package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/store"
)

// storeFile is the SQLite store's file name in the data directory.
const storeFile = "auditexport.db"

// probeTimeout bounds OpenExistingStore's check that a PostgreSQL database
// was migrated.
const probeTimeout = 15 * time.Second

// StoreNotFoundError is OpenExistingStore's error when the data directory
// holds no store.
type StoreNotFoundError struct {
	// Path is the store file that was looked for.
	Path string
	Err  error
}

func (e *StoreNotFoundError) Error() string {
	return fmt.Sprintf("no agent store at %s: %v", e.Path, e.Err)
}

func (e *StoreNotFoundError) Unwrap() error { return e.Err }

// NotMigratedError is OpenExistingStore's error when the PostgreSQL database
// has no agent schema yet.
type NotMigratedError struct {
	// URL is the database's URL without its password.
	URL string
	// From says where the URL came from (AUDITEXPORT_DATABASE_URL,
	// store.postgres.url or store.postgres.url_file).
	From string
}

func (e *NotMigratedError) Error() string {
	return fmt.Sprintf("the PostgreSQL database %s (from %s) holds no agent store: run `auditexport-agent migrate` or start `auditexport-agent serve` first", e.URL, e.From)
}

// StoreConfig maps the agent's configuration to the store's: PostgreSQL
// when the config or the environment names a database, else SQLite in the
// data directory. It reads store.postgres.url_file when that is set.
func StoreConfig(cfg *config.Config) (store.Config, error) {
	dbURL, _, err := cfg.DatabaseURL()
	if err != nil {
		return store.Config{}, err
	}
	if dbURL != "" {
		return store.Config{PostgresURL: dbURL, MaxConns: cfg.PostgresMaxConns()}, nil
	}
	return store.Config{SQLitePath: filepath.Join(cfg.DataDir, storeFile)}, nil
}

// DescribeStore names the store the config selects, for logs and messages:
// the SQLite file, or the PostgreSQL URL without its password.
func DescribeStore(cfg *config.Config) string {
	dbURL, from, err := cfg.DatabaseURL()
	switch {
	case err != nil:
		return "(invalid: " + err.Error() + ")"
	case dbURL != "":
		return fmt.Sprintf("PostgreSQL %s (from %s)", config.RedactURL(dbURL), from)
	}
	return "SQLite " + filepath.Join(cfg.DataDir, storeFile)
}

// needsDataDir reports whether the agent keeps files in the data directory:
// the SQLite store, or the secrets key it generates when none is configured.
func needsDataDir(cfg *config.Config) bool {
	if !cfg.UsesPostgres() {
		return true
	}
	s := cfg.Secrets
	return s == nil || s.KeyFile == "" && s.KeyEnv == "" && s.KMSKeyARN == ""
}

// OpenStore opens the store the config selects and brings its schema up to
// date. The data directory, when the agent keeps files there, is created if
// needed and made private (see prepareDataDir).
func OpenStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	return openStore(ctx, cfg, nil)
}

// openStore is OpenStore with the clock that stamps the store's times (nil
// is the system clock).
func openStore(ctx context.Context, cfg *config.Config, now func() time.Time) (store.Store, error) {
	sc, err := StoreConfig(cfg)
	if err != nil {
		return nil, err
	}
	sc.Now = now
	if needsDataDir(cfg) {
		if err := prepareDataDir(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	return store.Open(ctx, sc)
}

// Migrate brings the schema of the store the config selects up to date,
// creating the store when there is none, and closes it.
func Migrate(ctx context.Context, cfg *config.Config) error {
	sc, err := StoreConfig(cfg)
	if err != nil {
		return err
	}
	if sc.SQLitePath != "" {
		if err := prepareDataDir(cfg.DataDir); err != nil {
			return err
		}
	}
	return store.Migrate(ctx, sc)
}

// OpenExistingStore opens the store that serve uses with the same config,
// and fails with a *StoreNotFoundError when the data directory holds no
// SQLite store, or a *NotMigratedError when the PostgreSQL database has no
// agent schema. The operator commands use it rather than OpenStore: a
// command pointed at the wrong place must not create a new, empty store
// whose tenants and tokens the running agent never sees.
func OpenExistingStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	sc, err := StoreConfig(cfg)
	if err != nil {
		return nil, err
	}
	if sc.PostgresURL != "" {
		if err := checkMigrated(ctx, cfg, sc.PostgresURL); err != nil {
			return nil, err
		}
		return store.Open(ctx, sc)
	}
	if _, err := os.Stat(sc.SQLitePath); err != nil {
		return nil, &StoreNotFoundError{Path: sc.SQLitePath, Err: err}
	}
	return store.Open(ctx, sc)
}

// checkMigrated fails with a *NotMigratedError when the database at dbURL
// has never been migrated: its search path has no schema_migrations table,
// or the table is empty.
func checkMigrated(ctx context.Context, cfg *config.Config, dbURL string) error {
	_, from, _ := cfg.DatabaseURL()
	redacted := config.RedactURL(dbURL)
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		// pgx's connect errors name the user, host and database, never
		// the password.
		return fmt.Errorf("connecting to PostgreSQL %s (from %s): %w: %w", redacted, from, store.ErrUnavailable, err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("PostgreSQL %s: %w", redacted, err)
	}
	if !exists {
		return &NotMigratedError{URL: redacted, From: from}
	}
	var version int
	err = conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("PostgreSQL %s: %w", redacted, err)
	}
	if version == 0 {
		return &NotMigratedError{URL: redacted, From: from}
	}
	return nil
}

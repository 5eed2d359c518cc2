package store

import (
	"context"
	"errors"
	"time"
)

// Config selects and configures the engine Open returns. Exactly one of
// SQLitePath and PostgresURL is set.
type Config struct {
	// SQLitePath is the database file of the SQLite engine (one agent per
	// file). Its directory must exist.
	SQLitePath string
	// PostgresURL is the PostgreSQL database several agents may share, as a
	// postgres:// URL or key=value DSN; TLS is set with sslmode (and
	// sslrootcert, sslcert, sslkey) as libpq does.
	PostgresURL string
	// MaxConns caps the PostgreSQL connection pool; 0 means
	// DefaultMaxConns.
	MaxConns int
	// CallTimeout bounds one PostgreSQL call; 0 means DefaultCallTimeout.
	CallTimeout time.Duration
	// Now stamps created, updated and received times; nil means the system
	// clock. Tests set it to drive time by hand.
	Now func() time.Time
}

// Open opens the store cfg selects and brings its schema up to date.
func Open(ctx context.Context, cfg Config) (Store, error) {
	switch {
	case cfg.SQLitePath != "" && cfg.PostgresURL != "":
		return nil, errors.New("open store: set either the SQLite path or the PostgreSQL URL, not both")
	case cfg.PostgresURL != "":
		return OpenPostgres(ctx, cfg.PostgresURL,
			WithMaxConns(cfg.MaxConns), WithCallTimeout(cfg.CallTimeout), WithClock(cfg.Now))
	case cfg.SQLitePath != "":
		s, err := OpenSQLite(ctx, cfg.SQLitePath)
		if err != nil {
			return nil, err
		}
		// Set before the store is shared; nil keeps the system clock.
		s.clock = cfg.Now
		return s, nil
	}
	return nil, errors.New("open store: no database configured: set the SQLite path or the PostgreSQL URL")
}

// Migrate brings the schema of the store cfg selects up to date and closes
// it: the work of a migrate command, run before agents of a new version are
// rolled out. Opening a store migrates too; with PostgreSQL, agents starting
// at once wait for each other.
func Migrate(ctx context.Context, cfg Config) error {
	if cfg.PostgresURL != "" && cfg.SQLitePath == "" {
		return MigratePostgres(ctx, cfg.PostgresURL)
	}
	s, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	return s.Close()
}

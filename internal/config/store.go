package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
)

// EnvDatabaseURL names the environment variable that holds the PostgreSQL
// URL. It takes precedence over store.postgres.url and url_file, and selects
// PostgreSQL on its own when the file has no store block, so that the URL and
// its password can come from a secret manager rather than the file.
const EnvDatabaseURL = "AUDITEXPORT_DATABASE_URL"

// Bounds on store.postgres.max_conns. Several agents share one database,
// whose max_connections (100 by default) must hold all their pools.
const (
	MinPostgresConns     = 1
	MaxPostgresConns     = 100
	DefaultPostgresConns = 8
)

// Store is the store block: where the agent keeps tenants, tokens, events
// and destinations. Without it (or with an empty one) they are kept in a
// SQLite file in data_dir.
type Store struct {
	// Postgres keeps them in a PostgreSQL database instead.
	Postgres *Postgres `hcl:"postgres,block"`
}

// Postgres is the store.postgres block. At most one of URL and URLFile is
// set; AUDITEXPORT_DATABASE_URL overrides both.
type Postgres struct {
	// URL is a postgres:// URL; TLS is set with sslmode, sslrootcert,
	// sslcert and sslkey, as libpq does.
	URL string `hcl:"url,optional"`
	// URLFile is a file holding the URL, so that the password is not in
	// the config (a Kubernetes or systemd secret, for instance).
	URLFile string `hcl:"url_file,optional"`
	// MaxConns caps the agent's connection pool; 0 means
	// DefaultPostgresConns.
	MaxConns int `hcl:"max_conns,optional"`
}

func (s *Store) validate(p *problems) {
	if s.Postgres == nil {
		return
	}
	pg := s.Postgres
	switch {
	case pg.URL != "" && pg.URLFile != "":
		p.add("store.postgres.url", "set either url or url_file, not both")
	case pg.URL != "":
		if err := checkPostgresURL(pg.URL); err != nil {
			p.add("store.postgres.url", "%v", err)
		}
	case pg.URLFile != "":
		checkFile(p, "store.postgres.url_file", pg.URLFile)
	}
	// An empty block is allowed: AUDITEXPORT_DATABASE_URL may supply the URL,
	// which DatabaseURL checks when the store is opened.
	if pg.MaxConns != 0 && (pg.MaxConns < MinPostgresConns || pg.MaxConns > MaxPostgresConns) {
		p.add("store.postgres.max_conns", "must be between %d and %d (or left out for %d), got %d",
			MinPostgresConns, MaxPostgresConns, DefaultPostgresConns, pg.MaxConns)
	}
}

// checkPostgresURL accepts a postgres:// or postgresql:// URL. The error
// never quotes the URL's password.
func checkPostgresURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf(`must be a postgres:// URL such as "postgres://auditexport@db.internal:5432/auditexport?sslmode=verify-full", got %q`, RedactURL(s))
	}
	return nil
}

// UsesPostgres reports whether the store is kept in PostgreSQL: the config
// has a store.postgres block or AUDITEXPORT_DATABASE_URL is set.
func (c *Config) UsesPostgres() bool {
	return os.Getenv(EnvDatabaseURL) != "" || c.Store != nil && c.Store.Postgres != nil
}

// DatabaseURL returns the PostgreSQL URL and where it came from (the
// environment variable, store.postgres.url or store.postgres.url_file),
// reading url_file if that is the source. It returns "" when the store is
// SQLite.
func (c *Config) DatabaseURL() (dbURL, from string, err error) {
	if env := os.Getenv(EnvDatabaseURL); env != "" {
		if err := checkPostgresURL(env); err != nil {
			return "", "", fmt.Errorf("%s: %w", EnvDatabaseURL, err)
		}
		return env, EnvDatabaseURL, nil
	}
	if c.Store == nil || c.Store.Postgres == nil {
		return "", "", nil
	}
	pg := c.Store.Postgres
	switch {
	case pg.URL != "":
		if err := checkPostgresURL(pg.URL); err != nil {
			return "", "", fmt.Errorf("store.postgres.url: %w", err)
		}
		return pg.URL, "store.postgres.url", nil
	case pg.URLFile != "":
		data, err := os.ReadFile(pg.URLFile)
		if err != nil {
			return "", "", fmt.Errorf("store.postgres.url_file: %w", err)
		}
		s := strings.TrimSpace(string(data))
		if err := checkPostgresURL(s); err != nil {
			return "", "", fmt.Errorf("store.postgres.url_file: %s: %w", pg.URLFile, err)
		}
		return s, "store.postgres.url_file", nil
	}
	return "", "", fmt.Errorf("store.postgres: set url or url_file, or %s, or remove the block to keep the store in SQLite in data_dir", EnvDatabaseURL)
}

// PostgresMaxConns is the configured pool size, or the default.
func (c *Config) PostgresMaxConns() int {
	if c.Store != nil && c.Store.Postgres != nil && c.Store.Postgres.MaxConns > 0 {
		return c.Store.Postgres.MaxConns
	}
	return DefaultPostgresConns
}

// RedactURL returns s with its password removed (from the user info and
// from a password query parameter), for logs and messages.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(an unparsable URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	for _, k := range []string{"password", "sslpassword"} {
		if q.Has(k) {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

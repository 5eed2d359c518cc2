package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrUnavailable is wrapped by the errors of calls that failed because the
// database could not be reached or answered in time: the server answers
// them with 503 so that the caller retries.
var ErrUnavailable = errors.New("database unavailable")

const (
	// DefaultMaxConns is the default size of the PostgreSQL pool: enough
	// for ingest, delivery and the API at once on a small machine, while
	// several agents sharing one database stay well under its
	// max_connections.
	DefaultMaxConns = 8

	// DefaultCallTimeout bounds one call to the database (for Scan, one page
	// of it). A call that takes longer fails with ErrUnavailable.
	DefaultCallTimeout = 15 * time.Second

	// defaultConnectTimeout bounds dialing and the handshake of a new
	// connection, unless the URL sets connect_timeout.
	defaultConnectTimeout = 5 * time.Second

	// scanChunks is how many chunks Scan reads per query: at most
	// chunkMaxBytes each, so a page stays around a megabyte.
	scanChunks = 4
)

// Postgres is the Store kept in a PostgreSQL database (14 or later), which
// several agents may share. Open it with OpenPostgres or Open.
type Postgres struct {
	pool        *pgxpool.Pool
	maxConns    int
	callTimeout time.Duration
	clock       func() time.Time
}

var _ Store = (*Postgres)(nil)

// PostgresOption configures OpenPostgres.
type PostgresOption func(*postgresOptions)

type postgresOptions struct {
	maxConns    int
	callTimeout time.Duration
	clock       func() time.Time
}

// WithMaxConns sets the most connections the pool opens (default
// DefaultMaxConns). A value below 1 keeps the default.
func WithMaxConns(n int) PostgresOption {
	return func(o *postgresOptions) {
		if n > 0 {
			o.maxConns = n
		}
	}
}

// WithCallTimeout sets how long one call may wait for the database (default
// DefaultCallTimeout). A value of 0 or less keeps the default.
func WithCallTimeout(d time.Duration) PostgresOption {
	return func(o *postgresOptions) {
		if d > 0 {
			o.callTimeout = d
		}
	}
}

// WithClock replaces the clock that stamps created, updated and received
// times (tests drive it by hand). nil keeps the system clock.
func WithClock(now func() time.Time) PostgresOption {
	return func(o *postgresOptions) { o.clock = now }
}

// OpenPostgres connects to the database at url (a postgres:// URL or a
// key=value DSN, as pgx parses it: sslmode, sslrootcert and the other libpq
// settings apply) and brings its schema up to date. Another agent migrating
// the same database at the same time is waited for.
func OpenPostgres(ctx context.Context, url string, opts ...PostgresOption) (Store, error) {
	p, err := openPostgres(ctx, url, opts...)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", redact(url), err)
	}
	return p, nil
}

func openPostgres(ctx context.Context, url string, opts ...PostgresOption) (*Postgres, error) {
	o := postgresOptions{maxConns: DefaultMaxConns, callTimeout: DefaultCallTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := poolConfig(url, o.maxConns)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p := &Postgres{pool: pool, maxConns: int(cfg.MaxConns), callTimeout: o.callTimeout, clock: o.clock}

	// Not bounded by the call timeout: a migration may rebuild a large
	// table, and an agent starting during another's migration waits for
	// it. Connecting is still bounded by the connect timeout.
	if err := migratePostgres(ctx, pool); err != nil {
		pool.Close()
		return nil, p.fail(ctx, "migrate", err)
	}
	return p, nil
}

// poolConfig parses url and applies the engine's defaults where the URL
// leaves a setting alone.
func poolConfig(url string, maxConns int) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, errors.New("postgres_url is not a valid PostgreSQL URL or DSN: see https://pkg.go.dev/github.com/jackc/pgx/v5/pgconn#ParseConfig")
	}
	cfg.MaxConns = int32(maxConns)
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	params := cfg.ConnConfig.RuntimeParams
	if _, ok := params["application_name"]; !ok {
		params["application_name"] = "auditexport-agent"
	}
	// A 2xx to ingest means the events are on disk: insist on a
	// synchronous commit unless the operator chose otherwise in the URL.
	if _, ok := params["synchronous_commit"]; !ok {
		params["synchronous_commit"] = "on"
	}
	return cfg, nil
}

// redact drops the password from a URL for error messages.
func redact(url string) string {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return "(invalid URL)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// Close closes the pool, waiting for connections in use to be released.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}

func (p *Postgres) now() time.Time {
	if p.clock != nil {
		return p.clock().UTC().Truncate(time.Millisecond)
	}
	return now()
}

// bound gives one call its deadline: a database that stops answering makes
// the call fail instead of hanging the request behind it.
func (p *Postgres) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.callTimeout)
}

// fail wraps err for the caller: op names the call, and an error caused by
// the database being out of reach also wraps ErrUnavailable. ctx is the
// caller's own context, so that a caller who gave up gets its context's
// error rather than a claim that the database is down.
func (p *Postgres) fail(ctx context.Context, op string, err error) error {
	if ctx.Err() == nil && unavailable(err) {
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// unavailable reports whether err means the database could not be reached,
// went away or did not answer in time, as opposed to refusing the request.
func unavailable(err error) bool {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection exception
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // shutting down, starting up
			return true
		case pgErr.Code == "53300": // too many connections
			return true
		case pgErr.Code == "57014": // canceled: our deadline fired
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr):
		return true
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	// The connection broke before the query went out.
	return pgconn.SafeToRetry(err)
}

// pgCode returns the SQLSTATE of err, or "" when it is not a server error.
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeDeadlock            = "40P01"
)

// pgNotFound turns pgx.ErrNoRows into an error wrapping ErrNotFound.
func pgNotFound(err error, format string, args ...any) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrNotFound)
	}
	return err
}

// queryRow runs a one-row query within the call's deadline.
func (p *Postgres) queryRow(ctx context.Context, sql string, args []any, dest ...any) error {
	ctx, cancel := p.bound(ctx)
	defer cancel()
	return p.pool.QueryRow(ctx, sql, args...).Scan(dest...)
}

// exec runs a statement within the call's deadline.
func (p *Postgres) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	ctx, cancel := p.bound(ctx)
	defer cancel()
	return p.pool.Exec(ctx, sql, args...)
}

// tx runs fn in a READ COMMITTED transaction within the call's deadline and
// commits it when fn returns nil. The level is set explicitly: the
// sequencing argument in Append depends on it, whatever the server's
// default.
func (p *Postgres) tx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := p.bound(ctx)
	defer cancel()
	return pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		return fn(ctx, tx)
	})
}

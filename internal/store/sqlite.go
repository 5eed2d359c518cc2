package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// busyTimeout is how long a connection waits for a lock held by another
// connection (or another process, such as an operator CLI sharing the file)
// before it gives up with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// SQLite is the Store kept in one SQLite database file.
//
// SQLite allows one writer at a time, so all writes go through a handle with
// a single connection whose transactions start with BEGIN IMMEDIATE: writers
// in this process queue on the pool instead of failing with SQLITE_BUSY, and
// writers in other processes wait on the busy timeout. Reads use a separate
// pool; in WAL mode they see the last commit and never wait for a writer.
// A third connection checkpoints the WAL in the background (see
// checkpointer).
type SQLite struct {
	writer *sql.DB
	reader *sql.DB
	// read runs the reader pool's queries through prepared statements;
	// inWrite does for the writer's hot statements (see stmtCache).
	read    *stmtCache
	inWrite *stmtCache

	// insertEvent holds Append's statements, prepared once on the writer's
	// only connection, so each Append reuses them instead of compiling again.
	insertEvent *appendStmts

	ckpt *checkpointer
	// writes runs every write transaction on the writer connection,
	// batching those that wait at the same moment into one commit.
	writes *writeBatcher

	// clock stamps created, updated and received times: Config.Now, or
	// the system clock when nil.
	clock func() time.Time
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the database file at path and brings
// its schema up to date. The directory must exist. The database and its WAL
// files are made readable and writable by their owner only (0600).
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	s, err := openSQLite(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return s, nil
}

func openSQLite(ctx context.Context, path string) (*SQLite, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := createPrivate(abs); err != nil {
		return nil, err
	}
	if err := restrictFiles(abs); err != nil {
		return nil, err
	}
	s := &SQLite{}
	if s.writer, err = sql.Open("sqlite", dsn(abs, false)); err != nil {
		return nil, err
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)

	// The schema is migrated before the reader pool exists, so no reader
	// can observe a half-built database (and the file is in WAL mode, which
	// is persistent, before any reader connects).
	if err := migrate(ctx, s.writer); err != nil {
		s.Close()
		return nil, err
	}
	if s.insertEvent, err = prepareAppend(ctx, s.writer); err != nil {
		s.Close()
		return nil, err
	}
	s.inWrite = newStmtCache(s.writer, false)
	if err := s.inWrite.prepare(ctx, writerStmts...); err != nil {
		s.Close()
		return nil, err
	}
	// The writer's connection has made the WAL and shared-memory files by
	// now; a -shm left by an earlier run keeps its old mode otherwise.
	if err := restrictFiles(abs); err != nil {
		s.Close()
		return nil, err
	}

	if s.reader, err = sql.Open("sqlite", dsn(abs, true)); err != nil {
		s.Close()
		return nil, err
	}
	// The reader pool is not capped: Scan holds a connection while its
	// callback runs, and a callback that reads the store again must not
	// wait for a connection that only another waiting Scan could free.
	//
	// Idle connections are kept for as many reads as a busy window end
	// runs at once (a scan per group written, each delivery worker's plan
	// reads, the API's): a connection opened past the idle limit is closed
	// after one use, and opening one costs more than the read, as does
	// preparing every statement again on it. Those idle past a few
	// minutes (longer than a 1-minute cadence's gap) are closed.
	s.reader.SetMaxIdleConns(max(readerIdleConns, runtime.GOMAXPROCS(0)))
	s.reader.SetConnMaxIdleTime(readerIdleTime)
	s.read = newStmtCache(s.reader, true)

	ckptDB, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		s.Close()
		return nil, err
	}
	ckptDB.SetMaxOpenConns(1)
	s.ckpt = startCheckpointer(ckptDB)
	s.writes = startWriteBatcher(s.writer, s.inWrite, s.ckpt.notify)
	return s, nil
}

// The reader pool's idle connections: how many, and for how long.
const (
	readerIdleConns = 64
	readerIdleTime  = 3 * time.Minute
)

// writerCacheKiB is the writer connection's page cache. Large enough for
// the pages one commit of thousands of events dirties (see dsn), and no
// larger: SQLite walks the whole cache at the end of most write
// transactions of Append (pcache1TruncateUnsafe), so with 10,000 tenants
// committing small batches a 32 MB cache cost 5% of the agent's CPU in
// that walk alone, while ingest at 1,000 events a request was no faster
// than with 8 MB.
const writerCacheKiB = 8 << 10

// dsn builds the modernc.org/sqlite data source name for an absolute path.
// The pragmas are part of the DSN so that every connection the pool opens
// gets them. The path goes in a file: URI so that characters such as '?' or
// '#' in it are escaped rather than taken for the query.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		// Readers leave journal_mode alone: changing it takes a lock,
		// and the writer has already made the file WAL.
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		// FULL fsyncs the WAL on every commit: a successful Append
		// survives power loss, which the ingest 2xx promises.
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walAutocheckpoint))
		// A commit of thousands of events dirties a few MB of pages;
		// with the default 2 MB cache SQLite spills them to the WAL in
		// the middle of the transaction, a write each.
		q.Add("_pragma", fmt.Sprintf("cache_size(%d)", -writerCacheKiB))
		// The savepoints (the write batcher's, Append's) journal the
		// pages they change; in memory rather than in a temporary file
		// that is a copy instead of a write each.
		q.Add("_pragma", "temp_store(MEMORY)")
		q.Set("_txlock", "immediate")
	}
	p := filepath.ToSlash(path)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // a Windows volume: file:///C:/dir/db
	}
	u := url.URL{Scheme: "file", Path: p, RawQuery: q.Encode()}
	return u.String()
}

// Close closes both connection pools.
func (s *SQLite) Close() error {
	var errs []error
	if s.writes != nil {
		s.writes.close()
	}
	if s.ckpt != nil {
		errs = append(errs, s.ckpt.close())
	}
	if s.insertEvent != nil {
		errs = append(errs, s.insertEvent.Close())
	}
	if s.read != nil {
		errs = append(errs, s.read.close())
	}
	if s.inWrite != nil {
		errs = append(errs, s.inWrite.close())
	}
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	if s.writer != nil {
		errs = append(errs, s.writer.Close())
	}
	return errors.Join(errs...)
}

// write runs fn in a write transaction and commits it when fn returns nil.
// Writes waiting at the same moment share a transaction and its fsync (see
// writeBatcher); fn runs in a savepoint of its own, so its failure rolls
// back its work alone.
func (s *SQLite) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.writes == nil {
		// Migrations and prepared statements, before the batcher starts.
		tx, err := s.writer.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	return s.writes.write(ctx, fn)
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE ||
		se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// notFound turns sql.ErrNoRows into an error wrapping ErrNotFound.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrNotFound)
	}
	return err
}

// toMs stores a time as Unix milliseconds; the zero time is stored as 0 so
// that "never" survives a round trip.
func toMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMs is the inverse of toMs; times come back in UTC.
func fromMs(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// now is the current time truncated to what the database keeps, so that
// values returned by a create equal those read back later.
func (s *SQLite) now() time.Time {
	if s.clock != nil {
		return s.clock().UTC().Truncate(time.Millisecond)
	}
	return now()
}

func now() time.Time {
	return time.Now().UTC().Truncate(time.Millisecond)
}

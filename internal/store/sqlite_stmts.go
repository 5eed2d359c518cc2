package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// maxCachedStmts bounds a stmtCache: the store's queries are a fixed set of
// texts, but a few are built per call (IN lists), and those must not grow
// the cache without end. Past the bound, a query is prepared for its call
// alone, as database/sql does without a cache.
const maxCachedStmts = 256

// stmtCache keeps one prepared statement per query text on a pool.
// database/sql prepares a *sql.Stmt again on each connection it first runs
// on and keeps it there, so a query run thousands of times a minute (a
// scan per object delivered, a token per request) is compiled once per
// connection instead of once per call: compiling was about a seventh of
// the agent's CPU with ten thousand small destinations. A statement's rows,
// once closed, reset it, so a cached statement holds no read snapshot
// between calls.
//
// The writer's cache is filled at open (prepare) and never lazily: its
// pool has one connection, which a write transaction holds while it asks
// for a statement, so preparing on the pool then would wait forever.
type stmtCache struct {
	db    *sql.DB
	lazy  bool // prepare a query the first time it is asked for
	mu    sync.RWMutex
	stmts map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB, lazy bool) *stmtCache {
	return &stmtCache{db: db, lazy: lazy, stmts: map[string]*sql.Stmt{}}
}

// prepare adds the queries to the cache.
func (c *stmtCache) prepare(ctx context.Context, queries ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range queries {
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("preparing %q: %w", q, err)
		}
		c.stmts[q] = st
	}
	return nil
}

// stmt is the cached statement for query, prepared on first use; nil when
// the cache is full or preparing failed (the caller then runs the query
// unprepared, which reports the error).
func (c *stmtCache) stmt(ctx context.Context, query string) *sql.Stmt {
	c.mu.RLock()
	st, ok := c.stmts[query]
	full := len(c.stmts) >= maxCachedStmts
	c.mu.RUnlock()
	if ok || full || !c.lazy {
		return st
	}
	// Prepared on the pool, not for the caller: its context ending must
	// not spoil the statement for the others. Outside the lock, so that
	// the other queries do not wait for a connection to be opened.
	st, err := c.db.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cached, ok := c.stmts[query]; ok {
		st.Close() // prepared meanwhile by another call
		return cached
	}
	c.stmts[query] = st
	return st
}

// QueryContext runs query through its cached statement.
func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.db.QueryContext(ctx, query, args...)
}

// QueryRowContext runs query through its cached statement.
func (c *stmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.db.QueryRowContext(ctx, query, args...)
}

// execIn runs query in tx, a transaction of c's pool, through its cached
// statement when there is one.
func (c *stmtCache) execIn(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if st := c.stmt(ctx, query); st != nil {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// queryRowIn runs query in tx, a transaction of c's pool, through its
// cached statement when there is one.
func (c *stmtCache) queryRowIn(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if st := c.stmt(ctx, query); st != nil {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// close closes the cached statements.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for q, st := range c.stmts {
		if err := st.Close(); err != nil && first == nil {
			first = err
		}
		delete(c.stmts, q)
	}
	return first
}

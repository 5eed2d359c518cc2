package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// maxWriteBatch bounds how many write transactions share one commit.
const maxWriteBatch = 128

// The statements around each write of a shared transaction.
const (
	savepointSQL  = `SAVEPOINT batch_write`
	rollbackToSQL = `ROLLBACK TO batch_write`
	releaseSQL    = `RELEASE batch_write`
)

// errStoreClosed answers a write made after Close.
var errStoreClosed = errors.New("store is closed")

// writeReq is one write transaction waiting for the writer connection.
type writeReq struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	done chan error
}

// writeBatcher gives the writer connection to one goroutine, which runs
// the write transactions that queue up while a commit is in flight as one
// transaction, each in its own savepoint, and commits them with one fsync.
// With synchronous=FULL a commit costs an fsync (milliseconds on most
// disks), so thousands of destinations saving and committing small plans
// at the same window end would otherwise queue for seconds behind each
// other; batched, they share the fsyncs. A write that fails is rolled back
// to its savepoint alone; the others commit. Each caller returns once its
// work is durable, as before.
type writeBatcher struct {
	db     *sql.DB
	stmts  *stmtCache // the writer's prepared statements
	reqs   chan *writeReq
	closed chan struct{}
	done   chan struct{}
	// committed is called after each successful commit (the checkpointer).
	committed func()
}

func startWriteBatcher(db *sql.DB, stmts *stmtCache, committed func()) *writeBatcher {
	b := &writeBatcher{db: db, stmts: stmts, reqs: make(chan *writeReq), closed: make(chan struct{}), done: make(chan struct{}), committed: committed}
	go b.run()
	return b
}

// write runs fn in a write transaction, shared with other writers waiting
// at the same moment, and returns once it is committed (or failed).
func (b *writeBatcher) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case b.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.closed:
		return errStoreClosed
	}
	// Wait even if ctx ends now: fn may be running, and the caller must
	// learn whether it was committed.
	return <-req.done
}

// close stops the batcher once the writes it took are done.
func (b *writeBatcher) close() {
	close(b.closed)
	<-b.done
}

func (b *writeBatcher) run() {
	defer close(b.done)
	for {
		var first *writeReq
		select {
		case first = <-b.reqs:
		case <-b.closed:
			return
		}
		batch := []*writeReq{first}
	more:
		for len(batch) < maxWriteBatch {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		if len(batch) == 1 {
			first.done <- b.single(first)
			continue
		}
		b.many(batch)
	}
}

// single runs one write alone, as a plain transaction.
func (b *writeBatcher) single(r *writeReq) error {
	tx, err := b.db.BeginTx(r.ctx, nil)
	if err != nil {
		return err
	}
	if err := r.fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	b.committed()
	return nil
}

// many runs the writes of batch in one transaction, each in a savepoint.
func (b *writeBatcher) many(batch []*writeReq) {
	// The transaction is the batch's, not any one caller's: a caller whose
	// context ends must not roll back the others' work.
	bg := context.Background()
	tx, err := b.db.BeginTx(bg, nil)
	if err != nil {
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	var applied []*writeReq
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		if _, err := b.stmts.execIn(bg, tx, savepointSQL); err != nil {
			b.abort(tx, applied, batch[i:], err)
			return
		}
		ferr := r.fn(tx)
		// ROLLBACK TO and RELEASE fail when SQLite already rolled the
		// whole transaction back (an interrupted statement, a full
		// disk): then nothing of the batch stands, and no later write
		// may run outside the transaction.
		if ferr != nil {
			if _, err := b.stmts.execIn(bg, tx, rollbackToSQL); err != nil {
				b.abort(tx, applied, batch[i:], fmt.Errorf("%w (and the shared transaction was lost: %w)", ferr, err))
				return
			}
		}
		if _, err := b.stmts.execIn(bg, tx, releaseSQL); err != nil {
			if ferr == nil {
				ferr = err
			}
			b.abort(tx, applied, batch[i:], ferr)
			return
		}
		if ferr != nil {
			r.done <- ferr
			continue
		}
		applied = append(applied, r)
	}
	err = tx.Commit()
	if err == nil && len(applied) > 0 {
		b.committed()
	}
	for _, r := range applied {
		r.done <- err
	}
}

// abort rolls the batch's transaction back and fails every write of it
// that was applied or not yet run.
func (b *writeBatcher) abort(tx *sql.Tx, applied, rest []*writeReq, err error) {
	tx.Rollback()
	for _, r := range applied {
		r.done <- err
	}
	for _, r := range rest {
		r.done <- err
	}
}

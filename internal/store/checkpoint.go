package store

import (
	"context"
	"database/sql"
	"time"
)

const (
	// checkpointInterval is the least time between two background
	// checkpoints: under load each one copies what the commits of the
	// interval wrote, instead of running once per commit.
	checkpointInterval = 100 * time.Millisecond

	// walAutocheckpoint is the WAL size, in pages, at which the committing
	// connection checkpoints by itself. The background checkpointer
	// normally keeps ahead of it, but a checkpoint that runs beside a
	// writer can never see the WAL fully copied, and only a fully copied
	// WAL is restarted from its beginning. This bound keeps the file from
	// growing without end under sustained load (about 32 MiB).
	walAutocheckpoint = 8192
)

// checkpointer copies committed WAL frames into the database file on its own
// connection. Without it the connection that commits does the copy and its
// fsyncs, adding them to the latency of the Append that crossed the
// threshold. A passive checkpoint neither waits for nor blocks readers and
// writers.
type checkpointer struct {
	db   *sql.DB
	wake chan struct{}
	stop context.CancelFunc
	done chan struct{}
}

func startCheckpointer(db *sql.DB) *checkpointer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{
		db:   db,
		wake: make(chan struct{}, 1),
		stop: cancel,
		done: make(chan struct{}),
	}
	go c.run(ctx)
	return c
}

// notify tells the checkpointer that a commit added frames. It never blocks:
// notifications arriving while one is pending are merged.
func (c *checkpointer) notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run(ctx context.Context) {
	defer close(c.done)
	pause := time.NewTimer(checkpointInterval)
	pause.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		// A failure is not worth reporting: the writer's own
		// autocheckpoint copies whatever is left.
		_, _ = c.db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)

		pause.Reset(checkpointInterval)
		select {
		case <-ctx.Done():
			return
		case <-pause.C:
		}
	}
}

// close stops the goroutine and closes its connection.
func (c *checkpointer) close() error {
	c.stop()
	<-c.done
	return c.db.Close()
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// Writes that share one transaction commit or fail each on their own: a
// failing write is rolled back to its savepoint, the others land, and each
// caller hears its own outcome.
func TestWriteBatchSavepoints(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	insert := func(name string, fail error) func(tx *sql.Tx) error {
		return func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO tenants (name, external_id, created_at) VALUES (?, 'x', 0)`, name); err != nil {
				return err
			}
			return fail
		}
	}
	boom := errors.New("boom")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		fn      func(tx *sql.Tx) error
		wantErr error
		stored  bool
	}{
		{"first ok", ctx, insert("a", nil), nil, true},
		{"fails after its insert", ctx, insert("b", boom), boom, false},
		{"ok after a failure", ctx, insert("c", nil), nil, true},
		{"context ended before it ran", cancelled, insert("d", nil), context.Canceled, false},
		{"constraint violation", ctx, insert("a", nil), nil, false}, // the unique name; wantErr checked below
		{"last ok", ctx, insert("e", nil), nil, true},
	}
	batch := make([]*writeReq, len(tests))
	for i, tt := range tests {
		batch[i] = &writeReq{ctx: tt.ctx, fn: tt.fn, done: make(chan error, 1)}
	}
	s.writes.many(batch)
	for i, tt := range tests {
		err := <-batch[i].done
		switch {
		case tt.name == "constraint violation":
			if !isUnique(err) {
				t.Errorf("%s: err = %v, want a unique violation", tt.name, err)
			}
		case !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil):
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		_, err := s.TenantByName(ctx, name)
		want := name == "a" || name == "c" || name == "e"
		if got := err == nil; got != want {
			t.Errorf("tenant %q stored = %v (err %v), want %v", name, got, err, want)
		}
	}
}

// Many concurrent writers, some of them refused: every caller gets its
// own answer and exactly the accepted writes are stored.
func TestWriteBatchConcurrent(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Every fifth name repeats the one before it.
			name := fmt.Sprintf("t%d", i-(i%5/4))
			_, errs[i] = s.CreateTenant(ctx, name, "x")
		})
	}
	wg.Wait()
	conflicts := 0
	for i, err := range errs {
		switch {
		case errors.Is(err, ErrConflict):
			conflicts++
		case err != nil:
			t.Errorf("write %d: %v", i, err)
		}
	}
	tenants, err := s.ListTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := n / 5; conflicts != want || len(tenants) != n-want {
		t.Fatalf("%d conflicts and %d tenants, want %d and %d", conflicts, len(tenants), want, n-want)
	}
}

package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/clock/clocktest"
	"github.com/auditexport/auditexport/internal/store"
)

func TestExpiredRangeSQLite(t *testing.T) {
	testExpiredRange(t, func(now func() time.Time) store.Store {
		s, err := store.Open(context.Background(), store.Config{SQLitePath: filepath.Join(t.TempDir(), "db"), Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestExpiredRangePostgres(t *testing.T) {
	url := pg.Get(t).NewDatabase(t)
	testExpiredRange(t, func(now func() time.Time) store.Store {
		return openPostgres(t, url, store.WithClock(now))
	})
}

// testExpiredRange stores events at three times and checks the range
// retention may delete from as the cutoff moves, and after deletes.
func testExpiredRange(t *testing.T, open func(now func() time.Time) store.Store) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	clk := clocktest.NewFake(t0)
	s := open(clk.Now)
	ctx := context.Background()
	tn, err := s.CreateTenant(ctx, "a", "ext")
	if err != nil {
		t.Fatal(err)
	}
	if first, last, err := s.ExpiredRange(ctx, tn.ID, t0.Add(time.Hour)); err != nil || first != 0 || last != 0 {
		t.Fatalf("ExpiredRange on an empty log = %d, %d, %v; want 0, 0", first, last, err)
	}
	// Seqs 1-3 at t0, 4-5 at t0+1h, 6 at t0+2h.
	for i, at := range []time.Duration{0, 0, 0, time.Hour, time.Hour, 2 * time.Hour} {
		clk.Set(t0.Add(at))
		id := fmt.Sprintf("m%d", i)
		ev := store.Event{MessageID: id, EventName: "x", TimeMs: int64(i), Body: []byte(`{}`)}
		if _, err := s.Append(ctx, []store.AppendBatch{{TenantID: tn.ID, Events: []store.Event{ev}}}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name        string
		deleteUpTo  int64 // seqs deleted before the lookup, 0 for none
		before      time.Duration
		first, last int64
	}{
		{"nothing older", 0, 0, 0, 0},
		{"first batch", 0, time.Minute, 1, 3},
		{"exactly at the second", 0, time.Hour, 1, 3},
		{"two batches", 0, time.Hour + time.Millisecond, 1, 5},
		{"everything", 0, 3 * time.Hour, 1, 6},
		{"after deleting two", 2, time.Hour + time.Millisecond, 3, 5},
		{"after deleting the expired", 5, time.Hour + time.Millisecond, 0, 0},
	}
	for _, tt := range tests {
		if tt.deleteUpTo > 0 {
			if _, err := s.DeleteEvents(ctx, tn.ID, tt.deleteUpTo, t0.Add(24*time.Hour), 100); err != nil {
				t.Fatal(err)
			}
		}
		first, last, err := s.ExpiredRange(ctx, tn.ID, t0.Add(tt.before))
		if err != nil || first != tt.first || last != tt.last {
			t.Errorf("%s: ExpiredRange = %d, %d, %v; want %d, %d", tt.name, first, last, err, tt.first, tt.last)
		}
	}
}

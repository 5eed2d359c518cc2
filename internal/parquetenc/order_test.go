package parquetenc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestRowsSortedAcrossObject writes events whose times are out of order
// the way concurrent senders' are (neighbours swapped, and now and then
// one seconds late) in small row groups, starting the next object at each
// ErrTimeOrder as delivery does, and reads every object back with DuckDB:
// each object is sorted by time across all its row groups, not only within
// each, and together they hold every event once.
func TestRowsSortedAcrossObject(t *testing.T) {
	const n = 6000
	base := int64(1764064800000)
	events := make([]RawEvent, n)
	for i := range events {
		ts := base + int64(i^1)*7 // neighbours swapped
		if i%1500 == 700 {
			ts -= 10_000 // a straggler, older than rows already written
		}
		events[i] = RawEvent{Time: ts, Name: "user.login", MessageID: fmt.Sprintf("m-%d", i), Seq: int64(i + 1),
			JSON: fmt.Appendf(nil, `{"timestamp":%d,"eventName":"user.login","messageId":"m-%d","pad":"%0300d"}`, ts, i, i)}
	}
	paths := writeObjects(t, events, Options{RowGroupBytes: 64 << 10})
	cuts := len(paths) - 1
	if cuts == 0 {
		t.Fatal("no event was older than a written row group: the test proves nothing")
	}
	checkSortedObjects(t, paths, n)

	q := map[string]string{}
	for i, p := range paths {
		q[fmt.Sprintf("groups %d", i)] = fmt.Sprintf("SELECT count(DISTINCT row_group_id) AS n FROM parquet_metadata('%s')", p)
	}
	res := duckdb(t, q)
	multi := 0
	for i := range paths {
		if num(t, res[fmt.Sprintf("groups %d", i)][0]["n"]) > 1 {
			multi++
		}
	}
	if multi == 0 {
		t.Errorf("no object spans several row groups (%d objects)", len(paths))
	}
	t.Logf("%d events in %d objects (%d cut at an older event, %d spanning several row groups)", n, len(paths), cuts, multi)
}

// TestBudgetSharedByWriters writes a stream of events of several classes
// into one writer per class under one budget: the rows they buffer
// together stay within the budget (plus one row), however many writers,
// and every event is written.
func TestBudgetSharedByWriters(t *testing.T) {
	m := testMapper(t)
	const limit = 256 << 10
	budget := NewBudget(limit)
	ws := map[int32]*Writer{}
	outs := map[int32]*countingWriter{}
	var maxRow, peak int64
	for i, raw := range sampleEvents(4000, 3) {
		ev, err := m.Map(raw, int64(i))
		if err != nil {
			t.Fatal(err)
		}
		w := ws[ev.ClassUID]
		if w == nil || !w.Fits(ev.Time) {
			if w != nil {
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			out := &countingWriter{w: discard{}}
			if w, err = NewOCSFWriter(out, m, ev.ClassUID, Options{Budget: budget}); err != nil {
				t.Fatal(err)
			}
			ws[ev.ClassUID], outs[ev.ClassUID] = w, out
		}
		before := budget.Buffered()
		if err := w.WriteOCSF(&ev); err != nil {
			t.Fatal(err)
		}
		maxRow = max(maxRow, w.Buffered()-before)
		peak = max(peak, budget.Buffered())
	}
	if len(ws) < 3 {
		t.Fatalf("%d classes: the test needs several writers", len(ws))
	}
	if peak > limit+maxRow {
		t.Errorf("writers buffered %d bytes together, budget %d", peak, limit)
	}
	if peak < limit/2 {
		t.Errorf("peak %d bytes: the budget was never approached, the test proves nothing", peak)
	}
	for uid, w := range ws {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if outs[uid].n == 0 {
			t.Errorf("class %d: nothing written", uid)
		}
	}
	if budget.Buffered() != 0 {
		t.Errorf("%d bytes still on the budget after every writer closed", budget.Buffered())
	}
}

// TestCarryUnderJitter writes events whose times jitter the way a batch
// of concurrent senders' do (each up to two seconds behind the newest
// before it) plus one straggler a minute late, in row groups of 1 MiB, and
// starts the next object at each ErrTimeOrder as delivery does. Keeping
// the newest rows pending (Carry) keeps the jittered stream in one object,
// cut only at the straggler; without it the stream breaks at nearly every
// row group. DuckDB reads every object back: sorted by time across its row
// groups, every event once.
func TestCarryUnderJitter(t *testing.T) {
	const n = 20000
	base := int64(1764064800000)
	events := make([]RawEvent, n)
	for i := range events {
		// Times 10 ms apart, each up to 2 s early: an event is at most 2 s
		// (200 events, ~100 KiB) behind the newest written before it.
		ts := base + int64(i)*10 - int64((i*7919)%2000)
		if i == n/2 {
			ts -= 60_000 // real disorder: older than anything kept back
		}
		events[i] = RawEvent{Time: ts, Name: "user.login", MessageID: fmt.Sprintf("m-%d", i), Seq: int64(i + 1),
			JSON: fmt.Appendf(nil, `{"timestamp":%d,"eventName":"user.login","messageId":"m-%d","pad":"%0400d"}`, ts, i, i)}
	}
	tests := []struct {
		name       string
		carry      time.Duration
		maxObjects int // at most
		minObjects int // at least
	}{
		{"default carry", 0, 2, 2},
		{"no carry", -1, n, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paths := writeObjects(t, events, Options{RowGroupBytes: 1 << 20, Carry: tt.carry})
			if len(paths) < tt.minObjects || len(paths) > tt.maxObjects {
				t.Errorf("%d objects, want %d to %d", len(paths), tt.minObjects, tt.maxObjects)
			}
			checkSortedObjects(t, paths, n)
		})
	}
}

// writeObjects writes events into objects in a temporary folder, the next
// object starting at each ErrTimeOrder (which Fits must have foretold), and
// returns their paths.
func writeObjects(t *testing.T, events []RawEvent, opt Options) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	var f *os.File
	var w *Writer
	closeObject := func() {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	open := func() {
		var err error
		path := filepath.Join(dir, fmt.Sprintf("%d.parquet", len(paths)))
		if f, err = os.Create(path); err != nil {
			t.Fatal(err)
		}
		if w, err = NewRawWriter(f, opt); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	open()
	for _, ev := range events {
		err := w.WriteRaw(ev)
		if errors.Is(err, ErrTimeOrder) {
			if w.Fits(ev.Time) {
				t.Fatalf("event %d: ErrTimeOrder, yet Fits", ev.Seq)
			}
			closeObject()
			open()
			err = w.WriteRaw(ev)
		}
		if err != nil {
			t.Fatalf("event %d: %v", ev.Seq, err)
		}
	}
	closeObject()
	return paths
}

// checkSortedObjects reads the objects with DuckDB: each is sorted by time
// across its row groups, and together they hold the n events once.
func checkSortedObjects(t *testing.T, paths []string, n int) {
	t.Helper()
	q := map[string]string{}
	for i, p := range paths {
		q[fmt.Sprintf("rows %d", i)] = fmt.Sprintf("SELECT seq, epoch_ms(time) AS ms FROM read_parquet('%s', file_row_number = true) ORDER BY file_row_number", p)
		q[fmt.Sprintf("groups %d", i)] = fmt.Sprintf("SELECT count(DISTINCT row_group_id) AS n FROM parquet_metadata('%s')", p)
	}
	res := duckdb(t, q)
	seen := map[int64]int{}
	for i := range paths {
		var times []int64
		for _, r := range res[fmt.Sprintf("rows %d", i)] {
			seen[num(t, r["seq"])]++
			times = append(times, num(t, r["ms"]))
		}
		if !slices.IsSorted(times) {
			t.Errorf("object %d of %d rows is not sorted by time", i, len(times))
		}
		t.Logf("object %d: %d rows in %d row groups", i, len(times), num(t, res[fmt.Sprintf("groups %d", i)][0]["n"]))
	}
	if len(seen) != n {
		t.Errorf("%d distinct events read back, %d written", len(seen), n)
	}
	for seq, c := range seen {
		if c != 1 {
			t.Errorf("event %d read %d times", seq, c)
		}
	}
}

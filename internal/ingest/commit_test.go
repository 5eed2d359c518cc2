package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/store"
)

// fakeStore implements only Append. Like the real store it assigns per-tenant
// sequence numbers and drops repeated message ids, and it stores nothing when
// a call fails.
type fakeStore struct {
	store.Store

	mu      sync.Mutex
	calls   [][]int // events per batch, for each Append call
	hold    chan struct{}
	fail    map[int]error // call index -> error
	short   map[int]bool  // call index -> return one result too few
	head    map[int64]int64
	ids     map[int64]map[string]bool
	seqToID map[int64]map[int64]string
	entered chan struct{}
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		fail:    map[int]error{},
		short:   map[int]bool{},
		head:    map[int64]int64{},
		ids:     map[int64]map[string]bool{},
		seqToID: map[int64]map[int64]string{},
		entered: make(chan struct{}, 100),
	}
}

// holdFirst makes the first Append wait until release is called, so that
// the test can queue requests behind it.
func (f *fakeStore) holdFirst() (release func()) {
	f.hold = make(chan struct{})
	return func() { close(f.hold) }
}

func (f *fakeStore) Append(_ context.Context, batches []store.AppendBatch) ([]store.AppendResult, error) {
	f.mu.Lock()
	call := len(f.calls)
	sizes := make([]int, len(batches))
	for i, b := range batches {
		sizes[i] = len(b.Events)
	}
	f.calls = append(f.calls, sizes)
	f.mu.Unlock()

	f.entered <- struct{}{}
	if call == 0 && f.hold != nil {
		<-f.hold
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail[call]; err != nil {
		return nil, err
	}
	results := make([]store.AppendResult, 0, len(batches))
	for _, b := range batches {
		results = append(results, f.append(b))
	}
	if f.short[call] {
		results = results[1:]
	}
	return results, nil
}

func (f *fakeStore) append(b store.AppendBatch) store.AppendResult {
	if f.ids[b.TenantID] == nil {
		f.ids[b.TenantID] = map[string]bool{}
		f.seqToID[b.TenantID] = map[int64]string{}
	}
	var res store.AppendResult
	for _, ev := range b.Events {
		if f.ids[b.TenantID][ev.MessageID] {
			res.Duplicates++
			continue
		}
		f.ids[b.TenantID][ev.MessageID] = true
		f.head[b.TenantID]++
		seq := f.head[b.TenantID]
		f.seqToID[b.TenantID][seq] = ev.MessageID
		if res.FirstSeq == 0 {
			res.FirstSeq = seq
		}
		res.LastSeq = seq
		res.Stored++
	}
	return res
}

func (f *fakeStore) callSizes() [][]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]int(nil), f.calls...)
}

func (f *fakeStore) stored(tenant int64, id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ids[tenant][id]
}

func (f *fakeStore) idAt(tenant, seq int64) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seqToID[tenant][seq]
}

// pending is the number of queued requests.
func (c *Committer) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// batch returns a batch of n events whose message ids start with prefix.
func batch(tenant int64, prefix string, n int) store.AppendBatch {
	b := store.AppendBatch{TenantID: tenant}
	for k := 0; k < n; k++ {
		b.Events = append(b.Events, store.Event{
			MessageID: fmt.Sprintf("%s-%d", prefix, k),
			EventName: "e",
			TimeMs:    nowMs,
			Body:      []byte(`{}`),
		})
	}
	return b
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // a hang guard, not a budget
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitEntered waits for an Append call to begin.
func (f *fakeStore) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-f.entered:
	case <-time.After(time.Minute):
		t.Fatal("timed out waiting for Append")
	}
}

type outcome struct {
	res store.AppendResult
	err error
}

// submitAsync submits b in a goroutine; the result arrives on the channel.
func submitAsync(ctx context.Context, c *Committer, b store.AppendBatch) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		res, err := c.Submit(ctx, b)
		ch <- outcome{res, err}
	}()
	return ch
}

func receive(t *testing.T, ch <-chan outcome) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(time.Minute):
		t.Fatal("timed out waiting for Submit")
		return outcome{}
	}
}

func TestCommitterGroups(t *testing.T) {
	fs := newFakeStore()
	release := fs.holdFirst()
	c := NewCommitter(fs, CommitterOptions{MaxBatchEvents: 10000}, nil)
	c.Start()
	defer c.Close()

	const n = 50
	outs := make([]<-chan outcome, n)
	batches := make([]store.AppendBatch, n)
	for i := range batches {
		batches[i] = batch(int64(i%3+1), fmt.Sprintf("s%d", i), i+1)
	}
	outs[0] = submitAsync(context.Background(), c, batches[0])
	fs.waitEntered(t)
	for i := 1; i < n; i++ {
		outs[i] = submitAsync(context.Background(), c, batches[i])
	}
	waitFor(t, "requests to queue", func() bool { return c.pending() == n-1 })
	release()

	for i := range outs {
		o := receive(t, outs[i])
		if o.err != nil {
			t.Fatalf("submit %d: %v", i, o.err)
		}
		want := i + 1
		if o.res.Stored != want || o.res.Duplicates != 0 || int(o.res.LastSeq-o.res.FirstSeq+1) != want {
			t.Errorf("submit %d: got %+v, want %d stored in one range", i, o.res, want)
		}
		// The result's range must hold this request's own events.
		tenant := batches[i].TenantID
		for seq := o.res.FirstSeq; seq <= o.res.LastSeq; seq++ {
			id := fs.idAt(tenant, seq)
			if !strings.HasPrefix(id, fmt.Sprintf("s%d-", i)) {
				t.Errorf("submit %d: seq %d of tenant %d holds %q", i, seq, tenant, id)
			}
		}
	}
	calls := fs.callSizes()
	if len(calls) != 2 || len(calls[0]) != 1 || len(calls[1]) != n-1 {
		t.Errorf("got Append calls with %v batches, want [1] then %d in one call", calls, n-1)
	}
}

func TestCommitterBatchLimit(t *testing.T) {
	fs := newFakeStore()
	release := fs.holdFirst()
	var mu sync.Mutex
	var committed []int
	c := NewCommitter(fs, CommitterOptions{MaxBatchEvents: 7, Committed: func(n int) {
		mu.Lock()
		defer mu.Unlock()
		committed = append(committed, n)
	}}, nil)
	c.Start()
	defer c.Close()

	first := submitAsync(context.Background(), c, batch(1, "first", 1))
	fs.waitEntered(t)
	sizes := []int{3, 3, 3, 10, 1}
	var outs []<-chan outcome
	for i, size := range sizes {
		outs = append(outs, submitAsync(context.Background(), c, batch(1, fmt.Sprintf("q%d", i), size)))
		// One at a time, so the queue order is known.
		waitFor(t, "request to queue", func() bool { return c.pending() == i+1 })
	}
	release()
	receive(t, first)
	for _, ch := range outs {
		if o := receive(t, ch); o.err != nil {
			t.Fatal(o.err)
		}
	}
	got := fmt.Sprint(fs.callSizes())
	// [3 3] fills the batch, the 10-event request goes alone and unsplit.
	want := "[[1] [3 3] [3] [10] [1]]"
	if got != want {
		t.Errorf("Append calls %s, want %s", got, want)
	}
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(committed) != "[1 6 3 10 1]" {
		t.Errorf("Committed saw %v, want [1 6 3 10 1]", committed)
	}
}

func TestCommitterErrors(t *testing.T) {
	errDisk := errors.New("disk full")
	cases := []struct {
		name  string
		fail  error
		short bool
		want  string
	}{
		{name: "store error", fail: errDisk, want: "disk full"},
		{name: "result count mismatch", short: true, want: "store returned 2 results for 3 batches"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeStore()
			release := fs.holdFirst()
			fs.fail[1] = tc.fail
			fs.short[1] = tc.short
			c := NewCommitter(fs, CommitterOptions{}, nil)
			c.Start()
			defer c.Close()

			first := submitAsync(context.Background(), c, batch(1, "first", 1))
			fs.waitEntered(t)
			var outs []<-chan outcome
			for i := 0; i < 3; i++ {
				outs = append(outs, submitAsync(context.Background(), c, batch(1, fmt.Sprintf("g%d", i), 2)))
			}
			waitFor(t, "requests to queue", func() bool { return c.pending() == 3 })
			release()

			if o := receive(t, first); o.err != nil {
				t.Fatalf("first commit: %v", o.err)
			}
			for i, ch := range outs {
				o := receive(t, ch)
				if o.err == nil || !strings.Contains(o.err.Error(), tc.want) {
					t.Errorf("submit %d: got %v, want %q", i, o.err, tc.want)
				}
				if tc.fail != nil && !errors.Is(o.err, tc.fail) {
					t.Errorf("submit %d: %v does not wrap the store's error", i, o.err)
				}
			}
			if tc.fail != nil && fs.stored(1, "g0-0") {
				t.Error("a failed commit stored events")
			}

			// The committer keeps going after a failure.
			if _, err := c.Submit(context.Background(), batch(1, "after", 1)); err != nil {
				t.Errorf("submit after failure: %v", err)
			}
		})
	}
}

func TestCommitterCloseDrains(t *testing.T) {
	fs := newFakeStore()
	release := fs.holdFirst()
	c := NewCommitter(fs, CommitterOptions{}, nil)
	c.Start()

	outs := []<-chan outcome{submitAsync(context.Background(), c, batch(1, "r0", 1))}
	fs.waitEntered(t)
	for i := 1; i < 6; i++ {
		outs = append(outs, submitAsync(context.Background(), c, batch(1, fmt.Sprintf("r%d", i), 1)))
	}
	waitFor(t, "requests to queue", func() bool { return c.pending() == 5 })

	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	waitFor(t, "Close to begin", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.closed
	})
	if _, err := c.Submit(context.Background(), batch(1, "late", 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("submit while closing: got %v, want ErrClosed", err)
	}
	select {
	case <-closed:
		t.Fatal("Close returned before the queued requests were committed")
	default:
	}
	release()
	<-closed

	// Everything queued is durable once Close returns.
	for i := range outs {
		if id := fmt.Sprintf("r%d-0", i); !fs.stored(1, id) {
			t.Errorf("%s not stored when Close returned", id)
		}
	}
	for i, ch := range outs {
		if o := receive(t, ch); o.err != nil || o.res.Stored != 1 {
			t.Errorf("submit %d: got %+v, %v", i, o.res, o.err)
		}
	}
	if fs.stored(1, "late-0") {
		t.Error("a request refused by Submit was stored")
	}
}

func TestCommitterSubmitAfterClose(t *testing.T) {
	fs := newFakeStore()
	c := NewCommitter(fs, CommitterOptions{}, nil)
	c.Start()
	c.Close()
	c.Close() // a second Close is harmless
	if _, err := c.Submit(context.Background(), batch(1, "x", 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("got %v, want ErrClosed", err)
	}
	if n := len(fs.callSizes()); n != 0 {
		t.Errorf("got %d Append calls, want none", n)
	}
}

func TestCommitterCloseWithoutStart(t *testing.T) {
	fs := newFakeStore()
	c := NewCommitter(fs, CommitterOptions{}, nil)
	out := submitAsync(context.Background(), c, batch(1, "x", 2))
	waitFor(t, "request to queue", func() bool { return c.pending() == 1 })
	c.Close()
	if o := receive(t, out); o.err != nil || o.res.Stored != 2 {
		t.Errorf("got %+v, %v; want 2 stored", o.res, o.err)
	}
}

func TestCommitterContext(t *testing.T) {
	fs := newFakeStore()
	release := fs.holdFirst()
	c := NewCommitter(fs, CommitterOptions{}, nil)
	c.Start()

	first := submitAsync(context.Background(), c, batch(1, "first", 1))
	fs.waitEntered(t)

	// A request whose client gives up while queued is still committed.
	ctx, cancel := context.WithCancel(context.Background())
	waiting := submitAsync(ctx, c, batch(1, "gaveup", 1))
	waitFor(t, "request to queue", func() bool { return c.pending() == 1 })
	cancel()
	if o := receive(t, waiting); !errors.Is(o.err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", o.err)
	}

	// A request whose context has already ended is not queued at all.
	if _, err := c.Submit(ctx, batch(1, "never", 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if n := c.pending(); n != 1 {
		t.Errorf("got %d queued requests, want 1", n)
	}

	release()
	receive(t, first)
	c.Close()
	if !fs.stored(1, "gaveup-0") {
		t.Error("the abandoned request was not committed")
	}
	if fs.stored(1, "never-0") {
		t.Error("a request with an ended context was committed")
	}
}

func TestCommitterMaxWait(t *testing.T) {
	t.Run("full batch ends the wait", func(t *testing.T) {
		fs := newFakeStore()
		// The wait would outlast the test: only a full batch can end it.
		c := NewCommitter(fs, CommitterOptions{MaxBatchEvents: 4, MaxWait: time.Hour}, nil)
		c.Start()
		defer c.Close()
		var outs []<-chan outcome
		for i := 0; i < 4; i++ {
			outs = append(outs, submitAsync(context.Background(), c, batch(1, fmt.Sprintf("w%d", i), 1)))
		}
		for _, ch := range outs {
			if o := receive(t, ch); o.err != nil {
				t.Fatal(o.err)
			}
		}
		if got := fmt.Sprint(fs.callSizes()); got != "[[1 1 1 1]]" {
			t.Errorf("Append calls %s, want one call of 4 batches", got)
		}
	})
	t.Run("close ends the wait", func(t *testing.T) {
		fs := newFakeStore()
		c := NewCommitter(fs, CommitterOptions{MaxBatchEvents: 4, MaxWait: time.Hour}, nil)
		c.Start()
		out := submitAsync(context.Background(), c, batch(1, "w", 1))
		waitFor(t, "request to queue", func() bool { return c.pending() == 1 })
		c.Close()
		if o := receive(t, out); o.err != nil || o.res.Stored != 1 {
			t.Errorf("got %+v, %v; want 1 stored", o.res, o.err)
		}
	})
	t.Run("timer ends the wait", func(t *testing.T) {
		fs := newFakeStore()
		c := NewCommitter(fs, CommitterOptions{MaxBatchEvents: 4, MaxWait: 20 * time.Millisecond}, nil)
		c.Start()
		defer c.Close()
		if _, err := c.Submit(context.Background(), batch(1, "w", 1)); err != nil {
			t.Fatal(err)
		}
	})
}

// With Concurrency 2 a second commit starts while the first is still in the
// store, and Close still drains and returns with several loops.
func TestCommitterConcurrency(t *testing.T) {
	fs := newFakeStore()
	release := fs.holdFirst()
	c := NewCommitter(fs, CommitterOptions{Concurrency: 2}, nil)
	c.Start()

	first := submitAsync(context.Background(), c, batch(1, "a", 3))
	fs.waitEntered(t)
	second := submitAsync(context.Background(), c, batch(2, "b", 2))
	fs.waitEntered(t) // would time out with one loop: the first call is held
	if o := receive(t, second); o.err != nil || o.res.Stored != 2 {
		t.Fatalf("second submit while the first is held: %+v", o)
	}
	release()
	if o := receive(t, first); o.err != nil || o.res.Stored != 3 {
		t.Fatalf("first submit: %+v", o)
	}
	queued := submitAsync(context.Background(), c, batch(1, "c", 1))
	c.Close()
	if o := receive(t, queued); o.err != nil && !errors.Is(o.err, ErrClosed) {
		t.Fatalf("submit racing Close: %+v", o)
	}
	if calls := fs.callSizes(); len(calls) < 2 {
		t.Errorf("Append calls = %v, want the two concurrent ones", calls)
	}
}

// A tenant being committed by one loop is not committed by another at the
// same time (its commit would only wait on the tenant's head lock): its
// next requests wait and go together into one later commit, while another
// tenant's request is committed at once by the idle loop.
func TestCommitterKeepsATenantToOneLoop(t *testing.T) {
	fs := newFakeStore()
	release := fs.holdFirst()
	c := NewCommitter(fs, CommitterOptions{Concurrency: 2}, nil)
	c.Start()
	defer c.Close()

	first := submitAsync(context.Background(), c, batch(1, "a", 1))
	fs.waitEntered(t)
	same := []<-chan outcome{submitAsync(context.Background(), c, batch(1, "b", 2)), submitAsync(context.Background(), c, batch(1, "c", 3))}
	waitFor(t, "tenant 1's requests to queue", func() bool { return c.pending() == 2 })
	other := submitAsync(context.Background(), c, batch(2, "d", 4))
	if o := receive(t, other); o.err != nil || o.res.Stored != 4 {
		t.Fatalf("tenant 2 while tenant 1 is committing: %+v", o)
	}
	if c.pending() != 2 {
		t.Fatalf("%d requests queued, want tenant 1's two still waiting", c.pending())
	}
	release()
	for _, ch := range append(same, first) {
		if o := receive(t, ch); o.err != nil {
			t.Fatal(o.err)
		}
	}
	if calls := fs.callSizes(); len(calls) != 3 || len(calls[2]) != 2 {
		t.Errorf("Append calls = %v, want [1], [4], then tenant 1's two requests together", calls)
	}
}

// With ShareTenants a second loop commits the tenant's next request while
// the first loop's commit of the same tenant is still in the store.
func TestCommitterSharesTenants(t *testing.T) {
	fs := newFakeStore()
	release := fs.holdFirst()
	c := NewCommitter(fs, CommitterOptions{Concurrency: 2, ShareTenants: true}, nil)
	c.Start()
	defer c.Close()

	first := submitAsync(context.Background(), c, batch(1, "a", 1))
	fs.waitEntered(t)
	if o := receive(t, submitAsync(context.Background(), c, batch(1, "b", 2))); o.err != nil || o.res.Stored != 2 {
		t.Fatalf("tenant 1's second request while its first is committing: %+v", o)
	}
	release()
	if o := receive(t, first); o.err != nil {
		t.Fatal(o.err)
	}
	if calls := fs.callSizes(); len(calls) != 2 {
		t.Errorf("Append calls = %v, want one per request", calls)
	}
}

package store

import (
	"fmt"
	"testing"
)

// TestAppendLargeBatches runs Append over batches that span several of its
// multi-row statements, with duplicates (of stored events and within the
// batch) on either side of the chunk boundaries: every fresh event gets the
// next sequence number, in order, and no duplicate uses one.
func TestAppendLargeBatches(t *testing.T) {
	tests := []struct {
		name string
		// size is the batch; stored are the ids (0..size-1) already
		// stored by an earlier call; repeat are positions whose event is
		// sent twice in the batch, the copy right after the original.
		size   int
		stored []int
		repeat []int
	}{
		{name: "one chunk less one", size: appendChunk - 1},
		{name: "exactly one chunk", size: appendChunk},
		{name: "one chunk and one", size: appendChunk + 1, stored: []int{appendChunk}},
		{name: "a thousand with duplicates", size: 1000,
			stored: []int{0, 1, 255, 256, 257, 511, 999}, repeat: []int{2, 254, 255, 600, 998}},
		{name: "all already stored", size: 300, stored: seqRange(300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t)
			tn := mustTenant(t, s, "t")
			event := func(i int) Event { return ev(fmt.Sprintf("m-%04d", i), "login", int64(1000+i)) }

			var earlier []Event
			for _, i := range tt.stored {
				earlier = append(earlier, event(i))
			}
			if len(earlier) > 0 {
				mustAppend(t, s, AppendBatch{TenantID: tn.ID, Events: earlier})
			}
			isStored := map[int]bool{}
			for _, i := range tt.stored {
				isStored[i] = true
			}
			isRepeated := map[int]bool{}
			for _, i := range tt.repeat {
				isRepeated[i] = true
			}

			var batch []Event
			wantIDs := []string{}
			for _, e := range earlier {
				wantIDs = append(wantIDs, e.MessageID)
			}
			wantDups := 0
			for i := range tt.size {
				batch = append(batch, event(i))
				if isRepeated[i] {
					batch = append(batch, event(i))
					wantDups++
				}
				if isStored[i] {
					wantDups++
					continue
				}
				wantIDs = append(wantIDs, event(i).MessageID)
			}

			got := mustAppend(t, s, AppendBatch{TenantID: tn.ID, Events: batch})[0]
			fresh := len(wantIDs) - len(earlier)
			want := AppendResult{Stored: fresh, Duplicates: wantDups}
			if fresh > 0 {
				want.FirstSeq, want.LastSeq = int64(len(earlier)+1), int64(len(wantIDs))
			}
			if got != want {
				t.Errorf("Append = %+v, want %+v", got, want)
			}
			rows := allEvents(t, s, tn.ID)
			if len(rows) != len(wantIDs) {
				t.Fatalf("%d events stored, want %d", len(rows), len(wantIDs))
			}
			for i, r := range rows {
				if r.Seq != int64(i+1) || r.MessageID != wantIDs[i] {
					t.Fatalf("event %d is seq %d id %s, want seq %d id %s", i, r.Seq, r.MessageID, i+1, wantIDs[i])
				}
			}
		})
	}
}

func seqRange(n int) []int {
	r := make([]int, n)
	for i := range r {
		r[i] = i
	}
	return r
}

func TestChunkSize(t *testing.T) {
	tests := []struct{ n, want int }{
		{1, 1}, {2, 2}, {3, 2}, {7, 4}, {8, 8}, {255, 128}, {256, 256}, {1000, 256},
	}
	for _, tt := range tests {
		if got := chunkSize(tt.n); got != tt.want {
			t.Errorf("chunkSize(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

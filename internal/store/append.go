package store

import "slices"

// The engines' Append share these steps: the call's events grouped by tenant
// without the call's own repeats (planAppend), numbered from the locked heads
// once the engine found which are new (numberEvents), then encoded into
// chunks (buildChunks, chunk.go).

// tenantHead is a locked head row.
type tenantHead struct{ head, receivedMs int64 }

// headMoves are the heads to move and the commit marks to add, a column
// each (see pgMoveHeadsSQL).
type headMoves struct{ tenants, first, last, received []int64 }

// numberEvents gives each new event its sequence number and received time
// (tp.seqs, tp.receivedMs), fills results, and returns the heads to move.
// received_ms never goes below the last commit's, so that it does not
// decrease along the sequence (see LastSeqBefore).
func numberEvents(plans []*tenantAppend, heads map[int64]tenantHead, stored [][]bool, now int64, results []AppendResult) headMoves {
	var m headMoves
	for i, tp := range plans {
		h := heads[tp.tenantID]
		tp.receivedMs = max(h.receivedMs, now)
		tp.seqs = make([]int64, len(tp.messageIDs))
		first := h.head + 1
		for j, isNew := range stored[i] {
			if !isNew {
				continue
			}
			h.head++
			tp.seqs[j] = h.head
			r := &results[tp.refs[j].batch]
			if r.Stored == 0 {
				r.FirstSeq = h.head
			}
			r.LastSeq = h.head
			r.Stored++
		}
		if h.head >= first {
			m.tenants = append(m.tenants, tp.tenantID)
			m.first = append(m.first, first)
			m.last = append(m.last, h.head)
			m.received = append(m.received, tp.receivedMs)
		}
	}
	return m
}

// tenantAppend is the part of an Append call for one tenant: its events
// without repeats, column by column.
type tenantAppend struct {
	tenantID   int64
	refs       []eventRef // refs[j] is the batch event j came from
	messageIDs []string
	names      []string
	times      []int64
	bodies     [][]byte
	seqs       []int64 // set by numberEvents; 0 for a duplicate
	receivedMs int64
}

type eventRef struct{ batch int }

// planAppend groups the calls' events by tenant (in tenant id order) and
// drops the repeats inside the call, which count as duplicates: the first
// copy, in batch and event order, is the one stored.
func planAppend(batches []AppendBatch) []*tenantAppend {
	byTenant := make(map[int64]*tenantAppend)
	type key struct {
		tenant int64
		timeMs int64
		id     string
	}
	seen := make(map[key]bool)
	for i, b := range batches {
		tp := byTenant[b.TenantID]
		if tp == nil {
			tp = &tenantAppend{tenantID: b.TenantID}
			byTenant[b.TenantID] = tp
		}
		for _, ev := range b.Events {
			k := key{b.TenantID, ev.TimeMs, ev.MessageID}
			if seen[k] {
				continue
			}
			seen[k] = true
			tp.refs = append(tp.refs, eventRef{batch: i})
			tp.messageIDs = append(tp.messageIDs, ev.MessageID)
			tp.names = append(tp.names, ev.EventName)
			tp.times = append(tp.times, ev.TimeMs)
			tp.bodies = append(tp.bodies, nonNil(ev.Body))
		}
	}
	plans := make([]*tenantAppend, 0, len(byTenant))
	for _, tp := range byTenant {
		plans = append(plans, tp)
	}
	slices.SortFunc(plans, func(a, b *tenantAppend) int { return compareInt64(a.tenantID, b.tenantID) })
	return plans
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

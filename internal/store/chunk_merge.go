package store

import (
	"container/heap"
	"slices"
)

// A group of several event names (Group.Names) is read from every name's
// chunks at once. The chunks of one commit overlap in sequence, one per
// name, so their events are merged: chunks come in first_seq order, and an
// event is passed on once no chunk still to come can hold an earlier one,
// that is once the next chunk starts after it. The chunks held at a time
// are those overlapping one point of the sequence: at most one per name of
// one commit, whatever the group's size.

// mergeScan passes the events of a mixed group to fn in sequence order.
type mergeScan struct {
	g          Group
	start, end int64 // the group's time span
	names      map[string]bool
	fn         func(ev StoredEvent) error
	open       cursorHeap
	// last is the last sequence number passed on. A chunk read twice (a
	// paged read that retention's trim of it moved past the page's key)
	// cannot pass an event twice.
	last int64
}

func newMergeScan(g Group, fn func(ev StoredEvent) error) *mergeScan {
	m := &mergeScan{g: g, fn: fn, names: make(map[string]bool, len(g.Names)), last: g.FirstSeq - 1}
	m.start, m.end = groupBounds(g)
	for _, n := range g.Names {
		m.names[n] = true
	}
	return m
}

// add takes the next chunk in first_seq order. data is only read during the
// call: the events kept are copied.
func (m *mergeScan) add(name string, firstSeq int64, data []byte) error {
	if !m.names[name] {
		return nil
	}
	if err := m.emitBefore(firstSeq); err != nil {
		return err
	}
	c := &chunkCursor{name: name}
	err := decodeChunk(data, firstSeq, func(e chunkEvent) error {
		if e.Seq < m.g.FirstSeq || e.Seq > m.g.LastSeq || e.TimeMs < m.start || e.TimeMs >= m.end {
			return nil
		}
		c.events = append(c.events, cursorEvent{seq: e.Seq, timeMs: e.TimeMs, at: len(c.bodies), n: len(e.Body)})
		c.bodies = append(c.bodies, e.Body...)
		return nil
	})
	if err != nil || len(c.events) == 0 {
		return err
	}
	heap.Push(&m.open, c)
	return nil
}

// finish passes on the events still held, after the last chunk.
func (m *mergeScan) finish() error { return m.emitBefore(m.g.LastSeq + 1) }

// emitBefore passes on the held events with a sequence number below seq.
func (m *mergeScan) emitBefore(seq int64) error {
	for len(m.open) > 0 {
		c := m.open[0]
		e := c.events[c.next]
		if e.seq >= seq {
			return nil
		}
		if e.seq > m.last {
			m.last = e.seq
			ev := StoredEvent{Seq: e.seq, EventName: c.name, TimeMs: e.timeMs, Body: c.bodies[e.at : e.at+e.n]}
			if err := m.fn(ev); err != nil {
				return err
			}
		}
		if c.next++; c.next == len(c.events) {
			heap.Pop(&m.open)
		} else {
			heap.Fix(&m.open, 0)
		}
	}
	return nil
}

// chunkCursor is a decoded chunk being merged.
type chunkCursor struct {
	name   string
	events []cursorEvent
	bodies []byte
	next   int
}

type cursorEvent struct {
	seq, timeMs int64
	at, n       int // the body in bodies
}

// cursorHeap orders chunk cursors by their next event's sequence number.
type cursorHeap []*chunkCursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	return h[i].events[h[i].next].seq < h[j].events[h[j].next].seq
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*chunkCursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = slices.Delete(old, len(old)-1, len(old))
	return c
}

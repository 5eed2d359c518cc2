package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
)

// The event log is kept in chunks: the events of one tenant and one event
// name from one Append call, in sequence order, encoded one after another in
// one row. A row per event cost every commit four B-tree (or heap and index)
// writes of a few hundred bytes per event; a chunk costs a handful per
// hundreds of events, which leaves the duplicate key (event_keys: tenant,
// timestamp, messageId) as the only write per event. Delivery reads a
// group's chunks (one event name) and decodes them; the per-event columns it
// filtered on before (sequence range, time span) are in the encoding.
//
// Encoding: the version byte chunkVersion, then for each event (the whole
// compressed as a chunkS2 chunk when that is smaller)
//
//	uvarint  seq - previous seq (the previous is first_seq - 1 for the first)
//	varint   time_ms - previous time_ms (0 for the first)
//	uvarint  len(messageId), messageId
//	uvarint  len(body), body
//
// The messageId is kept so that retention can delete the event's duplicate
// key with the event.
const chunkVersion = 1

const (
	// chunkMaxEvents and chunkMaxBytes bound a chunk: Scan holds one
	// chunk in memory at a time, and a chunk is rewritten whole when
	// retention cuts through it. An event larger than chunkMaxBytes gets
	// a chunk of its own.
	chunkMaxEvents = 1024
	chunkMaxBytes  = 256 << 10
	// chunkMaxSpan bounds last_seq - first_seq, so that the chunks
	// holding a sequence range [from, to] are found by last_seq alone:
	// from <= last_seq < to + chunkMaxSpan.
	chunkMaxSpan = 1 << 16
)

// chunk is one encoded chunk and what the tables keep beside it.
type chunk struct {
	tenantID   int64
	eventName  string
	firstSeq   int64
	lastSeq    int64
	minTimeMs  int64
	maxTimeMs  int64
	count      int64
	receivedMs int64
	data       []byte
}

// chunkEvent is one decoded event; MessageID and Body point into the chunk's
// data.
type chunkEvent struct {
	Seq       int64
	TimeMs    int64
	MessageID []byte
	Body      []byte
}

// buildChunks encodes the new events of tp (those with a sequence number,
// see numberEvents) into chunks, one run per event name. A first pass cuts
// the runs and sizes them, so that each chunk's data is allocated once.
func buildChunks(tp *tenantAppend) []chunk {
	cs, of := cutChunks(tp)
	last := make([][2]int64, len(cs)) // previous seq and time, per chunk
	for i := range cs {
		cs[i].data = append(cs[i].data, chunkVersion)
		last[i] = [2]int64{cs[i].firstSeq - 1, 0}
	}
	for j, seq := range tp.seqs {
		if seq == 0 {
			continue
		}
		c, t, id, body := &cs[of[j]], tp.times[j], tp.messageIDs[j], tp.bodies[j]
		p := &last[of[j]]
		c.data = binary.AppendUvarint(c.data, uint64(seq-p[0]))
		c.data = binary.AppendVarint(c.data, t-p[1])
		c.data = binary.AppendUvarint(c.data, uint64(len(id)))
		c.data = append(c.data, id...)
		c.data = binary.AppendUvarint(c.data, uint64(len(body)))
		c.data = append(c.data, body...)
		*p = [2]int64{seq, t}
	}
	for i := range cs {
		cs[i].data = compressChunk(cs[i].data)
	}
	slices.SortFunc(cs, func(a, b chunk) int { return compareInt64(a.firstSeq, b.firstSeq) })
	return cs
}

// chunkS2 marks a chunk whose encoding (after the marker) is compressed
// with S2 (github.com/klauspost/compress/s2, a block). JSON events shrink
// about threefold at well over a GB/s, which is less for a commit to copy
// into pages, TOAST and the WAL and less for delivery to read; a chunk that
// does not shrink stays as it is.
const chunkS2 = 2

func compressChunk(data []byte) []byte {
	out := make([]byte, 1, 1+s2.MaxEncodedLen(len(data)-1))
	out[0] = chunkS2
	out = append(out, s2.Encode(out[1:cap(out)], data[1:])...)
	if len(out) >= len(data) {
		return data
	}
	return out
}

// maxRawChunk bounds the decoded size of a chunk: the largest event the
// ingest takes is far below it.
const maxRawChunk = 64 << 20

// rawChunks holds the buffers compressed chunks are decoded into.
var rawChunks = sync.Pool{New: func() any { return new([]byte) }}

// cutChunks assigns each new event of tp to a chunk (of[j] is event j's),
// fills the chunks' columns and allocates their data, empty, with room for
// the encoding (at most four varints per event beside its two fields).
func cutChunks(tp *tenantAppend) (cs []chunk, of []int) {
	of = make([]int, len(tp.seqs))
	open := map[string]int{}
	size := []int{}
	for j, seq := range tp.seqs {
		if seq == 0 {
			continue
		}
		name, t := tp.names[j], tp.times[j]
		n := len(tp.messageIDs[j]) + len(tp.bodies[j]) + 4*binary.MaxVarintLen64
		i, ok := open[name]
		if ok {
			c := &cs[i]
			if c.count >= chunkMaxEvents || size[i]+n > chunkMaxBytes || seq-c.firstSeq >= chunkMaxSpan {
				ok = false
			}
		}
		if !ok {
			i = len(cs)
			cs = append(cs, chunk{tenantID: tp.tenantID, eventName: name, firstSeq: seq, minTimeMs: t, maxTimeMs: t,
				receivedMs: tp.receivedMs})
			size = append(size, 1)
			open[name] = i
		}
		c := &cs[i]
		c.lastSeq = seq
		c.count++
		c.minTimeMs, c.maxTimeMs = min(c.minTimeMs, t), max(c.maxTimeMs, t)
		size[i] += n
		of[j] = i
	}
	for i := range cs {
		cs[i].data = make([]byte, 0, size[i])
	}
	return cs, of
}

var errChunk = errors.New("corrupt event chunk")

// decodeChunk calls fn for each event of a chunk starting at firstSeq, in
// sequence order. The slices fn gets are valid only during the call.
func decodeChunk(data []byte, firstSeq int64, fn func(e chunkEvent) error) error {
	if len(data) > 0 && data[0] == chunkS2 {
		n, err := s2.DecodedLen(data[1:])
		if err != nil || n > maxRawChunk {
			return fmt.Errorf("%w: compressed block of %d bytes: %w", errChunk, n, err)
		}
		buf := rawChunks.Get().(*[]byte)
		defer rawChunks.Put(buf)
		if cap(*buf) < n+1 {
			*buf = make([]byte, n+1)
		}
		raw := (*buf)[:n+1]
		raw[0] = chunkVersion
		if _, err := s2.Decode(raw[1:], data[1:]); err != nil {
			return fmt.Errorf("%w: compressed block: %w", errChunk, err)
		}
		data = raw
	}
	if len(data) == 0 || data[0] != chunkVersion {
		return fmt.Errorf("%w: version %v, want %d", errChunk, data[:min(len(data), 1)], chunkVersion)
	}
	rest := data[1:]
	seq, t := firstSeq-1, int64(0)
	for len(rest) > 0 {
		d, n := binary.Uvarint(rest)
		if n <= 0 || d == 0 || d > chunkMaxSpan {
			return fmt.Errorf("%w: sequence delta at byte %d", errChunk, len(data)-len(rest))
		}
		rest = rest[n:]
		dt, n := binary.Varint(rest)
		if n <= 0 {
			return fmt.Errorf("%w: time delta at byte %d", errChunk, len(data)-len(rest))
		}
		rest = rest[n:]
		id, r, err := lengthPrefixed(rest)
		if err != nil {
			return fmt.Errorf("%w: messageId at byte %d", errChunk, len(data)-len(rest))
		}
		body, r, err := lengthPrefixed(r)
		if err != nil {
			return fmt.Errorf("%w: body at byte %d", errChunk, len(data)-len(rest))
		}
		rest = r
		seq += int64(d)
		t += dt
		if err := fn(chunkEvent{Seq: seq, TimeMs: t, MessageID: id, Body: body}); err != nil {
			return err
		}
	}
	return nil
}

func lengthPrefixed(b []byte) (field, rest []byte, err error) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return nil, nil, errChunk
	}
	return b[n : n+int(l)], b[n+int(l):], nil
}

// needsDecode tells whether GroupsBy must decode a chunk to count it: when
// it reaches outside [from, to] or its events fall in more than one span.
// GroupsBy's queries leave the data out of the chunks that need not.
func needsDecode(c chunk, from, to, spanMs int64) bool {
	return c.firstSeq < from || c.lastSeq > to || floorDiv(c.minTimeMs, spanMs) != floorDiv(c.maxTimeMs, spanMs)
}

// groupAdder sums chunks into groups by (event name, span).
type groupAdder struct {
	from, to, spanMs int64
	groups           map[groupKey]*Group
}

type groupKey struct {
	name string
	slot int64
}

func newGroupAdder(from, to int64, span time.Duration) *groupAdder {
	return &groupAdder{from: from, to: to, spanMs: span.Milliseconds(), groups: map[groupKey]*Group{}}
}

func (a *groupAdder) add(c chunk) error {
	if !needsDecode(c, a.from, a.to, a.spanMs) {
		a.addRun(c.eventName, floorDiv(c.minTimeMs, a.spanMs), c.firstSeq, c.lastSeq, c.count)
		return nil
	}
	if c.data == nil {
		return fmt.Errorf("%w: chunk %d-%d read without its data", errChunk, c.firstSeq, c.lastSeq)
	}
	return decodeChunk(c.data, c.firstSeq, func(e chunkEvent) error {
		if e.Seq >= a.from && e.Seq <= a.to {
			a.addRun(c.eventName, floorDiv(e.TimeMs, a.spanMs), e.Seq, e.Seq, 1)
		}
		return nil
	})
}

func (a *groupAdder) addRun(name string, slot, first, last, count int64) {
	k := groupKey{name, slot}
	g := a.groups[k]
	if g == nil {
		g = &Group{EventName: name, Day: time.UnixMilli(slot * a.spanMs).UTC(), FirstSeq: first, LastSeq: last}
		if a.spanMs != msPerDay {
			g.Span = time.Duration(a.spanMs) * time.Millisecond
		}
		a.groups[k] = g
	}
	g.FirstSeq, g.LastSeq = min(g.FirstSeq, first), max(g.LastSeq, last)
	g.Count += count
}

// result lists the groups ordered by their first sequence number.
func (a *groupAdder) result() []Group {
	if len(a.groups) == 0 {
		return nil
	}
	gs := make([]Group, 0, len(a.groups))
	for _, g := range a.groups {
		gs = append(gs, *g)
	}
	slices.SortFunc(gs, func(x, y Group) int { return compareInt64(x.FirstSeq, y.FirstSeq) })
	return gs
}

// checkSpan refuses a span that does not divide a day.
func checkSpan(span time.Duration) error {
	spanMs := span.Milliseconds()
	if spanMs <= 0 || msPerDay%spanMs != 0 {
		return fmt.Errorf("groups: span %s does not divide a day", span)
	}
	return nil
}

// scanChunk calls fn for the events of chunk data that belong to group g:
// inside its sequence range and time span [start, end).
func scanChunk(data []byte, firstSeq int64, g Group, start, end int64, fn func(ev StoredEvent) error) error {
	ev := StoredEvent{EventName: g.EventName}
	return decodeChunk(data, firstSeq, func(e chunkEvent) error {
		if e.Seq < g.FirstSeq || e.Seq > g.LastSeq || e.TimeMs < start || e.TimeMs >= end {
			return nil
		}
		ev.Seq, ev.TimeMs, ev.Body = e.Seq, e.TimeMs, e.Body
		return fn(ev)
	})
}

// groupBounds is the time span [start, end) of group g in milliseconds.
func groupBounds(g Group) (start, end int64) {
	spanMs := msPerDay
	if g.Span > 0 {
		spanMs = g.Span.Milliseconds()
	}
	start = floorDiv(g.Day.UnixMilli(), spanMs) * spanMs
	return start, start + spanMs
}

// trimChunk re-encodes the events of c after seq cut, for retention cutting
// through a chunk; it returns the dropped events' keys too. ok is false when
// nothing remains.
func trimChunk(c chunk, cut int64) (kept chunk, dropped []eventKey, ok bool, err error) {
	tp := &tenantAppend{tenantID: c.tenantID, receivedMs: c.receivedMs}
	err = decodeChunk(c.data, c.firstSeq, func(e chunkEvent) error {
		if e.Seq <= cut {
			dropped = append(dropped, eventKey{timeMs: e.TimeMs, messageID: string(e.MessageID)})
			return nil
		}
		tp.seqs = append(tp.seqs, e.Seq)
		tp.names = append(tp.names, c.eventName)
		tp.times = append(tp.times, e.TimeMs)
		tp.messageIDs = append(tp.messageIDs, string(e.MessageID))
		tp.bodies = append(tp.bodies, slices.Clone(e.Body))
		return nil
	})
	if err != nil || len(tp.seqs) == 0 {
		return chunk{}, dropped, false, err
	}
	// The events came from one chunk, so they fit one again.
	return buildChunks(tp)[0], dropped, true, nil
}

// eventKey is an event's duplicate key within its tenant.
type eventKey struct {
	timeMs    int64
	messageID string
}

// chunkKeys lists the duplicate keys of a chunk's events.
func chunkKeys(data []byte, firstSeq int64) ([]eventKey, error) {
	var keys []eventKey
	err := decodeChunk(data, firstSeq, func(e chunkEvent) error {
		keys = append(keys, eventKey{timeMs: e.TimeMs, messageID: string(e.MessageID)})
		return nil
	})
	return keys, err
}

// Package parquetenc writes delivered objects as Apache Parquet, the way
// Amazon Security Lake reads them: zstd compression, data pages of at most
// 1 MiB before compression, bounded row groups, timestamps in milliseconds,
// rows sorted by time within each row group, one schema per object.
//
// Two schemas: raw events (time, event_name, message_id, seq and the
// event's JSON as written) and, per OCSF class, the class's columns from
// the ocsf package's schema table.
//
// The writer streams: it buffers rows column by column (each leaf
// column's values with their levels, the bytes of strings in one arena)
// until half a row group is pending, sorts them by time and hands the
// older ones, column by column, to parquet-go's column writers, which
// encode and compress them into pages; a row group ends when about half
// RowGroupBytes has gone that way. The newest rows (those within Carry of
// the newest, up to an eighth of a row group) stay pending, so an event
// that arrives a little late still finds its place: only an event older
// than the rows handed on ends the object (ErrTimeOrder). Memory is bounded
// by half a row group of pending rows plus the row group's compressed
// pages, not by the object. BytesWritten tells how much reached the
// io.Writer, for splitting objects at max_object_bytes.
//
// An OCSF object's columns are those its mapper can fill (Mapper.Attributes)
// rather than every attribute of the class: a column always null costs per
// row and per file, and a class has hundreds.
package parquetenc

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/auditexport/auditexport/internal/ocsf"
)

// Limits Security Lake sets on the objects it reads.
const (
	MaxPageBytes     = 1 << 20   // uncompressed data page
	MaxRowGroupBytes = 256 << 20 // row group
)

// Defaults keep memory small: half a row group is buffered before it is
// encoded.
const (
	DefaultPageBytes     = 256 << 10
	DefaultRowGroupBytes = 16 << 20
	// DefaultCarry covers senders whose clocks or queues put an event a few
	// seconds behind the newest one delivered before it.
	DefaultCarry = 5 * time.Second
)

// Options tune the writer; zero values take the defaults.
type Options struct {
	// RowGroupBytes bounds a row group, counted as the rows' values with
	// their levels and the bytes of strings before encoding; at most
	// MaxRowGroupBytes. The writer holds up to half of it pending (rows
	// not yet sorted and encoded), and ends a row group once half of it
	// has been encoded.
	RowGroupBytes int64
	// PageBytes bounds a data page before encoding and compression; at most
	// MaxPageBytes. A single value larger than that is one page of its own.
	PageBytes int
	// Budget, when set, is shared with other writers: their buffered rows
	// together stay within it (see Budget).
	Budget *Budget
	// Carry is how far (in event time) behind the newest row the writer
	// keeps rows pending, so that an event that much older than the newest
	// still joins the object in order. The pending tail is bounded to an
	// eighth of RowGroupBytes as well. A negative Carry keeps none.
	Carry time.Duration
}

func (o Options) withDefaults() (Options, error) {
	if o.RowGroupBytes == 0 {
		o.RowGroupBytes = DefaultRowGroupBytes
	}
	if o.PageBytes == 0 {
		o.PageBytes = DefaultPageBytes
	}
	if o.Carry == 0 {
		o.Carry = DefaultCarry
	}
	if o.RowGroupBytes < 0 || o.RowGroupBytes > MaxRowGroupBytes {
		return o, fmt.Errorf("parquet row group size %d: must be between 1 and %d bytes (Security Lake's limit)", o.RowGroupBytes, MaxRowGroupBytes)
	}
	if o.PageBytes < 0 || o.PageBytes > MaxPageBytes {
		return o, fmt.Errorf("parquet page size %d: must be between 1 and %d bytes (Security Lake's limit)", o.PageBytes, MaxPageBytes)
	}
	return o, nil
}

// ErrTimeOrder is returned for an event older than a row the object has
// already encoded: rows are sorted by time across the whole object, not
// only within a row group, so the event belongs in the next object.
// Nothing of the event is buffered. An event within Carry of the newest
// row written before it fits, unless the pending tail was full.
var ErrTimeOrder = errors.New("parquet: event older than the rows already written; it starts the next object")

// Fits reports whether an event of time t (epoch milliseconds) can join
// the object: false when it is older than a row already encoded.
func (w *Writer) Fits(t int64) bool { return !w.released || t >= w.newest }

// RawEvent is a stored event as delivered.
type RawEvent struct {
	Time      int64 // epoch milliseconds
	Name      string
	MessageID string
	Seq       int64
	JSON      []byte
}

// Writer writes one Parquet object.
type Writer struct {
	out   *countingWriter
	pw    *parquet.GenericWriter[any]
	opt   Options
	class *ocsf.Class // nil for raw events
	cols  *column
	fixed []int64 // by column index: a value's size in a page, 0 for byte arrays

	// The pending rows, not yet handed to parquet-go.
	leaves []leafBuf // by column index
	bytes  arena
	times  []int64 // per pending row
	sizes  []int32 // per pending row: the bytes it counts for
	// Where the kept tail moves at each release (see keep).
	spare      arena
	chunks     [][]byte // the arenas' free chunks
	spareTimes []int64
	spareSizes []int32
	order      []int32 // scratch: rows in time order
	batch      []parquet.Value
	page       []int64 // by column index: bytes in parquet-go's current page

	bind       *binding // of bindLayout, the last layout written
	bindLayout *ocsf.Layout

	pending int64 // bytes of the pending rows
	group   int64 // bytes of the rows handed on into the current row group
	count   int64
	closed  bool
	// newest is the newest time of the rows handed on, valid when
	// released: a row older than that cannot join the object sorted.
	newest   int64
	released bool
	budget   *Budget
}

// leafBuf holds one leaf column's values of the pending rows, levels set.
type leafBuf struct {
	vals []parquet.Value
	// starts is, for a repeated column, the index in vals of each row's
	// first value (a row has one or more); nil for other columns, whose
	// row i is vals[i].
	starts []int32
	// spare and spareStarts are the buffers the kept tail moves to.
	spare       []parquet.Value
	spareStarts []int32
}

// row is the values of pending row r.
func (l *leafBuf) row(r int32) []parquet.Value {
	if l.starts == nil {
		return l.vals[r : r+1]
	}
	end := len(l.vals)
	if int(r)+1 < len(l.starts) {
		end = int(l.starts[r+1])
	}
	return l.vals[l.starts[r]:end]
}

// valueBytes is the size of a parquet.Value, what the writer counts for
// each value it buffers besides the bytes of strings.
const valueBytes = 24

// NewRawWriter returns a Writer of raw events.
func NewRawWriter(w io.Writer, opt Options) (*Writer, error) {
	return newWriter(w, rawSchema, nil, nil, opt)
}

// NewOCSFWriter returns a Writer of OCSF events of class classUID mapped by
// m; its columns are the attributes m can set on the class (plus the
// class's required ones). A nil m gives every attribute of the class a
// column, nested objects up to a few levels deep.
func NewOCSFWriter(w io.Writer, m *ocsf.Mapper, classUID int32, opt Options) (*Writer, error) {
	c := ocsf.ClassByUID(classUID)
	if c == nil {
		return nil, fmt.Errorf("parquet: OCSF class %d is not in the schema table", classUID)
	}
	cs := schemaOf(m, c)
	if cs.err != nil {
		return nil, cs.err
	}
	return newWriter(w, cs.s, c, cs.cols, opt)
}

// Schema returns the Parquet schema of the objects NewOCSFWriter writes
// for m and classUID.
func Schema(m *ocsf.Mapper, classUID int32) (*parquet.Schema, error) {
	c := ocsf.ClassByUID(classUID)
	if c == nil {
		return nil, fmt.Errorf("parquet: OCSF class %d is not in the schema table", classUID)
	}
	cs := schemaOf(m, c)
	return cs.s, cs.err
}

// RawSchema is the Parquet schema of raw event objects.
func RawSchema() *parquet.Schema { return rawSchema }

type classCols struct {
	s    *parquet.Schema
	cols *column
	err  error
}

// schemas caches the schemas built, by class and attribute set: mappers
// are few and long-lived, objects many.
var schemas sync.Map // string -> classCols

func schemaOf(m *ocsf.Mapper, c *ocsf.Class) classCols {
	var paths []string
	if m != nil {
		paths = m.Attributes(c.UID)
	}
	key := fmt.Sprintf("%d %t %s", c.UID, m != nil, strings.Join(paths, ","))
	if cs, ok := schemas.Load(key); ok {
		return cs.(classCols)
	}
	var cs classCols
	if m == nil {
		cs.s, cs.cols, cs.err = classSchema(c)
	} else {
		cs.s, cs.cols, cs.err = prunedSchema(c, paths)
	}
	schemas.Store(key, cs)
	return cs
}

func newWriter(w io.Writer, s *parquet.Schema, c *ocsf.Class, cols *column, opt Options) (*Writer, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	out := &countingWriter{w: w}
	pw := parquet.NewGenericWriter[any](out, s,
		parquet.Compression(zstdCodec),
		// The writer ends pages itself (see writeColumn); parquet-go's own
		// bound is the same, a backstop.
		parquet.PageBufferSize(opt.PageBytes),
		// Bounds go to the column index and the column chunk statistics,
		// where readers look; repeating them in every page header would
		// compute them twice.
		parquet.DataPageStatistics(false),
		// Bounds of whole JSON documents prune nothing and cost a compare
		// of every value.
		parquet.SkipPageBounds("raw_data"),
		parquet.SkipPageBounds("unmapped"),
		parquet.SkipPageBounds("event"),
		parquet.DictionaryMaxBytes(maxDictionaryBytes),
		parquet.CreatedBy("auditexport", "", ""),
		parquet.SortingWriterConfig(parquet.SortingColumns(parquet.Ascending("time"))),
	)
	wr := &Writer{out: out, pw: pw, opt: opt, class: c, cols: cols, budget: opt.Budget}
	wr.budget.join(wr)
	wr.takeBuffers(len(s.Columns()))
	wr.fixed = make([]int64, len(s.Columns()))
	for i, leaf := range s.Columns() {
		l, ok := s.Lookup(leaf...)
		if !ok {
			continue
		}
		if l.MaxRepetitionLevel > 0 {
			wr.leaves[i].starts = []int32{}
		}
		wr.fixed[i] = fixedSize(l.Node.Type().Kind())
	}
	return wr, nil
}

// fixedSize is the size in a PLAIN page of a value of kind k, 0 for byte
// arrays (4 bytes of length and the bytes).
func fixedSize(k parquet.Kind) int64 {
	switch k {
	case parquet.ByteArray:
		return 0
	case parquet.Int32, parquet.Float:
		return 4
	case parquet.Boolean:
		return 1
	}
	return 8 // int64, double
}

// zstdCodec is shared by all writers: it pools its encoders, whose set-up
// (history buffers) costs as much as compressing a small object. The
// fastest level: on audit events laid out in columns its objects are 2%
// larger than the default level's (BenchmarkWriteOCSF: 88.8 bytes per
// event, 87.1) for about a quarter less of the writer's CPU (11.4 -> 9.2
// CPU-us per OCSF event, raw events 1.7 -> 1.25).
var zstdCodec = &zstd.Codec{Level: zstd.SpeedFastest, Concurrency: 1}

// buffers are a writer's row group buffers, reused by the next writer once
// a writer is closed: objects are many and small ones common, and growing
// the buffers anew for each costs more than encoding.
type buffers struct {
	vals, spare          [][]parquet.Value
	chunks               [][]byte
	times, times2        []int64
	sizes, sizes2, order []int32
	batch                []parquet.Value
}

// freeBuffers holds the buffers of closed writers for the next ones. Not
// a sync.Pool, which every garbage collection empties: a writer growing
// its buffers from nothing (copying and clearing large slices of values
// as they double) spends a fifth of its CPU doing so. A few sets, for the
// writers of a few classes at once.
var freeBuffers = make(chan *buffers, 4)

func (w *Writer) takeBuffers(ncols int) {
	var b *buffers
	select {
	case b = <-freeBuffers:
	default:
		b = &buffers{}
	}
	w.leaves = make([]leafBuf, ncols)
	for i := range w.leaves {
		if i < len(b.vals) {
			w.leaves[i].vals, w.leaves[i].spare = b.vals[i][:0], b.spare[i][:0]
		}
	}
	w.page = make([]int64, ncols)
	w.chunks, w.order, w.batch = b.chunks, b.order[:0], b.batch[:0]
	w.bytes, w.spare = arena{free: &w.chunks}, arena{free: &w.chunks}
	w.times, w.spareTimes, w.sizes, w.spareSizes = b.times[:0], b.times2[:0], b.sizes[:0], b.sizes2[:0]
}

// releaseBuffers returns the (flushed, cleared) buffers to the pool.
func (w *Writer) releaseBuffers() {
	w.bytes.reset()
	w.spare.reset()
	b := &buffers{chunks: w.chunks, order: w.order[:0], batch: w.batch[:0],
		times: w.times[:0], times2: w.spareTimes[:0], sizes: w.sizes[:0], sizes2: w.spareSizes[:0]}
	for i := range w.leaves {
		b.vals = append(b.vals, w.leaves[i].vals[:0])
		b.spare = append(b.spare, w.leaves[i].spare[:0])
	}
	w.leaves, w.bytes, w.spare, w.chunks = nil, arena{}, arena{}, nil
	w.times, w.spareTimes, w.sizes, w.spareSizes, w.order, w.batch = nil, nil, nil, nil, nil, nil
	select {
	case freeBuffers <- b:
	default:
	}
}

// WriteRaw buffers a raw event. The writer keeps its own copy of the bytes.
func (w *Writer) WriteRaw(ev RawEvent) error {
	if w.class != nil {
		return errors.New("parquet: WriteRaw on a writer of OCSF events")
	}
	if w.closed {
		return errors.New("parquet: write after Close")
	}
	if !w.Fits(ev.Time) {
		return ErrTimeOrder
	}
	w.leaves[rawEvent].add(parquet.ByteArrayValue(w.bytes.copy(ev.JSON)))
	w.leaves[rawEventName].add(parquet.ByteArrayValue(w.bytes.copyString(ev.Name)))
	w.leaves[rawMessageID].add(parquet.ByteArrayValue(w.bytes.copyString(ev.MessageID)))
	w.leaves[rawSeq].add(parquet.Int64Value(ev.Seq))
	w.leaves[rawTime].add(parquet.Int64Value(ev.Time))
	return w.added(ev.Time, int64(len(ev.JSON)+len(ev.Name)+len(ev.MessageID)+5*valueBytes))
}

func (l *leafBuf) add(v parquet.Value) { l.vals = append(l.vals, v) }

// WriteOCSF buffers a mapped event, which must be of the writer's class.
// The writer keeps its own copy of the event's strings, so the event's
// memory may be reused once WriteOCSF returns.
func (w *Writer) WriteOCSF(ev *ocsf.Event) error {
	if w.class == nil {
		return errors.New("parquet: WriteOCSF on a writer of raw events")
	}
	if w.closed {
		return errors.New("parquet: write after Close")
	}
	if ev.ClassUID != w.class.UID {
		return fmt.Errorf("parquet: event %d is class %d; this object holds class %d (%s) only", ev.Seq, ev.ClassUID, w.class.UID, w.class.Name)
	}
	if !w.Fits(ev.Time) {
		return ErrTimeOrder
	}
	b := rowBuilder{w: w, ev: ev, bind: w.bindingOf(ev.Layout())}
	if err := b.row(); err != nil {
		// Drop the partial row: every leaf back to its length before it.
		w.truncate(len(w.times))
		return fmt.Errorf("parquet: event %d: %w", ev.Seq, err)
	}
	return w.added(ev.Time, b.size)
}

// truncate drops buffered values beyond row n (a row that failed halfway).
func (w *Writer) truncate(n int) {
	for i := range w.leaves {
		l := &w.leaves[i]
		if l.starts != nil {
			if len(l.starts) > n {
				l.vals = l.vals[:l.starts[n]]
				l.starts = l.starts[:n]
			}
			continue
		}
		if len(l.vals) > n {
			l.vals = l.vals[:n]
		}
	}
}

func (w *Writer) added(t int64, size int64) error {
	w.times = append(w.times, t)
	w.sizes = append(w.sizes, int32(min(size, 1<<31-1)))
	w.pending += size
	w.count++
	if w.budget != nil {
		w.budget.total += size
	}
	if w.pending >= w.opt.RowGroupBytes/2 {
		if err := w.release(false); err != nil {
			return err
		}
	}
	return w.budget.check(w)
}

// Budget bounds the rows buffered by several writers together, e.g. the
// writers of one object per OCSF class that a batch of events fills at
// once: when their total passes the budget, the writer holding the most
// is flushed as a row group. Memory is then bounded by the budget (plus
// each writer's row group being encoded), not by the number of writers
// times their row group size. A Budget is not safe for concurrent use;
// its writers are used by one goroutine.
type Budget struct {
	limit   int64
	total   int64
	writers []*Writer
}

// NewBudget returns a budget of limit bytes of buffered rows.
func NewBudget(limit int64) *Budget { return &Budget{limit: limit} }

// Buffered is how many bytes the budget's writers hold.
func (b *Budget) Buffered() int64 {
	if b == nil {
		return 0
	}
	return b.total
}

func (b *Budget) join(w *Writer) {
	if b != nil {
		b.writers = append(b.writers, w)
	}
}

// check flushes the writer holding the most rows once the total passes
// the limit.
func (b *Budget) check(w *Writer) error {
	if b == nil || b.total <= b.limit {
		return nil
	}
	largest := w
	for _, o := range b.writers {
		if !o.closed && o.Buffered() > largest.Buffered() {
			largest = o
		}
	}
	return largest.flush()
}

// release takes n bytes of a writer's rows, written out, off the budget.
func (b *Budget) release(n int64) {
	if b != nil {
		b.total -= n
	}
}

func (b *Budget) leave(w *Writer) {
	if b == nil {
		return
	}
	b.writers = slices.DeleteFunc(b.writers, func(o *Writer) bool { return o == w })
}

// flush hands every pending row on and ends the row group.
func (w *Writer) flush() error {
	if err := w.release(true); err != nil {
		return err
	}
	return w.endRowGroup()
}

// release sorts the pending rows by time (stable, so events of the same
// millisecond keep sequence order) and hands them, column by column, to
// parquet-go: all of them, or all but the tail (see tail). The row group
// ends once half its bytes have been handed on, so it stays within
// RowGroupBytes.
func (w *Writer) release(all bool) error {
	n := len(w.times)
	if n == 0 {
		return nil
	}
	w.order = w.order[:0]
	for i := range n {
		w.order = append(w.order, int32(i))
	}
	if !slices.IsSorted(w.times) {
		slices.SortStableFunc(w.order, func(a, b int32) int {
			switch ta, tb := w.times[a], w.times[b]; {
			case ta < tb:
				return -1
			case ta > tb:
				return 1
			}
			return 0
		})
	}
	k := n
	if !all {
		k = w.tail()
	}
	if k == 0 {
		return nil
	}
	out := w.order[:k]
	cws := w.pw.ColumnWriters()
	for i := range w.leaves {
		if err := w.writeColumn(i, cws[i], out); err != nil {
			return fmt.Errorf("parquet: column %s: %w", strings.Join(w.pw.Schema().Columns()[i], "."), err)
		}
	}
	var moved int64
	for _, r := range out {
		moved += int64(w.sizes[r])
	}
	// Rows go out in time order, so the last is the newest so far.
	w.newest, w.released = w.times[out[k-1]], true
	w.pending -= moved
	w.group += moved
	w.keep(w.order[k:])
	if w.group >= w.opt.RowGroupBytes/2 {
		return w.endRowGroup()
	}
	return nil
}

// tail is how many of the pending rows, in time order, go out: all but
// those within Carry of the newest, at most an eighth of RowGroupBytes of
// them. Kept back, they take their place among events that arrive late.
func (w *Writer) tail() int {
	n := len(w.order)
	if w.opt.Carry < 0 {
		return n
	}
	carry, limit := w.opt.Carry.Milliseconds(), w.opt.RowGroupBytes/8
	newest := w.times[w.order[n-1]]
	var kept int64
	k := n
	for k > 0 {
		r := w.order[k-1]
		if newest-w.times[r] > carry || kept+int64(w.sizes[r]) > limit {
			break
		}
		kept += int64(w.sizes[r])
		k--
	}
	return k
}

// keep makes rows (pending row numbers, in time order) the only pending
// rows, in that order; their strings move to the spare arena, which
// becomes the arena, so the old one is free for the next rows.
func (w *Writer) keep(rows []int32) {
	if len(rows) == 0 {
		for i := range w.leaves {
			l := &w.leaves[i]
			clear(l.vals) // drop the references into the arena
			l.vals = l.vals[:0]
			if l.starts != nil {
				l.starts = l.starts[:0]
			}
		}
		w.bytes.reset()
		w.times, w.sizes = w.times[:0], w.sizes[:0]
		return
	}
	w.spare.reset()
	for i := range w.leaves {
		l := &w.leaves[i]
		vals := l.spare[:0]
		var starts []int32
		if l.starts != nil {
			starts = l.spareStarts[:0]
		}
		for _, r := range rows {
			if l.starts != nil {
				starts = append(starts, int32(len(vals)))
			}
			for _, v := range l.row(r) {
				if v.Kind() == parquet.ByteArray && !v.IsNull() {
					v = parquet.ByteArrayValue(w.spare.copy(v.ByteArray())).Level(v.RepetitionLevel(), v.DefinitionLevel(), i)
				}
				vals = append(vals, v)
			}
		}
		// Back into the main buffers, which have the capacity of half a
		// row group: swapping them would leave the next rows to grow the
		// spare ones, sized for a tail, all over again.
		clear(l.vals[len(vals):]) // drop the references into the old arena
		l.vals = append(l.vals[:0], vals...)
		clear(vals)
		l.spare = vals[:0]
		if l.starts != nil {
			l.starts = append(l.starts[:0], starts...)
			l.spareStarts = starts[:0]
		}
	}
	// The arenas do swap: their chunks go back to the shared free list.
	w.bytes.reset()
	w.bytes, w.spare = w.spare, w.bytes
	times, sizes := w.spareTimes[:0], w.spareSizes[:0]
	for _, r := range rows {
		times, sizes = append(times, w.times[r]), append(sizes, w.sizes[r])
	}
	w.times, w.sizes = append(w.times[:0], times...), append(w.sizes[:0], sizes...)
	w.spareTimes, w.spareSizes = times[:0], sizes[:0]
}

// endRowGroup writes the rows handed on as one row group.
func (w *Writer) endRowGroup() error {
	if w.group == 0 {
		return nil
	}
	if err := w.pw.Flush(); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	clear(w.page)
	w.budget.release(w.group)
	w.group = 0
	return nil
}

// writeColumn hands column i's values of rows, in that order, to
// parquet-go in batches of whole rows. It ends a page before it would pass
// the page bound, so no page is larger unless a single value is.
func (w *Writer) writeColumn(i int, cw *parquet.ColumnWriter, rows []int32) error {
	limit := int64(w.opt.PageBytes - w.opt.PageBytes/16) // room for levels and headers
	const maxBatch = 1024
	l, fixed, page := &w.leaves[i], w.fixed[i], w.page[i]
	batch := w.batch[:0]
	write := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := cw.WriteRowValues(batch)
		clear(batch)
		batch = batch[:0]
		return err
	}
	for _, r := range rows {
		vals := l.row(r)
		var size int64
		for i := range vals {
			size += valueSize(&vals[i], fixed)
		}
		if page > 0 && page+size > limit {
			if err := write(); err != nil {
				return err
			}
			if err := cw.Flush(); err != nil {
				return err
			}
			page = 0
		}
		if len(batch)+len(vals) > maxBatch {
			if err := write(); err != nil {
				return err
			}
		}
		batch = append(batch, vals...)
		page += size
	}
	err := write()
	w.batch, w.page[i] = batch, page
	return err
}

// valueSize is a value's size in a page before compression; fixed is the
// size of its column's values, 0 for byte arrays.
func valueSize(v *parquet.Value, fixed int64) int64 {
	switch {
	case v.IsNull():
		return 1 // its levels
	case fixed > 0:
		return fixed
	}
	return 4 + int64(len(v.ByteArray())) // PLAIN: a length, the bytes
}

// Flush writes the buffered rows as a row group now, e.g. before checking
// BytesWritten against a size limit. Every pending row goes, so an event
// older than the newest written then starts the next object.
func (w *Writer) Flush() error { return w.flush() }

// Close writes the last row group and the footer. It does not close the
// underlying io.Writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	if err := w.flush(); err != nil {
		return err
	}
	w.closed = true
	w.budget.leave(w)
	w.releaseBuffers()
	if err := w.pw.Close(); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	return nil
}

// Count is the number of events written.
func (w *Writer) Count() int64 { return w.count }

// BytesWritten is how many bytes reached the io.Writer: the row groups
// written so far (and, after Close, the footer).
func (w *Writer) BytesWritten() int64 { return w.out.n }

// Buffered is how many bytes of rows are buffered, not yet written to the
// io.Writer: the pending rows and those of the row group being encoded.
func (w *Writer) Buffered() int64 { return w.pending + w.group }

// Extension is the key suffix of Parquet objects.
const Extension = ".parquet"

// ContentType is the Content-Type of Parquet objects.
const ContentType = "application/vnd.apache.parquet"

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// arena holds the bytes of the pending strings in chunks that are never
// moved (values point into them). Chunks come from, and go back to, a free
// list that the writer's two arenas share, so that they are reused from
// one release to the next.
type arena struct {
	chunks [][]byte // in use; the last one is being filled
	free   *[][]byte
}

const chunkBytes = 1 << 20

func (a *arena) copy(b []byte) []byte {
	c := a.room(len(b))
	start := len(c)
	c = append(c, b...)
	a.chunks[len(a.chunks)-1] = c
	return c[start:len(c):len(c)]
}

func (a *arena) copyString(s string) []byte {
	c := a.room(len(s))
	start := len(c)
	c = append(c, s...)
	a.chunks[len(a.chunks)-1] = c
	return c[start:len(c):len(c)]
}

// room returns the chunk being filled, one with n bytes free.
func (a *arena) room(n int) []byte {
	if k := len(a.chunks); k > 0 {
		if c := a.chunks[k-1]; cap(c)-len(c) >= n {
			return c
		}
	}
	var c []byte
	if f := *a.free; len(f) > 0 && n <= chunkBytes {
		c, *a.free = f[len(f)-1], f[:len(f)-1]
	} else {
		c = make([]byte, 0, max(chunkBytes, n))
	}
	a.chunks = append(a.chunks, c)
	return c
}

// reset frees every chunk; a value larger than a chunk had one of its own,
// which is dropped.
func (a *arena) reset() {
	for _, c := range a.chunks {
		if cap(c) == chunkBytes {
			*a.free = append(*a.free, c[:0])
		}
	}
	clear(a.chunks)
	a.chunks = a.chunks[:0]
}

// binding ties the nodes of an ocsf.Layout to a writer's columns, so a row
// is laid out by index: node[c.id] is the layout node of column node c, -1
// when the layout has none (the column is always null for its events).
// unbound are the layout's leaves with no column: an event with a value
// there cannot be written without losing it.
type binding struct {
	node    []int32
	unbound []int32
}

// bindings caches the bindings made, by column tree and layout: both live
// as long as their mapper.
var bindings sync.Map // bindKey -> *binding

type bindKey struct {
	cols   *column
	layout *ocsf.Layout
}

func (w *Writer) bindingOf(l *ocsf.Layout) *binding {
	if w.bind != nil && w.bindLayout == l {
		return w.bind
	}
	key := bindKey{w.cols, l}
	b, ok := bindings.Load(key)
	if !ok {
		b, _ = bindings.LoadOrStore(key, bind(w.cols, l))
	}
	w.bind, w.bindLayout = b.(*binding), l
	return w.bind
}

func bind(root *column, l *ocsf.Layout) *binding {
	byPath := make(map[string]int32, l.Len())
	for i := 1; i < l.Len(); i++ {
		byPath[l.Path(i)] = int32(i)
	}
	b := &binding{node: make([]int32, root.count)}
	bound := map[int32]bool{}
	var walk func(c *column)
	walk = func(c *column) {
		for _, ch := range c.children {
			n, ok := byPath[ch.path]
			if !ok {
				n = -1
			}
			b.node[ch.id] = n
			bound[n] = true
			walk(ch)
		}
	}
	walk(root)
	for i := 1; i < l.Len(); i++ {
		if !l.IsObject(i) && !bound[int32(i)] {
			b.unbound = append(b.unbound, int32(i))
		}
	}
	return b
}

// rowBuilder lays an event's values out column by column, leaf by leaf,
// with their repetition and definition levels.
type rowBuilder struct {
	w    *Writer
	ev   *ocsf.Event
	bind *binding
	size int64
}

func (b *rowBuilder) leaf(c *column) *leafBuf { return &b.w.leaves[c.index] }

func (b *rowBuilder) row() error {
	for _, n := range b.bind.unbound {
		if b.ev.Has(int(n)) {
			// The schema comes from what the mapper can set; a value it
			// has no column for would be lost silently.
			return fmt.Errorf("attribute %s has no column in this object's schema", b.ev.Layout().Path(int(n)))
		}
	}
	return b.object(b.w.cols, 0)
}

func (b *rowBuilder) object(c *column, def int) error {
	for _, ch := range c.children {
		n := int(b.bind.node[ch.id])
		if n < 0 || !b.ev.Has(n) {
			if ch.required {
				return fmt.Errorf("required attribute %s has no value", ch.path)
			}
			b.nulls(ch, def)
			continue
		}
		if err := b.node(ch, n); err != nil {
			return err
		}
	}
	return nil
}

func (b *rowBuilder) node(c *column, n int) error {
	switch {
	case c.list:
		v := b.ev.At(n)
		if !v.Array {
			return fmt.Errorf("%s: want an array", c.path)
		}
		l := b.leaf(c)
		l.starts = append(l.starts, int32(len(l.vals)))
		if len(v.Items) == 0 {
			l.add(parquet.NullValue().Level(c.rep, c.def, c.index))
			b.size += valueBytes
			return nil
		}
		for i := range v.Items {
			rep := c.rep
			if i > 0 {
				rep = c.rep + 1
			}
			val, err := b.scalar(c, &v.Items[i])
			if err != nil {
				return err
			}
			l.add(val.Level(rep, c.def+2, c.index))
		}
		return nil
	case len(c.children) > 0:
		if !b.ev.Layout().IsObject(n) {
			return fmt.Errorf("%s: want an object", c.path)
		}
		return b.object(c, c.def)
	}
	v := b.ev.At(n)
	if v.Array {
		return fmt.Errorf("%s: an array, want a %s", c.path, c.kind)
	}
	val, err := b.scalar(c, v)
	if err != nil {
		return err
	}
	b.leaf(c).add(val.Level(c.rep, c.def, c.index))
	return nil
}

// nulls lays out an absent node: each leaf below is null at the
// definition level of the node's parent.
func (b *rowBuilder) nulls(c *column, def int) {
	if len(c.children) == 0 || c.list {
		l := b.leaf(c)
		if c.list {
			l.starts = append(l.starts, int32(len(l.vals)))
		}
		l.add(parquet.NullValue().Level(c.rep, def, c.index))
		b.size += valueBytes
		return
	}
	for _, ch := range c.children {
		b.nulls(ch, def)
	}
}

func (b *rowBuilder) scalar(c *column, v *ocsf.Value) (parquet.Value, error) {
	if v.Kind != c.kind {
		return parquet.Value{}, fmt.Errorf("%s: a %s value, want %s", c.path, v.Kind, c.kind)
	}
	b.size += valueBytes
	switch c.kind {
	case ocsf.KindInteger:
		return parquet.Int32Value(int32(v.Int)), nil
	case ocsf.KindLong, ocsf.KindTimestamp:
		return parquet.Int64Value(v.Int), nil
	case ocsf.KindFloat:
		return parquet.DoubleValue(v.Float), nil
	case ocsf.KindBoolean:
		return parquet.BooleanValue(v.Bool), nil
	}
	b.size += int64(len(v.Str))
	return parquet.ByteArrayValue(b.w.bytes.copyString(v.Str)), nil
}

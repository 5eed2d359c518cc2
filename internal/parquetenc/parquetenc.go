// Package parquetenc writes delivered objects as Apache Parquet, the way
// Amazon Security Lake reads them: zstd compression, data pages of at most
// 1 MiB before compression, bounded row groups, timestamps in milliseconds,
// rows sorted by time within each row group, one schema per object.
//
// Two schemas: raw events (time, event_name, message_id, seq and the
// event's JSON as written) and, per OCSF class, the class's columns from
// the ocsf package's schema table.
//
// The writer streams: it buffers one row group (RowGroupBytes of values),
// sorts it by time, encodes it and writes it to the io.Writer, so memory
// is bounded by the row group, not the object. BytesWritten tells how much
// reached the io.Writer, for splitting objects at max_object_bytes.
package parquetenc

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/auditexport/auditexport/internal/ocsf"
)

// Limits Security Lake sets on the objects it reads.
const (
	MaxPageBytes     = 1 << 20   // uncompressed data page
	MaxRowGroupBytes = 256 << 20 // row group
)

// Defaults keep memory small: a row group is buffered whole before it is
// encoded.
const (
	DefaultPageBytes     = 256 << 10
	DefaultRowGroupBytes = 16 << 20
)

// Options tune the writer; zero values take the defaults.
type Options struct {
	// RowGroupBytes is how many bytes of values (uncompressed) a row group
	// holds before it is sorted and written; at most MaxRowGroupBytes.
	RowGroupBytes int64
	// PageBytes bounds a data page before encoding and compression; at most
	// MaxPageBytes. A single value larger than that is one page of its own.
	PageBytes int
}

func (o Options) withDefaults() (Options, error) {
	if o.RowGroupBytes == 0 {
		o.RowGroupBytes = DefaultRowGroupBytes
	}
	if o.PageBytes == 0 {
		o.PageBytes = DefaultPageBytes
	}
	if o.RowGroupBytes < 0 || o.RowGroupBytes > MaxRowGroupBytes {
		return o, fmt.Errorf("parquet row group size %d: must be between 1 and %d bytes (Security Lake's limit)", o.RowGroupBytes, MaxRowGroupBytes)
	}
	if o.PageBytes < 0 || o.PageBytes > MaxPageBytes {
		return o, fmt.Errorf("parquet page size %d: must be between 1 and %d bytes (Security Lake's limit)", o.PageBytes, MaxPageBytes)
	}
	return o, nil
}

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
	out      *countingWriter
	pw       *parquet.Writer
	opt      Options
	class    *ocsf.Class // nil for raw events
	cols     *column
	ncols    int
	rows     []parquet.Row
	times    []int64
	buffered int64
	count    int64
	closed   bool
}

// NewRawWriter returns a Writer of raw events.
func NewRawWriter(w io.Writer, opt Options) (*Writer, error) {
	return newWriter(w, rawSchema, nil, nil, opt)
}

// NewOCSFWriter returns a Writer of OCSF events of class classUID.
func NewOCSFWriter(w io.Writer, classUID int32, opt Options) (*Writer, error) {
	c := ocsf.ClassByUID(classUID)
	if c == nil {
		return nil, fmt.Errorf("parquet: OCSF class %d is not in the schema table", classUID)
	}
	s, cols, err := schemaOf(c)
	if err != nil {
		return nil, err
	}
	return newWriter(w, s, c, cols, opt)
}

// Schema returns the Parquet schema of an OCSF class's objects.
func Schema(classUID int32) (*parquet.Schema, error) {
	c := ocsf.ClassByUID(classUID)
	if c == nil {
		return nil, fmt.Errorf("parquet: OCSF class %d is not in the schema table", classUID)
	}
	s, _, err := schemaOf(c)
	return s, err
}

// RawSchema is the Parquet schema of raw event objects.
func RawSchema() *parquet.Schema { return rawSchema }

type classCols struct {
	s    *parquet.Schema
	cols *column
	err  error
}

var schemas = func() map[int32]classCols {
	m := map[int32]classCols{}
	for _, c := range ocsf.Classes() {
		s, cols, err := classSchema(c)
		m[c.UID] = classCols{s, cols, err}
	}
	return m
}()

func schemaOf(c *ocsf.Class) (*parquet.Schema, *column, error) {
	cc := schemas[c.UID]
	return cc.s, cc.cols, cc.err
}

func newWriter(w io.Writer, s *parquet.Schema, c *ocsf.Class, cols *column, opt Options) (*Writer, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	out := &countingWriter{w: w}
	pw := parquet.NewWriter(out, s,
		parquet.Compression(&zstd.Codec{Level: zstd.SpeedDefault, Concurrency: 1}),
		parquet.PageBufferSize(opt.PageBytes),
		parquet.DataPageStatistics(true),
		parquet.CreatedBy("auditexport", "", ""),
		parquet.SortingWriterConfig(parquet.SortingColumns(parquet.Ascending("time"))),
	)
	return &Writer{out: out, pw: pw, opt: opt, class: c, cols: cols, ncols: len(s.Columns())}, nil
}

// WriteRaw buffers a raw event. The writer keeps its own copy of the JSON.
func (w *Writer) WriteRaw(ev RawEvent) error {
	if w.class != nil {
		return errors.New("parquet: WriteRaw on a writer of OCSF events")
	}
	row := make(parquet.Row, 5)
	js := append([]byte(nil), ev.JSON...)
	row[rawEvent] = parquet.ByteArrayValue(js).Level(0, 0, rawEvent)
	row[rawEventName] = parquet.ByteArrayValue([]byte(ev.Name)).Level(0, 0, rawEventName)
	row[rawMessageID] = parquet.ByteArrayValue([]byte(ev.MessageID)).Level(0, 0, rawMessageID)
	row[rawSeq] = parquet.Int64Value(ev.Seq).Level(0, 0, rawSeq)
	row[rawTime] = parquet.Int64Value(ev.Time).Level(0, 0, rawTime)
	return w.add(row, ev.Time, int64(len(js)+len(ev.Name)+len(ev.MessageID)+16))
}

// WriteOCSF buffers a mapped event, which must be of the writer's class.
func (w *Writer) WriteOCSF(ev ocsf.Event) error {
	if w.class == nil {
		return errors.New("parquet: WriteOCSF on a writer of raw events")
	}
	if ev.ClassUID != w.class.UID {
		return fmt.Errorf("parquet: event %d is class %d; this object holds class %d (%s) only", ev.Seq, ev.ClassUID, w.class.UID, w.class.Name)
	}
	b := rowBuilder{row: make(parquet.Row, 0, w.ncols)}
	if err := b.object(w.cols, &ev.Root, 0); err != nil {
		return fmt.Errorf("parquet: event %d: %w", ev.Seq, err)
	}
	return w.add(b.row, ev.Time, b.size)
}

func (w *Writer) add(row parquet.Row, t int64, size int64) error {
	if w.closed {
		return errors.New("parquet: write after Close")
	}
	w.rows = append(w.rows, row)
	w.times = append(w.times, t)
	w.buffered += size
	w.count++
	if w.buffered >= w.opt.RowGroupBytes {
		return w.flush()
	}
	return nil
}

// flush sorts the buffered rows by time (stable, so events of the same
// millisecond keep sequence order) and writes them as one row group.
func (w *Writer) flush() error {
	if len(w.rows) == 0 {
		return nil
	}
	order := make([]int, len(w.rows))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case w.times[a] < w.times[b]:
			return -1
		case w.times[a] > w.times[b]:
			return 1
		}
		return 0
	})
	sorted := make([]parquet.Row, len(order))
	for i, j := range order {
		sorted[i] = w.rows[j]
	}
	if _, err := w.pw.WriteRows(sorted); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	if err := w.pw.Flush(); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	clear(w.rows)
	w.rows, w.times, w.buffered = w.rows[:0], w.times[:0], 0
	return nil
}

// Flush writes the buffered rows as a row group now, e.g. before checking
// BytesWritten against a size limit.
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

// Buffered is the uncompressed size of the rows not yet written.
func (w *Writer) Buffered() int64 { return w.buffered }

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

// rowBuilder lays an event's values out as a Parquet row, leaf by leaf in
// column order, with their repetition and definition levels.
type rowBuilder struct {
	row  parquet.Row
	size int64
}

func (b *rowBuilder) object(c *column, v *ocsf.Value, def int) error {
	for _, ch := range c.children {
		var f *ocsf.Value
		if v != nil {
			f = v.Field(ch.name)
		}
		if err := b.node(ch, f, def); err != nil {
			return err
		}
	}
	return nil
}

func (b *rowBuilder) node(c *column, v *ocsf.Value, def int) error {
	if v == nil {
		if c.required {
			return fmt.Errorf("required attribute %s has no value", c.name)
		}
		b.nulls(c, def)
		return nil
	}
	switch {
	case c.list:
		if !v.Array {
			return fmt.Errorf("%s: want an array", c.name)
		}
		if len(v.Items) == 0 {
			b.row = append(b.row, parquet.NullValue().Level(c.rep, c.def, c.index))
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
			b.row = append(b.row, val.Level(rep, c.def+2, c.index))
		}
		return nil
	case len(c.children) > 0:
		if v.Kind != ocsf.KindObject {
			return fmt.Errorf("%s: want an object", c.name)
		}
		return b.object(c, v, c.def)
	}
	val, err := b.scalar(c, v)
	if err != nil {
		return err
	}
	b.row = append(b.row, val.Level(c.rep, c.def, c.index))
	return nil
}

// nulls lays out an absent node: each leaf below is null at the
// definition level of the node's parent.
func (b *rowBuilder) nulls(c *column, def int) {
	if len(c.children) == 0 || c.list {
		b.row = append(b.row, parquet.NullValue().Level(c.rep, def, c.index))
		return
	}
	for _, ch := range c.children {
		b.nulls(ch, def)
	}
}

func (b *rowBuilder) scalar(c *column, v *ocsf.Value) (parquet.Value, error) {
	if v.Kind != c.kind {
		return parquet.Value{}, fmt.Errorf("%s: a %s value, want %s", c.name, v.Kind, c.kind)
	}
	switch c.kind {
	case ocsf.KindInteger:
		b.size += 4
		return parquet.Int32Value(int32(v.Int)), nil
	case ocsf.KindLong, ocsf.KindTimestamp:
		b.size += 8
		return parquet.Int64Value(v.Int), nil
	case ocsf.KindFloat:
		b.size += 8
		return parquet.DoubleValue(v.Float), nil
	case ocsf.KindBoolean:
		b.size++
		return parquet.BooleanValue(v.Bool), nil
	}
	b.size += int64(len(v.Str)) + 4
	// The bytes are the event's string, which is never modified; the
	// column writer copies them when the row group is written.
	return parquet.ByteArrayValue(unsafe.Slice(unsafe.StringData(v.Str), len(v.Str))), nil
}

package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/encode"
	"github.com/auditexport/auditexport/internal/ocsf"
	"github.com/auditexport/auditexport/internal/parquetenc"
	"github.com/auditexport/auditexport/internal/store"
)

// eventEncoder writes the events of one object in the destination's
// (event_schema, format).
type eventEncoder interface {
	Write(ev store.StoredEvent) error
	Close() error
}

// errClassChange ends an OCSF part before an event of another class than
// the part's: every object holds one OCSF class. It is a kind of
// errPartFull, so the part is completed and the next one starts at the
// event.
var errClassChange = fmt.Errorf("%w: the next event is of another OCSF class", errPartFull)

// errTimeOrder ends a Parquet part before an event older than a row group
// the part already wrote: rows are sorted by time across each object, so
// the next part starts at the event.
var errTimeOrder = fmt.Errorf("%w: the next event is older than the rows already written", errPartFull)

// parquetErr turns the writer's ErrTimeOrder into the end of the part.
func parquetErr(err error) error {
	if errors.Is(err, parquetenc.ErrTimeOrder) {
		return errTimeOrder
	}
	return err
}

// defaultMapper maps with the built-in rules when the Deliverer was given
// no mapper.
var defaultMapper = sync.OnceValues(func() (*ocsf.Mapper, error) {
	return ocsf.New(ocsf.Config{ProductName: "auditexport", VendorName: "auditexport"})
})

func (d *Deliverer) mapper() (*ocsf.Mapper, error) {
	if d.opts.OCSF != nil {
		return d.opts.OCSF, nil
	}
	return defaultMapper()
}

// partClass is the OCSF class of the part that starts at seq from: the
// class of its first event. ok is false when the group has no event from
// there on. Raw destinations have no class (0) and always ok.
func (d *Deliverer) partClass(ctx context.Context, t *target, g *planGroup, from int64) (class int32, ok bool, err error) {
	if t.spec.EventSchema != api.EventSchemaOCSF {
		return 0, true, nil
	}
	m, err := d.mapper()
	if err != nil {
		return 0, false, err
	}
	errFound := errors.New("found")
	err = d.store.Scan(ctx, t.tenant.ID, g.scan(from, g.LastSeq), func(ev store.StoredEvent) error {
		mapped, err := m.Map(ev.Body, ev.Seq)
		if err != nil {
			return fmt.Errorf("mapping to OCSF: %w", err)
		}
		class = mapped.ClassUID
		return errFound
	})
	switch {
	case errors.Is(err, errFound):
		return class, true, nil
	case err != nil:
		return 0, false, fmt.Errorf("reading events: %w", err)
	}
	return 0, false, nil
}

// className is the {class} of a key: the OCSF class name, "" for raw.
func className(uid int32) string {
	if c := ocsf.ClassByUID(uid); c != nil {
		return c.Name
	}
	return ""
}

// newEncoder returns the encoder of t's (event_schema, format) writing to
// w. class is the OCSF class of the object (0 for raw events).
func (d *Deliverer) newEncoder(w io.Writer, t *target, class int32) (eventEncoder, error) {
	ocsfSchema := t.spec.EventSchema == api.EventSchemaOCSF
	if t.spec.Format == api.FormatParquet {
		opt := parquetOptions(t.spec.MaxObjectBytes)
		if !ocsfSchema {
			pw, err := parquetenc.NewRawWriter(w, opt)
			return rawParquet{w: pw, idField: d.messageIDField()}, err
		}
		m, err := d.mapper()
		if err != nil {
			return nil, err
		}
		pw, err := parquetenc.NewOCSFWriter(w, m, class, opt)
		return ocsfParquet{w: pw, m: m, class: class, ev: &ocsf.Event{NoJSON: true}}, err
	}
	tw, err := encode.NewWriter(w, t.spec.Format, t.spec.Compression)
	if err != nil || !ocsfSchema {
		return rawText{tw}, err
	}
	m, err := d.mapper()
	return ocsfText{w: tw, m: m, class: class, ev: new(ocsf.Event)}, err
}

// parquetOptions sizes row groups so that an object overshoots
// max_object_bytes by at most a fraction: the writer's bytes reach the
// upload a row group at a time, and the limit is checked after each.
func parquetOptions(maxObject int64) parquetenc.Options {
	return parquetenc.Options{RowGroupBytes: min(parquetenc.DefaultRowGroupBytes, maxObject/4)}
}

func (d *Deliverer) messageIDField() string {
	if d.opts.MessageIDField != "" {
		return d.opts.MessageIDField
	}
	return "messageId"
}

// rawText writes events as ingested, NDJSON or a JSON array.
type rawText struct{ w *encode.Writer }

func (e rawText) Write(ev store.StoredEvent) error { return e.w.Write(ev.Body) }
func (e rawText) Close() error                     { return e.w.Close() }

// ocsfText writes events mapped to OCSF, NDJSON or a JSON array.
type ocsfText struct {
	w     *encode.Writer
	m     *ocsf.Mapper
	class int32
	ev    *ocsf.Event // reused from event to event
}

func (e ocsfText) Write(ev store.StoredEvent) error {
	if err := mapEvent(e.m, e.ev, ev, e.class); err != nil {
		return err
	}
	return e.w.Write(e.ev.JSON)
}

func (e ocsfText) Close() error { return e.w.Close() }

// ocsfParquet writes events mapped to OCSF as Parquet rows of one class.
type ocsfParquet struct {
	w     *parquetenc.Writer
	m     *ocsf.Mapper
	class int32
	ev    *ocsf.Event // reused from event to event
}

func (e ocsfParquet) Write(ev store.StoredEvent) error {
	if err := mapEvent(e.m, e.ev, ev, e.class); err != nil {
		return err
	}
	return parquetErr(e.w.WriteOCSF(e.ev))
}

func (e ocsfParquet) Close() error { return e.w.Close() }

// mapEvent maps ev into into. The mapped event points into ev's body,
// which the encoders copy (or write out) before the next event.
func mapEvent(m *ocsf.Mapper, into *ocsf.Event, ev store.StoredEvent, class int32) error {
	if err := m.MapTo(into, ev.Body, ev.Seq); err != nil {
		return fmt.Errorf("mapping to OCSF: %w", err)
	}
	if into.ClassUID != class {
		return errClassChange
	}
	return nil
}

// rawParquet writes events as ingested, one Parquet row each with the
// columns a query filters on.
type rawParquet struct {
	w       *parquetenc.Writer
	idField string
}

func (e rawParquet) Write(ev store.StoredEvent) error {
	return parquetErr(e.w.WriteRaw(parquetenc.RawEvent{
		Time: ev.TimeMs, Name: ev.EventName, MessageID: topLevelString(ev.Body, e.idField),
		Seq: ev.Seq, JSON: ev.Body,
	}))
}

func (e rawParquet) Close() error { return e.w.Close() }

// topLevelString reads a top-level field of a JSON object as text (a
// string's value, a number's digits); "" when it is absent. Ingest has
// checked the field, so a failure here only loses the column's value.
func topLevelString(doc []byte, field string) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(doc, &fields) != nil {
		return ""
	}
	raw, ok := fields[field]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

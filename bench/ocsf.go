package main

import (
	"context"
	"fmt"
	"io"

	"github.com/auditexport/auditexport/internal/api"
)

// formatRun is the delivery of the same events as the main destination's
// in another event schema and format, by a destination of its own.
type formatRun struct {
	name     string
	delivery deliveryResult
	w        *world // the destination's world (its id, spec and cursor)
}

// benchFormats are the formats delivered beside raw gzip NDJSON, in the
// order of the report.
var benchFormats = []struct {
	name, slug string
	set        func(*api.DestinationSpec)
}{
	{"OCSF NDJSON (gzip)", "ocsf-ndjson", func(s *api.DestinationSpec) { s.EventSchema = api.EventSchemaOCSF }},
	{"OCSF Parquet", "ocsf-parquet", func(s *api.DestinationSpec) {
		s.EventSchema, s.Format, s.Compression = api.EventSchemaOCSF, api.FormatParquet, "none"
	}},
	{"raw Parquet", "raw-parquet", func(s *api.DestinationSpec) { s.Format, s.Compression = api.FormatParquet, "none" }},
}

// windowFormat is the slug of the OCSF Parquet row, whose destination
// -window-format ocsf-parquet delivers the window with.
const windowFormat = "ocsf-parquet"

// measureFormats delivers the events the main destination delivered again,
// once per format of benchFormats, each by a destination created (paused,
// with a backfill reaching back past the ingest) under a prefix of its own:
// the same events, agent and S3 server, phase after phase.
func (w *world) measureFormats(ctx context.Context, run *storeRun) error {
	if err := w.agent.start(ctx); err != nil {
		return err
	}
	defer w.agent.stop()
	for _, f := range benchFormats {
		progress("delivery (%s): %s", w.st.title, f.name)
		paused := false
		spec := w.spec
		spec.Prefix, spec.Enabled, spec.Backfill = w.prefix+"-"+f.slug, &paused, "7d"
		f.set(&spec)
		created, err := w.manage.CreateDestination(ctx, spec)
		if err != nil {
			return fmt.Errorf("creating the %s destination: %w\nagent log:\n%s", f.name, err, w.agent.logTail())
		}
		fw := *w
		fw.destID, fw.spec, fw.prefix, fw.cursor = created.ID, spec, spec.Prefix, created.Status.Cursor
		if events := w.cursor - fw.cursor; events != run.ingest.events {
			return fmt.Errorf("the %s destination starts with %d events to deliver, want the %d ingested", f.name, events, run.ingest.events)
		}
		d, err := fw.deliver(ctx, run.ingest.events, run.ingest.bytes, false)
		if err != nil {
			return fmt.Errorf("%s: %w\nagent log:\n%s", f.name, err, w.agent.logTail())
		}
		if err := fw.pause(ctx); err != nil {
			return err
		}
		run.formats = append(run.formats, formatRun{name: f.name, delivery: d, w: &fw})
		progress("delivery (%s): %s at %.0f events/s, %.2f x raw gzip NDJSON", w.st.title, f.name, d.eventsPerSec(), d.eventsPerSec()/run.delivery.eventsPerSec())
	}
	return nil
}

// windowWorld is the world whose destination delivers the window: the main
// one, or the OCSF Parquet one with -window-format ocsf-parquet.
func (w *world) windowWorld(o options, run *storeRun) *world {
	if o.windowFormat != windowFormat {
		return w
	}
	for i, f := range benchFormats {
		if f.slug == windowFormat && i < len(run.formats) {
			return run.formats[i].w
		}
	}
	return w
}

// printFormats prints the format rows of the delivery section.
func (r *report) printFormats(out io.Writer, row func(name string, values []string, unit, note string), each func(func(*storeRun) string) []string) {
	if len(r.runs) == 0 || len(r.runs[0].formats) == 0 {
		return
	}
	for i, f := range r.runs[0].formats {
		at := func(run *storeRun) *deliveryResult {
			if i < len(run.formats) {
				return &run.formats[i].delivery
			}
			return nil
		}
		row(f.name, each(func(run *storeRun) string {
			if d := at(run); d != nil {
				return count(int64(d.eventsPerSec()))
			}
			return "-"
		}), "events/s", "the same events, a destination of its own")
		row("", each(func(run *storeRun) string {
			if d := at(run); d != nil {
				return fmt.Sprintf("%.2f", d.eventsPerSec()/run.delivery.eventsPerSec())
			}
			return "-"
		}), "x gzip", "of raw gzip NDJSON delivery, same run")
		row("", each(func(run *storeRun) string {
			if d := at(run); d != nil {
				return fmt.Sprintf("%d / %.1f", len(d.objects), float64(d.bytesOut)/1e6)
			}
			return "-"
		}), "obj / MB", "written")
	}
	fmt.Fprintln(out)
}

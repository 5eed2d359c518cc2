package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/digest"
)

// The digest phase measures what the hourly integrity digests cost beside
// the delivery of the objects they list. A destination's digest of an hour
// is written once the hour is over, by the destination's delivery loop, at
// its first window end past the hour. For each destination measured, the
// agent is started again with its clock moved (AUDITEXPORT_BENCH_CLOCK_OFFSET)
// so that the end of the hour of the destination's last delivery comes
// digestLead after the start, the destination is enabled, and at the hour's
// end (by the agent's clock) the bench reads the agent's CPU and polls HEAD
// of the digest's key (digest.Key) until it is in the bucket: the digest
// work of a running agent, as at any hour boundary, plus the empty 1 s
// window delivered at the same moment.
//
// Two destinations are measured: the main one, whose hour holds the
// delivery of the whole backlog, and one of a tenant of its own that
// delivered -digest-windows small windows one after the other (1 s windows,
// -digest-window-events events each), as a destination on the 1-minute
// cadence does over an hour: its digest lists one object per window and
// event type.

// digestTenant is the tenant of the many-windows destination.
const digestTenant = "bench-windows"

// digestTarget is the most digests may cost, as a share of the delivery of
// the objects they list (agent CPU).
const digestTarget = 0.02

// digestLead is how long after the agent starts its clock reaches the hour's
// end: time to start, enable the destination and write the digests of any
// earlier hour.
const digestLead = 20 * time.Second

// digestRun is the phase's figures on one store.
type digestRun struct {
	main    digestPass
	windows *digestPass // nil when -digest-windows is 0
	skipped string      // why the phase did not run, "" when it did
}

// digestPass is the digests of one destination.
type digestPass struct {
	windows int   // deliveries made (the many-windows destination)
	events  int64 // events those deliveries moved
	hours   int   // hours from the destination's creation to its last delivery
	// timed is 1 when the digest of the last delivery's hour was measured,
	// 0 when it was already written (at an hour boundary during the run)
	// or the agent took longer than digestLead to get ready.
	timed   int
	objects int   // objects the last delivery's hour's digest lists
	bytes   int64 // that digest's size (gzip)
	// wall runs from the hour's end (by the agent's clock) to the digest
	// answering HEAD; cpu is the agent's CPU time in it.
	wall, cpu time.Duration
	// baseline is the agent's CPU time over the second before (from 1.5 s
	// to 0.5 s before the hour's end): one empty 1 s window, as at the
	// hour's end, without a digest.
	baseline time.Duration
	// delivery is the agent's CPU time delivering the objects listed.
	delivery time.Duration
}

func (p digestPass) ratio() float64 { return p.cpu.Seconds() / p.delivery.Seconds() }

// digestHours are a destination's digest keys, an hour each from its
// creation to its last delivery.
type digestHours struct {
	keys []string
	end  time.Time // the end of the last hour
}

// measureDigests runs the phase with the agent stopped, and stops it again.
func (w *world) measureDigests(ctx context.Context, o options, run *storeRun) error {
	dr := &digestRun{}
	run.digests = dr
	a, ok := w.agent.(*agentProc)
	if !ok {
		dr.skipped = "a profiling run: the in-process agent keeps the bench's clock"
		return nil
	}
	var ww *world
	if o.digestWindows > 0 {
		var err error
		if ww, err = w.deliverWindows(ctx, a, o, dr); err != nil {
			return err
		}
	}
	if err := w.agent.start(ctx); err != nil {
		return err
	}
	mainHours, err := w.digestHours(ctx)
	var windowHours digestHours
	if err == nil && ww != nil {
		windowHours, err = ww.digestHours(ctx)
	}
	w.agent.stop()
	if err != nil {
		return err
	}

	d := run.delivery
	if dr.main, err = w.timeDigests(ctx, a, mainHours, time.Duration(d.cpu.agent*float64(d.cpu.wall))); err != nil {
		return err
	}
	progress("digests (%s): the delivery's hour, %d objects listed, %s ms, %.4f of the delivery's CPU",
		w.st.title, dr.main.objects, ms(dr.main.wall), dr.main.ratio())
	if ww != nil {
		p, err := ww.timeDigests(ctx, a, windowHours, dr.windows.delivery)
		if err != nil {
			return err
		}
		p.windows, p.events = dr.windows.windows, dr.windows.events
		dr.windows = &p
		progress("digests (%s): %d windows' hour, %d objects listed, %s ms, %.4f of their delivery's CPU",
			w.st.title, p.windows, p.objects, ms(p.wall), p.ratio())
	}
	return nil
}

// envBenchClockOffset is the variable agent/serve.go reads to move its clock.
const envBenchClockOffset = "AUDITEXPORT_BENCH_CLOCK_OFFSET"

// digestWindowPoll is how long after a window end the bench first asks for
// the window's delivery: its status reads cost the agent CPU that would
// count as delivery.
const digestWindowPoll = 300 * time.Millisecond

// deliverWindows creates the many-windows tenant and its destination
// (enabled) and delivers o.digestWindows windows of o.digestWindowEvts
// events, one after the other, adding the agent's CPU from each post to its
// delivery to dr.windows.delivery. The destination is left paused and the
// agent stopped; the returned world is the destination's.
func (w *world) deliverWindows(ctx context.Context, a *agentProc, o options, dr *digestRun) (*world, error) {
	progress("digests (%s): %d windows of %d events for one destination", w.st.title, o.digestWindows, o.digestWindowEvts)
	if _, err := a.cli(ctx, "tenant", "create", digestTenant); err != nil {
		return nil, err
	}
	tok, err := a.cli(ctx, "token", "create", "-tenant", digestTenant)
	if err != nil {
		return nil, err
	}
	ww := *w
	if ww.manage, err = api.NewClient(a.endpoint, strings.TrimSpace(tok), nil); err != nil {
		return nil, err
	}
	if err := w.agent.start(ctx); err != nil {
		return nil, err
	}
	defer w.agent.stop()
	enabled := true
	ww.prefix = w.prefix + "-windows"
	ww.spec = w.spec
	ww.spec.Prefix, ww.spec.Interval, ww.spec.Enabled = ww.prefix, "1m", &enabled
	created, err := ww.manage.CreateDestination(ctx, ww.spec)
	if err != nil {
		return nil, fmt.Errorf("creating the many-windows destination: %w\nagent log:\n%s", err, a.logTail())
	}
	ww.destID, ww.cursor = created.ID, created.Status.Cursor

	pass := &digestPass{}
	gen := newEventGen(77, 0)
	var body []byte
	for i := range o.digestWindows {
		// Post well inside a second, so that the window ending at the next
		// second holds the batch whole: after the previous window's
		// delivery was seen, or just after the next second starts.
		if now := time.Now(); i == 0 || now.Sub(now.Truncate(time.Second)) > 800*time.Millisecond {
			time.Sleep(now.Truncate(time.Second).Add(time.Second + 20*time.Millisecond).Sub(now))
		}
		body = body[:0]
		for range o.digestWindowEvts {
			body = gen.appendEvent(body, time.Now())
			body = append(body, '\n')
		}
		if _, err := ww.ingest.PostEvents(ctx, digestTenant, body); err != nil {
			return nil, fmt.Errorf("window %d: posting events: %w", i, err)
		}
		c0 := preciseCPU(a.pid())
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + digestWindowPoll)))
		dest, err := ww.waitCursorEvery(ctx, ww.cursor+int64(o.digestWindowEvts), 100*time.Millisecond)
		if err != nil {
			return nil, fmt.Errorf("window %d: %w", i, err)
		}
		pass.delivery += preciseCPU(a.pid()) - c0
		pass.events += dest.Status.Cursor - ww.cursor
		ww.cursor = dest.Status.Cursor
		pass.windows++
	}
	dr.windows = pass
	if err := ww.pause(ctx); err != nil {
		return nil, err
	}
	return &ww, nil
}

// waitCursorEvery is waitCursor polling at the given interval.
func (w *world) waitCursorEvery(ctx context.Context, want int64, every time.Duration) (api.Destination, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		dest, err := w.manage.GetDestination(ctx, w.destID)
		if err != nil {
			return dest, fmt.Errorf("reading the destination: %w", err)
		}
		if dest.Status.Cursor >= want && dest.Status.LagEvents == 0 {
			return dest, nil
		}
		if time.Now().After(deadline) {
			return dest, fmt.Errorf("not delivered within 2 minutes (cursor %d of %d, last error %q)\nagent log:\n%s",
				dest.Status.Cursor, want, dest.Status.LastError, w.agent.logTail())
		}
		select {
		case <-ctx.Done():
			return dest, ctx.Err()
		case <-time.After(every):
		}
	}
}

// digestHours reads the destination's hours through the API.
func (w *world) digestHours(ctx context.Context) (digestHours, error) {
	dest, err := w.manage.GetDestination(ctx, w.destID)
	if err != nil {
		return digestHours{}, err
	}
	if dest.Status.LastDeliveryAt == nil {
		return digestHours{}, fmt.Errorf("digests: destination %s has not delivered", w.destID)
	}
	last := dest.Status.LastDeliveryAt.UTC().Truncate(time.Hour)
	h := digestHours{end: last.Add(time.Hour)}
	for t := dest.CreatedAt.UTC().Truncate(time.Hour); !t.After(last); t = t.Add(time.Hour) {
		h.keys = append(h.keys, digest.Key(w.prefix, w.destID, t))
	}
	return h, nil
}

// timeDigests starts the agent with its clock digestLead before the end of
// the hours' last hour, enables the destination, and measures the digest of
// that hour being written at the hour's end; it then pauses the destination,
// stops the agent and reads the digest. delivery is the agent's CPU time
// for delivering what it lists.
func (w *world) timeDigests(ctx context.Context, a *agentProc, h digestHours, delivery time.Duration) (digestPass, error) {
	p := digestPass{delivery: delivery, hours: len(h.keys)}
	client := w.s3.client()
	last := h.keys[len(h.keys)-1]
	if ok, _ := headObject(ctx, client, w.s3.bucket, last); !ok {
		offset := time.Until(h.end.Add(-digestLead)).Round(time.Millisecond)
		at := h.end.Add(-offset) // when the agent's clock reaches the hour's end
		env := a.env
		a.env = append(append([]string(nil), env...), envBenchClockOffset+"="+offset.String())
		err := a.start(ctx)
		a.env = env
		if err != nil {
			return p, err
		}
		defer a.stop()
		enabled := true
		spec := w.spec
		spec.Enabled = &enabled
		if _, err := w.manage.UpdateDestination(ctx, w.destID, spec); err != nil {
			return p, fmt.Errorf("enabling the destination: %w", err)
		}
		// The earlier hours' digests are written as the loop starts.
		for _, k := range h.keys[:len(h.keys)-1] {
			if err := waitObject(ctx, client, w.s3.bucket, k, at.Add(2*time.Minute), a); err != nil {
				return p, err
			}
		}
		if time.Until(at) < 2*time.Second {
			progress("digests (%s): the agent took longer than %s to be ready; the digest is not timed", w.st.title, digestLead)
		} else {
			time.Sleep(time.Until(at.Add(-1500 * time.Millisecond)))
			b0 := preciseCPU(a.pid())
			time.Sleep(time.Until(at.Add(-500 * time.Millisecond)))
			p.baseline = preciseCPU(a.pid()) - b0
			time.Sleep(time.Until(at))
			c0 := preciseCPU(a.pid())
			if err := waitObject(ctx, client, w.s3.bucket, last, at.Add(2*time.Minute), a); err != nil {
				return p, err
			}
			p.wall, p.cpu, p.timed = time.Since(at), preciseCPU(a.pid())-c0, 1
		}
		if err := waitObject(ctx, client, w.s3.bucket, last, at.Add(2*time.Minute), a); err != nil {
			return p, err
		}
		if err := w.pause(ctx); err != nil {
			return p, err
		}
	}
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(w.s3.bucket), Key: aws.String(last)})
	if err != nil {
		return p, fmt.Errorf("reading digest %s: %w", last, err)
	}
	body, err := io.ReadAll(io.LimitReader(out.Body, digest.MaxBytes))
	out.Body.Close()
	if err != nil {
		return p, fmt.Errorf("reading digest %s: %w", last, err)
	}
	parsed, err := digest.Decode(body)
	if err != nil {
		return p, fmt.Errorf("digest %s: %w", last, err)
	}
	p.objects, p.bytes = len(parsed.Document.Objects), int64(len(body))
	return p, nil
}

// waitObject polls HEAD of key every 20 ms until it answers or the
// deadline passes.
func waitObject(ctx context.Context, client *s3.Client, bucket, key string, deadline time.Time, a *agentProc) error {
	for {
		ok, err := headObject(ctx, client, bucket, key)
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("digest %s not in the bucket by %s (HEAD: %w)\nagent log:\n%s",
				key, deadline.Format(time.TimeOnly), err, a.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// headObject reports whether key exists; err is the HEAD's error when not.
func headObject(ctx context.Context, client *s3.Client, bucket, key string) (bool, error) {
	_, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	return err == nil, err
}

// preciseCPU is the CPU time of a process's threads from their scheduler
// statistics (nanoseconds, where /proc/<pid>/stat counts in 10 ms ticks):
// a digest takes milliseconds. It falls back to procCPU.
func preciseCPU(pid int) time.Duration {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return procCPU(pid)
	}
	var total time.Duration
	for _, t := range tasks {
		data, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread exited
		}
		f := strings.Fields(string(data))
		if len(f) == 0 {
			return procCPU(pid)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return procCPU(pid)
		}
		total += time.Duration(ns)
	}
	return total
}

// printDigests prints the digest section, a column per store.
func (r *report) printDigests(out io.Writer, row func(name string, values []string, unit, note string), each func(func(*storeRun) string) []string, section func(string)) {
	runs := r.runs
	if len(runs) == 0 || runs[0].digests == nil {
		return
	}
	if why := runs[0].digests.skipped; why != "" {
		section("DIGESTS: skipped (" + why + ")")
		return
	}
	section("DIGESTS: the hourly integrity digest of a destination's hour, written at the hour's end by the running agent (its clock moved with " + envBenchClockOffset + ")")
	pass := func(name string, get func(*digestRun) *digestPass, deliveryNote string) {
		cell := func(f func(p *digestPass) string) []string {
			return each(func(run *storeRun) string {
				if run.digests == nil || get(run.digests) == nil {
					return "-"
				}
				return f(get(run.digests))
			})
		}
		timed := func(f func(p *digestPass) string) []string {
			return cell(func(p *digestPass) string {
				if p.timed == 0 {
					return "-"
				}
				return f(p)
			})
		}
		row(name+": objects listed", cell(func(p *digestPass) string { return count(int64(p.objects)) }), "", deliveryNote)
		row("digest size", cell(func(p *digestPass) string { return fmt.Sprintf("%.1f", float64(p.bytes)/1e3) }), "kB", "gzip")
		row("hour's end -> digest in bucket", timed(func(p *digestPass) string { return ms(p.wall) }), "ms",
			"by the agent's clock; HEAD of digest.Key polled every 20 ms; - when not timed (written during the run)")
		row("agent CPU for the digest", timed(func(p *digestPass) string { return ms(p.cpu) }), "ms",
			"scheduler statistics of the agent's threads; includes the empty 1 s window delivered at the same moment")
		row("agent CPU of a second before", timed(func(p *digestPass) string { return ms(p.baseline) }), "ms",
			"one empty 1 s window and no digest: the digest alone is about the difference")
		row("agent CPU of the delivery", cell(func(p *digestPass) string { return ms(p.delivery) }), "ms", "of the objects listed")
		row("digest / delivery (CPU)", timed(func(p *digestPass) string { return fmt.Sprintf("%.4f", p.ratio()) }), "", "the digest with the empty window, over the delivery")
		row(fmt.Sprintf("digest target < %.2f", digestTarget), timed(func(p *digestPass) string { return mark(p.ratio() < digestTarget) }), "", "of the delivery's CPU")
	}
	pass("delivery's hour", func(d *digestRun) *digestPass { return &d.main }, "the main destination's hour: the objects of the delivery above")
	if runs[0].digests.windows != nil {
		w := runs[0].digests.windows
		fmt.Fprintln(out)
		pass(fmt.Sprintf("%d windows", w.windows), func(d *digestRun) *digestPass { return d.windows },
			fmt.Sprintf("a destination of its own: %d windows of 1 s delivered one after the other, %s events in all, an object per window and event type, as a 1-minute cadence makes in an hour; the delivery's CPU is from each post to the bench seeing it delivered, status reads included",
				w.windows, count(w.events)))
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/delivery"
	"github.com/auditexport/auditexport/internal/store"
)

// tenantName is the bench's tenant; its events land under
// {prefix}/{event_type}/{day}/bench/.
const tenantName = "bench"

// destPrefix starts the destination's key prefix, which ends with the
// store's name: every agent writes to the same bucket, under its own prefix.
const destPrefix = "audit-"

// world is the running agent on one store with its tenant, tokens and one
// destination writing to the S3 server with the bucket owner's static keys.
type world struct {
	s3     *s3Server
	st     *benchStore
	open   store.Config // opens the agent's store from the bench
	prefix string       // the destination's key prefix
	agent  agentRunner
	files  *agentProc  // the agent's config, data directory and commands
	ingest *api.Client // ingest token
	manage *api.Client // the tenant's manage token
	destID string
	spec   api.DestinationSpec // as created, with the secret
	cursor int64               // the destination's cursor after the last delivery
}

// newWorld writes the config of an agent on st under dir/<store>, starts
// the agent once to create its store, creates the tenant and tokens with the
// agent's operator commands (the agent stopped), starts the agent again
// (as its own process, or inside the bench when inProcess is set) and
// creates the destination, paused, through the API.
func newWorld(ctx context.Context, agentBin, dir string, s3 *s3Server, st *benchStore, inProcess bool) (*world, error) {
	dir = filepath.Join(dir, st.name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	a, err := newAgentProc(agentBin, dir, s3, st)
	if err != nil {
		return nil, err
	}
	w := &world{s3: s3, st: st, open: st.cfg, prefix: destPrefix + st.name, agent: a, files: a}
	if w.open.PostgresURL == "" {
		w.open.SQLitePath = sqlitePath(a.dataDir)
	}
	if inProcess {
		w.agent = &inProcessAgent{files: a}
	}
	// The operator commands change the store serve created, and never
	// create one: start the agent once first.
	if err := w.agent.start(ctx); err != nil {
		return nil, err
	}
	w.agent.stop()
	if _, err := a.cli(ctx, "tenant", "create", tenantName); err != nil {
		return nil, err
	}
	ingestTok, err := a.cli(ctx, "token", "create", "-scope", api.ScopeIngest)
	if err != nil {
		return nil, err
	}
	manageTok, err := a.cli(ctx, "token", "create", "-tenant", tenantName)
	if err != nil {
		return nil, err
	}
	// One connection per client, kept alive between requests.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 512
	httpClient := &http.Client{Transport: transport, Timeout: 5 * time.Minute}
	if w.ingest, err = api.NewClient(a.endpoint, strings.TrimSpace(ingestTok), httpClient); err != nil {
		return nil, err
	}
	if w.manage, err = api.NewClient(a.endpoint, strings.TrimSpace(manageTok), httpClient); err != nil {
		return nil, err
	}
	if err := w.agent.start(ctx); err != nil {
		return nil, err
	}
	paused := false
	w.spec = api.DestinationSpec{
		Bucket: s3.bucket, Region: region, Prefix: w.prefix,
		AccessKeyID: s3.accessKey, SecretAccessKey: s3.secret,
		Interval: "1h", Enabled: &paused,
	}
	dest, err := w.manage.CreateDestination(ctx, w.spec)
	if err != nil {
		return nil, fmt.Errorf("creating the destination: %w\nagent log:\n%s", err, w.agent.logTail())
	}
	w.destID, w.cursor = dest.ID, dest.Status.Cursor
	return w, nil
}

// pids are the agent's, the S3 server's and the PostgreSQL server's
// processes.
func (w *world) pids() pids { return pids{agent: w.agent.pid(), s3: w.s3.pid, db: w.st.pid} }

// measureIngestAndDelivery ingests o.events events over HTTP, then delivers
// them, and stops the agent.
func (w *world) measureIngestAndDelivery(ctx context.Context, o options, run *storeRun) error {
	progress("ingest (%s): %s events, %d clients, %d events per request", w.st.title, count(o.events), o.clients, o.batch)
	var res ingestResult
	err := profiled(o.profile, "ingest", func() (err error) {
		res, err = runIngest(ctx, w.ingest, tenantName, o.events, o.batch, o.clients, 1, 0,
			w.pids(), progressEvery("ingest", o.events, 10*time.Second))
		return err
	})
	if err != nil {
		return fmt.Errorf("ingest: %w\nagent log:\n%s", err, w.agent.logTail())
	}
	run.ingest = res
	progress("ingest (%s): %.0f events/s", w.st.title, res.eventsPerSec())

	progress("delivery (%s): %s events (%.0f MB of NDJSON)", w.st.title, count(res.events), float64(res.bytes)/1e6)
	var d deliveryResult
	err = profiled(o.profile, "delivery", func() (err error) {
		d, err = w.deliver(ctx, res.events, res.bytes, false)
		return err
	})
	if err != nil {
		return err
	}
	run.delivery = d
	progress("delivery (%s): %.0f events/s", w.st.title, d.eventsPerSec())
	if err := w.pause(ctx); err != nil {
		return err
	}
	w.agent.stop()
	return nil
}

// measureWindow fills a window of o.windowGB GiB of NDJSON through the API
// (with the destination paused), restarts the agent so that its peak RSS
// counts delivery only, and delivers the window.
func (w *world) measureWindow(ctx context.Context, o options, rep *report) error {
	avg := averageEventBytes(o.windowEventBytes)
	target := o.windowGB * (1 << 30)
	events := int64(math.Ceil(target / avg))
	rep.windowStore = w.st.title
	progress("window (%s): filling %.2f GiB (%s events of ~%.0f bytes)", w.st.title, o.windowGB, count(events), avg)
	if err := w.agent.start(ctx); err != nil {
		return err
	}
	fill, err := runIngest(ctx, w.ingest, tenantName, events, o.batch, o.clients, 2, o.windowEventBytes,
		w.pids(), progressEvery("window fill", events, 10*time.Second))
	if err != nil {
		return fmt.Errorf("window fill: %w\nagent log:\n%s", err, w.agent.logTail())
	}
	rep.fill = fill
	rep.windowEventBytes = o.windowEventBytes
	progress("window: filled at %.0f events/s; restarting the agent", fill.eventsPerSec())
	w.agent.stop()
	if err := w.agent.start(ctx); err != nil {
		return err
	}
	d, err := w.deliver(ctx, fill.events, fill.bytes, true)
	if err != nil {
		return err
	}
	rep.window = &d
	progress("window: delivered at %.0f events/s, peak RSS %.1f MiB", d.eventsPerSec(), float64(d.peakRSS)/(1<<20))
	w.agent.stop()
	return nil
}

// averageEventBytes is the mean NDJSON line length (newline included) of the
// generator's events of the given size.
func averageEventBytes(size int) float64 {
	g := newEventGen(99, size)
	var total int
	var b []byte
	now := time.Now()
	for range 10000 {
		b = g.appendEvent(b[:0], now)
		total += len(b) + 1
	}
	return float64(total) / 10000
}

// deliveryResult is one delivery of a paused backlog.
type deliveryResult struct {
	events   int64
	bytesIn  int64 // NDJSON bytes of the events, newlines included
	bytesOut int64 // gzip bytes written to the bucket (the new objects' sizes)
	// statusBytes is what the destination's bytes_delivered counter grew
	// by; it should equal bytesOut.
	statusBytes int64
	objects     []object
	// elapsed runs from the window end the agent delivered at to its commit
	// of the plan (both stamped by the agent); wall from the API call that
	// enabled the destination to the status showing no lag.
	elapsed, wall    time.Duration
	cpu              cpuUse // from the window end to no lag
	peakRSS, lastRSS int64  // VmHWM and VmRSS of the agent, when sampled
	maxSampledRSS    int64
}

// object is a delivered object.
type object struct {
	key  string
	size int64
}

func (d deliveryResult) eventsPerSec() float64 { return float64(d.events) / d.elapsed.Seconds() }
func (d deliveryResult) mbPerSec() float64     { return float64(d.bytesIn) / 1e6 / d.elapsed.Seconds() }

// windowEndRe finds {window_end} in the default key layout.
var windowEndRe = regexp.MustCompile(`(\d{8}T\d{6}Z)_\d+-\d+_\d+\.`)

// deliver enables the destination and waits until its cursor has moved by
// events. The agent plans the whole backlog in one window: timing starts at
// the destination's turn after that window's end (the first 1 s tick after
// enabling, read back from the objects' keys, plus its fixed spread) and
// ends at the commit (the status's last_delivery_at).
func (w *world) deliver(ctx context.Context, events, bytesIn int64, sampleRSS bool) (deliveryResult, error) {
	res := deliveryResult{events: events, bytesIn: bytesIn}
	before, err := w.listObjects(ctx)
	if err != nil {
		return res, err
	}
	base, err := w.manage.GetDestination(ctx, w.destID)
	if err != nil {
		return res, err
	}

	var rss *rssSampler
	if sampleRSS {
		rss = startRSS(w.agent.pid())
		defer rss.stop()
	}

	// Enable just after a second starts: with a 1 s tick the agent then
	// delivers at the end of that second.
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second + 20*time.Millisecond).Sub(now))
	t0 := time.Now()
	enabled := true
	spec := w.spec
	spec.Enabled = &enabled
	if _, err := w.manage.UpdateDestination(ctx, w.destID, spec); err != nil {
		return res, fmt.Errorf("enabling the destination: %w", err)
	}
	guessEnd := t0.Truncate(time.Second).Add(time.Second)
	// The agent idles until the window end: measure CPU from there.
	time.Sleep(time.Until(guessEnd))
	meter := startCPU(w.pids())

	dest, err := w.waitCursor(ctx, w.cursor+events)
	res.wall = time.Since(t0)
	res.cpu = meter.stop()
	if rss != nil {
		if st, err := procStatus(w.agent.pid()); err == nil {
			res.peakRSS, res.lastRSS = st["VmHWM"], st["VmRSS"]
		}
		res.maxSampledRSS = rss.stop()
	}
	if err != nil {
		return res, err
	}
	st := dest.Status
	if got := st.EventsDelivered - base.Status.EventsDelivered; got != events {
		return res, fmt.Errorf("the agent delivered %d events, want %d", got, events)
	}
	w.cursor = st.Cursor
	res.statusBytes = st.BytesDelivered - base.Status.BytesDelivered

	after, err := w.listObjects(ctx)
	if err != nil {
		return res, err
	}
	seen := make(map[string]bool, len(before))
	for _, o := range before {
		seen[o.key] = true
	}
	windowEnd := guessEnd
	for _, o := range after {
		if seen[o.key] {
			continue
		}
		res.objects = append(res.objects, o)
		res.bytesOut += o.size
		if m := windowEndRe.FindStringSubmatch(path.Base(o.key)); m != nil {
			if t, err := time.Parse("20060102T150405Z", m[1]); err == nil {
				windowEnd = t
			}
		}
	}
	if int64(len(res.objects)) != st.ObjectsDelivered-base.Status.ObjectsDelivered {
		return res, fmt.Errorf("%d new objects in the bucket, the agent reports %d", len(res.objects), st.ObjectsDelivered-base.Status.ObjectsDelivered)
	}
	if st.LastDeliveryAt == nil {
		return res, errors.New("the destination reports no last delivery")
	}
	// The agent's turn for the destination comes its fixed spread after
	// the window end (up to a twelfth of the 1 s tick): a scheduling delay
	// that would make the rate move with the destination's id.
	res.elapsed = st.LastDeliveryAt.Sub(windowEnd) - delivery.TurnDelay(w.destID, delivery.Schedule{Interval: time.Second})
	if res.elapsed <= 0 || res.elapsed > res.wall {
		return res, fmt.Errorf("delivery timing is off: window end %s, committed %s, enabled %s",
			windowEnd.Format(time.RFC3339Nano), st.LastDeliveryAt.Format(time.RFC3339Nano), t0.Format(time.RFC3339Nano))
	}
	return res, nil
}

// rssSampler records the largest VmRSS of a process, read every 100 ms.
type rssSampler struct {
	done chan struct{}
	max  chan int64
}

func startRSS(pid int) *rssSampler {
	r := &rssSampler{done: make(chan struct{}), max: make(chan int64, 1)}
	go func() {
		var peak int64
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if st, err := procStatus(pid); err == nil {
				peak = max(peak, st["VmRSS"])
			}
			select {
			case <-r.done:
				r.max <- peak
				return
			case <-t.C:
			}
		}
	}()
	return r
}

// stop ends the sampling and returns the largest VmRSS seen; later calls
// return 0.
func (r *rssSampler) stop() int64 {
	select {
	case <-r.done:
		return 0
	default:
	}
	close(r.done)
	return <-r.max
}

// waitCursor polls the destination until its cursor reaches want. It gives
// up when the context ends or the destination has failed for 2 minutes.
func (w *world) waitCursor(ctx context.Context, want int64) (api.Destination, error) {
	var lastErr string
	for {
		dest, err := w.manage.GetDestination(ctx, w.destID)
		if err != nil {
			return dest, fmt.Errorf("reading the destination: %w", err)
		}
		st := dest.Status
		if st.Cursor >= want && st.LagEvents == 0 {
			return dest, nil
		}
		if st.LastError != "" && st.LastError != lastErr {
			lastErr = st.LastError
			progress("delivery attempt failed: %s", st.LastError)
		}
		if st.FailingSince != nil && time.Since(*st.FailingSince) > 2*time.Minute {
			return dest, fmt.Errorf("delivery failing since %s: %s\nagent log:\n%s", st.FailingSince, st.LastError, w.agent.logTail())
		}
		select {
		case <-ctx.Done():
			return dest, fmt.Errorf("waiting for delivery (cursor %d of %d): %w", st.Cursor, want, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// pause disables the destination.
func (w *world) pause(ctx context.Context) error {
	paused := false
	spec := w.spec
	spec.Enabled = &paused
	if _, err := w.manage.UpdateDestination(ctx, w.destID, spec); err != nil {
		return fmt.Errorf("pausing the destination: %w", err)
	}
	return nil
}

// listObjects lists the data objects under the destination's prefix (not
// its digests).
func (w *world) listObjects(ctx context.Context) ([]object, error) {
	var out []object
	pages := s3.NewListObjectsV2Paginator(w.s3.client(), &s3.ListObjectsV2Input{
		Bucket: aws.String(w.s3.bucket), Prefix: aws.String(w.prefix + "/"),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the bucket: %w", err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if strings.HasPrefix(key, w.prefix+"/_auditexport/") {
				continue // an hourly digest, written when a run crosses the hour
			}
			out = append(out, object{key: key, size: aws.ToInt64(o.Size)})
		}
	}
	return out, nil
}

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/testenv"
	"github.com/auditexport/auditexport/internal/tokens"
)

// The many-destinations scenarios (-scenario):
//
//   - tenants: -tenants tenants with one destination each on the 1-minute
//     cadence, events posted through the HTTP ingest to every tenant every
//     minute, -boundaries minute boundaries measured, with the agent's clock
//     moved so that one of them is an hour's end (-hour-boundary);
//   - tenants-hourly: -tenants tenants on the hourly cadence plus -daily
//     tenants on daily_at, with the agent's clock moved
//     (AUDITEXPORT_BENCH_CLOCK_OFFSET) so that midnight, an hour boundary,
//     comes 70 s after the agent starts and the daily_at time a minute later.
//
// Every destination assumes its own role (the bench's STS, throttled at
// -sts-rate) and writes to versitygw; the agent runs on SQLite with its
// default delivery settings unless -workers is set.
const (
	scenarioTenants       = "tenants"
	scenarioTenantsHourly = "tenants-hourly"
)

// tenantOptions are the scenarios' flags.
type tenantOptions struct {
	tenants    int
	daily      int
	events     int // per tenant per minute
	boundaries int
	workers    int
	stsRate    float64
	profile    string // the agent's CPU profile, when set
	hour       bool   // -scenario tenants: an hour's end among the boundaries
	keys       string // the destinations' key_template, "" for the default
}

func tenantFlags(fs *flag.FlagSet, o *tenantOptions) {
	fs.IntVar(&o.tenants, "tenants", 0, "-scenario tenants*: tenants, one destination each (1m cadence, or hourly with tenants-hourly); 0 is 10,000 for tenants and 1,000 for tenants-hourly")
	fs.IntVar(&o.daily, "daily", 100, "-scenario tenants-hourly: further tenants whose destination is on daily_at")
	fs.IntVar(&o.events, "tenant-events", 20, "-scenario tenants*: events posted per tenant per minute, in one request")
	fs.IntVar(&o.boundaries, "boundaries", 5, "-scenario tenants: minute boundaries measured after the first delivery of every destination")
	fs.IntVar(&o.workers, "workers", 0, "-scenario tenants*: the agent's delivery.workers (0: the agent's default)")
	fs.StringVar(&o.keys, "key-template", "", "-scenario tenants*: the destinations' key_template (default: the agent's, an object per event name; one without {event_type} writes one object per window)")
	fs.BoolVar(&o.hour, "hour-boundary", true, "-scenario tenants: move the agent's clock so that an hour ends about the third measured boundary, where every destination also writes its hourly digest")
	fs.StringVar(&o.profile, "agent-profile", "", "-scenario tenants*: write the agent's CPU profile of the whole run to this `file` (AUDITEXPORT_CPU_PROFILE)")
	fs.Float64Var(&o.stsRate, "sts-rate", 100, "-scenario tenants*: AssumeRole calls per second the bench's STS answers before it throttles")
}

func (o *tenantOptions) check(scenario string) error {
	if o.tenants == 0 {
		o.tenants = 10_000
		if scenario == scenarioTenantsHourly {
			o.tenants = 1000
		}
	}
	switch {
	case o.tenants < 1 || o.tenants > 100_000:
		return errors.New("-tenants: between 1 and 100000")
	case o.daily < 0 || o.daily > 100_000:
		return errors.New("-daily: between 0 and 100000")
	case o.events < 1 || o.events > 1000:
		return errors.New("-tenant-events: between 1 and 1000")
	case o.boundaries < 1 || o.boundaries > 60:
		return errors.New("-boundaries: between 1 and 60")
	case o.workers < 0:
		return errors.New("-workers: 0 or more")
	}
	return nil
}

// fleetGroup is destinations sharing a schedule.
type fleetGroup struct {
	name     string // for the report: "1m", "1h", "daily_at 00:01"
	count    int
	interval string
	dailyAt  string
}

// hourOffset moves the agent's clock by whole minutes so that an hour ends
// at about the third minute boundary after the cold start: the setup (about
// 30 s), every role assumed at the STS's pace, then three minutes. At an
// hour's end every destination writes its digest as well as its delivery,
// the busiest minute of every hour.
func hourOffset(now time.Time, o tenantOptions) time.Duration {
	cold := time.Duration(float64(o.tenants) / o.stsRate * float64(time.Second))
	at := now.UTC().Add(30*time.Second + cold + 3*time.Minute).Truncate(time.Minute)
	return at.Truncate(time.Hour).Add(time.Hour).Sub(at) % time.Hour
}

// fleet is the running agent with its many tenants.
type fleet struct {
	o      tenantOptions
	agent  *agentProc
	s3     *s3Server
	sts    *benchSTS
	db     string // the agent's SQLite file
	ingest *api.Client
	offset time.Duration // the agent's clock minus the bench's
	groups []fleetGroup
	dests  map[string]*fleetDest // by destination id
	names  []string              // tenant names, in the generator's order
}

// fleetDest is one destination as the bench follows it.
type fleetDest struct {
	group    int
	sched    []time.Time // the window ends measured, in agent time
	last     time.Time   // last_delivery_at seen
	objects  int64
	firstAt  time.Time           // first delivery seen
	lags     map[time.Time]lagAt // by window end
	failures int                 // attempts seen failing
}

type lagAt struct {
	lag     time.Duration
	objects int64
}

// boundaryResult is one window end's figures.
type boundaryResult struct {
	at         time.Time // agent time
	group      string
	expected   int
	delivered  int
	lags       []time.Duration // sorted
	objects    int64
	lastCommit time.Duration // from the window end
	cpu        time.Duration // the agent's CPU from this window end to the next (or to the last delivery)
	rss        int64         // agent VmRSS when the boundary's deliveries were done
	agentCores float64
	otherCores float64
	s3Cores    float64
	benchCores float64
}

// tenantsReport is what the scenario prints.
type tenantsReport struct {
	scenario       string
	o              tenantOptions
	groups         []fleetGroup
	machine        machine
	s3             string
	offset         time.Duration
	setup          time.Duration
	idleRSS        int64 // the agent with every loop started, before any window end
	idleGoroutines float64
	idleMetrics    int // /metrics bytes before the first delivery
	coldStart      time.Duration
	coldDone       time.Time     // agent time when every destination had delivered once (zero: never)
	coldFirstEnd   time.Duration // from the first window end after start
	coldSTS        stsStats
	steadySTS      stsStats
	boundaries     []boundaryResult
	peakRSS        int64
	metricsBytes   int
	metricsTime    time.Duration
	goroutines     float64
	posted         int64
	ingestErrors   int64
	failures       int
	digests        []hourDigests
}

// hourDigests is how the digests of an hour that ended in the run went.
type hourDigests struct {
	end     time.Time // the hour's end, agent time
	written int
	last    time.Duration // from the hour's end to the last one written
}

func runTenants(ctx context.Context, scenario string, o options, out io.Writer) (err error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	s3bin, err := testenv.FindVersityGW()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "auditexport-bench-tenants-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep {
			progress("kept %s", tmp)
			return
		}
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = rerr
		}
	}()
	rep := &tenantsReport{scenario: scenario, o: o.tenants, machine: probeMachine(tmp)}
	progress("building the agent")
	bin, err := buildAgent(ctx, root, tmp)
	if err != nil {
		return err
	}
	// S3 keeps connections alive, versitygw only when asked: without it
	// every PUT would open a connection, on both sides of the 2 cores.
	if err := os.Setenv("VGW_KEEP_ALIVE", "true"); err != nil {
		return err
	}
	s3, err := startS3(ctx, "versitygw", s3bin, tmp)
	if err != nil {
		return err
	}
	defer s3.stop()
	rep.s3 = s3.desc + ", keep-alive"
	// Sessions of an hour, as AWS's default: none expires in a run, so
	// every call past one per role is the agent's doing.
	sts, err := startBenchSTS(s3.accessKey, s3.secret, o.tenants.stsRate, time.Hour)
	if err != nil {
		return err
	}
	defer sts.stop()

	f := &fleet{o: o.tenants, s3: s3, sts: sts, dests: map[string]*fleetDest{}}
	if scenario == scenarioTenantsHourly {
		// Midnight (agent time) 70 s after the agent starts: an hour
		// boundary and a day boundary, then daily_at 00:01.
		now := time.Now().UTC()
		midnight := now.Truncate(24 * time.Hour).Add(24 * time.Hour)
		f.offset = midnight.Add(-70*time.Second - 30*time.Second).Sub(now) // 30 s for the setup below
		f.offset = f.offset.Round(time.Second)
		f.groups = []fleetGroup{{name: "1h", count: o.tenants.tenants, interval: "1h"}}
		if o.tenants.daily > 0 {
			f.groups = append(f.groups, fleetGroup{name: "daily_at 00:01", count: o.tenants.daily, dailyAt: "00:01"})
		}
	} else {
		f.groups = []fleetGroup{{name: "1m", count: o.tenants.tenants, interval: "1m"}}
		if o.tenants.hour {
			f.offset = hourOffset(time.Now(), o.tenants)
		}
	}
	rep.groups, rep.offset = f.groups, f.offset
	if err := f.setup(ctx, bin, tmp); err != nil {
		return err
	}
	defer f.agent.stop()
	start := time.Now()
	if err := f.populate(ctx); err != nil {
		return err
	}
	rep.setup = time.Since(start)
	if err := f.run(ctx, scenario, rep); err != nil {
		return fmt.Errorf("%w\nagent log:\n%s", err, f.agent.logTail())
	}
	rep.print(out)
	return nil
}

// tenantsAgentConfig is the agent of the scenarios: the bench's STS, no
// tick (each destination's own cadence), the agent's delivery defaults.
const tenantsAgentConfig = `
listen    = %q
data_dir  = %q
log_level = "warn"

aws {
  region            = %q
  s3_endpoint       = %q
  sts_endpoint      = %q
  s3_use_path_style = true
  principal_arn     = "arn:aws:iam::000000000000:user/auditexport-bench"
  access_key_id     = "AKIABENCHPRINCIPAL00"
  secret_access_key = "bench-principal-secret"
  assume_role_retry = "0s"
}

ingest {
  tenant_rate_per_second = 0
}
%s`

func (f *fleet) setup(ctx context.Context, bin, dir string) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	dir = filepath.Join(dir, "agent")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	a := &agentProc{
		bin: bin, config: filepath.Join(dir, "agent.hcl"), dataDir: filepath.Join(dir, "agent-data"),
		endpoint: "http://" + addr, logPath: filepath.Join(dir, "agent.log"),
	}
	if f.offset != 0 {
		a.env = []string{"AUDITEXPORT_BENCH_CLOCK_OFFSET=" + f.offset.String()}
	}
	if f.o.profile != "" {
		abs, err := filepath.Abs(f.o.profile)
		if err != nil {
			return err
		}
		a.env = append(a.env, "AUDITEXPORT_CPU_PROFILE="+abs)
	}
	delivery := ""
	if f.o.workers > 0 {
		delivery = fmt.Sprintf("delivery {\n  workers = %d\n}\n", f.o.workers)
	}
	cfg := fmt.Sprintf(tenantsAgentConfig, addr, a.dataDir, region, f.s3.url, f.sts.url, delivery)
	if err := os.WriteFile(a.config, []byte(cfg), 0o600); err != nil {
		return err
	}
	f.agent, f.db = a, sqlitePath(a.dataDir)
	// serve creates the store; the operator commands and the bench then
	// fill it.
	if err := a.start(ctx); err != nil {
		return err
	}
	a.stop()
	tok, err := a.cli(ctx, "token", "create", "-scope", api.ScopeIngest)
	if err != nil {
		return err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	f.ingest, err = api.NewClient(a.endpoint, strings.TrimSpace(tok), &http.Client{Transport: transport, Timeout: 2 * time.Minute})
	return err
}

// populate creates the tenants and their destinations in the store, with
// the agent stopped: the API would run a connection test per destination,
// which is not what the scenario measures.
func (f *fleet) populate(ctx context.Context) error {
	total := 0
	for _, g := range f.groups {
		total += g.count
	}
	progress("creating %d tenants and destinations in the store", total)
	st, err := store.Open(ctx, store.Config{SQLitePath: f.db})
	if err != nil {
		return err
	}
	defer st.Close()
	n := 0
	for gi, g := range f.groups {
		for range g.count {
			name := fmt.Sprintf("t%05d", n)
			n++
			t, err := st.CreateTenant(ctx, name, tokens.NewExternalID())
			if err != nil {
				return err
			}
			spec := api.DestinationSpec{
				Bucket: f.s3.bucket, Region: region, Prefix: "fleet",
				RoleARN:  fmt.Sprintf("arn:aws:iam::%012d:role/auditexport-%s", 100000000000+n, name),
				Interval: g.interval, DailyAt: g.dailyAt, KeyTemplate: f.o.keys,
			}
			if err := spec.Normalize(); err != nil {
				return err
			}
			// versitygw owns buckets by access key, and checks
			// x-amz-expected-bucket-owner against it: the owner the agent
			// sends is the gateway user's key rather than an account id
			// (written past the API, which would refuse it).
			spec.ExpectedBucketOwner = f.s3.accessKey
			data, err := json.Marshal(spec)
			if err != nil {
				return err
			}
			d, err := st.CreateDestination(ctx, store.Destination{ID: fmt.Sprintf("dst_%s", name), TenantID: t.ID, Spec: data})
			if err != nil {
				return err
			}
			f.dests[d.ID] = &fleetDest{group: gi, lags: map[time.Time]lagAt{}}
			f.names = append(f.names, name)
		}
	}
	return nil
}

// now is the agent's time.
func (f *fleet) now() time.Time { return time.Now().Add(f.offset).UTC() }

// run starts the agent, posts each tenant's events once a minute and
// follows every destination's deliveries until the measured window ends
// are all delivered (or a minute past the last one).
func (f *fleet) run(ctx context.Context, scenario string, rep *tenantsReport) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	progress("starting the agent with %d destinations", len(f.dests))
	t0 := time.Now()
	if err := f.agent.start(ctx); err != nil {
		return err
	}
	pid := f.agent.pid()
	rss := startRSS(pid)
	defer rss.stop()

	// The last window end measured, in agent time.
	agentT0 := f.now()
	var lastEnd time.Time
	if scenario == scenarioTenantsHourly {
		lastEnd = agentT0.Truncate(24 * time.Hour).Add(24 * time.Hour)
		if len(f.groups) > 1 {
			lastEnd = lastEnd.Add(time.Minute)
		}
	} else {
		// The first window end delivers the cold start; then the boundaries.
		lastEnd = agentT0.Truncate(time.Minute).Add(time.Duration(f.o.boundaries+1) * time.Minute)
	}
	for _, fd := range f.dests {
		fd.sched = windowEnds(f.groups[fd.group], agentT0, lastEnd)
	}

	var posted, ingestErrs atomic.Int64
	genDone := make(chan struct{})
	go func() {
		defer close(genDone)
		// Ingest goes on until the measuring ends (cancel, below), not
		// only until the last window end: the last boundary's deliveries
		// share the CPUs and the writer with ingest like the others'.
		f.generate(ctx, lastEnd.Add(time.Minute-f.offset), &posted, &ingestErrs)
	}()

	db, err := sql.Open("sqlite", "file:"+f.db+"?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		return err
	}
	defer db.Close()

	idleDone := false
	deadline := lastEnd.Add(time.Minute)
	cpuAt := map[time.Time]time.Duration{}
	meters := map[time.Time]*cpuMeter{}
	done := map[time.Time]*boundaryResult{}
	for {
		now := f.now()
		// Sample the idle agent just before the first window end.
		if !idleDone && now.After(firstEnd(f).Add(-3*time.Second)) {
			idleDone = true
			if st, err := procStatus(pid); err == nil {
				rep.idleRSS = st["VmRSS"]
			}
			rep.idleMetrics, _, rep.idleGoroutines = f.scrape(ctx)
		}
		for _, end := range allEnds(f) {
			if _, ok := cpuAt[end]; !ok && !now.Before(end) {
				cpuAt[end] = procCPU(pid)
				meters[end] = startCPU(pids{agent: pid, s3: f.s3.pid})
			}
		}
		if err := f.poll(ctx, db); err != nil {
			return err
		}
		f.closeBoundaries(now, cpuAt, meters, done, pid, rep)
		if rep.coldStart == 0 && f.allDeliveredOnce() {
			rep.coldStart, rep.coldDone = time.Since(t0), now
			rep.coldFirstEnd = f.latestFirst().Sub(firstEnd(f))
			rep.coldSTS = f.sts.stats()
			progress("every destination delivered once, %.1f s after the agent started", rep.coldStart.Seconds())
		}
		if len(done) == len(allEnds(f)) || now.After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	cancel()
	<-genDone
	for _, end := range allEnds(f) {
		if end.Truncate(time.Hour).Equal(end) && end.After(agentT0) {
			h, err := hourDigestsOf(db, end)
			if err != nil {
				return err
			}
			rep.digests = append(rep.digests, h)
		}
	}
	rep.steadySTS = f.sts.stats()
	rep.peakRSS = rss.stop()
	if st, err := procStatus(pid); err == nil {
		rep.peakRSS = max(rep.peakRSS, st["VmHWM"])
	}
	start := time.Now()
	rep.metricsBytes, _, rep.goroutines = f.scrape(context.Background())
	rep.metricsTime = time.Since(start)
	rep.posted, rep.ingestErrors = posted.Load(), ingestErrs.Load()
	for _, fd := range f.dests {
		rep.failures += fd.failures
	}
	for _, end := range allEnds(f) {
		if b := done[end]; b != nil {
			rep.boundaries = append(rep.boundaries, *b)
		}
	}
	return nil
}

// windowEnds lists g's window ends after from, up to and including to.
func windowEnds(g fleetGroup, from, to time.Time) []time.Time {
	var out []time.Time
	if g.dailyAt != "" {
		at, _ := time.Parse("15:04", g.dailyAt)
		day := from.Truncate(24 * time.Hour)
		for d := day; !d.After(to); d = d.Add(24 * time.Hour) {
			t := d.Add(time.Duration(at.Hour())*time.Hour + time.Duration(at.Minute())*time.Minute)
			if t.After(from) && !t.After(to) {
				out = append(out, t)
			}
		}
		return out
	}
	step, _ := time.ParseDuration(g.interval)
	for t := from.Truncate(step).Add(step); !t.After(to); t = t.Add(step) {
		out = append(out, t)
	}
	return out
}

func allEnds(f *fleet) []time.Time {
	seen := map[time.Time]bool{}
	for _, fd := range f.dests {
		for _, t := range fd.sched {
			seen[t] = true
		}
	}
	out := make([]time.Time, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

func firstEnd(f *fleet) time.Time {
	if ends := allEnds(f); len(ends) > 0 {
		return ends[0]
	}
	return time.Time{}
}

func (f *fleet) allDeliveredOnce() bool {
	for _, fd := range f.dests {
		if fd.firstAt.IsZero() {
			return false
		}
	}
	return true
}

func (f *fleet) latestFirst() time.Time {
	var t time.Time
	for _, fd := range f.dests {
		if fd.firstAt.After(t) {
			t = fd.firstAt
		}
	}
	return t
}

// hourDigestsOf counts the digests written for the hour ending at end.
func hourDigestsOf(db *sql.DB, end time.Time) (hourDigests, error) {
	h := hourDigests{end: end}
	var lastMs int64
	err := db.QueryRow(`SELECT COUNT(*), COALESCE(MAX(written_at), 0) FROM digests WHERE hour_start = ? AND written_at > 0`,
		end.Add(-time.Hour).UnixMilli()).Scan(&h.written, &lastMs)
	if err != nil {
		return h, fmt.Errorf("counting the hour's digests: %w", err)
	}
	if lastMs > 0 {
		h.last = time.UnixMilli(lastMs).Sub(end)
	}
	return h, nil
}

// poll reads every destination's status in one query (read-only, beside
// the agent) and attributes each new delivery to the window end it is for:
// the latest of the destination's measured window ends before the commit.
func (f *fleet) poll(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT d.id, COALESCE(s.last_delivery_at, 0), COALESCE(s.objects_delivered, 0),
		COALESCE(s.failing_since, 0) FROM destinations d LEFT JOIN destination_status s ON s.destination_id = d.id`)
	if err != nil {
		return fmt.Errorf("reading the destinations' status: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var lastMs, objects, failingMs int64
		if err := rows.Scan(&id, &lastMs, &objects, &failingMs); err != nil {
			return err
		}
		fd := f.dests[id]
		if fd == nil || lastMs == 0 {
			continue
		}
		if failingMs != 0 {
			fd.failures++
		}
		last := time.UnixMilli(lastMs).UTC()
		if !last.After(fd.last) {
			continue
		}
		if fd.firstAt.IsZero() {
			fd.firstAt = last
		}
		var end time.Time
		for _, t := range fd.sched {
			if !t.After(last) {
				end = t
			}
		}
		if !end.IsZero() {
			if _, ok := fd.lags[end]; !ok {
				fd.lags[end] = lagAt{lag: last.Sub(end), objects: objects - fd.objects}
			}
		}
		fd.last, fd.objects = last, objects
	}
	return rows.Err()
}

// closeBoundaries completes the figures of each window end whose
// destinations have all delivered it, or whose next window end has come.
func (f *fleet) closeBoundaries(now time.Time, cpuAt map[time.Time]time.Duration, meters map[time.Time]*cpuMeter,
	done map[time.Time]*boundaryResult, pid int, rep *tenantsReport) {
	ends := allEnds(f)
	for i, end := range ends {
		if done[end] != nil || now.Before(end) {
			continue
		}
		b := &boundaryResult{at: end}
		var names []string
		for _, fd := range f.dests {
			if !slices.Contains(fd.sched, end) {
				continue
			}
			b.expected++
			if g := f.groups[fd.group].name; !slices.Contains(names, g) {
				names = append(names, g)
			}
			if l, ok := fd.lags[end]; ok {
				b.delivered++
				b.lags = append(b.lags, l.lag)
				b.objects += l.objects
				b.lastCommit = max(b.lastCommit, l.lag)
			}
		}
		next := end.Add(time.Minute)
		if i+1 < len(ends) {
			next = ends[i+1]
		}
		if b.delivered < b.expected && now.Before(next) {
			continue
		}
		slices.Sort(b.lags)
		slices.Sort(names)
		if end.Truncate(time.Hour).Equal(end) {
			names = append(names, "the hour's digests")
		}
		b.group = strings.Join(names, ", ")
		b.cpu = procCPU(pid) - cpuAt[end]
		u := meters[end].stop()
		b.agentCores, b.s3Cores, b.benchCores, b.otherCores = u.agent, u.s3, u.bench, u.other
		if st, err := procStatus(pid); err == nil {
			b.rss = st["VmRSS"]
		}
		done[end] = b
		progress("window end %s (%s): %d of %d delivered, lag p50 %.1f s p99 %.1f s max %.1f s, agent CPU %.1f s",
			end.Format("15:04:05"), b.group, b.delivered, b.expected,
			percentile(b.lags, 0.5).Seconds(), percentile(b.lags, 0.99).Seconds(), b.lastCommit.Seconds(), b.cpu.Seconds())
	}
}

// generate posts one request of events for every tenant at once, so that
// every destination has events for its first window end, then every
// tenant's events once a minute until stop (bench time), tenant i at i/N of
// each minute, so that ingest runs evenly through the minute as a
// platform's would.
func (f *fleet) generate(ctx context.Context, stop time.Time, posted, failed *atomic.Int64) {
	n := len(f.names)
	jobs := make(chan string, 1024)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			gen := newEventGen(uint64(1000+w), 0)
			var body []byte
			for name := range jobs {
				body = body[:0]
				now := time.Now()
				for range f.o.events {
					body = gen.appendEvent(body, now)
					body = append(body, '\n')
				}
				if _, err := f.ingest.PostEvents(ctx, name, body); err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				posted.Add(int64(f.o.events))
			}
		})
	}
	defer wg.Wait()
	defer close(jobs)
	for _, name := range f.names {
		select {
		case jobs <- name:
		case <-ctx.Done():
			return
		}
	}
	t0 := time.Now()
	minute := t0.Truncate(time.Minute)
	for m := 0; ; m++ {
		for i, name := range f.names {
			at := minute.Add(time.Duration(m)*time.Minute + time.Duration(i)*time.Minute/time.Duration(n))
			if at.Before(t0) {
				continue
			}
			if at.After(stop) {
				return
			}
			if wait := time.Until(at); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			select {
			case jobs <- name:
			case <-ctx.Done():
				return
			}
		}
	}
}

// scrape fetches /metrics: its size, how long it took and go_goroutines.
func (f *fleet) scrape(ctx context.Context) (int, time.Duration, float64) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.agent.endpoint+"/metrics", nil)
	if err != nil {
		return 0, 0, 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, 0
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var g float64
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			_, _ = fmt.Sscanf(v, "%g", &g)
		}
	}
	return len(data), time.Since(start), g
}

// Targets of the scenarios, printed beside the figures.
const (
	targetLagP99 = 10 * time.Second
	targetRSS    = 512 << 20
)

func (r *tenantsReport) print(out io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	mib := func(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
	var groups []string
	for _, g := range r.groups {
		groups = append(groups, fmt.Sprintf("%d × %s", g.count, g.name))
	}
	p("")
	p("## auditexport bench: many destinations (-scenario %s)", r.scenario)
	p("")
	m := r.machine
	p("machine: %d CPUs (%s), %s RAM, %s, %s; fsync p50 %s ms; load average %.2f at the start", m.cpus, m.model, m.memory, m.kernel, m.goVer, ms(m.fsyncP50), m.load)
	p("S3: %s; STS: the bench's, throttling past %.0f AssumeRole/s", r.s3, r.o.stsRate)
	keys := r.o.keys
	if keys == "" {
		keys = "the default, " + api.DefaultKeyTemplate
	}
	p("destinations: %s, one tenant and one role each; %d events per tenant per minute through HTTP ingest, of %d event names; key_template %s",
		strings.Join(groups, " + "), r.o.events, len(eventNames), keys)
	workers := "the default"
	if r.o.workers > 0 {
		workers = fmt.Sprint(r.o.workers)
	}
	p("agent: SQLite, delivery.workers %s, real clock", workers)
	if r.offset != 0 {
		p("agent clock moved by %s (AUDITEXPORT_BENCH_CLOCK_OFFSET); times below are the agent's", r.offset)
	}
	p("setup (tenants and destinations written to the store): %.1f s", r.setup.Seconds())
	p("")
	p("| window end | destinations | delivered | lag p50 | lag p99 | lag max | objects | objects/s | agent CPU | machine (agent/S3/bench/other cores) | agent RSS |")
	p("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, b := range r.boundaries {
		rate := 0.0
		if b.lastCommit > 0 {
			rate = float64(b.objects) / b.lastCommit.Seconds()
		}
		p("| %s (%s) | %d | %d | %.2f s | %.2f s | %.2f s | %d | %.0f | %.1f s | %.2f/%.2f/%.2f/%.2f | %s |",
			b.at.Format("15:04:05"), b.group, b.expected, b.delivered,
			percentile(b.lags, 0.5).Seconds(), percentile(b.lags, 0.99).Seconds(), b.lastCommit.Seconds(),
			b.objects, rate, b.cpu.Seconds(), b.agentCores, b.s3Cores, b.benchCores, b.otherCores, mib(b.rss))
	}
	p("")
	p("cold start: every destination delivered once %.1f s after the agent started, %.1f s after the first window end",
		r.coldStart.Seconds(), r.coldFirstEnd.Seconds())
	p("AssumeRole until then: %d calls for %d roles (at most %d per role) over %.1f s, %d throttled; afterwards %d calls, %d throttled",
		r.coldSTS.calls, r.coldSTS.roles, r.coldSTS.maxPerRole, r.coldSTS.span.Seconds(), r.coldSTS.throttled,
		r.steadySTS.calls, r.steadySTS.throttled)
	p("agent idle with every destination loaded (before the first window end): RSS %s, %.0f goroutines, /metrics %d bytes",
		mib(r.idleRSS), r.idleGoroutines, r.idleMetrics)
	p("agent peak RSS %s; at the end %.0f goroutines, /metrics %d bytes in %.0f ms", mib(r.peakRSS), r.goroutines, r.metricsBytes, float64(r.metricsTime)/float64(time.Millisecond))
	p("events posted %d, ingest requests failed %d; status polls that saw a destination failing: %d", r.posted, r.ingestErrors, r.failures)
	for _, h := range r.digests {
		p("digests of the hour ending %s: %d written, the last %.1f s after the hour (they wait for the deliveries due with them)",
			h.end.Format("15:04"), h.written, h.last.Seconds())
	}
	// The target is for an agent running: the boundaries that come after
	// every role was assumed once. At a cold-start one, some destinations
	// are still waiting for their first credentials.
	var worst time.Duration
	measured, missed := 0, 0
	for _, b := range r.boundaries {
		if r.coldDone.IsZero() || b.at.Add(-r.offset).Before(r.coldSTS.lastNew) {
			continue
		}
		measured++
		worst = max(worst, percentile(b.lags, 0.99))
		if b.delivered < b.expected {
			missed++ // a window not delivered before the next fails the target
		}
	}
	p("")
	p("target lag p99 <= %.0f s: %s (worst p99 %.2f s over the %d boundaries after every role was assumed; %d with destinations undelivered by the next)",
		targetLagP99.Seconds(), yesNo(worst <= targetLagP99 && measured > 0 && missed == 0), worst.Seconds(), measured, missed)
	p("target RSS <= %s: %s (peak %s)", mib(targetRSS), yesNo(r.peakRSS <= targetRSS), mib(r.peakRSS))
}

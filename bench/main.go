// Command bench measures auditexport-agent on this machine, in one run, with
// the agent's real binary and a real S3-compatible server on loopback:
//
//   - durable ingest: events/s and request latency of concurrent HTTP clients
//     posting NDJSON batches of ~400-byte audit events (a 2xx means fsync'd);
//     with the agent on SQLite and on PostgreSQL (a throw-away cluster on
//     loopback), side by side, the same events and phases for both;
//   - delivery: events/s and MB/s of NDJSON from the store to the bucket, end
//     to end, as the agent's scheduler runs it;
//   - the limits of that pipeline on the same events: reading them out of
//     the store alone, compressing them alone and PUTting the compressed
//     objects alone, and the delivery rate as a ratio to the slowest of the
//     three;
//   - the agent's peak RSS (VmHWM) while it delivers a large window (2 GiB),
//     from the first store of -store (SQLite by default);
//   - the hourly integrity digests: their agent CPU beside the delivery of
//     the objects they list (digests.go);
//   - delivery by one agent and by three sharing one PostgreSQL database
//     (agents.go);
//   - verify over 30 days of hourly digests in the S3 server (verify.go).
//
// Usage, from the module root (`make bench` runs the defaults):
//
//	go run ./bench [-events 500000] [-clients 8] [-batch 1000] [-window-gb 2]
//	               [-window-event-bytes 0] [-s3 versitygw|devs3] [-store sqlite,postgres]
//	               [-digest-windows 60] [-agents-dests 6] [-verify-days 30]
//	               [-keep] [-timeout 20m]
//	go run ./bench -profile DIR   # CPU profiles and execution traces, agent in-process
//	go run ./bench -scenario tenants [-tenants 10000] [-tenant-events 20] [-boundaries 5]
//	go run ./bench -scenario tenants-hourly [-tenants 1000] [-daily 100]
//
// The agent is built from ./agent and runs as a subprocess, started again
// for each phase (its peak RSS is read from a process that only delivered).
// Each phase also reports the CPU the agent, the bench and the rest of the
// machine used: figures from a phase that other work disturbed are flagged.
// Every server listens on 127.0.0.1, every loop is bounded, and the run
// stops by itself; -timeout caps it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/testenv"
)

// options are the command-line flags.
type options struct {
	events           int64
	batch            int
	clients          int
	windowGB         float64
	windowEventBytes int
	windowFormat     string // ndjson (the main destination) or ocsf-parquet
	s3               string
	stores           []string // in storeOrder
	keep             bool
	timeout          time.Duration
	profile          string // directory for profiles; runs the agent in-process
	scenario         string // "" for the phases above; see tenants.go
	tenants          tenantOptions
	digestWindows    int // windows delivered for the many-windows digest (digests.go)
	digestWindowEvts int // events per such window
	agentDests       int // destinations of the several-agents phase (agents.go)
	verifyDays       int // days of hourly digests verified (verify.go)
	verifyObjects    int // objects per hour of those
}

func parseFlags(args []string) (options, error) {
	var o options
	var stores string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Int64Var(&o.events, "events", 500_000, "events ingested and delivered for the rates and the stage limits")
	fs.IntVar(&o.batch, "batch", 1000, "events per ingest request (NDJSON lines)")
	fs.IntVar(&o.clients, "clients", 8, "concurrent ingest clients")
	fs.Float64Var(&o.windowGB, "window-gb", 2, "size in GiB of NDJSON of the window delivered for the peak RSS figure; 0 skips it")
	fs.StringVar(&o.windowFormat, "window-format", "ndjson", "format the window is delivered in: ndjson (raw gzip NDJSON, the main destination) or ocsf-parquet (OCSF in Parquet)")
	fs.IntVar(&o.windowEventBytes, "window-event-bytes", 0, "size of the window's events in bytes (0: the same ~400-byte events as the rest)")
	fs.StringVar(&o.s3, "s3", "versitygw", "S3 server: versitygw (a real S3 gateway, must be installed) or devs3 (the agent's in-process dev server)")
	fs.StringVar(&stores, "store", "sqlite,postgres", "stores to run the agent on, comma-separated: sqlite (a file in its data directory) and postgres (a throw-away PostgreSQL cluster on loopback, which must be installed)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (agent data, bucket, logs)")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "upper bound on the whole run")
	fs.StringVar(&o.scenario, "scenario", "", "run a many-destinations scenario instead of the phases above: tenants (10,000 tenants on the 1-minute cadence) or tenants-hourly (hourly plus daily_at destinations, the agent's clock moved to just before midnight); see -tenants")
	tenantFlags(fs, &o.tenants)
	fs.IntVar(&o.digestWindows, "digest-windows", 60, "windows of 1 s delivered one after the other for the many-windows digest row (60: a 1-minute cadence's hour); 0 skips the row")
	fs.IntVar(&o.digestWindowEvts, "digest-window-events", 100, "events posted for each of those windows")
	fs.IntVar(&o.agentDests, "agents-dests", 6, "tenants, one destination each, that the -events events are spread over for the 1-agent and 3-agent delivery on PostgreSQL; 0 skips it")
	fs.IntVar(&o.verifyDays, "verify-days", 30, "days of hourly digests uploaded (a fabricated chain) and checked with verify; 0 skips it")
	fs.IntVar(&o.verifyObjects, "verify-objects", 10, "data objects per hour of the verified chain")
	fs.StringVar(&o.profile, "profile", "", "profiling run: wire the agent's parts inside the bench process (as agent/serve.go does) and write CPU profiles and execution traces of ingest and delivery to this directory; its figures include the clients' work and skip the window")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.stores, err = parseStores(stores); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.events < 1000:
		return o, errors.New("-events: at least 1000")
	case o.batch < 1 || o.batch > 10_000:
		return o, errors.New("-batch: between 1 and 10000")
	case o.clients < 1 || o.clients > 256:
		return o, errors.New("-clients: between 1 and 256")
	case o.windowGB < 0 || o.windowGB > 64:
		return o, errors.New("-window-gb: between 0 and 64")
	case o.windowEventBytes != 0 && (o.windowEventBytes < 400 || o.windowEventBytes > 64<<10):
		return o, errors.New("-window-event-bytes: 0, or between 400 and 65536")
	case o.windowFormat != "ndjson" && o.windowFormat != windowFormat:
		return o, fmt.Errorf("-window-format %q: use ndjson or %s", o.windowFormat, windowFormat)
	case o.s3 != "versitygw" && o.s3 != "devs3":
		return o, fmt.Errorf("-s3 %q: use versitygw or devs3", o.s3)
	case o.timeout <= 0:
		return o, errors.New("-timeout: must be positive")
	case o.digestWindows < 0 || o.digestWindows > 3600:
		return o, errors.New("-digest-windows: between 0 and 3600")
	case o.digestWindowEvts < 1 || o.digestWindowEvts > 10_000:
		return o, errors.New("-digest-window-events: between 1 and 10000")
	case o.agentDests < 0 || o.agentDests > 100 || (o.agentDests > 0 && o.events/int64(o.agentDests) < 1):
		return o, errors.New("-agents-dests: between 0 and 100, and at most -events")
	case o.verifyDays < 0 || o.verifyDays > 366:
		return o, errors.New("-verify-days: between 0 and 366")
	case o.verifyObjects < 0 || o.verifyObjects > 1000:
		return o, errors.New("-verify-objects: between 0 and 1000")
	case o.scenario != "" && o.scenario != scenarioTenants && o.scenario != scenarioTenantsHourly:
		return o, fmt.Errorf("-scenario %q: use %s or %s", o.scenario, scenarioTenants, scenarioTenantsHourly)
	}
	if o.scenario != "" {
		if err := o.tenants.check(o.scenario); err != nil {
			return o, err
		}
	}
	if o.profile != "" {
		// The peak RSS of the bench process would say nothing of the agent's.
		o.windowGB = 0
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	run := run
	if o.scenario != "" {
		run = func(ctx context.Context, o options, out io.Writer) error { return runTenants(ctx, o.scenario, o, out) }
	}
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		cancel()
		stop()
		os.Exit(1)
	}
}

// progress prints a progress line on stderr; the results go to stdout.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// run is the whole benchmark. Each phase adds its figures to the report,
// which is printed at the end.
func run(ctx context.Context, o options, out io.Writer) (err error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	var s3bin string
	if o.s3 == "versitygw" {
		// Fail before any work when the server is missing.
		if s3bin, err = testenv.FindVersityGW(); err != nil {
			return fmt.Errorf("%w\nor run with -s3 devs3", err)
		}
	}
	tmp, err := os.MkdirTemp("", "auditexport-bench-")
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

	// The variable would point every agent of the bench, the SQLite one
	// too, at the operator's database.
	if os.Getenv(config.EnvDatabaseURL) != "" {
		progress("ignoring %s: the bench runs the agent on its own stores", config.EnvDatabaseURL)
		if err := os.Unsetenv(config.EnvDatabaseURL); err != nil {
			return err
		}
	}
	rep := &report{opts: o, machine: probeMachine(tmp)}

	progress("building the agent")
	agentBin, err := buildAgent(ctx, root, tmp)
	if err != nil {
		return err
	}
	progress("starting %s", o.s3)
	s3, err := startS3(ctx, o.s3, s3bin, tmp)
	if err != nil {
		return err
	}
	defer s3.stop()
	rep.s3 = s3.desc

	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return err
		}
	}
	for i, name := range o.stores {
		if err := runStore(ctx, o, rep, name, agentBin, tmp, s3, i == 0 && o.windowGB > 0); err != nil {
			return err
		}
	}
	switch {
	case rep.agents != nil:
	case o.profile != "":
		rep.agentsSkipped = "a profiling run"
	case o.agentDests == 0:
		rep.agentsSkipped = "-agents-dests 0"
	default:
		rep.agentsSkipped = "PostgreSQL is not in -store"
	}
	if o.verifyDays > 0 {
		if rep.verify, err = measureVerify(ctx, o, s3); err != nil {
			return err
		}
	}
	rep.print(out)
	return nil
}

// runStore runs the phases on one store: ingest, delivery, the stage limits
// and, when window is set, the window. A PostgreSQL server is stopped at the
// end, so that it does not share the machine with the next store's phases.
func runStore(ctx context.Context, o options, rep *report, name, agentBin, tmp string, s3 *s3Server, window bool) error {
	if name == storePostgres {
		progress("starting PostgreSQL")
	}
	st, err := startStore(ctx, name)
	if err != nil {
		return err
	}
	defer st.close()
	w, err := newWorld(ctx, agentBin, tmp, s3, st, o.profile != "")
	if err != nil {
		return err
	}
	defer w.agent.stop()

	run := &storeRun{st: st}
	if err := w.measureIngestAndDelivery(ctx, o, run); err != nil {
		return err
	}
	if err := w.measureStages(ctx, run); err != nil {
		return err
	}
	if err := w.measureAppend(ctx, o, run); err != nil {
		return err
	}
	if err := w.measureFormats(ctx, run); err != nil {
		return err
	}
	if err := w.measureDigests(ctx, o, run); err != nil {
		return err
	}
	rep.runs = append(rep.runs, run)
	if name == storePostgres && o.agentDests > 0 && o.profile == "" {
		if rep.agents, err = measureAgents(ctx, o, agentBin, tmp, s3, st); err != nil {
			return err
		}
	}
	if window {
		return w.windowWorld(o, run).measureWindow(ctx, o, rep)
	}
	return nil
}

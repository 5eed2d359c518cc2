package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Targets the figures are checked against.
const (
	targetIngestSQLite   = 150_000   // durable events/s, the agent on SQLite
	targetIngestPostgres = 80_000    // the same on PostgreSQL, the server on the same CPUs
	targetRatio          = 0.80      // delivery rate / slowest stage
	targetPeakRSS        = 256 << 20 // bytes, while delivering the window

	// disturbed is the CPU (in cores) other processes may use during a
	// phase before its figures are flagged as disturbed.
	disturbed = 0.25
)

// targetIngest is the durable ingest target of the run's store.
func targetIngest(run *storeRun) int64 {
	if run.st.name == storePostgres {
		return targetIngestPostgres
	}
	return targetIngestSQLite
}

// report collects every figure of a run and prints them as one table.
type report struct {
	opts    options
	machine machine
	s3      string
	runs    []*storeRun // one per store, in storeOrder

	windowStore      string // the store the window was delivered from
	fill             ingestResult
	windowEventBytes int
	window           *deliveryResult // nil when skipped

	agents        *agentsRun // nil when skipped, and then agentsSkipped says why
	agentsSkipped string
	verify        *verifyRun // nil with -verify-days 0
}

// storeRun is the figures of the agent on one store: the same phases on the
// same events for every store.
type storeRun struct {
	st       *benchStore
	ingest   ingestResult
	delivery deliveryResult
	formats  []formatRun // the same events in other formats (ocsf.go)
	stages   stages
	digests  *digestRun // digests.go
}

// machine describes where the bench ran.
type machine struct {
	cpus     int
	model    string
	memory   string
	kernel   string
	goVer    string
	fsyncP50 time.Duration // of a 4 KiB write in the temporary directory
	load     float64       // 1-minute load average when the run started
	env      []string      // GOGC, GOMEMLIMIT, GOMAXPROCS when set
}

func probeMachine(dir string) machine {
	m := machine{cpus: runtime.NumCPU(), goVer: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.model = strings.TrimSpace(v)
				break
			}
		}
	}
	if st, err := procStatusFile("/proc/meminfo"); err == nil {
		m.memory = fmt.Sprintf("%.1f GiB", float64(st["MemTotal"])/(1<<30))
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = "Linux " + strings.TrimSpace(string(data))
	}
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS"} {
		if v := os.Getenv(k); v != "" {
			m.env = append(m.env, k+"="+v)
		}
	}
	m.fsyncP50 = fsyncLatency(dir)
	m.load = loadAvg()
	return m
}

// procStatusFile reads a /proc file of "Name: value kB" lines, in bytes.
func procStatusFile(path string) (map[string]int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for line := range strings.Lines(string(data)) {
		name, rest, ok := strings.Cut(line, ":")
		fields := strings.Fields(rest)
		if !ok || len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		if v, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
			out[name] = v << 10
		}
	}
	return out, nil
}

// fsyncLatency is the median time of 50 appends of 4 KiB each followed by an
// fsync: the floor under one durable group commit.
func fsyncLatency(dir string) time.Duration {
	f, err := os.Create(filepath.Join(dir, "fsync-probe"))
	if err != nil {
		return 0
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var ds []time.Duration
	for range 50 {
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			return 0
		}
		if err := f.Sync(); err != nil {
			return 0
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// print writes the table: a value column per store for the ingest,
// delivery and stage-limit rows, one column for the window.
func (r *report) print(out io.Writer) {
	m := r.machine
	fmt.Fprintf(out, "\nauditexport bench, %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(out, "machine: %d CPUs (%s), %s RAM, %s, %s", m.cpus, m.model, m.memory, m.kernel, m.goVer)
	if len(m.env) > 0 {
		fmt.Fprintf(out, ", %s", strings.Join(m.env, " "))
	}
	fmt.Fprintf(out, "\nfsync of a 4 KiB append in the temp dir: p50 %s ms; load average %.2f at the start, %.2f at the end\n",
		ms(m.fsyncP50), m.load, loadAvg())
	fmt.Fprintf(out, "S3 server: %s on 127.0.0.1\n", r.s3)
	if r.opts.profile != "" {
		fmt.Fprintf(out, "PROFILING RUN: the agent's parts ran inside the bench process (profiles in %s); its CPU and rates include the clients' work\n", r.opts.profile)
	} else {
		fmt.Fprintf(out, "agent: ./agent built with CGO_ENABLED=0, one subprocess per phase, one agent per store; per-tenant rate limit off\n")
	}
	for _, run := range r.runs {
		fmt.Fprintf(out, "store %s\n", run.st.desc)
	}
	fmt.Fprintf(out, "units: MB = 10^6 bytes, MiB = 2^20 bytes; MB/s of NDJSON are uncompressed bytes in\n")
	if len(r.runs) > 0 { // -store names one store at least
		r.printStores(out)
	}
	r.printAgents(out)
	r.printWindow(out)
	r.printVerify(out)
	fmt.Fprintln(out)
}

// tableRow returns the printer of one row of a section: its name, a value
// per column, the unit and a note.
func tableRow(out io.Writer) func(name string, values []string, unit, note string) {
	return func(name string, values []string, unit, note string) {
		var b strings.Builder
		fmt.Fprintf(&b, "  %-30s", name)
		for _, v := range values {
			fmt.Fprintf(&b, " %12s", v)
		}
		fmt.Fprintf(&b, " %-9s %s", unit, note)
		fmt.Fprintln(out, strings.TrimRight(b.String(), " "))
	}
}

// printStores prints the ingest, delivery and stage-limit sections with a
// column per store.
func (r *report) printStores(out io.Writer) {
	runs := r.runs
	row := tableRow(out)
	each := func(f func(run *storeRun) string) []string {
		vs := make([]string, len(runs))
		for i, run := range runs {
			vs[i] = f(run)
		}
		return vs
	}
	section := func(title string) {
		fmt.Fprintf(out, "\n%s\n", title)
		row("", each(func(run *storeRun) string { return run.st.title }), "", "")
	}
	hasDB := slices.ContainsFunc(runs, func(run *storeRun) bool { return run.st.pid != 0 })
	cpuRows := func(phase func(run *storeRun) cpuUse, what string, v func(cpuUse) float64) {
		cores := func(f func(cpuUse) float64) []string {
			return each(func(run *storeRun) string { return fmt.Sprintf("%.2f", f(phase(run))) })
		}
		row("CPU: agent", cores(func(u cpuUse) float64 { return u.agent }), "cores", "")
		if hasDB {
			row("CPU: PostgreSQL server", cores(func(u cpuUse) float64 { return u.db }), "cores", "the postmaster and its backends")
		}
		row("CPU: "+what, cores(v), "cores", "")
		row("CPU: other processes", cores(func(u cpuUse) float64 { return u.other }), "cores", "")
		if slices.ContainsFunc(runs, func(run *storeRun) bool { return phase(run).steal >= 0.05 }) {
			row("CPU: stolen by the hypervisor", cores(func(u cpuUse) float64 { return u.steal }), "cores", "")
		}
		row("other work on the CPUs", each(func(run *storeRun) string { return disturbance(phase(run)) }), "",
			fmt.Sprintf("DISTURBED when other processes and steal use >= %.2f cores: the figures above are then low", disturbed))
	}

	in := runs[0].ingest
	section(fmt.Sprintf("INGEST: %s events of ~%.0f B over HTTP, %d clients, %d events/request, 2xx = fsync'd",
		count(in.events), float64(in.bytes)/float64(in.events), in.clients, in.batch))
	row("durable ingest", each(func(run *storeRun) string { return count(int64(run.ingest.eventsPerSec())) }), "events/s", "")
	row("", each(func(run *storeRun) string { return fmt.Sprintf("%.1f", run.ingest.mbPerSec()) }), "MB/s", "NDJSON posted")
	row("ingest target", each(func(run *storeRun) string { return count(targetIngest(run)) }), "events/s",
		"SQLite's: a peer that does not fsync, measured on a machine of this kind; PostgreSQL's with the database on the same CPUs")
	row("", each(func(run *storeRun) string { return mark(run.ingest.eventsPerSec() >= float64(targetIngest(run))) }), "", "")
	row("store append limit", each(func(run *storeRun) string { return count(int64(run.stages.appendLimit.eventsPerSec())) }), "events/s",
		fmt.Sprintf("Append alone, calls of %d x %d events one after the other, agent stopped", perCall(r.opts), in.batch))
	row("durable ingest / append limit", each(func(run *storeRun) string {
		return fmt.Sprintf("%.2f", run.ingest.eventsPerSec()/run.stages.appendLimit.eventsPerSec())
	}), "", "")
	lat := func(p float64) []string {
		return each(func(run *storeRun) string { return ms(percentile(run.ingest.latency, p)) })
	}
	row("request latency p50", lat(0.50), "ms", fmt.Sprintf("of %d requests", in.requests))
	row("request latency p99", lat(0.99), "ms", "")
	row("request latency max", lat(1), "ms", "")
	cpuRows(func(run *storeRun) cpuUse { return run.ingest.cpu }, "clients (bench)", func(u cpuUse) float64 { return u.bench })

	section("DELIVERY: the same events, store -> gzip NDJSON -> S3, one destination")
	row("delivery", each(func(run *storeRun) string { return count(int64(run.delivery.eventsPerSec())) }), "events/s", "window end -> plan committed")
	row("", each(func(run *storeRun) string { return fmt.Sprintf("%.1f", run.delivery.mbPerSec()) }), "MB/s", "NDJSON")
	row("", each(func(run *storeRun) string { return secs(run.delivery.elapsed) }), "s", "")
	row("objects", each(func(run *storeRun) string { return strconv.Itoa(len(run.delivery.objects)) }), "", "")
	row("compressed written", each(func(run *storeRun) string {
		return fmt.Sprintf("%.1f", float64(run.delivery.bytesOut)/1e6)
	}), "MB", fmt.Sprintf("ratio %.1f:1", float64(runs[0].delivery.bytesIn)/float64(runs[0].delivery.bytesOut)))
	row("status bytes_delivered", each(func(run *storeRun) string {
		return yesNo(run.delivery.statusBytes == run.delivery.bytesOut)
	}), "", "equals the sizes of the new objects in the bucket")
	row("enable -> no lag (wall)", each(func(run *storeRun) string { return secs(run.delivery.wall) }), "s", "includes the wait for the 1 s tick")
	cpuRows(func(run *storeRun) cpuUse { return run.delivery.cpu }, "S3 server", func(u cpuUse) float64 { return u.s3 })
	r.printFormats(out, row, each)

	section(fmt.Sprintf("STAGE LIMITS: each stage alone on the same events (fastest of %d runs)", stageReps))
	stage := func(f func(s stages) stageResult) []string {
		return each(func(run *storeRun) string { return count(int64(f(run.stages).eventsPerSec())) })
	}
	row("store read (Groups+Scan)", stage(func(s stages) stageResult { return s.read }), "events/s", "through store.Open, the agent stopped")
	row("", each(func(run *storeRun) string { return fmt.Sprintf("%.1f", run.stages.read.mbPerSec()) }), "MB/s", "")
	row("compress (encode, gzip)", stage(func(s stages) stageResult { return s.compress }), "events/s", "")
	row("", each(func(run *storeRun) string { return fmt.Sprintf("%.1f", run.stages.compress.mbPerSec()) }), "MB/s", "")
	row("PUT (s3sink.Upload)", stage(func(s stages) stageResult { return s.put }), "events/s",
		fmt.Sprintf("objects of the delivered sizes, %d of them", runs[0].stages.put.objects))
	row("", each(func(run *storeRun) string {
		return fmt.Sprintf("%.1f", float64(run.stages.put.bytesOut)/1e6/run.stages.put.elapsed.Seconds())
	}), "MB/s", "compressed")
	row("slowest stage", each(func(run *storeRun) string { name, _ := run.stages.slowest(); return name }), "", "")
	row("stages back to back", each(func(run *storeRun) string { return count(int64(run.stages.serial())) }), "events/s", "sum of the three times, no overlap")
	ratio := func(run *storeRun) float64 {
		_, slow := run.stages.slowest()
		return run.delivery.eventsPerSec() / slow.eventsPerSec()
	}
	row("delivery / slowest stage", each(func(run *storeRun) string { return fmt.Sprintf("%.2f", ratio(run)) }), "", "")
	row("ratio target >= 0.80", each(func(run *storeRun) string { return mark(ratio(run) >= targetRatio) }), "", "")
	row("compressed sizes = delivered", each(func(run *storeRun) string { return yesNo(run.stages.sizesMatch) }), "",
		"NO: objects were split or encoded differently")
	r.printDigests(out, row, each, section)
}

// printWindow prints the window section.
func (r *report) printWindow(out io.Writer) {
	row := func(name, value, unit, note string) {
		fmt.Fprintf(out, "  %-30s %12s %-9s %s\n", name, value, unit, note)
	}
	section := func(title string) { fmt.Fprintf(out, "\n%s\n", title) }
	wd := r.window
	if wd == nil {
		why := "-window-gb 0"
		if r.opts.profile != "" {
			why = "a profiling run: the bench's RSS is not the agent's"
		}
		section("WINDOW: skipped (" + why + ")")
		return
	}
	f := r.fill
	size := "the same ~400 B events"
	if r.windowEventBytes > 0 {
		size = fmt.Sprintf("events of ~%d B (larger than the rest, to fill it faster)", r.windowEventBytes)
	}
	section(fmt.Sprintf("WINDOW (%s only, delivered as %s): %.2f GiB of NDJSON, %s events, %s", r.windowStore, r.opts.windowFormat, float64(f.bytes)/(1<<30), count(f.events), size))
	row("fill (HTTP ingest)", count(int64(f.eventsPerSec())), "events/s", fmt.Sprintf("%.1f MB/s, %s s, p99 %s ms", f.mbPerSec(), secs(f.elapsed), ms(percentile(f.latency, 0.99))))
	cpuRow(row, "agent CPU during the fill", f.cpu, "clients (bench)", f.cpu.bench)
	row("delivery", count(int64(wd.eventsPerSec())), "events/s", fmt.Sprintf("%.1f MB/s, %s s, %d objects, %.0f MB gzip",
		wd.mbPerSec(), secs(wd.elapsed), len(wd.objects), float64(wd.bytesOut)/1e6))
	cpuRow(row, "agent CPU during delivery", wd.cpu, "S3 server", wd.cpu.s3)
	row("peak RSS of the agent", fmt.Sprintf("%.1f", float64(wd.peakRSS)/(1<<20)), "MiB",
		verdict(wd.peakRSS > 0 && wd.peakRSS < targetPeakRSS, "VmHWM of a process that only delivered; limit < 256 MiB"))
	row("RSS at the end", fmt.Sprintf("%.1f", float64(wd.lastRSS)/(1<<20)), "MiB", fmt.Sprintf("max sampled every 100 ms: %.1f MiB", float64(wd.maxSampledRSS)/(1<<20)))
}

// mark is a table cell for a target: PASS or BELOW.
func mark(ok bool) string {
	if ok {
		return "PASS"
	}
	return "BELOW"
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// disturbance is a table cell saying whether other work shared the CPUs
// during a phase.
func disturbance(u cpuUse) string {
	if u.other+u.steal >= disturbed {
		return "DISTURBED"
	}
	return "none"
}

func verdict(ok bool, what string) string {
	if ok {
		return "PASS  " + what
	}
	return "BELOW " + what
}

func ms(d time.Duration) string   { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

// cpuRow prints the CPU a phase used, in cores: the agent's (the value), one
// more process's and the rest of the machine's, and flags a phase that other
// work disturbed.
func cpuRow(row func(name, value, unit, note string), name string, u cpuUse, what string, v float64) {
	note := fmt.Sprintf("%s %.2f, other processes %.2f", what, v, u.other)
	if u.steal >= 0.05 {
		note += fmt.Sprintf(", stolen by the hypervisor %.2f", u.steal)
	}
	if u.other+u.steal >= disturbed {
		note += "  DISTURBED: other work shared the CPUs, the figures above are low"
	}
	row(name, fmt.Sprintf("%.2f", u.agent), "cores", note)
}

// count formats n with thousands separators.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + count(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

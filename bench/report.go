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
	targetIngest  = 100_000   // durable events/s
	targetRatio   = 0.80      // delivery rate / slowest stage
	targetPeakRSS = 256 << 20 // bytes, while delivering the window

	// disturbed is the CPU (in cores) other processes may use during a
	// phase before its figures are flagged as disturbed.
	disturbed = 0.25
)

// report collects every figure of a run and prints them as one table.
type report struct {
	opts     options
	machine  machine
	s3       string
	ingest   ingestResult
	delivery deliveryResult
	stages   stages

	fill             ingestResult
	windowEventBytes int
	window           *deliveryResult // nil when skipped
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

// print writes the table.
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
		fmt.Fprintf(out, "agent: ./agent built with CGO_ENABLED=0, one subprocess per phase; SQLite WAL, synchronous=FULL; per-tenant rate limit off\n")
	}
	fmt.Fprintf(out, "units: MB = 10^6 bytes, MiB = 2^20 bytes; MB/s of NDJSON are uncompressed bytes in\n")

	row := func(name, value, unit, note string) {
		fmt.Fprintf(out, "  %-30s %12s %-9s %s\n", name, value, unit, note)
	}
	section := func(title string) { fmt.Fprintf(out, "\n%s\n", title) }

	in := r.ingest
	section(fmt.Sprintf("INGEST: %s events of ~%.0f B over HTTP, %d clients, %d events/request, 2xx = fsync'd",
		count(in.events), float64(in.bytes)/float64(in.events), in.clients, in.batch))
	row("durable ingest", count(int64(in.eventsPerSec())), "events/s", verdict(in.eventsPerSec() >= targetIngest, "target >= 100,000"))
	row("", fmt.Sprintf("%.1f", in.mbPerSec()), "MB/s", "NDJSON posted")
	row("request latency p50", ms(percentile(in.latency, 0.50)), "ms", fmt.Sprintf("of %d requests", in.requests))
	row("request latency p99", ms(percentile(in.latency, 0.99)), "ms", "")
	row("request latency max", ms(percentile(in.latency, 1)), "ms", "")
	cpuRow(row, "CPU used by the agent", in.cpu, "clients (bench)", in.cpu.bench)

	d := r.delivery
	section(fmt.Sprintf("DELIVERY: the same events, store -> gzip NDJSON -> S3, one destination, %d objects", len(d.objects)))
	row("delivery", count(int64(d.eventsPerSec())), "events/s", "window end -> plan committed")
	row("", fmt.Sprintf("%.1f", d.mbPerSec()), "MB/s", fmt.Sprintf("%.0f MB NDJSON in %s s", float64(d.bytesIn)/1e6, secs(d.elapsed)))
	row("compressed written", fmt.Sprintf("%.1f", float64(d.bytesOut)/1e6), "MB", fmt.Sprintf("ratio %.1f:1", float64(d.bytesIn)/float64(d.bytesOut)))
	counter := "matches the objects in the bucket"
	if d.statusBytes != d.bytesOut {
		counter = fmt.Sprintf("MISMATCH: the new objects hold %s bytes", count(d.bytesOut))
	}
	row("status bytes_delivered", count(d.statusBytes), "bytes", counter)
	row("enable -> no lag (wall)", secs(d.wall), "s", "includes the wait for the 1 s tick")
	cpuRow(row, "CPU used by the agent", d.cpu, "S3 server", d.cpu.s3)

	s := r.stages
	slowName, slow := s.slowest()
	section(fmt.Sprintf("STAGE LIMITS: each stage alone on the same events (fastest of %d runs)", stageReps))
	row("store read (Groups+Scan)", count(int64(s.read.eventsPerSec())), "events/s", fmt.Sprintf("%.1f MB/s, %s s", s.read.mbPerSec(), secs(s.read.elapsed)))
	row("compress (encode, gzip)", count(int64(s.compress.eventsPerSec())), "events/s", fmt.Sprintf("%.1f MB/s, %s s", s.compress.mbPerSec(), secs(s.compress.elapsed)))
	row("PUT (s3sink.Upload)", count(int64(s.put.eventsPerSec())), "events/s",
		fmt.Sprintf("%.1f MB/s as NDJSON, %.1f MB/s compressed, %d objects, %s s",
			s.put.mbPerSec(), float64(s.put.bytesOut)/1e6/s.put.elapsed.Seconds(), s.put.objects, secs(s.put.elapsed)))
	row("slowest stage", slowName, "", count(int64(slow.eventsPerSec()))+" events/s")
	row("stages back to back", count(int64(s.serial())), "events/s", "sum of the three times, no overlap")
	ratio := d.eventsPerSec() / slow.eventsPerSec()
	row("delivery / slowest stage", fmt.Sprintf("%.2f", ratio), "", verdict(ratio >= targetRatio, "target >= 0.80"))
	ov := s.overlapped
	row("overlapped (prototype)", count(int64(ov.eventsPerSec())), "events/s",
		fmt.Sprintf("%.2f of the slowest stage: read in one goroutine, gzip+PUT in another (bench code, not the agent)", ov.eventsPerSec()/slow.eventsPerSec()))
	match := "yes"
	if !s.sizesMatch {
		match = "NO (objects were split or encoded differently)"
	}
	row("compressed sizes = delivered", match, "", "")

	if wd := r.window; wd != nil {
		f := r.fill
		size := "the same ~400 B events"
		if r.windowEventBytes > 0 {
			size = fmt.Sprintf("events of ~%d B (larger than the rest, to fill it faster)", r.windowEventBytes)
		}
		section(fmt.Sprintf("WINDOW: %.2f GiB of NDJSON, %s events, %s", float64(f.bytes)/(1<<30), count(f.events), size))
		row("fill (HTTP ingest)", count(int64(f.eventsPerSec())), "events/s", fmt.Sprintf("%.1f MB/s, %s s, p99 %s ms", f.mbPerSec(), secs(f.elapsed), ms(percentile(f.latency, 0.99))))
		cpuRow(row, "agent CPU during the fill", f.cpu, "clients (bench)", f.cpu.bench)
		row("delivery", count(int64(wd.eventsPerSec())), "events/s", fmt.Sprintf("%.1f MB/s, %s s, %d objects, %.0f MB gzip",
			wd.mbPerSec(), secs(wd.elapsed), len(wd.objects), float64(wd.bytesOut)/1e6))
		cpuRow(row, "agent CPU during delivery", wd.cpu, "S3 server", wd.cpu.s3)
		row("peak RSS of the agent", fmt.Sprintf("%.1f", float64(wd.peakRSS)/(1<<20)), "MiB",
			verdict(wd.peakRSS > 0 && wd.peakRSS < targetPeakRSS, "VmHWM of a process that only delivered; limit < 256 MiB"))
		row("RSS at the end", fmt.Sprintf("%.1f", float64(wd.lastRSS)/(1<<20)), "MiB", fmt.Sprintf("max sampled every 100 ms: %.1f MiB", float64(wd.maxSampledRSS)/(1<<20)))
	} else {
		why := "-window-gb 0"
		if r.opts.profile != "" {
			why = "a profiling run: the bench's RSS is not the agent's"
		}
		section("WINDOW: skipped (" + why + ")")
	}
	fmt.Fprintln(out)
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

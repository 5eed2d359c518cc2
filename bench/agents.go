package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/store"
)

// The several-agents phase delivers the same events with one agent and then
// with three, all on one PostgreSQL database (a database of its own in the
// bench's cluster), with the same secrets key file, each agent with its own
// listen address and data directory. The events are spread over
// -agents-dests tenants with one destination each, so that the leases, and
// the delivery work, spread over the agents.
const (
	agentsCount      = 3
	agentsDatabase   = "auditexport_agents"
	agentsLeaseTTL   = "3s"
	agentsLeaseRenew = "1s"
)

// agentsRun is what the phase measured.
type agentsRun struct {
	dests     int
	perTenant int64
	bytes     int64         // NDJSON of the events, every tenant's
	phases    []agentsPhase // one agent, then agentsCount
	spread    string        // "" when the leases spread before the 3-agent delivery, else why not
}

// agentsPhase is one delivery of every destination's backlog.
type agentsPhase struct {
	agents  int
	events  int64
	objects int64
	// elapsed runs from the earliest window end of the new objects to the
	// latest commit (both stamped by the agents); wall from enabling the
	// destinations to the bench seeing every one without lag.
	elapsed, wall time.Duration
	shares        []agentShare // one per running agent, in start order
	cpu           agentsCPU
}

func (p agentsPhase) eventsPerSec() float64 { return float64(p.events) / p.elapsed.Seconds() }

// agentShare is what one agent delivered: the destinations whose status
// named it in delivered_by once they were delivered.
type agentShare struct {
	id     string
	dests  int
	events int64
}

// agentsWorld is the agents, their tenants and destinations.
type agentsWorld struct {
	s3      *s3Server
	st      *benchStore // the cluster (for its pid)
	procs   []*agentProc
	ids     []string
	tenants []string
	manage  []*api.Client // one per tenant
	ingest  *api.Client
	dests   []agentsDest // one per tenant
}

// agentsDest is a destination of the phase.
type agentsDest struct {
	tenant int // index in tenants
	id     string
	spec   api.DestinationSpec
	cursor int64 // when created
}

// measureAgents runs the phase on the PostgreSQL cluster of st.
func measureAgents(ctx context.Context, o options, agentBin, dir string, s3 *s3Server, st *benchStore) (*agentsRun, error) {
	m, err := newAgentsWorld(ctx, agentBin, dir, s3, st, o.agentDests)
	if err != nil {
		return nil, err
	}
	defer m.stop()
	run := &agentsRun{dests: o.agentDests, perTenant: o.events / int64(o.agentDests)}

	// One agent.
	if err := m.procs[0].start(ctx); err != nil {
		return nil, err
	}
	if err := m.createDestinations(ctx, "agents-1", ""); err != nil {
		return nil, err
	}
	progress("several agents: ingesting %s events for each of %d tenants", count(run.perTenant), len(m.tenants))
	for i, t := range m.tenants {
		res, err := runIngest(ctx, m.ingest, t, run.perTenant, o.batch, o.clients, uint64(20+i), 0,
			pids{agent: m.procs[0].pid(), s3: s3.pid, db: st.pid}, nil)
		if err != nil {
			return nil, fmt.Errorf("several agents: ingest for %s: %w\nagent log:\n%s", t, err, m.procs[0].logTail())
		}
		run.bytes += res.bytes
	}
	if why := m.waitSpread(ctx, 1); why != "" {
		progress("several agents: %s", why)
	}
	progress("several agents: delivery with 1 agent")
	one, err := m.deliver(ctx, m.procs[:1], run.perTenant)
	if err != nil {
		return nil, err
	}
	run.phases = append(run.phases, one)
	progress("several agents: 1 agent at %.0f events/s", one.eventsPerSec())

	// Three agents, the same events: new destinations that backfill them,
	// the first ones deleted so that they do not count in the fair share.
	if err := m.deleteDestinations(ctx); err != nil {
		return nil, err
	}
	if err := m.createDestinations(ctx, "agents-3", "7d"); err != nil {
		return nil, err
	}
	for _, d := range m.dests {
		if got := run.perTenant - d.cursor; got != run.perTenant {
			return nil, fmt.Errorf("several agents: destination %s starts with %d events to deliver, want %d", d.id, got, run.perTenant)
		}
	}
	for _, a := range m.procs[1:] {
		if err := a.start(ctx); err != nil {
			return nil, err
		}
	}
	if run.spread = m.waitSpread(ctx, agentsCount); run.spread != "" {
		progress("several agents: %s", run.spread)
	}
	progress("several agents: delivery with %d agents", agentsCount)
	three, err := m.deliver(ctx, m.procs, run.perTenant)
	if err != nil {
		return nil, err
	}
	run.phases = append(run.phases, three)
	progress("several agents: %d agents at %.0f events/s, %.2f x 1 agent", agentsCount, three.eventsPerSec(), three.eventsPerSec()/one.eventsPerSec())
	return run, nil
}

// newAgentsWorld creates the phase's database, writes the agents' configs
// under dir/agents, creates the schema (the first agent started once) and the
// tenants and tokens with the first agent's operator commands.
func newAgentsWorld(ctx context.Context, agentBin, dir string, s3 *s3Server, st *benchStore, tenants int) (*agentsWorld, error) {
	dir = filepath.Join(dir, "agents")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	dbURL, err := createDatabase(ctx, st.cfg.PostgresURL, agentsDatabase)
	if err != nil {
		return nil, fmt.Errorf("several agents: %w", err)
	}
	keyFile := filepath.Join(dir, "secrets.key")
	if err := writeSecretsKey(keyFile); err != nil {
		return nil, err
	}
	// Every agent opens the secrets the others sealed: one key file for all.
	shared := &benchStore{block: fmt.Sprintf(pgStoreBlock, dbURL, pgMaxConns) +
		fmt.Sprintf("\nsecrets {\n  key_file = %q\n}\n", keyFile)}
	m := &agentsWorld{s3: s3, st: st}
	for i := range agentsCount {
		id := fmt.Sprintf("agent-%d", i+1)
		adir := filepath.Join(dir, id)
		if err := os.MkdirAll(adir, 0o700); err != nil {
			return nil, err
		}
		a, err := newAgentProc(agentBin, adir, s3, shared)
		if err != nil {
			return nil, err
		}
		if err := setLeases(a, id); err != nil {
			return nil, err
		}
		m.procs, m.ids = append(m.procs, a), append(m.ids, id)
	}
	first := m.procs[0]
	if err := first.start(ctx); err != nil {
		return nil, err
	}
	first.stop()
	tok, err := first.cli(ctx, "token", "create", "-scope", api.ScopeIngest)
	if err != nil {
		return nil, err
	}
	httpClient := &http.Client{Timeout: 5 * time.Minute}
	if m.ingest, err = api.NewClient(first.endpoint, strings.TrimSpace(tok), httpClient); err != nil {
		return nil, err
	}
	for i := range tenants {
		name := fmt.Sprintf("agents%d", i+1)
		if _, err := first.cli(ctx, "tenant", "create", name); err != nil {
			return nil, err
		}
		tok, err := first.cli(ctx, "token", "create", "-tenant", name)
		if err != nil {
			return nil, err
		}
		c, err := api.NewClient(first.endpoint, strings.TrimSpace(tok), httpClient)
		if err != nil {
			return nil, err
		}
		m.tenants, m.manage = append(m.tenants, name), append(m.manage, c)
	}
	return m, nil
}

// createDatabase creates a database in the cluster of baseURL and returns
// its URL.
func createDatabase(ctx context.Context, baseURL, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// writeSecretsKey writes a random 32-byte key, base64-encoded, readable by
// its owner only.
func writeSecretsKey(path string) error {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key[:])+"\n"), 0o600)
}

// setLeases gives the agent's config an agent_id and short leases, so that
// the leases spread within seconds of an agent joining.
func setLeases(a *agentProc, id string) error {
	data, err := os.ReadFile(a.config)
	if err != nil {
		return err
	}
	const tick = "delivery {\n  tick = \"1s\"\n"
	switch {
	case strings.Contains(string(data), "lease_ttl"):
		return fmt.Errorf("%s: the delivery block sets the leases already", a.config)
	case !strings.Contains(string(data), tick):
		return fmt.Errorf("%s: no delivery block to add the leases to", a.config)
	}
	block := tick + fmt.Sprintf("  agent_id    = %q\n  lease_ttl   = %q\n  lease_renew = %q\n", id, agentsLeaseTTL, agentsLeaseRenew)
	return os.WriteFile(a.config, []byte(strings.Replace(string(data), tick, block, 1)), 0o600)
}

// stop stops every agent.
func (m *agentsWorld) stop() {
	for _, a := range m.procs {
		a.stop()
	}
}

// createDestinations creates one paused destination per tenant under
// prefix-<tenant>, with the given backfill ("" for none).
func (m *agentsWorld) createDestinations(ctx context.Context, prefix, backfill string) error {
	m.dests = m.dests[:0]
	paused := false
	for i, t := range m.tenants {
		spec := api.DestinationSpec{
			Bucket: m.s3.bucket, Region: region, Prefix: prefix + "-" + t,
			AccessKeyID: m.s3.accessKey, SecretAccessKey: m.s3.secret,
			Interval: "1h", Enabled: &paused, Backfill: backfill,
		}
		d, err := m.manage[i].CreateDestination(ctx, spec)
		if err != nil {
			return fmt.Errorf("several agents: creating a destination of %s: %w\nagent log:\n%s", t, err, m.procs[0].logTail())
		}
		m.dests = append(m.dests, agentsDest{tenant: i, id: d.ID, spec: spec, cursor: d.Status.Cursor})
	}
	return nil
}

func (m *agentsWorld) deleteDestinations(ctx context.Context) error {
	for _, d := range m.dests {
		if err := m.manage[d.tenant].DeleteDestination(ctx, d.id); err != nil {
			return fmt.Errorf("several agents: deleting %s: %w", d.id, err)
		}
	}
	m.dests = m.dests[:0]
	return nil
}

// holders reads which agent holds each destination's lease.
func (m *agentsWorld) holders(ctx context.Context) ([]string, error) {
	out := make([]string, len(m.dests))
	for i, d := range m.dests {
		got, err := m.manage[d.tenant].GetDestination(ctx, d.id)
		if err != nil {
			return nil, err
		}
		out[i] = got.Status.DeliveredBy
	}
	return out, nil
}

// waitSpread waits until every destination's lease is held, by more than
// one agent when more than one runs, none holding more than its fair share
// (store.FairShare), with no change over three heartbeats. It returns ""
// then, or what it saw when its minute is up: the delivery is measured
// anyway, and the report says how the destinations were shared. The fair
// share is ⌈destinations ÷ agents⌉ + 1, so 6 destinations on 3 agents may
// well be held 3, 3 and 0.
func (m *agentsWorld) waitSpread(ctx context.Context, agents int) string {
	share := store.FairShare(len(m.dests), agents)
	deadline := time.Now().Add(time.Minute)
	var last []string
	stable := 0
	for {
		hs, err := m.holders(ctx)
		if err != nil {
			return "reading the leases: " + err.Error()
		}
		perHolder := map[string]int{}
		held := true
		for _, h := range hs {
			held = held && h != ""
			perHolder[h]++
		}
		fair := held && (agents == 1 || len(perHolder) > 1)
		for _, n := range perHolder {
			fair = fair && n <= share
		}
		if fair && slices.Equal(hs, last) {
			stable++
		} else {
			stable = 0
		}
		if stable >= 3 {
			return ""
		}
		last = hs
		if time.Now().After(deadline) {
			return fmt.Sprintf("the leases did not settle within a minute (holders: %s); delivering anyway", strings.Join(hs, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err().Error()
		case <-time.After(time.Second):
		}
	}
}

// deliver enables every destination and waits until each has delivered
// perTenant events, then pauses them.
func (m *agentsWorld) deliver(ctx context.Context, running []*agentProc, perTenant int64) (agentsPhase, error) {
	ph := agentsPhase{agents: len(running)}
	// Enable just after a second starts: with a 1 s tick the agents then
	// deliver at the end of that second (see world.deliver).
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second + 20*time.Millisecond).Sub(now))
	t0 := time.Now()
	enabled := true
	for _, d := range m.dests {
		spec := d.spec
		spec.Enabled = &enabled
		if _, err := m.manage[d.tenant].UpdateDestination(ctx, d.id, spec); err != nil {
			return ph, fmt.Errorf("several agents: enabling %s: %w", d.id, err)
		}
	}
	time.Sleep(time.Until(t0.Truncate(time.Second).Add(time.Second)))
	meter := startAgentsCPU(running, m.s3.pid, m.st.pid)
	final := make([]api.Destination, len(m.dests))
	for i, d := range m.dests {
		got, err := m.waitDest(ctx, d, d.cursor+perTenant)
		if err != nil {
			return ph, err
		}
		final[i] = got
	}
	ph.wall = time.Since(t0)
	ph.cpu = meter.stop()

	shares := make([]agentShare, len(running))
	for i := range running {
		shares[i].id = m.ids[i]
	}
	var first, last time.Time
	for i, d := range m.dests {
		st := final[i].Status
		if st.EventsDelivered != perTenant {
			return ph, fmt.Errorf("several agents: %s delivered %d events, want %d", d.id, st.EventsDelivered, perTenant)
		}
		if st.LastDeliveryAt == nil {
			return ph, fmt.Errorf("several agents: %s reports no last delivery", d.id)
		}
		ph.events += st.EventsDelivered
		ph.objects += st.ObjectsDelivered
		if st.LastDeliveryAt.After(last) {
			last = *st.LastDeliveryAt
		}
		if j := slices.Index(m.ids, st.DeliveredBy); j >= 0 && j < len(shares) {
			shares[j].dests++
			shares[j].events += st.EventsDelivered
		}
		objs, err := (&world{s3: m.s3, prefix: d.spec.Prefix}).listObjects(ctx)
		if err != nil {
			return ph, err
		}
		if int64(len(objs)) != st.ObjectsDelivered {
			return ph, fmt.Errorf("several agents: %d objects under %s, the agent reports %d", len(objs), d.spec.Prefix, st.ObjectsDelivered)
		}
		for _, o := range objs {
			if mm := windowEndRe.FindStringSubmatch(path.Base(o.key)); mm != nil {
				if t, err := time.Parse("20060102T150405Z", mm[1]); err == nil && (first.IsZero() || t.Before(first)) {
					first = t
				}
			}
		}
	}
	ph.shares = shares
	if first.IsZero() {
		return ph, fmt.Errorf("several agents: no window end found in the objects' keys")
	}
	ph.elapsed = last.Sub(first)
	if ph.elapsed <= 0 || ph.elapsed > ph.wall {
		return ph, fmt.Errorf("several agents: delivery timing is off: first window end %s, last commit %s, enabled %s",
			first.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano), t0.Format(time.RFC3339Nano))
	}
	paused := false
	for _, d := range m.dests {
		spec := d.spec
		spec.Enabled = &paused
		if _, err := m.manage[d.tenant].UpdateDestination(ctx, d.id, spec); err != nil {
			return ph, fmt.Errorf("several agents: pausing %s: %w", d.id, err)
		}
	}
	return ph, nil
}

// waitDest polls a destination until its cursor reaches want with no lag.
// It gives up when the context ends or the destination has failed for 2
// minutes.
func (m *agentsWorld) waitDest(ctx context.Context, d agentsDest, want int64) (api.Destination, error) {
	var lastErr string
	for {
		got, err := m.manage[d.tenant].GetDestination(ctx, d.id)
		if err != nil {
			return got, fmt.Errorf("several agents: reading %s: %w", d.id, err)
		}
		st := got.Status
		if st.Cursor >= want && st.LagEvents == 0 {
			return got, nil
		}
		if st.LastError != "" && st.LastError != lastErr {
			lastErr = st.LastError
			progress("several agents: %s: delivery attempt failed: %s", d.id, st.LastError)
		}
		if st.FailingSince != nil && time.Since(*st.FailingSince) > 2*time.Minute {
			return got, fmt.Errorf("several agents: %s failing since %s: %s\nagent log:\n%s", d.id, st.FailingSince, st.LastError, m.procs[0].logTail())
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("several agents: waiting for %s (cursor %d of %d): %w", d.id, st.Cursor, want, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// agentsCPU is the CPU of a phase in cores: each agent's, the database
// server's, the S3 server's and the rest of the machine's.
type agentsCPU struct {
	agents           []float64
	agentsSum        float64
	db, s3, other    float64
	disturbedByOther bool
}

type agentsMeter struct {
	agents   []int
	s3, db   int
	start    time.Time
	cpu      []time.Duration
	s3c, dbc time.Duration
	bench    time.Duration
	busy     time.Duration
}

func startAgentsCPU(running []*agentProc, s3pid, dbpid int) *agentsMeter {
	m := &agentsMeter{s3: s3pid, db: dbpid, start: time.Now()}
	for _, a := range running {
		m.agents = append(m.agents, a.pid())
		m.cpu = append(m.cpu, procCPU(a.pid()))
	}
	m.s3c, m.dbc, m.bench = procCPU(s3pid), treeCPU(dbpid), selfCPU()
	m.busy, _ = machineCPU()
	return m
}

func (m *agentsMeter) stop() agentsCPU {
	wall := time.Since(m.start).Seconds()
	var u agentsCPU
	for i, pid := range m.agents {
		c := (procCPU(pid) - m.cpu[i]).Seconds() / wall
		u.agents = append(u.agents, c)
		u.agentsSum += c
	}
	u.s3 = (procCPU(m.s3) - m.s3c).Seconds() / wall
	u.db = (treeCPU(m.db) - m.dbc).Seconds() / wall
	bench := (selfCPU() - m.bench).Seconds() / wall
	busy, _ := machineCPU()
	u.other = max((busy-m.busy).Seconds()/wall-u.agentsSum-u.s3-u.db-bench, 0)
	u.disturbedByOther = u.other >= disturbed
	return u
}

// printAgents prints the several-agents section.
func (r *report) printAgents(out io.Writer) {
	a := r.agents
	if a == nil {
		if r.agentsSkipped != "" {
			fmt.Fprintf(out, "\nSEVERAL AGENTS: skipped (%s)\n", r.agentsSkipped)
		}
		return
	}
	row := tableRow(out)
	each := func(f func(p agentsPhase) string) []string {
		vs := make([]string, len(a.phases))
		for i, p := range a.phases {
			vs[i] = f(p)
		}
		return vs
	}
	fmt.Fprintf(out, "\nSEVERAL AGENTS (PostgreSQL, one database): %s events over %d tenants, one destination each; lease_ttl %s, lease_renew %s, one secrets key file\n",
		count(a.perTenant*int64(a.dests)), a.dests, agentsLeaseTTL, agentsLeaseRenew)
	row("", each(func(p agentsPhase) string {
		if p.agents == 1 {
			return "1 agent"
		}
		return fmt.Sprintf("%d agents", p.agents)
	}), "", "")
	row("delivery", each(func(p agentsPhase) string { return count(int64(p.eventsPerSec())) }), "events/s", "first window end -> last commit, every destination")
	row("", each(func(p agentsPhase) string { return fmt.Sprintf("%.1f", float64(a.bytes)/1e6/p.elapsed.Seconds()) }), "MB/s", "NDJSON")
	row("", each(func(p agentsPhase) string { return secs(p.elapsed) }), "s", "")
	row("objects", each(func(p agentsPhase) string { return count(p.objects) }), "", "")
	row("enable -> no lag (wall)", each(func(p agentsPhase) string { return secs(p.wall) }), "s", "includes the wait for the 1 s tick")
	if len(a.phases) == 2 {
		ratio := a.phases[1].eventsPerSec() / a.phases[0].eventsPerSec()
		row(fmt.Sprintf("%d agents / 1 agent", a.phases[1].agents), []string{"", fmt.Sprintf("%.2f", ratio)}, "",
			fmt.Sprintf("on %d CPUs the agents, PostgreSQL and the S3 server share the same cores: more agents add no CPU, so no speed-up is expected here", r.machine.cpus))
	}
	for i := range agentsCount {
		note := "destinations whose delivered_by named it / their events"
		if i == agentsCount-1 {
			note = fmt.Sprintf("the fair share is at most %d destinations each (ceil(%d/%d)+1), so one agent may get none",
				store.FairShare(a.dests, agentsCount), a.dests, agentsCount)
		}
		row(fmt.Sprintf("agent-%d delivered", i+1), each(func(p agentsPhase) string {
			if i >= len(p.shares) {
				return "-"
			}
			return fmt.Sprintf("%d / %s", p.shares[i].dests, count(p.shares[i].events))
		}), "dst / ev", note)
	}
	if a.spread != "" {
		row("leases", []string{"", "NOT SETTLED"}, "", a.spread)
	}
	row("CPU: agents (sum)", each(func(p agentsPhase) string { return fmt.Sprintf("%.2f", p.cpu.agentsSum) }), "cores", "")
	row("", each(func(p agentsPhase) string {
		vs := make([]string, len(p.cpu.agents))
		for i, v := range p.cpu.agents {
			vs[i] = fmt.Sprintf("%.2f", v)
		}
		return strings.Join(vs, "+")
	}), "cores", "each agent")
	row("CPU: PostgreSQL server", each(func(p agentsPhase) string { return fmt.Sprintf("%.2f", p.cpu.db) }), "cores", "")
	row("CPU: S3 server", each(func(p agentsPhase) string { return fmt.Sprintf("%.2f", p.cpu.s3) }), "cores", "")
	row("CPU: other processes", each(func(p agentsPhase) string { return fmt.Sprintf("%.2f", p.cpu.other) }), "cores", "")
	row("other work on the CPUs", each(func(p agentsPhase) string {
		if p.cpu.disturbedByOther {
			return "DISTURBED"
		}
		return "none"
	}), "", fmt.Sprintf("DISTURBED when other processes use >= %.2f cores", disturbed))
}

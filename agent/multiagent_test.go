package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/secrets"
	"github.com/auditexport/auditexport/internal/testenv"
)

// Lease timings of the multi-agent tests: short, so that a handover takes
// seconds, and valid (the heartbeat fits three times in the TTL).
const (
	testLeaseTTL   = 3 * time.Second
	testLeaseRenew = time.Second
)

// agentIDSlot stands for the agent_id in a node's config until a run
// starts.
const agentIDSlot = "@AGENT_ID@"

// cluster is several agent processes sharing one PostgreSQL database, one
// secrets key and one delivery principal. Each node has its own listener
// and data directory; the first node's config is the testenv.Agent's, so
// its operator commands (tenant and token create) work on the shared
// database.
type cluster struct {
	t     *testing.T
	first *testenv.Agent
	w     *world
	bin   string
	base  string // the first node's config, with a secrets block
	nodes []*node
}

// node is one agent of a cluster and every run it had: each run gets a new
// agent_id, so that leases left by a killed run are taken over with a new
// epoch, as with the default hostname-pid-random.
type node struct {
	c        *cluster
	index    int
	config   string
	endpoint string
	base     string // its config, agent_id left as agentIDSlot

	mu   sync.Mutex
	runs []*agentRun
}

// agentRun is one process of a node.
type agentRun struct {
	agentID string
	cmd     *exec.Cmd
	log     *testenv.SyncBuffer
	done    chan struct{}
	started time.Time
	// healthy is when it first answered /healthz.
	healthy time.Time
	// killedAt is when the test SIGKILLed it; zero while it runs or when
	// it ended otherwise.
	killedAt time.Time
}

// newCluster configures n agents delivering through moto, on one new
// database of the package's PostgreSQL server. s3 gives each node's S3
// endpoint. It starts none.
func newCluster(t *testing.T, moto *testenv.Moto, n int, tick string, s3 func(i int) string) *cluster {
	t.Helper()
	dbURL := pg.Get(t).NewDatabase(t)
	first := testenv.NewAgentWithOptions(t, moto, testenv.AgentOptions{
		Tick: tick, LogLevel: "info", PostgresURL: dbURL, S3Endpoint: s3(0), Stopped: true,
		Delivery: fmt.Sprintf("  agent_id      = %q\n  lease_ttl     = %q\n  lease_renew   = %q\n",
			agentIDSlot, testLeaseTTL.String(), testLeaseRenew.String()),
	})
	// One key for all: each agent must open the secrets the others sealed.
	keyFile := filepath.Join(t.TempDir(), "secrets.key")
	if _, _, err := secrets.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(first.Config)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, first: first, w: &world{first}, bin: testenv.AgentBinary(t)}
	c.base = string(data) + fmt.Sprintf("\nsecrets {\n  key_file = %q\n}\n", keyFile)
	// The operator commands read the first node's config with any agent_id.
	if err := os.WriteFile(first.Config, []byte(strings.ReplaceAll(c.base, agentIDSlot, "operator")), 0o600); err != nil {
		t.Fatal(err)
	}
	listenRe := regexp.MustCompile(`(?m)^listen\s*=.*$`)
	dataRe := regexp.MustCompile(`(?m)^data_dir\s*=.*$`)
	s3Re := regexp.MustCompile(`(?m)^\s*s3_endpoint\s*=.*$`)
	for i := range n {
		nd := &node{c: c, index: i, config: filepath.Join(t.TempDir(), "agent.hcl"), endpoint: first.Endpoint}
		cfg := c.base
		if i > 0 {
			addr := testenv.FreeAddr(t)
			nd.endpoint = "http://" + addr
			cfg = listenRe.ReplaceAllString(cfg, fmt.Sprintf("listen = %q", addr))
			cfg = dataRe.ReplaceAllString(cfg, fmt.Sprintf("data_dir = %q", filepath.Join(t.TempDir(), "data")))
		}
		nd.base = s3Re.ReplaceAllString(cfg, fmt.Sprintf("  s3_endpoint = %q", s3(i)))
		c.nodes = append(c.nodes, nd)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.stopForGood()
		}
		if t.Failed() {
			for _, nd := range c.nodes {
				if r := nd.current(); r != nil {
					t.Logf("log of %s (tail):\n%s", r.agentID, tail(r.log.String(), 6000))
				}
			}
		}
	})
	return c
}

// start starts a new run of the node and waits until /healthz answers.
func (nd *node) start() *agentRun {
	t := nd.c.t
	t.Helper()
	nd.mu.Lock()
	id := fmt.Sprintf("agent%d-run%d", nd.index, len(nd.runs)+1)
	nd.mu.Unlock()
	if err := os.WriteFile(nd.config, []byte(strings.ReplaceAll(nd.base, agentIDSlot, id)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &agentRun{agentID: id, cmd: exec.Command(nd.c.bin, "serve", "-config", nd.config), log: &testenv.SyncBuffer{}, done: make(chan struct{})}
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.started = time.Now()
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	nd.mu.Lock()
	nd.runs = append(nd.runs, r)
	nd.mu.Unlock()
	deadline := time.Now().Add(testenv.HangGuard)
	for {
		if resp, err := http.Get(nd.endpoint + "/healthz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				r.healthy = time.Now()
				return r
			}
		}
		select {
		case <-r.done:
			t.Fatalf("%s exited at start:\n%s", id, r.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy after %s:\n%s", id, testenv.HangGuard, r.log.String())
		}
	}
}

func (nd *node) current() *agentRun {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if len(nd.runs) == 0 {
		return nil
	}
	return nd.runs[len(nd.runs)-1]
}

// kill SIGKILLs the node's current run and returns when it is gone.
func (nd *node) kill() {
	r := nd.current()
	r.killedAt = time.Now()
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

func (nd *node) signal(sig syscall.Signal) {
	if err := nd.current().cmd.Process.Signal(sig); err != nil {
		nd.c.t.Fatalf("%s to %s: %v", sig, nd.current().agentID, err)
	}
}

func (nd *node) stopForGood() {
	if r := nd.current(); r != nil {
		_ = r.cmd.Process.Signal(syscall.SIGCONT)
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		<-r.done
	}
}

func (nd *node) allRuns() []*agentRun {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return slices.Clone(nd.runs)
}

// client is an API client of this node with token.
func (nd *node) client(t *testing.T, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(nd.endpoint, token, &http.Client{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// multiTenant is a tenant of the multi-agent test, its destinations and
// what was ingested for it.
type multiTenant struct {
	name   string
	manage *api.Client
	dests  []faultDestination
}

// TestMultiAgentExactlyOnceUnderFaults runs three agent processes on one
// PostgreSQL database, posts events to all of them in turn, SIGKILLs and
// restarts them at random (sometimes two at once) while S3 writes fail
// through a fault proxy, and checks that every acknowledged event is in
// each of its tenant's destinations exactly once, that no key was written
// twice and that every destination was delivered. It logs the handovers it
// saw: from a kill to the first lease claim, by another agent, of a
// destination the killed agent held.
func TestMultiAgentExactlyOnceUnderFaults(t *testing.T) {
	const (
		agents       = 3
		tenants      = 5
		perTenant    = 4 // destinations
		batches      = 160
		perBatch     = 40
		minKills     = 24
		doubleChance = 0.25 // of a kill taking down two agents at once
		repostChance = 0.1
		faultChance  = 0.04 // per object write, for each of the four faults
		// Kills are spaced by progress, so a slow machine makes the run
		// longer, not weaker; the guard only turns a hang into a failure.
		hangGuard = 10 * time.Minute
	)
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	start := time.Now()

	moto := testenv.StartMoto(t)
	proxy := testenv.StartFaultProxy(t, moto.URL, testenv.FaultOptions{
		Seed: seed, InternalError: faultChance, SlowDown: faultChance, Reset: faultChance, ResponseLost: faultChance,
	})
	proxy.SetEnabled(false) // the destinations' connection tests run without faults
	c := newCluster(t, moto, agents, "2s", func(int) string { return proxy.URL() })
	for _, nd := range c.nodes {
		nd.start()
	}

	var ts []*multiTenant
	var allDests []faultDestination
	for i := range tenants {
		mt := &multiTenant{name: fmt.Sprintf("tenant%d", i)}
		extID, token := c.first.Tenant(t, mt.name)
		// Each tenant is managed through another agent: any agent serves
		// the whole API.
		mt.manage = c.nodes[i%agents].client(t, token)
		for j := range perTenant {
			bucket, role := c.first.CustomerSetup(t, fmt.Sprintf("t%d-d%d", i, j), extID, "audit")
			interval := []string{"1m", "5m"}[j%2]
			d, err := mt.manage.CreateDestination(ctxT(t), api.DestinationSpec{
				Bucket: bucket, Region: "us-east-1", Prefix: "audit", RoleARN: role, Interval: interval,
			})
			if err != nil {
				t.Fatalf("creating the destination of %s: %v", bucket, err)
			}
			mt.dests = append(mt.dests, faultDestination{bucket: bucket, dest: d})
			allDests = append(allDests, faultDestination{bucket: bucket, dest: d})
		}
		ts = append(ts, mt)
	}
	ingestToken := c.first.IngestToken(t)
	var clients []*api.Client
	for _, nd := range c.nodes {
		clients = append(clients, nd.client(t, ingestToken))
	}
	proxy.SetEnabled(true)

	killPhase := time.Now()
	guard := killPhase.Add(hangGuard)
	ctx, cancel := context.WithDeadline(t.Context(), guard)
	defer cancel()
	p := &roundRobinPoster{clients: clients, tenants: tenants, rng: rand.New(rand.NewPCG(seed, 2)), ids: map[string]map[string]bool{}}
	posted := make(chan error, 1)
	go func() { posted <- p.run(ctx, batches, perBatch, repostChance) }()

	k := &multiKiller{
		pacing: pacing{t: t, proxy: proxy, acked: p.acked, rng: rng, posted: posted, guard: guard, batches: batches, minKills: minKills},
		c:      c, p: p,
		caughtUp: func() bool {
			for _, mt := range ts {
				if !caughtUp(ctx, mt.manage, mt.dests) {
					return false
				}
			}
			return true
		}}
	for k.kills < minKills || !k.postDone {
		k.killOnce(doubleChance)
	}
	k.handoverKill()
	killDuration := time.Since(killPhase)

	// No more faults: the agents must now catch up by themselves.
	proxy.SetEnabled(false)
	drainStart := time.Now()
	statuses := map[string]api.DestinationStatus{}
	for _, mt := range ts {
		want := int64(len(p.ingestedIDs(mt.name)))
		for _, d := range mt.dests {
			testenv.WaitForWithin(t, time.Until(guard), d.bucket+" to deliver every event", func() (bool, string) {
				got, err := mt.manage.GetDestination(ctx, d.dest.ID)
				statuses[d.dest.ID] = got.Status
				return err == nil && got.Status.LagEvents == 0 && got.Status.EventsDelivered == want,
					fmt.Sprintf("%+v, %v (want %d events)", got.Status, err, want)
			})
		}
	}
	drainDuration := time.Since(drainStart)

	successful := proxy.SuccessfulWrites()
	objects := 0
	deliveredBy := map[string]int{}
	for _, mt := range ts {
		ingested := p.ingestedIDs(mt.name)
		if len(ingested) == 0 {
			t.Fatalf("nothing was ingested for %s", mt.name)
		}
		for _, d := range mt.dests {
			keys := checkOnceInBucket(t, c.w, d.bucket, ingested, successful)
			objects += len(keys)
			st := statuses[d.dest.ID]
			if len(keys) == 0 || st.ObjectsDelivered != int64(len(keys)) || st.Cursor == 0 {
				t.Errorf("%s: status = cursor %d, %d objects delivered; the bucket has %d objects", d.bucket, st.Cursor, st.ObjectsDelivered, len(keys))
			}
			deliveredBy[st.DeliveredBy]++
		}
	}
	for key, n := range successful {
		if n > 1 {
			t.Errorf("key %s was written %d times:\n%s", key, n, strings.Join(proxy.History(key), "\n"))
		}
	}
	if u := proxy.UnconditionalWrites(); len(u) > 0 {
		t.Errorf("%d writes without If-None-Match: *, e.g. %v", len(u), firstN(u, 5))
	}
	injected := proxy.Injected()
	for _, kind := range []string{testenv.FaultInternalError, testenv.FaultSlowDown, testenv.FaultReset, testenv.FaultResponseLost} {
		if injected[kind] == 0 {
			t.Errorf("no %q fault was injected in %d object writes", kind, proxy.Writes())
		}
	}

	first, all, outages := handovers(c)
	if len(first) == 0 {
		t.Errorf("no handover after a kill was seen in the agents' logs")
	}
	t.Logf("%d kills (%d of two agents at once, %d with an object write in flight) in %s; drained in %s; total %s",
		k.kills, k.doubles, k.midWrite, killDuration.Round(time.Millisecond), drainDuration.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	t.Logf("%d events ingested in %d requests over %d agents (%d re-posts, %d posts moved to another agent)",
		p.total(), batches, agents, p.reposts, p.moved)
	t.Logf("%d objects in %d buckets; object writes %v; faults injected %v; delivered at the end by %v",
		objects, len(allDests), proxy.WritesByOp(), injected, deliveredBy)
	t.Logf("handover, kill to the first claim by another agent of a destination the killed agent held (TTL %s, heartbeat %s): %s",
		testLeaseTTL, testLeaseRenew, describe(first))
	t.Logf("handover, kill to the last of its destinations claimed again: %s", describe(all))
	if len(outages) > 0 {
		t.Logf("kills with no other agent running until the leases expired (killed too, or restarting), from the first agent healthy again to the first claim: %s", describe(outages))
	}

	// The kills and handovers left no break in the digest chains: one
	// agent, its clock an hour ahead, seals the hours of the run.
	for _, nd := range c.nodes {
		nd.stopForGood()
	}
	var checks []digestCheck
	for _, d := range allDests {
		checks = append(checks, digestCheck{bucket: d.bucket, prefix: "audit", destinations: []string{d.dest.ID}})
	}
	sealHours(t, c.first, nil, checks)
	verifyDigests(t, c.first, c.first.Client(t, ingestToken), checks)
}

// checkOnceInBucket asserts that every messageId of ingested is in bucket
// exactly once and nothing else is, and that each object in the bucket is
// one successful write at the proxy. It returns the bucket's keys.
func checkOnceInBucket(t *testing.T, w *world, bucket string, ingested map[string]bool, successful map[string]int) []string {
	t.Helper()
	counts, keys := w.delivered(t, bucket, "audit/")
	checkIDsOnce(t, bucket, counts, ingested)
	for _, k := range keys {
		if successful[bucket+"/"+k] != 1 {
			t.Errorf("%s/%s is in the bucket, but %d writes of it succeeded at the proxy", bucket, k, successful[bucket+"/"+k])
		}
	}
	return keys
}

// roundRobinPoster posts batches of events, each for the next tenant, to
// the next agent; a batch an agent does not acknowledge (it is down or
// starting) goes to the following agent until one does.
type roundRobinPoster struct {
	clients []*api.Client
	tenants int
	rng     *rand.Rand

	mu       sync.Mutex
	ids      map[string]map[string]bool // per tenant
	bodies   []tenantBatch
	finished int
	reposts  int
	moved    int
}

type tenantBatch struct {
	tenant string
	body   []byte
	n      int
}

func (p *roundRobinPoster) run(ctx context.Context, batches, perBatch int, repostChance float64) error {
	for b := range batches {
		tenant := fmt.Sprintf("tenant%d", b%p.tenants)
		var body bytes.Buffer
		var ids []string
		for i := range perBatch {
			id := fmt.Sprintf("msg-%04d-%03d", b, i)
			ids = append(ids, id)
			body.WriteString(auditEvent(id, time.Now(), eventNames[p.rng.IntN(2)]) + "\n")
		}
		res, err := p.post(ctx, b, tenant, body.Bytes())
		if err != nil {
			return fmt.Errorf("batch %d: %w", b, err)
		}
		if res.Accepted != perBatch || res.Stored+res.Duplicates != perBatch {
			return fmt.Errorf("batch %d: answer %+v for %d events", b, res, perBatch)
		}
		p.mu.Lock()
		if p.ids[tenant] == nil {
			p.ids[tenant] = map[string]bool{}
		}
		for _, id := range ids {
			p.ids[tenant][id] = true
		}
		p.bodies = append(p.bodies, tenantBatch{tenant, body.Bytes(), perBatch})
		p.finished++
		p.mu.Unlock()

		if p.rng.Float64() < repostChance {
			i := p.rng.IntN(len(p.bodies))
			old := p.bodies[i]
			res, err := p.post(ctx, b+1, old.tenant, old.body)
			if err != nil {
				return fmt.Errorf("re-posting batch %d: %w", i, err)
			}
			if res.Stored != 0 || res.Duplicates != old.n {
				return fmt.Errorf("re-posting acknowledged batch %d to another agent: stored %d, %d duplicates; want 0 and %d", i, res.Stored, res.Duplicates, old.n)
			}
			p.mu.Lock()
			p.reposts++
			p.mu.Unlock()
		}
		time.Sleep(time.Duration(20+p.rng.IntN(60)) * time.Millisecond) // a steady stream, not a flood
	}
	return nil
}

// post sends body to agent b, then the next ones in turn, until one
// acknowledges it or ctx ends.
func (p *roundRobinPoster) post(ctx context.Context, b int, tenant string, body []byte) (api.IngestResponse, error) {
	return postUntilAcked(ctx, p.clients, b, tenant, body, 20*time.Millisecond, func() {
		p.mu.Lock()
		p.moved++
		p.mu.Unlock()
	})
}

func (p *roundRobinPoster) acked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.finished
}

func (p *roundRobinPoster) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, ids := range p.ids {
		n += len(ids)
	}
	return n
}

func (p *roundRobinPoster) ingestedIDs(tenant string) map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]bool, len(p.ids[tenant]))
	for id := range p.ids[tenant] {
		out[id] = true
	}
	return out
}

// multiKiller SIGKILLs and restarts agents of a cluster. As in the
// single-agent fault test the kills are spaced by progress: before each,
// batches must have been acknowledged and an object written since the last
// restart, so the kills cannot outrun the work however slow the machine.
type multiKiller struct {
	pacing
	c        *cluster
	p        *roundRobinPoster
	caughtUp func() bool

	doubles  int
	midWrite int
	writes   int64
}

func (k *multiKiller) killOnce(doubleChance float64) {
	if k.postDone {
		k.waitUntil("an object write or every event delivered", 100*time.Millisecond, func() bool {
			return k.proxy.Writes() > k.writes || k.caughtUp()
		})
	} else {
		acked, need := k.p.acked(), k.spacing()
		k.waitUntil(fmt.Sprintf("%d more batches acknowledged and an object write", need), 5*time.Millisecond, func() bool {
			return k.p.acked() >= acked+need && k.proxy.Writes() > k.writes || k.postDone
		})
	}
	if k.kills%2 == 0 {
		time.Sleep(randDuration(k.rng, 0, 300*time.Millisecond))
	} else {
		writes := k.proxy.Writes()
		k.waitUntil("an object write", 5*time.Millisecond, func() bool {
			return k.proxy.Writes() > writes || k.postDone
		})
		time.Sleep(randDuration(k.rng, 0, 15*time.Millisecond))
	}
	if k.proxy.InFlight() > 0 {
		k.midWrite++
	}
	victims := []*node{k.c.nodes[k.rng.IntN(len(k.c.nodes))]}
	if k.rng.Float64() < doubleChance {
		for {
			other := k.c.nodes[k.rng.IntN(len(k.c.nodes))]
			if other != victims[0] {
				victims = append(victims, other)
				break
			}
		}
		k.doubles++
	}
	for _, nd := range victims {
		nd.kill()
		k.kills++
	}
	for _, nd := range victims {
		nd.start()
	}
	k.writes = k.proxy.Writes()
}

// handoverKill kills the agent holding the most leases while the others
// run, and waits until one of them claims a destination it held: the random
// kills often come faster than leases expire, so without it a run could end
// with no kill that another agent took over.
func (k *multiKiller) handoverKill() {
	var victim *node
	k.waitUntil("an agent holding a lease", 50*time.Millisecond, func() bool {
		victim = nil
		most := 0
		for _, nd := range k.c.nodes {
			if n := len(heldLeases(nd.current())); n > most {
				victim, most = nd, n
			}
		}
		return victim != nil
	})
	held := heldLeases(victim.current())
	victim.kill()
	k.kills++
	k.waitUntil("another agent claiming a lease of the killed one", 50*time.Millisecond, func() bool {
		for _, nd := range k.c.nodes {
			if nd == victim {
				continue
			}
			for _, e := range leaseEvents(nd.current().log.String()) {
				if (e.what == "claimed" || e.what == "taken over") && held[e.dest] && e.at.After(victim.current().killedAt) {
					return true
				}
			}
		}
		return false
	})
	victim.start()
}

// heldLeases are the destinations whose leases the run holds, by its log.
func heldLeases(r *agentRun) map[string]bool {
	held := map[string]bool{}
	for _, e := range leaseEvents(r.log.String()) {
		switch e.what {
		case "claimed", "taken over":
			held[e.dest] = true
		case "released", "lost":
			delete(held, e.dest)
		}
	}
	return held
}

// leaseLine is a lease line of an agent's log:
//
//	2026-01-02T15:04:05.000Z [INFO]  auditexport.delivery: lease taken over: destination=dst_x epoch=3 agent=agent1-run2
var leaseLine = regexp.MustCompile(`(?m)^(\S+) \[\w+\]\s+\S+: lease (claimed|taken over|released|lost)[^:]*: destination=(\S+) epoch=(\d+) agent=(\S+)`)

// leaseEvent is one parsed lease line.
type leaseEvent struct {
	at     time.Time
	what   string
	dest   string
	holder string
}

func leaseEvents(log string) []leaseEvent {
	var out []leaseEvent
	for _, m := range leaseLine.FindAllStringSubmatch(log, -1) {
		at, err := time.Parse("2006-01-02T15:04:05.000Z0700", m[1])
		if err != nil {
			continue
		}
		out = append(out, leaseEvent{at: at, what: m[2], dest: m[3], holder: m[5]})
	}
	return out
}

// handovers reads the lease lines of every run of the cluster. For each
// killed run it takes the destinations the run held when it died and
// returns, per kill, the time to the first claim of one of them by another
// run (first) and to the claim of the last of them (all), for the kills
// that left another agent running until the killed one's leases expired.
// The other kills give outages instead: nobody could claim until an agent
// came back, and they measure from the first agent healthy again after the
// kill to the first claim.
func handovers(c *cluster) (first, all, outages []time.Duration) {
	var runs []*agentRun
	for _, nd := range c.nodes {
		runs = append(runs, nd.allRuns()...)
	}
	claims := map[string][]leaseEvent{} // per destination, every claim
	events := map[*agentRun][]leaseEvent{}
	for _, r := range runs {
		events[r] = leaseEvents(r.log.String())
		for _, e := range events[r] {
			if e.what == "claimed" || e.what == "taken over" {
				claims[e.dest] = append(claims[e.dest], e)
			}
		}
	}
	for _, r := range runs {
		if r.killedAt.IsZero() {
			continue
		}
		held := map[string]bool{}
		for _, e := range events[r] {
			switch e.what {
			case "claimed", "taken over":
				held[e.dest] = true
			case "released", "lost":
				delete(held, e.dest)
			}
		}
		// A survivor runs from the kill until the leases can be claimed.
		claimable := testLeaseTTL + 2*testLeaseRenew
		from, survivor := r.killedAt, false
		var back time.Time
		for _, o := range runs {
			switch {
			case o == r || o.healthy.IsZero():
			case o.healthy.Before(r.killedAt) && (o.killedAt.IsZero() || o.killedAt.After(r.killedAt.Add(claimable))):
				survivor = true
			case o.healthy.After(r.killedAt) && (back.IsZero() || o.healthy.Before(back)):
				back = o.healthy
			}
		}
		if !survivor {
			if back.IsZero() {
				continue
			}
			from = back
		}
		var soonest, latest time.Duration
		found := 0
		for d := range held {
			for _, e := range claims[d] {
				// Log stamps have millisecond precision: a claim in the
				// kill's millisecond counts as after it.
				if e.holder != r.agentID && !e.at.Before(r.killedAt.Truncate(time.Millisecond)) {
					h := max(e.at.Sub(from), 0)
					if found == 0 || h < soonest {
						soonest = h
					}
					latest = max(latest, h)
					found++
					break
				}
			}
		}
		switch {
		case found == 0:
		case survivor:
			first = append(first, soonest)
			all = append(all, latest)
		default:
			outages = append(outages, soonest)
		}
	}
	return first, all, outages
}

// describe summarises durations as count, median and max.
func describe(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none seen"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%d handovers, median %s, max %s", len(s), s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

// holdProxy sits between one agent and the fault proxy. While armed it
// holds the next object write: it reads the whole request, as S3 would
// receive it, and forwards it only when released, whatever became of the
// agent meanwhile. So a test can freeze an agent with a PUT on the wire.
type holdProxy struct {
	upstream string
	srv      *http.Server
	url      string

	mu       sync.Mutex
	armed    bool
	held     chan string // the held write's path, once
	release  chan struct{}
	released sync.Once
	answered chan int // the held write's status at the fault proxy
}

// let forwards the held write, if any; a write held later is not held.
func (h *holdProxy) let() { h.released.Do(func() { close(h.release) }) }

func startHoldProxy(t *testing.T, upstream string) *holdProxy {
	t.Helper()
	h := &holdProxy{upstream: upstream, held: make(chan string, 1), release: make(chan struct{}), answered: make(chan int, 1)}
	addr := testenv.FreeAddr(t)
	h.url = "http://" + addr
	h.srv = &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: time.Minute}
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.srv.Serve(ln) }()
	t.Cleanup(func() {
		h.let()
		_ = h.srv.Close()
	})
	return h
}

func (h *holdProxy) arm() {
	h.mu.Lock()
	h.armed = true
	h.mu.Unlock()
}

func (h *holdProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	hold := false
	if r.Method == http.MethodPut && strings.Count(strings.Trim(r.URL.Path, "/"), "/") > 0 && !strings.Contains(r.URL.Path, "/_auditexport/") {
		h.mu.Lock()
		hold, h.armed = h.armed, false
		h.mu.Unlock()
	}
	if hold {
		h.held <- strings.TrimPrefix(r.URL.Path, "/")
		<-h.release
	}
	// A fresh context: the write reaches the server even if the agent
	// gave up on it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, h.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	req.Host = r.Host
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(resp.Body)
	if hold {
		h.answered <- resp.StatusCode
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(respBody)
}

// TestLeaseFencingWithFrozenAgent freezes agent A (SIGSTOP) with a PUT of
// a planned object on the wire, past its lease TTL. Agent B takes the
// destination over, re-runs the plan and commits it. Then A's PUT reaches
// S3 (and gets 412: B wrote that key) and A is resumed (SIGCONT): it finds
// its lease lost, its late store writes are refused, and every event is in
// the bucket exactly once, no key written twice.
func TestLeaseFencingWithFrozenAgent(t *testing.T) {
	moto := testenv.StartMoto(t)
	proxy := testenv.StartFaultProxy(t, moto.URL, testenv.FaultOptions{Seed: 1}) // no faults: it records the writes
	hold := startHoldProxy(t, proxy.URL())
	c := newCluster(t, moto, 2, "1s", func(i int) string {
		if i == 0 {
			return hold.url // A
		}
		return proxy.URL() // B
	})
	a, b := c.nodes[0], c.nodes[1]
	ra := a.start()

	extID, token := c.first.Tenant(t, "acme")
	manage := a.client(t, token)
	bucket, role := c.first.CustomerSetup(t, "acme", extID, "audit")
	dest := c.w.newDestination(t, manage, bucket, role)
	testenv.WaitFor(t, "A to hold the destination", func() (bool, string) {
		got, err := manage.GetDestination(ctxT(t), dest.ID)
		return err == nil && got.Status.DeliveredBy == ra.agentID, fmt.Sprintf("%+v, %v", got.Status, err)
	})
	rb := b.start()
	manageB := b.client(t, token)

	hold.arm()
	ingest := a.client(t, c.first.IngestToken(t))
	var body bytes.Buffer
	ingested := map[string]bool{}
	for i := range 50 {
		id := fmt.Sprintf("frozen-%02d", i)
		ingested[id] = true
		body.WriteString(auditEvent(id, time.Now(), "user.login") + "\n")
	}
	if _, err := ingest.PostEvents(ctxT(t), "acme", body.Bytes()); err != nil {
		t.Fatal(err)
	}
	var key string
	select {
	case key = <-hold.held:
	case <-time.After(testenv.HangGuard):
		t.Fatalf("hang guard: A sent no object write in %s:\n%s", testenv.HangGuard, ra.log.String())
	}
	a.signal(syscall.SIGSTOP)
	frozen := time.Now()
	t.Logf("A (%s) frozen with a PUT of %s on the wire", ra.agentID, key)

	testenv.WaitFor(t, "B to take the destination over and deliver", func() (bool, string) {
		got, err := manageB.GetDestination(ctxT(t), dest.ID)
		return err == nil && got.Status.DeliveredBy == rb.agentID && got.Status.LagEvents == 0 && got.Status.EventsDelivered == int64(len(ingested)),
			fmt.Sprintf("%+v, %v", got.Status, err)
	})
	takeover := time.Since(frozen)
	if n := proxy.SuccessfulWrites()[key]; n != 1 {
		t.Fatalf("B's writes of %s that succeeded = %d, want 1:\n%s", key, n, strings.Join(proxy.History(key), "\n"))
	}

	// A's PUT lands after B's commit, then A runs again.
	hold.let()
	select {
	case status := <-hold.answered:
		if status != http.StatusPreconditionFailed {
			t.Errorf("A's late PUT of %s was answered %d, want 412", key, status)
		}
	case <-time.After(testenv.HangGuard):
		t.Fatalf("hang guard: A's held PUT was never answered")
	}
	a.signal(syscall.SIGCONT)
	testenv.WaitFor(t, "A to find its lease lost", func() (bool, string) {
		return strings.Contains(ra.log.String(), "lease lost"), tail(ra.log.String(), 2000)
	})

	// Delivery goes on, by B, exactly once.
	var more bytes.Buffer
	for i := range 20 {
		id := fmt.Sprintf("after-%02d", i)
		ingested[id] = true
		more.WriteString(auditEvent(id, time.Now(), "user.logout") + "\n")
	}
	if _, err := ingest.PostEvents(ctxT(t), "acme", more.Bytes()); err != nil {
		t.Fatal(err)
	}
	var st api.DestinationStatus
	testenv.WaitFor(t, "every event delivered", func() (bool, string) {
		got, err := manageB.GetDestination(ctxT(t), dest.ID)
		st = got.Status
		return err == nil && got.Status.LagEvents == 0 && got.Status.EventsDelivered == int64(len(ingested)),
			fmt.Sprintf("%+v, %v", got.Status, err)
	})
	successful := proxy.SuccessfulWrites()
	keys := checkOnceInBucket(t, c.w, bucket, ingested, successful)
	for k, n := range successful {
		if n > 1 {
			t.Errorf("key %s was written %d times:\n%s", k, n, strings.Join(proxy.History(k), "\n"))
		}
	}
	if proxy.PreconditionFailed()[key] == 0 {
		t.Errorf("A's late PUT of %s met no 412 at the proxy", key)
	}
	if st.ObjectsDelivered != int64(len(keys)) {
		t.Errorf("status says %d objects delivered, the bucket has %d", st.ObjectsDelivered, len(keys))
	}
	t.Logf("B (%s) took over and committed %s after A froze (TTL %s, heartbeat %s); A's late PUT got 412; A logged: %s",
		rb.agentID, takeover.Round(time.Millisecond), testLeaseTTL, testLeaseRenew, leaseLostLines(ra.log.String()))
}

// leaseLostLines are the "lease lost" lines of an agent's log.
func leaseLostLines(log string) string {
	var out []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, "lease lost") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return strings.Join(out, " | ")
}

// TestHandoverAfterKill measures a handover on its own: three agents share
// twelve destinations, and three times the agent holding the most is
// SIGKILLed while the two others run. Every destination it held must be
// claimed by a survivor; the test logs the time from the kill to the first
// and to the last of those claims (bounded by the lease TTL plus a
// heartbeat or two, since the survivors stop counting the dead agent in
// their shares after two missed beats). Only a hang guard bounds it.
func TestHandoverAfterKill(t *testing.T) {
	const destinations = 12
	moto := testenv.StartMoto(t)
	c := newCluster(t, moto, 3, "2s", func(int) string { return moto.S3URL })
	for _, nd := range c.nodes {
		nd.start()
	}
	extID, token := c.first.Tenant(t, "acme")
	manage := c.nodes[0].client(t, token)
	var ids []string
	for i := range destinations {
		bucket, role := c.first.CustomerSetup(t, fmt.Sprintf("acme-%02d", i), extID, "audit")
		ids = append(ids, c.w.newDestination(t, manage, bucket, role).ID)
	}

	var first, all []time.Duration
	for round := range 3 {
		// Wait until the leases are spread and the cluster is steady.
		var victim *node
		var held []string
		testenv.WaitFor(t, "every destination held, by all three agents", func() (bool, string) {
			byHolder := map[string][]string{}
			for _, id := range ids {
				got, err := manage.GetDestination(ctxT(t), id)
				if err != nil || got.Status.DeliveredBy == "" {
					return false, fmt.Sprintf("%s: %+v, %v", id, got.Status, err)
				}
				byHolder[got.Status.DeliveredBy] = append(byHolder[got.Status.DeliveredBy], id)
			}
			victim, held = nil, nil
			for _, nd := range c.nodes {
				if ds := byHolder[nd.current().agentID]; len(ds) > len(held) {
					victim, held = nd, ds
				}
			}
			return len(byHolder) == 3, fmt.Sprintf("held by %d agents", len(byHolder))
		})
		dead := victim.current()
		victim.kill()
		var firstClaim, lastClaim time.Duration
		testenv.WaitFor(t, "the survivors to claim the killed agent's destinations", func() (bool, string) {
			claimed := 0
			for _, d := range held {
				for _, nd := range c.nodes {
					if nd == victim {
						continue
					}
					for _, e := range leaseEvents(nd.current().log.String()) {
						if e.dest == d && (e.what == "claimed" || e.what == "taken over") && e.at.After(dead.killedAt) {
							h := e.at.Sub(dead.killedAt)
							if claimed == 0 || h < firstClaim {
								firstClaim = h
							}
							lastClaim = max(lastClaim, h)
							claimed++
							break
						}
					}
				}
			}
			return claimed == len(held), fmt.Sprintf("%d of %d claimed", claimed, len(held))
		})
		t.Logf("round %d: killed %s holding %d of %d destinations; first claim %s, last %s after the kill",
			round+1, dead.agentID, len(held), destinations, firstClaim.Round(time.Millisecond), lastClaim.Round(time.Millisecond))
		first, all = append(first, firstClaim), append(all, lastClaim)
		victim.start()
	}
	t.Logf("handover after a SIGKILL with lease_ttl %s, lease_renew %s: first claim %s; all claimed %s",
		testLeaseTTL, testLeaseRenew, describe(first), describe(all))
}

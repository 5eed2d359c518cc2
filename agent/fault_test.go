package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/testenv"
)

// faultSeedEnv names the variable that fixes the fault test's seed, to
// repeat a run; by default each run draws its own and logs it.
const faultSeedEnv = "AUDITEXPORT_FAULT_SEED"

// faultSeed is the seed of a fault test's random choices: $AUDITEXPORT_FAULT_SEED,
// or a new one each run, logged so that a failing run can be repeated.
func faultSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(faultSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", faultSeedEnv, s, err)
		}
	}
	t.Logf("seed %d (set %s=%d to repeat the random choices)", seed, faultSeedEnv, seed)
	return seed
}

// faultDestination is one destination of the fault test and its bucket.
type faultDestination struct {
	bucket string
	dest   api.Destination
}

// TestDeliveryExactlyOnceUnderFaults runs the agent as a separate process,
// SIGKILLs and restarts it at random moments while it ingests and delivers,
// and injects S3 faults between the agent and the server (500, 503 SlowDown,
// connection resets, answers lost after the object was stored). At the end
// every ingested messageId must be in each destination's bucket exactly
// once, and no key may have been written twice.
//
// Three destinations receive the tenant's events: one with the default
// max_object_bytes, one with the smallest (5 MiB) and a key template
// without {event_type} (so each object merges every event name's events),
// and one in Security Lake's layout. Bursts of large, incompressible events,
// each in one request, make groups bigger than the upload part size: the
// first destination writes each as a multipart upload, the second splits it
// into several objects. So the faults hit UploadPart and
// CompleteMultipartUpload as well as PutObject.
//
// It runs with the agent's store in SQLite and in PostgreSQL.
func TestDeliveryExactlyOnceUnderFaults(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { testDeliveryExactlyOnceUnderFaults(t, backend) })
	}
}

func testDeliveryExactlyOnceUnderFaults(t *testing.T, backend string) {
	const (
		batches      = 200 // of perBatch events each, ~400 bytes an event
		perBatch     = 150
		burstEvents  = 3200 // ~4 KiB each, ~10 MB gzip'd, in one request
		repostChance = 0.15 // after a batch, re-post an acknowledged one
		minKills     = 30
		faultChance  = 0.07 // per object write, for each of the four faults
		// The kills are spaced by progress, not by time, so a slow machine
		// makes the run longer, not weaker. hangGuard only bounds a run
		// that stopped making progress.
		hangGuard = 10 * time.Minute
	)
	burstsAt := []int{15, 60, 105, 150} // a burst before each of these batches
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	start := time.Now()

	moto := testenv.StartMoto(t)
	proxy := testenv.StartFaultProxy(t, moto.URL, testenv.FaultOptions{
		Seed:          seed,
		InternalError: faultChance,
		SlowDown:      faultChance,
		Reset:         faultChance,
		ResponseLost:  faultChance,
	})
	// The destinations' connection tests run without faults.
	proxy.SetEnabled(false)
	w := &world{testenv.NewAgentWithOptions(t, moto, onBackend(t, backend, testenv.AgentOptions{
		Tick: "1s", S3Endpoint: proxy.URL(), LogLevel: "info",
	}))}
	extID, manage := w.tenant(t, "acme")
	var dests []faultDestination
	for _, d := range []struct {
		customer  string
		maxObject int64
		keys      string // key_template; without {event_type}: an object holds every name's events
		lake      bool   // OCSF in Parquet, Security Lake's layout
	}{
		{"acme", 0, "", false},
		{"acme-split", api.MinObjectBytes, "{tenant}/{yyyy}-{mm}-{dd}/{window_end}_{seq_from}-{seq_to}_{part}", false},
		{"acme-lake", 0, "", true},
	} {
		bucket, role := w.CustomerSetup(t, d.customer, extID, "audit")
		spec := api.DestinationSpec{
			Bucket: bucket, Region: "us-east-1", Prefix: "audit", RoleARN: role,
			Interval: "1m", MaxObjectBytes: d.maxObject, KeyTemplate: d.keys,
		}
		if d.lake {
			spec.Format, spec.EventSchema, spec.KeyTemplate, spec.SourceName = api.FormatParquet, api.EventSchemaOCSF, lakeTemplate, "acme-audit"
		}
		created, err := manage.CreateDestination(ctxT(t), spec)
		if err != nil {
			t.Fatalf("creating the destination of %s: %v", bucket, err)
		}
		dests = append(dests, faultDestination{bucket: bucket, dest: created})
	}
	// A generous per-attempt timeout: a burst is ~13 MB, and a timed-out
	// attempt is retried anyway.
	ingest, err := api.NewClient(w.Endpoint, w.IngestToken(t), &http.Client{Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	proxy.SetEnabled(true)

	killPhase := time.Now()
	guard := killPhase.Add(hangGuard)
	ctx, cancel := context.WithDeadline(t.Context(), guard)
	defer cancel()
	p := &poster{client: ingest, rng: rand.New(rand.NewPCG(seed, 2)), ids: map[string]bool{}}
	posted := make(chan error, 1)
	go func() {
		posted <- p.run(ctx, batches, perBatch, burstsAt, burstEvents, repostChance)
	}()
	k := &killer{
		pacing: pacing{t: t, proxy: proxy, acked: p.acked, rng: rng, posted: posted,
			guard: guard, batches: batches, minKills: minKills},
		w: w, p: p, hangGuard: hangGuard,
		caughtUp: func() bool { return caughtUp(ctx, manage, dests) },
	}
	for k.kills < minKills || !k.postDone {
		k.killOnce()
	}
	killDuration := time.Since(killPhase)

	// No more faults: the agent must now catch up by itself.
	proxy.SetEnabled(false)
	drainStart := time.Now()
	statuses := make([]api.DestinationStatus, len(dests))
	for i, d := range dests {
		for {
			got, err := manage.GetDestination(ctxT(t), d.dest.ID)
			if err != nil {
				t.Fatalf("reading the status of %s: %v", d.bucket, err)
			}
			statuses[i] = got.Status
			if got.Status.LagEvents == 0 {
				break
			}
			if time.Now().After(guard) {
				t.Fatalf("hang guard: %s: %d events still undelivered %s after the last kill (%s into the run); status %+v",
					d.bucket, got.Status.LagEvents, time.Since(drainStart).Round(time.Second), hangGuard, got.Status)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	drainDuration := time.Since(drainStart)

	ingested := p.ingestedIDs()
	successful := proxy.SuccessfulWrites()
	objects := 0
	for i, d := range dests {
		var keys []string
		if d.dest.Format == api.FormatParquet {
			keys = checkParquetExactlyOnce(t, w, d.bucket, ingested, successful)
		} else {
			keys = checkExactlyOnce(t, w, d.bucket, ingested, successful)
		}
		objects += len(keys)
		// The status agrees: each event and each object was committed once.
		st := statuses[i]
		if st.Cursor != int64(len(ingested)) || st.EventsDelivered != int64(len(ingested)) ||
			st.ObjectsDelivered != int64(len(keys)) {
			t.Errorf("%s: status = cursor %d, %d events and %d objects delivered; want %d, %d and %d",
				d.bucket, st.Cursor, st.EventsDelivered, st.ObjectsDelivered, len(ingested), len(ingested), len(keys))
		}
		if d.dest.MaxObjectBytes == api.MinObjectBytes && maxPart(keys) < 2 {
			t.Errorf("%s: no group was split into several objects at max_object_bytes", d.bucket)
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

	// The run exercised what it claims to.
	injected := proxy.Injected()
	for _, kind := range []string{testenv.FaultInternalError, testenv.FaultSlowDown, testenv.FaultReset, testenv.FaultResponseLost} {
		if injected[kind] == 0 {
			t.Errorf("no %q fault was injected in %d object writes", kind, proxy.Writes())
		}
	}
	ops := proxy.WritesByOp()
	if ops[testenv.OpUploadPart] == 0 || ops[testenv.OpCompleteMultipartUpload] == 0 {
		t.Errorf("no multipart upload was attempted: object writes %v", ops)
	}
	preconditions := 0
	for _, n := range proxy.PreconditionFailed() {
		preconditions += n
	}
	if injected[testenv.FaultResponseLost] > 0 && preconditions == 0 {
		t.Errorf("%d answers were lost after the write, yet no retry met 412 PreconditionFailed", injected[testenv.FaultResponseLost])
	}

	// The crashes left no break in the digest chains.
	var checks []digestCheck
	for _, d := range dests {
		checks = append(checks, digestCheck{bucket: d.bucket, prefix: "audit", destinations: []string{d.dest.ID}})
	}
	w.Process().Kill()
	sealHours(t, w.Agent, nil, checks)
	verifyDigests(t, w.Agent, manage, checks)

	t.Logf("%d kills (%d with an object write in flight) in %s; drained in %s; total %s",
		k.kills, k.midWrite, killDuration.Round(time.Millisecond), drainDuration.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	t.Logf("%d events ingested in %d requests (%d re-posts, %d post attempts failed while the agent was down)",
		len(ingested), batches+len(burstsAt), p.reposts, p.retries)
	t.Logf("%d objects in %d buckets; object writes %v; faults injected %v, by operation %v; 412 PreconditionFailed: %d; completions acknowledged again: %d",
		objects, len(dests), ops, injected, proxy.InjectedByOp(), preconditions, proxy.Recompleted())
}

// killer SIGKILLs and restarts the fault test's agent. The kills are spaced
// by progress, never by time alone: before each, the poster must have had
// batches acknowledged since the last restart, so that however slow the
// machine, every restart is followed by work done and the kills cannot
// outrun the work.
type killer struct {
	pacing
	w         *world
	p         *poster
	hangGuard time.Duration
	// caughtUp tells whether every destination has delivered everything.
	caughtUp func() bool

	midWrite int // kills with an object write in flight
	// writes is the proxy's object-write count when the agent last started.
	writes int64
}

// pacing is what the fault tests' killers share: the kills so far, the
// poster's progress and the hang guard.
type pacing struct {
	t        *testing.T
	proxy    *testenv.FaultProxy
	acked    func() int // batches acknowledged so far
	rng      *rand.Rand
	posted   <-chan error
	guard    time.Time
	batches  int
	minKills int

	kills    int
	postDone bool
}

// killOnce waits for the moment of the next kill, kills the agent and
// starts it again. Half of the kills come at a random moment once enough
// batches were acknowledged, the other half right after the agent then sent
// an object write, so that many land mid-delivery.
func (k *killer) killOnce() {
	if k.postDone {
		// Only the minimum number of kills is left to reach: space them by
		// delivery, until there is nothing left to deliver.
		k.waitUntil("an object write or every event delivered", 100*time.Millisecond, func() bool {
			return k.proxy.Writes() > k.writes || k.caughtUp()
		})
	} else {
		acked, need := k.p.acked(), k.spacing()
		k.waitUntil(fmt.Sprintf("%d more batches acknowledged", need), 5*time.Millisecond, func() bool {
			return k.p.acked() >= acked+need || k.postDone
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
	k.w.Process().Kill()
	k.kills++
	k.w.Start(k.t)
	k.writes = k.proxy.Writes()
}

// spacing draws how many more batches must be acknowledged before the next
// kill. Until the minimum number of kills is reached, the draw is bounded
// so that the remaining kills fit in the remaining batches.
func (k *pacing) spacing() int {
	if left := k.minKills - k.kills; left > 0 {
		per := (k.batches - k.acked()) / left
		return 1 + k.rng.IntN(max(1, per))
	}
	return 2 + k.rng.IntN(7)
}

// waitUntil polls cond every interval. It notes when the poster finishes
// (failing the test if it failed) and fails the test when the hang guard
// passes.
func (k *pacing) waitUntil(what string, interval time.Duration, cond func() bool) {
	k.t.Helper()
	for {
		if !k.postDone {
			select {
			case err := <-k.posted:
				k.postDone = true
				if err != nil {
					k.t.Fatalf("posting events (%d kills so far): %v", k.kills, err)
				}
			default:
			}
		}
		if cond() {
			return
		}
		if time.Now().After(k.guard) {
			k.t.Fatalf("hang guard: after %d kills the work is not done (%d of %d batches acknowledged, %d object writes); waiting for %s",
				k.kills, k.acked(), k.batches, k.proxy.Writes(), what)
		}
		time.Sleep(interval)
	}
}

// caughtUp tells whether every destination has delivered every event.
func caughtUp(ctx context.Context, manage *api.Client, dests []faultDestination) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, d := range dests {
		got, err := manage.GetDestination(ctx, d.dest.ID)
		if err != nil || got.Status.LagEvents != 0 {
			return false
		}
	}
	return true
}

// checkExactlyOnce asserts that every ingested messageId is in bucket exactly
// once and nothing else is, that the keys follow the layout, and that each
// object in the bucket is exactly one successful write at the proxy. It
// returns the bucket's keys.
func checkExactlyOnce(t *testing.T, w *world, bucket string, ingested map[string]bool, successful map[string]int) []string {
	t.Helper()
	counts, keys := w.delivered(t, bucket, "audit/")
	checkIDsOnce(t, bucket, counts, ingested)
	checkKeys(t, keys)

	inBucket := map[string]bool{}
	for _, k := range keys {
		inBucket[bucket+"/"+k] = true
		if successful[bucket+"/"+k] == 0 {
			t.Errorf("%s/%s is in the bucket, but no write of it succeeded at the proxy", bucket, k)
		}
	}
	for key := range successful {
		if strings.HasPrefix(key, bucket+"/") && !strings.Contains(key, "/_auditexport/") && !inBucket[key] {
			t.Errorf("%s was written but is not in the bucket", key)
		}
	}
	return keys
}

// faultLakeKeyRe is the key of the fault test's OCSF Parquet objects.
var faultLakeKeyRe = regexp.MustCompile(`^audit/ext/acme-audit/region-us-east-1/accountId-\d{12}/eventDay-\d{8}/[a-z_]+_(user\.login|user\.logout|role\.granted)_\d{8}T\d{6}Z_\d{12}-\d{12}_\d{4}\.parquet$`)

// checkParquetExactlyOnce is checkExactlyOnce for a destination of OCSF in
// Parquet: DuckDB reads every object, each holds rows sorted by time, and
// every ingested messageId (metadata.uid) is in one of them exactly once.
func checkParquetExactlyOnce(t *testing.T, w *world, bucket string, ingested map[string]bool, successful map[string]int) []string {
	t.Helper()
	dir := t.TempDir()
	queries := map[string]string{}
	var keys []string
	for i, key := range w.Moto.ListKeys(t, bucket, "audit/") {
		if strings.Contains(key, "/_auditexport/") {
			continue // the connection test's object
		}
		if !faultLakeKeyRe.MatchString(key) {
			t.Errorf("%s/%s does not follow the Security Lake layout", bucket, key)
		}
		keys = append(keys, key)
		path := filepath.Join(dir, fmt.Sprintf("%d.parquet", i))
		if err := os.WriteFile(path, w.Moto.GetObject(t, bucket, key), 0o644); err != nil {
			t.Fatal(err)
		}
		queries[key] = fmt.Sprintf(`SELECT metadata.uid AS id, epoch_ms(time) AS ms FROM read_parquet('%s', file_row_number = true) ORDER BY file_row_number`, path)
	}
	counts := map[string]int{}
	for key, rows := range testenv.DuckDB(t, queries) {
		checkSorted(t, key, rows)
		for _, r := range rows {
			counts[fmt.Sprint(r["id"])]++
		}
	}
	checkIDsOnce(t, bucket, counts, ingested)
	for _, k := range keys {
		if successful[bucket+"/"+k] == 0 {
			t.Errorf("%s/%s is in the bucket, but no write of it succeeded at the proxy", bucket, k)
		}
	}
	inBucket := map[string]bool{}
	for _, k := range keys {
		inBucket[bucket+"/"+k] = true
	}
	for key := range successful {
		if strings.HasPrefix(key, bucket+"/") && !strings.Contains(key, "/_auditexport/") && !inBucket[key] {
			t.Errorf("%s was written but is not in the bucket", key)
		}
	}
	return keys
}

// checkIDsOnce asserts that every messageId of ingested was counted in
// bucket exactly once and that no other id was.
func checkIDsOnce(t *testing.T, bucket string, counts map[string]int, ingested map[string]bool) {
	t.Helper()
	var missing, duplicated, unknown []string
	for id := range ingested {
		switch n := counts[id]; {
		case n == 0:
			missing = append(missing, id)
		case n > 1:
			duplicated = append(duplicated, fmt.Sprintf("%s×%d", id, n))
		}
	}
	for id := range counts {
		if !ingested[id] {
			unknown = append(unknown, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s: %d of %d ingested messageIds are missing, e.g. %v", bucket, len(missing), len(ingested), firstN(missing, 10))
	}
	if len(duplicated) > 0 {
		t.Errorf("%s: %d messageIds are there more than once, e.g. %v", bucket, len(duplicated), firstN(duplicated, 10))
	}
	if len(unknown) > 0 {
		t.Errorf("%s: %d messageIds were never ingested (for this bucket's tenant), e.g. %v", bucket, len(unknown), firstN(unknown, 10))
	}
}

// maxPart is the highest part number among keys.
func maxPart(keys []string) int {
	n := 0
	for _, k := range keys {
		if m := keyRe.FindStringSubmatch(k); m != nil {
			p, _ := strconv.Atoi(m[4])
			n = max(n, p)
		}
	}
	return n
}

// poster posts batches of events to the agent, retrying each until it is
// acknowledged (2xx), while the agent is killed and restarted under it.
type poster struct {
	client *api.Client
	rng    *rand.Rand

	mu       sync.Mutex
	bodies   [][]byte // of acknowledged batches of the regular size
	ids      map[string]bool
	reposts  int
	retries  int
	finished int
}

// run posts batches×perBatch events with unique messageIds, and before each
// batch in burstsAt one request of burstEvents large events. Now and then it
// re-posts an acknowledged batch, which must then store nothing.
func (p *poster) run(ctx context.Context, batches, perBatch int, burstsAt []int, burstEvents int, repostChance float64) error {
	now := time.Now()
	for b := range batches {
		if slices.Contains(burstsAt, b) {
			if err := p.postBatch(ctx, "burst", p.burst(fmt.Sprintf("big-%04d", b), now, burstEvents)); err != nil {
				return err
			}
		}
		var body bytes.Buffer
		var ids []string
		for i := range perBatch {
			id := fmt.Sprintf("msg-%04d-%04d", b, i)
			ids = append(ids, id)
			// Events over the last 30 hours land in two days' partitions.
			ts := now.Add(-time.Duration(p.rng.IntN(30*60)) * time.Minute)
			body.WriteString(auditEvent(id, ts, eventNames[p.rng.IntN(len(eventNames))]) + "\n")
		}
		if err := p.postBatch(ctx, fmt.Sprintf("batch %d", b), batch{body.Bytes(), ids}); err != nil {
			return err
		}
		p.mu.Lock()
		p.bodies = append(p.bodies, body.Bytes())
		p.finished++
		p.mu.Unlock()

		if p.rng.Float64() < repostChance {
			i := p.rng.IntN(len(p.bodies))
			res, err := p.post(ctx, p.bodies[i])
			if err != nil {
				return fmt.Errorf("re-posting batch %d: %w", i, err)
			}
			if res.Stored != 0 || res.Duplicates != perBatch {
				return fmt.Errorf("re-posting acknowledged batch %d: stored %d, %d duplicates; want 0 and %d",
					i, res.Stored, res.Duplicates, perBatch)
			}
			p.mu.Lock()
			p.reposts++
			p.mu.Unlock()
		}
		time.Sleep(time.Duration(50+p.rng.IntN(200)) * time.Millisecond)
	}
	return nil
}

// batch is one request's body and its messageIds.
type batch struct {
	body []byte
	ids  []string
}

// burst returns n events of one type and day, each with 3 KiB of random
// data that gzip cannot shrink.
func (p *poster) burst(idPrefix string, now time.Time, n int) batch {
	var b batch
	var body bytes.Buffer
	noise := make([]byte, 3<<10)
	for i := range n {
		id := fmt.Sprintf("%s-%05d", idPrefix, i)
		for j := range noise {
			noise[j] = byte(p.rng.Uint32())
		}
		ev := auditEvent(id, now, "role.granted")
		body.WriteString(strings.TrimSuffix(ev, "}") + `,"attachment":"` + base64.StdEncoding.EncodeToString(noise) + "\"}\n")
		b.ids = append(b.ids, id)
	}
	b.body = body.Bytes()
	return b
}

// postBatch posts b until it is acknowledged and records its messageIds as
// ingested.
func (p *poster) postBatch(ctx context.Context, name string, b batch) error {
	res, err := p.post(ctx, b.body)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if res.Accepted != len(b.ids) || res.Stored+res.Duplicates != len(b.ids) {
		return fmt.Errorf("%s: answer %+v for %d events", name, res, len(b.ids))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range b.ids {
		p.ids[id] = true
	}
	return nil
}

// post sends body until the agent acknowledges it or ctx ends.
func (p *poster) post(ctx context.Context, body []byte) (api.IngestResponse, error) {
	return postUntilAcked(ctx, []*api.Client{p.client}, 0, "acme", body, 50*time.Millisecond, func() {
		p.mu.Lock()
		p.retries++
		p.mu.Unlock()
	})
}

// postUntilAcked sends body to clients[first], then the next ones in turn,
// until one acknowledges it or ctx ends. Failures to reach an agent and 5xx
// answers move on after wait (the agent may be down or starting), calling
// retried; any other answer is an error.
func postUntilAcked(ctx context.Context, clients []*api.Client, first int, tenant string, body []byte, wait time.Duration, retried func()) (api.IngestResponse, error) {
	for try := 0; ; try++ {
		res, err := clients[(first+try)%len(clients)].PostEvents(ctx, tenant, body)
		if err == nil {
			return res, nil
		}
		var ae *api.APIError
		if errors.As(err, &ae) && ae.StatusCode < 500 {
			return res, err
		}
		retried()
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("not acknowledged before the hang guard (%w); last error: %w", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

func (p *poster) acked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.finished
}

// ingestedIDs are the messageIds of every acknowledged request.
func (p *poster) ingestedIDs() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]bool, len(p.ids))
	for id := range p.ids {
		out[id] = true
	}
	return out
}

func randDuration(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}

func firstN(s []string, n int) []string {
	slices.Sort(s)
	return s[:min(n, len(s))]
}

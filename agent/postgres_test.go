package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/testenv"
)

// outageTime is how long the outage test keeps PostgreSQL stopped. Here a
// wall-clock wait is the scenario itself: the agent must ride out a
// database restart of this length, answering 503 meanwhile.
const outageTime = 30 * time.Second

// PostgreSQL stops for 30 s while events are posted and delivered. During
// the outage ingest answers 503 with Retry-After (never 500, never a hang)
// and /healthz says the store is down; the posters retry their 503s. Once
// PostgreSQL is back, delivery resumes by itself and every acknowledged
// event is delivered exactly once.
func TestPostgresOutage(t *testing.T) {
	// A server of its own: the test stops it.
	srv := testenv.StartPostgres(t)
	m := testenv.StartMoto(t)
	w := &world{testenv.NewAgentWithOptions(t, m, testenv.AgentOptions{
		Tick: "1s", LogLevel: "info", PostgresURL: srv.NewDatabase(t),
	})}
	extID, manage := w.tenant(t, "acme")
	bucket, role := w.CustomerSetup(t, "acme", extID, "audit")
	dest := w.newDestination(t, manage, bucket, role)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute) // hang guard of the whole test
	defer cancel()
	op := &outagePoster{endpoint: w.Endpoint, token: w.IngestToken(t), acked: map[string]bool{},
		// Generous: a hang guard, far above the store's call timeout, so
		// that a request timing out means the agent hung on the store.
		client: &http.Client{Timeout: time.Minute}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for poster := range 3 { // several, so that a failing commit holds several requests
		wg.Go(func() { errs <- op.run(ctx, poster, stop) })
	}
	stopPosters := func() {
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}

	// Delivery runs before the outage.
	testenv.WaitFor(t, "a first delivery", func() (bool, string) {
		got, err := manage.GetDestination(ctx, dest.ID)
		return err == nil && got.Status.EventsDelivered > 0, fmt.Sprintf("%+v, %v", got.Status, err)
	})

	stopped := time.Now()
	srv.Stop(t)
	testenv.WaitFor(t, "/healthz to say the store is down", func() (bool, string) {
		code, body := healthz(w.Endpoint)
		return code == http.StatusServiceUnavailable && strings.Contains(body, `"status": "degraded"`) &&
			strings.Contains(body, `"store": "unavailable: `), fmt.Sprintf("%d %s", code, body)
	})
	testenv.WaitFor(t, "a 503 to an ingest request", func() (bool, string) {
		return op.unavailable.Load() > 0, fmt.Sprintf("%d 503s", op.unavailable.Load())
	})
	ackedBefore := op.ackedCount()
	time.Sleep(time.Until(stopped.Add(outageTime))) // the outage itself, not synchronisation
	// Nothing was acknowledged while the database was down (at most the
	// requests whose commit was already in flight when it stopped).
	ackedDuring := op.ackedCount() - ackedBefore
	srv.Start(t)
	outage := time.Since(stopped)

	testenv.WaitFor(t, "/healthz to say the store is back", func() (bool, string) {
		code, body := healthz(w.Endpoint)
		return code == http.StatusOK && strings.Contains(body, `"store": "ok"`), fmt.Sprintf("%d %s", code, body)
	})
	recovered := time.Since(stopped) - outage
	// Ingest works again: more batches are acknowledged after the restart.
	after := op.ackedCount()
	testenv.WaitFor(t, "batches acknowledged after the outage", func() (bool, string) {
		return op.ackedCount() >= after+5, fmt.Sprintf("%d acknowledged", op.ackedCount())
	})
	stopPosters()

	if n := op.serverErrors.Load(); n > 0 {
		t.Errorf("%d ingest requests got a 5xx other than 503 during the outage, e.g. %s", n, op.firstServerError())
	}
	if n := op.noRetryAfter.Load(); n > 0 {
		t.Errorf("%d of %d 503s had no Retry-After", n, op.unavailable.Load())
	}
	if ackedDuring > 3 {
		t.Errorf("%d requests were acknowledged while PostgreSQL was down", ackedDuring)
	}

	sent := op.ackedIDs()
	w.waitDelivered(t, bucket, sent)
	var status api.DestinationStatus
	testenv.WaitFor(t, "the destination to be healthy and caught up", func() (bool, string) {
		got, err := manage.GetDestination(ctx, dest.ID)
		status = got.Status
		return err == nil && got.Status.LagEvents == 0 && got.Status.State == api.StateHealthy &&
			got.Status.EventsDelivered == int64(len(sent)), fmt.Sprintf("%+v, %v", got.Status, err)
	})
	t.Logf("PostgreSQL down for %s: %d ingest requests answered 503 (slowest in %s), /healthz ok again %s after the restart; %d events acknowledged in all, delivered once each in %d objects",
		outage.Round(time.Millisecond), op.unavailable.Load(), time.Duration(op.slowest503.Load()).Round(time.Millisecond),
		recovered.Round(time.Millisecond), len(sent), status.ObjectsDelivered)
}

// healthz returns the agent's /healthz status and body.
func healthz(endpoint string) (int, string) {
	resp, err := http.Get(endpoint + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// outagePoster posts batches of events and retries each until it is
// acknowledged, counting the agent's answers. Unlike the fault test's
// poster it never expects the agent to be down: a failed connection or a
// timeout is an error.
type outagePoster struct {
	endpoint, token string
	client          *http.Client

	unavailable  atomic.Int64 // 503s
	noRetryAfter atomic.Int64 // 503s without Retry-After
	serverErrors atomic.Int64 // other 5xx
	slowest503   atomic.Int64 // nanoseconds

	mu       sync.Mutex
	acked    map[string]bool
	batches  int
	firstErr string
}

const outageBatch = 50

// run posts batches until stop is closed, then returns once its batch in
// flight is acknowledged.
func (p *outagePoster) run(ctx context.Context, poster int, stop <-chan struct{}) error {
	for b := 0; ; b++ {
		select {
		case <-stop:
			return nil
		default:
		}
		var body bytes.Buffer
		ids := make([]string, 0, outageBatch)
		for i := range outageBatch {
			id := fmt.Sprintf("p%d-%05d-%02d", poster, b, i)
			ids = append(ids, id)
			body.WriteString(auditEvent(id, time.Now(), eventNames[i%len(eventNames)]) + "\n")
		}
		if err := p.postUntilAcked(ctx, body.Bytes()); err != nil {
			return fmt.Errorf("poster %d, batch %d: %w", poster, b, err)
		}
		p.mu.Lock()
		for _, id := range ids {
			p.acked[id] = true
		}
		p.batches++
		p.mu.Unlock()
		time.Sleep(20 * time.Millisecond) // pacing: a steady stream, not a flood
	}
}

func (p *outagePoster) postUntilAcked(ctx context.Context, body []byte) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint+"/v1/tenants/acme/events", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+p.token)
		req.Header.Set("Content-Type", "application/x-ndjson")
		start := time.Now()
		resp, err := p.client.Do(req)
		if err != nil {
			return fmt.Errorf("the agent did not answer: %w", err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			var res api.IngestResponse
			if err := json.Unmarshal(msg, &res); err != nil {
				return fmt.Errorf("answer %s: %w", msg, err)
			}
			if res.Stored+res.Duplicates != outageBatch {
				return fmt.Errorf("answer %s for %d events", msg, outageBatch)
			}
			return nil
		case resp.StatusCode == http.StatusServiceUnavailable:
			p.unavailable.Add(1)
			if resp.Header.Get("Retry-After") == "" {
				p.noRetryAfter.Add(1)
			}
			d := int64(time.Since(start))
			for cur := p.slowest503.Load(); d > cur && !p.slowest503.CompareAndSwap(cur, d); cur = p.slowest503.Load() {
			}
		case resp.StatusCode >= 500:
			p.serverErrors.Add(1)
			p.mu.Lock()
			if p.firstErr == "" {
				p.firstErr = fmt.Sprintf("%d %s", resp.StatusCode, msg)
			}
			p.mu.Unlock()
		default:
			return fmt.Errorf("answer %d %s", resp.StatusCode, msg)
		}
		// A client honouring Retry-After would wait seconds; a short pause
		// keeps the test's requests hitting the outage.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *outagePoster) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.batches
}

func (p *outagePoster) ackedIDs() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]bool, len(p.acked))
	for id := range p.acked {
		out[id] = true
	}
	return out
}

func (p *outagePoster) firstServerError() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstErr
}

// The operator commands work against PostgreSQL: on a database never
// migrated they fail naming the fix and create nothing; migrate creates the
// store; then tenant and token create (from the config's store block or from
// AUDITEXPORT_DATABASE_URL) make tokens that a serve on the same database
// accepts. The URL's password appears in no output or log.
func TestAdminCommandsOnPostgres(t *testing.T) {
	srv := pg.Get(t)
	dbURL := strings.Replace(srv.NewDatabase(t), "postgres@", "postgres:hunter2@", 1) // trust auth ignores it
	m := testenv.StartMoto(t)
	a := testenv.NewAgentWithOptions(t, m, testenv.AgentOptions{Tick: "1h", PostgresURL: dbURL, Stopped: true})
	dir := t.TempDir()
	// A config without a store block: the URL comes from the environment.
	plain := filepath.Join(dir, "plain.hcl")
	if err := os.WriteFile(plain, []byte(fmt.Sprintf("data_dir = %q\n", filepath.Join(dir, "data"))), 0o600); err != nil {
		t.Fatal(err)
	}
	var outputs []string
	run := func(env []string, args ...string) (string, string, int) {
		stdout, stderr, code := runAgent(t, dir, env, args...)
		outputs = append(outputs, stdout, stderr)
		return stdout, stderr, code
	}

	for _, args := range [][]string{
		{"tenant", "create", "acme", "-config", a.Config},
		{"tenant", "list", "-config", a.Config},
		{"token", "create", "-scope", "ingest", "-config", a.Config},
	} {
		stdout, stderr, code := run(nil, args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "holds no agent store: run `auditexport-agent migrate` or start `auditexport-agent serve` first") ||
			!strings.Contains(stderr, "store.postgres.url") {
			t.Fatalf("%s on a database never migrated: exit %d, stdout %q, stderr %q; want 1 naming the fix", strings.Join(args, " "), code, stdout, stderr)
		}
	}
	if tables := pgTables(t, dbURL); tables != 0 {
		t.Fatalf("the operator commands created %d tables", tables)
	}

	stdout, stderr, code := run(nil, "migrate", "-config", a.Config)
	if code != 0 || !strings.Contains(stdout, "migrated PostgreSQL postgres://postgres:xxxxx@") {
		t.Fatalf("migrate: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, _, code = run(nil, "migrate", "-config", a.Config) // a second run has nothing to do
	if code != 0 {
		t.Fatalf("migrate again: exit %d, %s", code, stdout)
	}

	stdout, stderr, code = run(nil, "tenant", "create", "acme", "-config", a.Config)
	if code != 0 || !strings.Contains(stdout, "external id: ") {
		t.Fatalf("tenant create: exit %d, %q %q", code, stdout, stderr)
	}
	manageTok, stderr, code := run(nil, "token", "create", "-tenant", "acme", "-config", a.Config)
	if code != 0 {
		t.Fatalf("token create: exit %d, %s", code, stderr)
	}
	envDB := []string{config.EnvDatabaseURL + "=" + dbURL}
	ingestTok, stderr, code := run(envDB, "token", "create", "-scope", "ingest", "-config", plain)
	if code != 0 {
		t.Fatalf("token create with %s: exit %d, %s", config.EnvDatabaseURL, code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "auditexport.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("token create with %s made a SQLite store (%v)", config.EnvDatabaseURL, err)
	}
	list, _, _ := run(envDB, "tenant", "list", "-config", plain)
	if !strings.HasPrefix(list, "acme\t") {
		t.Errorf("tenant list with %s = %q, want acme", config.EnvDatabaseURL, list)
	}

	p := a.Start(t)
	id, err := a.Client(t, strings.TrimSpace(manageTok)).Identity(ctxT(t))
	if err != nil || id.Tenant != "acme" {
		t.Fatalf("identity with the manage token = %+v, %v", id, err)
	}
	res, err := a.Client(t, strings.TrimSpace(ingestTok)).PostEvents(ctxT(t), "acme", []byte(auditEvent("m1", time.Now(), "user.login")))
	if err != nil || res.Stored != 1 {
		t.Fatalf("posting with the ingest token = %+v, %v", res, err)
	}
	if !strings.Contains(p.Log(), "PostgreSQL postgres://postgres:xxxxx@") {
		t.Errorf("the agent's log does not name its store:\n%s", p.Log())
	}
	for _, out := range append(outputs, p.Log()) {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("the database password appears in the output:\n%s", out)
		}
	}
}

// pgTables counts the tables in the database's public schema.
func pgTables(t *testing.T, dbURL string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

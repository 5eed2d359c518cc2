package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/store/storetest"
	"github.com/auditexport/auditexport/internal/testenv"
)

// hangGuard bounds a wait that should end on its own; it is not a budget
// for the work, only a way to fail instead of hanging.
const hangGuard = 2 * time.Minute

func openPostgres(t testing.TB, url string, opts ...store.PostgresOption) store.Store {
	t.Helper()
	s, err := store.OpenPostgres(context.Background(), url, opts...)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Agents starting while another migrates wait on the advisory lock and then
// find the schema done: every one opens, and each version is applied once.
func TestPostgresMigrationWaitsForLock(t *testing.T) {
	url := pg.Get(t).NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()

	// Hold the lock as an agent in the middle of a migration does.
	holder := connect(t, url)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, store.MigrationLockKey); err != nil {
		t.Fatal(err)
	}

	const agents = 3
	opened := make(chan error, agents)
	for i := 0; i < agents; i++ {
		go func() {
			s, err := store.OpenPostgres(ctx, url, store.WithMaxConns(1))
			if err == nil {
				err = s.Close()
			}
			opened <- err
		}()
	}

	// Wait until all of them queue on the lock.
	watcher := connect(t, url)
	for {
		var waiting int
		err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting == agents {
			break
		}
		select {
		case err := <-opened:
			t.Fatalf("an agent opened (err %v) while the migration lock was held", err)
		case <-ctx.Done():
			t.Fatalf("%d of %d agents wait on the migration lock", waiting, agents)
		case <-time.After(10 * time.Millisecond): // poll interval
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < agents; i++ {
		if err := <-opened; err != nil {
			t.Errorf("agent %d: %v", i, err)
		}
	}

	var rows, versions int
	err = watcher.QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&rows, &versions)
	if err != nil {
		t.Fatal(err)
	}
	if rows == 0 || rows != versions {
		t.Errorf("schema_migrations has %d rows for %d versions, want each version once", rows, versions)
	}
}

func TestPostgresRefusesNewerSchema(t *testing.T) {
	url := pg.Get(t).NewDatabase(t)
	if err := store.Migrate(context.Background(), store.Config{PostgresURL: url}); err != nil {
		t.Fatal(err)
	}
	// Migrating again is a no-op.
	if err := store.MigratePostgres(context.Background(), url); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	conn := connect(t, url)
	if _, err := conn.Exec(context.Background(), `INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	_, err := store.OpenPostgres(context.Background(), url)
	if err == nil || !strings.Contains(err.Error(), "version 999 is newer") {
		t.Fatalf("opening a newer schema: err = %v, want one saying it is newer", err)
	}
}

// Two agents (two stores on one database) append for the same tenants while
// a third follows the head: each tenant's log stays dense and every event is
// stored once.
func TestPostgresTwoAgentsShareSequences(t *testing.T) {
	url := pg.Get(t).NewDatabase(t)
	agents := []store.Store{openPostgres(t, url, store.WithMaxConns(4)), openPostgres(t, url, store.WithMaxConns(4))}
	reader := openPostgres(t, url, store.WithMaxConns(2))
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()

	var tenants []int64
	for _, name := range []string{"a", "b"} {
		tn, err := agents[0].CreateTenant(ctx, name, "ext")
		if err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, tn.ID)
	}

	const workers, calls, perBatch = 3, 10, 30
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers+1)
	for ai, s := range agents {
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c := 0; c < calls; c++ {
					// Each call spans both tenants, in an order that
					// differs between agents, and resends an event
					// every worker sends.
					var batches []store.AppendBatch
					for _, tid := range tenants {
						var evs []store.Event
						for i := 0; i < perBatch; i++ {
							id := fmt.Sprintf("%d-%d-%d-%d", ai, w, c, i)
							evs = append(evs, store.Event{MessageID: id, EventName: "e", TimeMs: 1, Body: []byte(id)})
						}
						evs = append(evs, store.Event{MessageID: fmt.Sprint("shared-", c), EventName: "e", TimeMs: 1, Body: []byte("s")})
						batches = append(batches, store.AppendBatch{TenantID: tid, Events: evs})
					}
					if ai == 1 {
						batches[0], batches[1] = batches[1], batches[0]
					}
					if _, err := s.Append(ctx, batches); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	for finished := false; !finished; {
		select {
		case <-done:
			finished = true // one more read after the last commit
		default:
		}
		for _, tid := range tenants {
			if _, err := storetest.ReadDense(ctx, reader, tid); err != nil {
				t.Fatalf("tenant %d: %v", tid, err)
			}
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := int64(len(agents)*workers*calls*perBatch + calls)
	for _, tid := range tenants {
		if h, err := storetest.ReadDense(ctx, reader, tid); err != nil || h != want {
			t.Errorf("tenant %d: head %d, %v; want %d", tid, h, err, want)
		}
	}
}

// Calls fail with ErrUnavailable, within their bound, when the database
// cannot be reached or does not answer.
func TestPostgresUnavailable(t *testing.T) {
	ctx := context.Background()

	t.Run("nothing listening", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, err = store.OpenPostgres(ctx, "postgres://postgres@"+addr+"/x?sslmode=disable")
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("OpenPostgres: err = %v, want ErrUnavailable", err)
		}
	})

	t.Run("no answer to connect", func(t *testing.T) {
		// A listener that accepts and never speaks: connect_timeout
		// must end the wait.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		url := fmt.Sprintf("postgres://postgres@%s/x?sslmode=disable&connect_timeout=1", l.Addr())
		_, err = store.OpenPostgres(ctx, url)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("OpenPostgres: err = %v, want ErrUnavailable", err)
		}
	})

	t.Run("a call past its bound", func(t *testing.T) {
		url := pg.Get(t).NewDatabase(t)
		s := openPostgres(t, url, store.WithCallTimeout(300*time.Millisecond))
		tn, err := s.CreateTenant(ctx, "a", "ext")
		if err != nil {
			t.Fatal(err)
		}
		// Another session holds the tenant's head row, so Append waits
		// until its own deadline.
		conn := connect(t, url)
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // the lock only has to go
		if _, err := tx.Exec(ctx, `SELECT 1 FROM tenant_heads WHERE tenant_id = $1 FOR UPDATE`, tn.ID); err != nil {
			t.Fatal(err)
		}
		_, err = s.Append(ctx, []store.AppendBatch{{TenantID: tn.ID, Events: []store.Event{{MessageID: "1", EventName: "e", Body: []byte("{}")}}}})
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Append behind a held lock: err = %v, want ErrUnavailable", err)
		}
		// A caller that gives up gets its own context's error instead.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Head(cctx, tn.ID); errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.Canceled) {
			t.Errorf("Head with a cancelled context: err = %v, want context.Canceled only", err)
		}
	})

	t.Run("server stopped and restarted", func(t *testing.T) {
		server := testenv.StartPostgres(t)
		url := server.NewDatabase(t)
		s := openPostgres(t, url)
		tn, err := s.CreateTenant(ctx, "a", "ext")
		if err != nil {
			t.Fatal(err)
		}
		server.Stop(t)
		calls := []struct {
			name string
			call func() error
		}{
			{"Head", func() error { _, err := s.Head(ctx, tn.ID); return err }},
			{"Append", func() error {
				_, err := s.Append(ctx, []store.AppendBatch{{TenantID: tn.ID, Events: []store.Event{{MessageID: "1", EventName: "e", Body: []byte("{}")}}}})
				return err
			}},
			{"ListDestinations", func() error { _, err := s.ListDestinations(ctx, 0); return err }},
		}
		for _, c := range calls {
			if err := c.call(); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s with the server stopped: err = %v, want ErrUnavailable", c.name, err)
			}
		}
		server.Start(t)
		// The pool replaces its broken connections: the store works
		// again without being reopened.
		deadline := time.Now().Add(hangGuard)
		for {
			_, err := s.Head(ctx, tn.ID)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Head after the restart still fails: %v", err)
			}
			time.Sleep(50 * time.Millisecond) // poll interval
		}
	})
}

func TestOpenConfig(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		cfg  store.Config
		want string
	}{
		{"nothing", store.Config{}, "no database configured"},
		{"both", store.Config{SQLitePath: "x.db", PostgresURL: "postgres://localhost/x"}, "not both"},
		{"bad URL keeps its password", store.Config{PostgresURL: "postgres://u:sekrit@host:notaport/x"}, "not a valid PostgreSQL URL"},
	}
	for _, tt := range tests {
		_, err := store.Open(ctx, tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "sekrit") {
			t.Errorf("%s: the error shows the password: %v", tt.name, err)
		}
	}
}

// BenchmarkPostgresAppend measures group commits of 1,000 events of 400
// bytes from 8 concurrent committers, either all for one tenant (the head
// row lock serialises them) or one tenant each. One iteration is one commit
// of each committer.
func BenchmarkPostgresAppend(b *testing.B) {
	b.Run("one-tenant", func(b *testing.B) { benchmarkPostgresAppend(b, false) })
	b.Run("tenant-each", func(b *testing.B) { benchmarkPostgresAppend(b, true) })
}

func benchmarkPostgresAppend(b *testing.B, tenantEach bool) {
	const committers, perCall = 8, 1000
	s := openPostgres(b, pg.Get(b).NewDatabase(b))
	ctx := context.Background()
	tenants := make([]int64, committers)
	for i := range tenants {
		if i == 0 || tenantEach {
			tn, err := s.CreateTenant(ctx, fmt.Sprint("bench-", i), "ext")
			if err != nil {
				b.Fatal(err)
			}
			tenants[i] = tn.ID
		} else {
			tenants[i] = tenants[0]
		}
	}
	names := []string{"user.login", "user.logout", "document.update", "role.grant"}
	r := rand.New(rand.NewPCG(1, 2))
	// Build the input outside the timer: only the store is measured.
	calls := make([][]store.AppendBatch, committers)
	for c := range calls {
		for n := 0; n < b.N; n++ {
			events := make([]store.Event, perCall)
			for i := range events {
				seq := (n*committers+c)*perCall + i
				id := fmt.Sprintf("%012x-7%03x-8%03x-%012x", seq, r.Uint32()&0xfff, r.Uint32()&0xfff, r.Uint64()&0xffffffffffff)
				name := names[i%len(names)]
				ts := int64(1_740_000_000_000 + seq)
				body := fmt.Sprintf(`{"messageId":%q,"eventName":%q,"timestamp":%d,"actor":{"id":"u-%d","type":"user"},"ip":"203.0.113.7","data":"`,
					id, name, ts, i%97)
				body += strings.Repeat("x", 400-len(body)-2) + `"}`
				events[i] = store.Event{MessageID: id, EventName: name, TimeMs: ts, Body: []byte(body)}
			}
			calls[c] = append(calls[c], store.AppendBatch{TenantID: tenants[c], Events: events})
		}
	}

	b.SetBytes(committers * perCall * 400)
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, committers)
	for c := 0; c < committers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, bt := range calls[c] {
				res, err := s.Append(ctx, []store.AppendBatch{bt})
				if err != nil {
					errs <- err
					return
				}
				if res[0].Stored != perCall {
					errs <- fmt.Errorf("stored %d, want %d", res[0].Stored, perCall)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*committers*perCall)/b.Elapsed().Seconds(), "events/s")
}

// The URL's sslmode and sslrootcert reach the connection as pgx documents
// them: verify-full against the server's CA connects over TLS, against
// another CA it is refused.
func TestPostgresTLS(t *testing.T) {
	server := pg.Get(t)
	ca := server.EnableTLS(t)
	plain := server.NewSchema(t)
	tlsURL := strings.Replace(plain, "sslmode=disable", "sslmode=verify-full&sslrootcert="+ca, 1)

	s := openPostgres(t, tlsURL, store.WithMaxConns(2))
	if _, err := s.CreateTenant(context.Background(), "a", "ext"); err != nil {
		t.Fatal(err)
	}
	var sessions, encrypted int
	err := connect(t, plain).QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE s.ssl)
		FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid
		WHERE a.application_name = 'auditexport-agent'`).Scan(&sessions, &encrypted)
	if err != nil {
		t.Fatal(err)
	}
	if sessions == 0 || encrypted != sessions {
		t.Errorf("%d of the store's %d connections use TLS, want all", encrypted, sessions)
	}

	otherCA, _ := testenv.SelfSignedCert(t, t.TempDir())
	wrong := strings.Replace(plain, "sslmode=disable", "sslmode=verify-full&sslrootcert="+otherCA, 1)
	if _, err := store.OpenPostgres(context.Background(), wrong); err == nil {
		t.Error("OpenPostgres with a CA that did not sign the server's certificate succeeded")
	}
}

// A database written by the schema before commit marks keeps answering the
// ingest-time lookups after the upgrade: the migration derives the marks
// from the stored events.
func TestPostgresCommitMarksUpgrade(t *testing.T) {
	ctx := context.Background()
	url := pg.Get(t).NewDatabase(t)
	if err := store.MigratePostgresTo(ctx, url, 2); err != nil {
		t.Fatal(err)
	}
	c := connect(t, url)
	// Tenant 1: seq 1-3 stored at 1000 ms, 4-5 at 2000 ms, 6 at 3000 ms.
	_, err := c.Exec(ctx, `INSERT INTO tenants (id, name, external_id, created_at) VALUES (1, 'a', 'x', 0);
		INSERT INTO tenant_heads (tenant_id, head, received_ms) VALUES (1, 6, 3000);
		INSERT INTO events (tenant_id, seq, message_id, event_name, time_ms, received_ms, body)
		SELECT 1, s, 'm' || s, 'e', s, CASE WHEN s <= 3 THEN 1000 WHEN s <= 5 THEN 2000 ELSE 3000 END, '{}'
		FROM generate_series(1, 6) s`)
	if err != nil {
		t.Fatal(err)
	}
	s := openPostgres(t, url)
	ms := func(n int64) time.Time { return time.UnixMilli(n) }
	for _, tt := range []struct {
		after int64
		at    int64
		want  int64
	}{
		{0, 500, 0}, {0, 1000, 0}, {0, 1500, 3}, {0, 2000, 3}, {0, 2500, 5}, {0, 3500, 6}, {4, 1500, 4}, {4, 2500, 5},
	} {
		got, err := s.LastSeqBefore(ctx, 1, tt.after, ms(tt.at))
		if err != nil || got != tt.want {
			t.Errorf("LastSeqBefore(after %d, %d ms) = %d, %v; want %d", tt.after, tt.at, got, err, tt.want)
		}
	}
	first, last, err := s.ExpiredRange(ctx, 1, ms(2500))
	if err != nil || first != 1 || last != 5 {
		t.Errorf("ExpiredRange(2500 ms) = %d, %d, %v; want 1, 5", first, last, err)
	}
	if n, err := s.DeleteEvents(ctx, 1, 5, ms(2500), 4); err != nil || n != 4 {
		t.Fatalf("DeleteEvents = %d, %v; want 4", n, err)
	}
	// The mark of seq 1-3 went with its events; seq 5's mark stays.
	first, last, err = s.ExpiredRange(ctx, 1, ms(2500))
	if err != nil || first != 5 || last != 5 {
		t.Errorf("after deleting 1-4, ExpiredRange = %d, %d, %v; want 5, 5", first, last, err)
	}
	var marks int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM commit_marks WHERE tenant_id = 1`).Scan(&marks); err != nil || marks != 2 {
		t.Errorf("commit marks left = %d, %v; want 2", marks, err)
	}
	res, err := s.Append(ctx, []store.AppendBatch{{TenantID: 1, Events: []store.Event{{MessageID: "m6", TimeMs: 6, Body: []byte("{}")}, {MessageID: "new", TimeMs: 7, Body: []byte("{}")}}}})
	if err != nil || res[0].Stored != 1 || res[0].FirstSeq != 7 {
		t.Errorf("Append after the upgrade = %+v, %v; want the duplicate refused and seq 7", res, err)
	}
}

// A database written by the schema before chunks (version 5) keeps its
// events through the upgrade: GroupsBy and Scan read the same events with
// the same bytes, the duplicate keys still refuse a resend, the commit
// marks start at the oldest event even where the earlier retention cut
// through one, and retention goes on from there. Tenant a has more events
// than the conversion reads per page, over several hours and names.
func TestPostgresEventChunksUpgrade(t *testing.T) {
	ctx := context.Background()
	url := pg.Get(t).NewDatabase(t)
	if err := store.MigratePostgresTo(ctx, url, 5); err != nil {
		t.Fatal(err)
	}
	c := connect(t, url)
	const base = 1_740_000_000_000
	// Tenant a: seq 1-25000, a second apart, three names, committed 100
	// at a time; the old retention then deleted 1-50, cutting through the
	// mark of 1-100. Tenant b: seq 1-50 in one commit, two names.
	for _, q := range []string{
		`INSERT INTO tenants (id, name, external_id, created_at) VALUES (1, 'a', 'x', 0), (2, 'b', 'y', 0)`,
		`INSERT INTO tenant_heads (tenant_id, head, received_ms) VALUES (1, 25000, 1000 + 249 * 10), (2, 50, 5000)`,
		`INSERT INTO events (tenant_id, seq, message_id, event_name, time_ms, received_ms, body)
		SELECT 1, s, 'a-' || s, (ARRAY['user.login', 'user.logout', 'doc.update'])[s % 3 + 1], ` + fmt.Sprint(base) + ` + s * 1000,
			1000 + (s - 1) / 100 * 10, convert_to('{"n":' || s || ',"pad":"' || repeat('x', s % 17) || '"}', 'UTF8')
		FROM generate_series(1, 25000) s`,
		`INSERT INTO events (tenant_id, seq, message_id, event_name, time_ms, received_ms, body)
		SELECT 2, s, 'b-' || s, (ARRAY['x', 'y'])[s % 2 + 1], ` + fmt.Sprint(base) + ` - s, 5000, convert_to('{"b":' || s || '}', 'UTF8')
		FROM generate_series(1, 50) s`,
		`INSERT INTO commit_marks (tenant_id, first_seq, last_seq, received_ms)
		SELECT tenant_id, min(seq), max(seq), received_ms FROM events GROUP BY tenant_id, received_ms`,
		`DELETE FROM events WHERE tenant_id = 1 AND seq <= 50`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	want := map[int64][]store.StoredEvent{1: readEventsTable(t, c, 1), 2: readEventsTable(t, c, 2)}
	if len(want[1]) != 24950 || len(want[2]) != 50 {
		t.Fatalf("fixture has %d and %d events, want 24950 and 50", len(want[1]), len(want[2]))
	}

	s := openPostgres(t, url)
	var gone bool
	if err := c.QueryRow(ctx, `SELECT to_regclass('events') IS NULL`).Scan(&gone); err != nil || !gone {
		t.Errorf("the events table is still there after the upgrade (%v)", err)
	}
	for tenant, evs := range want {
		for _, span := range []time.Duration{time.Hour, 24 * time.Hour} {
			got := readGroups(t, s, tenant, evs[0].Seq, evs[len(evs)-1].Seq, span)
			if len(got) != len(evs) {
				t.Fatalf("tenant %d, %s groups: read %d events, want %d", tenant, span, len(got), len(evs))
			}
			for i := range evs {
				if g, w := got[i], evs[i]; g.Seq != w.Seq || g.EventName != w.EventName || g.TimeMs != w.TimeMs || string(g.Body) != string(w.Body) {
					t.Fatalf("tenant %d, %s groups: event %d = %+v, want %+v", tenant, span, i, g, w)
				}
			}
		}
	}

	ms := func(n int64) time.Time { return time.UnixMilli(n) }
	if got, err := s.OldestAfter(ctx, 1, 0); err != nil || !got.Equal(ms(1000)) {
		t.Errorf("OldestAfter(0) = %v, %v; want the received time of seq 51's commit", got, err)
	}
	if first, last, err := s.ExpiredRange(ctx, 1, ms(1015)); err != nil || first != 51 || last != 200 {
		t.Errorf("ExpiredRange(1015 ms) = %d, %d, %v; want 51, 200 (the mark cut through starts at 51)", first, last, err)
	}

	// A resend of a retained event is a duplicate; one of a deleted event
	// and a new one are stored.
	old := want[1][100]
	res, err := s.Append(ctx, []store.AppendBatch{{TenantID: 1, Events: []store.Event{
		{MessageID: fmt.Sprint("a-", old.Seq), EventName: old.EventName, TimeMs: old.TimeMs, Body: old.Body},
		{MessageID: "a-10", EventName: "user.login", TimeMs: base + 10*1000, Body: []byte("{}")},
		{MessageID: "new", EventName: "user.login", TimeMs: base + 30_000_000, Body: []byte("{}")},
	}}})
	if want := (store.AppendResult{Stored: 2, Duplicates: 1, FirstSeq: 25001, LastSeq: 25002}); err != nil || res[0] != want {
		t.Errorf("Append after the upgrade = %+v, %v; want %+v", res, err, want)
	}

	// Retention from the converted chunks: 9000 events from seq 51, which
	// cuts through a chunk of each name and through a commit; the keys of
	// the deleted events go too.
	const limit, kept = 9000, 51 + 9000
	if n, err := s.DeleteEvents(ctx, 1, 20000, ms(1_000_000), limit); err != nil || n != limit {
		t.Fatalf("DeleteEvents = %d, %v; want %d", n, err, limit)
	}
	if first, _, err := s.ExpiredRange(ctx, 1, ms(1_000_000)); err != nil || first != kept {
		t.Errorf("after retention, ExpiredRange first = %d, %v; want %d", first, err, kept)
	}
	if got, err := s.OldestAfter(ctx, 1, 0); err != nil || !got.Equal(ms(1000+(kept-1)/100*10)) {
		t.Errorf("after retention, OldestAfter(0) = %v, %v; want the received time of seq %d's commit", got, err, kept)
	}
	got := readGroups(t, s, 1, 1, 25002, time.Hour)
	if len(got) != 25002-kept+1 || got[0].Seq != kept {
		t.Fatalf("after retention the log holds %d events from seq %d, want %d from %d", len(got), got[0].Seq, 25002-kept+1, kept)
	}
	for i, ev := range got[:len(got)-2] {
		if w := want[1][kept-51+int64(i)]; ev.Seq != w.Seq || string(ev.Body) != string(w.Body) {
			t.Fatalf("after retention, event %d = %+v, want %+v", i, ev, w)
		}
	}
	evAt := func(seq int64) store.Event {
		e := want[1][seq-51]
		return store.Event{MessageID: fmt.Sprint("a-", seq), EventName: e.EventName, TimeMs: e.TimeMs, Body: e.Body}
	}
	res, err = s.Append(ctx, []store.AppendBatch{{TenantID: 1, Events: []store.Event{evAt(kept - 1), evAt(kept)}}})
	if want := (store.AppendResult{Stored: 1, Duplicates: 1, FirstSeq: 25003, LastSeq: 25003}); err != nil || res[0] != want {
		t.Errorf("resend of the last deleted and the first kept event = %+v, %v; want %+v", res, err, want)
	}
	// Tenant b is untouched.
	if got := readGroups(t, s, 2, 1, 50, 24*time.Hour); len(got) != 50 {
		t.Errorf("tenant b holds %d events after a's retention, want 50", len(got))
	}
}

// readEventsTable reads a tenant's rows of the events table (schema 5).
func readEventsTable(t *testing.T, c *pgx.Conn, tenant int64) []store.StoredEvent {
	t.Helper()
	rows, err := c.Query(context.Background(), `SELECT seq, event_name, time_ms, body FROM events WHERE tenant_id = $1 ORDER BY seq`, tenant)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.StoredEvent, error) {
		var ev store.StoredEvent
		err := row.Scan(&ev.Seq, &ev.EventName, &ev.TimeMs, &ev.Body)
		return ev, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// readGroups reads the tenant's events in from..to as delivery does, group
// by group, and returns them in sequence order. It checks that each group
// counts what Scan reads of it.
func readGroups(t *testing.T, s store.Store, tenant, from, to int64, span time.Duration) []store.StoredEvent {
	t.Helper()
	ctx := context.Background()
	groups, err := s.GroupsBy(ctx, tenant, from, to, nil, span)
	if err != nil {
		t.Fatal(err)
	}
	var evs []store.StoredEvent
	for _, g := range groups {
		n := 0
		err := s.Scan(ctx, tenant, g, func(ev store.StoredEvent) error {
			if ev.Seq < g.FirstSeq || ev.Seq > g.LastSeq || ev.EventName != g.EventName {
				return fmt.Errorf("group %+v: read seq %d of %q", g, ev.Seq, ev.EventName)
			}
			ev.Body = append([]byte(nil), ev.Body...)
			evs = append(evs, ev)
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if int64(n) != g.Count {
			t.Fatalf("group %+v counts %d events, Scan read %d", g, g.Count, n)
		}
	}
	slices.SortFunc(evs, func(a, b store.StoredEvent) int { return int(a.Seq - b.Seq) })
	return evs
}

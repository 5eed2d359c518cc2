package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTest(t testing.TB, path string) *SQLite {
	t.Helper()
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newTestStore(t testing.TB) *SQLite {
	t.Helper()
	return openTest(t, filepath.Join(t.TempDir(), "agent.db"))
}

func mustTenant(t testing.TB, s *SQLite, name string) Tenant {
	t.Helper()
	tn, err := s.CreateTenant(context.Background(), name, "ext-"+name)
	if err != nil {
		t.Fatalf("CreateTenant(%q): %v", name, err)
	}
	return tn
}

func mustAppend(t testing.TB, s *SQLite, batches ...AppendBatch) []AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), batches)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return res
}

// ev makes an event whose body names its message id, so bodies can be told
// apart when read back.
func ev(id, name string, timeMs int64) Event {
	return Event{
		MessageID: id,
		EventName: name,
		TimeMs:    timeMs,
		Body:      []byte(fmt.Sprintf(`{"messageId":%q,"eventName":%q,"timestamp":%d}`, id, name, timeMs)),
	}
}

type storedRow struct {
	Seq       int64
	MessageID string
	Body      string
}

// allEvents reads a tenant's log straight from its chunks, in sequence
// order.
func allEvents(t testing.TB, s *SQLite, tenantID int64) []storedRow {
	t.Helper()
	rows, err := s.reader.Query(
		`SELECT first_seq, data FROM event_chunks WHERE tenant_id = ?`, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []storedRow
	for rows.Next() {
		var first int64
		var data []byte
		if err := rows.Scan(&first, &data); err != nil {
			t.Fatal(err)
		}
		err := decodeChunk(data, first, func(e chunkEvent) error {
			out = append(out, storedRow{Seq: e.Seq, MessageID: string(e.MessageID), Body: string(e.Body)})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b storedRow) int { return compareInt64(a.Seq, b.Seq) })
	return out
}

func TestOpenPragmas(t *testing.T) {
	s := newTestStore(t)
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
	}
	for _, tt := range tests {
		var got string
		if err := s.writer.QueryRow("PRAGMA " + tt.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("writer PRAGMA %s = %q, want %q", tt.pragma, got, tt.want)
		}
	}

	// The reader pool must not be able to write.
	if _, err := s.reader.Exec(`INSERT INTO tenants (name, external_id, created_at) VALUES ('x', 'y', 1)`); err == nil {
		t.Error("insert through the reader pool succeeded, want an error")
	}
}

func TestOpenPathWithSpecialCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data dir #1?x")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.db")
	s := openTest(t, path)
	mustTenant(t, s, "acme")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not at %s: %v", path, err)
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "agent.db")

	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	mustTenant(t, s, "acme")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening an up-to-date database applies nothing and keeps data.
	for i := 0; i < 2; i++ {
		s, err = OpenSQLite(ctx, path)
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		var n, maxVersion int
		if err := s.reader.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &maxVersion); err != nil {
			t.Fatal(err)
		}
		if n != len(migrations) || maxVersion != len(migrations) {
			t.Errorf("schema_migrations has %d rows up to %d, want %d", n, maxVersion, len(migrations))
		}
		if _, err := s.TenantByName(ctx, "acme"); err != nil {
			t.Errorf("tenant lost after reopen: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// A database written by a newer agent is refused.
	s, err = OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	future := len(migrations) + 1
	if _, err := s.writer.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, future); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = OpenSQLite(ctx, path)
	if err == nil {
		t.Fatal("opening a newer database succeeded, want an error")
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("version %d is newer", future)) {
		t.Errorf("error %q does not say the schema is newer", err)
	}
}

func TestTenants(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	acme, err := s.CreateTenant(ctx, "acme", "ext-1")
	if err != nil {
		t.Fatal(err)
	}
	if acme.ID == 0 || acme.Name != "acme" || acme.ExternalID != "ext-1" || acme.CreatedAt.IsZero() {
		t.Errorf("CreateTenant = %+v", acme)
	}
	globex := mustTenant(t, s, "globex")

	if _, err := s.CreateTenant(ctx, "acme", "ext-2"); !errors.Is(err, ErrConflict) {
		t.Errorf("CreateTenant with a taken name: err = %v, want ErrConflict", err)
	}

	byName, err := s.TenantByName(ctx, "acme")
	if err != nil || !reflect.DeepEqual(byName, acme) {
		t.Errorf("TenantByName = %+v, %v; want %+v", byName, err, acme)
	}
	byID, err := s.TenantByID(ctx, globex.ID)
	if err != nil || !reflect.DeepEqual(byID, globex) {
		t.Errorf("TenantByID = %+v, %v; want %+v", byID, err, globex)
	}
	if _, err := s.TenantByName(ctx, "initech"); !errors.Is(err, ErrNotFound) {
		t.Errorf("TenantByName(unknown): err = %v, want ErrNotFound", err)
	}
	if _, err := s.TenantByID(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("TenantByID(unknown): err = %v, want ErrNotFound", err)
	}

	list, err := s.ListTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Tenant{acme, globex}; !reflect.DeepEqual(list, want) {
		t.Errorf("ListTenants = %+v, want %+v", list, want)
	}
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	acme := mustTenant(t, s, "acme")

	hash := func(secret string) []byte {
		h := sha256.Sum256([]byte(secret))
		return h[:]
	}
	tests := []struct {
		name    string
		token   Token
		wantErr error
	}{
		{"tenant manage token", Token{Hash: hash("a"), Scope: "manage", TenantID: acme.ID}, nil},
		{"global ingest token", Token{Hash: hash("b"), Scope: "ingest"}, nil},
		{"taken hash", Token{Hash: hash("a"), Scope: "ingest"}, ErrConflict},
		{"unknown tenant", Token{Hash: hash("c"), Scope: "manage", TenantID: 999}, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created, err := s.CreateToken(ctx, tt.token)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("CreateToken: err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if created.ID == 0 || created.CreatedAt.IsZero() {
				t.Errorf("CreateToken = %+v: no id or time", created)
			}
			got, err := s.TokenByHash(ctx, tt.token.Hash)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, created) {
				t.Errorf("TokenByHash = %+v, want %+v", got, created)
			}
		})
	}

	if _, err := s.TokenByHash(ctx, hash("nope")); !errors.Is(err, ErrNotFound) {
		t.Errorf("TokenByHash(unknown): err = %v, want ErrNotFound", err)
	}
}

func TestAppendSequences(t *testing.T) {
	s := newTestStore(t)
	a := mustTenant(t, s, "a")
	b := mustTenant(t, s, "b")

	// Each step is one Append call; the log and heads accumulate.
	steps := []struct {
		name    string
		batches []AppendBatch
		want    []AppendResult
	}{
		{
			name: "two tenants, two batches of one tenant",
			batches: []AppendBatch{
				{TenantID: a.ID, Events: []Event{ev("a1", "login", 1), ev("a2", "login", 2)}},
				{TenantID: b.ID, Events: []Event{ev("b1", "login", 1)}},
				{TenantID: a.ID, Events: []Event{ev("a3", "logout", 3)}},
			},
			want: []AppendResult{
				{Stored: 2, FirstSeq: 1, LastSeq: 2},
				{Stored: 1, FirstSeq: 1, LastSeq: 1},
				{Stored: 1, FirstSeq: 3, LastSeq: 3},
			},
		},
		{
			name: "duplicates inside the call use no sequence",
			batches: []AppendBatch{
				{TenantID: a.ID, Events: []Event{ev("a4", "login", 4), ev("a4", "login", 4), ev("a5", "login", 5)}},
				{TenantID: a.ID, Events: []Event{ev("a5", "login", 5), ev("a6", "login", 6)}},
			},
			want: []AppendResult{
				{Stored: 2, Duplicates: 1, FirstSeq: 4, LastSeq: 5},
				{Stored: 1, Duplicates: 1, FirstSeq: 6, LastSeq: 6},
			},
		},
		{
			name: "duplicates of earlier calls, same id in another tenant is new",
			batches: []AppendBatch{
				{TenantID: a.ID, Events: []Event{ev("a1", "login", 1), ev("a7", "login", 7), ev("a2", "login", 2)}},
				{TenantID: b.ID, Events: []Event{ev("a1", "login", 1)}},
			},
			want: []AppendResult{
				{Stored: 1, Duplicates: 2, FirstSeq: 7, LastSeq: 7},
				{Stored: 1, FirstSeq: 2, LastSeq: 2},
			},
		},
		{
			name: "only duplicates and an empty batch",
			batches: []AppendBatch{
				{TenantID: b.ID, Events: []Event{ev("b1", "login", 1)}},
				{TenantID: a.ID},
			},
			want: []AppendResult{
				{Duplicates: 1},
				{},
			},
		},
	}
	for _, st := range steps {
		got := mustAppend(t, s, st.batches...)
		if !reflect.DeepEqual(got, st.want) {
			t.Errorf("%s: Append = %+v, want %+v", st.name, got, st.want)
		}
	}

	wantLogs := map[int64][]string{
		a.ID: {"a1", "a2", "a3", "a4", "a5", "a6", "a7"},
		b.ID: {"b1", "a1"},
	}
	for tenantID, ids := range wantLogs {
		rows := allEvents(t, s, tenantID)
		if len(rows) != len(ids) {
			t.Fatalf("tenant %d has %d events, want %d", tenantID, len(rows), len(ids))
		}
		for i, r := range rows {
			if r.Seq != int64(i+1) || r.MessageID != ids[i] {
				t.Errorf("tenant %d event %d = seq %d id %s, want seq %d id %s",
					tenantID, i, r.Seq, r.MessageID, i+1, ids[i])
			}
		}
		head, err := s.Head(context.Background(), tenantID)
		if err != nil || head != int64(len(ids)) {
			t.Errorf("Head(%d) = %d, %v; want %d", tenantID, head, err, len(ids))
		}
	}
}

func TestAppendEmpty(t *testing.T) {
	s := newTestStore(t)
	got, err := s.Append(context.Background(), nil)
	if err != nil || len(got) != 0 {
		t.Errorf("Append(nil) = %v, %v", got, err)
	}
}

func TestAppendUnknownTenantStoresNothing(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := mustTenant(t, s, "a")

	_, err := s.Append(ctx, []AppendBatch{
		{TenantID: a.ID, Events: []Event{ev("a1", "login", 1)}},
		{TenantID: 999, Events: []Event{ev("x1", "login", 1)}},
	})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Append with an unknown tenant: err = %v, want ErrNotFound", err)
	}
	if rows := allEvents(t, s, a.ID); len(rows) != 0 {
		t.Errorf("the failed call stored %d events, want 0", len(rows))
	}
	if head, _ := s.Head(ctx, a.ID); head != 0 {
		t.Errorf("head = %d after a failed call, want 0", head)
	}
	if _, err := s.Head(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Head(unknown): err = %v, want ErrNotFound", err)
	}
}

func TestAppendBodiesByteForByte(t *testing.T) {
	s := newTestStore(t)
	a := mustTenant(t, s, "a")

	bodies := [][]byte{
		[]byte(`{"b":1,  "a":2.50, "n":12345678901234567890}`), // odd spacing and numbers
		[]byte("{\"x\":\"caf\u00e9 \\u00e9\"}\n"),
		{0x00, 0xff, 0x7b, 0x0a}, // not even UTF-8
		{},
		nil,
	}
	var events []Event
	for i, b := range bodies {
		events = append(events, Event{MessageID: fmt.Sprint(i), EventName: "e", TimeMs: 1, Body: b})
	}
	mustAppend(t, s, AppendBatch{TenantID: a.ID, Events: events})

	rows := allEvents(t, s, a.ID)
	if len(rows) != len(bodies) {
		t.Fatalf("stored %d events, want %d", len(rows), len(bodies))
	}
	for i, r := range rows {
		if !bytes.Equal([]byte(r.Body), bodies[i]) {
			t.Errorf("body %d = %q, want %q", i, r.Body, bodies[i])
		}
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "agent.db")

	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	a := mustTenant(t, s, "a")
	want := []Event{ev("m1", "login", 10), ev("m2", "login", 20), ev("m3", "logout", 30)}
	mustAppend(t, s, AppendBatch{TenantID: a.ID, Events: want})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path)
	head, err := s.Head(ctx, a.ID)
	if err != nil || head != 3 {
		t.Fatalf("Head after reopen = %d, %v; want 3", head, err)
	}
	rows := allEvents(t, s, a.ID)
	for i, r := range rows {
		if r.MessageID != want[i].MessageID || r.Body != string(want[i].Body) {
			t.Errorf("event %d after reopen = %+v, want %s %s", i, r, want[i].MessageID, want[i].Body)
		}
	}
	// Sequences continue after a reopen, and duplicates are still known.
	res := mustAppend(t, s, AppendBatch{TenantID: a.ID, Events: []Event{ev("m1", "login", 10), ev("m4", "login", 40)}})
	if want := (AppendResult{Stored: 1, Duplicates: 1, FirstSeq: 4, LastSeq: 4}); res[0] != want {
		t.Errorf("Append after reopen = %+v, want %+v", res[0], want)
	}
}

func TestOldestAfter(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := mustTenant(t, s, "a")

	got, err := s.OldestAfter(ctx, a.ID, 0)
	if err != nil || !got.IsZero() {
		t.Errorf("OldestAfter on an empty log = %v, %v; want zero", got, err)
	}

	before := time.Now().Add(-time.Millisecond)
	mustAppend(t, s, AppendBatch{TenantID: a.ID, Events: []Event{ev("1", "e", 1), ev("2", "e", 2)}})
	after := time.Now().Add(time.Millisecond)

	got, err = s.OldestAfter(ctx, a.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The ingest time, not the event's own timestamp (which is 1970).
	if got.Before(before) || got.After(after) || got.Location() != time.UTC {
		t.Errorf("OldestAfter = %v, want a UTC time between %v and %v", got, before, after)
	}
	got, err = s.OldestAfter(ctx, a.ID, 2)
	if err != nil || !got.IsZero() {
		t.Errorf("OldestAfter(head) = %v, %v; want zero", got, err)
	}
}

func TestGroupsAndScan(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := mustTenant(t, s, "a")
	b := mustTenant(t, s, "b")

	day := func(d int) int64 { return int64(d) * msPerDay }
	// seq: 1..9 for tenant a, interleaving names and days.
	mustAppend(t, s,
		AppendBatch{TenantID: a.ID, Events: []Event{
			ev("1", "login", day(100)+5),   // 1
			ev("2", "logout", day(100)+6),  // 2
			ev("3", "login", day(101)-1),   // 3, last ms of day 100
			ev("4", "login", day(101)),     // 4, first ms of day 101
			ev("5", "logout", day(100)+7),  // 5, late event for day 100
			ev("6", "login", day(100)+8),   // 6, late event for day 100
			ev("7", "delete", day(101)+9),  // 7
			ev("8", "login", -1),           // 8, 1969-12-31
			ev("9", "logout", day(101)+10), // 9
		}},
		AppendBatch{TenantID: b.ID, Events: []Event{ev("b1", "login", day(100))}},
	)

	utcDay := func(d int) time.Time { return time.Unix(0, 0).UTC().AddDate(0, 0, d) }
	tests := []struct {
		name     string
		from, to int64
		names    []string
		want     []Group
		wantSeqs [][]int64
	}{
		{
			name: "everything",
			from: 1, to: 9,
			want: []Group{
				{EventName: "login", Day: utcDay(100), FirstSeq: 1, LastSeq: 6, Count: 3},
				{EventName: "logout", Day: utcDay(100), FirstSeq: 2, LastSeq: 5, Count: 2},
				{EventName: "login", Day: utcDay(101), FirstSeq: 4, LastSeq: 4, Count: 1},
				{EventName: "delete", Day: utcDay(101), FirstSeq: 7, LastSeq: 7, Count: 1},
				{EventName: "login", Day: utcDay(-1), FirstSeq: 8, LastSeq: 8, Count: 1},
				{EventName: "logout", Day: utcDay(101), FirstSeq: 9, LastSeq: 9, Count: 1},
			},
			wantSeqs: [][]int64{{1, 3, 6}, {2, 5}, {4}, {7}, {8}, {9}},
		},
		{
			name: "a sub-range",
			from: 3, to: 5,
			want: []Group{
				{EventName: "login", Day: utcDay(100), FirstSeq: 3, LastSeq: 3, Count: 1},
				{EventName: "login", Day: utcDay(101), FirstSeq: 4, LastSeq: 4, Count: 1},
				{EventName: "logout", Day: utcDay(100), FirstSeq: 5, LastSeq: 5, Count: 1},
			},
			wantSeqs: [][]int64{{3}, {4}, {5}},
		},
		{
			name: "filtered by name",
			from: 1, to: 9,
			names: []string{"logout", "delete"},
			want: []Group{
				{EventName: "logout", Day: utcDay(100), FirstSeq: 2, LastSeq: 5, Count: 2},
				{EventName: "delete", Day: utcDay(101), FirstSeq: 7, LastSeq: 7, Count: 1},
				{EventName: "logout", Day: utcDay(101), FirstSeq: 9, LastSeq: 9, Count: 1},
			},
			wantSeqs: [][]int64{{2, 5}, {7}, {9}},
		},
		{
			name: "empty range",
			from: 10, to: 20,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			groups, err := s.GroupsBy(ctx, a.ID, tt.from, tt.to, tt.names, 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(groups, tt.want) {
				t.Fatalf("Groups =\n%+v\nwant\n%+v", groups, tt.want)
			}
			for i, g := range groups {
				var seqs []int64
				err := s.Scan(ctx, a.ID, g, func(e StoredEvent) error {
					want := ev(fmt.Sprint(e.Seq), g.EventName, e.TimeMs)
					if e.EventName != g.EventName || !bytes.Equal(e.Body, want.Body) {
						t.Errorf("Scan gave %s %q, want %s %q", e.EventName, e.Body, g.EventName, want.Body)
					}
					seqs = append(seqs, e.Seq)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(seqs, tt.wantSeqs[i]) {
					t.Errorf("Scan(%+v) seqs = %v, want %v", g, seqs, tt.wantSeqs[i])
				}
			}
		})
	}

	// The other tenant's group is kept apart.
	groups, err := s.GroupsBy(ctx, b.ID, 1, 1, nil, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0].Count != 1 || groups[0].EventName != "login" {
		t.Errorf("GroupsBy(b) = %+v", groups)
	}
}

func TestScanStopsOnError(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := mustTenant(t, s, "a")
	mustAppend(t, s, AppendBatch{TenantID: a.ID, Events: []Event{ev("1", "e", 1), ev("2", "e", 2), ev("3", "e", 3)}})

	stop := errors.New("stop")
	calls := 0
	err := s.Scan(ctx, a.ID, Group{EventName: "e", Day: time.Unix(0, 0), FirstSeq: 1, LastSeq: 3}, func(StoredEvent) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Scan = %v after %d calls, want fn's error after 1 call", err, calls)
	}
}

// A slow reader must not hold up ingest: while Scan is inside fn, Append
// (on the same store and on a second handle, like the operator CLI) goes
// through.
func TestScanDoesNotBlockWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	s := openTest(t, path)
	other := openTest(t, path)
	a := mustTenant(t, s, "a")

	var events []Event
	for i := 1; i <= 500; i++ {
		events = append(events, ev(fmt.Sprint(i), "e", 1))
	}
	mustAppend(t, s, AppendBatch{TenantID: a.ID, Events: events})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 0
	err := s.Scan(ctx, a.ID, Group{EventName: "e", Day: time.Unix(0, 0), FirstSeq: 1, LastSeq: 500}, func(e StoredEvent) error {
		n++
		if e.Seq%100 != 0 {
			return nil
		}
		for _, st := range []*SQLite{s, other} {
			_, err := st.Append(ctx, []AppendBatch{{TenantID: a.ID, Events: []Event{ev(fmt.Sprintf("new-%p-%d", st, e.Seq), "e", 1)}}})
			if err != nil {
				return fmt.Errorf("append during scan: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The scan sees the snapshot it started with.
	if n != 500 {
		t.Errorf("Scan visited %d events, want 500", n)
	}
	if head, _ := s.Head(context.Background(), a.ID); head != 510 {
		t.Errorf("head = %d, want 510", head)
	}
}

// The event log grows large; every read of it must be a search on an index
// prefix, never a scan of the table.
func TestEventQueriesUseIndexes(t *testing.T) {
	s := newTestStore(t)
	groups, groupsArgs := groupsQuery(1, 1, 100, nil, msPerDay)
	filtered, filteredArgs := groupsQuery(1, 1, 100, []string{"a", "b"}, msPerDay)
	tests := []struct {
		name  string
		query string
		args  []any
		want  string
	}{
		{"groups", groups, groupsArgs, "SEARCH event_chunks USING INDEX event_chunks_seq (tenant_id=? AND last_seq>? AND last_seq<?)"},
		{"groups by name", filtered, filteredArgs, "SEARCH event_chunks USING INDEX event_chunks_name (tenant_id=? AND event_name=? AND last_seq>? AND last_seq<?)"},
		{"scan", scanSQL, []any{1, "a", 1, 2, 3, 4, 5}, "SEARCH event_chunks USING INDEX event_chunks_name (tenant_id=? AND event_name=? AND last_seq>? AND last_seq<?)"},
		{"oldest after", oldestAfterSQL, []any{1, 5}, "SEARCH commit_marks USING PRIMARY KEY (tenant_id=? AND last_seq>?)"},
	}
	for _, tt := range tests {
		rows, err := s.reader.Query("EXPLAIN QUERY PLAN "+tt.query, tt.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if len(plan) == 0 || plan[0] != tt.want {
			t.Errorf("%s: plan %q, want it to start with %q", tt.name, plan, tt.want)
		}
		if tt.name == "scan" && len(plan) != 1 {
			t.Errorf("scan: plan %q sorts; the index should give sequence order", plan)
		}
	}
}

// The background checkpointer copies committed pages into the database file
// long before the WAL reaches the autocheckpoint size.
func TestCheckpointInBackground(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	s := openTest(t, path)
	a := mustTenant(t, s, "a")

	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var events []Event
	for i := 0; i < 1000; i++ {
		events = append(events, ev(fmt.Sprint(i), "e", 1))
	}
	mustAppend(t, s, AppendBatch{TenantID: a.ID, Events: events})

	// 1000 events are far fewer pages than walAutocheckpoint, so only
	// the checkpointer can have grown the main file.
	deadline := time.Now().Add(time.Minute) // a hang guard, not a budget
	for {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > before.Size()+100_000 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes (was %d): no checkpoint", fi.Size(), before.Size())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Scans run side by side (one per destination), and a callback may read the
// store again: that must not wait for a connection held by another Scan.
func TestConcurrentScansMayReadInCallback(t *testing.T) {
	const scans = 16
	s := newTestStore(t)
	a := mustTenant(t, s, "a")
	mustAppend(t, s, AppendBatch{TenantID: a.ID, Events: []Event{ev("1", "e", 1), ev("2", "e", 2)}})
	g := Group{EventName: "e", Day: time.Unix(0, 0), FirstSeq: 1, LastSeq: 2}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var arrived sync.WaitGroup
	arrived.Add(scans)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()

	errs := make(chan error, scans)
	for i := 0; i < scans; i++ {
		go func() {
			first := true
			errs <- s.Scan(ctx, a.ID, g, func(StoredEvent) error {
				if first {
					// Hold every Scan open at once.
					first = false
					arrived.Done()
					select {
					case <-all:
					case <-ctx.Done():
						return fmt.Errorf("not all scans could run at once: %w", ctx.Err())
					}
				}
				_, err := s.Head(ctx, a.ID)
				return err
			})
		}()
	}
	for i := 0; i < scans; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestConcurrentAppend(t *testing.T) {
	const (
		writers  = 20
		calls    = 10
		perBatch = 25
	)
	s := newTestStore(t)
	a := mustTenant(t, s, "a")

	var wg sync.WaitGroup
	results := make(chan AppendResult, writers*calls)
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := 0; c < calls; c++ {
				var events []Event
				for i := 0; i < perBatch; i++ {
					events = append(events, ev(fmt.Sprintf("w%d-c%d-%d", w, c, i), "e", 1))
				}
				// Every writer also resends a message id that
				// other writers send: it must be stored once.
				events = append(events, ev(fmt.Sprintf("shared-%d", c), "e", 1))
				res, err := s.Append(context.Background(), []AppendBatch{{TenantID: a.ID, Events: events}})
				if err != nil {
					errs <- err
					return
				}
				results <- res[0]
			}
		}()
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	total := int64(writers*calls*perBatch + calls)
	seen := make([]bool, total+1)
	var stored, dups int64
	for r := range results {
		stored += int64(r.Stored)
		dups += int64(r.Duplicates)
		if r.LastSeq-r.FirstSeq+1 != int64(r.Stored) {
			t.Errorf("result %+v: range does not match the count", r)
		}
		for seq := r.FirstSeq; seq <= r.LastSeq && seq <= total; seq++ {
			if seen[seq] {
				t.Errorf("seq %d handed out twice", seq)
			}
			seen[seq] = true
		}
	}
	if stored != total || dups != int64((writers-1)*calls) {
		t.Errorf("stored %d, duplicates %d; want %d, %d", stored, dups, total, (writers-1)*calls)
	}
	rows := allEvents(t, s, a.ID)
	if int64(len(rows)) != total {
		t.Fatalf("log has %d events, want %d", len(rows), total)
	}
	for i, r := range rows {
		if r.Seq != int64(i+1) {
			t.Fatalf("log position %d has seq %d: gap or repeat", i, r.Seq)
		}
	}
}

// The daemon and an operator CLI may hold the same file open: writes from
// both must wait for each other, not fail with SQLITE_BUSY.
func TestTwoHandlesShareTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	stores := []*SQLite{openTest(t, path), openTest(t, path)}
	a := mustTenant(t, stores[0], "a")

	var wg sync.WaitGroup
	errs := make(chan error, 2*len(stores))
	for i, s := range stores {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for c := 0; c < 50; c++ {
				_, err := s.Append(context.Background(), []AppendBatch{{TenantID: a.ID, Events: []Event{
					ev(fmt.Sprintf("%d-%d-a", i, c), "e", 1), ev(fmt.Sprintf("%d-%d-b", i, c), "e", 1),
				}}})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for c := 0; c < 20; c++ {
				if _, err := s.CreateTenant(context.Background(), fmt.Sprintf("t-%d-%d", i, c), "x"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rows := allEvents(t, stores[1], a.ID)
	if len(rows) != 200 {
		t.Fatalf("log has %d events, want 200", len(rows))
	}
	for i, r := range rows {
		if r.Seq != int64(i+1) {
			t.Fatalf("log position %d has seq %d: gap or repeat", i, r.Seq)
		}
	}
}

func TestDestinations(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := mustTenant(t, s, "a")
	b := mustTenant(t, s, "b")

	d1, err := s.CreateDestination(ctx, Destination{ID: "d1", TenantID: a.ID, Spec: []byte(`{"bucket":"one"}`), Cursor: 7})
	if err != nil {
		t.Fatal(err)
	}
	if d1.CreatedAt.IsZero() || !d1.UpdatedAt.Equal(d1.CreatedAt) || d1.Cursor != 7 {
		t.Errorf("CreateDestination = %+v", d1)
	}
	d2, err := s.CreateDestination(ctx, Destination{ID: "d2", TenantID: b.ID, Spec: []byte(`{"bucket":"two"}`)})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := s.CreateDestination(ctx, Destination{ID: "d1", TenantID: b.ID, Spec: []byte(`{}`)}); !errors.Is(err, ErrConflict) {
		t.Errorf("CreateDestination with a taken id: err = %v, want ErrConflict", err)
	}
	if _, err := s.CreateDestination(ctx, Destination{ID: "d3", TenantID: 999, Spec: []byte(`{}`)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("CreateDestination for an unknown tenant: err = %v, want ErrNotFound", err)
	}

	got, err := s.GetDestination(ctx, a.ID, "d1")
	if err != nil || !reflect.DeepEqual(got, d1) {
		t.Errorf("GetDestination = %+v, %v; want %+v", got, err, d1)
	}

	lists := []struct {
		tenantID int64
		want     []Destination
	}{
		{a.ID, []Destination{d1}},
		{b.ID, []Destination{d2}},
		{0, []Destination{d1, d2}},
		{999, nil},
	}
	for _, l := range lists {
		got, err := s.ListDestinations(ctx, l.tenantID)
		if err != nil || !reflect.DeepEqual(got, l.want) {
			t.Errorf("ListDestinations(%d) = %+v, %v; want %+v", l.tenantID, got, err, l.want)
		}
	}

	// Tenant isolation: every call naming another tenant's destination
	// (or no destination) is not found, and changes nothing.
	isolation := []struct {
		name string
		call func() error
	}{
		{"get other tenant's", func() error { _, err := s.GetDestination(ctx, b.ID, "d1"); return err }},
		{"get unknown", func() error { _, err := s.GetDestination(ctx, a.ID, "nope"); return err }},
		{"update other tenant's", func() error { _, err := s.UpdateDestination(ctx, b.ID, "d1", []byte(`{"x":1}`)); return err }},
		{"update unknown", func() error { _, err := s.UpdateDestination(ctx, a.ID, "nope", []byte(`{}`)); return err }},
		{"delete other tenant's", func() error { return s.DeleteDestination(ctx, b.ID, "d1") }},
		{"delete unknown", func() error { return s.DeleteDestination(ctx, a.ID, "nope") }},
	}
	for _, tt := range isolation {
		if err := tt.call(); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", tt.name, err)
		}
	}
	if got, err := s.GetDestination(ctx, a.ID, "d1"); err != nil || !reflect.DeepEqual(got, d1) {
		t.Errorf("d1 changed by another tenant's calls: %+v, %v", got, err)
	}

	time.Sleep(2 * time.Millisecond) // so that updated_at moves
	up, err := s.UpdateDestination(ctx, a.ID, "d1", []byte(`{"bucket":"uno"}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(up.Spec) != `{"bucket":"uno"}` || up.Cursor != 7 || !up.CreatedAt.Equal(d1.CreatedAt) || !up.UpdatedAt.After(d1.UpdatedAt) {
		t.Errorf("UpdateDestination = %+v (was %+v)", up, d1)
	}
	if got, _ := s.GetDestination(ctx, a.ID, "d1"); !reflect.DeepEqual(got, up) {
		t.Errorf("GetDestination after update = %+v, want %+v", got, up)
	}

	if err := s.DeleteDestination(ctx, a.ID, "d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDestination(ctx, a.ID, "d1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetDestination after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteDestination(ctx, a.ID, "d1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}
}

func TestDeleteDestinationRemovesStatusAndPlan(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := mustTenant(t, s, "a")
	if _, err := s.CreateDestination(ctx, Destination{ID: "d1", TenantID: a.ID, Spec: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, "d1", Attempt{At: time.Now(), Err: "boom"}); err != nil {
		t.Fatal(err)
	}
	p := Plan{DestinationID: "d1", FromSeq: 1, ToSeq: 5, WindowEnd: time.Now(), Objects: []byte(`[]`)}
	if err := s.SavePlan(ctx, p); err != nil {
		t.Fatal(err)
	}

	if err := s.DeleteDestination(ctx, a.ID, "d1"); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"destination_status", "plans"} {
		var n int
		if err := s.reader.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s has %d rows after the delete, want 0", table, n)
		}
	}
	if _, err := s.GetStatus(ctx, "d1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetStatus after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.CommitPlan(ctx, p, Delivered{Events: 5}); !errors.Is(err, ErrNotFound) {
		t.Errorf("CommitPlan after delete: err = %v, want ErrNotFound", err)
	}
	// A destination created again with the same id starts clean.
	if _, err := s.CreateDestination(ctx, Destination{ID: "d1", TenantID: a.ID, Spec: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.GetStatus(ctx, "d1"); err != nil || st != (Status{}) {
		t.Errorf("GetStatus of the new destination = %+v, %v; want zero", st, err)
	}
}

func TestStatus(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := mustTenant(t, s, "a")
	if _, err := s.CreateDestination(ctx, Destination{ID: "d1", TenantID: a.ID, Spec: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}

	st, err := s.GetStatus(ctx, "d1")
	if err != nil || st != (Status{}) {
		t.Errorf("GetStatus before any = %+v, %v; want zero, nil", st, err)
	}
	if _, err := s.GetStatus(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetStatus(unknown): err = %v, want ErrNotFound", err)
	}
	if err := s.RecordAttempt(ctx, "nope", Attempt{At: time.Now()}); !errors.Is(err, ErrNotFound) {
		t.Errorf("RecordAttempt(unknown): err = %v, want ErrNotFound", err)
	}
}

func TestPlans(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := mustTenant(t, s, "a")
	if _, err := s.CreateDestination(ctx, Destination{ID: "d1", TenantID: a.ID, Spec: []byte(`{}`), Cursor: 10}); err != nil {
		t.Fatal(err)
	}

	if _, err := s.PendingPlan(ctx, "d1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("PendingPlan before any: err = %v, want ErrNotFound", err)
	}
	if err := s.SavePlan(ctx, Plan{DestinationID: "nope", Objects: []byte(`[]`)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("SavePlan(unknown destination): err = %v, want ErrNotFound", err)
	}

	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	p := Plan{
		DestinationID: "d1",
		FromSeq:       11,
		ToSeq:         20,
		WindowEnd:     t0,
		Objects:       []byte(`[{"key":"a/b/c.ndjson.gz"}]`),
		CreatedAt:     t0.Add(time.Second),
	}
	if err := s.SavePlan(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePlan(ctx, Plan{DestinationID: "d1", FromSeq: 11, ToSeq: 30, Objects: []byte(`[]`)}); !errors.Is(err, ErrConflict) {
		t.Errorf("second SavePlan: err = %v, want ErrConflict", err)
	}
	got, err := s.PendingPlan(ctx, "d1")
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Errorf("PendingPlan = %+v, %v; want %+v", got, err, p)
	}

	// A commit of some other plan than the pending one changes nothing.
	stale := p
	stale.ToSeq = 15
	if err := s.CommitPlan(ctx, stale, Delivered{Events: 5}); !errors.Is(err, ErrNotFound) {
		t.Errorf("CommitPlan(stale plan): err = %v, want ErrNotFound", err)
	}

	// A failed attempt before the commit: the commit clears its error.
	if err := s.RecordAttempt(ctx, "d1", Attempt{At: t0, Err: "SlowDown"}); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Minute)
	if err := s.CommitPlan(ctx, p, Delivered{Events: 10, Objects: 2, Bytes: 700, At: at}); err != nil {
		t.Fatal(err)
	}

	d, err := s.GetDestination(ctx, a.ID, "d1")
	if err != nil || d.Cursor != 20 {
		t.Errorf("cursor after commit = %d, %v; want 20", d.Cursor, err)
	}
	want := Status{LastDeliveryAt: at, LastAttemptAt: t0, EventsDelivered: 10, ObjectsDelivered: 2, BytesDelivered: 700}
	if st, err := s.GetStatus(ctx, "d1"); err != nil || st != want {
		t.Errorf("status after commit = %+v, %v; want %+v", st, err, want)
	}
	if _, err := s.PendingPlan(ctx, "d1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("PendingPlan after commit: err = %v, want ErrNotFound", err)
	}
	if err := s.CommitPlan(ctx, p, Delivered{Events: 10, At: at}); !errors.Is(err, ErrNotFound) {
		t.Errorf("second CommitPlan: err = %v, want ErrNotFound", err)
	}
	if st, _ := s.GetStatus(ctx, "d1"); st.EventsDelivered != 10 {
		t.Errorf("second commit counted again: %d events", st.EventsDelivered)
	}

	// The next plan can be saved once the last one is committed.
	next := Plan{DestinationID: "d1", FromSeq: 21, ToSeq: 25, WindowEnd: t0, Objects: []byte(`[]`)}
	if err := s.SavePlan(ctx, next); err != nil {
		t.Fatal(err)
	}
	// A first commit creates the status row if there is none.
	if _, err := s.CreateDestination(ctx, Destination{ID: "d2", TenantID: a.ID, Spec: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	p2 := Plan{DestinationID: "d2", FromSeq: 1, ToSeq: 3, WindowEnd: t0, Objects: []byte(`[]`)}
	if err := s.SavePlan(ctx, p2); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitPlan(ctx, p2, Delivered{Events: 3, Objects: 1, Bytes: 9, At: at}); err != nil {
		t.Fatal(err)
	}
	want = Status{LastDeliveryAt: at, EventsDelivered: 3, ObjectsDelivered: 1, BytesDelivered: 9}
	if st, err := s.GetStatus(ctx, "d2"); err != nil || st != want {
		t.Errorf("status after a first commit = %+v, %v; want %+v", st, err, want)
	}
}

func TestUpdatePlan(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := mustTenant(t, s, "a")
	if _, err := s.CreateDestination(ctx, Destination{ID: "d1", TenantID: a.ID, Spec: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	p := Plan{DestinationID: "d1", FromSeq: 1, ToSeq: 9, WindowEnd: time.Unix(600, 0).UTC(), Objects: []byte(`[]`)}
	if err := s.SavePlan(ctx, p); err != nil {
		t.Fatal(err)
	}

	p.Objects = []byte(`[{"key":"k1","parts":[1,5]}]`)
	if err := s.UpdatePlan(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := s.PendingPlan(ctx, "d1")
	if err != nil || string(got.Objects) != string(p.Objects) || got.ToSeq != 9 {
		t.Errorf("PendingPlan after update = %+v, %v; want objects %s", got, err, p.Objects)
	}

	other := p
	other.ToSeq = 5
	if err := s.UpdatePlan(ctx, other); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdatePlan of another plan: err = %v, want ErrNotFound", err)
	}
	if err := s.CommitPlan(ctx, p, Delivered{Events: 9}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdatePlan(ctx, p); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdatePlan after commit: err = %v, want ErrNotFound", err)
	}
}

func TestLastSeqBefore(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := mustTenant(t, s, "a")

	if got, err := s.LastSeqBefore(ctx, a.ID, 0, time.Now()); err != nil || got != 0 {
		t.Errorf("LastSeqBefore on an empty log = %d, %v; want 0", got, err)
	}

	past := time.Now().Add(-time.Hour)
	mustAppend(t, s, AppendBatch{TenantID: a.ID, Events: []Event{ev("1", "e", 1), ev("2", "e", 1), ev("3", "e", 1)}})
	time.Sleep(3 * time.Millisecond)
	split := time.Now()
	time.Sleep(3 * time.Millisecond)
	mustAppend(t, s, AppendBatch{TenantID: a.ID, Events: []Event{ev("4", "e", 1), ev("5", "e", 1)}})

	tests := []struct {
		name  string
		after int64
		at    time.Time
		want  int64
	}{
		{"between the two appends", 0, split, 3},
		{"scan starts after the split", 4, split, 4},
		{"before everything", 0, past, 0},
		{"after everything", 0, time.Now().Add(time.Hour), 5},
	}
	for _, tt := range tests {
		got, err := s.LastSeqBefore(ctx, a.ID, tt.after, tt.at)
		if err != nil || got != tt.want {
			t.Errorf("%s: LastSeqBefore = %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
}

func TestFloorDiv(t *testing.T) {
	tests := []struct{ a, b, want int64 }{
		{0, msPerDay, 0},
		{msPerDay - 1, msPerDay, 0},
		{msPerDay, msPerDay, 1},
		{-1, msPerDay, -1},
		{-msPerDay, msPerDay, -1},
		{-msPerDay - 1, msPerDay, -2},
	}
	for _, tt := range tests {
		if got := floorDiv(tt.a, tt.b); got != tt.want {
			t.Errorf("floorDiv(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// BenchmarkAppend measures the ingest hot path: calls of 1000 events with
// 400-byte JSON bodies, each call one fsync'd commit. Message ids are either
// random (UUIDv4, each insert lands on a random page of the unique index) or
// time-ordered (UUIDv7-like, inserts append to the index).
func BenchmarkAppend(b *testing.B) {
	b.Run("random-ids", func(b *testing.B) { benchmarkAppend(b, randomID) })
	b.Run("ordered-ids", func(b *testing.B) { benchmarkAppend(b, orderedID) })
}

func randomID(r *rand.Rand, n int) string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x",
		r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff, r.Uint32()&0xfff, r.Uint64()&0xffffffffffff)
}

func orderedID(r *rand.Rand, n int) string {
	return fmt.Sprintf("%012x-7%03x-8%03x-%012x",
		n, r.Uint32()&0xfff, r.Uint32()&0xfff, r.Uint64()&0xffffffffffff)
}

func benchmarkAppend(b *testing.B, newID func(r *rand.Rand, n int) string) {
	const perCall = 1000
	s := newTestStore(b)
	tn := mustTenant(b, s, "bench")
	names := []string{"user.login", "user.logout", "document.update", "role.grant"}
	r := rand.New(rand.NewPCG(1, 2))

	// Build the input outside the timer: only the store is measured.
	batches := make([]AppendBatch, b.N)
	for c := range batches {
		events := make([]Event, perCall)
		for i := range events {
			n := c*perCall + i
			id := newID(r, n)
			name := names[i%len(names)]
			ts := int64(1_740_000_000_000 + n)
			body := fmt.Sprintf(`{"messageId":%q,"eventName":%q,"timestamp":%d,"actor":{"id":"u-%d","type":"user"},"ip":"203.0.113.7","data":"`,
				id, name, ts, i%97)
			body += strings.Repeat("x", 400-len(body)-2) + `"}`
			events[i] = Event{MessageID: id, EventName: name, TimeMs: ts, Body: []byte(body)}
		}
		batches[c] = AppendBatch{TenantID: tn.ID, Events: events}
	}
	if n := len(batches[0].Events[0].Body); n != 400 {
		b.Fatalf("body is %d bytes, want 400", n)
	}

	ctx := context.Background()
	b.SetBytes(400 * perCall)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := s.Append(ctx, batches[i:i+1])
		if err != nil {
			b.Fatal(err)
		}
		if res[0].Stored != perCall {
			b.Fatalf("stored %d, want %d", res[0].Stored, perCall)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*perCall)/b.Elapsed().Seconds(), "events/s")
}

func TestGroupsByHour(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	tn, err := s.CreateTenant(ctx, "hourly", "ext")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixMilli()
	var evs []Event
	for i, off := range []time.Duration{5 * time.Minute, 59 * time.Minute, 61 * time.Minute, 3 * time.Hour} {
		evs = append(evs, Event{MessageID: fmt.Sprint(i), EventName: "x", TimeMs: base + off.Milliseconds(), Body: []byte(`{}`)})
	}
	if _, err := s.Append(ctx, []AppendBatch{{TenantID: tn.ID, Events: evs}}); err != nil {
		t.Fatal(err)
	}
	groups, err := s.GroupsBy(ctx, tn.ID, 1, 4, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var counts []int64
	for _, g := range groups {
		counts = append(counts, g.Count)
		var n int64
		if err := s.Scan(ctx, tn.ID, g, func(StoredEvent) error { n++; return nil }); err != nil || n != g.Count {
			t.Fatalf("Scan of %+v read %d events (%v)", g, n, err)
		}
	}
	if fmt.Sprint(counts) != "[2 1 1]" {
		t.Fatalf("hourly group counts = %v, want [2 1 1]", counts)
	}
	if _, err := s.GroupsBy(ctx, tn.ID, 1, 4, nil, 7*time.Hour); err == nil {
		t.Fatal("a span that does not divide a day was accepted")
	}
}

// A duplicate is a retry: the same messageId and the same timestamp. The same
// messageId with another timestamp is another event, and is kept.
func TestDuplicateIsSameMessageIDAndTimestamp(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	tn := mustTenant(t, s, "dups")
	ev := func(ts int64) Event {
		return Event{MessageID: "m-1", EventName: "x", TimeMs: ts, Body: []byte(`{}`)}
	}
	res, err := s.Append(ctx, []AppendBatch{{TenantID: tn.ID, Events: []Event{ev(1000), ev(1000), ev(2000)}}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Stored != 2 || res[0].Duplicates != 1 || res[0].LastSeq != 2 {
		t.Fatalf("result = %+v, want 2 stored (seq 1-2) and 1 duplicate", res[0])
	}
}

// BenchmarkSmallWindowReads measures the reads of a small destination's turn
// (LastSeqBefore, GroupsBy, Scan) on a store with many tenants that commit
// in between, as at a busy window end: each iteration appends a small batch
// for one tenant (a commit, which empties the readers' page caches) and then
// reads another tenant's window. "read-µs/turn" is the reads alone.
func BenchmarkSmallWindowReads(b *testing.B) {
	const tenants, perTenant = 2000, 20
	s := newTestStore(b)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	ids := make([]int64, tenants)
	batch := func(tenant int64, n, round int) AppendBatch {
		events := make([]Event, n)
		for i := range events {
			id := randomID(r, 0)
			ts := int64(1_740_000_000_000 + round*60_000 + i)
			body := fmt.Sprintf(`{"messageId":%q,"eventName":"user.login","timestamp":%d,"data":"%s"}`, id, ts, strings.Repeat("x", 300))
			events[i] = Event{MessageID: id, EventName: []string{"user.login", "user.logout", "role.grant"}[i%3], TimeMs: ts, Body: []byte(body)}
		}
		return AppendBatch{TenantID: tenant, Events: events}
	}
	for i := range ids {
		ids[i] = mustTenant(b, s, fmt.Sprintf("t%d", i)).ID
		mustAppend(b, s, batch(ids[i], perTenant, 0))
	}
	cutoff := time.Now().Add(time.Hour)
	var reads time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mustAppend(b, s, batch(ids[(i*7+3)%tenants], 1, i+1))
		start := time.Now()
		tenant := ids[i%tenants]
		head, err := s.LastSeqBefore(ctx, tenant, 0, cutoff)
		if err != nil || head < perTenant {
			b.Fatalf("LastSeqBefore = %d, %v", head, err)
		}
		groups, err := s.GroupsBy(ctx, tenant, 1, perTenant, nil, 24*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, g := range groups {
			if err := s.Scan(ctx, tenant, g, func(StoredEvent) error { n++; return nil }); err != nil {
				b.Fatal(err)
			}
		}
		if n != perTenant {
			b.Fatalf("scanned %d events, want %d", n, perTenant)
		}
		reads += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(reads.Microseconds())/float64(b.N), "read-µs/turn")
}

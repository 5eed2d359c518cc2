package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// oldEvent is a row of the events table before migration 5.
type oldEvent struct {
	tenant, seq      int64
	id, name         string
	timeMs, received int64
}

// An agent's file from before the chunked log (schema version 4, a row per
// event) is migrated in place: every event is read back with its number and
// bytes, the old events are still duplicates, and ingest-time lookups and
// retention work on the converted marks.
func TestEventChunksUpgrade(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "agent.db")
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).UnixMilli()
	var old []oldEvent
	for i := int64(1); i <= 7; i++ {
		// Tenant 1: two commits (received t0, t0+1m), two names.
		old = append(old, oldEvent{1, i, fmt.Sprintf("a%d", i), []string{"x", "y"}[i%2], t0 + i, t0 + (i/5)*60_000})
	}
	old = append(old, oldEvent{2, 1, "b1", "x", t0, t0})
	writeVersion4(t, path, old)

	s := openTest(t, path)
	var tables int
	if err := s.reader.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'events'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("events table still there (%d, %v)", tables, err)
	}
	got := allEvents(t, s, 1)
	if len(got) != 7 {
		t.Fatalf("%d events after the upgrade, want 7", len(got))
	}
	for i, r := range got {
		if want := oldBody(old[i]); r.Seq != old[i].seq || r.MessageID != old[i].id || r.Body != want {
			t.Errorf("event %d = %+v, want seq %d id %s body %s", i, r, old[i].seq, old[i].id, want)
		}
	}
	groups, err := s.GroupsBy(ctx, 1, 1, 7, nil, 24*time.Hour)
	if err != nil || len(groups) != 2 || groups[0].Count+groups[1].Count != 7 {
		t.Errorf("GroupsBy = %+v, %v; want two groups of 7 events", groups, err)
	}

	// A resend of an old event is a duplicate; a new one follows the head.
	res := mustAppend(t, s, AppendBatch{TenantID: 1, Events: []Event{
		{MessageID: "a3", EventName: "y", TimeMs: t0 + 3, Body: []byte(`{}`)},
		{MessageID: "new", EventName: "x", TimeMs: t0 + 9, Body: []byte(`{}`)},
	}})
	if want := (AppendResult{Stored: 1, Duplicates: 1, FirstSeq: 8, LastSeq: 8}); res[0] != want {
		t.Errorf("resend = %+v, want %+v", res[0], want)
	}

	// The marks keep the old ingest times: seq 1-4 before t0+1m.
	if seq, err := s.LastSeqBefore(ctx, 1, 0, time.UnixMilli(t0+60_000)); err != nil || seq != 4 {
		t.Errorf("LastSeqBefore = %d, %v; want 4", seq, err)
	}
	if n, err := s.DeleteEvents(ctx, 1, 10, time.UnixMilli(t0+1), 100); err != nil || n != 4 {
		t.Errorf("DeleteEvents = %d, %v; want 4", n, err)
	}
	res = mustAppend(t, s, AppendBatch{TenantID: 1, Events: []Event{{MessageID: "a1", EventName: "x", TimeMs: t0 + 1, Body: []byte(`{}`)}}})
	if res[0].Stored != 1 {
		t.Errorf("resend of a deleted event = %+v, want it stored again", res[0])
	}
	if got := allEvents(t, s, 2); !reflect.DeepEqual(got, []storedRow{{1, "b1", oldBody(old[7])}}) {
		t.Errorf("tenant 2 = %+v", got)
	}
}

func oldBody(e oldEvent) string { return fmt.Sprintf(`{"messageId":%q,"n":%d}`, e.id, e.seq) }

// writeVersion4 makes a file at schema version 4 holding the events.
func writeVersion4(t *testing.T, path string, events []oldEvent) {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= 4; v++ {
		if _, err := db.Exec(migrations[v-1]); err != nil {
			t.Fatalf("migration %d: %v", v, err)
		}
		if _, err := db.Exec(`INSERT INTO schema_migrations VALUES (?, 0)`, v); err != nil {
			t.Fatal(err)
		}
	}
	heads := map[int64]int64{}
	for _, e := range events {
		heads[e.tenant] = max(heads[e.tenant], e.seq)
	}
	for id, head := range heads {
		if _, err := db.Exec(`INSERT INTO tenants (id, name, external_id, head_seq, created_at) VALUES (?, ?, 'ext', ?, 0)`,
			id, fmt.Sprintf("t%d", id), head); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range events {
		_, err := db.Exec(`INSERT INTO events (tenant_id, seq, message_id, event_name, time_ms, received_ms, body)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, e.tenant, e.seq, e.id, e.name, e.timeMs, e.received, []byte(oldBody(e)))
		if err != nil {
			t.Fatal(err)
		}
	}
}

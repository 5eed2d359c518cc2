package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/store"
)

// TestPostgresStore starts the bench's PostgreSQL store and checks what
// the PostgreSQL rows rest on: the agent's config carries the store block
// with the server's URL and pool size, the postmaster's CPU can be read,
// and the store-read and compress stages read back, through store.Open,
// every event appended, in the same groups as from SQLite.
func TestPostgresStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pg, err := startPostgresStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.close)
	if pg.pid <= 0 {
		t.Fatalf("postmaster pid %d", pg.pid)
	}
	if treeCPU(pg.pid) <= 0 {
		t.Errorf("no CPU time read for the postmaster %d and its children", pg.pid)
	}
	checkStoreBlock(t, pg)

	dir := t.TempDir()
	sqlite := sqliteStore()
	sqlite.cfg.SQLitePath = sqlitePath(dir)
	const events = 3000
	var groups []int
	for _, bs := range []*benchStore{sqlite, pg} {
		t.Run(bs.name, func(t *testing.T) {
			st, err := store.Open(ctx, bs.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			tenant, bodyBytes := appendEvents(ctx, t, st, events)
			r, err := readStage(ctx, st, tenant, 1, events)
			if err != nil {
				t.Fatal(err)
			}
			if r.events != events || r.bytesIn != bodyBytes {
				t.Fatalf("store read: %d events, %d bytes; want %d, %d", r.events, r.bytesIn, events, bodyBytes)
			}
			c, sizes, err := compressStage(ctx, st, tenant, 1, events, benchSpec(t))
			if err != nil {
				t.Fatal(err)
			}
			if c.events != events || len(sizes) == 0 || c.bytesOut <= 0 {
				t.Fatalf("compress: %d events in %d objects of %d bytes", c.events, len(sizes), c.bytesOut)
			}
			groups = append(groups, len(sizes))
		})
	}
	if len(groups) == 2 && groups[0] != groups[1] {
		t.Errorf("SQLite gave %d groups, PostgreSQL %d, for the same events", groups[0], groups[1])
	}
}

// checkStoreBlock parses the agent config of a PostgreSQL store and checks
// its store { postgres { url, max_conns } } block.
func checkStoreBlock(t *testing.T, pg *benchStore) {
	t.Helper()
	a, err := newAgentProc("auditexport-agent", t.TempDir(), &s3Server{url: "http://127.0.0.1:1"}, pg)
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(a.config)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclparse.NewParser().ParseHCL(src, filepath.Base(a.config))
	if diags.HasErrors() {
		t.Fatalf("agent config: %s\n%s", diags, src)
	}
	content, _, diags := f.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "store"}}})
	if diags.HasErrors() || len(content.Blocks) != 1 {
		t.Fatalf("agent config has %d store blocks (%s):\n%s", len(content.Blocks), diags, src)
	}
	inner, _, diags := content.Blocks[0].Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "postgres"}}})
	if diags.HasErrors() || len(inner.Blocks) != 1 {
		t.Fatalf("store block has %d postgres blocks (%s):\n%s", len(inner.Blocks), diags, src)
	}
	attrs, diags := inner.Blocks[0].Body.JustAttributes()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := map[string]string{"url": pg.cfg.PostgresURL, "max_conns": strconv.Itoa(pgMaxConns)}
	if len(attrs) != len(want) {
		t.Fatalf("postgres block has %d attributes, want url and max_conns:\n%s", len(attrs), src)
	}
	for name, w := range want {
		attr, ok := attrs[name]
		if !ok {
			t.Fatalf("postgres block lacks %s:\n%s", name, src)
		}
		v, diags := attr.Expr.Value(nil)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		got := v.GoString()
		if v.Type().FriendlyName() == "string" {
			got = v.AsString()
		} else if bf := v.AsBigFloat(); bf.IsInt() {
			i, _ := bf.Int64()
			got = strconv.FormatInt(i, 10)
		}
		if got != w {
			t.Errorf("postgres.%s = %s, want %s", name, got, w)
		}
	}
}

// appendEvents creates the bench tenant in st and appends n generated
// events in batches; it returns the tenant's id and the events' NDJSON
// size, newlines included.
func appendEvents(ctx context.Context, t *testing.T, st store.Store, n int) (int64, int64) {
	t.Helper()
	tenant, err := st.CreateTenant(ctx, tenantName, "ext-bench")
	if err != nil {
		t.Fatal(err)
	}
	g := newEventGen(7, 0)
	now := time.Now()
	var total int64
	for first := 0; first < n; first += 1000 {
		var evs []store.Event
		for i := first; i < min(first+1000, n); i++ {
			name := g.name()
			body := g.appendEvent(nil, now)
			evs = append(evs, store.Event{MessageID: "m" + strconv.Itoa(i), EventName: name, TimeMs: now.UnixMilli(), Body: body})
			total += int64(len(body)) + 1
		}
		res, err := st.Append(ctx, []store.AppendBatch{{TenantID: tenant.ID, Events: evs}})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Stored != len(evs) {
			t.Fatalf("stored %d of %d events", res[0].Stored, len(evs))
		}
	}
	return tenant.ID, total
}

// benchSpec is a destination spec as the bench creates it, normalized.
func benchSpec(t *testing.T) api.DestinationSpec {
	t.Helper()
	spec := api.DestinationSpec{Bucket: "auditexport-bench", Region: region, Prefix: destPrefix + "test",
		AccessKeyID: "AKIABENCHTEST0000", SecretAccessKey: "secret", Interval: "1h"}
	if err := spec.Normalize(); err != nil {
		t.Fatal(err)
	}
	return spec
}

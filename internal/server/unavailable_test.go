package server

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/ingest"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/tokens"
)

// downStore is a working store that fails every call the API makes with
// store.ErrUnavailable while down is set, the way the PostgreSQL engine
// fails when the database is out of reach. The end-to-end outage test
// stops a real PostgreSQL; this one pins down each route's answer.
type downStore struct {
	store.Store
	down atomic.Bool
}

func (d *downStore) err(op string) error {
	if d.down.Load() {
		return fmt.Errorf("%s: %w: dial tcp 127.0.0.1:5432: connect: connection refused", op, store.ErrUnavailable)
	}
	return nil
}

func (d *downStore) TokenByHash(ctx context.Context, h []byte) (store.Token, error) {
	if err := d.err("token by hash"); err != nil {
		return store.Token{}, err
	}
	return d.Store.TokenByHash(ctx, h)
}

func (d *downStore) TenantByID(ctx context.Context, id int64) (store.Tenant, error) {
	if err := d.err("tenant by id"); err != nil {
		return store.Tenant{}, err
	}
	return d.Store.TenantByID(ctx, id)
}

func (d *downStore) TenantByName(ctx context.Context, name string) (store.Tenant, error) {
	if err := d.err("tenant by name"); err != nil {
		return store.Tenant{}, err
	}
	return d.Store.TenantByName(ctx, name)
}

func (d *downStore) Append(ctx context.Context, b []store.AppendBatch) ([]store.AppendResult, error) {
	if err := d.err("append"); err != nil {
		return nil, err
	}
	return d.Store.Append(ctx, b)
}

func (d *downStore) ListDestinations(ctx context.Context, tenantID int64) ([]store.Destination, error) {
	if err := d.err("list destinations"); err != nil {
		return nil, err
	}
	return d.Store.ListDestinations(ctx, tenantID)
}

// appendDown fails only Append, as when the database goes away between a
// request's token lookup and its commit.
type appendDown struct{ *downStore }

func (a appendDown) TokenByHash(ctx context.Context, h []byte) (store.Token, error) {
	return a.Store.TokenByHash(ctx, h)
}

func (a appendDown) TenantByName(ctx context.Context, name string) (store.Tenant, error) {
	return a.Store.TenantByName(ctx, name)
}

func (a appendDown) TenantByID(ctx context.Context, id int64) (store.Tenant, error) {
	return a.Store.TenantByID(ctx, id)
}

// A store that cannot be reached answers 503 with Retry-After on every
// route that needs it, never 500, and /healthz says the store is down.
func TestStoreUnavailableAnswers503(t *testing.T) {
	ctx := context.Background()
	sqlite, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqlite.Close() })
	ds := &downStore{Store: sqlite}
	tn, err := sqlite.CreateTenant(ctx, "a", "ext-a")
	if err != nil {
		t.Fatal(err)
	}
	ingestTok, manageTok := tokens.New(api.ScopeIngest), tokens.New(api.ScopeManage)
	for tok, tenantID := range map[string]int64{ingestTok: 0, manageTok: tn.ID} {
		scope := api.ScopeIngest
		if tenantID != 0 {
			scope = api.ScopeManage
		}
		if _, err := sqlite.CreateToken(ctx, store.Token{Hash: tokens.Hash(tok), Scope: scope, TenantID: tenantID}); err != nil {
			t.Fatal(err)
		}
	}
	newHandler := func(st store.Store) http.Handler {
		c := ingest.NewCommitter(st, ingest.CommitterOptions{}, nil)
		c.Start()
		t.Cleanup(c.Close)
		return New(st, c, principalTester{status: "ok"}, nil, metrics.New(), hclog.NewNullLogger(), Options{}).Handler()
	}
	whole, commitOnly := newHandler(ds), newHandler(appendDown{ds})
	const event = `{"timestamp":1700000000000,"eventName":"login","messageId":"m1"}`

	tests := []struct {
		name         string
		h            http.Handler
		method, path string
		token, body  string
	}{
		{"ingest: token lookup", whole, http.MethodPost, "/v1/tenants/a/events", ingestTok, event},
		{"ingest: commit", commitOnly, http.MethodPost, "/v1/tenants/a/events", ingestTok, event},
		{"manage: list destinations", whole, http.MethodGet, "/v1/destinations", manageTok, ""},
		{"manage: identity", whole, http.MethodGet, "/v1/identity", manageTok, ""},
		{"manage: list, store down after auth", commitOnly, http.MethodGet, "/v1/destinations", manageTok, ""},
	}
	ds.down.Store(true)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, er := call(t, tt.h, tt.method, tt.path, tt.token, tt.body)
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || er.Error.Code != "store_unavailable" {
				t.Fatalf("%s %s = %d, Retry-After %q, code %q; want 503 with Retry-After and store_unavailable:\n%s",
					tt.method, tt.path, rec.Code, rec.Header().Get("Retry-After"), er.Error.Code, rec.Body.String())
			}
		})
	}

	t.Run("healthz down", func(t *testing.T) {
		rec, _ := call(t, whole, http.MethodGet, "/healthz", "", "")
		body := rec.Body.String()
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(body, `"status": "degraded"`) ||
			!strings.Contains(body, `"store": "unavailable: tenant by id: database unavailable`) || !strings.Contains(body, `"delivery_principal": "ok"`) {
			t.Fatalf("GET /healthz = %d %s; want 503, degraded, the store unavailable and the principal ok", rec.Code, body)
		}
	})

	// Once the store is back the same requests succeed: nothing was stored
	// while it was down, so the event is new.
	ds.down.Store(false)
	rec, _ := call(t, whole, http.MethodPost, "/v1/tenants/a/events", ingestTok, event)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"stored": 1`) {
		t.Fatalf("POST after the outage = %d %s; want 200 with the event stored", rec.Code, rec.Body.String())
	}
	rec, _ = call(t, whole, http.MethodGet, "/healthz", "", "")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"store": "ok"`) {
		t.Fatalf("GET /healthz after the outage = %d %s; want 200 with the store ok", rec.Code, rec.Body.String())
	}
}

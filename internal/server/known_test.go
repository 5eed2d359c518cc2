package server

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/tokens"
)

// countingStore counts the token and tenant reads that reach the store.
type countingStore struct {
	store.Store
	reads int
}

func (c *countingStore) TokenByHash(ctx context.Context, h []byte) (store.Token, error) {
	c.reads++
	return c.Store.TokenByHash(ctx, h)
}

func (c *countingStore) TenantByID(ctx context.Context, id int64) (store.Tenant, error) {
	c.reads++
	return c.Store.TenantByID(ctx, id)
}

func (c *countingStore) TenantByName(ctx context.Context, name string) (store.Tenant, error) {
	c.reads++
	return c.Store.TenantByName(ctx, name)
}

func TestKnownKeepsHitsOnly(t *testing.T) {
	ctx := context.Background()
	sqlite, err := store.Open(ctx, store.Config{SQLitePath: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqlite.Close() })
	st := &countingStore{Store: sqlite}
	k := newKnown(st)
	hash := tokens.Hash("aex_later")

	// A miss is not remembered: the token created afterwards (as by the
	// CLI in another process) is found at its next use.
	if _, err := k.token(ctx, hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown token: err = %v, want ErrNotFound", err)
	}
	if _, err := k.tenantByName(ctx, "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown tenant: err = %v, want ErrNotFound", err)
	}
	tenant, err := sqlite.CreateTenant(ctx, "acme", "ext-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.CreateToken(ctx, store.Token{Hash: hash, Scope: api.ScopeIngest, TenantID: tenant.ID}); err != nil {
		t.Fatal(err)
	}

	lookups := []struct {
		name string
		get  func() (any, error)
		want any
	}{
		{"token", func() (any, error) { tok, err := k.token(ctx, hash); return tok.TenantID, err }, tenant.ID},
		{"tenant by name", func() (any, error) { t, err := k.tenantByName(ctx, "acme"); return t.ID, err }, tenant.ID},
		{"tenant by id", func() (any, error) { t, err := k.tenantByID(ctx, tenant.ID); return t.Name, err }, "acme"},
	}
	for _, l := range lookups {
		t.Run(l.name, func(t *testing.T) {
			before := st.reads
			for range 3 {
				got, err := l.get()
				if err != nil {
					t.Fatal(err)
				}
				if got != l.want {
					t.Fatalf("got %v, want %v", got, l.want)
				}
			}
			// The tenant by id was remembered by the lookup by name.
			if reads := st.reads - before; reads > 1 {
				t.Fatalf("%d store reads for 3 lookups, want at most 1", reads)
			}
		})
	}
}

func TestRememberStartsOverWhenFull(t *testing.T) {
	m := map[int]int{}
	for i := range knownMax {
		remember(m, i, i)
	}
	remember(m, 0, 1) // a key already there does not empty the map
	if len(m) != knownMax || m[0] != 1 {
		t.Fatalf("len %d, m[0] = %d: want %d and 1", len(m), m[0], knownMax)
	}
	remember(m, knownMax, 0)
	if len(m) != 1 {
		t.Fatalf("len %d after a new key in a full map, want 1", len(m))
	}
}

package server

import (
	"context"
	"sync"

	"github.com/auditexport/auditexport/internal/store"
)

// knownMax bounds each of known's maps; past it, the map starts over.
const knownMax = 100_000

// known remembers the tokens and tenants the API has found in its store,
// so that an ingest request, which names both, costs no store reads: with
// 10,000 tenants posting small batches, those reads were about 5% of the
// agent's CPU (every commit empties the readers' page caches). Neither
// can go stale: a token or a tenant never changes or goes away once
// created (the store has no call for it). Only hits are kept, so a token or tenant created
// after a miss, by the CLI in another process too, is found at its first
// use. Revoking tokens, if it comes, must clear the entry here as well.
type known struct {
	store   store.Store
	mu      sync.RWMutex
	tokens  map[string]store.Token // by hash
	tenants map[int64]store.Tenant
	names   map[string]store.Tenant
}

func newKnown(st store.Store) *known {
	return &known{store: st, tokens: map[string]store.Token{}, tenants: map[int64]store.Tenant{}, names: map[string]store.Tenant{}}
}

// token is the token whose hash is hash.
func (k *known) token(ctx context.Context, hash []byte) (store.Token, error) {
	return lookup(k, k.tokens, string(hash), func() (store.Token, error) { return k.store.TokenByHash(ctx, hash) },
		func(t store.Token) { remember(k.tokens, string(hash), t) })
}

// tenantByID is the tenant whose id is id.
func (k *known) tenantByID(ctx context.Context, id int64) (store.Tenant, error) {
	return lookup(k, k.tenants, id, func() (store.Tenant, error) { return k.store.TenantByID(ctx, id) }, k.add)
}

// tenantByName is the tenant named name.
func (k *known) tenantByName(ctx context.Context, name string) (store.Tenant, error) {
	return lookup(k, k.names, name, func() (store.Tenant, error) { return k.store.TenantByName(ctx, name) }, k.add)
}

// lookup is m[key], or else what read finds, which keep then stores (with
// k's lock held).
func lookup[K comparable, V any](k *known, m map[K]V, key K, read func() (V, error), keep func(V)) (V, error) {
	k.mu.RLock()
	v, ok := m[key]
	k.mu.RUnlock()
	if ok {
		return v, nil
	}
	v, err := read()
	if err != nil {
		return v, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	keep(v)
	return v, nil
}

// add remembers t by id and by name; k's lock is held.
func (k *known) add(t store.Tenant) {
	remember(k.tenants, t.ID, t)
	remember(k.names, t.Name, t)
}

// remember puts v in m under key, emptying m first when it is full.
func remember[K comparable, V any](m map[K]V, key K, v V) {
	if _, ok := m[key]; !ok && len(m) >= knownMax {
		clear(m)
	}
	m[key] = v
}

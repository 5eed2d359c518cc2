package server

import (
	"context"
	"sync"

	"github.com/auditexport/auditexport/internal/store"
)

// knownMax bounds each of known's maps; past it, the map starts over.
const knownMax = 100_000

// known remembers the tokens and tenants the API has found, so that an
// ingest request, which names both, costs no store reads: with thousands of
// tenants posting small batches, those reads were a tenth of the agent's
// CPU (every commit empties the readers' page caches). Neither can go stale:
// a token or a tenant never changes or goes away once created (the store
// has no call for it). Only hits are kept, so a token or tenant created
// after a miss, by the CLI in another process too, is found at its first
// use. Revoking tokens, if it comes, must clear the entry here as well.
type known struct {
	mu      sync.RWMutex
	tokens  map[string]store.Token // by hash
	tenants map[int64]store.Tenant
	names   map[string]store.Tenant
}

func newKnown() *known {
	return &known{tokens: map[string]store.Token{}, tenants: map[int64]store.Tenant{}, names: map[string]store.Tenant{}}
}

// token is the token whose hash is hash.
func (k *known) token(ctx context.Context, st store.Store, hash []byte) (store.Token, error) {
	k.mu.RLock()
	t, ok := k.tokens[string(hash)]
	k.mu.RUnlock()
	if ok {
		return t, nil
	}
	t, err := st.TokenByHash(ctx, hash)
	if err != nil {
		return t, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	remember(k.tokens, string(hash), t)
	return t, nil
}

// tenantByID is the tenant whose id is id.
func (k *known) tenantByID(ctx context.Context, st store.Store, id int64) (store.Tenant, error) {
	k.mu.RLock()
	t, ok := k.tenants[id]
	k.mu.RUnlock()
	if ok {
		return t, nil
	}
	t, err := st.TenantByID(ctx, id)
	if err != nil {
		return t, err
	}
	k.add(t)
	return t, nil
}

// tenantByName is the tenant named name.
func (k *known) tenantByName(ctx context.Context, st store.Store, name string) (store.Tenant, error) {
	k.mu.RLock()
	t, ok := k.names[name]
	k.mu.RUnlock()
	if ok {
		return t, nil
	}
	t, err := st.TenantByName(ctx, name)
	if err != nil {
		return t, err
	}
	k.add(t)
	return t, nil
}

func (k *known) add(t store.Tenant) {
	k.mu.Lock()
	defer k.mu.Unlock()
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

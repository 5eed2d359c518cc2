// Package signing keeps the Ed25519 keys that sign the hourly digests. The
// keys live in the store, shared by every agent of it, with their private
// halves sealed by the same keyring as the destinations' secrets; their
// public halves are published (GET /v1/signing-keys) and never removed, so
// a digest signed years ago still verifies.
package signing

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/auditexport/auditexport/internal/digest"
	"github.com/auditexport/auditexport/internal/secrets"
	"github.com/auditexport/auditexport/internal/store"
)

// Keys reads, makes and opens the signing keys of a store.
type Keys struct {
	store store.DeliveryLog
	keys  *secrets.Keyring

	mu     sync.Mutex
	opened map[string]ed25519.PrivateKey // by key id
}

// New returns the signing keys of s, sealed and opened with keys.
func New(s store.DeliveryLog, keys *secrets.Keyring) *Keys {
	return &Keys{store: s, keys: keys, opened: map[string]ed25519.PrivateKey{}}
}

// aad binds a sealed private key to its key id.
func aad(keyID string) []byte { return []byte("auditexport signing key " + keyID) }

// Ensure makes the first signing key when the store has none, and returns
// the current key and whether it made one. Agents starting together make
// one key between them: the others find it. A current key sealed with a
// keyring key no longer current is replaced (rotated), so that the previous
// keyring key can be dropped from the configuration once every secret is
// re-sealed.
func (k *Keys) Ensure(ctx context.Context) (store.SigningKey, bool, error) {
	cur, err := k.current(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
		made, err := k.add(ctx, false)
		if errors.Is(err, store.ErrConflict) {
			// Another agent made it first.
			cur, err = k.current(ctx)
			return cur, false, err
		}
		return made, err == nil, err
	case err != nil:
		return store.SigningKey{}, false, err
	}
	var sealed secrets.Sealed
	if err := json.Unmarshal(cur.Private, &sealed); err != nil {
		return store.SigningKey{}, false, fmt.Errorf("signing key %s: the sealed private key is damaged: %w", cur.KeyID, err)
	}
	if sealed.KeyID != k.keys.CurrentID() {
		made, err := k.add(ctx, true)
		return made, err == nil, err
	}
	return cur, false, nil
}

// Rotate adds a new current key and retires the current one: it stays
// published, its validity ending now.
func (k *Keys) Rotate(ctx context.Context) (store.SigningKey, error) {
	return k.add(ctx, true)
}

// List returns every signing key, oldest first.
func (k *Keys) List(ctx context.Context) ([]store.SigningKey, error) {
	return k.store.SigningKeys(ctx)
}

// SigningKey returns the current private key. It reads the key list each
// call (one small query), so a rotation made by another agent or the
// signing-key command is used from the next digest on; a key is unsealed
// once per process.
func (k *Keys) SigningKey(ctx context.Context) (ed25519.PrivateKey, error) {
	cur, err := k.current(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errors.New("the store has no signing key: it is made when the agent starts")
	}
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	priv, ok := k.opened[cur.KeyID]
	k.mu.Unlock()
	if ok {
		return priv, nil
	}
	var sealed secrets.Sealed
	if err := json.Unmarshal(cur.Private, &sealed); err != nil {
		return nil, fmt.Errorf("signing key %s: the sealed private key is damaged: %w", cur.KeyID, err)
	}
	seed, err := k.keys.Open(ctx, sealed, aad(cur.KeyID))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", cur.KeyID, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %s: the private key is not an Ed25519 seed", cur.KeyID)
	}
	priv = ed25519.NewKeyFromSeed(seed)
	if digest.KeyID(priv.Public().(ed25519.PublicKey)) != cur.KeyID {
		return nil, fmt.Errorf("signing key %s: the private key does not match its id", cur.KeyID)
	}
	k.mu.Lock()
	k.opened[cur.KeyID] = priv
	k.mu.Unlock()
	return priv, nil
}

// current is the key without a NotAfter, or ErrNotFound.
func (k *Keys) current(ctx context.Context) (store.SigningKey, error) {
	ks, err := k.store.SigningKeys(ctx)
	if err != nil {
		return store.SigningKey{}, err
	}
	for i := len(ks) - 1; i >= 0; i-- {
		if ks[i].NotAfter.IsZero() {
			return ks[i], nil
		}
	}
	return store.SigningKey{}, fmt.Errorf("current signing key: %w", store.ErrNotFound)
}

// add makes a key, seals its private half and stores it as the current one.
func (k *Keys) add(ctx context.Context, rotate bool) (store.SigningKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return store.SigningKey{}, err
	}
	id := digest.KeyID(pub)
	sealed, err := k.keys.Seal(ctx, priv.Seed(), aad(id))
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("sealing signing key %s: %w", id, err)
	}
	data, err := json.Marshal(sealed)
	if err != nil {
		return store.SigningKey{}, err
	}
	return k.store.AddSigningKey(ctx, store.SigningKey{KeyID: id, PublicKey: pub, Private: data}, rotate)
}

// Published is the keys as GET /v1/signing-keys publishes them: every key
// ever used, oldest first, without its private half.
func Published(ks []store.SigningKey) digest.KeySet {
	set := digest.KeySet{Keys: make([]digest.PublicKey, 0, len(ks))}
	for _, k := range ks {
		var notAfter *time.Time
		if !k.NotAfter.IsZero() {
			t := k.NotAfter.UTC()
			notAfter = &t
		}
		set.Keys = append(set.Keys, digest.Published(ed25519.PublicKey(k.PublicKey), k.NotBefore, notAfter))
	}
	return set
}

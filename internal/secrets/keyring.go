// Package secrets seals the static secrets of destinations before they are
// stored, so that a copy of the database (a backup, a stolen disk) reveals
// none of the customers' AWS keys.
//
// Each secret is sealed with AES-256-GCM under its own random data key, and
// the data key is wrapped by a key-encryption key (KEK): a 32-byte key from
// a file or an environment variable, or an AWS KMS key. The sealed value
// records which KEK wrapped it, so that a rotation can find and re-seal
// every secret of the previous key.
package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// KEK is a key-encryption key: it makes and unwraps data keys.
type KEK interface {
	// ID names the key in sealed values, such as "local:3fa2b1c0d9e8f7a6"
	// or "kms:arn:aws:kms:…".
	ID() string
	// NewDataKey returns a fresh 32-byte data key and the key wrapped.
	NewDataKey(ctx context.Context) (plain, wrapped []byte, err error)
	// OpenDataKey unwraps a data key made by NewDataKey.
	OpenDataKey(ctx context.Context, wrapped []byte) ([]byte, error)
}

// Sealed is one sealed secret as it is stored.
type Sealed struct {
	// Algorithm is "aes-256-gcm"; it marks the value as sealed.
	Algorithm string `json:"sealed"`
	// KeyID is the ID of the KEK that wrapped DataKey.
	KeyID   string `json:"kek"`
	DataKey []byte `json:"dek"`
	Nonce   []byte `json:"nonce"`
	Data    []byte `json:"ct"`
}

const algorithm = "aes-256-gcm"

// ErrUnknownKey is returned for a secret sealed with a KEK the keyring does
// not have.
var ErrUnknownKey = errors.New("sealed with a key that is not configured")

// Keyring seals with its current KEK and opens with the current or a
// previous one.
type Keyring struct {
	current KEK
	byID    map[string]KEK
}

// NewKeyring returns a keyring that seals with current and also opens what
// the previous keys sealed.
func NewKeyring(current KEK, previous ...KEK) *Keyring {
	k := &Keyring{current: current, byID: map[string]KEK{current.ID(): current}}
	for _, p := range previous {
		k.byID[p.ID()] = p
	}
	return k
}

// Has reports whether the keyring can open what the KEK id sealed.
func (k *Keyring) Has(id string) bool {
	_, ok := k.byID[id]
	return ok
}

// CurrentID is the ID of the KEK new secrets are sealed with.
func (k *Keyring) CurrentID() string { return k.current.ID() }

// Seal encrypts plain under a new data key. aad binds the sealed value to
// its place (a destination's field): moved elsewhere it does not open.
func (k *Keyring) Seal(ctx context.Context, plain, aad []byte) (Sealed, error) {
	dek, wrapped, err := k.current.NewDataKey(ctx)
	if err != nil {
		return Sealed{}, fmt.Errorf("making a data key with %s: %w", k.current.ID(), err)
	}
	nonce, ct, err := gcmSeal(dek, plain, aad)
	if err != nil {
		return Sealed{}, err
	}
	return Sealed{Algorithm: algorithm, KeyID: k.current.ID(), DataKey: wrapped, Nonce: nonce, Data: ct}, nil
}

// Open decrypts a value Seal made with the same aad.
func (k *Keyring) Open(ctx context.Context, s Sealed, aad []byte) ([]byte, error) {
	if s.Algorithm != algorithm {
		return nil, fmt.Errorf("unknown sealing algorithm %q", s.Algorithm)
	}
	kek, ok := k.byID[s.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKey, s.KeyID)
	}
	dek, err := kek.OpenDataKey(ctx, s.DataKey)
	if err != nil {
		return nil, fmt.Errorf("unwrapping the data key with %s: %w", s.KeyID, err)
	}
	return gcmOpen(dek, s.Nonce, s.Data, aad)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("an AES-256 key has 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func gcmSeal(key, plain, aad []byte) (nonce, ct []byte, err error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, nil, err
	}
	nonce = make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	return nonce, aead.Seal(nil, nonce, plain, aad), nil
}

func gcmOpen(key, nonce, ct, aad []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(nonce) != aead.NonceSize() {
		return nil, errors.New("the sealed value is damaged (bad nonce)")
	}
	plain, err := aead.Open(nil, nonce, ct, aad)
	if err != nil {
		return nil, errors.New("the sealed value does not open: it was damaged, or moved from another destination")
	}
	return plain, nil
}

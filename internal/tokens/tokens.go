// Package tokens makes API tokens and tenant external ids, and hashes tokens
// for storage: the agent keeps only the SHA-256 of a token.
package tokens

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// New returns a fresh token with 256 bits of randomness. The scope is part of
// the token's text so that a leaked token is easy to recognise.
func New(scope string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return "aex_" + scope + "_" + base64.RawURLEncoding.EncodeToString(b)
}

// Hash is what the store keeps of a token.
func Hash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// NewExternalID returns a tenant's sts:ExternalId: 160 random bits, in the
// character set STS accepts.
func NewExternalID() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return "aex-" + hex.EncodeToString(b)
}

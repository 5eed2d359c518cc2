// Package digest is the format of the hourly integrity digests: what a digest
// says, where it is stored, the exact bytes that are signed, and how a reader
// checks a signature. The agent writes digests with it and `verify` reads them;
// docs/guides/digests.md describes the same format for readers in other
// languages, so a change here is a change of a published contract.
//
// A digest object is gzip-compressed text of exactly two lines, each ending
// in "\n":
//
//	{the digest document, as JSON}
//	{"algorithm":"Ed25519","key_id":"…","signature":"…"}
//
// The signature is Ed25519 over the bytes of the first line, without its
// newline. Signing the bytes as stored, rather than a canonical form of the
// JSON, lets any language verify a digest with its standard library: split at
// the first newline and check the signature of what comes before it.
package digest

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

const (
	// Version is the document's "format" value.
	Version = "auditexport-digest/1"
	// ContentType is the digest object's Content-Type. Its Content-Encoding
	// is gzip.
	ContentType = "application/vnd.auditexport.digest.v1+json"
	// ContentEncoding is the digest object's Content-Encoding.
	ContentEncoding = "gzip"
	// Algorithm is the only signature algorithm.
	Algorithm = "Ed25519"
	// Folder is where digests live under a destination's prefix. Key
	// templates may not start with "_auditexport", so no data object can
	// take a digest's key, and SIEM rules can skip the folder whole.
	Folder = "_auditexport/digests/"
	// MaxBytes bounds a digest's decompressed size when reading one: a
	// digest lists one hour's objects, a few hundred bytes each.
	MaxBytes = 64 << 20
)

// Chain start reasons: why a digest has no previous digest.
const (
	// StartCreated is the first digest of a destination: the hour it was
	// created in.
	StartCreated = "created"
	// StartLocationChanged is the first digest after the destination's
	// bucket or prefix changed; the previous chain ends in the old place.
	StartLocationChanged = "location_changed"
)

// Document is what a digest says about one UTC hour of one destination.
type Document struct {
	Format        string    `json:"format"`
	DestinationID string    `json:"destination_id"`
	Tenant        string    `json:"tenant"`
	Bucket        string    `json:"bucket"`
	Prefix        string    `json:"prefix"`
	HourStart     time.Time `json:"hour_start"`
	HourEnd       time.Time `json:"hour_end"`
	// CreatedAt is when the digest was made; it falls inside the validity
	// window of the key that signed it.
	CreatedAt time.Time `json:"created_at"`
	// FirstSeq..LastSeq is the range of the tenant's sequence numbers that
	// the hour's deliveries moved the destination's cursor over; NextSeq is
	// the first one the next digest covers (LastSeq+1). An hour with no
	// delivery has LastSeq = FirstSeq-1. Consecutive digests join without a
	// gap or an overlap: one's NextSeq is the next one's FirstSeq.
	FirstSeq int64 `json:"first_seq"`
	LastSeq  int64 `json:"last_seq"`
	NextSeq  int64 `json:"next_seq"`
	// Filtered is true when the destination exports only some event names:
	// its objects then need not cover every sequence number of the range.
	Filtered bool `json:"filtered"`
	// Objects are the objects committed in the hour, in commit order.
	Objects []Object `json:"objects"`
	// Previous links to the digest before this one; nil when this digest
	// starts a chain, and then ChainStart says why.
	Previous   *Link       `json:"previous"`
	ChainStart *ChainStart `json:"chain_start,omitempty"`
	// SigningKeyID names the key whose signature follows the document.
	SigningKeyID string `json:"signing_key_id"`
}

// Object is one delivered object as committed.
type Object struct {
	Key string `json:"key"`
	// SHA256 is the lowercase hex SHA-256 of the object's bytes as stored
	// (compressed, when the destination compresses).
	SHA256          string    `json:"sha256"`
	Size            int64     `json:"size"`
	Events          int64     `json:"events"`
	FirstSeq        int64     `json:"first_seq"`
	LastSeq         int64     `json:"last_seq"`
	OldestEventTime time.Time `json:"oldest_event_time"`
	NewestEventTime time.Time `json:"newest_event_time"`
	CommittedAt     time.Time `json:"committed_at"`
}

// Link identifies the previous digest of the chain.
type Link struct {
	Key string `json:"key"`
	// SHA256 is the lowercase hex SHA-256 of the previous digest object's
	// bytes as stored (gzip).
	SHA256       string `json:"sha256"`
	Signature    string `json:"signature"` // base64, as in its signature line
	SigningKeyID string `json:"signing_key_id"`
}

// ChainStart says why a digest starts a chain.
type ChainStart struct {
	Reason string `json:"reason"` // StartCreated or StartLocationChanged
	Detail string `json:"detail,omitempty"`
}

// Signature is a digest's second line.
type Signature struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"` // base64 (standard, padded) of the 64-byte signature
}

// Encoded is a digest ready to store.
type Encoded struct {
	Body      []byte // the object's bytes (gzip)
	SHA256    string // lowercase hex of Body
	Signature string // base64, as in the signature line
	KeyID     string
}

// Link is the link the next digest makes to this one.
func (e Encoded) Link(key string) *Link {
	return &Link{Key: key, SHA256: e.SHA256, Signature: e.Signature, SigningKeyID: e.KeyID}
}

// KeyID names a public key: the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Encode signs doc with priv and returns the object to store. It sets
// doc.Format and doc.SigningKeyID.
func Encode(doc Document, priv ed25519.PrivateKey) (Encoded, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return Encoded{}, errors.New("digest: signing key is not an Ed25519 private key")
	}
	keyID := KeyID(priv.Public().(ed25519.PublicKey))
	doc.Format, doc.SigningKeyID = Version, keyID
	if doc.Objects == nil {
		doc.Objects = []Object{} // "objects": [] rather than null
	}
	line, err := json.Marshal(doc)
	if err != nil {
		return Encoded{}, fmt.Errorf("digest: encode document: %w", err)
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, line))
	sigLine, err := json.Marshal(Signature{Algorithm: Algorithm, KeyID: keyID, Signature: sig})
	if err != nil {
		return Encoded{}, fmt.Errorf("digest: encode signature: %w", err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, l := range [][]byte{line, {'\n'}, sigLine, {'\n'}} {
		if _, err := zw.Write(l); err != nil {
			return Encoded{}, err
		}
	}
	if err := zw.Close(); err != nil {
		return Encoded{}, err
	}
	sum := sha256.Sum256(buf.Bytes())
	return Encoded{Body: buf.Bytes(), SHA256: hex.EncodeToString(sum[:]), Signature: sig, KeyID: keyID}, nil
}

// Parsed is a digest read back.
type Parsed struct {
	Document  Document
	Signature Signature
	Signed    []byte // the first line: the bytes the signature covers
	SHA256    string // lowercase hex of the object's stored bytes
}

// Decode reads a digest object's stored bytes. It checks the shape (two
// lines, known format and algorithm), not the signature: see Verify.
func Decode(body []byte) (Parsed, error) {
	sum := sha256.Sum256(body)
	p := Parsed{SHA256: hex.EncodeToString(sum[:])}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return p, fmt.Errorf("not a gzip stream: %w", err)
	}
	plain, err := io.ReadAll(io.LimitReader(zr, MaxBytes+1))
	if err != nil {
		return p, fmt.Errorf("decompress: %w", err)
	}
	if len(plain) > MaxBytes {
		return p, fmt.Errorf("larger than %d bytes decompressed", MaxBytes)
	}
	docLine, rest, ok := bytes.Cut(plain, []byte{'\n'})
	sigLine, tail, ok2 := bytes.Cut(rest, []byte{'\n'})
	if !ok || !ok2 || len(tail) != 0 {
		return p, errors.New("want exactly two lines (the document, then its signature), each ending in a newline")
	}
	if err := json.Unmarshal(docLine, &p.Document); err != nil {
		return p, fmt.Errorf("document line: %w", err)
	}
	if err := json.Unmarshal(sigLine, &p.Signature); err != nil {
		return p, fmt.Errorf("signature line: %w", err)
	}
	p.Signed = docLine
	switch {
	case p.Document.Format != Version:
		return p, fmt.Errorf("format %q, want %q", p.Document.Format, Version)
	case p.Signature.Algorithm != Algorithm:
		return p, fmt.Errorf("signature algorithm %q, want %q", p.Signature.Algorithm, Algorithm)
	case p.Signature.KeyID != p.Document.SigningKeyID:
		return p, fmt.Errorf("signature line names key %q, the document key %q", p.Signature.KeyID, p.Document.SigningKeyID)
	}
	return p, nil
}

// Verify checks the signature with pub, which must be the key the digest
// names.
func (p Parsed) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("public key is not an Ed25519 key")
	}
	if id := KeyID(pub); id != p.Signature.KeyID {
		return fmt.Errorf("signed with key %s, not %s", p.Signature.KeyID, id)
	}
	sig, err := base64.StdEncoding.DecodeString(p.Signature.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("signature is not 64 bytes of base64")
	}
	if !ed25519.Verify(pub, p.Signed, sig) {
		return fmt.Errorf("signature does not match key %s", p.Signature.KeyID)
	}
	return nil
}

// Link is the link the next digest makes to this one, stored at key.
func (p Parsed) Link(key string) *Link {
	return &Link{Key: key, SHA256: p.SHA256, Signature: p.Signature.Signature, SigningKeyID: p.Signature.KeyID}
}

// FolderFor is where a destination's digests are under prefix:
// "{prefix}/_auditexport/digests/{destination}/". With destination "" it is
// the folder of every destination's digests.
func FolderFor(prefix, destinationID string) string {
	f := Folder
	if destinationID != "" {
		f += destinationID + "/"
	}
	if prefix = strings.TrimSuffix(prefix, "/"); prefix != "" {
		f = prefix + "/" + f
	}
	return f
}

// Key is the digest's object key for hour (truncated to the UTC hour):
// "{prefix}/_auditexport/digests/{destination}/{yyyy}/{mm}/{dd}/{destination}_{yyyymmdd}T{hh}Z.json.gz".
// Keys sort in time order within a destination's folder.
func Key(prefix, destinationID string, hour time.Time) string {
	h := hour.UTC().Truncate(time.Hour)
	return FolderFor(prefix, destinationID) + h.Format("2006/01/02/") + destinationID + "_" + h.Format("20060102T15Z") + ".json.gz"
}

// ParseKey is Key's inverse: the destination and hour of a digest key under
// prefix, ok false when key is not one.
func ParseKey(prefix, key string) (destinationID string, hour time.Time, ok bool) {
	rest, found := strings.CutPrefix(key, FolderFor(prefix, ""))
	if !found {
		return "", time.Time{}, false
	}
	dest, rest, found := strings.Cut(rest, "/")
	if !found || dest == "" || len(rest) < len("2006/01/02/") {
		return "", time.Time{}, false
	}
	name := rest[len("2006/01/02/"):]
	stamp, found := strings.CutPrefix(name, dest+"_")
	if !found {
		return "", time.Time{}, false
	}
	stamp, found = strings.CutSuffix(stamp, ".json.gz")
	if !found {
		return "", time.Time{}, false
	}
	h, err := time.Parse("20060102T15Z", stamp)
	if err != nil || Key(prefix, dest, h) != key {
		return "", time.Time{}, false
	}
	return dest, h, true
}

// PublicKey is a published verification key.
type PublicKey struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`
	// PublicKey is base64 (standard, padded) of the 32-byte Ed25519 key.
	PublicKey string `json:"public_key"`
	// NotBefore and NotAfter bound the digests' CreatedAt the key may sign;
	// NotAfter is nil for the current key. A key is retired, never removed.
	NotBefore time.Time  `json:"not_before"`
	NotAfter  *time.Time `json:"not_after"`
}

// KeySet is the published keys, as GET /v1/signing-keys returns them.
type KeySet struct {
	Keys []PublicKey `json:"keys"`
}

// RotationGrace is how long after a key's NotAfter a digest it signed still
// counts as in its window: an agent that read the keys just before a
// rotation may sign with the old key for a moment after it.
const RotationGrace = 5 * time.Minute

// ParseKeySet reads a published key set and checks every key.
func ParseKeySet(data []byte) (KeySet, error) {
	var ks KeySet
	if err := json.Unmarshal(data, &ks); err != nil {
		return ks, fmt.Errorf("signing keys: %w", err)
	}
	for i, k := range ks.Keys {
		pub, err := k.Ed25519()
		if err != nil {
			return ks, fmt.Errorf("signing keys: keys[%d]: %w", i, err)
		}
		if KeyID(pub) != k.KeyID {
			return ks, fmt.Errorf("signing keys: keys[%d]: key_id %q does not match its key (%s)", i, k.KeyID, KeyID(pub))
		}
	}
	return ks, nil
}

// Ed25519 decodes the key.
func (k PublicKey) Ed25519() (ed25519.PublicKey, error) {
	if k.Algorithm != Algorithm {
		return nil, fmt.Errorf("algorithm %q, want %q", k.Algorithm, Algorithm)
	}
	raw, err := base64.StdEncoding.DecodeString(k.PublicKey)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, errors.New("public_key is not 32 bytes of base64")
	}
	return ed25519.PublicKey(raw), nil
}

// Published returns the published form of pub, valid from notBefore.
func Published(pub ed25519.PublicKey, notBefore time.Time, notAfter *time.Time) PublicKey {
	return PublicKey{KeyID: KeyID(pub), Algorithm: Algorithm,
		PublicKey: base64.StdEncoding.EncodeToString(pub), NotBefore: notBefore.UTC(), NotAfter: notAfter}
}

// Check verifies p's signature with the key it names, and that the key was
// valid when p was created.
func (ks KeySet) Check(p Parsed) error {
	for _, k := range ks.Keys {
		if k.KeyID != p.Signature.KeyID {
			continue
		}
		pub, err := k.Ed25519()
		if err != nil {
			return err
		}
		if err := p.Verify(pub); err != nil {
			return err
		}
		at := p.Document.CreatedAt
		if at.Before(k.NotBefore.Add(-RotationGrace)) || (k.NotAfter != nil && at.After(k.NotAfter.Add(RotationGrace))) {
			return fmt.Errorf("created at %s, outside the validity of key %s", at.Format(time.RFC3339), k.KeyID)
		}
		return nil
	}
	return fmt.Errorf("signed with key %s, which is not among the published keys", p.Signature.KeyID)
}

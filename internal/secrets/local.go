package secrets

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
)

// localKey is a KEK held in memory: from a file or an environment variable.
type localKey struct {
	id  string
	key []byte
}

// wrapAAD binds wrapped data keys to their use.
var wrapAAD = []byte("auditexport data key")

// NewLocalKey returns a KEK for a 32-byte key.
func NewLocalKey(key []byte) (KEK, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("the key has %d bytes, want 32", len(key))
	}
	sum := sha256.Sum256(append([]byte("auditexport kek id\x00"), key...))
	return &localKey{id: "local:" + hex.EncodeToString(sum[:8]), key: append([]byte(nil), key...)}, nil
}

func (k *localKey) ID() string { return k.id }

func (k *localKey) NewDataKey(context.Context) (plain, wrapped []byte, err error) {
	plain = make([]byte, 32)
	if _, err := rand.Read(plain); err != nil {
		return nil, nil, err
	}
	nonce, ct, err := gcmSeal(k.key, plain, wrapAAD)
	if err != nil {
		return nil, nil, err
	}
	return plain, append(nonce, ct...), nil
}

func (k *localKey) OpenDataKey(_ context.Context, wrapped []byte) ([]byte, error) {
	const nonceSize = 12
	if len(wrapped) < nonceSize {
		return nil, errors.New("the wrapped data key is damaged")
	}
	return gcmOpen(k.key, wrapped[:nonceSize], wrapped[nonceSize:], wrapAAD)
}

// keyHint tells how to make a key in the expected form.
const keyHint = `a base64-encoded 32-byte key, such as "openssl rand -base64 32" prints`

// parseKey decodes a base64 32-byte key; surrounding space is ignored.
func parseKey(s string) (KEK, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("must hold %s", keyHint)
	}
	return NewLocalKey(raw)
}

// KeyFromFile reads a KEK from a file, which others must not be able to read.
func KeyFromFile(path string) (KEK, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("%s can be read or written by others (mode %04o): run `chmod 600 %s`", path, info.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := parseKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s %w", path, err)
	}
	return k, nil
}

// KeyFromEnv reads a KEK from the environment variable name.
func KeyFromEnv(name string) (KEK, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return nil, fmt.Errorf("the environment variable %s is not set: set it to %s", name, keyHint)
	}
	k, err := parseKey(v)
	if err != nil {
		return nil, fmt.Errorf("the environment variable %s %w", name, err)
	}
	return k, nil
}

// GenerateKeyFile writes a new random key to path (mode 0600) unless the
// file exists, and returns the key in it. created tells whether it was
// made now.
func GenerateKeyFile(path string) (k KEK, created bool, err error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		k, err := KeyFromFile(path)
		return k, false, err
	}
	if err != nil {
		return nil, false, err
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		_ = os.Remove(path)
		return nil, false, fmt.Errorf("writing %s: %w", path, err)
	}
	k, err = NewLocalKey(raw)
	return k, true, err
}

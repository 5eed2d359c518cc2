package secrets

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditexport/auditexport/internal/api"
)

func newKey(t *testing.T) KEK {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	k, err := NewLocalKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

func specJSON(t *testing.T, secret string) []byte {
	t.Helper()
	data, err := json.Marshal(api.DestinationSpec{Bucket: "acme-audit", Region: "us-east-1", AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: secret})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSealOpen(t *testing.T) {
	ctx := context.Background()
	a, b := newKey(t), newKey(t)
	ring := NewKeyring(a)
	s, err := ring.Seal(ctx, []byte(secret), []byte("here"))
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyID != a.ID() || bytes.Contains(s.Data, []byte(secret)) {
		t.Fatalf("sealed = %+v", s)
	}
	// Two seals of the same secret share neither data key nor ciphertext.
	s2, _ := ring.Seal(ctx, []byte(secret), []byte("here"))
	if bytes.Equal(s.DataKey, s2.DataKey) || bytes.Equal(s.Data, s2.Data) {
		t.Error("two seals of one secret are alike")
	}
	tests := []struct {
		name    string
		ring    *Keyring
		sealed  func() Sealed
		aad     string
		wantErr string
	}{
		{"opens", ring, func() Sealed { return s }, "here", ""},
		{"opens with the key as a previous one", NewKeyring(b, a), func() Sealed { return s }, "here", ""},
		{"elsewhere", ring, func() Sealed { return s }, "there", "moved from another destination"},
		{"unknown key", NewKeyring(b), func() Sealed { return s }, "here", "not configured: " + a.ID()},
		{"damaged", ring, func() Sealed { d := s; d.Data = append([]byte{}, s.Data...); d.Data[0] ^= 1; return d }, "here", "damaged"},
		{"other algorithm", ring, func() Sealed { d := s; d.Algorithm = "rot13"; return d }, "here", "unknown sealing algorithm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ring.Open(ctx, tt.sealed(), []byte(tt.aad))
			if tt.wantErr == "" {
				if err != nil || string(got) != secret {
					t.Fatalf("Open = %q, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Open error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestSealSpec(t *testing.T) {
	ctx := context.Background()
	ring := NewKeyring(newKey(t))
	plain := specJSON(t, secret)
	stored, err := ring.SealSpec(ctx, "dst_1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte(secret)) || !bytes.Contains(stored, []byte("acme-audit")) {
		t.Fatalf("stored spec %s", stored)
	}
	// Read without opening, the spec does not decode: a sealed value can
	// never be taken for the secret.
	var spec api.DestinationSpec
	if json.Unmarshal(stored, &spec) == nil {
		t.Fatal("a sealed spec decoded as a DestinationSpec")
	}
	again, err := ring.SealSpec(ctx, "dst_1", stored)
	if err != nil || !bytes.Equal(again, stored) {
		t.Fatalf("sealing a sealed spec changed it: %v", err)
	}
	opened, err := ring.OpenSpec(ctx, "dst_1", stored)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(opened, &spec); err != nil || spec.SecretAccessKey != secret || spec.Bucket != "acme-audit" {
		t.Fatalf("opened spec %s: %v", opened, err)
	}
	if _, err := ring.OpenSpec(ctx, "dst_2", stored); err == nil {
		t.Fatal("a secret copied to another destination opened")
	}
	// Specs without a secret pass through both ways.
	for _, s := range [][]byte{specJSON(t, ""), []byte(`{"bucket":"b","role_arn":"arn:aws:iam::1:role/r"}`), nil} {
		for name, f := range map[string]func(context.Context, string, []byte) ([]byte, error){"seal": ring.SealSpec, "open": ring.OpenSpec} {
			if got, err := f(ctx, "dst_1", s); err != nil || !bytes.Equal(got, s) {
				t.Errorf("%s of %s = %s, %v", name, s, got, err)
			}
		}
	}
}

func TestKeySources(t *testing.T) {
	dir := t.TempDir()
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.key", key+"\n", 0o600)
	short := write("short.key", base64.StdEncoding.EncodeToString([]byte("short")), 0o600)
	open := write("open.key", key, 0o644)
	t.Setenv("TEST_SECRETS_KEY", key)
	t.Setenv("TEST_SECRETS_BAD", "not base64!")

	fromGood, err := KeyFromFile(good)
	if err != nil {
		t.Fatal(err)
	}
	fromEnv, err := KeyFromEnv("TEST_SECRETS_KEY")
	if err != nil {
		t.Fatal(err)
	}
	if fromGood.ID() != fromEnv.ID() || !strings.HasPrefix(fromGood.ID(), "local:") {
		t.Fatalf("one key, two ids: %s %s", fromGood.ID(), fromEnv.ID())
	}
	if strings.Contains(fromGood.ID(), key[:8]) {
		t.Fatal("the key id shows the key")
	}
	errs := []struct {
		name string
		load func() (KEK, error)
		want string
	}{
		{"short file", func() (KEK, error) { return KeyFromFile(short) }, "openssl rand -base64 32"},
		{"file others can read", func() (KEK, error) { return KeyFromFile(open) }, "chmod 600 " + open},
		{"missing file", func() (KEK, error) { return KeyFromFile(filepath.Join(dir, "nope")) }, "nope"},
		{"unset variable", func() (KEK, error) { return KeyFromEnv("TEST_SECRETS_UNSET") }, "TEST_SECRETS_UNSET is not set"},
		{"bad variable", func() (KEK, error) { return KeyFromEnv("TEST_SECRETS_BAD") }, "TEST_SECRETS_BAD must hold a base64-encoded 32-byte key"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.load(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestGenerateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), GeneratedKeyFile)
	k1, created, err := GenerateKeyFile(path)
	if err != nil || !created {
		t.Fatalf("first GenerateKeyFile: created %v, %v", created, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", info.Mode().Perm())
	}
	k2, created, err := GenerateKeyFile(path)
	if err != nil || created || k2.ID() != k1.ID() {
		t.Fatalf("second GenerateKeyFile: created %v, ids %s %s, %v", created, k1.ID(), k2.ID(), err)
	}
}

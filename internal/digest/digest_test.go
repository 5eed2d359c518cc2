package digest

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func sampleDoc() Document {
	h := time.Date(2026, 12, 1, 13, 0, 0, 0, time.UTC)
	return Document{
		DestinationID: "d1", Tenant: "acme", Bucket: "b", Prefix: "logs",
		HourStart: h, HourEnd: h.Add(time.Hour), CreatedAt: h.Add(61 * time.Minute),
		FirstSeq: 11, LastSeq: 20, NextSeq: 21,
		Objects: []Object{{Key: "logs/x", SHA256: strings.Repeat("ab", 32), Size: 5, Events: 10,
			FirstSeq: 11, LastSeq: 20, CommittedAt: h.Add(time.Minute)}},
		ChainStart: &ChainStart{Reason: StartCreated},
	}
}

func TestEncodeDecodeVerify(t *testing.T) {
	pub, priv := newKey(t)
	enc, err := Encode(sampleDoc(), priv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Decode(enc.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(pub); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.SHA256 != enc.SHA256 || p.Signature.Signature != enc.Signature || p.Document.SigningKeyID != KeyID(pub) {
		t.Errorf("parsed %+v does not match encoded %+v", p, enc)
	}
	if p.Document.Format != Version || p.Document.NextSeq != 21 || len(p.Document.Objects) != 1 {
		t.Errorf("document = %+v", p.Document)
	}
	if *p.Link("k") != *enc.Link("k") {
		t.Errorf("links differ: %+v vs %+v", p.Link("k"), enc.Link("k"))
	}
	other, _ := newKey(t)
	if err := p.Verify(other); err == nil {
		t.Error("Verify with another key succeeded")
	}
}

// A digest changed after signing, in the document or by re-signing with
// another key under the same key id, fails verification.
func TestVerifyDetectsChanges(t *testing.T) {
	pub, priv := newKey(t)
	enc, err := Encode(sampleDoc(), priv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Decode(enc.Body)
	if err != nil {
		t.Fatal(err)
	}
	tampered := p
	tampered.Signed = bytes.Replace(p.Signed, []byte(`"events":10`), []byte(`"events":11`), 1)
	if bytes.Equal(tampered.Signed, p.Signed) {
		t.Fatal("test did not change the document")
	}
	if err := tampered.Verify(pub); err == nil {
		t.Error("a changed document verified")
	}
	_, priv2 := newKey(t)
	doc := sampleDoc()
	enc2, err := Encode(doc, priv2)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Decode(enc2.Body)
	if err != nil {
		t.Fatal(err)
	}
	p2.Signature.KeyID = KeyID(pub) // claims the first key
	if err := p2.Verify(pub); err == nil {
		t.Error("a digest signed by another key verified under the first key's id")
	}
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeRejects(t *testing.T) {
	_, priv := newKey(t)
	enc, err := Encode(sampleDoc(), priv)
	if err != nil {
		t.Fatal(err)
	}
	good, err := Decode(enc.Body)
	if err != nil {
		t.Fatal(err)
	}
	sigLine, _ := json.Marshal(good.Signature)
	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"not gzip", []byte("{}\n{}\n"), "not a gzip stream"},
		{"one line", gz(t, string(good.Signed)+"\n"), "exactly two lines"},
		{"no final newline", gz(t, string(good.Signed)+"\n"+string(sigLine)), "exactly two lines"},
		{"three lines", gz(t, string(good.Signed)+"\n"+string(sigLine)+"\n{}\n"), "exactly two lines"},
		{"bad document", gz(t, "{\n"+string(sigLine)+"\n"), "document line"},
		{"other format", gz(t, strings.Replace(string(good.Signed), Version, "x/9", 1)+"\n"+string(sigLine)+"\n"), "format"},
		{"other algorithm", gz(t, string(good.Signed)+"\n"+strings.Replace(string(sigLine), Algorithm, "RSA", 1)+"\n"), "algorithm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.body)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestKeyRoundTrip(t *testing.T) {
	h := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct{ prefix, want string }{
		{"", "_auditexport/digests/d-1/2026/03/04/d-1_20260304T05Z.json.gz"},
		{"logs", "logs/_auditexport/digests/d-1/2026/03/04/d-1_20260304T05Z.json.gz"},
		{"logs/", "logs/_auditexport/digests/d-1/2026/03/04/d-1_20260304T05Z.json.gz"},
		{"a/b", "a/b/_auditexport/digests/d-1/2026/03/04/d-1_20260304T05Z.json.gz"},
	}
	for _, tt := range tests {
		key := Key(tt.prefix, "d-1", h)
		if key != tt.want {
			t.Errorf("Key(%q) = %q, want %q", tt.prefix, key, tt.want)
		}
		dest, hour, ok := ParseKey(tt.prefix, key)
		if !ok || dest != "d-1" || !hour.Equal(h.Truncate(time.Hour)) {
			t.Errorf("ParseKey(%q) = %q, %v, %v", key, dest, hour, ok)
		}
	}
	for _, bad := range []string{
		"logs/x.json.gz",
		"logs/_auditexport/digests/d-1/2026/03/04/d-2_20260304T05Z.json.gz",
		"logs/_auditexport/digests/d-1/2026/03/05/d-1_20260304T05Z.json.gz",
		"logs/_auditexport/digests/d-1/2026/03/04/d-1_20260304T05Z.json",
		"logs/_auditexport/connection-test-1",
	} {
		if _, _, ok := ParseKey("logs", bad); ok {
			t.Errorf("ParseKey(%q) accepted it", bad)
		}
	}
}

func TestKeySetCheck(t *testing.T) {
	pub1, priv1 := newKey(t)
	pub2, priv2 := newKey(t)
	rotated := time.Date(2026, 12, 1, 14, 30, 0, 0, time.UTC)
	ks := KeySet{Keys: []PublicKey{
		Published(pub1, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), &rotated),
		Published(pub2, rotated, nil),
	}}
	data, err := json.Marshal(ks)
	if err != nil {
		t.Fatal(err)
	}
	if ks, err = ParseKeySet(data); err != nil {
		t.Fatal(err)
	}
	sign := func(priv ed25519.PrivateKey, at time.Time) Parsed {
		doc := sampleDoc()
		doc.CreatedAt = at
		enc, err := Encode(doc, priv)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Decode(enc.Body)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, stranger := newKey(t)
	tests := []struct {
		name string
		p    Parsed
		want string // "" for valid
	}{
		{"old key before rotation", sign(priv1, rotated.Add(-time.Hour)), ""},
		{"old key just after rotation", sign(priv1, rotated.Add(time.Minute)), ""},
		{"old key long after rotation", sign(priv1, rotated.Add(time.Hour)), "outside the validity"},
		{"new key after rotation", sign(priv2, rotated.Add(time.Hour)), ""},
		{"unpublished key", sign(stranger, rotated), "not among the published keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ks.Check(tt.p)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Check = %v, want %q", err, tt.want)
			}
		})
	}
	bad := strings.Replace(string(data), ks.Keys[0].KeyID, "0000000000000000", 1)
	if _, err := ParseKeySet([]byte(bad)); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("ParseKeySet with a wrong key id = %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	_, priv := newKey(f)
	enc, err := Encode(sampleDoc(), priv)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc.Body)
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := Decode(body)
		if err != nil {
			return
		}
		if p.Document.Format != Version || p.Signature.KeyID != p.Document.SigningKeyID {
			t.Fatalf("Decode accepted %+v", p)
		}
	})
}

func FuzzParseKey(f *testing.F) {
	f.Add("logs", Key("logs", "d", time.Unix(0, 0)))
	f.Add("", "_auditexport/digests/x/1970/01/01/x_19700101T00Z.json.gz")
	f.Fuzz(func(t *testing.T, prefix, key string) {
		dest, hour, ok := ParseKey(prefix, key)
		if ok && Key(prefix, dest, hour) != key {
			t.Fatalf("ParseKey(%q, %q) = %q %v but Key gives %q", prefix, key, dest, hour, Key(prefix, dest, hour))
		}
	})
}

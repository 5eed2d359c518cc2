package tokens

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

func TestNewIsUniqueAndScoped(t *testing.T) {
	a, b := New("ingest"), New("ingest")
	if a == b {
		t.Fatal("two tokens are equal")
	}
	if !strings.HasPrefix(a, "aex_ingest_") || len(a) < 40 {
		t.Fatalf("token %q lacks its scope prefix or randomness", a)
	}
	if bytes.Equal(Hash(a), Hash(b)) || len(Hash(a)) != 32 {
		t.Fatal("hashes must differ and be SHA-256 sized")
	}
}

func TestExternalID(t *testing.T) {
	id := NewExternalID()
	// sts:ExternalId allows [\w+=,.@:/-]{2,1224}; 40 hex digits = 160 bits.
	if !regexp.MustCompile(`^aex-[0-9a-f]{40}$`).MatchString(id) {
		t.Fatalf("external id %q has the wrong shape", id)
	}
	if id == NewExternalID() {
		t.Fatal("external ids repeat")
	}
}

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/auditexport/auditexport/internal/digest"
	"github.com/auditexport/auditexport/internal/testenv"
)

// The agent makes its signing key at the first start; signing-key rotate
// adds a current key while it runs, and the agent publishes both, without
// a token, and in the tenant's identity.
func TestSigningKeyRotate(t *testing.T) {
	a := testenv.NewAgentWithOptions(t, testenv.StartMoto(t), testenv.AgentOptions{Tick: "1h"})
	_, manage := a.Tenant(t, "acme")

	list := func() []string {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(a.CLI(t, "signing-key", "list")), "\n")
		return lines[1:] // the header
	}
	first := list()
	if len(first) != 1 || !strings.Contains(first[0], "(current)") {
		t.Fatalf("signing-key list after the first start = %q, want one current key", first)
	}
	out := a.CLI(t, "signing-key", "rotate")
	if !strings.Contains(out, "is current from") {
		t.Fatalf("signing-key rotate printed %q", out)
	}
	second := list()
	if len(second) != 2 || strings.Contains(second[0], "(current)") || !strings.Contains(second[1], "(current)") ||
		strings.Fields(second[0])[0] != strings.Fields(first[0])[0] {
		t.Fatalf("signing-key list after a rotation = %q, want the first key retired, a new one current", second)
	}

	resp, err := http.Get(a.Endpoint + "/v1/signing-keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/signing-keys without a token: %d, %v", resp.StatusCode, err)
	}
	set, err := digest.ParseKeySet(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 || set.Keys[0].NotAfter == nil || set.Keys[1].NotAfter != nil ||
		set.Keys[0].KeyID != strings.Fields(first[0])[0] {
		t.Errorf("published keys = %s, want the listed two, the first retired", raw)
	}
	id, err := a.Client(t, manage).Identity(context.Background())
	if err != nil || len(id.SigningKeys) != 2 || id.SigningKeys[1].KeyID != set.Keys[1].KeyID {
		t.Errorf("identity signing_keys = %+v, %v; want the published keys", id.SigningKeys, err)
	}
}

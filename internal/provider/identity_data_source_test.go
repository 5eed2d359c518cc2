package provider

import (
	"context"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// TestAccIdentityDataSource reads the identity from a real agent: the
// tenant of the token, its external id and the agent's delivery principal.
func TestAccIdentityDataSource(t *testing.T) {
	env := newAccEnv(t, "acme")
	const addr = "data.auditexport_identity.this"
	// The agent made its signing key at start; GET /v1/signing-keys
	// (no token) publishes the same keys the data source must show.
	keys, err := env.Agent.Client(t, "").SigningKeys(context.Background())
	if err != nil || len(keys.Keys) != 1 {
		t.Fatalf("GET /v1/signing-keys = %+v, %v; want the agent's one key", keys, err)
	}
	key := tfjsonpath.New("signing_keys").AtSliceIndex(0)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: `data "auditexport_identity" "this" {}`,
			ConfigStateChecks: []statecheck.StateCheck{
				expectString(addr, "tenant", env.Tenant),
				expectString(addr, "external_id", env.ExternalID),
				expectString(addr, "principal_arn", env.Agent.PrincipalARN),
				statecheck.ExpectKnownValue(addr, tfjsonpath.New("signing_keys"), knownvalue.ListSizeExact(1)),
				statecheck.ExpectKnownValue(addr, key.AtMapKey("key_id"), knownvalue.StringExact(keys.Keys[0].KeyID)),
				statecheck.ExpectKnownValue(addr, key.AtMapKey("algorithm"), knownvalue.StringExact("Ed25519")),
				statecheck.ExpectKnownValue(addr, key.AtMapKey("public_key"), knownvalue.StringExact(keys.Keys[0].PublicKey)),
				statecheck.ExpectKnownValue(addr, key.AtMapKey("not_before"),
					knownvalue.StringExact(keys.Keys[0].NotBefore.UTC().Format(time.RFC3339))),
				statecheck.ExpectKnownValue(addr, key.AtMapKey("not_after"), knownvalue.Null()),
			},
		}},
	})
}

// TestAccIdentityDataSource_agentError shows the agent's own message when
// it refuses the request.
func TestAccIdentityDataSource_agentError(t *testing.T) {
	newFakeAgent(t, http.StatusUnauthorized, `{"error":{"code":"unauthorized","message":"token revoked"}}`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      `data "auditexport_identity" "this" {}`,
			ExpectError: regexp.MustCompile(`Cannot read the tenant's identity[\s\S]*token revoked`),
		}},
	})
}

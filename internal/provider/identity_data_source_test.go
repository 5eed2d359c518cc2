package provider

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
)

// TestAccIdentityDataSource reads the identity from a real agent: the
// tenant of the token, its external id and the agent's delivery principal.
func TestAccIdentityDataSource(t *testing.T) {
	env := newAccEnv(t, "acme")
	const addr = "data.auditexport_identity.this"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: `data "auditexport_identity" "this" {}`,
			ConfigStateChecks: []statecheck.StateCheck{
				expectString(addr, "tenant", env.Tenant),
				expectString(addr, "external_id", env.ExternalID),
				expectString(addr, "principal_arn", env.Agent.PrincipalARN),
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

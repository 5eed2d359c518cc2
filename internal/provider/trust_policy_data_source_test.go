package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/auditexport/auditexport/internal/policy"
)

const otherPrincipal = "arn:aws:iam::111122223333:role/other-delivery"

// TestAccTrustPolicyDataSource_defaults: unset inputs come from the agent's
// identity, one at a time or both, and give the same document as explicit
// inputs copied from auditexport_identity.
func TestAccTrustPolicyDataSource_defaults(t *testing.T) {
	env := newAccEnv(t, "acme")
	want := policy.TrustPolicy(env.Agent.PrincipalARN, env.ExternalID)
	checks := append(expectDocument("data.auditexport_trust_policy.this", want),
		expectString("data.auditexport_trust_policy.this", "principal_arn", env.Agent.PrincipalARN),
		expectString("data.auditexport_trust_policy.this", "external_id", env.ExternalID),
		statecheck.CompareValuePairs(
			"data.auditexport_trust_policy.this", tfjsonpath.New("json"),
			"data.auditexport_trust_policy.explicit", tfjsonpath.New("json"), compare.ValuesSame()),
		expectString("data.auditexport_trust_policy.partial", "json", policy.TrustPolicy(otherPrincipal, env.ExternalID).JSON()),
	)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: `
data "auditexport_identity" "this" {}

data "auditexport_trust_policy" "this" {}

data "auditexport_trust_policy" "explicit" {
  principal_arn = data.auditexport_identity.this.principal_arn
  external_id   = data.auditexport_identity.this.external_id
}

data "auditexport_trust_policy" "partial" {
  principal_arn = "` + otherPrincipal + `"
}
`,
			ConfigStateChecks: checks,
		}},
	})
}

// TestAccTrustPolicyDataSource_explicit: with both inputs set, the
// document is built without the agent.
func TestAccTrustPolicyDataSource_explicit(t *testing.T) {
	agent := noAgent(t)
	const addr = "data.auditexport_trust_policy.this"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: `
data "auditexport_trust_policy" "this" {
  principal_arn = "` + otherPrincipal + `"
  external_id   = "aex-0123456789abcdef"
}
`,
			ConfigStateChecks: expectDocument(addr, policy.TrustPolicy(otherPrincipal, "aex-0123456789abcdef")),
			Check:             agent.checkNotCalled,
		}},
	})
}

// TestAccTrustPolicyDataSource_invalid: inputs are checked at plan time.
func TestAccTrustPolicyDataSource_invalid(t *testing.T) {
	agent := noAgent(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      `data "auditexport_trust_policy" "this" { principal_arn = "arn:aws:s3:::bucket" }`,
				ExpectError: regexp.MustCompile(`must be an IAM role, user or account root ARN`),
			},
			{
				Config:      `data "auditexport_trust_policy" "this" { external_id = "x" }`,
				ExpectError: regexp.MustCompile(`string length must be between 2 and 1224`),
			},
			{
				Config: `data "auditexport_trust_policy" "this" {
  principal_arn = "` + otherPrincipal + `"
  external_id   = "has spaces"
}`,
				ExpectError: regexp.MustCompile(`may only contain letters, digits and`),
			},
		},
	})
	if err := agent.checkNotCalled(nil); err != nil {
		t.Error(err)
	}
}

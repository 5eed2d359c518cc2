package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/auditexport/auditexport/internal/policy"
)

const deliveryRole = "arn:aws:iam::111122223333:role/auditexport-delivery"

// TestAccBucketPolicyDataSource: the options' defaults (deny non-TLS on,
// require bucket-owner-full-control off), explicit options, and no call to
// the agent.
func TestAccBucketPolicyDataSource(t *testing.T) {
	agent := noAgent(t)
	const defaults, all, none = "data.auditexport_bucket_policy.defaults", "data.auditexport_bucket_policy.all", "data.auditexport_bucket_policy.none"
	checks := expectDocument(defaults, policy.BucketPolicy("acme-audit", "audit", deliveryRole,
		policy.BucketPolicyOptions{DenyInsecureTransport: true}))
	checks = append(checks, expectDocument(all, policy.BucketPolicy("acme-audit", "audit", deliveryRole,
		policy.BucketPolicyOptions{DenyInsecureTransport: true, RequireBucketOwnerFullControl: true}))...)
	checks = append(checks, expectDocument(none, policy.BucketPolicy("acme-audit", "", deliveryRole,
		policy.BucketPolicyOptions{}))...)
	checks = append(checks,
		statecheck.ExpectKnownValue(defaults, tfjsonpath.New("deny_insecure_transport"), knownvalue.Bool(true)),
		statecheck.ExpectKnownValue(defaults, tfjsonpath.New("require_bucket_owner_full_control"), knownvalue.Bool(false)),
	)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: `
data "auditexport_bucket_policy" "defaults" {
  bucket        = "acme-audit"
  prefix        = "audit"
  principal_arn = "` + deliveryRole + `"
}

data "auditexport_bucket_policy" "all" {
  bucket                            = "acme-audit"
  prefix                            = "audit"
  principal_arn                     = "` + deliveryRole + `"
  deny_insecure_transport           = true
  require_bucket_owner_full_control = true
}

data "auditexport_bucket_policy" "none" {
  bucket                  = "acme-audit"
  principal_arn           = "` + deliveryRole + `"
  deny_insecure_transport = false
}
`,
			ConfigStateChecks: checks,
			Check:             agent.checkNotCalled,
		}},
	})
}

// TestAccBucketPolicyDataSource_invalid: inputs are checked at plan time.
func TestAccBucketPolicyDataSource_invalid(t *testing.T) {
	noAgent(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      `data "auditexport_bucket_policy" "this" { bucket = "acme-audit" }`,
				ExpectError: regexp.MustCompile(`The argument "principal_arn" is required`),
			},
			{
				Config: `data "auditexport_bucket_policy" "this" {
  bucket        = "acme-audit"
  principal_arn = "arn:aws:sts::111122223333:assumed-role/auditexport-delivery/session"
}`,
				ExpectError: regexp.MustCompile(`must be an IAM role, user or account root ARN`),
			},
			{
				Config: `data "auditexport_bucket_policy" "this" {
  bucket        = "xn--acme-audit"
  principal_arn = "` + deliveryRole + `"
}`,
				ExpectError: regexp.MustCompile(`reserved`),
			},
		},
	})
}

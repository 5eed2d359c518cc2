package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/auditexport/auditexport/internal/policy"
)

const testKMSKey = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

// TestAccRolePolicyDataSource: the document for each input combination,
// the same bytes for the same inputs, and no call to the agent.
func TestAccRolePolicyDataSource(t *testing.T) {
	agent := noAgent(t)
	checks := append(expectDocument("data.auditexport_role_policy.bucket", policy.RolePolicy("acme-audit", "", "")),
		expectDocument("data.auditexport_role_policy.kms", policy.RolePolicy("acme-audit", "audit/", testKMSKey))...)
	checks = append(checks,
		statecheck.CompareValuePairs(
			"data.auditexport_role_policy.kms", tfjsonpath.New("json"),
			"data.auditexport_role_policy.kms_again", tfjsonpath.New("json"), compare.ValuesSame()),
		// A literal excerpt, so that a change in package policy shows here too.
		statecheck.ExpectKnownValue("data.auditexport_role_policy.bucket", tfjsonpath.New("minified_json"),
			knownvalue.StringExact(`{"Version":"2012-10-17","Statement":[{"Sid":"AuditExportPutObjects","Effect":"Allow","Action":["s3:PutObject","s3:AbortMultipartUpload"],"Resource":"arn:aws:s3:::acme-audit/*"},{"Sid":"AuditExportDeleteConnectionTestObject","Effect":"Allow","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::acme-audit/_auditexport/connection-test-*"}]}`)),
	)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: `
data "auditexport_role_policy" "bucket" {
  bucket = "acme-audit"
}

data "auditexport_role_policy" "kms" {
  bucket      = "acme-audit"
  prefix      = "audit/"
  kms_key_arn = "` + testKMSKey + `"
}

data "auditexport_role_policy" "kms_again" {
  bucket      = "acme-audit"
  prefix      = "audit/"
  kms_key_arn = "` + testKMSKey + `"
}
`,
			ConfigStateChecks: checks,
			Check:             agent.checkNotCalled,
		}},
	})
}

// TestAccRolePolicyDataSource_invalid: the destination's rules for bucket
// and prefix, and the KMS key ARN format, are checked at plan time.
func TestAccRolePolicyDataSource_invalid(t *testing.T) {
	noAgent(t)
	cases := []struct{ config, err string }{
		{`bucket = "Acme_Audit"`, `must be 3-63 lowercase letters`},
		{`bucket = "acme..audit"`, `two adjacent dots`},
		{`bucket = "192.168.1.1"`, `IP address`},
		{"bucket = \"acme-audit\"\n  prefix = \"/audit\"", `must not start with "/"`},
		{"bucket = \"acme-audit\"\n  prefix = \"a//b\"", `empty, "." or ".." path segments`},
		{"bucket = \"acme-audit\"\n  kms_key_arn = \"alias/audit\"", `must be a KMS key or alias ARN`},
	}
	var steps []resource.TestStep
	for _, tc := range cases {
		steps = append(steps, resource.TestStep{
			Config:      "data \"auditexport_role_policy\" \"this\" {\n  " + tc.config + "\n}",
			ExpectError: regexp.MustCompile(regexp.QuoteMeta(tc.err)),
		})
	}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: testAccProtoV6ProviderFactories, Steps: steps})
}

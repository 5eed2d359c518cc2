package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/config"
	acc "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/policy"
)

const testDestination = "auditexport_s3_destination.test"

// destinationConfig renders an auditexport_s3_destination named "test"
// with the given attribute lines.
func destinationConfig(lines ...string) string {
	return "resource \"auditexport_s3_destination\" \"test\" {\n  " +
		strings.Join(lines, "\n  ") + "\n}\n"
}

// roleDestination is a destination with role auth in us-east-1 plus lines.
func roleDestination(bucket, roleARN string, lines ...string) string {
	return destinationConfig(append([]string{
		fmt.Sprintf("bucket   = %q", bucket),
		`region   = "us-east-1"`,
		fmt.Sprintf("role_arn = %q", roleARN),
	}, lines...)...)
}

// errorRe compiles an expected error pattern in which a space matches any
// run of whitespace: Terraform wraps diagnostics at 78 columns.
func errorRe(pattern string) *regexp.Regexp {
	return regexp.MustCompile(strings.ReplaceAll(pattern, " ", `\s+`))
}

// captureID stores the destination's id in *id.
func captureID(id *string) acc.TestCheckFunc {
	return acc.TestCheckResourceAttrWith(testDestination, "id", func(v string) error {
		*id = v
		return nil
	})
}

// checkAPI reads the destination from the agent and passes it to check.
func checkAPI(c *api.Client, check func(api.Destination) error) acc.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[testDestination]
		if !ok {
			return fmt.Errorf("%s not in state", testDestination)
		}
		d, err := c.GetDestination(context.Background(), rs.Primary.ID)
		if err != nil {
			return fmt.Errorf("GetDestination %s: %w", rs.Primary.ID, err)
		}
		return check(d)
	}
}

// checkDestroyed verifies through the API that the tenant has no destination left.
func checkDestroyed(c *api.Client) acc.TestCheckFunc {
	return func(*terraform.State) error {
		dests, err := c.ListDestinations(context.Background())
		if err != nil {
			return err
		}
		if len(dests) != 0 {
			return fmt.Errorf("%d destinations left after destroy, first %s", len(dests), dests[0].ID)
		}
		return nil
	}
}

func TestAccS3Destination_lifecycle(t *testing.T) {
	env := newAccEnv(t, "acme")
	bucket, role := env.Agent.CustomerSetup(t, "acme", env.ExternalID, "audit")
	client := env.Agent.Client(t, env.ManageToken)
	var id, firstID string

	acc.Test(t, acc.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkDestroyed(client),
		Steps: []acc.TestStep{
			{
				// Create: defaults are planned, computed values are set.
				Config: roleDestination(bucket, role, `prefix = "audit"`),
				ConfigPlanChecks: acc.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(testDestination, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(testDestination, tfjsonpath.New("interval"), knownvalue.StringExact("1h")),
					plancheck.ExpectKnownValue(testDestination, tfjsonpath.New("format"), knownvalue.StringExact("ndjson")),
				}},
				Check: acc.ComposeAggregateTestCheckFunc(
					captureID(&firstID),
					acc.TestMatchResourceAttr(testDestination, "id", regexp.MustCompile(`^dst_[0-9a-f]+$`)),
					acc.TestCheckResourceAttr(testDestination, "external_id", env.ExternalID),
					acc.TestMatchResourceAttr(testDestination, "status.state", regexp.MustCompile(`^(pending|healthy)$`)),
					acc.TestCheckResourceAttr(testDestination, "bucket", bucket),
					acc.TestCheckResourceAttr(testDestination, "prefix", "audit"),
					acc.TestCheckResourceAttr(testDestination, "compression", "gzip"),
					acc.TestCheckResourceAttr(testDestination, "encryption", "sse-s3"),
					acc.TestCheckResourceAttr(testDestination, "acl", "bucket-owner-full-control"),
					acc.TestCheckResourceAttr(testDestination, "storage_class", "STANDARD"),
					acc.TestCheckResourceAttr(testDestination, "max_object_bytes", "268435456"),
					acc.TestCheckResourceAttr(testDestination, "backfill", "1h"),
					acc.TestCheckResourceAttr(testDestination, "enabled", "true"),
					acc.TestCheckNoResourceAttr(testDestination, "daily_at"),
					acc.TestCheckNoResourceAttr(testDestination, "access_key_id"),
					checkAPI(client, func(d api.Destination) error {
						if d.Bucket != bucket || d.RoleARN != role || d.Interval != "1h" {
							return fmt.Errorf("agent has %+v", d.DestinationSpec)
						}
						return nil
					}),
				),
			},
			{
				// Changing interval (and adding a filter) is an in-place update.
				Config: roleDestination(bucket, role, `prefix = "audit"`, `interval = "5m"`,
					`event_types = ["user.login", "user.logout"]`),
				ConfigPlanChecks: acc.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(testDestination, plancheck.ResourceActionUpdate),
				}},
				Check: acc.ComposeAggregateTestCheckFunc(
					acc.TestCheckResourceAttrPtr(testDestination, "id", &firstID),
					acc.TestCheckResourceAttr(testDestination, "interval", "5m"),
					acc.TestCheckTypeSetElemAttr(testDestination, "event_types.*", "user.login"),
					checkAPI(client, func(d api.Destination) error {
						if d.Interval != "5m" || len(d.EventTypes) != 2 {
							return fmt.Errorf("agent has interval %q, event_types %v", d.Interval, d.EventTypes)
						}
						return nil
					}),
				),
			},
			{
				// daily_at replaces interval, which is then null, not "1h".
				Config: roleDestination(bucket, role, `prefix = "audit"`, `daily_at = "05:00"`),
				ConfigPlanChecks: acc.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(testDestination, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(testDestination, tfjsonpath.New("interval"), knownvalue.Null()),
				}},
				Check: acc.ComposeAggregateTestCheckFunc(
					acc.TestCheckResourceAttr(testDestination, "daily_at", "05:00"),
					acc.TestCheckNoResourceAttr(testDestination, "interval"),
					acc.TestCheckNoResourceAttr(testDestination, "event_types"),
				),
			},
			{
				ResourceName:            testDestination,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"status"},
			},
			{
				// Drift: deleted outside Terraform, the next plan recreates it.
				PreConfig: func() {
					if err := client.DeleteDestination(context.Background(), firstID); err != nil {
						t.Fatalf("DeleteDestination: %v", err)
					}
				},
				Config: roleDestination(bucket, role, `prefix = "audit"`, `daily_at = "05:00"`),
				ConfigPlanChecks: acc.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(testDestination, plancheck.ResourceActionCreate),
				}},
				Check: acc.ComposeAggregateTestCheckFunc(
					captureID(&id),
					func(*terraform.State) error {
						if id == firstID {
							return fmt.Errorf("id %s was not replaced", id)
						}
						return nil
					},
				),
			},
			{
				// Drift: changed outside Terraform, the plan changes it back.
				PreConfig: func() { driftSchedule(t, client, id) },
				Config:    roleDestination(bucket, role, `prefix = "audit"`, `daily_at = "05:00"`),
				ConfigPlanChecks: acc.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(testDestination, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(testDestination, tfjsonpath.New("daily_at"), knownvalue.StringExact("05:00")),
				}},
				Check: checkAPI(client, func(d api.Destination) error {
					if d.DailyAt != "05:00" || d.Interval != "" {
						return fmt.Errorf("agent has interval %q, daily_at %q", d.Interval, d.DailyAt)
					}
					return nil
				}),
			},
		},
	})
}

// driftSchedule switches destination id to interval 15m through the API.
func driftSchedule(t *testing.T, c *api.Client, id string) {
	d, err := c.GetDestination(context.Background(), id)
	if err != nil {
		t.Fatalf("GetDestination: %v", err)
	}
	spec := d.DestinationSpec
	spec.DailyAt, spec.Interval = "", "15m"
	if _, err := c.UpdateDestination(context.Background(), id, spec); err != nil {
		t.Fatalf("UpdateDestination: %v", err)
	}
}

func TestAccS3Destination_connectionTestFails(t *testing.T) {
	env := newAccEnv(t, "globex")
	m := env.Agent.Moto
	bucket := "globex-audit"
	m.CreateBucket(t, bucket, "us-east-1")
	role := m.CreateRole(t, "globex-wrong-trust",
		policy.TrustPolicy(env.Agent.PrincipalARN, "aex-wrong-external-id").JSON(),
		policy.RolePolicy(bucket, "audit", "").JSON())
	client := env.Agent.Client(t, env.ManageToken)
	config := roleDestination(bucket, role, `prefix = "audit"`)

	acc.Test(t, acc.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkDestroyed(client),
		Steps: []acc.TestStep{
			{
				// The role trusts another external id: AssumeRole is denied.
				Config:      config,
				ExpectError: errorRe(`(?s)Connection test failed: AssumeRole.*sts:ExternalId.*auditexport_trust_policy.*assume_role_policy`),
			},
			{
				// Nothing was saved: neither in the agent nor in state.
				PreConfig: func() {
					if err := checkDestroyed(client)(nil); err != nil {
						t.Fatal(err)
					}
				},
				Config:             config,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				ConfigPlanChecks: acc.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(testDestination, plancheck.ResourceActionCreate),
				}},
			},
			{
				Config:      "provider \"auditexport\" {\n  token = \"not-a-token\"\n}\n" + config,
				ExpectError: errorRe(`(?s)Invalid auditexport token.*the token is not valid`),
			},
		},
	})
}

func TestAccS3Destination_staticKeys(t *testing.T) {
	env := newAccEnv(t, "initech")
	m := env.Agent.Moto
	bucket := "initech-audit"
	m.CreateBucket(t, bucket, "us-east-1")
	_, key, secret := m.CreateUser(t, "initech-writer")
	m.PutUserPolicy(t, "initech-writer", "audit-write", policy.RolePolicy(bucket, "audit", "").JSON())
	client := env.Agent.Client(t, env.ManageToken)

	// The secret comes from an ephemeral variable, as it would from a
	// vault or an ephemeral resource: it is in no file Terraform writes.
	keysConfig := func(version int, lines ...string) string {
		return secretVariable + destinationConfig(append([]string{
			fmt.Sprintf("bucket        = %q", bucket),
			`region        = "us-east-1"`,
			`prefix        = "audit/"`,
			fmt.Sprintf("access_key_id = %q", key),
			"secret_access_key_wo = var.secret_access_key",
			fmt.Sprintf("secret_access_key_wo_version = %d", version),
		}, lines...)...)
	}
	vars := func(v string) config.Variables {
		return config.Variables{"secret_access_key": config.StringVariable(v)}
	}
	noSecret := noSecretChecks(secret)

	acc.Test(t, acc.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkDestroyed(client),
		Steps: []acc.TestStep{
			{
				Config:            keysConfig(1),
				ConfigVariables:   vars(secret),
				ConfigPlanChecks:  acc.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{noSecret.plan}},
				ConfigStateChecks: noSecret.state,
				Check: acc.ComposeAggregateTestCheckFunc(
					acc.TestCheckResourceAttr(testDestination, "access_key_id", key),
					acc.TestCheckResourceAttr(testDestination, "prefix", "audit/"),
					acc.TestCheckResourceAttr(testDestination, "secret_access_key_wo_version", "1"),
					acc.TestCheckNoResourceAttr(testDestination, "secret_access_key_wo"),
					acc.TestCheckNoResourceAttr(testDestination, "role_arn"),
					noSecret.files,
					checkAPI(client, func(d api.Destination) error {
						if !d.HasSecret || d.AccessKeyID != key || d.Prefix != "audit" {
							return fmt.Errorf("agent has %+v, has_secret %v", d.DestinationSpec, d.HasSecret)
						}
						return nil
					}),
				),
			},
			{
				// Same version: the secret is not sent, the agent keeps it
				// and its connection test passes with it.
				Config:          keysConfig(1, `interval = "15m"`),
				ConfigVariables: vars(secret),
				ConfigPlanChecks: acc.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(testDestination, plancheck.ResourceActionUpdate),
					noSecret.plan,
				}},
				ConfigStateChecks: noSecret.state,
				Check:             acc.ComposeAggregateTestCheckFunc(noSecret.files, acc.TestCheckResourceAttr(testDestination, "interval", "15m")),
			},
			{
				// A new version sends the new secret: a wrong one fails the test.
				Config:          keysConfig(2, `interval = "15m"`),
				ConfigVariables: vars("wrong-secret"),
				ExpectError:     errorRe(`(?s)Connection test failed.*SignatureDoesNotMatch.*secret_access_key`),
			},
			{
				Config:          keysConfig(3, `interval = "15m"`),
				ConfigVariables: vars(secret),
				ConfigPlanChecks: acc.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(testDestination, plancheck.ResourceActionUpdate),
					noSecret.plan,
				}},
				ConfigStateChecks: noSecret.state,
				Check:             acc.ComposeAggregateTestCheckFunc(noSecret.files, acc.TestCheckResourceAttr(testDestination, "secret_access_key_wo_version", "3")),
			},
			{
				ResourceName:            testDestination,
				ConfigVariables:         vars(secret),
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"status", "prefix", "secret_access_key_wo_version"},
			},
		},
	})
}

// secretVariable declares the ephemeral variable that holds the secret.
const secretVariable = `variable "secret_access_key" {
  type      = string
  sensitive = true
  ephemeral = true
}

`

// secretChecks assert that a secret appears nowhere Terraform keeps data.
type secretChecks struct {
	plan  plancheck.PlanCheck
	state []statecheck.StateCheck
	files acc.TestCheckFunc
}

func noSecretChecks(secret string) secretChecks {
	return secretChecks{
		plan: planLacks{secret: secret},
		state: []statecheck.StateCheck{
			stateLacks{secret: secret},
			statecheck.ExpectKnownValue(testDestination, tfjsonpath.New("secret_access_key_wo"), knownvalue.Null()),
		},
		files: stateFilesLack(secret),
	}
}

// planLacks fails when the JSON plan (every planned and prior value, in
// clear even where sensitive) contains secret.
type planLacks struct{ secret string }

func (c planLacks) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	data, err := json.Marshal(req.Plan)
	if err != nil {
		resp.Error = err
		return
	}
	if strings.Contains(string(data), c.secret) {
		resp.Error = fmt.Errorf("the plan contains the secret access key")
	}
}

// stateLacks fails when the JSON state contains secret.
type stateLacks struct{ secret string }

func (c stateLacks) CheckState(_ context.Context, req statecheck.CheckStateRequest, resp *statecheck.CheckStateResponse) {
	data, err := json.Marshal(req.State)
	if err != nil {
		resp.Error = err
		return
	}
	if strings.Contains(string(data), c.secret) {
		resp.Error = fmt.Errorf("the state contains the secret access key")
	}
}

// stateFilesLack scans the raw terraform.tfstate files of the test's working
// directories (under TF_ACC_TEMP_DIR) and the flattened state for secret.
func stateFilesLack(secret string) acc.TestCheckFunc {
	return func(s *terraform.State) error {
		for k, v := range s.RootModule().Resources[testDestination].Primary.Attributes {
			if strings.Contains(v, secret) {
				return fmt.Errorf("state attribute %s holds the secret", k)
			}
		}
		var found int
		err := filepath.WalkDir(os.Getenv("TF_ACC_TEMP_DIR"), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.Contains(d.Name(), ".tfstate") {
				return err
			}
			found++
			data, err := os.ReadFile(p)
			if err == nil && strings.Contains(string(data), secret) {
				return fmt.Errorf("%s contains the secret access key", p)
			}
			return err
		})
		if err == nil && found == 0 {
			err = fmt.Errorf("no state file found under TF_ACC_TEMP_DIR")
		}
		return err
	}
}

func TestAccS3Destination_validation(t *testing.T) {
	// No agent: every case fails at plan time, before any API call, and the
	// last one shows the diagnostic for an agent that cannot be reached.
	t.Setenv(EnvEndpoint, "http://127.0.0.1:9")
	t.Setenv(EnvToken, "unused")
	role := `role_arn = "arn:aws:iam::123456789012:role/audit"`
	valid := []string{`bucket = "acme-audit"`, `region = "us-east-1"`}
	with := func(lines ...string) string {
		return destinationConfig(append(append([]string{}, valid...), lines...)...)
	}

	cases := []struct{ config, err string }{
		{destinationConfig(`bucket = "Acme_Audit"`, `region = "us-east-1"`, role), `must be 3-63 lowercase`},
		{destinationConfig(`bucket = "acme..audit"`, `region = "us-east-1"`, role), `two adjacent dots`},
		{destinationConfig(`bucket = "192.168.10.1"`, `region = "us-east-1"`, role), `IP address`},
		{destinationConfig(`bucket = "ab"`, `region = "us-east-1"`, role), `string length must be between 3 and 63`},
		{destinationConfig(`bucket = "acme-audit"`, `region = "US-East-1"`, role), `AWS region name`},
		{with(role, `interval = "3m"`), `value must be one of`},
		{with(role, `daily_at = "25:00"`), `HH:MM`},
		{with(role, `interval = "1h"`, `daily_at = "05:00"`), `cannot be configured together`},
		{with(role, `access_key_id = "AKIAIOSFODNN7EXAMPLE"`, `secret_access_key_wo = "x"`), `Exactly one of these attributes must be configured: \[role_arn,access_key_id\]`},
		{with(), `Exactly one of these attributes must be configured: \[role_arn,access_key_id\]`},
		{with(`access_key_id = "AKIAIOSFODNN7EXAMPLE"`), `secret_access_key_wo`},
		{with(role, `encryption = "sse-kms"`), `kms_key_arn is required when encryption = "sse-kms"`},
		{with(role, `kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/k1"`), `only used with encryption = "sse-kms"`},
		{with(role, `prefix = "/audit"`), `must not start with "/"`},
		{with(role, `prefix = "a/../b"`), `"\.\." path segments`},
		{with(role, `event_types = []`), `set must contain at least 1 elements`},
		{with(role, `max_object_bytes = 1024`), `value must be between`},
		{with(role, `max_object_bytes = 0`), `max_object_bytes value must be between 5242880 and 5497558138880, got: 0`},
		{with(role, `backfill = "forever"`), `duration such as`},
		{with(role, `compression = "brotli"`), `value must be one of`},
		{with(role, `key_template = "../{seq_from}-{seq_to}_{part}"`), `keys stay under the prefix`},
		{with(role, `key_template = "{event_type}/{window_end}"`), `must contain {seq_from}`},
		{with(role, `format = "parquet"`, `compression = "gzip"`), `(?s)compression "gzip" cannot be used with format\s+= "parquet"`},
		{with(role, `event_schema = "ocsf"`, `format = "parquet"`, `compression = "zstd"`), `(?s)compression "zstd" cannot be used with format\s+= "parquet"`},
		{with(role, `event_schema = "cef"`), `value must be one of`},
		{with(role, `key_template = "security_lake"`, `source_name = "auditexport"`), `(?s)needs event_schema = "ocsf" and\s+format = "parquet"`},
		{with(role, `key_template = "security_lake"`, `event_schema = "ocsf"`, `format = "parquet"`), `(?s)source_name is required by key_template`},
		{with(role, `source_name = "a/b"`), `must be 1-64 letters`},
	}
	steps := make([]acc.TestStep, 0, len(cases)+1)
	for _, c := range cases {
		steps = append(steps, acc.TestStep{
			Config:      c.config,
			PlanOnly:    true,
			ExpectError: errorRe(c.err),
		})
	}
	// Valid configurations plan (compression defaults to none with
	// Parquet) and fail only when the agent is called.
	for _, config := range []string{
		with(role),
		with(role, `event_schema = "ocsf"`, `format = "parquet"`, `key_template = "security_lake"`, `source_name = "auditexport"`),
		with(role, `format = "parquet"`, `compression = "none"`),
	} {
		steps = append(steps, acc.TestStep{
			Config:      config,
			ExpectError: errorRe(`cannot reach the auditexport agent at http://127.0.0.1:9`),
		})
	}
	acc.Test(t, acc.TestCase{ProtoV6ProviderFactories: testAccProtoV6ProviderFactories, Steps: steps})
}

func TestS3DestinationSchema(t *testing.T) {
	ctx := context.Background()
	var resp resource.SchemaResponse
	NewS3DestinationResource().(*s3DestinationResource).Schema(ctx, resource.SchemaRequest{}, &resp)
	if resp.Diagnostics.HasError() {
		t.Fatal(resp.Diagnostics)
	}
	if diags := resp.Schema.ValidateImplementation(ctx); diags.HasError() {
		t.Fatal(diags)
	}
	for name, a := range resp.Schema.Attributes {
		if a.GetDescription() == "" {
			t.Errorf("attribute %s has no description", name)
		}
	}
	wo := resp.Schema.Attributes["secret_access_key_wo"]
	if !wo.IsWriteOnly() || !wo.IsSensitive() {
		t.Error("secret_access_key_wo must be write-only and sensitive")
	}
}

func TestResendSecret(t *testing.T) {
	base := s3DestinationModel{AccessKeyID: types.StringValue("AKIAEXAMPLE0000000"), SecretAccessKeyWOVersion: types.Int64Value(1)}
	bumped, newKey, role := base, base, base
	bumped.SecretAccessKeyWOVersion = types.Int64Value(2)
	newKey.AccessKeyID = types.StringValue("AKIAEXAMPLE1111111")
	role.AccessKeyID = types.StringNull()
	for _, c := range []struct {
		name        string
		plan, state s3DestinationModel
		want        bool
	}{
		{"unchanged", base, base, false},
		{"new version", bumped, base, true},
		{"new access key", newKey, base, true},
		{"from role to keys", base, role, true},
		{"from keys to role", role, base, false},
	} {
		if got := resendSecret(c.plan, c.state); got != c.want {
			t.Errorf("%s: resendSecret = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestApplyKeepsPrefixSpelling(t *testing.T) {
	ctx := context.Background()
	d := api.Destination{ID: "dst_1", DestinationSpec: api.DestinationSpec{Prefix: "audit", Interval: "1h"}}
	for _, c := range []struct {
		prior types.String
		want  string
	}{
		{types.StringValue("audit/"), "audit/"},
		{types.StringValue("audit"), "audit"},
		{types.StringValue("other/"), "audit"},
		{types.StringNull(), "audit"},
	} {
		m := s3DestinationModel{Prefix: c.prior}
		if diags := m.apply(ctx, d); diags.HasError() {
			t.Fatal(diags)
		}
		if got := m.Prefix.ValueString(); got != c.want {
			t.Errorf("prior %s: prefix = %q, want %q", c.prior, got, c.want)
		}
	}
}

func TestAPIErrorDiag(t *testing.T) {
	cases := []struct {
		name    string
		err     error
		summary string
		detail  []string
	}{
		{"unreachable", &api.UnreachableError{Endpoint: "https://audit.example.com", Err: errors.New("connection refused")},
			"Cannot reach the auditexport agent", []string{"cannot reach the auditexport agent at https://audit.example.com", EnvEndpoint}},
		{"bad token", &api.APIError{StatusCode: 401, Err: api.Error{Code: "unauthorized", Message: "the token is not valid: check it"}},
			"Invalid auditexport token", []string{"the token is not valid", EnvToken}},
		{"put denied", &api.APIError{StatusCode: 422, Err: api.Error{Call: "PutObject", AWSCode: "AccessDenied", Message: "connection test failed: PutObject denied (AccessDenied): …"}},
			"Connection test failed: PutObject (AccessDenied)", []string{"auditexport_role_policy", "aws_iam_role_policy", "auditexport_bucket_policy", "aws_s3_bucket_policy"}},
		{"throttled", &api.APIError{StatusCode: 502, Err: api.Error{Call: "PutObject", AWSCode: "SlowDown", Message: "slow down"}},
			"Connection test failed: PutObject (SlowDown)", []string{"run terraform apply again"}},
		{"field", &api.APIError{StatusCode: 400, Err: api.Error{Field: "secret_access_key", Message: "secret_access_key: required with a new access_key_id"}},
			"Destination rejected by the agent", []string{"required with a new access_key_id"}},
	}
	for _, c := range cases {
		d := apiErrorDiag("create the destination", c.err)
		if d.Summary() != c.summary {
			t.Errorf("%s: summary %q, want %q", c.name, d.Summary(), c.summary)
		}
		for _, want := range c.detail {
			if !strings.Contains(d.Detail(), want) {
				t.Errorf("%s: detail lacks %q:\n%s", c.name, want, d.Detail())
			}
		}
	}
}

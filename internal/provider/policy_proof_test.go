package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/policy"
	"github.com/auditexport/auditexport/internal/testenv"
)

// The policy proofs apply the JSON that the data sources produced, exactly
// as terraform output it, to servers that enforce it, then let the agent
// create a destination (its connection test) and deliver events through
// it. Each required statement is then removed in turn to show that the
// connection test fails and names what is missing.

const (
	proofBucket = "acme-audit"
	proofPrefix = "audit"
	proofRegion = "us-east-1"
)

// TestAccPolicyProof_trustAndRolePolicyOnMoto proves auditexport_trust_policy
// and auditexport_role_policy on moto, which enforces role trust policies
// (with sts:ExternalId) and IAM identity policies.
func TestAccPolicyProof_trustAndRolePolicyOnMoto(t *testing.T) {
	env := newAccEnv(t, "acme")
	moto := env.Agent.Moto
	moto.CreateBucket(t, proofBucket, proofRegion)

	var trustJSON, roleJSON string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: `
data "auditexport_trust_policy" "this" {}

data "auditexport_role_policy" "this" {
  bucket = "` + proofBucket + `"
  prefix = "` + proofPrefix + `"
}
`,
			Check: resource.ComposeAggregateTestCheckFunc(
				captureAttr("data.auditexport_trust_policy.this", "json", &trustJSON),
				captureAttr("data.auditexport_role_policy.this", "json", &roleJSON),
			),
		}},
	})

	client := env.Agent.Client(t, env.ManageToken)
	roleARN := moto.CreateRole(t, "acme-delivery", trustJSON, roleJSON)
	dst := createDestination(t, client, roleSpec(roleARN))
	if len(dst.Warnings) != 0 {
		t.Errorf("connection test warnings: %v; the %s statement should let it delete its test object", dst.Warnings, policy.SidDeleteTestObject)
	}
	postEvents(t, env.Agent, env.Tenant, 5)
	key := waitForDelivery(t, func() []string { return moto.ListKeys(t, proofBucket, proofPrefix+"/") })
	t.Logf("delivered through the role: %s", key)

	t.Run("without the PutObject statement", func(t *testing.T) {
		broken := moto.CreateRole(t, "acme-no-put", trustJSON, withoutStatement(t, roleJSON, policy.SidPutObjects))
		_, err := client.CreateDestination(context.Background(), roleSpec(broken))
		requireErrorNames(t, err, "PutObject", "AccessDenied", "auditexport_role_policy")
	})
	t.Run("another tenant cannot use the role", func(t *testing.T) {
		// The trust policy's sts:ExternalId condition is what stops another
		// tenant of the same platform from delivering with acme's role.
		_, otherToken := env.Agent.Tenant(t, "globex")
		other := env.Agent.Client(t, otherToken)
		_, err := other.CreateDestination(context.Background(), roleSpec(roleARN))
		requireErrorNames(t, err, "AssumeRole", "AccessDenied", "auditexport_trust_policy")
	})
	t.Run("without the DeleteObject statement", func(t *testing.T) {
		// Optional: the destination is created, with a warning naming it.
		noDelete := moto.CreateRole(t, "acme-no-delete", trustJSON, withoutStatement(t, roleJSON, policy.SidDeleteTestObject))
		dst := createDestination(t, client, roleSpec(noDelete))
		defer func() { _ = client.DeleteDestination(context.Background(), dst.ID) }()
		if len(dst.Warnings) != 1 || !strings.Contains(dst.Warnings[0], "DeleteObject denied") {
			t.Errorf("warnings = %v, want one naming the denied DeleteObject", dst.Warnings)
		}
	})
}

// TestAccPolicyProof_bucketPolicyOnVersityGW proves auditexport_bucket_policy
// on versitygw, which enforces bucket policies (moto does not): the agent,
// with static keys of a versitygw user and no identity policy at all, can
// write only what the bucket policy grants.
func TestAccPolicyProof_bucketPolicyOnVersityGW(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance tests need TF_ACC=1 (make test sets it)")
	}
	// TLS, so that the default deny_insecure_transport statement is part of
	// what the agent's writes pass through.
	gw := testenv.StartVersityGWTLS(t)
	agent := testenv.NewAgentForVersityGW(t, testenv.StartMoto(t), gw, "1s")
	tenant := useAgent(t, agent, "acme")
	writerKey, writerSecret := gw.CreateUser(t)
	gw.CreateBucket(t, proofBucket)

	// A customer names the IAM user that writes by its ARN, and principal_arn
	// only accepts ARNs. versitygw names principals by access key id
	// instead, so the proof replaces the ARN by the user's access key id and
	// changes nothing else in terraform's JSON.
	const writerARN = "arn:aws:iam::123456789012:user/acme-writer"
	var tlsJSON, plainJSON string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: `
data "auditexport_bucket_policy" "this" {
  bucket                            = "` + proofBucket + `"
  prefix                            = "` + proofPrefix + `"
  principal_arn                     = "` + writerARN + `"
  require_bucket_owner_full_control = true
}

data "auditexport_bucket_policy" "plain_http" {
  bucket                            = "` + proofBucket + `"
  prefix                            = "` + proofPrefix + `"
  principal_arn                     = "` + writerARN + `"
  require_bucket_owner_full_control = true
  deny_insecure_transport           = false
}
`,
			Check: resource.ComposeAggregateTestCheckFunc(
				captureAttr("data.auditexport_bucket_policy.this", "json", &tlsJSON),
				captureAttr("data.auditexport_bucket_policy.plain_http", "json", &plainJSON),
			),
		}},
	})
	asWriter := func(doc string) string { return strings.ReplaceAll(doc, writerARN, writerKey) }

	client := agent.Client(t, tenant.ManageToken)
	spec := keySpec(writerKey, writerSecret)
	t.Run("without the PutObject statement", func(t *testing.T) {
		gw.PutBucketPolicy(t, proofBucket, asWriter(withoutStatement(t, tlsJSON, policy.SidPutObjects)))
		_, err := client.CreateDestination(context.Background(), spec)
		requireErrorNames(t, err, "PutObject", "AccessDenied", "auditexport_bucket_policy")
	})

	gw.PutBucketPolicy(t, proofBucket, asWriter(tlsJSON))
	dst := createDestination(t, client, spec)
	if len(dst.Warnings) != 0 {
		t.Errorf("connection test warnings: %v", dst.Warnings)
	}
	postEvents(t, agent, tenant.Tenant, 5)
	key := waitForDelivery(t, func() []string { return gw.ListKeys(t, proofBucket, proofPrefix+"/") })
	t.Logf("delivered under the bucket policy: %s", key)

	t.Run("grants no more than delivery needs", func(t *testing.T) {
		writer := gw.S3Client(writerKey, writerSecret)
		requireDenied(t, "PutObject outside the prefix", putObject(writer, "elsewhere/x.txt", true))
		requireDenied(t, "PutObject without bucket-owner-full-control", putObject(writer, proofPrefix+"/x.txt", false))
		requireDenied(t, "DeleteObject of a delivered object", deleteObject(writer, key))
		if err := putObject(writer, proofPrefix+"/x.txt", true); err != nil {
			t.Errorf("PutObject with bucket-owner-full-control: %v", err)
		}
	})
	t.Run("deny_insecure_transport denies plain HTTP", func(t *testing.T) {
		plain := testenv.StartVersityGW(t)
		key, secret := plain.CreateUser(t)
		plain.CreateBucket(t, proofBucket)
		writer := plain.S3Client(key, secret)
		plain.PutBucketPolicy(t, proofBucket, strings.ReplaceAll(tlsJSON, writerARN, key))
		requireDenied(t, "PutObject over HTTP", putObject(writer, proofPrefix+"/x.txt", true))
		plain.PutBucketPolicy(t, proofBucket, strings.ReplaceAll(plainJSON, writerARN, key))
		if err := putObject(writer, proofPrefix+"/x.txt", true); err != nil {
			t.Errorf("PutObject over HTTP without deny_insecure_transport: %v", err)
		}
	})
}

// useAgent creates tenant on agent and points the provider at it, as
// newAccEnv does for the default agent.
func useAgent(t *testing.T, agent *testenv.Agent, tenant string) *accEnv {
	t.Helper()
	if os.Getenv("TF_ACC_TEMP_DIR") == "" {
		t.Setenv("TF_ACC_TEMP_DIR", t.TempDir())
	}
	extID, token := agent.Tenant(t, tenant)
	t.Setenv(EnvEndpoint, agent.Endpoint)
	t.Setenv(EnvToken, token)
	return &accEnv{Agent: agent, Tenant: tenant, ExternalID: extID, ManageToken: token}
}

// roleSpec is a destination in the proof bucket written through roleARN.
func roleSpec(roleARN string) api.DestinationSpec {
	return api.DestinationSpec{Bucket: proofBucket, Region: proofRegion, Prefix: proofPrefix, RoleARN: roleARN, Interval: "1m"}
}

// keySpec is a destination in the proof bucket written with static keys.
func keySpec(accessKey, secret string) api.DestinationSpec {
	return api.DestinationSpec{
		Bucket: proofBucket, Region: proofRegion, Prefix: proofPrefix,
		AccessKeyID: accessKey, SecretAccessKey: secret, Interval: "1m",
	}
}

// createDestination creates spec, which runs the agent's connection test.
func createDestination(t *testing.T, client *api.Client, spec api.DestinationSpec) api.Destination {
	t.Helper()
	dst, err := client.CreateDestination(context.Background(), spec)
	if err != nil {
		t.Fatalf("create destination (connection test): %v", err)
	}
	return dst
}

// withoutStatement returns the policy docJSON without the statement sid,
// which must be there.
func withoutStatement(t *testing.T, docJSON, sid string) string {
	t.Helper()
	var doc policy.Document
	if err := json.Unmarshal([]byte(docJSON), &doc); err != nil {
		t.Fatalf("policy from terraform is not JSON: %v\n%s", err, docJSON)
	}
	out := doc.Without(sid)
	if len(out.Statement) != len(doc.Statement)-1 {
		t.Fatalf("policy has no statement %s:\n%s", sid, docJSON)
	}
	return out.JSON()
}

// requireErrorNames checks that err is a failed connection test whose
// message names every one of words.
func requireErrorNames(t *testing.T, err error, words ...string) {
	t.Helper()
	var ae *api.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("create destination: got %v, want the agent to refuse it", err)
	}
	t.Logf("the agent refused: %s", ae.Err.Message)
	for _, w := range words {
		if !strings.Contains(ae.Err.Message, w) {
			t.Errorf("message does not name %q: %s", w, ae.Err.Message)
		}
	}
}

// postEvents posts n audit events for tenant with an ingest token.
func postEvents(t *testing.T, agent *testenv.Agent, tenant string, n int) {
	t.Helper()
	var body strings.Builder
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i := range n {
		fmt.Fprintf(&body, `{"timestamp":%q,"eventName":"user.login","messageId":"proof-%d","actor":{"id":"usr_1"}}`+"\n", now, i)
	}
	res, err := agent.Client(t, agent.IngestToken(t)).PostEvents(context.Background(), tenant, []byte(body.String()))
	if err != nil || res.Stored != n {
		t.Fatalf("post events: stored %d of %d: %v", res.Stored, n, err)
	}
}

// waitForDelivery polls list until it holds an object that is not the
// connection test's, and returns its key.
func waitForDelivery(t *testing.T, list func() []string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, key := range list() {
			if !strings.Contains(key, policy.ConnectionTestPrefix) {
				return key
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no object delivered after 30s; keys: %v", list())
	return ""
}

func putObject(c *s3.Client, key string, ownerFullControl bool) error {
	in := &s3.PutObjectInput{Bucket: aws.String(proofBucket), Key: aws.String(key), Body: strings.NewReader("x")}
	if ownerFullControl {
		in.ACL = types.ObjectCannedACLBucketOwnerFullControl
	}
	_, err := c.PutObject(context.Background(), in)
	return err
}

func deleteObject(c *s3.Client, key string) error {
	_, err := c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(proofBucket), Key: aws.String(key)})
	return err
}

// requireDenied checks that err is S3's AccessDenied.
func requireDenied(t *testing.T, what string, err error) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
		t.Errorf("%s: got %v, want AccessDenied", what, err)
	}
}

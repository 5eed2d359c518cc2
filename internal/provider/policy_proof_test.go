package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/digest"
	"github.com/auditexport/auditexport/internal/policy"
	"github.com/auditexport/auditexport/internal/testenv"
)

// The policy proofs apply the JSON that the data sources produced, exactly
// as terraform output it, to servers that enforce it, then let the agent
// create a destination (its connection test) and deliver events through
// it. Then every statement, and every action of a statement with several,
// is removed in turn (the cases are generated from the documents, so a new
// action is covered the day it is added): each removal must break the
// connection test, or pass it with a warning, with a message that names
// the permission and the data source that grants it. An action that can be
// removed with nothing breaking is one the documents must not grant.

const (
	proofBucket = "acme-audit"
	proofPrefix = "audit"
	proofRegion = "us-east-1"
	proofKMSKey = "arn:aws:kms:us-east-1:123456789012:key/0b2d4f6a-1c3e-4a5b-8d7f-9e0a1b2c3d4e"
)

// breakage is what the connection test reports when an action is missing.
type breakage struct {
	// fails tells that the test fails; otherwise it passes with a warning.
	fails bool
	// call is the agent's call that S3 or STS denies.
	call string
}

// breaks says, for every action the documents grant, how its absence
// shows. A document that grants an action missing here fails the proofs.
var breaks = map[string]breakage{
	"sts:AssumeRole":          {fails: true, call: "AssumeRole"},
	"s3:PutObject":            {fails: true, call: "PutObject"},
	"s3:AbortMultipartUpload": {fails: false, call: "AbortMultipartUpload"},
	"s3:DeleteObject":         {fails: false, call: "DeleteObject"},
}

// unenforced are the actions that no server here enforces: moto and
// versitygw accept any KMS key without asking KMS. AWS documents that S3
// needs exactly these two for SSE-KMS writes, kms:GenerateDataKey for
// PutObject and CreateMultipartUpload and kms:Decrypt for UploadPart
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html#mpuAndPermissions,
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html);
// TestUnenforcedAreKMSOnly keeps this list to the KMS statement.
var unenforced = map[string]bool{"kms:GenerateDataKey": true, "kms:Decrypt": true}

// removal is one statement or one action taken out of a document.
type removal struct {
	name    string
	doc     string   // the document without it, as JSON
	actions []string // the actions it takes away
}

// removals lists every Allow statement of docJSON, and every action of a
// statement that has more than one, each taken out in turn. Removals that
// take away only unenforced actions are left out.
func removals(t *testing.T, docJSON string) []removal {
	t.Helper()
	doc := parseDocument(t, docJSON)
	var out []removal
	for _, st := range doc.Statement {
		if st.Effect != "Allow" {
			continue
		}
		actions := st.Actions()
		if !slices.ContainsFunc(actions, func(a string) bool { return !unenforced[a] }) {
			continue
		}
		out = append(out, removal{name: "without statement " + st.Sid, doc: doc.Without(st.Sid).JSON(), actions: actions})
		if len(actions) < 2 {
			continue
		}
		for _, a := range actions {
			if unenforced[a] {
				continue
			}
			out = append(out, removal{name: "without action " + a, doc: doc.WithoutAction(a).JSON(), actions: []string{a}})
		}
	}
	return out
}

// checkBroken checks what the connection test of a destination whose
// policy lacks r reported: err and warnings, or an error naming source.
func checkBroken(t *testing.T, r removal, source string, dst api.Destination, err error) {
	t.Helper()
	var failing []string
	for _, a := range r.actions {
		b, ok := breaks[a]
		if !ok {
			t.Fatalf("no expectation for action %s: add it to breaks (or the documents must not grant it)", a)
		}
		if b.fails {
			failing = append(failing, a)
		}
	}
	if len(failing) > 0 {
		// The first denied call stops the test; it names its permission.
		a := failing[0]
		requireErrorNames(t, err, breaks[a].call, "AccessDenied", a, source)
		return
	}
	if err != nil {
		t.Fatalf("connection test failed, want it to pass with warnings: %v", err)
	}
	if len(dst.Warnings) != len(r.actions) {
		t.Errorf("warnings = %q, want one per missing action %v", dst.Warnings, r.actions)
	}
	for _, a := range r.actions {
		want := []string{breaks[a].call + " denied (AccessDenied)", a, source}
		if !slices.ContainsFunc(dst.Warnings, func(w string) bool { return containsAll(w, want) }) {
			t.Errorf("no warning names %q: %q", want, dst.Warnings)
		}
	}
}

func containsAll(s string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

func TestUnenforcedAreKMSOnly(t *testing.T) {
	for a := range unenforced {
		if !slices.Contains(policy.KMSActions(), a) {
			t.Errorf("%s is excused from the proofs but is not a KMS action", a)
		}
	}
	for _, a := range policy.KMSActions() {
		if !unenforced[a] {
			t.Errorf("KMS action %s has no place in the proofs", a)
		}
	}
}

// TestAccPolicyProof_trustAndRolePolicyOnMoto proves auditexport_trust_policy
// and auditexport_role_policy on moto, which enforces role trust policies
// (with sts:ExternalId) and IAM identity policies. The agent's S3 requests
// go through a recording proxy, which shows that each one names the bucket's
// expected owner, and plays S3's refusal of a bucket of another account.
func TestAccPolicyProof_trustAndRolePolicyOnMoto(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance tests need TF_ACC=1 (make test sets it)")
	}
	moto := testenv.StartMoto(t)
	proxy := testenv.StartFaultProxy(t, moto.S3URL, testenv.FaultOptions{BucketOwner: moto.AccountID})
	env := useAgent(t, testenv.NewAgentWithOptions(t, moto, testenv.AgentOptions{Tick: "1s", S3Endpoint: proxy.URL()}), "acme")
	moto.CreateBucket(t, proofBucket, proofRegion)

	var trustJSON, roleJSON string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: `
data "auditexport_trust_policy" "this" {}

data "auditexport_role_policy" "this" {
  bucket      = "` + proofBucket + `"
  prefix      = "` + proofPrefix + `"
  kms_key_arn = "` + proofKMSKey + `"
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
		t.Errorf("connection test warnings: %v; the complete documents must pass cleanly", dst.Warnings)
	}
	postEvents(t, env.Agent, env.Tenant, 5)
	key := waitForDelivery(t, func() []string { return moto.ListKeys(t, proofBucket, proofPrefix+"/") })
	t.Logf("delivered through the role: %s", key)
	requireOwnerOnEveryRequest(t, proxy.Requests(), moto.AccountID)
	if err := client.DeleteDestination(context.Background(), dst.ID); err != nil {
		t.Fatal(err)
	}

	for i, r := range removals(t, trustJSON) {
		t.Run("trust policy "+r.name, func(t *testing.T) {
			broken := moto.CreateRole(t, fmt.Sprintf("acme-trust-%d", i), r.doc, roleJSON)
			dst, err := tryCreate(t, client, roleSpec(broken))
			checkBroken(t, r, policy.TrustPolicySource, dst, err)
		})
	}
	for i, r := range removals(t, roleJSON) {
		t.Run("role policy "+r.name, func(t *testing.T) {
			broken := moto.CreateRole(t, fmt.Sprintf("acme-role-%d", i), trustJSON, r.doc)
			dst, err := tryCreate(t, client, roleSpec(broken))
			checkBroken(t, r, policy.RolePolicySource, dst, err)
		})
	}
	t.Run("another tenant cannot use the role", func(t *testing.T) {
		// The trust policy's sts:ExternalId condition is what stops another
		// tenant of the same platform from delivering with acme's role.
		_, otherToken := env.Agent.Tenant(t, "globex")
		other := env.Agent.Client(t, otherToken)
		_, err := other.CreateDestination(context.Background(), roleSpec(roleARN))
		requireErrorNames(t, err, "AssumeRole", "AccessDenied", "auditexport_trust_policy")
	})
	t.Run("a bucket of another account", func(t *testing.T) {
		// The bucket was deleted and its name taken by another account.
		proxy.SetBucketOwner("999988887777")
		defer proxy.SetBucketOwner(moto.AccountID)
		_, err := client.CreateDestination(context.Background(), roleSpec(roleARN))
		requireErrorNames(t, err, "PutObject", "AccessDenied",
			`bucket "`+proofBucket+`" is not owned by account `+moto.AccountID, "expected_bucket_owner")
	})
}

// requireOwnerOnEveryRequest checks that every S3 request (the connection
// test's and delivery's) carried x-amz-expected-bucket-owner: account.
func requireOwnerOnEveryRequest(t *testing.T, reqs []testenv.ProxiedRequest, account string) {
	t.Helper()
	methods := map[string]int{}
	for _, r := range reqs {
		methods[r.Method]++
		if r.ExpectedBucketOwner != account {
			t.Errorf("%s %s?%s: x-amz-expected-bucket-owner = %q, want %q", r.Method, r.Path, r.Query, r.ExpectedBucketOwner, account)
		}
	}
	// HeadBucket, PutObject (test object and delivery), the test's
	// multipart upload and its abort, DeleteObject.
	for _, m := range []string{http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete} {
		if methods[m] == 0 {
			t.Errorf("no %s request recorded (%v): the proxy did not see the whole connection test", m, methods)
		}
	}
	t.Logf("%d S3 requests, each with x-amz-expected-bucket-owner %s: %v", len(reqs), account, methods)
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
	for _, r := range removals(t, tlsJSON) {
		t.Run(r.name, func(t *testing.T) {
			gw.PutBucketPolicy(t, proofBucket, asWriter(r.doc))
			dst, err := tryCreate(t, client, spec)
			checkBroken(t, r, policy.BucketPolicySource, dst, err)
		})
	}

	gw.PutBucketPolicy(t, proofBucket, asWriter(tlsJSON))
	dst := createDestination(t, client, spec)
	if len(dst.Warnings) != 0 {
		t.Errorf("connection test warnings: %v", dst.Warnings)
	}
	postEvents(t, agent, tenant.Tenant, 5)
	key := waitForDelivery(t, func() []string { return gw.ListKeys(t, proofBucket, proofPrefix+"/") })
	t.Logf("delivered under the bucket policy: %s", key)

	t.Run("acl none under require_bucket_owner_full_control", func(t *testing.T) {
		// The grant is there; the destination's acl is what must change.
		noACL := spec
		noACL.ACL = "none"
		_, err := client.CreateDestination(context.Background(), noACL)
		requireErrorNames(t, err, "PutObject", "AccessDenied", `acl is "none"`,
			policy.SidRequireBucketOwnerFullControl, `set acl = "bucket-owner-full-control"`)
	})
	t.Run("grants no more than delivery needs", func(t *testing.T) {
		writer := gw.S3Client(writerKey, writerSecret)
		requireDenied(t, "PutObject outside the prefix", putObject(writer, "elsewhere/x.txt", true))
		requireDenied(t, "DeleteObject of a delivered object", deleteObject(writer, key))
		if err := putObject(writer, proofPrefix+"/x.txt", true); err != nil {
			t.Errorf("PutObject with bucket-owner-full-control: %v", err)
		}
	})
	// The deny statements take nothing the agent needs: each is proven by
	// a request it denies, which its removal lets through.
	t.Run("without statement "+policy.SidRequireBucketOwnerFullControl, func(t *testing.T) {
		writer := gw.S3Client(writerKey, writerSecret)
		requireDenied(t, "PutObject without bucket-owner-full-control", putObject(writer, proofPrefix+"/x.txt", false))
		gw.PutBucketPolicy(t, proofBucket, asWriter(withoutStatement(t, tlsJSON, policy.SidRequireBucketOwnerFullControl)))
		defer gw.PutBucketPolicy(t, proofBucket, asWriter(tlsJSON))
		if err := putObject(writer, proofPrefix+"/x.txt", false); err != nil {
			t.Errorf("PutObject without the ACL, without the statement: %v", err)
		}
	})
	t.Run("without statement "+policy.SidDenyInsecureTransport, func(t *testing.T) {
		plain := testenv.StartVersityGW(t)
		key, secret := plain.CreateUser(t)
		plain.CreateBucket(t, proofBucket)
		writer := plain.S3Client(key, secret)
		plain.PutBucketPolicy(t, proofBucket, strings.ReplaceAll(tlsJSON, writerARN, key))
		requireDenied(t, "PutObject over HTTP", putObject(writer, proofPrefix+"/x.txt", true))
		without := withoutStatement(t, tlsJSON, policy.SidDenyInsecureTransport)
		if without != parseDocument(t, plainJSON).JSON() {
			t.Errorf("deny_insecure_transport = false is not the same document without %s", policy.SidDenyInsecureTransport)
		}
		plain.PutBucketPolicy(t, proofBucket, strings.ReplaceAll(without, writerARN, key))
		if err := putObject(writer, proofPrefix+"/x.txt", true); err != nil {
			t.Errorf("PutObject over HTTP without deny_insecure_transport: %v", err)
		}
	})
	t.Run("every deny statement is proven", func(t *testing.T) {
		for _, st := range parseDocument(t, tlsJSON).Statement {
			if st.Effect == "Deny" && st.Sid != policy.SidRequireBucketOwnerFullControl && st.Sid != policy.SidDenyInsecureTransport {
				t.Errorf("deny statement %s has no proof", st.Sid)
			}
		}
	})
}

// tryCreate runs the connection test of spec and deletes the destination
// again if it was created, so that removals do not deliver.
func tryCreate(t *testing.T, client *api.Client, spec api.DestinationSpec) (api.Destination, error) {
	t.Helper()
	dst, err := client.CreateDestination(context.Background(), spec)
	if err == nil {
		t.Logf("created, warnings: %q", dst.Warnings)
		if err := client.DeleteDestination(context.Background(), dst.ID); err != nil {
			t.Fatal(err)
		}
	}
	return dst, err
}

// parseDocument parses a policy document from terraform.
func parseDocument(t *testing.T, docJSON string) policy.Document {
	t.Helper()
	var doc policy.Document
	if err := json.Unmarshal([]byte(docJSON), &doc); err != nil {
		t.Fatalf("policy from terraform is not JSON: %v\n%s", err, docJSON)
	}
	return doc
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
	doc := parseDocument(t, docJSON)
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
	deadline := time.Now().Add(testenv.HangGuard)
	for time.Now().Before(deadline) {
		for _, key := range list() {
			// Neither the connection test's object nor a digest (one
			// appears when the test runs across an hour's end).
			if !strings.Contains(key, policy.ConnectionTestPrefix) && !strings.Contains(key, digest.Folder) {
				return key
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no object delivered after %s; keys: %v", testenv.HangGuard, list())
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

// TestAccPolicyProof_expectedBucketOwnerValidation: expected_bucket_owner
// is refused at plan time unless it is an account id.
func TestAccPolicyProof_expectedBucketOwnerValidation(t *testing.T) {
	agent := noAgent(t)
	for _, owner := range []string{"12345", "12345678901a", "1234567890123"} {
		resource.Test(t, resource.TestCase{
			ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
			Steps: []resource.TestStep{{
				Config: `
resource "auditexport_s3_destination" "this" {
  bucket                = "acme-audit"
  region                = "us-east-1"
  role_arn              = "arn:aws:iam::123456789012:role/delivery"
  expected_bucket_owner = "` + owner + `"
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`must be an AWS account id: 12 digits`),
			}},
		})
	}
	if err := agent.checkNotCalled(nil); err != nil {
		t.Error(err)
	}
}

package s3sink

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/auditexport/auditexport/internal/policy"
	"github.com/auditexport/auditexport/internal/testenv"
)

const externalID = "tenant-acme-3f9c2a"

// env is a moto_server with a delivery principal.
type env struct {
	moto *testenv.Moto
	p    *Principal
	arn  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	isolateAWSConfig(t)
	m := testenv.StartMoto(t)
	arn, key, secret := m.CreateUser(t, "auditexport-delivery")
	p, err := NewPrincipal(context.Background(), Options{
		Region:          m.Region,
		S3Endpoint:      m.S3URL,
		STSEndpoint:     m.URL,
		UsePathStyle:    true,
		AccessKeyID:     key,
		SecretAccessKey: secret,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{moto: m, p: p, arn: arn}
}

// isolateAWSConfig keeps the machine's AWS profile and endpoint settings out
// of the SDK's default chain.
func isolateAWSConfig(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	for _, v := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL",
		"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS", "AWS_REGION", "AWS_DEFAULT_REGION"} {
		t.Setenv(v, "")
	}
}

// role creates a role that trusts the delivery principal with externalID.
func (e *env) role(t *testing.T, name string, rolePolicy policy.Document) string {
	t.Helper()
	return e.moto.CreateRole(t, name, policy.TrustPolicy(e.arn, externalID).JSON(), rolePolicy.JSON())
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	return e
}

func TestConnectionTest(t *testing.T) {
	e := newEnv(t)
	e.moto.CreateBucket(t, "audit-us", "us-east-1")
	e.moto.CreateBucket(t, "audit-eu", "eu-west-1")

	roles := map[string]string{
		"ok":        e.role(t, "ok", policy.RolePolicy("audit-us", "logs", "")),
		"missing":   e.role(t, "missing", policy.RolePolicy("no-such-bucket", "logs", "")),
		"eu":        e.role(t, "eu", policy.RolePolicy("audit-eu", "logs", "")),
		"otherpfx":  e.role(t, "otherpfx", policy.RolePolicy("audit-us", "other", "")),
		"nodelete":  e.role(t, "nodelete", policy.RolePolicy("audit-us", "nodelete", "").WithoutAction("s3:DeleteObject")),
		"noabort":   e.role(t, "noabort", policy.RolePolicy("audit-us", "noabort", "").WithoutAction("s3:AbortMultipartUpload")),
		"kms":       e.role(t, "kms", policy.RolePolicy("audit-us", "kms", "arn:aws:kms:us-east-1:123456789012:key/k1")),
		"untrusted": e.moto.CreateRole(t, "untrusted", policy.TrustPolicy("arn:aws:iam::123456789012:user/someone-else", externalID).JSON(), policy.RolePolicy("audit-us", "logs", "").JSON()),
	}
	target := func(role, bucket, region, prefix string) Target {
		return Target{Bucket: bucket, Region: region, Prefix: prefix, RoleARN: roles[role], ExternalID: externalID}
	}

	cases := []struct {
		name   string
		target Target
		// For a passing test: the denied call of each warning. For a
		// failing one: the calls that may fail, the code and substrings of
		// the message.
		warnings []string
		calls    []string
		code     string
		contains []string
	}{
		{
			name:   "success",
			target: target("ok", "audit-us", "us-east-1", "logs/"),
		},
		{
			name:   "success with sse-kms",
			target: withKMS(target("kms", "audit-us", "us-east-1", "kms"), "arn:aws:kms:us-east-1:123456789012:key/k1"),
		},
		{
			name: "wrong external id",
			target: func() Target {
				tg := target("ok", "audit-us", "us-east-1", "logs")
				tg.ExternalID = "tenant-other"
				return tg
			}(),
			calls:    []string{"AssumeRole"},
			code:     "AccessDenied",
			contains: []string{"AssumeRole denied (AccessDenied)", "sts:ExternalId \"tenant-other\"", e.arn, trustPolicySource},
		},
		{
			name:     "principal not trusted",
			target:   target("untrusted", "audit-us", "us-east-1", "logs"),
			calls:    []string{"AssumeRole"},
			code:     "AccessDenied",
			contains: []string{e.arn, "trust policy", trustPolicySource},
		},
		{
			name:     "bucket does not exist",
			target:   target("missing", "no-such-bucket", "us-east-1", "logs"),
			calls:    []string{"HeadBucket", "PutObject"},
			code:     "NoSuchBucket",
			contains: []string{`bucket "no-such-bucket" does not exist`},
		},
		{
			name:     "wrong region",
			target:   target("eu", "audit-eu", "us-east-1", "logs"),
			calls:    []string{"HeadBucket"},
			code:     CodeWrongRegion,
			contains: []string{"eu-west-1", "us-east-1", `set region = "eu-west-1"`},
		},
		{
			name:     "role policy lacks s3:PutObject on the prefix",
			target:   target("otherpfx", "audit-us", "us-east-1", "logs"),
			calls:    []string{"PutObject"},
			code:     "AccessDenied",
			contains: []string{"s3:PutObject on arn:aws:s3:::audit-us/logs/*", rolePolicySource, bucketPolicySource},
		},
		{
			name:     "role policy lacks s3:DeleteObject",
			target:   target("nodelete", "audit-us", "us-east-1", "nodelete"),
			warnings: []string{"DeleteObject"},
		},
		{
			name:     "role policy lacks s3:AbortMultipartUpload",
			target:   target("noabort", "audit-us", "us-east-1", "noabort"),
			warnings: []string{"AbortMultipartUpload"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.p.Test(context.Background(), tc.target)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Test: %v", err)
				}
				checkPassed(t, e.moto, tc.target, res, tc.warnings)
				return
			}
			if err == nil {
				t.Fatalf("Test passed, want %s error", tc.code)
			}
			got := asError(t, err)
			t.Logf("error: %v", got)
			if !contains(tc.calls, got.Call) {
				t.Errorf("Call = %q, want one of %q", got.Call, tc.calls)
			}
			if got.Code != tc.code {
				t.Errorf("Code = %q, want %q", got.Code, tc.code)
			}
			for _, s := range tc.contains {
				if !strings.Contains(got.Error(), s) {
					t.Errorf("message lacks %q: %s", s, got.Error())
				}
			}
			if got.Retryable {
				t.Errorf("a configuration error is marked retryable")
			}
		})
	}
}

func checkPassed(t *testing.T, m *testenv.Moto, tg Target, res TestResult, warnings []string) {
	t.Helper()
	prefix := policy.CleanPrefix(tg.Prefix) + "/_auditexport/connection-test-"
	if !strings.HasPrefix(res.Key, prefix) {
		t.Errorf("test key %q does not start with %q", res.Key, prefix)
	}
	if len(res.Warnings) != len(warnings) {
		t.Fatalf("warnings = %q, want %d", res.Warnings, len(warnings))
	}
	// Each warning names the denied call, the permission and the data
	// source that grants it.
	for i, call := range warnings {
		w := res.Warnings[i]
		if !strings.Contains(w, call+" denied (AccessDenied)") || !strings.Contains(w, "s3:"+call) || !strings.Contains(w, rolePolicySource) {
			t.Errorf("warning = %q, want it to name %s, s3:%s and %s", w, call, call, rolePolicySource)
		}
	}
	left := m.ListKeys(t, tg.Bucket, prefix)
	if slices.Contains(warnings, "DeleteObject") {
		if len(left) != 1 || left[0] != res.Key {
			t.Errorf("keys left = %q, want the test object %q", left, res.Key)
		}
	} else if len(left) != 0 {
		t.Errorf("test object not deleted: %q", left)
	}
	// The connection test's multipart upload is aborted, or reported.
	uploads := multipartUploads(t, m, tg.Bucket, prefix)
	if slices.Contains(warnings, "AbortMultipartUpload") {
		if len(uploads) != 1 {
			t.Errorf("incomplete uploads = %q, want the connection test's, left behind as the warning says", uploads)
		}
	} else if len(uploads) != 0 {
		t.Errorf("incomplete uploads left behind: %q", uploads)
	}
}

// multipartUploads lists the keys of incomplete multipart uploads under
// prefix, as the admin.
func multipartUploads(t *testing.T, m *testenv.Moto, bucket, prefix string) []string {
	t.Helper()
	out, err := m.S3Client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("ListMultipartUploads %s: %v", bucket, err)
	}
	var keys []string
	for _, u := range out.Uploads {
		if key := aws.ToString(u.Key); strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
	}
	return keys
}

func withKMS(t Target, key string) Target {
	t.Encryption = EncryptionSSEKMS
	t.KMSKeyARN = key
	return t
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// A role created in the same apply is not assumable at once; with a retry
// budget the test waits for it.
func TestConnectionTestRetriesAssumeRole(t *testing.T) {
	e := newEnv(t)
	e.moto.CreateBucket(t, "audit", "us-east-1")
	// The trust policy names someone else until the "propagation" below.
	roleARN := e.moto.CreateRole(t, "late",
		policy.TrustPolicy("arn:aws:iam::123456789012:user/nobody", externalID).JSON(),
		policy.RolePolicy("audit", "", "").JSON())
	target := Target{Bucket: "audit", Region: "us-east-1", RoleARN: roleARN, ExternalID: externalID}

	if _, err := e.p.Test(context.Background(), target); asError(t, err).Call != "AssumeRole" {
		t.Fatalf("without retry: %v, want an AssumeRole error", err)
	}

	go func() {
		time.Sleep(time.Second)
		_, err := e.moto.IAMClient().UpdateAssumeRolePolicy(context.Background(), &iam.UpdateAssumeRolePolicyInput{
			RoleName:       aws.String("late"),
			PolicyDocument: aws.String(policy.TrustPolicy(e.arn, externalID).JSON()),
		})
		if err != nil {
			t.Errorf("UpdateAssumeRolePolicy: %v", err)
		}
	}()
	// Test returns as soon as the role is assumable; the budget only has
	// to outlast a slow machine.
	e.p.opts.AssumeRoleRetry = 2 * time.Minute
	start := time.Now()
	if _, err := e.p.Test(context.Background(), target); err != nil {
		t.Fatalf("with retry: %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("passed after %s, before the trust policy was fixed", d)
	}
}

func TestConnectionTestStaticKeys(t *testing.T) {
	e := newEnv(t)
	e.moto.CreateBucket(t, "audit", "us-east-1")
	_, key, secret := e.moto.CreateUser(t, "customer-writer")
	_, err := e.moto.IAMClient().PutUserPolicy(context.Background(), &iam.PutUserPolicyInput{
		UserName:       aws.String("customer-writer"),
		PolicyName:     aws.String("write"),
		PolicyDocument: aws.String(policy.RolePolicy("audit", "logs", "").JSON()),
	})
	if err != nil {
		t.Fatal(err)
	}
	target := Target{Bucket: "audit", Region: "us-east-1", Prefix: "logs", AccessKeyID: key, SecretAccessKey: secret}
	res, err := e.p.Test(context.Background(), target)
	if err != nil {
		t.Fatalf("Test: %v", err)
	}
	checkPassed(t, e.moto, target, res, nil)

	target.SecretAccessKey = "wrong"
	_, err = e.p.Test(context.Background(), target)
	if err == nil {
		t.Fatal("Test passed with a wrong secret")
	}
	got := asError(t, err)
	if got.Code != "SignatureDoesNotMatch" || !strings.Contains(got.Error(), "secret_access_key is wrong") {
		t.Errorf("error = %v (code %q)", got, got.Code)
	}

	target.AccessKeyID = "AKIAUNKNOWN000000000"
	_, err = e.p.Test(context.Background(), target)
	if got := asError(t, err); got.Code != "InvalidAccessKeyId" || !strings.Contains(got.Error(), "access_key_id") {
		t.Errorf("error = %v (code %q)", got, got.Code)
	}
}

func TestPut(t *testing.T) {
	e := newEnv(t)
	e.moto.CreateBucket(t, "audit", "us-east-1")
	roleARN := e.role(t, "writer", policy.RolePolicy("audit", "logs", "arn:aws:kms:us-east-1:123456789012:key/k1"))
	ctx := context.Background()

	t.Run("write once", func(t *testing.T) {
		w := e.p.Writer(Target{Bucket: "audit", Region: "us-east-1", Prefix: "logs", RoleARN: roleARN,
			ExternalID: externalID, ACL: ACLBucketOwnerFullControl, StorageClass: "STANDARD_IA"})
		key := w.Key("a/1.ndjson.gz")
		meta := PutMeta{ContentType: "application/x-ndjson", ContentEncoding: "gzip"}
		res, err := w.Put(ctx, key, strings.NewReader("first"), 5, meta)
		if err != nil || res.AlreadyExists {
			t.Fatalf("first Put = %+v, %v", res, err)
		}
		res, err = w.Put(ctx, key, strings.NewReader("second"), 6, meta)
		if err != nil || !res.AlreadyExists {
			t.Fatalf("second Put = %+v, %v; want AlreadyExists", res, err)
		}
		if got := string(e.moto.GetObject(t, "audit", key)); got != "first" {
			t.Errorf("object = %q, want the first write", got)
		}
		head := headObject(t, e.moto, "audit", key)
		if head.ServerSideEncryption != types.ServerSideEncryptionAes256 {
			t.Errorf("ServerSideEncryption = %q", head.ServerSideEncryption)
		}
		if head.StorageClass != types.StorageClassStandardIa {
			t.Errorf("StorageClass = %q", head.StorageClass)
		}
		if aws.ToString(head.ContentType) != meta.ContentType || aws.ToString(head.ContentEncoding) != meta.ContentEncoding {
			t.Errorf("Content-Type %q, Content-Encoding %q", aws.ToString(head.ContentType), aws.ToString(head.ContentEncoding))
		}
	})

	t.Run("sse-kms", func(t *testing.T) {
		keyARN := "arn:aws:kms:us-east-1:123456789012:key/k1"
		w := e.p.Writer(withKMS(Target{Bucket: "audit", Region: "us-east-1", Prefix: "logs",
			RoleARN: roleARN, ExternalID: externalID}, keyARN))
		key := w.Key("kms.txt")
		if _, err := w.Put(ctx, key, strings.NewReader("x"), -1, PutMeta{}); err != nil {
			t.Fatal(err)
		}
		head := headObject(t, e.moto, "audit", key)
		if head.ServerSideEncryption != types.ServerSideEncryptionAwsKms || aws.ToString(head.SSEKMSKeyId) != keyARN {
			t.Errorf("SSE = %q, key %q", head.ServerSideEncryption, aws.ToString(head.SSEKMSKeyId))
		}
	})

	t.Run("denied AssumeRole names AssumeRole", func(t *testing.T) {
		w := e.p.Writer(Target{Bucket: "audit", Region: "us-east-1", Prefix: "logs", RoleARN: roleARN, ExternalID: "wrong"})
		_, err := w.Put(ctx, w.Key("x"), strings.NewReader("x"), 1, PutMeta{})
		if got := asError(t, err); got.Call != "AssumeRole" || got.Code != "AccessDenied" {
			t.Errorf("error = %v (call %q, code %q)", got, got.Call, got.Code)
		}
	})

	t.Run("unknown encryption", func(t *testing.T) {
		w := e.p.Writer(Target{Bucket: "audit", RoleARN: roleARN, ExternalID: externalID, Encryption: "rot13"})
		if _, err := w.Put(ctx, "logs/y", strings.NewReader("y"), 1, PutMeta{}); err == nil {
			t.Error("Put accepted an unknown encryption")
		}
	})
}

func headObject(t *testing.T, m *testenv.Moto, bucket, key string) *s3.HeadObjectOutput {
	t.Helper()
	out, err := m.S3Client().HeadObject(context.Background(), &s3.HeadObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		t.Fatalf("HeadObject %s/%s: %v", bucket, key, err)
	}
	return out
}

func TestPrincipalARN(t *testing.T) {
	e := newEnv(t)
	got, err := e.p.ARN(context.Background())
	if err != nil || got != e.arn {
		t.Errorf("ARN = %q, %v; want %q", got, err, e.arn)
	}
}

// A Writer of a role is ready only once its session is assumed (and then
// until the session is due for renewal): Prepare is what makes it ready,
// and every Writer of the role shares the session. Static keys and the
// principal's own credentials are always ready. A failed AssumeRole leaves
// the Writer not ready.
func TestWriterReady(t *testing.T) {
	e := newEnv(t)
	roleARN := e.role(t, "ready", policy.RolePolicy("audit", "", ""))
	tests := []struct {
		name                string
		target              Target
		beforePrepare, want bool
		prepareFails        bool
	}{
		{name: "role", target: Target{Bucket: "audit", RoleARN: roleARN, ExternalID: externalID}, want: true},
		{name: "wrong external id", target: Target{Bucket: "audit", RoleARN: roleARN, ExternalID: "someone-else"}, prepareFails: true},
		{name: "static keys", target: Target{Bucket: "audit", AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "secret"}, beforePrepare: true, want: true},
		{name: "principal", target: Target{Bucket: "audit"}, beforePrepare: true, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.p.Writer(tt.target)
			if got := w.Ready(); got != tt.beforePrepare {
				t.Fatalf("Ready before Prepare = %v, want %v", got, tt.beforePrepare)
			}
			if err := w.Prepare(context.Background()); (err != nil) != tt.prepareFails {
				t.Fatalf("Prepare: %v, want failure %v", err, tt.prepareFails)
			}
			if got := w.Ready(); got != tt.want {
				t.Fatalf("Ready after Prepare = %v, want %v", got, tt.want)
			}
			if other := e.p.Writer(tt.target); other.Ready() != tt.want {
				t.Fatalf("another Writer of the same target: Ready = %v, want %v", other.Ready(), tt.want)
			}
		})
	}
}

package s3sink

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// awsError builds the error the SDK returns for an AWS error response.
func awsError(service, op string, status int, code, msg string, header http.Header) error {
	if header == nil {
		header = http.Header{}
	}
	var inner error = &smithy.GenericAPIError{Code: code, Message: msg}
	return &smithy.OperationError{
		ServiceID:     service,
		OperationName: op,
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: header}},
				Err:      inner,
			},
		},
	}
}

// Cases that moto cannot produce, checked against the error shapes AWS
// returns.
func TestClassify(t *testing.T) {
	isolateAWSConfig(t)
	p, err := NewPrincipal(context.Background(), Options{
		Region:          "us-east-1",
		PrincipalARN:    "arn:aws:iam::111122223333:user/delivery",
		AccessKeyID:     "AKIAEXAMPLE",
		SecretAccessKey: "secret",
	})
	if err != nil {
		t.Fatal(err)
	}
	role := Target{Bucket: "audit", Region: "us-east-1", Prefix: "logs", RoleARN: "arn:aws:iam::444455556666:role/export",
		ExternalID: "ext-1", Encryption: EncryptionSSEKMS, KMSKeyARN: "arn:aws:kms:us-east-1:444455556666:key/k1"}
	keys := Target{Bucket: "audit", Region: "us-east-1", AccessKeyID: "AKIACUSTOMER", SecretAccessKey: "x", ACL: ACLBucketOwnerFullControl}
	keysNoACL := keys
	keysNoACL.ACL = ACLNone
	keysOwner := keys
	keysOwner.ExpectedBucketOwner = "777788889999"

	cases := []struct {
		name      string
		target    Target
		call      string
		err       error
		wantCall  string
		wantCode  string
		contains  []string
		lacks     []string
		retryable bool
	}{
		{
			name:     "AssumeRole denied",
			target:   role,
			call:     "AssumeRole",
			err:      awsError("STS", "AssumeRole", 403, "AccessDenied", "User: x is not authorized to perform: sts:AssumeRole", nil),
			wantCall: "AssumeRole",
			wantCode: "AccessDenied",
			contains: []string{`AssumeRole denied (AccessDenied): the role's trust policy must allow arn:aws:iam::111122223333:user/delivery to call sts:AssumeRole with sts:ExternalId "ext-1"`, trustPolicySource},
		},
		{
			name:   "AssumeRole denied inside PutObject",
			target: role,
			call:   "PutObject",
			err: &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject",
				Err: awsError("STS", "AssumeRole", 403, "AccessDenied", "denied", nil)},
			wantCall: "AssumeRole",
			wantCode: "AccessDenied",
			contains: []string{"sts:ExternalId"},
		},
		{
			name:     "PermanentRedirect with region header",
			target:   role,
			call:     "PutObject",
			err:      awsError("S3", "PutObject", 301, "PermanentRedirect", "The bucket you are attempting to access must be addressed using the specified endpoint.", http.Header{"X-Amz-Bucket-Region": {"eu-central-1"}}),
			wantCall: "PutObject",
			wantCode: "PermanentRedirect",
			contains: []string{`bucket "audit" is in region eu-central-1, not us-east-1: set region = "eu-central-1"`},
		},
		{
			name:     "AuthorizationHeaderMalformed",
			target:   role,
			call:     "PutObject",
			err:      awsError("S3", "PutObject", 400, "AuthorizationHeaderMalformed", "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'ap-south-1'", nil),
			wantCode: "AuthorizationHeaderMalformed",
			contains: []string{"ap-south-1", "us-east-1"},
		},
		{
			name:     "IllegalLocationConstraintException without a region",
			target:   role,
			call:     "PutObject",
			err:      awsError("S3", "PutObject", 400, "IllegalLocationConstraintException", "The me-south-1 location constraint is incompatible", nil),
			wantCode: "IllegalLocationConstraintException",
			contains: []string{`bucket "audit" is not in region us-east-1`},
		},
		{
			name:     "HeadBucket 404",
			target:   role,
			call:     "HeadBucket",
			err:      awsError("S3", "HeadBucket", 404, "NotFound", "", nil),
			wantCode: CodeNoSuchBucket,
			contains: []string{`bucket "audit" does not exist`},
		},
		{
			name:     "KMS key not found",
			target:   role,
			call:     "PutObject",
			err:      awsError("S3", "PutObject", 400, "KMS.NotFoundException", "Invalid keyId", nil),
			wantCode: "KMS.NotFoundException",
			contains: []string{"KMS key arn:aws:kms:us-east-1:444455556666:key/k1 does not exist"},
		},
		{
			name:     "KMS access denied",
			target:   role,
			call:     "PutObject",
			err:      awsError("S3", "PutObject", 403, "AccessDenied", "User: arn:aws:sts::444455556666:assumed-role/export/auditexport is not authorized to perform: kms:GenerateDataKey on resource: arn:aws:kms:us-east-1:444455556666:key/k1", nil),
			wantCode: "AccessDenied",
			contains: []string{"must allow kms:GenerateDataKey and kms:Decrypt (data source auditexport_role_policy)", rolePolicySource},
			lacks:    []string{"kms:Encrypt"},
		},
		{
			name:     "PutObject denied with static keys",
			target:   keys,
			call:     "PutObject",
			err:      awsError("S3", "PutObject", 403, "AccessDenied", "Access Denied", nil),
			wantCode: "AccessDenied",
			contains: []string{"must allow access key AKIACUSTOMER s3:PutObject on arn:aws:s3:::audit/*", bucketPolicySource},
		},
		{
			name:     "PutObject denied with static keys and acl none",
			target:   keysNoACL,
			call:     "PutObject",
			err:      awsError("S3", "PutObject", 403, "AccessDenied", "Access Denied", nil),
			wantCode: "AccessDenied",
			contains: []string{`acl is "none"`, "AuditExportRequireBucketOwnerFullControl", bucketPolicySource,
				`set acl = "bucket-owner-full-control"`, "otherwise the bucket policy must allow access key AKIACUSTOMER s3:PutObject"},
		},
		{
			name:     "PutObject denied with a role names the role's account as owner",
			target:   role,
			call:     "PutObject",
			err:      awsError("S3", "PutObject", 403, "AccessDenied", "Access Denied", nil),
			wantCode: "AccessDenied",
			contains: []string{`bucket "audit" is not owned by account 444455556666, the account of role_arn (expected_bucket_owner)`},
		},
		{
			name:     "UploadPart denied with expected_bucket_owner",
			target:   keysOwner,
			call:     "UploadPart",
			err:      awsError("S3", "UploadPart", 403, "AccessDenied", "Access Denied", nil),
			wantCode: "AccessDenied",
			contains: []string{"s3:PutObject on arn:aws:s3:::audit/*", `bucket "audit" is not owned by account 777788889999 (expected_bucket_owner)`},
		},
		{
			name:     "PutObject denied with static keys and no owner says nothing of ownership",
			target:   keys,
			call:     "PutObject",
			err:      awsError("S3", "PutObject", 403, "AccessDenied", "Access Denied", nil),
			wantCode: "AccessDenied",
			lacks:    []string{"not owned", "acl is"},
		},
		{
			name:     "DeleteObject denied with static keys names the bucket policy",
			target:   keys,
			call:     "DeleteObject",
			err:      awsError("S3", "DeleteObject", 403, "AccessDenied", "Access Denied", nil),
			wantCode: "AccessDenied",
			contains: []string{"the bucket policy must allow access key AKIACUSTOMER s3:DeleteObject on arn:aws:s3:::audit/_auditexport/connection-test-*", bucketPolicySource},
			lacks:    []string{rolePolicySource, "the IAM policy of access key"},
		},
		{
			name:     "DeleteObject denied with a role names the role policy",
			target:   role,
			call:     "DeleteObject",
			err:      awsError("S3", "DeleteObject", 403, "AccessDenied", "Access Denied", nil),
			wantCode: "AccessDenied",
			contains: []string{"the role policy of arn:aws:iam::444455556666:role/export must allow s3:DeleteObject", rolePolicySource},
		},
		{
			name:     "AbortMultipartUpload denied",
			target:   role,
			call:     "AbortMultipartUpload",
			err:      awsError("S3", "AbortMultipartUpload", 403, "AccessDenied", "Access Denied", nil),
			wantCode: "AccessDenied",
			contains: []string{"AbortMultipartUpload denied (AccessDenied)", "must allow s3:AbortMultipartUpload on arn:aws:s3:::audit/logs/*", rolePolicySource},
		},
		{
			name:     "AbortMultipartUpload denied with static keys",
			target:   keys,
			call:     "AbortMultipartUpload",
			err:      awsError("S3", "AbortMultipartUpload", 403, "AccessDenied", "Access Denied", nil),
			wantCode: "AccessDenied",
			contains: []string{"access key AKIACUSTOMER s3:AbortMultipartUpload", bucketPolicySource},
		},
		{
			name:     "ACLs disabled",
			target:   Target{Bucket: "audit", Region: "us-east-1", ACL: "public-read"},
			call:     "PutObject",
			err:      awsError("S3", "PutObject", 400, "AccessControlListNotSupported", "The bucket does not allow ACLs", nil),
			wantCode: "AccessControlListNotSupported",
			contains: []string{"ACLs disabled", `"none"`},
		},
		{
			name:      "SlowDown",
			target:    role,
			call:      "PutObject",
			err:       awsError("S3", "PutObject", 503, "SlowDown", "Please reduce your request rate.", nil),
			wantCode:  "SlowDown",
			contains:  []string{"PutObject failed (SlowDown): Please reduce your request rate."},
			retryable: true,
		},
		{
			name:      "internal error",
			target:    role,
			call:      "PutObject",
			err:       awsError("S3", "PutObject", 500, "InternalError", "We encountered an internal error.", nil),
			wantCode:  "InternalError",
			retryable: true,
		},
		{
			name:      "network error",
			target:    role,
			call:      "PutObject",
			err:       &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}},
			contains:  []string{"PutObject failed: ", "connection refused"},
			retryable: true,
		},
		{
			name:     "canceled",
			target:   role,
			call:     "PutObject",
			err:      &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: context.Canceled},
			contains: []string{"canceled"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := p.Writer(tc.target).fail(context.Background(), tc.call, tc.err)
			wantCall := tc.wantCall
			if wantCall == "" {
				wantCall = tc.call
			}
			if got.Call != wantCall || got.Code != tc.wantCode {
				t.Errorf("call, code = %q, %q; want %q, %q", got.Call, got.Code, wantCall, tc.wantCode)
			}
			for _, s := range tc.contains {
				if !strings.Contains(got.Error(), s) {
					t.Errorf("message lacks %q: %s", s, got.Error())
				}
			}
			for _, s := range tc.lacks {
				if strings.Contains(got.Error(), s) {
					t.Errorf("message has %q: %s", s, got.Error())
				}
			}
			if got.Retryable != tc.retryable {
				t.Errorf("Retryable = %v, want %v", got.Retryable, tc.retryable)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("the SDK error is not wrapped")
			}
		})
	}
}

func TestBucketOwner(t *testing.T) {
	cases := []struct {
		name   string
		target Target
		want   string
	}{
		{"role", Target{RoleARN: "arn:aws:iam::444455556666:role/export"}, "444455556666"},
		{"role in another partition", Target{RoleARN: "arn:aws-us-gov:iam::444455556666:role/a/b"}, "444455556666"},
		{"role and owner", Target{RoleARN: "arn:aws:iam::444455556666:role/export", ExpectedBucketOwner: "444455556666"}, "444455556666"},
		{"keys", Target{AccessKeyID: "AKIACUSTOMER"}, ""},
		{"keys and owner", Target{AccessKeyID: "AKIACUSTOMER", ExpectedBucketOwner: "111122223333"}, "111122223333"},
		{"not a role", Target{RoleARN: "arn:aws:iam::444455556666:user/export"}, ""},
	}
	for _, tc := range cases {
		if got := tc.target.BucketOwner(); got != tc.want {
			t.Errorf("%s: BucketOwner() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestPreconditionFailed(t *testing.T) {
	if !preconditionFailed(awsError("S3", "PutObject", 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold", nil)) {
		t.Error("412 PreconditionFailed not recognised")
	}
	if preconditionFailed(awsError("S3", "PutObject", 409, "ConditionalRequestConflict", "", nil)) {
		t.Error("409 taken for an existing object")
	}
}

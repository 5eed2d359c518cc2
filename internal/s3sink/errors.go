package s3sink

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/auditexport/auditexport/internal/policy"
)

// Codes set by this package where AWS gives none or an unhelpful one.
const (
	// CodeWrongRegion: the bucket's region, found by HeadBucket, differs
	// from the destination's region.
	CodeWrongRegion = "WrongRegion"
	// CodeNoSuchBucket replaces the bare "NotFound" of a HeadBucket 404.
	CodeNoSuchBucket = "NoSuchBucket"
)

// Names of the data sources that publish the documents of package policy.
const (
	trustPolicySource  = policy.TrustPolicySource
	rolePolicySource   = policy.RolePolicySource
	bucketPolicySource = policy.BucketPolicySource
)

// Error is a failed AWS call with a hint for the customer.
type Error struct {
	// Call is the failing AWS operation: AssumeRole, HeadBucket, PutObject,
	// CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
	// AbortMultipartUpload or DeleteObject.
	Call string
	// Code is the AWS error code, such as AccessDenied or NoSuchBucket, or
	// one of the Code constants of this package.
	Code string
	// Message is the message AWS returned, or the error text when the call
	// got no AWS response.
	Message string
	// Fix says what the customer must change; empty when there is nothing
	// to change on their side.
	Fix string
	// Retryable tells that the same call may succeed later unchanged:
	// throttling, 5xx, network and expired-session errors.
	Retryable bool

	err error
}

// Error renders the call, the code and the fix as one sentence, for example
// `AssumeRole denied (AccessDenied): the role's trust policy must allow ...`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Call)
	if isDenied(e.Code) {
		b.WriteString(" denied")
	} else {
		b.WriteString(" failed")
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	b.WriteString(": ")
	if e.Fix != "" {
		b.WriteString(e.Fix)
	} else {
		b.WriteString(e.Message)
	}
	return b.String()
}

// Unwrap returns the SDK error.
func (e *Error) Unwrap() error { return e.err }

// fail turns err, returned by call, into an *Error.
func (w *Writer) fail(ctx context.Context, call string, err error) *Error {
	// An S3 call fails in AssumeRole when the cached role credentials had
	// to be refreshed: blame the call that really failed.
	if fromAssumeRole(err) {
		call = "AssumeRole"
	}
	e := &Error{Call: call, Message: err.Error(), err: err}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		e.Code = apiErr.ErrorCode()
		if msg := apiErr.ErrorMessage(); msg != "" {
			e.Message = msg
		}
	}
	status := httpStatus(err)
	if call == "HeadBucket" && status == http.StatusNotFound {
		e.Code = CodeNoSuchBucket
	}
	e.Retryable = isRetryable(err, e.Code, status)
	e.Fix = w.fix(ctx, e, status, err)
	return e
}

// fix returns what the customer must change to make e go away, or "".
func (w *Writer) fix(ctx context.Context, e *Error, status int, err error) string {
	switch {
	case e.Call == "AssumeRole":
		return w.assumeRoleFix(ctx, e.Code)
	case isWrongRegion(e.Code, status):
		return w.regionFix(regionFromError(err))
	case e.Code == CodeNoSuchBucket:
		return fmt.Sprintf("bucket %q does not exist: create it or correct the bucket name", w.t.Bucket)
	case strings.HasPrefix(e.Code, "KMS.") || (isDenied(e.Code) && mentionsKMS(e.Message)):
		return w.kmsFix(e.Code)
	case e.Code == "InvalidAccessKeyId" || e.Code == "SignatureDoesNotMatch":
		if w.t.AccessKeyID != "" {
			return "the destination's access_key_id or secret_access_key is wrong: create a new access key and update both"
		}
		return ""
	case e.Code == "AccessControlListNotSupported":
		return fmt.Sprintf("bucket %q has ACLs disabled (object ownership \"bucket owner enforced\"): set acl to %q or %q",
			w.t.Bucket, ACLBucketOwnerFullControl, ACLNone)
	case e.Code == "InvalidStorageClass":
		return fmt.Sprintf("storage class %q is not valid for this bucket", w.t.StorageClass)
	case isDenied(e.Code) && isObjectWrite(e.Call):
		return w.putDeniedFix()
	case isDenied(e.Code) && e.Call == "AbortMultipartUpload":
		return w.grantFix("s3:AbortMultipartUpload", policy.ObjectARN(w.t.Bucket, w.t.Prefix),
			"so that a failed multipart upload is not left behind")
	case isDenied(e.Code) && e.Call == "DeleteObject":
		return w.grantFix("s3:DeleteObject", policy.ConnectionTestObjectARN(w.t.Bucket, w.t.Prefix),
			"so that the connection test can remove its test object")
	}
	return ""
}

// isObjectWrite tells whether call needs s3:PutObject.
func isObjectWrite(call string) bool {
	switch call {
	case "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload":
		return true
	}
	return false
}

func (w *Writer) assumeRoleFix(ctx context.Context, code string) string {
	switch code {
	case "AccessDenied":
		principal, err := w.p.ARN(ctx)
		if err != nil {
			principal = "the delivery principal"
		}
		return fmt.Sprintf("the role's trust policy must allow %s to call sts:AssumeRole with sts:ExternalId %q (data source %s); check also that role %s exists",
			principal, w.t.ExternalID, trustPolicySource, w.t.RoleARN)
	case "NoSuchEntity":
		return fmt.Sprintf("role %s does not exist: create it or correct role_arn", w.t.RoleARN)
	case "RegionDisabledException":
		return fmt.Sprintf("STS is not activated in region %s for the delivery principal's account", w.p.cfg.Region)
	case "ValidationError":
		return fmt.Sprintf("role_arn %q is not a valid IAM role ARN", w.t.RoleARN)
	}
	// Other failures (the principal's own keys rejected, throttling) are
	// the operator's to fix, not the customer's.
	return ""
}

func (w *Writer) regionFix(actual string) string {
	if actual == "" || actual == w.region {
		return fmt.Sprintf("bucket %q is not in region %s: set region to the bucket's region", w.t.Bucket, w.region)
	}
	return fmt.Sprintf("bucket %q is in region %s, not %s: set region = %q", w.t.Bucket, actual, w.region, actual)
}

func (w *Writer) kmsFix(code string) string {
	key := w.t.KMSKeyARN
	if key == "" {
		key = "the bucket's default KMS key"
	}
	switch code {
	case "KMS.NotFoundException":
		return fmt.Sprintf("KMS key %s does not exist in region %s: correct kms_key_arn", key, w.region)
	case "KMS.DisabledException", "KMS.KMSInvalidStateException":
		return fmt.Sprintf("KMS key %s is disabled or pending deletion: enable it or choose another key", key)
	}
	return fmt.Sprintf("%s and the key policy of %s must allow %s (data source %s)",
		w.identityPolicy(), key, strings.Join(policy.KMSActions(), " and "), rolePolicySource)
}

// putDeniedFix explains a denied object write. The permission may be
// missing, the destination may not send the ACL that the bucket policy
// requires, or the bucket may belong to another account than expected.
func (w *Writer) putDeniedFix() string {
	objects := policy.ObjectARN(w.t.Bucket, w.t.Prefix)
	var fix string
	if w.t.AccessKeyID == "" && w.t.RoleARN != "" {
		fix = fmt.Sprintf("%s must allow s3:PutObject on %s (data source %s) and the bucket policy must not deny it (data source %s)",
			w.identityPolicy(), objects, rolePolicySource, bucketPolicySource)
	} else {
		fix = w.grantFix("s3:PutObject", objects, "")
	}
	if w.t.ACL == "" || w.t.ACL == ACLNone || w.t.ACL == "private" {
		// The grant is there but its Deny of writes without the ACL
		// matches: the destination's setting is what must change.
		acl := w.t.ACL
		if acl == "" {
			acl = ACLNone
		}
		fix = fmt.Sprintf("acl is %q, so the write carries no bucket-owner-full-control ACL: if the bucket policy requires it "+
			"(statement %s, require_bucket_owner_full_control of data source %s), set acl = %q; otherwise %s",
			acl, policy.SidRequireBucketOwnerFullControl, bucketPolicySource, ACLBucketOwnerFullControl, fix)
	}
	return fix + w.ownerHint()
}

// grantFix names the policy that must grant action on resource, and the
// data source that writes it: the role policy for a role, the bucket policy
// for static keys (the grant that auditexport_bucket_policy makes).
func (w *Writer) grantFix(action, resource, why string) string {
	if why != "" {
		why = " " + why
	}
	switch {
	case w.t.AccessKeyID != "":
		// Static keys belong to a user of the bucket's account or another:
		// either way the bucket policy is where the customer grants them.
		return fmt.Sprintf("the bucket policy must allow access key %s %s on %s (data source %s)%s, or the key's IAM policy must",
			w.t.AccessKeyID, action, resource, bucketPolicySource, why)
	case w.t.RoleARN != "":
		return fmt.Sprintf("%s must allow %s on %s (data source %s)%s",
			w.identityPolicy(), action, resource, rolePolicySource, why)
	}
	return fmt.Sprintf("the bucket policy must allow the delivery principal %s on %s (data source %s)%s",
		action, resource, bucketPolicySource, why)
}

// ownerHint is the other cause of a denied S3 call when the requests carry
// x-amz-expected-bucket-owner: S3 answers 403 AccessDenied to every request
// for a bucket that another account owns, the same answer as a missing
// permission.
func (w *Writer) ownerHint() string {
	switch {
	case w.owner == "":
		return ""
	case w.t.ExpectedBucketOwner != "":
		return fmt.Sprintf("; or bucket %q is not owned by account %s (expected_bucket_owner): check that the bucket is yours, or correct expected_bucket_owner",
			w.t.Bucket, w.owner)
	}
	return fmt.Sprintf("; or bucket %q is not owned by account %s, the account of role_arn (expected_bucket_owner): check that the bucket is yours",
		w.t.Bucket, w.owner)
}

// identityPolicy names the IAM policy that grants the writer's permissions.
func (w *Writer) identityPolicy() string {
	switch {
	case w.t.AccessKeyID != "":
		return "the IAM policy of access key " + w.t.AccessKeyID
	case w.t.RoleARN != "":
		return "the role policy of " + w.t.RoleARN
	}
	return "the bucket policy"
}

// fromAssumeRole tells whether err came from STS AssumeRole, possibly
// wrapped in the error of the S3 call that needed the credentials.
func fromAssumeRole(err error) bool {
	for err != nil {
		var op *smithy.OperationError
		if !errors.As(err, &op) {
			return false
		}
		if op.Service() == "STS" && op.Operation() == "AssumeRole" {
			return true
		}
		err = op.Unwrap()
	}
	return false
}

func preconditionFailed(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "PreconditionFailed" {
		return true
	}
	return httpStatus(err) == http.StatusPreconditionFailed
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func isDenied(code string) bool {
	switch code {
	case "AccessDenied", "AccessDeniedException", "Forbidden", "AllAccessDisabled",
		"KMS.AccessDeniedException":
		return true
	}
	return false
}

func isWrongRegion(code string, status int) bool {
	switch code {
	case "PermanentRedirect", "AuthorizationHeaderMalformed",
		"IllegalLocationConstraintException", CodeWrongRegion:
		return true
	}
	return status == http.StatusMovedPermanently
}

var retryableCodes = map[string]bool{
	"SlowDown":                   true,
	"Throttling":                 true,
	"ThrottlingException":        true,
	"RequestLimitExceeded":       true,
	"TooManyRequestsException":   true,
	"RequestTimeout":             true,
	"RequestTimeTooSkewed":       true,
	"InternalError":              true,
	"ServiceUnavailable":         true,
	"ExpiredToken":               true,
	"IDPCommunicationError":      true,
	"ConditionalRequestConflict": true,
	"KMS.ThrottlingException":    true,
}

func isRetryable(err error, code string, status int) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if retryableCodes[code] || status >= 500 || status == http.StatusTooManyRequests {
		return true
	}
	// No HTTP response at all: a network error or a timeout.
	return status == 0 && code == ""
}

func mentionsKMS(msg string) bool {
	return strings.Contains(strings.ToLower(msg), "kms")
}

// expectingRegion matches the hint of AuthorizationHeaderMalformed:
// "the region 'us-east-1' is wrong; expecting 'eu-west-1'".
var expectingRegion = regexp.MustCompile(`expecting '([a-z0-9-]+)'`)

// regionFromError returns the bucket's region carried by an error response,
// or "".
func regionFromError(err error) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		if r := re.Response.Header.Get("x-amz-bucket-region"); r != "" {
			return r
		}
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if m := expectingRegion.FindStringSubmatch(apiErr.ErrorMessage()); m != nil {
			return m[1]
		}
	}
	return ""
}

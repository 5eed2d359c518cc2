package verify

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// RequestError is an S3 request verify could not make: the check is
// incomplete, which is not a problem found but a reason to fix the access
// and run again.
type RequestError struct {
	Op     string // "ListObjectsV2" or "GetObject"
	Bucket string
	Key    string // the key, or the listing's prefix
	Code   string // the S3 error code, "" when there was no answer
	Hint   string // what to fix
	Err    error
}

func (e *RequestError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s s3://%s/%s", e.Op, e.Bucket, e.Key)
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Hint != "" {
		b.WriteString(": " + e.Hint)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *RequestError) Unwrap() error { return e.Err }

// Denied reports whether S3 refused the request for its credentials.
func (e *RequestError) Denied() bool { return e.Code == "AccessDenied" || e.Code == "Forbidden" }

// requestError describes a failed request on key (or a listing's prefix)
// with what to fix.
func (v *verifier) requestError(op, key string, err error) error {
	bucket := v.opts.Bucket
	e := &RequestError{Op: op, Bucket: bucket, Key: key, Err: err}
	var api smithy.APIError
	if errors.As(err, &api) {
		e.Code = api.ErrorCode()
	}
	var resp *awshttp.ResponseError
	if e.Code == "" && errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusForbidden {
		e.Code = "Forbidden"
	}
	switch {
	case e.Denied():
		prefix := v.prefix
		if prefix != "" {
			prefix += "/"
		}
		e.Hint = "denied: verify needs " + Permissions(bucket, prefix)
	case e.Code == "NoSuchBucket":
		e.Hint = fmt.Sprintf("bucket %q does not exist: check -bucket", bucket)
	case e.Code == "PermanentRedirect" || e.Code == "AuthorizationHeaderMalformed" || e.Code == "IncorrectEndpoint":
		e.Hint = "the bucket is in another region: set -region to the bucket's region"
	case e.Code == "InvalidAccessKeyId" || e.Code == "SignatureDoesNotMatch" || e.Code == "ExpiredToken" || e.Code == "InvalidToken":
		e.Hint = "the credentials were refused: check AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
	}
	return e
}

// Permissions names what verify needs on bucket, under prefix (which ends
// in "/" unless it is empty).
func Permissions(bucket, prefix string) string {
	return fmt.Sprintf("s3:ListBucket on arn:aws:s3:::%s (for the prefix %q) and s3:GetObject on arn:aws:s3:::%s/%s*",
		bucket, prefix, bucket, prefix)
}

// isNotFound reports whether err says the key does not exist.
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound")
}

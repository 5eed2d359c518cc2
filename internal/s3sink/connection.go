package s3sink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"github.com/auditexport/auditexport/internal/policy"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// testBody is the content of the connection test object.
const testBody = "auditexport connection test: this object is deleted right after it is written\n"

// TestResult is the outcome of a connection test that passed.
type TestResult struct {
	// Warnings describe problems that do not stop delivery, such as a test
	// object that could not be deleted.
	Warnings []string
	// Key is the key of the test object.
	Key string
}

// Test checks that t can receive objects, as a destination is created or
// updated: it assumes the role, checks the bucket's region, writes a test
// object under the prefix with the configured encryption and ACL, and
// deletes it again. A failure is an *Error that names the failing call and
// the fix.
func (p *Principal) Test(ctx context.Context, t Target) (TestResult, error) {
	w := p.Writer(t)
	if err := w.assumeRole(ctx, p.opts.AssumeRoleRetry); err != nil {
		return TestResult{}, err
	}
	if err := w.checkRegion(ctx); err != nil {
		return TestResult{}, err
	}
	res := TestResult{Key: w.Key(policy.ConnectionTestPrefix + randomHex() + ".txt")}
	put, err := w.Put(ctx, res.Key, strings.NewReader(testBody), int64(len(testBody)),
		PutMeta{ContentType: "text/plain; charset=utf-8"})
	if err != nil {
		return res, err
	}
	if put.AlreadyExists {
		// Someone else's object under a random key: the write path works,
		// and the object is not ours to delete.
		return res, nil
	}
	if err := w.delete(ctx, res.Key); err != nil {
		res.Warnings = append(res.Warnings, err.Error()+"; delete "+res.Key+" by hand")
	}
	return res, nil
}

// assumeRole resolves the target's credentials. A denied AssumeRole is
// retried for up to budget, since IAM takes a few seconds to make a new
// role or trust policy effective.
func (w *Writer) assumeRole(ctx context.Context, budget time.Duration) error {
	if w.t.RoleARN == "" || w.t.AccessKeyID != "" {
		// Static keys are checked by the first S3 call.
		return nil
	}
	delay := min(2*time.Second, max(100*time.Millisecond, budget/10))
	deadline := time.Now().Add(budget)
	for {
		_, err := w.creds.Retrieve(ctx)
		if err == nil {
			return nil
		}
		e := w.fail(ctx, "AssumeRole", err)
		if e.Code != "AccessDenied" || time.Now().Add(delay).After(deadline) {
			return e
		}
		select {
		case <-ctx.Done():
			return e
		case <-time.After(delay):
		}
	}
}

// checkRegion fails when the bucket is missing or in another region than
// the target's. A bucket whose region cannot be read passes: the test write
// that follows still catches real problems.
func (w *Writer) checkRegion(ctx context.Context) error {
	region, call, err := w.bucketRegion(ctx)
	if err != nil {
		return err
	}
	if region != "" && region != w.region {
		return &Error{
			Call:    call,
			Code:    CodeWrongRegion,
			Message: "bucket is in " + region,
			Fix:     w.regionFix(region),
		}
	}
	return nil
}

// bucketRegion returns the bucket's region and the call that told it, or
// "" when neither HeadBucket nor GetBucketLocation may say.
func (w *Writer) bucketRegion(ctx context.Context) (region, call string, err error) {
	bucket := aws.String(w.t.Bucket)
	out, err := w.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: bucket})
	if err == nil && aws.ToString(out.BucketRegion) != "" {
		return aws.ToString(out.BucketRegion), "HeadBucket", nil
	}
	if err != nil {
		// AWS sends x-amz-bucket-region with 301 and 403 answers too, and
		// HeadBucket needs s3:ListBucket, which the role policy lacks.
		if r := regionFromError(err); r != "" {
			return r, "HeadBucket", nil
		}
		if httpStatus(err) == http.StatusNotFound {
			return "", "", w.fail(ctx, "HeadBucket", err)
		}
	}

	loc, err := w.client.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: bucket})
	if err != nil {
		if r := regionFromError(err); r != "" {
			return r, "GetBucketLocation", nil
		}
		if regionUnknowable(err) {
			return "", "", nil
		}
		return "", "", w.fail(ctx, "GetBucketLocation", err)
	}
	if loc.LocationConstraint == "" && w.p.opts.S3Endpoint != "" {
		// An empty constraint means us-east-1 on AWS, but S3-compatible
		// servers answer it for every bucket: treat it as unknown.
		return "", "", nil
	}
	return locationRegion(loc.LocationConstraint), "GetBucketLocation", nil
}

// regionUnknowable tells whether a GetBucketLocation error only means that
// the region cannot be read, not that the bucket is unusable.
func regionUnknowable(err error) bool {
	if fromAssumeRole(err) {
		return false
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode() {
	case "AccessDenied", "Forbidden", "AllAccessDisabled", "NotImplemented", "MethodNotAllowed":
		return true
	}
	return false
}

// locationRegion maps a LocationConstraint to a region name.
func locationRegion(c types.BucketLocationConstraint) string {
	switch c {
	case "":
		return "us-east-1"
	case types.BucketLocationConstraintEu:
		return "eu-west-1"
	}
	return string(c)
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails, see crypto/rand.Read
	return hex.EncodeToString(b)
}

package s3sink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditexport/auditexport/internal/policy"
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
// object under the prefix with the configured encryption and ACL, starts
// and aborts a multipart upload, and deletes the test object again. A
// failure is an *Error that names the failing call and the fix; a denied
// abort or delete, which do not stop delivery, are warnings.
func (p *Principal) Test(ctx context.Context, t Target) (TestResult, error) {
	w := p.testWriter(t)
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
	warning, err := w.testAbort(ctx, res.Key+".multipart")
	if err != nil {
		return res, err
	}
	if warning != "" {
		res.Warnings = append(res.Warnings, warning)
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

// testAbort starts a multipart upload of key, with the settings of every
// delivered object, and aborts it: delivery aborts the upload of an object
// that failed, and without s3:AbortMultipartUpload its parts would stay
// behind, unseen and billed. A denied abort is returned as a warning; a
// failed start is an error, since delivery writes large objects this way.
func (w *Writer) testAbort(ctx context.Context, key string) (warning string, err error) {
	u := w.NewUpload(ctx, key, PutMeta{ContentType: "text/plain; charset=utf-8"}, 0)
	if err := u.create(); err != nil {
		return "", err
	}
	if aerr := u.abort(); aerr != nil {
		warning = aerr.Error()
	}
	return warning, nil
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
	region, err := w.bucketRegion(ctx)
	if err != nil {
		return err
	}
	if region != "" && region != w.region {
		return &Error{
			Call:    "HeadBucket",
			Code:    CodeWrongRegion,
			Message: "bucket is in " + region,
			Fix:     w.regionFix(region),
		}
	}
	return nil
}

// bucketRegion returns the bucket's region as HeadBucket tells it, or ""
// when it does not. S3 sends x-amz-bucket-region with the 200, and with the
// 301 and 403 answers too: HeadBucket needs s3:ListBucket, which the
// policies do not grant, so a 403 carrying the region is the usual answer
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html).
// s3:GetBucketLocation is not needed for this, and is not granted.
func (w *Writer) bucketRegion(ctx context.Context) (string, error) {
	out, err := w.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(w.t.Bucket)}, w.callOpts...)
	if err == nil {
		return aws.ToString(out.BucketRegion), nil
	}
	if r := regionFromError(err); r != "" {
		return r, nil
	}
	if fromAssumeRole(err) || httpStatus(err) == http.StatusNotFound {
		return "", w.fail(ctx, "HeadBucket", err)
	}
	return "", nil
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails, see crypto/rand.Read
	return hex.EncodeToString(b)
}

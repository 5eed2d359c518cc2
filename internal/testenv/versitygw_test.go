package testenv

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// TestVersityGWEnforcesBucketPolicy checks what the policy proofs rely on:
// over TLS, a user is denied until a bucket policy naming its access key id
// allows it, and only under the allowed prefix.
func TestVersityGWEnforcesBucketPolicy(t *testing.T) {
	g := StartVersityGWTLS(t)
	if !strings.HasPrefix(g.URL, "https://") || g.CAFile == "" {
		t.Fatalf("URL = %q, CAFile = %q: want TLS", g.URL, g.CAFile)
	}
	key, secret := g.CreateUser(t)
	g.CreateBucket(t, "audit")
	user := g.S3Client(key, secret)
	put := func(k string) error {
		_, err := user.PutObject(context.Background(), &s3.PutObjectInput{
			Bucket: aws.String("audit"), Key: aws.String(k), Body: strings.NewReader("x"),
		})
		return err
	}

	if err := put("logs/a"); !isAccessDenied(err) {
		t.Fatalf("PutObject without a bucket policy: %v, want AccessDenied", err)
	}
	g.PutBucketPolicy(t, "audit", `{"Version":"2012-10-17","Statement":[{"Sid":"W","Effect":"Allow",`+
		`"Principal":{"AWS":"`+key+`"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::audit/logs/*"}]}`)
	if err := put("logs/a"); err != nil {
		t.Fatalf("PutObject allowed by the bucket policy: %v", err)
	}
	if err := put("other/a"); !isAccessDenied(err) {
		t.Fatalf("PutObject outside the allowed prefix: %v, want AccessDenied", err)
	}
	if keys := g.ListKeys(t, "audit", "logs/"); !slices.Equal(keys, []string{"logs/a"}) {
		t.Fatalf("ListKeys = %v", keys)
	}
}

func isAccessDenied(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "AccessDenied"
}

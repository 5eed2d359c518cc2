package s3sink

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/auditexport/auditexport/internal/policy"
	"github.com/auditexport/auditexport/internal/testenv"
)

// ownerEnv is newEnv with the S3 requests going through a recording proxy
// that refuses, as S3 does, a request whose expected bucket owner is not
// the account that owns the buckets.
func ownerEnv(t *testing.T) (*env, *testenv.FaultProxy) {
	t.Helper()
	e := newEnv(t)
	proxy := testenv.StartFaultProxy(t, e.moto.S3URL, testenv.FaultOptions{BucketOwner: e.moto.AccountID})
	p, err := NewPrincipal(context.Background(), Options{
		Region: e.moto.Region, S3Endpoint: proxy.URL(), STSEndpoint: e.moto.URL, UsePathStyle: true,
		AccessKeyID: e.p.opts.AccessKeyID, SecretAccessKey: e.p.opts.SecretAccessKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	return e, proxy
}

// TestExpectedBucketOwnerOnEveryRequest: the connection test and a
// multipart upload send x-amz-expected-bucket-owner with every S3 request,
// the account of the role or the configured owner.
func TestExpectedBucketOwnerOnEveryRequest(t *testing.T) {
	e, proxy := ownerEnv(t)
	e.moto.CreateBucket(t, "audit", "us-east-1")
	roleARN := e.role(t, "owner", policy.RolePolicy("audit", "logs", ""))
	_, key, secret := e.moto.CreateUser(t, "key-writer")
	e.moto.PutUserPolicy(t, "key-writer", "write", policy.RolePolicy("audit", "keys", "").JSON())

	big := make([]byte, MinPartSize+1000)
	_, _ = rand.Read(big)
	cases := []struct {
		name   string
		target Target
		want   string
	}{
		{"role: the role's account", Target{Bucket: "audit", Region: "us-east-1", Prefix: "logs", RoleARN: roleARN, ExternalID: externalID}, e.moto.AccountID},
		{"static keys: expected_bucket_owner", Target{Bucket: "audit", Region: "us-east-1", Prefix: "keys",
			AccessKeyID: key, SecretAccessKey: secret, ExpectedBucketOwner: e.moto.AccountID}, e.moto.AccountID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(proxy.Requests())
			if _, err := e.p.Test(context.Background(), tc.target); err != nil {
				t.Fatalf("connection test: %v", err)
			}
			w := e.p.Writer(tc.target)
			u := w.NewUpload(context.Background(), w.Key("big.bin"), PutMeta{}, MinPartSize)
			if _, err := u.Write(big); err != nil {
				t.Fatal(err)
			}
			if _, err := u.Close(); err != nil {
				t.Fatalf("multipart upload: %v", err)
			}
			if got := e.moto.GetObject(t, "audit", w.Key("big.bin")); !bytes.Equal(got, big) {
				t.Fatalf("object has %d bytes, want %d", len(got), len(big))
			}
			reqs := proxy.Requests()[before:]
			seen := map[string]bool{}
			for _, r := range reqs {
				op := r.Method + " " + opName(r.Query)
				seen[op] = true
				if r.ExpectedBucketOwner != tc.want {
					t.Errorf("%s %s?%s: x-amz-expected-bucket-owner = %q, want %q", r.Method, r.Path, r.Query, r.ExpectedBucketOwner, tc.want)
				}
			}
			// HeadBucket, PutObject, CreateMultipartUpload, AbortMultipartUpload,
			// DeleteObject, UploadPart, CompleteMultipartUpload.
			for _, op := range []string{"HEAD ", "PUT x-id", "POST uploads", "DELETE uploadId", "DELETE x-id", "PUT partNumber", "POST uploadId"} {
				if !seen[op] {
					t.Errorf("no %q request recorded; got %v", op, seen)
				}
			}
		})
	}
}

// opName reduces a query to the parameter that names the S3 operation.
func opName(query string) string {
	for _, p := range []string{"uploads", "partNumber", "uploadId", "x-id"} {
		if strings.Contains(query, p) {
			return p
		}
	}
	return ""
}

// TestBucketOfAnotherAccount: S3 refuses every request for a bucket that
// another account owns, and the connection test says so.
func TestBucketOfAnotherAccount(t *testing.T) {
	e, proxy := ownerEnv(t)
	e.moto.CreateBucket(t, "audit", "us-east-1")
	roleARN := e.role(t, "owner", policy.RolePolicy("audit", "logs", ""))
	_, key, secret := e.moto.CreateUser(t, "key-writer")
	e.moto.PutUserPolicy(t, "key-writer", "write", policy.RolePolicy("audit", "logs", "").JSON())
	// The bucket now belongs to someone else, as after a delete and a
	// re-create under the same name.
	proxy.SetBucketOwner("999988887777")

	cases := []struct {
		name   string
		target Target
		want   string
	}{
		{"role", Target{Bucket: "audit", Region: "us-east-1", Prefix: "logs", RoleARN: roleARN, ExternalID: externalID},
			`bucket "audit" is not owned by account 123456789012, the account of role_arn (expected_bucket_owner)`},
		{"static keys", Target{Bucket: "audit", Region: "us-east-1", Prefix: "logs", AccessKeyID: key, SecretAccessKey: secret,
			ExpectedBucketOwner: "123456789012"},
			`bucket "audit" is not owned by account 123456789012 (expected_bucket_owner)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(proxy.Requests())
			_, err := e.p.Test(context.Background(), tc.target)
			if err == nil {
				t.Fatal("connection test passed on a bucket of another account")
			}
			got := asError(t, err)
			t.Logf("error: %v", got)
			if got.Code != "AccessDenied" || !strings.Contains(got.Error(), tc.want) {
				t.Errorf("error = %v, want AccessDenied naming %q", got, tc.want)
			}
			for _, r := range proxy.Requests()[before:] {
				if !r.Refused {
					t.Errorf("%s %s reached the bucket of another account", r.Method, r.Path)
				}
			}
		})
	}
}

// TestAbortDenied: a multipart upload that fails and cannot be aborted
// either is reported with both errors, so it is not left behind unseen.
func TestAbortDenied(t *testing.T) {
	e, proxy := ownerEnv(t)
	e.moto.CreateBucket(t, "audit", "us-east-1")
	roleARN := e.role(t, "noabort", policy.RolePolicy("audit", "logs", "").WithoutAction("s3:AbortMultipartUpload"))
	w := e.p.Writer(Target{Bucket: "audit", Region: "us-east-1", Prefix: "logs", RoleARN: roleARN, ExternalID: externalID})
	u := w.NewUpload(context.Background(), w.Key("big.bin"), PutMeta{}, MinPartSize)
	big := make([]byte, MinPartSize) // one full part, sent by Write
	if _, err := u.Write(big); err != nil {
		t.Fatal(err)
	}
	// The part is sent in the background; it must have landed before the
	// bucket changes hands.
	if err := u.waitPart(); err != nil {
		t.Fatal(err)
	}
	// The completion fails: the bucket changed hands after the parts went
	// out. The abort is refused as well.
	proxy.SetBucketOwner("999988887777")
	_, err := u.Close()
	var abandoned *AbandonedError
	if !errors.As(err, &abandoned) {
		t.Fatalf("Close = %v, want an *AbandonedError", err)
	}
	if got := asError(t, err); got.Call != "CompleteMultipartUpload" {
		t.Errorf("Call = %q, want CompleteMultipartUpload", got.Call)
	}
	if a := asError(t, abandoned.Abort); a.Call != "AbortMultipartUpload" || a.Code != "AccessDenied" {
		t.Errorf("abort error = %v", a)
	}
	for _, s := range []string{"CompleteMultipartUpload denied", "left behind", "AbortMultipartUpload denied (AccessDenied)", "s3:AbortMultipartUpload"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q: %v", s, err)
		}
	}
}

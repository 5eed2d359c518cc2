package testenv

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// assumeAnyRole lets a user call sts:AssumeRole. AWS also requires this
// identity permission for cross-account AssumeRole, and moto enforces it in
// addition to the role's trust policy.
const assumeAnyRole = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}`

// IAMClient returns an IAM client with the admin's credentials.
func (m *Moto) IAMClient() *iam.Client {
	return iam.NewFromConfig(m.Config(), func(o *iam.Options) {
		o.BaseEndpoint = aws.String(m.URL)
	})
}

// S3Client returns a path-style S3 client with the admin's credentials.
func (m *Moto) S3Client() *s3.Client {
	return m.s3Client(m.Region)
}

func (m *Moto) s3Client(region string) *s3.Client {
	return s3.NewFromConfig(m.Config(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(m.URL)
		o.UsePathStyle = true
		o.Region = region
	})
}

// CreateUser creates an IAM user that may call sts:AssumeRole, as the
// delivery principal needs, and returns its ARN and a new access key.
func (m *Moto) CreateUser(t testing.TB, name string) (arn, accessKey, secret string) {
	t.Helper()
	ctx := context.Background()
	client := m.IAMClient()
	user, err := client.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name)})
	if err != nil {
		t.Fatalf("CreateUser %s: %v", name, err)
	}
	_, err = client.PutUserPolicy(ctx, &iam.PutUserPolicyInput{
		UserName:       aws.String(name),
		PolicyName:     aws.String("assume-role"),
		PolicyDocument: aws.String(assumeAnyRole),
	})
	if err != nil {
		t.Fatalf("PutUserPolicy %s: %v", name, err)
	}
	key, err := client.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
	if err != nil {
		t.Fatalf("CreateAccessKey %s: %v", name, err)
	}
	return aws.ToString(user.User.Arn),
		aws.ToString(key.AccessKey.AccessKeyId),
		aws.ToString(key.AccessKey.SecretAccessKey)
}

// PutUserPolicy attaches an inline identity policy to a user, such as
// policy.RolePolicy for a customer's static-key writer.
func (m *Moto) PutUserPolicy(t testing.TB, user, policyName, policyJSON string) {
	t.Helper()
	_, err := m.IAMClient().PutUserPolicy(context.Background(), &iam.PutUserPolicyInput{
		UserName:       aws.String(user),
		PolicyName:     aws.String(policyName),
		PolicyDocument: aws.String(policyJSON),
	})
	if err != nil {
		t.Fatalf("PutUserPolicy %s: %v", user, err)
	}
}

// CreateRole creates a role with the given trust policy and, when
// rolePolicyJSON is not empty, an inline permissions policy. It returns the
// role's ARN.
func (m *Moto) CreateRole(t testing.TB, name, trustPolicyJSON, rolePolicyJSON string) (roleARN string) {
	t.Helper()
	ctx := context.Background()
	client := m.IAMClient()
	role, err := client.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName:                 aws.String(name),
		AssumeRolePolicyDocument: aws.String(trustPolicyJSON),
	})
	if err != nil {
		t.Fatalf("CreateRole %s: %v", name, err)
	}
	if rolePolicyJSON != "" {
		_, err = client.PutRolePolicy(ctx, &iam.PutRolePolicyInput{
			RoleName:       aws.String(name),
			PolicyName:     aws.String("auditexport"),
			PolicyDocument: aws.String(rolePolicyJSON),
		})
		if err != nil {
			t.Fatalf("PutRolePolicy %s: %v", name, err)
		}
	}
	return aws.ToString(role.Role.Arn)
}

// CreateBucket creates a bucket in region.
func (m *Moto) CreateBucket(t testing.TB, name, region string) {
	t.Helper()
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	// us-east-1 is the one region that must not be named as a location
	// constraint.
	if region != "" && region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(region),
		}
	}
	if region == "" {
		region = m.Region
	}
	if _, err := m.s3Client(region).CreateBucket(context.Background(), in); err != nil {
		t.Fatalf("CreateBucket %s in %s: %v", name, region, err)
	}
}

// ListKeys returns the keys under prefix in bucket, in key order.
func (m *Moto) ListKeys(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	// The prefix is filtered here, not sent: in auth mode moto rejects the
	// signature of a query parameter that contains "/" (SignatureDoesNotMatch).
	var keys []string
	pages := s3.NewListObjectsV2Paginator(m.S3Client(), &s3.ListObjectsV2Input{
		Bucket: aws.String(bucket),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatalf("ListObjectsV2 %s: %v", bucket, err)
		}
		for _, obj := range page.Contents {
			if key := aws.ToString(obj.Key); strings.HasPrefix(key, prefix) {
				keys = append(keys, key)
			}
		}
	}
	return keys
}

// GetObject returns the content of an object.
func (m *Moto) GetObject(t testing.TB, bucket, key string) []byte {
	t.Helper()
	out, err := m.S3Client().GetObject(context.Background(), &s3.GetObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		t.Fatalf("GetObject %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("GetObject %s/%s: read body: %v", bucket, key, err)
	}
	return b
}

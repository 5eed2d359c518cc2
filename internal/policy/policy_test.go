package policy

import (
	"encoding/json"
	"testing"
)

const principal = "arn:aws:iam::111122223333:user/auditexport-delivery"

func TestDocuments(t *testing.T) {
	cases := []struct {
		name string
		doc  Document
		want string
	}{
		{
			name: "trust policy",
			doc:  TrustPolicy(principal, "ext-123"),
			want: `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "AuditExportAssumeRole",
      "Effect": "Allow",
      "Principal": {
        "AWS": "arn:aws:iam::111122223333:user/auditexport-delivery"
      },
      "Action": "sts:AssumeRole",
      "Condition": {
        "StringEquals": {
          "sts:ExternalId": "ext-123"
        }
      }
    }
  ]
}`,
		},
		{
			name: "role policy without prefix",
			doc:  RolePolicy("audit", "", ""),
			want: `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "AuditExportPutObjects",
      "Effect": "Allow",
      "Action": [
        "s3:PutObject",
        "s3:DeleteObject"
      ],
      "Resource": "arn:aws:s3:::audit/*"
    },
    {
      "Sid": "AuditExportGetBucketLocation",
      "Effect": "Allow",
      "Action": "s3:GetBucketLocation",
      "Resource": "arn:aws:s3:::audit"
    }
  ]
}`,
		},
		{
			name: "role policy with prefix and KMS key",
			doc:  RolePolicy("audit", "logs/", "arn:aws:kms:eu-west-1:444455556666:key/k1"),
			want: `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "AuditExportPutObjects",
      "Effect": "Allow",
      "Action": [
        "s3:PutObject",
        "s3:DeleteObject"
      ],
      "Resource": "arn:aws:s3:::audit/logs/*"
    },
    {
      "Sid": "AuditExportGetBucketLocation",
      "Effect": "Allow",
      "Action": "s3:GetBucketLocation",
      "Resource": "arn:aws:s3:::audit"
    },
    {
      "Sid": "AuditExportKMSEncrypt",
      "Effect": "Allow",
      "Action": [
        "kms:GenerateDataKey",
        "kms:Encrypt"
      ],
      "Resource": "arn:aws:kms:eu-west-1:444455556666:key/k1"
    }
  ]
}`,
		},
		{
			name: "bucket policy minimal",
			doc:  BucketPolicy("audit", "logs", principal, BucketPolicyOptions{}),
			want: `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "AuditExportPutObjects",
      "Effect": "Allow",
      "Principal": {
        "AWS": "arn:aws:iam::111122223333:user/auditexport-delivery"
      },
      "Action": [
        "s3:PutObject",
        "s3:DeleteObject"
      ],
      "Resource": "arn:aws:s3:::audit/logs/*"
    },
    {
      "Sid": "AuditExportGetBucketLocation",
      "Effect": "Allow",
      "Principal": {
        "AWS": "arn:aws:iam::111122223333:user/auditexport-delivery"
      },
      "Action": "s3:GetBucketLocation",
      "Resource": "arn:aws:s3:::audit"
    }
  ]
}`,
		},
		{
			name: "bucket policy with all options",
			doc: BucketPolicy("audit", "", principal, BucketPolicyOptions{
				DenyInsecureTransport:         true,
				RequireBucketOwnerFullControl: true,
			}),
			want: `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "AuditExportPutObjects",
      "Effect": "Allow",
      "Principal": {
        "AWS": "arn:aws:iam::111122223333:user/auditexport-delivery"
      },
      "Action": [
        "s3:PutObject",
        "s3:DeleteObject"
      ],
      "Resource": "arn:aws:s3:::audit/*"
    },
    {
      "Sid": "AuditExportGetBucketLocation",
      "Effect": "Allow",
      "Principal": {
        "AWS": "arn:aws:iam::111122223333:user/auditexport-delivery"
      },
      "Action": "s3:GetBucketLocation",
      "Resource": "arn:aws:s3:::audit"
    },
    {
      "Sid": "AuditExportRequireBucketOwnerFullControl",
      "Effect": "Deny",
      "Principal": {
        "AWS": "arn:aws:iam::111122223333:user/auditexport-delivery"
      },
      "Action": "s3:PutObject",
      "Resource": "arn:aws:s3:::audit/*",
      "Condition": {
        "StringNotEquals": {
          "s3:x-amz-acl": "bucket-owner-full-control"
        }
      }
    },
    {
      "Sid": "AuditExportDenyInsecureTransport",
      "Effect": "Deny",
      "Principal": "*",
      "Action": "s3:*",
      "Resource": [
        "arn:aws:s3:::audit",
        "arn:aws:s3:::audit/*"
      ],
      "Condition": {
        "Bool": {
          "aws:SecureTransport": "false"
        }
      }
    }
  ]
}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.doc.JSON()
			if got != tc.want {
				t.Errorf("JSON mismatch\ngot:\n%s\nwant:\n%s", got, tc.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("not valid JSON:\n%s", got)
			}
		})
	}
}

func TestJSONIsStable(t *testing.T) {
	doc := BucketPolicy("audit", "a&b", principal, BucketPolicyOptions{
		DenyInsecureTransport:         true,
		RequireBucketOwnerFullControl: true,
	})
	first := doc.JSON()
	for i := 0; i < 20; i++ {
		if got := doc.JSON(); got != first {
			t.Fatalf("render %d differs:\n%s\nfirst:\n%s", i, got, first)
		}
	}
	// HTML escaping would turn "&" into \u0026, which is valid but confusing
	// when the document is pasted into a console.
	var back Document
	if err := json.Unmarshal([]byte(first), &back); err != nil {
		t.Fatal(err)
	}
	if got := back.Statement[0].Resource; got != "arn:aws:s3:::audit/a&b/*" {
		t.Errorf("resource = %v", got)
	}
}

func TestObjectARN(t *testing.T) {
	cases := []struct {
		prefix string
		want   string
	}{
		{"", "arn:aws:s3:::b/*"},
		{"/", "arn:aws:s3:::b/*"},
		{"logs", "arn:aws:s3:::b/logs/*"},
		{"logs/", "arn:aws:s3:::b/logs/*"},
		{"/logs/", "arn:aws:s3:::b/logs/*"},
		{"a/b", "arn:aws:s3:::b/a/b/*"},
	}
	for _, tc := range cases {
		if got := ObjectARN("b", tc.prefix); got != tc.want {
			t.Errorf("ObjectARN(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

// Package policy builds the IAM policy documents a customer needs so that the
// delivery principal can write into their bucket: the trust policy of the
// customer's role, the role's permissions policy and an optional bucket
// policy. The Terraform data sources publish these documents and the agent
// refers to them in its error hints, so both always agree on the exact
// statements.
package policy

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Version is the IAM policy language version used by every document.
const Version = "2012-10-17"

// Statement ids. They are stable so that customers can diff documents and
// error hints can name the statement to look at.
const (
	SidAssumeRole                    = "AuditExportAssumeRole"
	SidPutObjects                    = "AuditExportPutObjects"
	SidBucketLocation                = "AuditExportGetBucketLocation"
	SidKMS                           = "AuditExportKMSEncrypt"
	SidDenyInsecureTransport         = "AuditExportDenyInsecureTransport"
	SidRequireBucketOwnerFullControl = "AuditExportRequireBucketOwnerFullControl"
)

// Document is an IAM policy document.
type Document struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a Document. Principal, Action and Resource
// hold either a string or a []string (or a map for Principal), as in the IAM
// policy grammar.
type Statement struct {
	Sid       string                    `json:"Sid"`
	Effect    string                    `json:"Effect"`
	Principal any                       `json:"Principal,omitempty"`
	Action    any                       `json:"Action"`
	Resource  any                       `json:"Resource,omitempty"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

// BucketPolicyOptions selects the optional statements of BucketPolicy.
type BucketPolicyOptions struct {
	// DenyInsecureTransport denies every request to the bucket that is not
	// made over TLS.
	DenyInsecureTransport bool
	// RequireBucketOwnerFullControl denies object writes by the delivery
	// principal that do not grant the bucket owner full control.
	RequireBucketOwnerFullControl bool
}

// TrustPolicy returns the trust policy of the customer's role: it lets
// principalARN assume the role only when it presents externalID.
func TrustPolicy(principalARN, externalID string) Document {
	return Document{
		Version: Version,
		Statement: []Statement{{
			Sid:       SidAssumeRole,
			Effect:    "Allow",
			Principal: map[string]any{"AWS": principalARN},
			Action:    "sts:AssumeRole",
			Condition: map[string]map[string]any{
				"StringEquals": {"sts:ExternalId": externalID},
			},
		}},
	}
}

// RolePolicy returns the permissions policy of the customer's role: write and
// delete objects under prefix, read the bucket's region and, when kmsKeyARN is
// set, encrypt with that key.
//
// s3:DeleteObject is only used by the connection test to remove its test
// object; without it the test passes with a warning.
func RolePolicy(bucket, prefix, kmsKeyARN string) Document {
	doc := Document{
		Version: Version,
		Statement: []Statement{
			{
				Sid:      SidPutObjects,
				Effect:   "Allow",
				Action:   []string{"s3:PutObject", "s3:DeleteObject"},
				Resource: ObjectARN(bucket, prefix),
			},
			{
				Sid:      SidBucketLocation,
				Effect:   "Allow",
				Action:   "s3:GetBucketLocation",
				Resource: BucketARN(bucket),
			},
		},
	}
	if kmsKeyARN != "" {
		doc.Statement = append(doc.Statement, Statement{
			Sid:      SidKMS,
			Effect:   "Allow",
			Action:   []string{"kms:GenerateDataKey", "kms:Encrypt"},
			Resource: kmsKeyARN,
		})
	}
	return doc
}

// BucketPolicy returns a bucket policy that lets principalARN write objects
// under prefix, plus the optional statements selected by opts.
func BucketPolicy(bucket, prefix, principalARN string, opts BucketPolicyOptions) Document {
	principal := map[string]any{"AWS": principalARN}
	objects := ObjectARN(bucket, prefix)
	doc := Document{
		Version: Version,
		Statement: []Statement{
			{
				Sid:       SidPutObjects,
				Effect:    "Allow",
				Principal: principal,
				Action:    []string{"s3:PutObject", "s3:DeleteObject"},
				Resource:  objects,
			},
			{
				Sid:       SidBucketLocation,
				Effect:    "Allow",
				Principal: principal,
				Action:    "s3:GetBucketLocation",
				Resource:  BucketARN(bucket),
			},
		},
	}
	if opts.RequireBucketOwnerFullControl {
		doc.Statement = append(doc.Statement, Statement{
			Sid:       SidRequireBucketOwnerFullControl,
			Effect:    "Deny",
			Principal: principal,
			Action:    "s3:PutObject",
			Resource:  objects,
			Condition: map[string]map[string]any{
				"StringNotEquals": {"s3:x-amz-acl": "bucket-owner-full-control"},
			},
		})
	}
	if opts.DenyInsecureTransport {
		doc.Statement = append(doc.Statement, Statement{
			Sid:       SidDenyInsecureTransport,
			Effect:    "Deny",
			Principal: "*",
			Action:    "s3:*",
			Resource:  []string{BucketARN(bucket), BucketARN(bucket) + "/*"},
			Condition: map[string]map[string]any{
				"Bool": {"aws:SecureTransport": "false"},
			},
		})
	}
	return doc
}

// JSON returns the document as indented JSON. Field order follows the struct
// and condition keys are sorted, so equal documents render identically.
func (d Document) JSON() string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Policies are pasted into HCL and the AWS console: keep '&', '<' and
	// '>' readable instead of \u0026 escapes.
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		// A Document holds only strings, slices and maps of them.
		panic("policy: encode document: " + err.Error())
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// BucketARN returns the ARN of bucket.
func BucketARN(bucket string) string {
	return "arn:aws:s3:::" + bucket
}

// ObjectARN returns the ARN pattern that matches every object under prefix
// in bucket: "arn:aws:s3:::bucket/*" for an empty prefix and
// "arn:aws:s3:::bucket/logs/*" for the prefix "logs" or "logs/".
func ObjectARN(bucket, prefix string) string {
	if p := CleanPrefix(prefix); p != "" {
		return BucketARN(bucket) + "/" + p + "/*"
	}
	return BucketARN(bucket) + "/*"
}

// CleanPrefix returns prefix without leading and trailing slashes, the form
// that object keys are built from.
func CleanPrefix(prefix string) string {
	return strings.Trim(prefix, "/")
}

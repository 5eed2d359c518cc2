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
	"slices"
	"strings"
)

// Version is the IAM policy language version used by every document.
const Version = "2012-10-17"

// Statement ids. They are stable so that customers can diff documents and
// error hints can name the statement to look at.
const (
	SidAssumeRole                    = "AuditExportAssumeRole"
	SidPutObjects                    = "AuditExportPutObjects"
	SidDeleteTestObject              = "AuditExportDeleteConnectionTestObject"
	SidKMS                           = "AuditExportKMSEncrypt"
	SidDenyInsecureTransport         = "AuditExportDenyInsecureTransport"
	SidRequireBucketOwnerFullControl = "AuditExportRequireBucketOwnerFullControl"
)

// ConnectionTestPrefix starts the key, below the destination's prefix, of the
// object that the connection test writes and deletes again. The documents
// allow s3:DeleteObject on these keys only, so the delivery principal can
// never delete a delivered object.
const ConnectionTestPrefix = "_auditexport/connection-test-"

// Actions granted by the documents: exactly the calls the agent makes.
var (
	// objectWriteActions write the objects: PutObject also covers
	// CreateMultipartUpload, UploadPart and CompleteMultipartUpload, and
	// AbortMultipartUpload cleans up after a failed multipart upload.
	objectWriteActions = []string{"s3:PutObject", "s3:AbortMultipartUpload"}
	// kmsActions encrypt objects with SSE-KMS. AWS documents exactly two
	// KMS permissions for SSE-KMS writes: kms:GenerateDataKey for PutObject
	// and CreateMultipartUpload, and kms:Decrypt for UploadPart, because S3
	// reads the encrypted parts back to assemble the object; kms:Encrypt
	// is never used. See "Multipart upload API and permissions",
	// https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html#mpuAndPermissions,
	// and https://repost.aws/knowledge-center/s3-large-file-encryption-kms-key.
	// Neither moto nor versitygw enforces KMS permissions, so the policy
	// proofs cannot remove these actions one at a time: this documentation
	// is their proof.
	kmsActions = []string{"kms:GenerateDataKey", "kms:Decrypt"}
)

// ObjectWriteActions returns the actions of statement SidPutObjects.
func ObjectWriteActions() []string { return slices.Clone(objectWriteActions) }

// KMSActions returns the actions of statement SidKMS.
func KMSActions() []string { return slices.Clone(kmsActions) }

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

// RolePolicy returns the permissions policy of the customer's role: write
// objects under prefix, delete the connection test's object and, when
// kmsKeyARN is set, encrypt with that key.
//
// s3:DeleteObject is only used by the connection test to remove its test
// object; without it the test passes with a warning.
func RolePolicy(bucket, prefix, kmsKeyARN string) Document {
	doc := Document{
		Version:   Version,
		Statement: s3Statements(bucket, prefix, nil),
	}
	if kmsKeyARN != "" {
		doc.Statement = append(doc.Statement, Statement{
			Sid:      SidKMS,
			Effect:   "Allow",
			Action:   slices.Clone(kmsActions),
			Resource: kmsKeyARN,
		})
	}
	return doc
}

// s3Statements are the Allow statements that delivery needs on bucket and
// prefix, granted to principal (nil in an identity policy).
//
// There is no s3:GetBucketLocation: the connection test learns the bucket's
// region from HeadBucket, whose 301 and 403 answers carry
// x-amz-bucket-region whatever the caller may do, and a write to the wrong
// region fails with an error that names the bucket's region.
func s3Statements(bucket, prefix string, principal any) []Statement {
	return []Statement{
		{
			Sid:       SidPutObjects,
			Effect:    "Allow",
			Principal: principal,
			Action:    slices.Clone(objectWriteActions),
			Resource:  ObjectARN(bucket, prefix),
		},
		{
			Sid:       SidDeleteTestObject,
			Effect:    "Allow",
			Principal: principal,
			Action:    "s3:DeleteObject",
			Resource:  ConnectionTestObjectARN(bucket, prefix),
		},
	}
}

// BucketPolicy returns a bucket policy that grants principalARN what
// RolePolicy grants (without KMS), plus the optional statements selected by
// opts.
func BucketPolicy(bucket, prefix, principalARN string, opts BucketPolicyOptions) Document {
	principal := map[string]any{"AWS": principalARN}
	doc := Document{
		Version:   Version,
		Statement: s3Statements(bucket, prefix, principal),
	}
	if opts.RequireBucketOwnerFullControl {
		doc.Statement = append(doc.Statement, Statement{
			Sid:       SidRequireBucketOwnerFullControl,
			Effect:    "Deny",
			Principal: principal,
			Action:    "s3:PutObject",
			Resource:  ObjectARN(bucket, prefix),
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
	return d.encode("  ")
}

// MinifiedJSON returns the document as JSON without insignificant
// whitespace, byte for byte the same for equal documents.
func (d Document) MinifiedJSON() string {
	return d.encode("")
}

func (d Document) encode(indent string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Policies are pasted into HCL and the AWS console: keep '&', '<' and
	// '>' readable instead of \u0026 escapes.
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(d); err != nil {
		// A Document holds only strings, slices and maps of them.
		panic("policy: encode document: " + err.Error())
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// Without returns a copy of d without the statements whose Sid is one of
// sids, for instance to show what a missing statement breaks.
func (d Document) Without(sids ...string) Document {
	// An empty list, not null, if nothing is left: IAM's grammar.
	out := Document{Version: d.Version, Statement: []Statement{}}
	for _, st := range d.Statement {
		if !slices.Contains(sids, st.Sid) {
			out.Statement = append(out.Statement, st)
		}
	}
	return out
}

// WithoutAction returns a copy of d in which no statement grants action;
// a statement left with no action is dropped. It shows what a missing
// action breaks.
func (d Document) WithoutAction(action string) Document {
	out := Document{Version: d.Version, Statement: []Statement{}}
	for _, st := range d.Statement {
		actions := slices.DeleteFunc(st.Actions(), func(a string) bool { return a == action })
		switch {
		case len(actions) == 0:
			continue
		case len(actions) == 1:
			st.Action = actions[0]
		default:
			st.Action = actions
		}
		out.Statement = append(out.Statement, st)
	}
	return out
}

// Actions returns the statement's actions, whether Action holds one
// string or a list (as parsed from JSON, a []any).
func (st Statement) Actions() []string {
	switch a := st.Action.(type) {
	case string:
		return []string{a}
	case []string:
		return slices.Clone(a)
	case []any:
		var out []string
		for _, v := range a {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
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

// ConnectionTestObjectARN returns the ARN pattern of the connection test's
// objects under prefix in bucket, such as
// "arn:aws:s3:::bucket/logs/_auditexport/connection-test-*".
func ConnectionTestObjectARN(bucket, prefix string) string {
	return strings.TrimSuffix(ObjectARN(bucket, prefix), "*") + ConnectionTestPrefix + "*"
}

// CleanPrefix returns prefix without leading and trailing slashes, the form
// that object keys are built from.
func CleanPrefix(prefix string) string {
	return strings.Trim(prefix, "/")
}

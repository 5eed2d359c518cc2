package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
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
        "s3:AbortMultipartUpload"
      ],
      "Resource": "arn:aws:s3:::audit/*"
    },
    {
      "Sid": "AuditExportDeleteConnectionTestObject",
      "Effect": "Allow",
      "Action": "s3:DeleteObject",
      "Resource": "arn:aws:s3:::audit/_auditexport/connection-test-*"
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
        "s3:AbortMultipartUpload"
      ],
      "Resource": "arn:aws:s3:::audit/logs/*"
    },
    {
      "Sid": "AuditExportDeleteConnectionTestObject",
      "Effect": "Allow",
      "Action": "s3:DeleteObject",
      "Resource": "arn:aws:s3:::audit/logs/_auditexport/connection-test-*"
    },
    {
      "Sid": "AuditExportKMSEncrypt",
      "Effect": "Allow",
      "Action": [
        "kms:GenerateDataKey",
        "kms:Decrypt"
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
        "s3:AbortMultipartUpload"
      ],
      "Resource": "arn:aws:s3:::audit/logs/*"
    },
    {
      "Sid": "AuditExportDeleteConnectionTestObject",
      "Effect": "Allow",
      "Principal": {
        "AWS": "arn:aws:iam::111122223333:user/auditexport-delivery"
      },
      "Action": "s3:DeleteObject",
      "Resource": "arn:aws:s3:::audit/logs/_auditexport/connection-test-*"
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
        "s3:AbortMultipartUpload"
      ],
      "Resource": "arn:aws:s3:::audit/*"
    },
    {
      "Sid": "AuditExportDeleteConnectionTestObject",
      "Effect": "Allow",
      "Principal": {
        "AWS": "arn:aws:iam::111122223333:user/auditexport-delivery"
      },
      "Action": "s3:DeleteObject",
      "Resource": "arn:aws:s3:::audit/_auditexport/connection-test-*"
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

const kmsKey = "arn:aws:kms:eu-west-1:444455556666:key/k1"

// allDocuments is every document the package builds, for every option.
func allDocuments() []struct {
	name string
	kind docKind
	doc  Document
} {
	type entry = struct {
		name string
		kind docKind
		doc  Document
	}
	docs := []entry{
		{"trust", trustKind, TrustPolicy(principal, "aex-0123456789abcdef")},
		{"role", identityKind, RolePolicy("audit", "", "")},
		{"role prefix", identityKind, RolePolicy("audit", "logs/", "")},
		{"role prefix kms", identityKind, RolePolicy("audit", "a/b", kmsKey)},
	}
	for _, deny := range []bool{false, true} {
		for _, owner := range []bool{false, true} {
			docs = append(docs, entry{
				fmt.Sprintf("bucket deny_insecure_transport=%v require_bucket_owner_full_control=%v", deny, owner),
				resourceKind,
				BucketPolicy("audit", "logs", principal, BucketPolicyOptions{
					DenyInsecureTransport:         deny,
					RequireBucketOwnerFullControl: owner,
				}),
			})
		}
	}
	return docs
}

func TestDocumentsFollowGrammar(t *testing.T) {
	for _, d := range allDocuments() {
		t.Run(d.name, func(t *testing.T) {
			checkGrammar(t, d.kind, d.doc.JSON())
			checkGrammar(t, d.kind, d.doc.MinifiedJSON())
		})
	}
}

func TestMinifiedJSON(t *testing.T) {
	got := TrustPolicy(principal, "ext-123").MinifiedJSON()
	want := `{"Version":"2012-10-17","Statement":[{"Sid":"AuditExportAssumeRole","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/auditexport-delivery"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"ext-123"}}}]}`
	if got != want {
		t.Errorf("minified JSON:\ngot  %s\nwant %s", got, want)
	}
	// The minified form is the indented form without whitespace.
	for _, d := range allDocuments() {
		var compact bytes.Buffer
		if err := json.Compact(&compact, []byte(d.doc.JSON())); err != nil {
			t.Fatal(err)
		}
		if compact.String() != d.doc.MinifiedJSON() {
			t.Errorf("%s: minified JSON differs from the compacted indented JSON:\n%s\n%s", d.name, compact.String(), d.doc.MinifiedJSON())
		}
	}
}

// TestSids pins the statement ids: customers diff documents and keep
// references to them, so a change here is a breaking change.
func TestSids(t *testing.T) {
	pinned := map[string]string{
		SidAssumeRole:                    "AuditExportAssumeRole",
		SidPutObjects:                    "AuditExportPutObjects",
		SidDeleteTestObject:              "AuditExportDeleteConnectionTestObject",
		SidKMS:                           "AuditExportKMSEncrypt",
		SidDenyInsecureTransport:         "AuditExportDenyInsecureTransport",
		SidRequireBucketOwnerFullControl: "AuditExportRequireBucketOwnerFullControl",
	}
	if len(pinned) != 6 {
		t.Fatalf("two Sid constants share a value: %v", pinned)
	}
	for got, want := range pinned {
		if got != want {
			t.Errorf("Sid %q changed to %q", want, got)
		}
	}
	want := map[string][]string{
		"trust":           {SidAssumeRole},
		"role":            {SidPutObjects, SidDeleteTestObject},
		"role prefix kms": {SidPutObjects, SidDeleteTestObject, SidKMS},
		"bucket deny_insecure_transport=true require_bucket_owner_full_control=true": {
			SidPutObjects, SidDeleteTestObject,
			SidRequireBucketOwnerFullControl, SidDenyInsecureTransport,
		},
	}
	for _, d := range allDocuments() {
		if w, ok := want[d.name]; ok && !slices.Equal(sidsOf(d.doc), w) {
			t.Errorf("%s: Sids = %v, want %v", d.name, sidsOf(d.doc), w)
		}
	}
}

func sidsOf(d Document) []string {
	var sids []string
	for _, st := range d.Statement {
		sids = append(sids, st.Sid)
	}
	return sids
}

// TestBucketPolicyOptionsAreIndependent: each option adds its own statement
// and changes nothing else.
func TestBucketPolicyOptionsAreIndependent(t *testing.T) {
	all := BucketPolicy("audit", "logs", principal, BucketPolicyOptions{DenyInsecureTransport: true, RequireBucketOwnerFullControl: true})
	cases := []struct {
		opts    BucketPolicyOptions
		without []string
	}{
		{BucketPolicyOptions{DenyInsecureTransport: true}, []string{SidRequireBucketOwnerFullControl}},
		{BucketPolicyOptions{RequireBucketOwnerFullControl: true}, []string{SidDenyInsecureTransport}},
		{BucketPolicyOptions{}, []string{SidRequireBucketOwnerFullControl, SidDenyInsecureTransport}},
	}
	for _, tc := range cases {
		got := BucketPolicy("audit", "logs", principal, tc.opts).JSON()
		if want := all.Without(tc.without...).JSON(); got != want {
			t.Errorf("%+v:\ngot:\n%s\nwant:\n%s", tc.opts, got, want)
		}
	}
}

// TestDeterministic: documents built separately from the same inputs render
// byte for byte the same.
func TestDeterministic(t *testing.T) {
	first := allDocuments()
	for i := 0; i < 20; i++ {
		for j, d := range allDocuments() {
			if d.doc.JSON() != first[j].doc.JSON() || d.doc.MinifiedJSON() != first[j].doc.MinifiedJSON() {
				t.Fatalf("%s: build %d renders differently", d.name, i)
			}
		}
	}
}

// TestDocumentsShareNothing: changing one document's action list leaves
// the next document alone.
func TestDocumentsShareNothing(t *testing.T) {
	doc := RolePolicy("audit", "", kmsKey)
	doc.Statement[0].Action.([]string)[0] = "s3:GetObject"
	doc.Statement[2].Action.([]string)[0] = "kms:Sign"
	if got := RolePolicy("audit", "", kmsKey).JSON(); strings.Contains(got, "s3:GetObject") || strings.Contains(got, "kms:Sign") {
		t.Fatalf("a new document carries another document's change:\n%s", got)
	}
}

func TestWithout(t *testing.T) {
	doc := RolePolicy("audit", "logs", kmsKey)
	got := doc.Without(SidPutObjects, SidKMS)
	if want := []string{SidDeleteTestObject}; !slices.Equal(sidsOf(got), want) {
		t.Errorf("Sids = %v, want %v", sidsOf(got), want)
	}
	if len(doc.Statement) != 3 {
		t.Errorf("Without changed the original: %v", sidsOf(doc))
	}
	// A document parsed back from JSON renders the same, so a statement can
	// be removed from a document read from Terraform's state.
	var parsed Document
	if err := json.Unmarshal([]byte(doc.JSON()), &parsed); err != nil {
		t.Fatal(err)
	}
	if parsed.Without(SidPutObjects, SidKMS).JSON() != got.JSON() {
		t.Errorf("parsed document renders differently:\n%s", parsed.Without(SidPutObjects, SidKMS).JSON())
	}
}

func TestConnectionTestObjectARN(t *testing.T) {
	cases := map[string]string{
		"":      "arn:aws:s3:::b/_auditexport/connection-test-*",
		"logs/": "arn:aws:s3:::b/logs/_auditexport/connection-test-*",
		"a/b":   "arn:aws:s3:::b/a/b/_auditexport/connection-test-*",
	}
	for prefix, want := range cases {
		if got := ConnectionTestObjectARN("b", prefix); got != want {
			t.Errorf("ConnectionTestObjectARN(%q) = %q, want %q", prefix, got, want)
		}
	}
}

package policy

import (
	"fmt"
	"strings"
)

// Names of the Terraform data sources that publish the documents. Error
// hints and the docs name them, so they are defined next to the documents.
const (
	TrustPolicySource  = "auditexport_trust_policy"
	RolePolicySource   = "auditexport_role_policy"
	BucketPolicySource = "auditexport_bucket_policy"
)

// purposes say, for every action a document grants, which of the agent's
// calls need it and what happens without it. TestEveryActionHasAPurpose
// fails when a document grants an action that is not listed here, so the
// permission table of the docs cannot miss one.
var purposes = map[string]string{
	"sts:AssumeRole": "AssumeRole with your external id, before the connection test and every delivery. " +
		"Without it nothing is written.",
	"s3:PutObject": "PutObject, CreateMultipartUpload, UploadPart and CompleteMultipartUpload: every delivered " +
		"object and the connection test's object. Without it the connection test fails.",
	"s3:AbortMultipartUpload": "AbortMultipartUpload, after a multipart upload that failed, so that its parts are " +
		"not left behind (and billed). The connection test starts and aborts an upload to check it; without it " +
		"the destination is created with a warning.",
	"s3:DeleteObject": "DeleteObject of the connection test's own object, and of no other: delivered objects " +
		"can never be deleted. Without it the destination is created with a warning and the test object stays.",
	"kms:GenerateDataKey": "S3 calls it for you on PutObject and CreateMultipartUpload with `encryption = \"sse-kms\"`.",
	"kms:Decrypt":         "S3 calls it for you on UploadPart with `encryption = \"sse-kms\"`, to assemble a multipart object.",
}

// Purpose returns why the agent needs action, or "" when no document
// grants it.
func Purpose(action string) string { return purposes[action] }

// Permission is one action granted by one statement of a document.
type Permission struct {
	// Source is the data source that publishes the document.
	Source string
	// Sid is the statement that grants Action.
	Sid string
	// Action is the IAM action, such as "s3:PutObject".
	Action string
	// Resource is the statement's resource pattern as Markdown, with the
	// data source's inputs as placeholders: "`arn:aws:s3:::<bucket>/<prefix>/*`".
	Resource string
	// Purpose is Purpose(Action).
	Purpose string
}

// Permissions lists every action that the three documents grant, in
// document and statement order, built by the same functions as the
// documents themselves (with every option that adds an Allow). Deny
// statements are not listed: they take nothing the agent needs.
func Permissions() []Permission {
	docs := []struct {
		source string
		doc    Document
	}{
		{TrustPolicySource, TrustPolicy("<principal_arn>", "<external_id>")},
		{RolePolicySource, RolePolicy("<bucket>", "<prefix>", "<kms_key_arn>")},
		{BucketPolicySource, BucketPolicy("<bucket>", "<prefix>", "<principal_arn>", BucketPolicyOptions{})},
	}
	var out []Permission
	for _, d := range docs {
		for _, st := range d.doc.Statement {
			if st.Effect != "Allow" {
				continue
			}
			for _, action := range st.Actions() {
				out = append(out, Permission{
					Source: d.source, Sid: st.Sid, Action: action,
					Resource: resourceText(st), Purpose: Purpose(action),
				})
			}
		}
	}
	return out
}

// resourceText renders a statement's Resource for the permission table. The
// trust policy has none: the role it is attached to is its resource.
func resourceText(st Statement) string {
	switch r := st.Resource.(type) {
	case string:
		return "`" + r + "`"
	case []string:
		return "`" + strings.Join(r, "`, `") + "`"
	}
	return "the role"
}

// PermissionTable renders Permissions as a Markdown table, the one the
// permissions guide carries (TestPermissionDocs keeps the two equal).
func PermissionTable() string {
	var b strings.Builder
	b.WriteString("| Data source | Statement | Action | Resource | Needed for |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, p := range Permissions() {
		fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | %s | %s |\n", p.Source, p.Sid, p.Action, p.Resource, p.Purpose)
	}
	return b.String()
}

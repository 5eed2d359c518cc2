package provider

import (
	"context"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/policy"
)

// NewRolePolicyDataSource returns the auditexport_role_policy data source.
func NewRolePolicyDataSource() datasource.DataSource { return &rolePolicyDataSource{} }

// rolePolicyDataSource builds the delivery role's permissions policy from
// its inputs alone; it never calls the agent.
type rolePolicyDataSource struct{}

// rolePolicyModel is the state of auditexport_role_policy.
type rolePolicyModel struct {
	Bucket       types.String `tfsdk:"bucket"`
	Prefix       types.String `tfsdk:"prefix"`
	KMSKeyARN    types.String `tfsdk:"kms_key_arn"`
	JSON         types.String `tfsdk:"json"`
	MinifiedJSON types.String `tfsdk:"minified_json"`
}

func (d *rolePolicyDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_role_policy"
}

func (d *rolePolicyDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	attrs := documentAttributes("`policy` of an `aws_iam_role_policy` attached to the role that " +
		"`auditexport_s3_destination.role_arn` names")
	attrs["bucket"] = bucketAttribute()
	attrs["prefix"] = prefixAttribute()
	attrs["kms_key_arn"] = schema.StringAttribute{
		Description: "ARN of the KMS key of a destination with `encryption = \"sse-kms\"`. When set, the policy " +
			"also allows " + codeAnd(policy.KMSActions()) + " on this key (statement `" + policy.SidKMS + "`): S3 " +
			"calls `kms:GenerateDataKey` to write an object and `kms:Decrypt` to assemble the parts of a " +
			"multipart upload. The key's own policy must allow the role as well. Leave it unset for SSE-S3.",
		Optional: true,
		Validators: []validator.String{
			stringvalidator.RegexMatches(api.KMSKeyARNRe, `must be a KMS key or alias ARN such as "arn:aws:kms:us-east-1:123456789012:key/..."`),
		},
	}
	resp.Schema = schema.Schema{
		Description: "Builds the permissions policy of the role that the delivery principal assumes: exactly what " +
			"delivery needs, nothing more. It allows " + grantsText() + " and, with `kms_key_arn`, the use of " +
			"that key. The document is computed from the inputs alone, without calling the agent, and is byte " +
			"for byte the same for the same inputs.",
		Attributes: attrs,
	}
}

func (d *rolePolicyDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m rolePolicyModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	doc := policy.RolePolicy(m.Bucket.ValueString(), m.Prefix.ValueString(), m.KMSKeyARN.ValueString())
	m.JSON, m.MinifiedJSON = documentValues(doc)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// grantsText describes the S3 statements that the role and bucket policies
// share, from the actions the policy package grants.
func grantsText() string {
	return codeAnd(policy.ObjectWriteActions()) + " on the objects under `prefix` (statement `" +
		policy.SidPutObjects + "`) and `s3:DeleteObject` on the connection test's own objects only, so " +
		"delivered objects can never be deleted (`" + policy.SidDeleteTestObject + "`; without it, or " +
		"without `s3:AbortMultipartUpload`, creating a destination succeeds with a warning)"
}

// codeAnd renders ["a", "b", "c"] as "`a`, `b` and `c`".
func codeAnd(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = "`" + s + "`"
	}
	if len(quoted) < 2 {
		return strings.Join(quoted, "")
	}
	return strings.Join(quoted[:len(quoted)-1], ", ") + " and " + quoted[len(quoted)-1]
}

// documentAttributes returns the outputs of a policy data source; usage
// says where the document goes.
func documentAttributes(usage string) map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"json": schema.StringAttribute{
			Description: "The policy document as indented JSON, ready for the " + usage + ". Statement ids are " +
				"stable (`AuditExport…`) and the same inputs always give the same bytes, so plans show no " +
				"spurious changes.",
			Computed: true,
		},
		"minified_json": schema.StringAttribute{
			Description: "The same document without whitespace, where size counts: IAM limits an inline role " +
				"policy to 10,240 characters and a bucket policy to 20 KB.",
			Computed: true,
		},
	}
}

// documentValues renders doc for the json and minified_json attributes.
func documentValues(doc policy.Document) (pretty, minified types.String) {
	return types.StringValue(doc.JSON()), types.StringValue(doc.MinifiedJSON())
}

// bucketAttribute is the bucket input, validated as the destination's is.
func bucketAttribute() schema.StringAttribute {
	return schema.StringAttribute{
		Description: "Name of the S3 bucket that receives the events, the `bucket` of the " +
			"`auditexport_s3_destination`. S3 naming rules apply: 3-63 lowercase letters, digits, dots and " +
			"hyphens, starting and ending with a letter or digit, no two adjacent dots, not formatted as an IP address.",
		Required: true,
		Validators: []validator.String{
			stringvalidator.LengthBetween(3, 63),
			stringvalidator.RegexMatches(api.BucketRe, "must be 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"),
			apiRule("S3 bucket naming rules", bucketRules),
		},
	}
}

// prefixAttribute is the prefix input, validated as the destination's is.
func prefixAttribute() schema.StringAttribute {
	return schema.StringAttribute{
		Description: "Key prefix of the destination, the `prefix` of the `auditexport_s3_destination`, such as " +
			"`audit`: the grant covers `<bucket>/<prefix>/*` only. A trailing `/` is ignored. Unset or `\"\"` " +
			"grants the whole bucket.",
		Optional: true,
		Validators: []validator.String{
			stringvalidator.LengthAtMost(api.MaxPrefixBytes),
			stringvalidator.RegexMatches(api.PrefixRe, "may only contain letters, digits and !_.*'()/=-"),
			apiRule("a relative key prefix", prefixRules),
		},
	}
}

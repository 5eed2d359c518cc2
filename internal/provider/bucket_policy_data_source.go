package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/policy"
)

// Defaults of the bucket policy's options.
const (
	defaultDenyInsecureTransport         = true
	defaultRequireBucketOwnerFullControl = false
)

// NewBucketPolicyDataSource returns the auditexport_bucket_policy data source.
func NewBucketPolicyDataSource() datasource.DataSource { return &bucketPolicyDataSource{} }

// bucketPolicyDataSource builds a bucket policy from its inputs alone; it
// never calls the agent.
type bucketPolicyDataSource struct{}

// bucketPolicyModel is the state of auditexport_bucket_policy.
type bucketPolicyModel struct {
	Bucket                        types.String `tfsdk:"bucket"`
	Prefix                        types.String `tfsdk:"prefix"`
	PrincipalARN                  types.String `tfsdk:"principal_arn"`
	DenyInsecureTransport         types.Bool   `tfsdk:"deny_insecure_transport"`
	RequireBucketOwnerFullControl types.Bool   `tfsdk:"require_bucket_owner_full_control"`
	JSON                          types.String `tfsdk:"json"`
	MinifiedJSON                  types.String `tfsdk:"minified_json"`
}

func (d *bucketPolicyDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_bucket_policy"
}

func (d *bucketPolicyDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	attrs := documentAttributes("`policy` of an `aws_s3_bucket_policy`")
	attrs["bucket"] = bucketAttribute()
	attrs["prefix"] = prefixAttribute()
	attrs["principal_arn"] = schema.StringAttribute{
		Description: "ARN of the principal that writes into the bucket: the IAM user whose access key the " +
			"`auditexport_s3_destination` uses (`access_key_id`), or the delivery role that its `role_arn` names. " +
			"An IAM role, IAM user or account root ARN.",
		Required: true,
		Validators: []validator.String{
			stringvalidator.RegexMatches(api.PrincipalARNRe, `must be an IAM role, user or account root ARN such as "arn:aws:iam::123456789012:role/auditexport-delivery"`),
		},
	}
	attrs["deny_insecure_transport"] = schema.BoolAttribute{
		Description: "Adds statement `" + policy.SidDenyInsecureTransport + "`: deny every request to the bucket, " +
			"by anyone, that is not made over TLS (`aws:SecureTransport` is false). Defaults to `true`.",
		Optional: true,
		Computed: true,
	}
	attrs["require_bucket_owner_full_control"] = schema.BoolAttribute{
		Description: "Adds statement `" + policy.SidRequireBucketOwnerFullControl + "`: deny object writes by " +
			"`principal_arn` that do not carry the `bucket-owner-full-control` canned ACL, so that you own every " +
			"delivered object on a bucket whose object ownership is \"bucket owner preferred\". The destination " +
			"sends this ACL by default; do not enable this with a destination whose `acl` is `none` or `private`. " +
			"Defaults to `false`.",
		Optional: true,
		Computed: true,
	}
	resp.Schema = schema.Schema{
		Description: "Builds a bucket policy for the audit bucket. It grants `principal_arn` what " +
			"`auditexport_role_policy` grants the role (" + grantsText() + ") and adds the deny " +
			"statements selected by the options. With static keys (`access_key_id`), this is the policy that " +
			"lets the key's user write. The document is computed from the inputs alone, without " +
			"calling the agent, and is byte for byte the same for the same inputs. A bucket has one policy: to " +
			"keep statements of your own, merge both documents, for example with `source_policy_documents` of " +
			"`aws_iam_policy_document`.",
		Attributes: attrs,
	}
}

func (d *bucketPolicyDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m bucketPolicyModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	m.DenyInsecureTransport = boolOrDefault(m.DenyInsecureTransport, defaultDenyInsecureTransport)
	m.RequireBucketOwnerFullControl = boolOrDefault(m.RequireBucketOwnerFullControl, defaultRequireBucketOwnerFullControl)
	doc := policy.BucketPolicy(m.Bucket.ValueString(), m.Prefix.ValueString(), m.PrincipalARN.ValueString(),
		policy.BucketPolicyOptions{
			DenyInsecureTransport:         m.DenyInsecureTransport.ValueBool(),
			RequireBucketOwnerFullControl: m.RequireBucketOwnerFullControl.ValueBool(),
		})
	m.JSON, m.MinifiedJSON = documentValues(doc)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// boolOrDefault returns v, or def when v is not set.
func boolOrDefault(v types.Bool, def bool) types.Bool {
	if v.IsNull() || v.IsUnknown() {
		return types.BoolValue(def)
	}
	return v
}

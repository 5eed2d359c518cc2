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

// NewTrustPolicyDataSource returns the auditexport_trust_policy data source.
func NewTrustPolicyDataSource() datasource.DataSource { return &trustPolicyDataSource{} }

var _ datasource.DataSourceWithConfigure = (*trustPolicyDataSource)(nil)

// trustPolicyDataSource builds the delivery role's trust policy. It asks
// the agent for the identity only when an input is left unset.
type trustPolicyDataSource struct {
	client *api.Client
}

// trustPolicyModel is the state of auditexport_trust_policy.
type trustPolicyModel struct {
	PrincipalARN types.String `tfsdk:"principal_arn"`
	ExternalID   types.String `tfsdk:"external_id"`
	JSON         types.String `tfsdk:"json"`
	MinifiedJSON types.String `tfsdk:"minified_json"`
}

func (d *trustPolicyDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_trust_policy"
}

func (d *trustPolicyDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	attrs := documentAttributes("`assume_role_policy` of the `aws_iam_role` that " +
		"`auditexport_s3_destination.role_arn` names")
	attrs["principal_arn"] = schema.StringAttribute{
		Description: "ARN of the principal allowed to assume the role. Defaults to the platform's delivery " +
			"principal, `auditexport_identity.principal_arn`, read from the agent. An IAM role, IAM user or " +
			"account root ARN.",
		Optional: true,
		Computed: true,
		Validators: []validator.String{
			stringvalidator.RegexMatches(api.PrincipalARNRe, `must be an IAM role, user or account root ARN such as "arn:aws:iam::123456789012:role/auditexport"`),
		},
	}
	attrs["external_id"] = schema.StringAttribute{
		Description: "The `sts:ExternalId` the principal must present. Defaults to your tenant's, " +
			"`auditexport_identity.external_id`, read from the agent. It belongs to the tenant and is known " +
			"before any destination exists, so the role and the destination can be created in one apply.",
		Optional: true,
		Computed: true,
		Validators: []validator.String{
			stringvalidator.LengthBetween(api.MinExternalIDLen, api.MaxExternalIDLen),
			stringvalidator.RegexMatches(api.ExternalIDRe, "may only contain letters, digits and +=,.@:/-"),
		},
	}
	resp.Schema = schema.Schema{
		Description: "Builds the trust policy of the delivery role: it lets the platform's delivery principal " +
			"call `sts:AssumeRole` only with your tenant's external id (statement `" + policy.SidAssumeRole + "`, " +
			"condition `StringEquals` on `sts:ExternalId`), so that no other tenant of the platform can " +
			"make the agent use your role (the \"confused deputy\" problem). With both inputs set, the document is computed " +
			"without calling the agent; an unset input is read from the agent, so " +
			"`data \"auditexport_trust_policy\" \"this\" {}` is enough. The same inputs always give the same bytes.",
		Attributes: attrs,
	}
}

func (d *trustPolicyDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = configuredClient(req.ProviderData, &resp.Diagnostics)
}

func (d *trustPolicyDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m trustPolicyModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if m.PrincipalARN.IsNull() || m.ExternalID.IsNull() {
		id, ok := readIdentity(ctx, d.client, &resp.Diagnostics)
		if !ok {
			return
		}
		m.PrincipalARN = stringOrDefault(m.PrincipalARN, id.PrincipalARN)
		m.ExternalID = stringOrDefault(m.ExternalID, id.ExternalID)
	}
	doc := policy.TrustPolicy(m.PrincipalARN.ValueString(), m.ExternalID.ValueString())
	m.JSON, m.MinifiedJSON = documentValues(doc)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// stringOrDefault returns v, or def when v is not set.
func stringOrDefault(v types.String, def string) types.String {
	if v.IsNull() || v.IsUnknown() {
		return types.StringValue(def)
	}
	return v
}

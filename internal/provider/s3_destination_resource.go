package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/resourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/auditexport/auditexport/internal/api"
)

var (
	_ resource.Resource                     = (*s3DestinationResource)(nil)
	_ resource.ResourceWithConfigure        = (*s3DestinationResource)(nil)
	_ resource.ResourceWithConfigValidators = (*s3DestinationResource)(nil)
	_ resource.ResourceWithImportState      = (*s3DestinationResource)(nil)
	_ resource.ResourceWithModifyPlan       = (*s3DestinationResource)(nil)
)

// NewS3DestinationResource returns the auditexport_s3_destination resource.
func NewS3DestinationResource() resource.Resource { return &s3DestinationResource{} }

// s3DestinationResource manages one destination of the token's tenant
// through the agent's API.
type s3DestinationResource struct {
	client *api.Client
}

func (r *s3DestinationResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_s3_destination"
}

func (r *s3DestinationResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if req.ProviderData == nil {
		// The provider is not configured yet (validation runs first).
		return
	}
	client, ok := req.ProviderData.(*api.Client)
	if !ok {
		resp.Diagnostics.AddError("Unexpected provider data",
			fmt.Sprintf("Expected *api.Client, got %T. This is a bug in the provider.", req.ProviderData))
		return
	}
	r.client = client
}

// ConfigValidators holds the rules that span several attributes.
func (r *s3DestinationResource) ConfigValidators(_ context.Context) []resource.ConfigValidator {
	return []resource.ConfigValidator{
		resourcevalidator.ExactlyOneOf(path.MatchRoot("role_arn"), path.MatchRoot("access_key_id")),
		resourcevalidator.RequiredTogether(path.MatchRoot("access_key_id"), path.MatchRoot("secret_access_key_wo")),
		resourcevalidator.Conflicting(path.MatchRoot("interval"), path.MatchRoot("daily_at")),
		kmsKeyValidator{},
		formatValidator{},
	}
}

// configured reports an error when the provider gave no API client, which
// happens only when the provider's own configuration failed.
func (r *s3DestinationResource) configured(diags *diag.Diagnostics) bool {
	if r.client == nil {
		diags.AddError("Provider not configured",
			"The auditexport provider has no agent client: set endpoint and token in the provider block or the "+
				EnvEndpoint+" and "+EnvToken+" environment variables.")
	}
	return r.client != nil
}

func (r *s3DestinationResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

func (r *s3DestinationResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if !r.configured(&resp.Diagnostics) {
		return
	}
	var plan s3DestinationModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	spec, diags := plan.spec(ctx)
	resp.Diagnostics.Append(diags...)
	if !plan.AccessKeyID.IsNull() {
		spec.SecretAccessKey = writeOnlySecret(ctx, req.Config, &resp.Diagnostics)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	dest, err := r.client.CreateDestination(ctx, spec)
	saveResult(ctx, "create the destination", dest, err, &plan, &resp.State, &resp.Diagnostics)
}

// saveResult records the agent's answer to a create or update: the error,
// or the connection test's warnings and the destination in state.
func saveResult(ctx context.Context, what string, dest api.Destination, err error, plan *s3DestinationModel, state *tfsdk.State, diags *diag.Diagnostics) {
	if err != nil {
		diags.Append(apiErrorDiag(what, err))
		return
	}
	diags.Append(warningDiags(dest.Warnings)...)
	planned := plan.Status
	diags.Append(plan.apply(ctx, dest)...)
	if !planned.IsUnknown() {
		// status is a snapshot taken at refresh (see statusSnapshot): an
		// update that planned to keep it keeps it, and the next refresh
		// reads it again.
		plan.Status = planned
	}
	diags.Append(state.Set(ctx, plan)...)
}

func (r *s3DestinationResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state s3DestinationModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || !r.configured(&resp.Diagnostics) {
		return
	}
	dest, err := r.client.GetDestination(ctx, state.ID.ValueString())
	if api.IsNotFound(err) {
		// Deleted outside Terraform: the next plan creates it again.
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.Append(apiErrorDiag("read destination "+state.ID.ValueString(), err))
		return
	}
	resp.Diagnostics.Append(state.apply(ctx, dest)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
	// Refresh is where a plan shows a destination that stopped delivering:
	// nothing in the configuration changed, so only a warning can say it.
	if w := statusWarning(dest); w != nil {
		resp.Diagnostics.Append(w)
	}
}

// ModifyPlan refuses, at plan time, a region the agent does not allow
// (aws.allowed_regions), which the agent would refuse only at apply.
func (r *s3DestinationResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.client == nil {
		return
	}
	var region, prior types.String
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("region"), &region)...)
	if !req.State.Raw.IsNull() {
		resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("region"), &prior)...)
	}
	if resp.Diagnostics.HasError() || region.IsUnknown() || region.IsNull() || region.Equal(prior) {
		return
	}
	id, err := r.client.Identity(ctx)
	if err != nil {
		// An agent that cannot answer now still checks the region at
		// apply; failing the plan here would only hide the real error,
		// which create or refresh reports with its fix.
		return
	}
	if d := regionDiag(region.ValueString(), id.AllowedRegions, r.client.Endpoint()); d != nil {
		resp.Diagnostics.Append(d)
	}
}

func (r *s3DestinationResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if !r.configured(&resp.Diagnostics) {
		return
	}
	var plan, state s3DestinationModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	spec, diags := plan.spec(ctx)
	resp.Diagnostics.Append(diags...)
	if resendSecret(plan, state) {
		spec.SecretAccessKey = writeOnlySecret(ctx, req.Config, &resp.Diagnostics)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	// Without a secret the agent keeps the stored one of the same access key.
	dest, err := r.client.UpdateDestination(ctx, state.ID.ValueString(), spec)
	saveResult(ctx, "update destination "+state.ID.ValueString(), dest, err, &plan, &resp.State, &resp.Diagnostics)
}

func (r *s3DestinationResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state s3DestinationModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || !r.configured(&resp.Diagnostics) {
		return
	}
	err := r.client.DeleteDestination(ctx, state.ID.ValueString())
	if err != nil && !api.IsNotFound(err) {
		resp.Diagnostics.Append(apiErrorDiag("delete destination "+state.ID.ValueString(), err))
	}
}

// resendSecret tells whether an update must send secret_access_key_wo: the
// agent keeps the stored secret of an unchanged access key, so the secret is
// sent only for a new access key or a new secret version.
func resendSecret(plan, state s3DestinationModel) bool {
	if plan.AccessKeyID.IsNull() {
		return false
	}
	return !plan.AccessKeyID.Equal(state.AccessKeyID) ||
		!plan.SecretAccessKeyWOVersion.Equal(state.SecretAccessKeyWOVersion)
}

// writeOnlySecret reads secret_access_key_wo from the configuration, the only
// place a write-only value is available.
func writeOnlySecret(ctx context.Context, config tfsdk.Config, diags *diag.Diagnostics) string {
	var secret types.String
	diags.Append(config.GetAttribute(ctx, path.Root("secret_access_key_wo"), &secret)...)
	if !diags.HasError() && (secret.IsNull() || secret.IsUnknown() || secret.ValueString() == "") {
		diags.AddAttributeError(path.Root("secret_access_key_wo"), "Missing secret_access_key_wo",
			"secret_access_key_wo must be set, and known at apply time, to send the secret of access_key_id to the agent.")
	}
	return secret.ValueString()
}

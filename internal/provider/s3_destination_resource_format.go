package provider

import (
	"context"
	"errors"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/auditexport/auditexport/internal/api"
)

// formatCombinations is the part of the format, compression and
// event_schema descriptions that lists what goes together.
const formatCombinations = "Valid combinations: `event_schema` `raw` or `ocsf` with `format` `ndjson` or `json` " +
	"(any `compression`), or with `format = \"parquet\"` (`compression` unset or `none`: Parquet compresses its pages with zstd itself)."

func compressionAttribute() schema.StringAttribute {
	return schema.StringAttribute{
		Description: "Compression of the objects: " + codeList(api.Compressions) + ". " + formatCombinations +
			" Defaults to `" + api.DefaultCompression + "`, or `none` with `format = \"parquet\"`.",
		Optional:      true,
		Computed:      true,
		Validators:    []validator.String{stringvalidator.OneOf(api.Compressions...)},
		PlanModifiers: []planmodifier.String{defaultCompression{}},
	}
}

func sourceNameAttribute() schema.StringAttribute {
	return schema.StringAttribute{
		Description: "Name of the Amazon Security Lake custom source (`aws_securitylake_custom_log_source.source_name`), " +
			"the `{source}` of `key_template`; required by `key_template = \"security_lake\"`. 1-64 letters, digits, `_`, `.` and `-`.",
		Optional: true,
		Validators: []validator.String{
			stringvalidator.RegexMatches(api.SourceNameRe, "must be 1-64 letters, digits, _, . and -"),
		},
	}
}

// defaultCompression plans compression as the agent stores it: the
// configured value, else "none" for Parquet and gzip otherwise. A static
// Default cannot depend on format.
type defaultCompression struct{}

var _ planmodifier.String = defaultCompression{}

func (defaultCompression) Description(_ context.Context) string {
	return `defaults to "` + api.DefaultCompression + `", or "none" with format = "parquet"`
}

func (m defaultCompression) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (defaultCompression) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if !req.ConfigValue.IsNull() || req.Plan.Raw.IsNull() {
		return
	}
	var format types.String
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("format"), &format)...)
	if format.IsUnknown() {
		resp.PlanValue = types.StringUnknown()
		return
	}
	resp.PlanValue = types.StringValue(api.DefaultCompressionFor(format.ValueString()))
}

// formatValidator refuses at plan time what the agent refuses on create:
// a compression with Parquet, and the security_lake preset without OCSF
// Parquet or a source_name.
type formatValidator struct{}

var _ resource.ConfigValidator = formatValidator{}

func (formatValidator) Description(_ context.Context) string {
	return "format, compression, event_schema, key_template and source_name must go together"
}

func (v formatValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (formatValidator) ValidateResource(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var format, compression, schema, tmpl, source, owner, role types.String
	for name, p := range map[string]*types.String{
		"format": &format, "compression": &compression, "event_schema": &schema, "key_template": &tmpl,
		"source_name": &source, "expected_bucket_owner": &owner, "role_arn": &role,
	} {
		resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root(name), p)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	if !format.IsUnknown() && !compression.IsUnknown() {
		if err := api.CheckFormat(orDefault(format, api.DefaultFormat), compression.ValueString()); err != nil {
			addFieldError(resp, err)
		}
	}
	if tmpl.IsUnknown() || schema.IsUnknown() || format.IsUnknown() || source.IsUnknown() || owner.IsUnknown() || role.IsUnknown() {
		return
	}
	if tmpl.IsNull() {
		return
	}
	spec := api.DestinationSpec{
		RoleARN: role.ValueString(), ExpectedBucketOwner: owner.ValueString(),
		EventSchema: orDefault(schema, api.DefaultEventSchema), SourceName: source.ValueString(),
		Format: orDefault(format, api.DefaultFormat), KeyTemplate: tmpl.ValueString(),
	}
	if err := spec.CheckKeyVariables(); err != nil {
		addFieldError(resp, err)
	}
}

func orDefault(v types.String, def string) string {
	if v.IsNull() {
		return def
	}
	return v.ValueString()
}

func addFieldError(resp *resource.ValidateConfigResponse, err error) {
	var fe *api.FieldError
	if !errors.As(err, &fe) {
		resp.Diagnostics.AddError("Invalid destination", err.Error())
		return
	}
	resp.Diagnostics.AddAttributeError(path.Root(fe.Field), "Invalid "+fe.Field, fe.Field+" "+fe.Message)
}

package provider

import (
	"context"
	"errors"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/auditexport/auditexport/internal/api"
)

// apiRuleValidator checks a string with a rule of package api that a
// regular expression cannot express.
type apiRuleValidator struct {
	description string
	check       func(string) error
}

var _ validator.String = apiRuleValidator{}

// apiRule returns a validator that reports check's error on the attribute.
func apiRule(description string, check func(string) error) validator.String {
	return apiRuleValidator{description: description, check: check}
}

func (v apiRuleValidator) Description(_ context.Context) string {
	return "value must be " + v.description
}

func (v apiRuleValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (v apiRuleValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	err := v.check(req.ConfigValue.ValueString())
	if err == nil {
		return
	}
	msg := err.Error()
	if fe := (*api.FieldError)(nil); errors.As(err, &fe) {
		msg = fe.Message
	}
	resp.Diagnostics.AddAttributeError(req.Path, "Invalid Attribute Value", "Attribute "+req.Path.String()+" "+msg)
}

// bucketRules checks what the length and pattern validators of bucket leave
// out (two adjacent dots, IP-like names, reserved affixes); a name that
// fails the pattern is reported by the pattern validator only.
func bucketRules(name string) error {
	if !api.BucketRe.MatchString(name) {
		return nil
	}
	return api.ValidateBucket(name)
}

// prefixRules checks the leading "/" and the path segments of a prefix; its
// length and characters have validators of their own.
func prefixRules(prefix string) error {
	if len(prefix) > api.MaxPrefixBytes || !api.PrefixRe.MatchString(prefix) {
		return nil
	}
	return api.ValidatePrefix(prefix)
}

func keyTemplateRules(v string) error {
	return api.ValidateKeyTemplate(v, "")
}

func backfillRules(v string) error {
	_, err := api.ParseBackfill(v)
	return err
}

// defaultInterval plans interval as the agent stores it: the configured
// value, else "1h" when daily_at is not set, else null. A static Default
// cannot express this, and leaving the value unknown would show
// "(known after apply)" for a value that is known.
type defaultInterval struct{}

var _ planmodifier.String = defaultInterval{}

func (defaultInterval) Description(_ context.Context) string {
	return `defaults to "` + api.DefaultInterval + `" unless daily_at is set`
}

func (m defaultInterval) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (defaultInterval) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if !req.ConfigValue.IsNull() || req.Plan.Raw.IsNull() {
		return
	}
	var dailyAt types.String
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("daily_at"), &dailyAt)...)
	switch {
	case dailyAt.IsUnknown():
		resp.PlanValue = types.StringUnknown()
	case dailyAt.IsNull():
		resp.PlanValue = types.StringValue(api.DefaultInterval)
	default:
		resp.PlanValue = types.StringNull()
	}
}

// kmsKeyValidator requires kms_key_arn when encryption is "sse-kms" and
// forbids it otherwise (encryption defaults to "sse-s3").
type kmsKeyValidator struct{}

var _ resource.ConfigValidator = kmsKeyValidator{}

func (kmsKeyValidator) Description(_ context.Context) string {
	return `kms_key_arn must be set if and only if encryption is "sse-kms"`
}

func (v kmsKeyValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (kmsKeyValidator) ValidateResource(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var encryption, key types.String
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("encryption"), &encryption)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("kms_key_arn"), &key)...)
	if resp.Diagnostics.HasError() || encryption.IsUnknown() || key.IsUnknown() {
		return
	}
	sseKMS := encryption.ValueString() == "sse-kms"
	switch {
	case sseKMS && key.IsNull():
		resp.Diagnostics.AddAttributeError(path.Root("kms_key_arn"), "Missing kms_key_arn",
			`kms_key_arn is required when encryption = "sse-kms": set it to the ARN of the KMS key that encrypts the objects.`)
	case !sseKMS && !key.IsNull():
		resp.Diagnostics.AddAttributeError(path.Root("kms_key_arn"), "kms_key_arn without sse-kms",
			`kms_key_arn is only used with encryption = "sse-kms": set encryption = "sse-kms" or remove kms_key_arn.`)
	}
}

// statusSnapshot plans status as its last refreshed value on an update:
// status is a read-only snapshot of the agent's delivery state, refreshed
// at every Read, and nothing an update sends changes it, except enabled
// (which turns it paused or back). Without this every update would show a
// dozen status values as "(known after apply)".
type statusSnapshot struct{}

var _ planmodifier.Object = statusSnapshot{}

func (statusSnapshot) Description(_ context.Context) string {
	return "keeps the refreshed status on an update that does not change enabled"
}

func (m statusSnapshot) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (statusSnapshot) PlanModifyObject(ctx context.Context, req planmodifier.ObjectRequest, resp *planmodifier.ObjectResponse) {
	if req.StateValue.IsNull() || req.Plan.Raw.IsNull() || !req.PlanValue.IsUnknown() {
		return
	}
	var planned, prior types.Bool
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("enabled"), &planned)...)
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("enabled"), &prior)...)
	if resp.Diagnostics.HasError() || !planned.Equal(prior) {
		return
	}
	resp.PlanValue = req.StateValue
}

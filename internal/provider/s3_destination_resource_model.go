package provider

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/auditexport/auditexport/internal/api"
)

// s3DestinationModel is the Terraform data of auditexport_s3_destination.
type s3DestinationModel struct {
	ID         types.String `tfsdk:"id"`
	ExternalID types.String `tfsdk:"external_id"`

	Bucket types.String `tfsdk:"bucket"`
	Region types.String `tfsdk:"region"`
	Prefix types.String `tfsdk:"prefix"`

	RoleARN                  types.String `tfsdk:"role_arn"`
	AccessKeyID              types.String `tfsdk:"access_key_id"`
	ExpectedBucketOwner      types.String `tfsdk:"expected_bucket_owner"`
	SecretAccessKeyWO        types.String `tfsdk:"secret_access_key_wo"`
	SecretAccessKeyWOVersion types.Int64  `tfsdk:"secret_access_key_wo_version"`

	Interval    types.String `tfsdk:"interval"`
	DailyAt     types.String `tfsdk:"daily_at"`
	Backfill    types.String `tfsdk:"backfill"`
	KeyTemplate types.String `tfsdk:"key_template"`
	Enabled     types.Bool   `tfsdk:"enabled"`
	EventTypes  types.Set    `tfsdk:"event_types"`

	EventSchema    types.String `tfsdk:"event_schema"`
	SourceName     types.String `tfsdk:"source_name"`
	Format         types.String `tfsdk:"format"`
	Compression    types.String `tfsdk:"compression"`
	Encryption     types.String `tfsdk:"encryption"`
	KMSKeyARN      types.String `tfsdk:"kms_key_arn"`
	ACL            types.String `tfsdk:"acl"`
	StorageClass   types.String `tfsdk:"storage_class"`
	MaxObjectBytes types.Int64  `tfsdk:"max_object_bytes"`

	Status types.Object `tfsdk:"status"`
}

// statusModel is the status nested attribute.
type statusModel struct {
	State            types.String `tfsdk:"state"`
	LastDeliveryAt   types.String `tfsdk:"last_delivery_at"`
	LastAttemptAt    types.String `tfsdk:"last_attempt_at"`
	LastError        types.String `tfsdk:"last_error"`
	FailingSince     types.String `tfsdk:"failing_since"`
	Cursor           types.Int64  `tfsdk:"cursor"`
	LagEvents        types.Int64  `tfsdk:"lag_events"`
	LagSeconds       types.Int64  `tfsdk:"lag_seconds"`
	EventsDelivered  types.Int64  `tfsdk:"events_delivered"`
	ObjectsDelivered types.Int64  `tfsdk:"objects_delivered"`
	BytesDelivered   types.Int64  `tfsdk:"bytes_delivered"`
}

// statusAttrTypes are the attribute types of statusModel.
var statusAttrTypes = map[string]attr.Type{
	"state":             types.StringType,
	"last_delivery_at":  types.StringType,
	"last_attempt_at":   types.StringType,
	"last_error":        types.StringType,
	"failing_since":     types.StringType,
	"cursor":            types.Int64Type,
	"lag_events":        types.Int64Type,
	"lag_seconds":       types.Int64Type,
	"events_delivered":  types.Int64Type,
	"objects_delivered": types.Int64Type,
	"bytes_delivered":   types.Int64Type,
}

// spec builds the API request from planned values. The secret is not part
// of the model (it is write-only); the caller adds it when it must be sent.
func (m *s3DestinationModel) spec(ctx context.Context) (api.DestinationSpec, diag.Diagnostics) {
	enabled := m.Enabled.ValueBool()
	spec := api.DestinationSpec{
		Bucket:              m.Bucket.ValueString(),
		Region:              m.Region.ValueString(),
		Prefix:              m.Prefix.ValueString(),
		RoleARN:             m.RoleARN.ValueString(),
		AccessKeyID:         m.AccessKeyID.ValueString(),
		ExpectedBucketOwner: m.ExpectedBucketOwner.ValueString(),
		Interval:            m.Interval.ValueString(),
		DailyAt:             m.DailyAt.ValueString(),
		EventSchema:         m.EventSchema.ValueString(),
		SourceName:          m.SourceName.ValueString(),
		Format:              m.Format.ValueString(),
		Compression:         m.Compression.ValueString(),
		Encryption:          m.Encryption.ValueString(),
		KMSKeyARN:           m.KMSKeyARN.ValueString(),
		ACL:                 m.ACL.ValueString(),
		StorageClass:        m.StorageClass.ValueString(),
		MaxObjectBytes:      m.MaxObjectBytes.ValueInt64(),
		Backfill:            m.Backfill.ValueString(),
		KeyTemplate:         m.KeyTemplate.ValueString(),
		Enabled:             &enabled,
	}
	var diags diag.Diagnostics
	if !m.EventTypes.IsNull() && !m.EventTypes.IsUnknown() {
		diags = m.EventTypes.ElementsAs(ctx, &spec.EventTypes, false)
	}
	return spec, diags
}

// apply copies what the agent returned into m. Values the agent normalizes
// keep their configured spelling when they mean the same (a prefix with a
// trailing "/"), so that state equals the plan and no diff appears.
func (m *s3DestinationModel) apply(ctx context.Context, d api.Destination) diag.Diagnostics {
	m.ID = types.StringValue(d.ID)
	m.ExternalID = types.StringValue(d.ExternalID)
	m.Bucket = types.StringValue(d.Bucket)
	m.Region = types.StringValue(d.Region)
	if strings.TrimSuffix(m.Prefix.ValueString(), "/") != d.Prefix || m.Prefix.IsNull() {
		m.Prefix = types.StringValue(d.Prefix)
	}
	m.RoleARN = optionalString(d.RoleARN)
	m.AccessKeyID = optionalString(d.AccessKeyID)
	m.ExpectedBucketOwner = optionalString(d.ExpectedBucketOwner)
	m.SecretAccessKeyWO = types.StringNull()
	m.Interval = optionalString(d.Interval)
	m.DailyAt = optionalString(d.DailyAt)
	m.Backfill = types.StringValue(d.Backfill)
	m.KeyTemplate = types.StringValue(d.KeyTemplate)
	m.Enabled = types.BoolValue(d.Enabled == nil || *d.Enabled)
	m.EventSchema = types.StringValue(d.EventSchema)
	m.SourceName = optionalString(d.SourceName)
	m.Format = types.StringValue(d.Format)
	m.Compression = types.StringValue(d.Compression)
	m.Encryption = types.StringValue(d.Encryption)
	m.KMSKeyARN = optionalString(d.KMSKeyARN)
	m.ACL = types.StringValue(d.ACL)
	m.StorageClass = types.StringValue(d.StorageClass)
	m.MaxObjectBytes = types.Int64Value(d.MaxObjectBytes)

	var diags diag.Diagnostics
	m.EventTypes = types.SetNull(types.StringType)
	if len(d.EventTypes) > 0 {
		m.EventTypes, diags = types.SetValueFrom(ctx, types.StringType, d.EventTypes)
	}
	status, statusDiags := statusValue(ctx, d.Status)
	m.Status = status
	return append(diags, statusDiags...)
}

func statusValue(ctx context.Context, s api.DestinationStatus) (types.Object, diag.Diagnostics) {
	return types.ObjectValueFrom(ctx, statusAttrTypes, statusModel{
		State:            types.StringValue(s.State),
		LastDeliveryAt:   timeValue(s.LastDeliveryAt),
		LastAttemptAt:    timeValue(s.LastAttemptAt),
		LastError:        optionalString(s.LastError),
		FailingSince:     timeValue(s.FailingSince),
		Cursor:           types.Int64Value(s.Cursor),
		LagEvents:        types.Int64Value(s.LagEvents),
		LagSeconds:       types.Int64Value(s.LagSeconds),
		EventsDelivered:  types.Int64Value(s.EventsDelivered),
		ObjectsDelivered: types.Int64Value(s.ObjectsDelivered),
		BytesDelivered:   types.Int64Value(s.BytesDelivered),
	})
}

// optionalString maps the API's empty string (field not set) to null.
func optionalString(v string) types.String {
	if v == "" {
		return types.StringNull()
	}
	return types.StringValue(v)
}

func timeValue(t *time.Time) types.String {
	if t == nil {
		return types.StringNull()
	}
	return types.StringValue(t.UTC().Format(time.RFC3339))
}

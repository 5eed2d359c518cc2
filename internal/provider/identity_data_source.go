package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/auditexport/auditexport/internal/api"
)

// NewIdentityDataSource returns the auditexport_identity data source.
func NewIdentityDataSource() datasource.DataSource { return &identityDataSource{} }

var _ datasource.DataSourceWithConfigure = (*identityDataSource)(nil)

// identityDataSource reads the tenant's identity from the agent.
type identityDataSource struct {
	client *api.Client
}

// identityModel is the state of auditexport_identity.
type identityModel struct {
	Tenant       types.String      `tfsdk:"tenant"`
	ExternalID   types.String      `tfsdk:"external_id"`
	PrincipalARN types.String      `tfsdk:"principal_arn"`
	SigningKeys  []signingKeyModel `tfsdk:"signing_keys"`
}

// signingKeyModel is one of the agent's published digest signing keys.
type signingKeyModel struct {
	KeyID     types.String `tfsdk:"key_id"`
	Algorithm types.String `tfsdk:"algorithm"`
	PublicKey types.String `tfsdk:"public_key"`
	NotBefore types.String `tfsdk:"not_before"`
	NotAfter  types.String `tfsdk:"not_after"`
}

func signingKeyModels(keys []api.SigningKey) []signingKeyModel {
	out := make([]signingKeyModel, 0, len(keys))
	for _, k := range keys {
		m := signingKeyModel{
			KeyID: types.StringValue(k.KeyID), Algorithm: types.StringValue(k.Algorithm),
			PublicKey: types.StringValue(k.PublicKey), NotBefore: types.StringValue(k.NotBefore.UTC().Format(time.RFC3339)),
			NotAfter: types.StringNull(),
		}
		if k.NotAfter != nil {
			m.NotAfter = types.StringValue(k.NotAfter.UTC().Format(time.RFC3339))
		}
		out = append(out, m)
	}
	return out
}

func (d *identityDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_identity"
}

func (d *identityDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Reads who delivers your tenant's audit events: the platform's delivery principal and your " +
			"tenant's external id, and the keys that sign the hourly integrity digests. The first two are known before any destination exists, so the role that trusts them " +
			"can be created in the same apply as the `auditexport_s3_destination` that uses it, without a " +
			"dependency cycle. `auditexport_trust_policy` reads the same values when its inputs are left unset.",
		Attributes: map[string]schema.Attribute{
			"tenant": schema.StringAttribute{
				Description: "Name of your tenant on the platform, the tenant of the provider's token. It is the " +
					"`{tenant}` segment of every delivered object's key.",
				Computed: true,
			},
			"external_id": schema.StringAttribute{
				Description: "Your tenant's `sts:ExternalId`: the delivery principal presents it whenever it assumes " +
					"your role, and the role's trust policy should require it (see `auditexport_trust_policy`). It " +
					"belongs to the tenant, not to a destination: it is the same for all your destinations and does " +
					"not change when destinations are created or replaced.",
				Computed: true,
			},
			"principal_arn": schema.StringAttribute{
				Description: "ARN of the platform's delivery principal, the AWS identity that assumes your role (or " +
					"that a bucket policy grants directly), such as `arn:aws:iam::123456789012:role/auditexport`.",
				Computed: true,
			},
			"signing_keys": schema.ListNestedAttribute{
				Description: "The keys that sign the hourly integrity digests the agent writes under " +
					"`{prefix}/_auditexport/digests/`, oldest first, as `GET /v1/signing-keys` publishes them. A " +
					"rotated key stays in the list with its `not_after`, so older digests still verify. Pin them " +
					"(for example in the configuration of `auditexport-agent verify` or of your own checker) to " +
					"notice a key you did not expect.",
				Computed: true,
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"key_id": schema.StringAttribute{
							Description: "The key's id, the first 16 hex digits of the SHA-256 of the public key: " +
								"each digest names the key that signed it.",
							Computed: true,
						},
						"algorithm": schema.StringAttribute{
							Description: "The signature algorithm, `Ed25519`.",
							Computed:    true,
						},
						"public_key": schema.StringAttribute{
							Description: "The 32-byte Ed25519 public key, base64 (standard, padded).",
							Computed:    true,
						},
						"not_before": schema.StringAttribute{
							Description: "Start of the key's validity (RFC 3339, UTC): digests it signs were created at or after it.",
							Computed:    true,
						},
						"not_after": schema.StringAttribute{
							Description: "End of the key's validity (RFC 3339, UTC), when it was rotated out; null for the current key.",
							Computed:    true,
						},
					},
				},
			},
		},
	}
}

func (d *identityDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = configuredClient(req.ProviderData, &resp.Diagnostics)
}

func (d *identityDataSource) Read(ctx context.Context, _ datasource.ReadRequest, resp *datasource.ReadResponse) {
	id, ok := readIdentity(ctx, d.client, &resp.Diagnostics)
	if !ok {
		return
	}
	state := identityModel{
		Tenant:       types.StringValue(id.Tenant),
		ExternalID:   types.StringValue(id.ExternalID),
		PrincipalARN: types.StringValue(id.PrincipalARN),
		SigningKeys:  signingKeyModels(id.SigningKeys),
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// configuredClient returns the agent client that the provider's Configure
// passes to data sources, or nil before the provider is configured.
func configuredClient(providerData any, diags *diag.Diagnostics) *api.Client {
	if providerData == nil {
		return nil
	}
	client, ok := providerData.(*api.Client)
	if !ok {
		diags.AddError("Unexpected provider data",
			fmt.Sprintf("Expected *api.Client, got %T. Please report this issue to the provider's developers.", providerData))
	}
	return client
}

// readIdentity asks the agent for the tenant's identity. It reports a
// diagnostic and returns false when that fails or the answer is incomplete.
func readIdentity(ctx context.Context, client *api.Client, diags *diag.Diagnostics) (api.Identity, bool) {
	if client == nil {
		diags.AddError("Provider not configured",
			"Reading the tenant's identity needs the agent: set endpoint and token in the provider block "+
				"(or "+EnvEndpoint+" and "+EnvToken+").")
		return api.Identity{}, false
	}
	id, err := client.Identity(ctx)
	if err != nil {
		diags.AddError("Cannot read the tenant's identity", "GET /v1/identity: "+err.Error())
		return api.Identity{}, false
	}
	if id.ExternalID == "" || id.PrincipalARN == "" {
		diags.AddError("Incomplete identity",
			fmt.Sprintf("The agent returned external_id %q and principal_arn %q; both are needed. Ask the platform operator to check the agent's aws.principal_arn.", id.ExternalID, id.PrincipalARN))
		return api.Identity{}, false
	}
	return id, true
}

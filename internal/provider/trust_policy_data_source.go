package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
)

// NewTrustPolicyDataSource returns the auditexport_trust_policy data source.
// Placeholder: the full implementation replaces this file.
func NewTrustPolicyDataSource() datasource.DataSource { return &trustpolicyDataSource{} }

type trustpolicyDataSource struct{}

func (d *trustpolicyDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_trust_policy"
}

func (d *trustpolicyDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{Description: "placeholder", Attributes: map[string]schema.Attribute{
		"json": schema.StringAttribute{Computed: true, Description: "placeholder"},
	}}
}

func (d *trustpolicyDataSource) Read(_ context.Context, _ datasource.ReadRequest, _ *datasource.ReadResponse) {
}

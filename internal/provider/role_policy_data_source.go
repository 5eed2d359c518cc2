package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
)

// NewRolePolicyDataSource returns the auditexport_role_policy data source.
// Placeholder: the full implementation replaces this file.
func NewRolePolicyDataSource() datasource.DataSource { return &rolepolicyDataSource{} }

type rolepolicyDataSource struct{}

func (d *rolepolicyDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_role_policy"
}

func (d *rolepolicyDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{Description: "placeholder", Attributes: map[string]schema.Attribute{
		"json": schema.StringAttribute{Computed: true, Description: "placeholder"},
	}}
}

func (d *rolepolicyDataSource) Read(_ context.Context, _ datasource.ReadRequest, _ *datasource.ReadResponse) {
}

package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
)

// NewIdentityDataSource returns the auditexport_identity data source.
// Placeholder: the full implementation replaces this file.
func NewIdentityDataSource() datasource.DataSource { return &identityDataSource{} }

type identityDataSource struct{}

func (d *identityDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_identity"
}

func (d *identityDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{Description: "placeholder", Attributes: map[string]schema.Attribute{
		"json": schema.StringAttribute{Computed: true, Description: "placeholder"},
	}}
}

func (d *identityDataSource) Read(_ context.Context, _ datasource.ReadRequest, _ *datasource.ReadResponse) {
}

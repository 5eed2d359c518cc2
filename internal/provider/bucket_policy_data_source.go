package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
)

// NewBucketPolicyDataSource returns the auditexport_bucket_policy data source.
// Placeholder: the full implementation replaces this file.
func NewBucketPolicyDataSource() datasource.DataSource { return &bucketpolicyDataSource{} }

type bucketpolicyDataSource struct{}

func (d *bucketpolicyDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_bucket_policy"
}

func (d *bucketpolicyDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{Description: "placeholder", Attributes: map[string]schema.Attribute{
		"json": schema.StringAttribute{Computed: true, Description: "placeholder"},
	}}
}

func (d *bucketpolicyDataSource) Read(_ context.Context, _ datasource.ReadRequest, _ *datasource.ReadResponse) {
}

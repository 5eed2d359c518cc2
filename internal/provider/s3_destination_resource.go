package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
)

// NewS3DestinationResource returns the auditexport_s3_destination resource.
// Placeholder: the full implementation replaces this file.
func NewS3DestinationResource() resource.Resource { return &s3DestinationResource{} }

type s3DestinationResource struct{}

func (r *s3DestinationResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_s3_destination"
}

func (r *s3DestinationResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{Description: "placeholder", Attributes: map[string]schema.Attribute{
		"id": schema.StringAttribute{Computed: true, Description: "placeholder"},
	}}
}

func (r *s3DestinationResource) Create(_ context.Context, _ resource.CreateRequest, _ *resource.CreateResponse) {
}
func (r *s3DestinationResource) Read(_ context.Context, _ resource.ReadRequest, _ *resource.ReadResponse) {
}
func (r *s3DestinationResource) Update(_ context.Context, _ resource.UpdateRequest, _ *resource.UpdateResponse) {
}
func (r *s3DestinationResource) Delete(_ context.Context, _ resource.DeleteRequest, _ *resource.DeleteResponse) {
}

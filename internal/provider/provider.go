// Package provider is the auditexport Terraform provider.
package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/auditexport/auditexport/internal/api"
)

// Environment variables read when the provider block leaves a value unset.
const (
	EnvEndpoint = "AUDITEXPORT_ENDPOINT"
	EnvToken    = "AUDITEXPORT_TOKEN"
)

var _ provider.Provider = (*auditexportProvider)(nil)

type auditexportProvider struct {
	version string
}

type providerModel struct {
	Endpoint  types.String `tfsdk:"endpoint"`
	Token     types.String `tfsdk:"token"`
	CACertPEM types.String `tfsdk:"ca_cert_pem"`
}

// New returns the provider factory for providerserver.
func New(version string) func() provider.Provider {
	return func() provider.Provider {
		return &auditexportProvider{version: version}
	}
}

func (p *auditexportProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "auditexport"
	resp.Version = p.version
}

func (p *auditexportProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Declares where a platform's audit events are delivered: S3 destinations validated at apply, and the IAM policy documents they need.",
		Attributes: map[string]schema.Attribute{
			"endpoint": schema.StringAttribute{
				Description: "URL of the platform's auditexport agent, e.g. `https://audit.example.com`. Defaults to the `" + EnvEndpoint + "` environment variable. " +
					"Needed by `auditexport_s3_destination`, `auditexport_identity` and a `auditexport_trust_policy` that reads its defaults from the agent; the other policy data sources work without it.",
				Optional: true,
			},
			"token": schema.StringAttribute{
				Description: "Manage token for your tenant, issued by the platform. Defaults to the `" + EnvToken + "` environment variable.",
				Optional:    true,
				Sensitive:   true,
			},
			"ca_cert_pem": schema.StringAttribute{
				Description: "PEM-encoded CA certificate to trust for the agent's TLS certificate, when it is not signed by a public CA.",
				Optional:    true,
			},
		},
	}
}

func (p *auditexportProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	endpoint := stringOrEnv(cfg.Endpoint, EnvEndpoint)
	token := stringOrEnv(cfg.Token, EnvToken)
	if endpoint == "" || token == "" {
		// The policy data sources need no agent, so a configuration
		// without one is valid; what needs the agent reports the missing
		// endpoint or token itself.
		return
	}
	httpClient, err := newHTTPClient(cfg.CACertPEM.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("ca_cert_pem"), "Invalid CA certificate", err.Error())
		return
	}
	client, err := api.NewClient(endpoint, token, httpClient)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("endpoint"), "Invalid agent endpoint", err.Error())
		return
	}
	client.UserAgent = "terraform-provider-auditexport/" + p.version
	resp.DataSourceData = client
	resp.ResourceData = client
}

func stringOrEnv(v types.String, env string) string {
	if !v.IsNull() && !v.IsUnknown() && v.ValueString() != "" {
		return v.ValueString()
	}
	return os.Getenv(env)
}

func newHTTPClient(caPEM string) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if caPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errNoCertificate
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: transport, Timeout: 5 * time.Minute}, nil
}

type providerError string

func (e providerError) Error() string { return string(e) }

const errNoCertificate = providerError("ca_cert_pem holds no PEM certificate: paste the CA's \"-----BEGIN CERTIFICATE-----\" block")

func (p *auditexportProvider) Resources(_ context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		NewS3DestinationResource,
	}
}

func (p *auditexportProvider) DataSources(_ context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewIdentityDataSource,
		NewBucketPolicyDataSource,
		NewTrustPolicyDataSource,
		NewRolePolicyDataSource,
	}
}

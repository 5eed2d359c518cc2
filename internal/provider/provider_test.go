package provider

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	acc "github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/auditexport/auditexport/internal/testenv"
)

func TestProviderServes(t *testing.T) {
	srv, err := providerserver.NewProtocol6WithError(New("test")())()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.GetProviderSchema(context.Background(), &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range resp.Diagnostics {
		t.Errorf("schema diagnostic: %s: %s", d.Summary, d.Detail)
	}
	attrs := map[string]bool{}
	for _, a := range resp.Provider.Block.Attributes {
		attrs[a.Name] = a.Sensitive
		if a.Description == "" {
			t.Errorf("attribute %s has no description", a.Name)
		}
	}
	for _, name := range []string{"endpoint", "token", "ca_cert_pem"} {
		if _, ok := attrs[name]; !ok {
			t.Errorf("provider schema lacks %q", name)
		}
	}
	if !attrs["token"] {
		t.Error("token must be sensitive")
	}
}

func TestNewHTTPClientRejectsBadPEM(t *testing.T) {
	if _, err := newHTTPClient("not a certificate"); err == nil {
		t.Fatal("a bad ca_cert_pem was accepted")
	}
	if _, err := newHTTPClient(""); err != nil {
		t.Fatalf("no CA: %v", err)
	}
}

func TestMetadata(t *testing.T) {
	var resp provider.MetadataResponse
	New("1.2.3")().Metadata(context.Background(), provider.MetadataRequest{}, &resp)
	if resp.TypeName != "auditexport" || resp.Version != "1.2.3" {
		t.Fatalf("metadata = %+v", resp)
	}
}

// The policy data sources work with no agent configured at all.
func TestAccProvider_policiesWithoutAgent(t *testing.T) {
	t.Setenv(EnvEndpoint, "")
	t.Setenv(EnvToken, "")
	if os.Getenv("TF_ACC_TEMP_DIR") == "" {
		t.Setenv("TF_ACC_TEMP_DIR", t.TempDir())
	}
	acc.Test(t, acc.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []acc.TestStep{
			{
				Config: `
data "auditexport_role_policy" "p" {
  bucket = "acme-audit"
  prefix = "audit"
}`,
				Check: acc.TestCheckResourceAttrSet("data.auditexport_role_policy.p", "json"),
			},
			{
				Config: `
data "auditexport_identity" "i" {}`,
				ExpectError: regexp.MustCompile(`set endpoint and token`),
			},
		},
	})
}

// An agent serving TLS with a private CA: ca_cert_pem makes it trusted, and
// without it the failure says why.
func TestAccProvider_caCertPEM(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance tests need TF_ACC=1 (make test sets it)")
	}
	t.Setenv("TF_ACC_TEMP_DIR", t.TempDir())
	agent := testenv.NewAgentWithOptions(t, testenv.StartMoto(t), testenv.AgentOptions{Tick: "1h", TLS: true})
	extID, token := agent.Tenant(t, "acme")
	t.Setenv(EnvEndpoint, "")
	t.Setenv(EnvToken, "")
	config := func(withCA bool) string {
		ca := ""
		if withCA {
			ca = fmt.Sprintf("ca_cert_pem = %q", agent.CACertPEM)
		}
		return fmt.Sprintf(`
provider "auditexport" {
  endpoint = %q
  token    = %q
  %s
}

data "auditexport_identity" "this" {}
`, agent.Endpoint, token, ca)
	}
	acc.Test(t, acc.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []acc.TestStep{
			{Config: config(false), ExpectError: regexp.MustCompile(`(?s)cannot reach the auditexport agent.*certificate`)},
			{Config: config(true), Check: acc.TestCheckResourceAttr("data.auditexport_identity.this", "external_id", extID)},
		},
	})
}

package provider

import (
	"context"
	"os"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	acc "github.com/hashicorp/terraform-plugin-testing/helper/resource"
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

package provider

import (
	"os"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"

	"github.com/auditexport/auditexport/internal/testenv"
)

// testAccProtoV6ProviderFactories serve the provider in-process to the real
// terraform CLI that terraform-plugin-testing runs.
var testAccProtoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"auditexport": providerserver.NewProtocol6WithError(New("test")()),
}

// accEnv is a real moto_server (S3, STS, IAM) and a real auditexport-agent
// process delivering through it, with one tenant whose manage token the
// provider uses through AUDITEXPORT_ENDPOINT / AUDITEXPORT_TOKEN.
type accEnv struct {
	Agent       *testenv.Agent
	Tenant      string
	ExternalID  string
	ManageToken string
}

// newAccEnv starts the servers. It fails, never skips, when one cannot start;
// without TF_ACC the acceptance test itself is skipped by resource.Test.
func newAccEnv(t *testing.T, tenant string) *accEnv {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance tests need TF_ACC=1 (make test sets it)")
	}
	if os.Getenv("TF_ACC_TEMP_DIR") == "" {
		t.Setenv("TF_ACC_TEMP_DIR", t.TempDir())
	}
	agent := testenv.NewAgent(t, testenv.StartMoto(t), "1s")
	extID, token := agent.Tenant(t, tenant)
	t.Setenv(EnvEndpoint, agent.Endpoint)
	t.Setenv(EnvToken, token)
	return &accEnv{Agent: agent, Tenant: tenant, ExternalID: extID, ManageToken: token}
}

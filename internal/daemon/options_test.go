package daemon

import (
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/config"
)

// The delivery block's lease settings reach the Deliverer.
func TestDeliveryOptionsLeases(t *testing.T) {
	cfg, err := config.Parse([]byte(`delivery {
  agent_id    = "agent-a"
  lease_ttl   = "3s"
  lease_renew = "1s"
}
`), "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	got := deliveryOptions(cfg)
	if got.AgentID != "agent-a" || got.LeaseTTL != 3*time.Second || got.LeaseRenew != time.Second {
		t.Errorf("deliveryOptions = agent %q, ttl %s, renew %s; want agent-a, 3s, 1s", got.AgentID, got.LeaseTTL, got.LeaseRenew)
	}
}

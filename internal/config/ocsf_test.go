package config

import (
	"strings"
	"testing"
)

func TestOCSFBlock(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		wantErr []string // substrings of the error; nil when valid
	}{
		{"no block", ``, nil},
		{"rules", `
ocsf {
  product_name = "Acme Cloud"
  vendor_name  = "Acme"
  raw_data     = false
  fields = { "actor.user.uid" = "who" }
  values = { status_id = { ok = "1" } }
  rule "billing.invoice.paid" {
    class    = "api_activity"
    activity = "update"
    fields   = { "api.operation" = "eventName" }
  }
}`, nil},
		{"no vendor", `
ocsf {
  product_name = "Acme Cloud"
}`, []string{"ocsf:", "vendor_name is required"}},
		{"unknown class", `
ocsf {
  vendor_name = "Acme"
  rule "a.b" {
    class = "authentification"
  }
}`, []string{"ocsf:", "a.b", "authentication"}},
		{"unknown attribute", `
ocsf {
  vendor_name = "Acme"
  rule "a.b" {
    class  = "api_activity"
    fields = { "api.operaton" = "x" }
  }
}`, []string{"ocsf:", "api.operaton"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.src), "agent.hcl")
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if _, err := cfg.OCSFMapper(); err != nil {
					t.Fatalf("OCSFMapper: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Parse accepted the block")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// The mapper reads the events' fields under the names ingest uses.
func TestOCSFMapperUsesIngestFields(t *testing.T) {
	cfg, err := Parse([]byte(`
ingest {
  timestamp_field  = "ts"
  event_name_field = "action"
  message_id_field = "id"
}`), "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	m, err := cfg.OCSFMapper()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := m.Map([]byte(`{"ts":1764064800123,"action":"user.login","id":"m-1","actor":{"id":"u1"}}`), 7)
	if err != nil {
		t.Fatalf("Map with the ingest field names: %v", err)
	}
	if ev.ClassUID != 3002 || ev.Time != 1764064800123 {
		t.Errorf("mapped class %d time %d, want 3002 (authentication) at 1764064800123", ev.ClassUID, ev.Time)
	}
	if !strings.Contains(string(ev.JSON), `"name":"auditexport"`) {
		t.Errorf("default product is not auditexport: %s", ev.JSON)
	}
}

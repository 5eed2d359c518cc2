package provider

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/auditexport/auditexport/internal/policy"
)

// fakeAgent is an HTTP server in place of the agent that counts the
// requests it gets and answers each with status and body.
type fakeAgent struct {
	hits atomic.Int64
}

// newFakeAgent points the provider at a fakeAgent. A data source that must
// not call the agent is tested against one that answers 500.
func newFakeAgent(t *testing.T, status int, body string) *fakeAgent {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance tests need TF_ACC=1 (make test sets it)")
	}
	if os.Getenv("TF_ACC_TEMP_DIR") == "" {
		t.Setenv("TF_ACC_TEMP_DIR", t.TempDir())
	}
	f := &fakeAgent{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	t.Setenv(EnvEndpoint, srv.URL)
	t.Setenv(EnvToken, "test-token")
	return f
}

// noAgent is a fakeAgent that fails every request: the data sources under
// test must not call it.
func noAgent(t *testing.T) *fakeAgent {
	t.Helper()
	return newFakeAgent(t, http.StatusInternalServerError,
		`{"error":{"code":"unexpected","message":"this data source must not call the agent"}}`)
}

// checkNotCalled is a step check that fails when the agent got a request.
func (f *fakeAgent) checkNotCalled(_ *terraform.State) error {
	if n := f.hits.Load(); n != 0 {
		return fmt.Errorf("the agent got %d requests, want none", n)
	}
	return nil
}

// expectDocument checks both renderings of doc in the data source at addr.
func expectDocument(addr string, doc policy.Document) []statecheck.StateCheck {
	return []statecheck.StateCheck{
		statecheck.ExpectKnownValue(addr, tfjsonpath.New("json"), knownvalue.StringExact(doc.JSON())),
		statecheck.ExpectKnownValue(addr, tfjsonpath.New("minified_json"), knownvalue.StringExact(doc.MinifiedJSON())),
	}
}

// expectString checks a string attribute of the data source at addr.
func expectString(addr, attr, want string) statecheck.StateCheck {
	return statecheck.ExpectKnownValue(addr, tfjsonpath.New(attr), knownvalue.StringExact(want))
}

// captureAttr returns a check that stores the attribute's value in *dst,
// so that a test can use what terraform produced after resource.Test.
func captureAttr(addr, attr string, dst *string) resource.TestCheckFunc {
	return resource.TestCheckResourceAttrWith(addr, attr, func(v string) error {
		*dst = v
		return nil
	})
}

// TestPolicyDataSourceSchemas checks that every attribute of the four data
// sources is documented, since the descriptions become the docs, and that
// outputs are computed only.
func TestPolicyDataSourceSchemas(t *testing.T) {
	sources := []datasource.DataSource{
		NewIdentityDataSource(), NewTrustPolicyDataSource(), NewRolePolicyDataSource(), NewBucketPolicyDataSource(),
	}
	for _, ds := range sources {
		var resp datasource.SchemaResponse
		ds.Schema(context.Background(), datasource.SchemaRequest{}, &resp)
		if resp.Diagnostics.HasError() {
			t.Fatalf("%T: %v", ds, resp.Diagnostics)
		}
		if len(resp.Schema.Description) < 80 {
			t.Errorf("%T: description too short: %q", ds, resp.Schema.Description)
		}
		for name, attr := range resp.Schema.Attributes {
			if len(attr.GetDescription()) < 40 {
				t.Errorf("%T.%s: description too short: %q", ds, name, attr.GetDescription())
			}
			if (name == "json" || name == "minified_json") && (!attr.IsComputed() || attr.IsOptional()) {
				t.Errorf("%T.%s must be computed only", ds, name)
			}
		}
	}
}

package provider

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	acc "github.com/hashicorp/terraform-plugin-testing/helper/resource"
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
func captureAttr(addr, attr string, dst *string) acc.TestCheckFunc {
	return acc.TestCheckResourceAttrWith(addr, attr, func(v string) error {
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

// TestPermissionDescriptions: the descriptions that become the docs list
// the actions the documents grant, from the policy package, and none that
// they do not.
func TestPermissionDescriptions(t *testing.T) {
	texts := map[string]string{}
	for _, ds := range []datasource.DataSource{NewRolePolicyDataSource(), NewBucketPolicyDataSource()} {
		var resp datasource.SchemaResponse
		ds.Schema(context.Background(), datasource.SchemaRequest{}, &resp)
		name := fmt.Sprintf("%T", ds)
		texts[name] = resp.Schema.Description
		for attr, a := range resp.Schema.Attributes {
			texts[name+"."+attr] = a.GetDescription()
		}
	}
	var rs resource.SchemaResponse
	NewS3DestinationResource().Schema(context.Background(), resource.SchemaRequest{}, &rs)
	for attr, a := range rs.Schema.Attributes {
		texts["auditexport_s3_destination."+attr] = a.GetDescription()
	}
	for name, text := range texts {
		for _, stale := range []string{"kms:Encrypt", "GetBucketLocation", "without a role"} {
			if strings.Contains(text, stale) {
				t.Errorf("%s mentions %q: %s", name, stale, text)
			}
		}
	}
	want := map[string][]string{
		"*provider.rolePolicyDataSource":             policy.ObjectWriteActions(),
		"*provider.bucketPolicyDataSource":           policy.ObjectWriteActions(),
		"*provider.rolePolicyDataSource.kms_key_arn": policy.KMSActions(),
		"auditexport_s3_destination.kms_key_arn":     policy.KMSActions(),
	}
	for name, actions := range want {
		for _, a := range actions {
			if !strings.Contains(texts[name], "`"+a+"`") {
				t.Errorf("%s does not name %s: %s", name, a, texts[name])
			}
		}
	}
	if d := texts["auditexport_s3_destination.expected_bucket_owner"]; !strings.Contains(d, "x-amz-expected-bucket-owner") {
		t.Errorf("expected_bucket_owner description: %q", d)
	}
}

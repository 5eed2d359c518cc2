package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/auditexport/auditexport/internal/api"
)

// A body the agent cannot read is refused in the API's words, naming the
// JSON field, never Go's types.
func TestDestinationBodyErrors(t *testing.T) {
	h, toks := newTestServer(t, fakeTester{})
	tests := []struct {
		name, body, code, field, message string
	}{
		{"wrong type", `{"bucket": 42, "region": "us-east-1"}`, "invalid_json", "bucket", "bucket: must be a string, got a number"},
		{"misspelt field", `{"buckett": "acme-audit"}`, "invalid_json", "buckett", `unknown field "buckett"; did you mean "bucket"?`},
		{"zero max_object_bytes", `{"bucket":"acme-audit","region":"us-east-1","role_arn":"arn:aws:iam::123456789012:role/r","max_object_bytes":0}`,
			"invalid_field", "max_object_bytes", "max_object_bytes: must be between 5242880 (5 MiB) and 5497558138880 (5 TiB), got 0; leave it out for the default, 268435456 (256 MiB)"},
		{"not JSON", `bucket=acme`, "invalid_json", "", "destination body is not valid JSON: invalid character 'b' looking for beginning of value (at byte 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, er := call(t, h, "POST", "/v1/destinations", toks["a"], tt.body)
			got := er.Error
			if rec.Code != http.StatusBadRequest || got.Code != tt.code || got.Field != tt.field || got.Message != tt.message {
				t.Errorf("%d %+v\nwant 400 {Code:%s Field:%s Message:%s}", rec.Code, got, tt.code, tt.field, tt.message)
			}
		})
	}
}

// aws.allowed_regions: a destination elsewhere is refused on create and on
// update, naming the allowed regions, and the identity tells the provider.
func TestAllowedRegions(t *testing.T) {
	allowed := []string{"us-east-1", "eu-west-1"}
	h, toks := newTestServerWith(t, fakeTester{}, Options{AllowedRegions: allowed})
	body := func(region string) string {
		return `{"bucket":"acme-audit","region":"` + region + `","role_arn":"arn:aws:iam::123456789012:role/r"}`
	}
	const refusal = `region: "ap-south-1" is not allowed by this agent: use one of us-east-1, eu-west-1`

	rec, er := call(t, h, "POST", "/v1/destinations", toks["a"], body("ap-south-1"))
	if rec.Code != http.StatusBadRequest || er.Error.Field != "region" || er.Error.Message != refusal {
		t.Fatalf("create in ap-south-1: %d %+v, want 400 naming the allowed regions", rec.Code, er.Error)
	}
	rec, _ = call(t, h, "POST", "/v1/destinations", toks["a"], body("eu-west-1"))
	if rec.Code != http.StatusCreated {
		t.Fatalf("create in eu-west-1: %d %s", rec.Code, rec.Body)
	}
	var d api.Destination
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	rec, er = call(t, h, "PUT", "/v1/destinations/"+d.ID, toks["a"], body("ap-south-1"))
	if rec.Code != http.StatusBadRequest || er.Error.Message != refusal {
		t.Fatalf("move to ap-south-1: %d %+v, want 400 naming the allowed regions", rec.Code, er.Error)
	}

	rec, _ = call(t, h, "GET", "/v1/identity", toks["a"], "")
	var id api.Identity
	if err := json.Unmarshal(rec.Body.Bytes(), &id); err != nil || !slices.Equal(id.AllowedRegions, allowed) {
		t.Fatalf("identity = %s (%v), want allowed_regions %v", rec.Body, err, allowed)
	}

	// Without the setting every region is allowed and identity has no list.
	h, toks = newTestServer(t, fakeTester{})
	if rec, _ := call(t, h, "POST", "/v1/destinations", toks["a"], body("ap-south-1")); rec.Code != http.StatusCreated {
		t.Fatalf("no allow-list: create in ap-south-1: %d %s", rec.Code, rec.Body)
	}
	rec, _ = call(t, h, "GET", "/v1/identity", toks["a"], "")
	if id := (api.Identity{}); json.Unmarshal(rec.Body.Bytes(), &id) != nil || id.AllowedRegions != nil {
		t.Fatalf("identity without an allow-list = %s", rec.Body)
	}
}

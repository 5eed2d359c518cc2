package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/ingest"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/tokens"
)

// fakeTester stands in for the AWS side in these routing and auth tests; the
// end-to-end tests run the connection test against a real S3/STS server.
type fakeTester struct{ err error }

func (f fakeTester) Test(context.Context, s3sink.Target) (s3sink.TestResult, error) {
	return s3sink.TestResult{Warnings: []string{"DeleteObject denied"}}, f.err
}
func (f fakeTester) ARN(context.Context) (string, error) {
	return "arn:aws:iam::123456789012:user/d", nil
}

func newTestServer(t *testing.T, tester Tester) (http.Handler, map[string]string) {
	t.Helper()
	return newTestServerWith(t, tester, Options{})
}

// newTestServerWith is newTestServer with opts.
func newTestServerWith(t *testing.T, tester Tester, opts Options) (http.Handler, map[string]string) {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{SQLitePath: filepath.Join(t.TempDir(), "db"), Now: opts.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := ingest.NewCommitter(st, ingest.CommitterOptions{}, nil)
	c.Start()
	t.Cleanup(c.Close)
	ctx := context.Background()
	toks := map[string]string{}
	for _, name := range []string{"a", "b"} {
		tn, err := st.CreateTenant(ctx, name, "ext-"+name)
		if err != nil {
			t.Fatal(err)
		}
		toks[name] = tokens.New(api.ScopeManage)
		if _, err := st.CreateToken(ctx, store.Token{Hash: tokens.Hash(toks[name]), Scope: api.ScopeManage, TenantID: tn.ID}); err != nil {
			t.Fatal(err)
		}
	}
	toks["ingest"] = tokens.New(api.ScopeIngest)
	if _, err := st.CreateToken(ctx, store.Token{Hash: tokens.Hash(toks["ingest"]), Scope: api.ScopeIngest}); err != nil {
		t.Fatal(err)
	}
	return New(st, c, tester, nil, metrics.New(), hclog.NewNullLogger(), opts).Handler(), toks
}

func call(t *testing.T, h http.Handler, method, path, token, body string) (*httptest.ResponseRecorder, api.ErrorResponse) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var er api.ErrorResponse
	_ = json.Unmarshal(rec.Body.Bytes(), &er)
	return rec, er
}

func TestAuth(t *testing.T) {
	h, toks := newTestServer(t, fakeTester{})
	event := `{"timestamp":1767225600000,"eventName":"x","messageId":"m1"}`
	tests := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"no token", "GET", "/v1/identity", "", "", 401, "unauthorized"},
		{"unknown token", "GET", "/v1/identity", "aex_manage_nope", "", 401, "unauthorized"},
		{"ingest token cannot manage", "GET", "/v1/destinations", toks["ingest"], "", 403, "forbidden"},
		{"manage token cannot post", "POST", "/v1/tenants/a/events", toks["a"], event, 403, "forbidden"},
		{"unknown tenant", "POST", "/v1/tenants/zz/events", toks["ingest"], event, 404, "tenant_not_found"},
		{"unknown route", "GET", "/v2/x", toks["a"], "", 404, "not_found"},
		{"identity", "GET", "/v1/identity", toks["a"], "", 200, ""},
		{"post", "POST", "/v1/tenants/a/events", toks["ingest"], event, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, er := call(t, h, tt.method, tt.path, tt.token, tt.body)
			if rec.Code != tt.status || er.Error.Code != tt.code {
				t.Fatalf("%s %s = %d %q, want %d %q (%s)", tt.method, tt.path, rec.Code, er.Error.Code, tt.status, tt.code, rec.Body)
			}
		})
	}
	if rec, _ := call(t, h, "GET", "/v1/identity", "", ""); rec.Header().Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
}

func TestCreateDestination(t *testing.T) {
	valid := `{"bucket":"acme-audit","region":"us-east-1","role_arn":"arn:aws:iam::123456789012:role/r"}`
	tests := []struct {
		name   string
		tester Tester
		body   string
		status int
		field  string
	}{
		{"created with warnings", fakeTester{}, valid, 201, ""},
		{"unknown field", fakeTester{}, `{"bucket":"acme-audit","colour":"red"}`, 400, "colour"},
		{"bad field", fakeTester{}, `{"bucket":"acme-audit","region":"us-east-1","role_arn":"arn:aws:iam::123456789012:role/r","interval":"3m"}`, 400, "interval"},
		{"connection test fails", fakeTester{err: &s3sink.Error{Call: "AssumeRole", Code: "AccessDenied", Fix: "trust it"}}, valid, 422, ""},
		{"upstream unavailable", fakeTester{err: &s3sink.Error{Call: "PutObject", Code: "SlowDown", Retryable: true}}, valid, 502, ""},
		{"other error", fakeTester{err: errors.New("boom")}, valid, 422, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, toks := newTestServer(t, tt.tester)
			rec, er := call(t, h, "POST", "/v1/destinations", toks["a"], tt.body)
			if rec.Code != tt.status || er.Error.Field != tt.field {
				t.Fatalf("status %d field %q, want %d %q: %s", rec.Code, er.Error.Field, tt.status, tt.field, rec.Body)
			}
			if rec.Code == 201 {
				var d api.Destination
				_ = json.Unmarshal(rec.Body.Bytes(), &d)
				if d.ExternalID != "ext-a" || len(d.Warnings) != 1 || d.Status.State != api.StatePending {
					t.Fatalf("created destination = %+v", d)
				}
				if rec, _ := call(t, h, "GET", "/v1/destinations/"+d.ID, toks["b"], ""); rec.Code != 404 {
					t.Fatalf("tenant b read tenant a's destination: %d", rec.Code)
				}
			}
			if tt.status == 422 && er.Error.Call != "" && er.Error.AWSCode == "" {
				t.Fatalf("connection test error lacks the AWS code: %+v", er.Error)
			}
		})
	}
}

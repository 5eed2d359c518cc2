package server

import (
	"encoding/json"
	"net/http"
	"testing"
)

// principalTester is a Tester that reports its delivery principal, as the
// daemon's does.
type principalTester struct {
	fakeTester
	status string
}

func (p principalTester) DeliveryPrincipal() string { return p.status }

func TestHealthzReportsTheDeliveryPrincipal(t *testing.T) {
	tests := []struct {
		name   string
		tester Tester
		want   map[string]string
	}{
		{"principal ok", principalTester{status: "ok"}, map[string]string{"status": "ok", "store": "ok", "delivery_principal": "ok"}},
		// Still 200: the agent ingests without credentials.
		{"principal missing", principalTester{status: "missing"}, map[string]string{"status": "ok", "store": "ok", "delivery_principal": "missing"}},
		{"tester without a status", fakeTester{}, map[string]string{"status": "ok", "store": "ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newTestServer(t, tt.tester)
			rec, _ := call(t, h, http.MethodGet, "/healthz", "", "")
			var got map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", rec.Body.String(), err)
			}
			if rec.Code != http.StatusOK || len(got) != len(tt.want) {
				t.Fatalf("GET /healthz = %d %v, want 200 %v", rec.Code, got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestWrongMethodAnswers405(t *testing.T) {
	h, toks := newTestServer(t, fakeTester{})
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodGet, "/v1/tenants/a/events", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPut, "/v1/tenants/a/events", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPost, "/v1/identity", http.StatusMethodNotAllowed, "GET"},
		{http.MethodPost, "/v1/destinations/dst_1", http.StatusMethodNotAllowed, "GET, PUT, DELETE"},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed, "GET"},
		{http.MethodGet, "/v1/nothing-here", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec, er := call(t, h, tt.method, tt.path, toks["ingest"], "")
			if rec.Code != tt.status || rec.Header().Get("Allow") != tt.allow {
				t.Fatalf("%s %s = %d, Allow %q; want %d, Allow %q", tt.method, tt.path, rec.Code, rec.Header().Get("Allow"), tt.status, tt.allow)
			}
			if er.Error.Code == "" {
				t.Errorf("no JSON error body: %q", rec.Body.String())
			}
		})
	}
}

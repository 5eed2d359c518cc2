package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/clock/clocktest"
	"github.com/auditexport/auditexport/internal/ingest"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/tokens"
)

// testAPI is a Server over a real SQLite store with tenants a and b, a
// manage token for each, an ingest token for every tenant ("ingest") and
// one bound to tenant a ("ingest-a").
type testAPI struct {
	h       http.Handler
	st      store.Store
	metrics *metrics.Metrics
	clock   *clocktest.Fake
	toks    map[string]string
}

func newTestAPI(t *testing.T, opts Options) *testAPI {
	t.Helper()
	// One clock for the store and the server, as the daemon wires them.
	clk := clocktest.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	st, err := store.Open(context.Background(), store.Config{SQLitePath: filepath.Join(t.TempDir(), "db"), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := ingest.NewCommitter(st, ingest.CommitterOptions{}, nil)
	c.Start()
	t.Cleanup(c.Close)
	ctx := context.Background()
	a := &testAPI{st: st, metrics: metrics.New(), clock: clk, toks: map[string]string{}}
	addToken := func(name, scope string, tenantID int64) {
		a.toks[name] = tokens.New(scope)
		if _, err := st.CreateToken(ctx, store.Token{Hash: tokens.Hash(a.toks[name]), Scope: scope, TenantID: tenantID}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"a", "b"} {
		tn, err := st.CreateTenant(ctx, name, "ext-"+name)
		if err != nil {
			t.Fatal(err)
		}
		addToken(name, api.ScopeManage, tn.ID)
		if name == "a" {
			addToken("ingest-a", api.ScopeIngest, tn.ID)
		}
	}
	addToken("ingest", api.ScopeIngest, 0)
	opts.Now = a.clock.Now
	a.h = New(st, c, fakeTester{}, nil, a.metrics, hclog.NewNullLogger(), opts).Handler()
	return a
}

// do sends a request from the client address remote ("" is httptest's).
func (a *testAPI) do(t *testing.T, req *http.Request, remote string) *httptest.ResponseRecorder {
	t.Helper()
	if remote != "" {
		req.RemoteAddr = remote
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	return rec
}

func (a *testAPI) authFailures(reason string) float64 {
	return testutil.ToFloat64(a.metrics.AuthFailures.WithLabelValues(reason))
}

const oneEvent = `{"timestamp":1767225600000,"eventName":"x","messageId":"m1"}`

func TestAuthMessages(t *testing.T) {
	a := newTestAPI(t, Options{})
	tests := []struct {
		name, method, path, token string
		status                    int
		message                   string
	}{
		{"bound ingest token on another tenant", "POST", "/v1/tenants/b/events", "ingest-a", 403, "this ingest token is bound to tenant a"},
		{"bound ingest token on an unknown tenant", "POST", "/v1/tenants/zz/events", "ingest-a", 403, "this ingest token is bound to tenant a"},
		{"bound ingest token on its tenant", "POST", "/v1/tenants/a/events", "ingest-a", 200, ""},
		{"ingest token for every tenant", "POST", "/v1/tenants/b/events", "ingest", 200, ""},
		{"manage token posting", "POST", "/v1/tenants/a/events", "a", 403, "this is a manage token; this call needs an ingest token"},
		{"ingest token managing", "GET", "/v1/destinations", "ingest", 403, "this is an ingest token; this call needs a manage token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, er := call(t, a.h, tt.method, tt.path, a.toks[tt.token], oneEvent)
			if rec.Code != tt.status || !strings.Contains(er.Error.Message, tt.message) {
				t.Fatalf("%s %s = %d %q, want %d with %q", tt.method, tt.path, rec.Code, er.Error.Message, tt.status, tt.message)
			}
		})
	}
	if got := a.authFailures(authWrongTenant); got != 2 {
		t.Errorf("wrong_tenant failures = %v, want 2", got)
	}
	if got := a.authFailures(authWrongScope); got != 2 {
		t.Errorf("wrong_scope failures = %v, want 2", got)
	}
}

func TestAuthFailuresAreSlowed(t *testing.T) {
	a := newTestAPI(t, Options{AuthFailuresPerMinute: 3})
	const attacker, other = "192.0.2.7:40000", "198.51.100.9:40000"
	identity := func(token, remote string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/v1/identity", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return a.do(t, req, remote)
	}
	steps := []struct {
		name       string
		token      string
		remote     string
		advance    time.Duration
		status     int
		retryAfter string
	}{
		{"1st guess", "aex_manage_guess1", attacker, 0, 401, ""},
		{"no token counts too", "", attacker, 0, 401, ""},
		{"3rd guess", "aex_manage_guess3", attacker, 0, 401, ""},
		{"4th guess is throttled", "aex_manage_guess4", attacker, 0, 429, "20"},
		// Answering a valid token would tell a guess from a miss.
		{"a valid token from the address is throttled", a.toks["a"], attacker, 0, 429, "20"},
		{"another address is not", a.toks["a"], other, 0, 200, ""},
		{"another address may fail", "aex_manage_x", other, 0, 401, ""},
		{"still throttled a little later", "aex_manage_guess5", attacker, 19 * time.Second, 429, "1"},
		{"one more try after the refill", "aex_manage_guess6", attacker, time.Second, 401, ""},
		{"and throttled again", a.toks["a"], attacker, 0, 429, "20"},
		{"a valid token after the refill", a.toks["a"], attacker, 20 * time.Second, 200, ""},
	}
	for _, st := range steps {
		a.clock.Advance(st.advance)
		rec := identity(st.token, st.remote)
		if rec.Code != st.status || rec.Header().Get("Retry-After") != st.retryAfter {
			t.Fatalf("%s: %d Retry-After %q, want %d %q: %s", st.name, rec.Code, rec.Header().Get("Retry-After"), st.status, st.retryAfter, rec.Body)
		}
	}
	for reason, want := range map[string]float64{authInvalid: 4, authMissing: 1, authThrottled: 4} {
		if got := a.authFailures(reason); got != want {
			t.Errorf("auth failures %s = %v, want %v", reason, got, want)
		}
	}
	// The series is served under the documented name.
	rec := a.do(t, httptest.NewRequest("GET", "/metrics", nil), "")
	if !strings.Contains(rec.Body.String(), `auditexport_auth_failures_total{reason="invalid_token"} 4`) {
		t.Errorf("/metrics lacks the auth failure series:\n%s", rec.Body)
	}
}

func TestClientAddr(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"192.0.2.1:1234", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.1]:1", "192.0.2.1"},
		{"not-an-address", "not-an-address"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		if got := clientAddr(r); got != tt.want {
			t.Errorf("clientAddr(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}

package daemon

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/clock/clocktest"
	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/tokens"
)

// The clock given to StartWith is the one the store stamps with and the
// API judges event times by: an event five years ahead of the machine's
// clock is accepted, and stored as received at the fake time.
func TestStartWithOneClock(t *testing.T) {
	at := time.Now().UTC().AddDate(5, 0, 0).Truncate(time.Millisecond)
	clk := clocktest.NewFake(at)
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.AWS.PrincipalARN = "arn:aws:iam::123456789012:user/delivery"
	cfg.AWS.AccessKeyID, cfg.AWS.SecretAccessKey = "AKIDTEST", "secret"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := StartWith(ctx, cfg, hclog.NewNullLogger(), "test", Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	tn, err := d.Store.CreateTenant(ctx, "acme", "ext-acme")
	if err != nil {
		t.Fatal(err)
	}
	if !tn.CreatedAt.Equal(at) {
		t.Errorf("tenant created at %s, want the fake clock's %s", tn.CreatedAt, at)
	}
	tok := tokens.New(api.ScopeIngest)
	if _, err := d.Store.CreateToken(ctx, store.Token{Hash: tokens.Hash(tok), Scope: api.ScopeIngest, TenantID: tn.ID}); err != nil {
		t.Fatal(err)
	}

	body := `{"timestamp":` + strconv.FormatInt(at.UnixMilli(), 10) + `,"eventName":"user.login","messageId":"m1"}`
	req := httptest.NewRequest(http.MethodPost, "/v1/tenants/acme/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/x-ndjson")
	rec := httptest.NewRecorder()
	d.api.Handler().ServeHTTP(rec, req)
	if rec.Code/100 != 2 {
		t.Fatalf("POST events = %d %s, want 2xx: the API judged the time by another clock", rec.Code, rec.Body)
	}
	received, err := d.Store.OldestAfter(ctx, tn.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !received.Equal(at) {
		t.Errorf("event received at %s, want the fake clock's %s", received, at)
	}
}

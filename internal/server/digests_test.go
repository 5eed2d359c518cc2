package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/clock/clocktest"
	"github.com/auditexport/auditexport/internal/digest"
	"github.com/auditexport/auditexport/internal/ingest"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/tokens"
)

// logServer is a server over a store whose delivery log has objects: five
// commits of destination d1 of tenant a, one an hour from 10:00, with two
// objects each; tenant b has a destination d2 with one object.
type logServer struct {
	h     http.Handler
	st    store.Store
	clock *clocktest.Fake
	toks  map[string]string
}

func newLogServer(t *testing.T) *logServer {
	t.Helper()
	ctx := context.Background()
	clk := clocktest.NewFake(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	st, err := store.Open(ctx, store.Config{SQLitePath: filepath.Join(t.TempDir(), "db"), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := ingest.NewCommitter(st, ingest.CommitterOptions{}, nil)
	c.Start()
	t.Cleanup(c.Close)
	s := &logServer{st: st, clock: clk, toks: map[string]string{}}
	for _, name := range []string{"a", "b"} {
		tn, err := st.CreateTenant(ctx, name, "ext-"+name)
		if err != nil {
			t.Fatal(err)
		}
		s.toks[name] = tokens.New(api.ScopeManage)
		if _, err := st.CreateToken(ctx, store.Token{Hash: tokens.Hash(s.toks[name]), Scope: api.ScopeManage, TenantID: tn.ID}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateDestination(ctx, store.Destination{ID: "d_" + name, TenantID: tn.ID, Spec: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range int64(5) {
		s.commit(t, "d_a", 10*i+1, 10*i+10, 2)
		clk.Advance(time.Hour)
	}
	s.commit(t, "d_b", 1, 3, 1)
	s.h = New(st, c, fakeTester{}, nil, metrics.New(), hclog.NewNullLogger(), Options{Now: clk.Now}).Handler()
	return s
}

func (s *logServer) commit(t *testing.T, dest string, from, to int64, objects int) {
	t.Helper()
	p := store.Plan{DestinationID: dest, FromSeq: from, ToSeq: to, WindowEnd: s.clock.Now(), Objects: []byte(`[]`)}
	if err := s.st.SavePlan(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	var log []store.LoggedObject
	for i := range objects {
		log = append(log, store.LoggedObject{Key: fmt.Sprintf("%s/%d-%d/%d", dest, from, to, i), SHA256: fmt.Sprintf("%064x", from*10+int64(i)),
			Size: 10, Events: 1, FirstSeq: from, LastSeq: to, OldestEventTime: s.clock.Now(), NewestEventTime: s.clock.Now()})
	}
	if err := s.st.CommitPlan(context.Background(), p, store.Delivered{Log: log}); err != nil {
		t.Fatal(err)
	}
}

func (s *logServer) objects(t *testing.T, token, dest string, q url.Values) (int, api.DeliveredObjects, api.ErrorResponse) {
	t.Helper()
	rec, er := call(t, s.h, http.MethodGet, "/v1/destinations/"+dest+"/objects?"+q.Encode(), token, "")
	var out api.DeliveredObjects
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
	}
	return rec.Code, out, er
}

func TestObjectsPages(t *testing.T) {
	s := newLogServer(t)
	var keys []string
	q := url.Values{"limit": {"3"}}
	pages := 0
	for {
		code, page, er := s.objects(t, s.toks["a"], "d_a", q)
		if code != http.StatusOK {
			t.Fatalf("page %d: %d %+v", pages, code, er)
		}
		pages++
		for _, o := range page.Objects {
			keys = append(keys, o.Key)
		}
		if page.NextPageToken == "" {
			break
		}
		q.Set("page_token", page.NextPageToken)
		if pages > 10 {
			t.Fatal("pages never end")
		}
	}
	if len(keys) != 10 || pages != 4 || keys[0] != "d_a/1-10/0" || keys[9] != "d_a/41-50/1" {
		t.Errorf("%d pages of 3 listed %v; want 4 pages, the 10 objects in commit order", pages, keys)
	}
}

func TestObjectsFilterAndScope(t *testing.T) {
	s := newLogServer(t)
	tests := []struct {
		name      string
		token     string
		dest      string
		q         url.Values
		wantCode  int
		wantKeys  int
		wantField string
	}{
		{"all", "a", "d_a", nil, 200, 10, ""},
		{"from 12:00", "a", "d_a", url.Values{"from": {"2026-11-25T12:00:00Z"}}, 200, 6, ""},
		{"to 12:00", "a", "d_a", url.Values{"to": {"2026-11-25T12:00:00Z"}}, 200, 4, ""},
		{"the 12:00 hour", "a", "d_a", url.Values{"from": {"2026-11-25T12:00:00Z"}, "to": {"2026-11-25T13:00:00Z"}}, 200, 2, ""},
		{"another tenant's destination", "b", "d_a", nil, 404, 0, ""},
		{"unknown destination", "a", "nope", nil, 404, 0, ""},
		{"bad limit", "a", "d_a", url.Values{"limit": {"0"}}, 400, 0, "limit"},
		{"bad time", "a", "d_a", url.Values{"from": {"yesterday"}}, 400, 0, "from"},
		{"bad token", "a", "d_a", url.Values{"page_token": {"!!"}}, 400, 0, "page_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, page, er := s.objects(t, s.toks[tt.token], tt.dest, tt.q)
			if code != tt.wantCode || len(page.Objects) != tt.wantKeys || er.Error.Field != tt.wantField {
				t.Errorf("got %d, %d objects, error %+v; want %d, %d objects, field %q", code, len(page.Objects), er.Error, tt.wantCode, tt.wantKeys, tt.wantField)
			}
		})
	}
	if code, _, _ := s.objects(t, "", "d_a", nil); code != http.StatusUnauthorized {
		t.Errorf("objects without a token: %d, want 401", code)
	}
}

func TestSigningKeysPublished(t *testing.T) {
	s := newLogServer(t)
	ctx := context.Background()
	var pubs []ed25519.PublicKey
	for i := range 2 {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		pubs = append(pubs, pub)
		if _, err := s.st.AddSigningKey(ctx, store.SigningKey{KeyID: digest.KeyID(pub), PublicKey: pub, Private: []byte("sealed")}, i > 0); err != nil {
			t.Fatal(err)
		}
		s.clock.Advance(time.Hour)
	}
	rec, _ := call(t, s.h, http.MethodGet, "/v1/signing-keys", "", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/signing-keys without a token: %d %s", rec.Code, rec.Body)
	}
	set, err := digest.ParseKeySet(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 || set.Keys[0].KeyID != digest.KeyID(pubs[0]) || set.Keys[0].NotAfter == nil ||
		!set.Keys[0].NotAfter.Equal(set.Keys[1].NotBefore) || set.Keys[1].NotAfter != nil {
		t.Errorf("published keys = %s; want the retired key then the current one", rec.Body)
	}

	rec, er := call(t, s.h, http.MethodGet, "/v1/identity", s.toks["a"], "")
	var id api.Identity
	if err := json.Unmarshal(rec.Body.Bytes(), &id); rec.Code != http.StatusOK || err != nil {
		t.Fatalf("identity: %d %+v", rec.Code, er)
	}
	if len(id.SigningKeys) != 2 || id.SigningKeys[1].KeyID != set.Keys[1].KeyID || id.SigningKeys[1].PublicKey != set.Keys[1].PublicKey {
		t.Errorf("identity signing_keys = %+v, want the published %+v", id.SigningKeys, set.Keys)
	}
}

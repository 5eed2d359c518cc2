package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/auditexport/auditexport/internal/api"
)

// createDestinations creates n destinations for the token's tenant, a few
// at a time, and returns their ids.
func createDestinations(t *testing.T, h http.Handler, token string, n int) map[string]bool {
	t.Helper()
	body := `{"bucket":"acme-audit","region":"us-east-1","role_arn":"arn:aws:iam::123456789012:role/r"}`
	ids := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for range next {
				req := httptest.NewRequest("POST", "/v1/destinations", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				var d api.Destination
				if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &d) != nil {
					t.Errorf("create: %d %s", rec.Code, rec.Body)
					continue
				}
				mu.Lock()
				ids[d.ID] = true
				mu.Unlock()
			}
		})
	}
	for range n {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	return ids
}

// Listing pages through a tenant's destinations in a stable order, each
// once, never another tenant's; the Go client follows the pages.
func TestListDestinationsPages(t *testing.T) {
	h, toks := newTestServer(t, fakeTester{})
	want := createDestinations(t, h, toks["a"], 25)
	createDestinations(t, h, toks["b"], 3)

	tests := []struct {
		limit string
		pages []int
	}{
		{"", []int{25}}, // the default limit, 100
		{"10", []int{10, 10, 5}},
		{"25", []int{25}},
		{"1", nil}, // 25 pages of one
	}
	for _, tt := range tests {
		t.Run("limit="+tt.limit, func(t *testing.T) {
			seen := map[string]bool{}
			var sizes []int
			token := ""
			for page := 0; ; page++ {
				if page > 100 {
					t.Fatal("more than 100 pages")
				}
				path := "/v1/destinations?limit=" + tt.limit + "&page_token=" + token
				rec, _ := call(t, h, "GET", path, toks["a"], "")
				var list api.DestinationList
				if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &list) != nil {
					t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
				}
				sizes = append(sizes, len(list.Destinations))
				for _, d := range list.Destinations {
					if seen[d.ID] || !want[d.ID] {
						t.Fatalf("page %d: %s listed twice or not the tenant's", page, d.ID)
					}
					seen[d.ID] = true
				}
				if list.NextPageToken == "" {
					break
				}
				token = list.NextPageToken
			}
			if len(seen) != len(want) {
				t.Fatalf("listed %d destinations, want %d", len(seen), len(want))
			}
			if tt.pages != nil && fmt.Sprint(sizes) != fmt.Sprint(tt.pages) {
				t.Fatalf("page sizes %v, want %v", sizes, tt.pages)
			}
		})
	}

	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := api.NewClient(srv.URL, toks["a"], nil)
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.ListDestinationsPage(context.Background(), 7, "")
	if err != nil || len(page.Destinations) != 7 || page.NextPageToken == "" {
		t.Fatalf("ListDestinationsPage(7) = %d destinations, token %q, %v", len(page.Destinations), page.NextPageToken, err)
	}
	all, err := c.ListDestinations(context.Background())
	if err != nil || len(all) != len(want) {
		t.Fatalf("ListDestinations = %d destinations, %v; want %d", len(all), err, len(want))
	}
}

// A wrong limit or page token is refused naming the parameter.
func TestListDestinationsBadParameters(t *testing.T) {
	h, toks := newTestServer(t, fakeTester{})
	tests := []struct{ query, field string }{
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=ten", "limit"},
		{"page_token=nope", "page_token"},
		{"page_token=djE6eDp5", "page_token"}, // "v1:x:y": not a time
	}
	for _, tt := range tests {
		rec, er := call(t, h, "GET", "/v1/destinations?"+tt.query, toks["a"], "")
		if rec.Code != http.StatusBadRequest || er.Error.Field != tt.field {
			t.Errorf("%s: %d %+v, want 400 naming %s", tt.query, rec.Code, er.Error, tt.field)
		}
	}
}

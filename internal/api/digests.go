package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/auditexport/auditexport/internal/digest"
)

// SigningKey is a published key that signs the hourly integrity digests, as
// GET /v1/signing-keys and Identity.SigningKeys list it: the digest format's
// published key (key_id, algorithm, public_key, not_before, not_after).
type SigningKey = digest.PublicKey

// SigningKeys answers GET /v1/signing-keys: every key ever used, oldest
// first. Keys are retired, never removed.
type SigningKeys = digest.KeySet

// DeliveredObject is one entry of a destination's delivery log: an object
// written to the bucket, as a digest lists it.
type DeliveredObject = digest.Object

// DeliveredObjects answers GET /v1/destinations/{id}/objects: a page of the
// delivery log in commit order. NextPageToken, when set, fetches the next
// page.
type DeliveredObjects struct {
	Objects       []DeliveredObject `json:"objects"`
	NextPageToken string            `json:"next_page_token,omitempty"`
}

// ObjectsQuery selects a page of GET /v1/destinations/{id}/objects.
type ObjectsQuery struct {
	// From and To bound the commit time, From <= committed_at < To; zero
	// leaves a side open.
	From, To time.Time
	// Limit is the page size (default 100, at most 1000).
	Limit int
	// PageToken is a previous page's NextPageToken.
	PageToken string
}

// Values is q as the route's query parameters.
func (q ObjectsQuery) Values() url.Values {
	v := url.Values{}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.PageToken != "" {
		v.Set("page_token", q.PageToken)
	}
	return v
}

// SigningKeys returns the published digest signing keys. The route needs
// no token; the client sends its own anyway.
func (c *Client) SigningKeys(ctx context.Context) (SigningKeys, error) {
	var out SigningKeys
	err := c.do(ctx, http.MethodGet, "/v1/signing-keys", nil, &out)
	return out, err
}

// DeliveredObjects returns a page of a destination's delivery log.
func (c *Client) DeliveredObjects(ctx context.Context, id string, q ObjectsQuery) (DeliveredObjects, error) {
	var out DeliveredObjects
	path := "/v1/destinations/" + url.PathEscape(id) + "/objects"
	if v := q.Values().Encode(); v != "" {
		path += "?" + v
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

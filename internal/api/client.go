package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls the agent's HTTP API with a bearer token.
type Client struct {
	endpoint string
	token    string
	http     *http.Client
	// UserAgent is sent with every request.
	UserAgent string
}

// NewClient returns a client for the agent at endpoint (e.g.
// "https://audit.example.com"). httpClient may be nil.
func NewClient(endpoint, token string, httpClient *http.Client) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q must be an http:// or https:// URL", endpoint)
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 2 * time.Minute}
	}
	return &Client{
		endpoint:  strings.TrimRight(endpoint, "/"),
		token:     token,
		http:      httpClient,
		UserAgent: "auditexport-client",
	}, nil
}

// APIError is a non-2xx answer from the agent.
type APIError struct {
	StatusCode int
	Err        Error
}

func (e *APIError) Error() string {
	if e.Err.Message == "" {
		return fmt.Sprintf("agent answered HTTP %d", e.StatusCode)
	}
	return e.Err.Message
}

// IsNotFound reports whether err is a 404 from the agent.
func IsNotFound(err error) bool {
	return statusOf(err) == http.StatusNotFound
}

// IsUnauthorized reports whether err is a 401 from the agent: the token is
// unknown, revoked or malformed.
func IsUnauthorized(err error) bool {
	return statusOf(err) == http.StatusUnauthorized
}

func statusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode
	}
	return 0
}

// UnreachableError is a request that got no HTTP answer from the agent: a
// wrong endpoint, a stopped agent, a TLS or network failure.
type UnreachableError struct {
	// Endpoint is the agent URL the client was built with.
	Endpoint string
	Err      error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the auditexport agent at %s: %v", e.Endpoint, e.Err)
}

// Unwrap returns the transport error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Endpoint returns the agent URL the client calls.
func (c *Client) Endpoint() string { return c.endpoint }

// Identity returns the tenant's identity: external id and delivery principal.
func (c *Client) Identity(ctx context.Context) (Identity, error) {
	var out Identity
	err := c.do(ctx, http.MethodGet, "/v1/identity", nil, &out)
	return out, err
}

// CreateDestination creates a destination; the agent runs the connection test first.
func (c *Client) CreateDestination(ctx context.Context, spec DestinationSpec) (Destination, error) {
	var out Destination
	err := c.do(ctx, http.MethodPost, "/v1/destinations", spec, &out)
	return out, err
}

// GetDestination reads one destination of the token's tenant.
func (c *Client) GetDestination(ctx context.Context, id string) (Destination, error) {
	var out Destination
	err := c.do(ctx, http.MethodGet, "/v1/destinations/"+url.PathEscape(id), nil, &out)
	return out, err
}

// ListDestinations lists all of the token's tenant's destinations,
// following the pages.
func (c *Client) ListDestinations(ctx context.Context) ([]Destination, error) {
	var all []Destination
	token := ""
	for {
		page, err := c.ListDestinationsPage(ctx, MaxListLimit, token)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Destinations...)
		if page.NextPageToken == "" || page.NextPageToken == token {
			return all, nil
		}
		token = page.NextPageToken
	}
}

// ListDestinationsPage reads one page of up to limit destinations (0: the
// agent's default), starting after the page that returned pageToken ("" for
// the first page).
func (c *Client) ListDestinationsPage(ctx context.Context, limit int, pageToken string) (DestinationList, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if pageToken != "" {
		q.Set("page_token", pageToken)
	}
	path := "/v1/destinations"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out DestinationList
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// UpdateDestination replaces a destination's spec; the connection test runs first.
// An empty SecretAccessKey keeps the stored secret.
func (c *Client) UpdateDestination(ctx context.Context, id string, spec DestinationSpec) (Destination, error) {
	var out Destination
	err := c.do(ctx, http.MethodPut, "/v1/destinations/"+url.PathEscape(id), spec, &out)
	return out, err
}

// DeleteDestination deletes a destination. Undelivered events stay in the
// agent until their retention ends.
func (c *Client) DeleteDestination(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/destinations/"+url.PathEscape(id), nil, nil)
}

// PostEvents posts an NDJSON (or JSON array) body of events for tenant.
// It needs an ingest token.
func (c *Client) PostEvents(ctx context.Context, tenant string, body []byte) (IngestResponse, error) {
	var out IngestResponse
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/tenants/"+url.PathEscape(tenant)+"/events", bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	return out, c.send(req, &out)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req, out)
}

func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.UserAgent)
	return req, nil
}

func (c *Client) send(req *http.Request, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return &UnreachableError{Endpoint: c.endpoint, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("reading the agent's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		ae := &APIError{StatusCode: resp.StatusCode}
		var er ErrorResponse
		if json.Unmarshal(data, &er) == nil {
			ae.Err = er.Error
		}
		return ae
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding the agent's answer: %w", err)
	}
	return nil
}

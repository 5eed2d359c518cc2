// Package api holds the request and response types of the agent's HTTP API
// and the Go client that the Terraform provider and the tests use. The agent's
// server encodes exactly these types, so the two sides cannot drift apart.
package api

import "time"

// Token scopes.
const (
	// ScopeManage tokens are bound to one tenant and manage its destinations.
	ScopeManage = "manage"
	// ScopeIngest tokens belong to the platform and post events for any tenant.
	ScopeIngest = "ingest"
)

// Destination states reported in DestinationStatus.State, in the provider's
// status.state and in the agent's auditexport_destination_state metric.
const (
	// StatePending: nothing delivered yet and no attempt has failed.
	StatePending = "pending"
	// StateHealthy: the last attempt succeeded.
	StateHealthy = "healthy"
	// StateRetrying: the last attempt failed, for less than the agent's
	// delivery.failing_after; events are kept and retried.
	StateRetrying = "retrying"
	// StateFailing: attempts have failed for delivery.failing_after or
	// longer; events are kept and retried.
	StateFailing = "failing"
	// StatePaused: the destination is disabled; events are kept.
	StatePaused = "paused"
)

// States lists every destination state.
var States = []string{StatePending, StateHealthy, StateRetrying, StateFailing, StatePaused}

// Error is the body of every non-2xx response: {"error": {...}}.
type Error struct {
	// Code is a stable, machine-readable identifier such as "invalid_event".
	Code string `json:"code"`
	// Message says what is wrong and how to fix it.
	Message string `json:"message"`
	// Field names the offending request field, when there is one.
	Field string `json:"field,omitempty"`
	// Line is the 1-based NDJSON line (or array index + 1) of a bad event.
	Line int `json:"line,omitempty"`
	// Call names the failing AWS call of a connection test (AssumeRole, PutObject…).
	Call string `json:"call,omitempty"`
	// AWSCode is the AWS error code returned by that call.
	AWSCode string `json:"aws_code,omitempty"`
}

// ErrorResponse wraps Error on the wire.
type ErrorResponse struct {
	Error Error `json:"error"`
	// Stored is set on ingest errors: the number of events of the request that
	// were stored. Ingest is all-or-nothing, so it is always 0 on an error.
	Stored *int `json:"stored,omitempty"`
}

// IngestResponse answers a successful POST /v1/tenants/{tenant}/events.
type IngestResponse struct {
	// Accepted is the number of events in the request.
	Accepted int `json:"accepted"`
	// Stored is the number of new events made durable by this request.
	Stored int `json:"stored"`
	// Duplicates is the number of events whose messageId was already stored.
	Duplicates int `json:"duplicates"`
	// FirstSeq and LastSeq are the sequence numbers given to the stored events.
	FirstSeq int64 `json:"first_seq,omitempty"`
	LastSeq  int64 `json:"last_seq,omitempty"`
}

// Identity answers GET /v1/identity.
type Identity struct {
	// Tenant is the name of the tenant the token belongs to.
	Tenant string `json:"tenant"`
	// ExternalID is the tenant's sts:ExternalId for the delivery role's trust policy.
	ExternalID string `json:"external_id"`
	// PrincipalARN is the AWS principal that assumes the customer's role.
	PrincipalARN string `json:"principal_arn"`
	// AllowedRegions are the only regions a destination may be in; empty
	// allows every region. The provider checks region against it at plan time.
	AllowedRegions []string `json:"allowed_regions,omitempty"`
	// SigningKeys are the keys that sign the hourly integrity digests, as
	// GET /v1/signing-keys lists them, so a customer can pin them.
	SigningKeys []SigningKey `json:"signing_keys"`
}

// DestinationSpec holds the fields a customer sets on a destination.
type DestinationSpec struct {
	Bucket string `json:"bucket"`
	Region string `json:"region"`
	Prefix string `json:"prefix,omitempty"`

	// RoleARN is the customer's role that the delivery principal assumes with
	// the tenant's external id. Exclusive with static keys.
	RoleARN string `json:"role_arn,omitempty"`
	// AccessKeyID and SecretAccessKey are static credentials. The secret is
	// write-only: it is never returned by the API.
	AccessKeyID     string `json:"access_key_id,omitempty"`
	SecretAccessKey string `json:"secret_access_key,omitempty"`
	// ExpectedBucketOwner is the account id that must own the bucket. Every
	// S3 request carries it, so that S3 refuses a bucket of another account.
	// Defaults to the account of RoleARN; set it when the bucket belongs to
	// another account than the role (and always with static keys).
	ExpectedBucketOwner string `json:"expected_bucket_owner,omitempty"`

	// Interval is one of 1m, 5m, 15m, 1h, 2h, 4h, 6h, 12h, 24h.
	Interval string `json:"interval,omitempty"`
	// DailyAt is "HH:MM" UTC; exclusive with Interval.
	DailyAt string `json:"daily_at,omitempty"`

	// EventSchema is "raw" (events as ingested) or "ocsf" (mapped to OCSF 1.3).
	EventSchema string `json:"event_schema,omitempty"`
	// SourceName is the Security Lake custom source name, the {source} of
	// key templates.
	SourceName string `json:"source_name,omitempty"`

	Format         string   `json:"format,omitempty"`
	Compression    string   `json:"compression,omitempty"`
	EventTypes     []string `json:"event_types,omitempty"`
	Encryption     string   `json:"encryption,omitempty"`
	KMSKeyARN      string   `json:"kms_key_arn,omitempty"`
	ACL            string   `json:"acl,omitempty"`
	StorageClass   string   `json:"storage_class,omitempty"`
	MaxObjectBytes int64    `json:"max_object_bytes,omitempty"`
	Backfill       string   `json:"backfill,omitempty"`
	// KeyTemplate lays out object keys under the prefix; see DefaultKeyTemplate.
	KeyTemplate string `json:"key_template,omitempty"`
	Enabled     *bool  `json:"enabled,omitempty"`
}

// Destination is a stored destination as the API returns it.
type Destination struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	DestinationSpec
	// HasSecret tells that a static secret is stored (the secret itself never is returned).
	HasSecret  bool              `json:"has_secret,omitempty"`
	ExternalID string            `json:"external_id"`
	Status     DestinationStatus `json:"status"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
	// Warnings from the connection test that did not fail it (a denied DELETE).
	Warnings []string `json:"warnings,omitempty"`
}

// DestinationStatus is the delivery state of a destination.
type DestinationStatus struct {
	State          string     `json:"state"`
	LastDeliveryAt *time.Time `json:"last_delivery_at,omitempty"`
	LastAttemptAt  *time.Time `json:"last_attempt_at,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	FailingSince   *time.Time `json:"failing_since,omitempty"`
	// Cursor is the last sequence number delivered.
	Cursor int64 `json:"cursor"`
	// LagEvents is how many events are stored but not yet delivered.
	LagEvents int64 `json:"lag_events"`
	// LagSeconds is the age of the oldest undelivered event, 0 when none.
	LagSeconds       int64 `json:"lag_seconds"`
	EventsDelivered  int64 `json:"events_delivered"`
	ObjectsDelivered int64 `json:"objects_delivered"`
	BytesDelivered   int64 `json:"bytes_delivered"`
	// DeliveredBy names the agent delivering the destination (holding its
	// lease) when several agents share a PostgreSQL database; empty with
	// a single agent, or while no agent holds it.
	DeliveredBy string `json:"delivered_by,omitempty"`
}

// DestinationList answers GET /v1/destinations: one page of the tenant's
// destinations, oldest first.
type DestinationList struct {
	Destinations []Destination `json:"destinations"`
	// NextPageToken, when set, is the page_token of the next page; the
	// last page has none.
	NextPageToken string `json:"next_page_token,omitempty"`
}

// Page sizes of GET /v1/destinations (limit=).
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

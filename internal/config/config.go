// Package config holds the agent's configuration: the HCL file format, its
// defaults and its validation.
//
// A file is decoded over Default(), so every attribute is optional and an
// attribute that is left out keeps its default. Durations are written as
// strings ("10s", "5m"): each is decoded into a field named with an HCL
// suffix (TickHCL) and parsed by Load and Parse into the time.Duration field
// beside it (Tick), which is the one the rest of the agent reads.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/auditexport/auditexport/internal/ocsf"
)

// Config is the whole agent configuration.
//
// AWS, Ingest, Delivery and HTTP are never nil in a Config returned by
// Default, Load or Parse. TLS is nil when the listener serves plain HTTP,
// Secrets when the store's secrets are sealed with a generated key, and
// Store when the store is SQLite in DataDir.
type Config struct {
	// Listen is the host:port the HTTP API listens on.
	Listen string `hcl:"listen,optional"`
	// DataDir holds the SQLite store (unless the store block names a
	// PostgreSQL database) and the generated secrets key.
	DataDir string `hcl:"data_dir,optional"`
	// LogLevel is one of trace, debug, info, warn or error.
	LogLevel string `hcl:"log_level,optional"`
	// LogJSON switches the logs from text lines to JSON objects.
	LogJSON bool `hcl:"log_json,optional"`

	// TLS is the tls block; nil serves plain HTTP.
	TLS *TLS `hcl:"tls,block"`
	// AWS is the aws block: the delivery principal.
	AWS *AWS `hcl:"aws,block"`
	// Ingest is the ingest block: event fields and limits.
	Ingest *Ingest `hcl:"ingest,block"`
	// Delivery is the delivery block: workers, retries and retention.
	Delivery *Delivery `hcl:"delivery,block"`
	// HTTP is the http block: timeouts and limits of the API's connections.
	HTTP *HTTP `hcl:"http,block"`
	// Secrets is the secrets block: the key that seals destinations'
	// static secrets in the store. Nil uses a key file the agent generates
	// in the data directory.
	Secrets *Secrets `hcl:"secrets,block"`
	// Store is the store block: nil keeps the store in SQLite in DataDir.
	Store *Store `hcl:"store,block"`
	// OCSF is the ocsf block: how events map to OCSF for destinations with
	// event_schema = "ocsf". Nil maps with the built-in rules; see OCSFMapper.
	OCSF *ocsf.Config `hcl:"ocsf,block"`
	// Metrics is the metrics block: what GET /metrics reports. Nil (a
	// Config not made by Default) reports per destination.
	Metrics *Metrics `hcl:"metrics,block"`
}

// Metrics sets what GET /metrics reports.
type Metrics struct {
	// PerDestination reports each destination's delivery series (counters,
	// lag, state), labelled with its tenant and id: about 600 bytes of
	// /metrics a destination. False reports them as agent-wide totals and
	// counts by state instead, for agents with many destinations.
	PerDestination bool `hcl:"per_destination,optional"`
}

// TLS turns on HTTPS for the API listener.
type TLS struct {
	// CertFile is a PEM certificate chain.
	CertFile string `hcl:"cert_file,optional"`
	// KeyFile is the PEM private key for CertFile.
	KeyFile string `hcl:"key_file,optional"`
}

// AWS describes the delivery principal: the identity the agent uses to
// assume customers' roles and write into their buckets.
type AWS struct {
	// Region is used for STS and identity calls; each destination names the
	// region of its own bucket.
	Region string `hcl:"region,optional"`
	// S3Endpoint overrides the S3 endpoint, for S3-compatible servers. It is
	// an operator setting and applies to every destination.
	S3Endpoint string `hcl:"s3_endpoint,optional"`
	// STSEndpoint overrides the STS endpoint.
	STSEndpoint string `hcl:"sts_endpoint,optional"`
	// S3UsePathStyle addresses buckets as endpoint/bucket rather than
	// bucket.endpoint, which most S3-compatible servers need.
	S3UsePathStyle bool `hcl:"s3_use_path_style,optional"`
	// PrincipalARN is the delivery principal's ARN as customers see it. When
	// empty the agent asks sts:GetCallerIdentity.
	PrincipalARN string `hcl:"principal_arn,optional"`
	// AccessKeyID and SecretAccessKey are static credentials. When both are
	// empty the SDK's default credential chain is used.
	AccessKeyID     string `hcl:"access_key_id,optional"`
	SecretAccessKey string `hcl:"secret_access_key,optional"`

	// AllowedRegions, when set, are the only regions a destination may be
	// in, such as ["us-east-1", "eu-west-1"]; empty allows every region.
	// The API refuses others and the provider refuses them at plan time.
	AllowedRegions []string `hcl:"allowed_regions,optional"`

	// AssumeRoleRetry bounds how long a connection test keeps retrying
	// AssumeRole, because a role created in the same terraform apply can
	// take seconds to become assumable. Zero disables the retry.
	AssumeRoleRetry    time.Duration
	AssumeRoleRetryHCL string `hcl:"assume_role_retry,optional"`

	// AssumeRolePerSecond caps delivery's AssumeRole calls, across all
	// roles. Each role is assumed once per session (an hour) and renewed
	// ahead of its expiry, so it matters at a cold start with many roles.
	AssumeRolePerSecond float64 `hcl:"assume_role_per_second,optional"`
}

// Ingest sets how events posted by the platform are read and limited.
type Ingest struct {
	// TimestampField, EventNameField and MessageIDField name the required
	// fields of each event.
	TimestampField string `hcl:"timestamp_field,optional"`
	EventNameField string `hcl:"event_name_field,optional"`
	MessageIDField string `hcl:"message_id_field,optional"`
	// MaxEventBytes is the largest single event accepted.
	MaxEventBytes int64 `hcl:"max_event_bytes,optional"`
	// MaxRequestBytes is the largest request body accepted.
	MaxRequestBytes int64 `hcl:"max_request_bytes,optional"`
	// TenantRatePerSecond limits events per second per tenant; 0 means
	// unlimited.
	TenantRatePerSecond int `hcl:"tenant_rate_per_second,optional"`
	// TenantRateBurst is how many events a tenant may send at once above
	// its rate.
	TenantRateBurst int `hcl:"tenant_rate_burst,optional"`
}

// Delivery sets how events are delivered to destinations.
type Delivery struct {
	// Workers is how many destinations are delivered concurrently.
	Workers int `hcl:"workers,optional"`

	// Tick, when non-zero, runs every destination's schedule this often
	// instead of at its interval. It is meant for development and tests.
	Tick    time.Duration
	TickHCL string `hcl:"tick,optional"`

	// RetryInitial and RetryMax bound the exponential backoff between
	// attempts for a failing destination.
	RetryInitial    time.Duration
	RetryInitialHCL string `hcl:"retry_initial,optional"`
	RetryMax        time.Duration
	RetryMaxHCL     string `hcl:"retry_max,optional"`

	// FailingAfter is how long a destination keeps failing before its
	// state becomes "failing".
	FailingAfter    time.Duration
	FailingAfterHCL string `hcl:"failing_after,optional"`

	// Retention is the least time events are kept, even once every
	// destination has them.
	Retention    time.Duration
	RetentionHCL string `hcl:"retention,optional"`

	// AgentID names this agent in destination leases, logs and the
	// destination status when several agents share a PostgreSQL store. It
	// must be unique among them; empty means hostname-pid-random, new at
	// every start.
	AgentID string `hcl:"agent_id,optional"`

	// LeaseTTL is how long an agent's lease on a destination lasts unless
	// renewed: the longest a dead agent's destinations wait for another
	// agent. LeaseRenew is the heartbeat that renews the leases. Both are
	// used only with a shared (PostgreSQL) store.
	LeaseTTL      time.Duration
	LeaseTTLHCL   string `hcl:"lease_ttl,optional"`
	LeaseRenew    time.Duration
	LeaseRenewHCL string `hcl:"lease_renew,optional"`
}

// HTTP bounds the API's connections, so that slow or idle clients cannot
// hold file descriptors for ever and token guessing is slowed.
type HTTP struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout    time.Duration
	ReadHeaderTimeoutHCL string `hcl:"read_header_timeout,optional"`
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout    time.Duration
	ReadTimeoutHCL string `hcl:"read_timeout,optional"`
	// WriteTimeout bounds a request from the end of its headers to the end
	// of the response: a destination's connection test runs within it.
	WriteTimeout    time.Duration
	WriteTimeoutHCL string `hcl:"write_timeout,optional"`
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request.
	IdleTimeout    time.Duration
	IdleTimeoutHCL string `hcl:"idle_timeout,optional"`
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes int `hcl:"max_header_bytes,optional"`
	// MaxConnections bounds the connections served at once; more wait to
	// be accepted. 0 means unlimited.
	MaxConnections int `hcl:"max_connections,optional"`
	// AuthFailuresPerMinute is how many requests with a missing or invalid
	// token one client address may send at once, and per minute after
	// that, before it is answered 429. 0 means unlimited.
	AuthFailuresPerMinute int `hcl:"auth_failures_per_minute,optional"`
}

// Secrets names the key-encryption key that seals the static secrets of
// destinations in the store. At most one of KeyFile, KeyEnv and KMSKeyARN
// is set; with none, the agent generates DataDir/secrets.key.
type Secrets struct {
	// KeyFile holds a 32-byte key, base64-encoded.
	KeyFile string `hcl:"key_file,optional"`
	// KeyEnv names an environment variable holding a base64 32-byte key.
	KeyEnv string `hcl:"key_env,optional"`
	// KMSKeyARN is an AWS KMS symmetric key that wraps the data keys.
	KMSKeyARN string `hcl:"kms_key_arn,optional"`
	// KMSEndpoint overrides the KMS endpoint, for tests and KMS-compatible
	// servers.
	KMSEndpoint string `hcl:"kms_endpoint,optional"`

	// PreviousKeyFile, PreviousKeyEnv and PreviousKMSKeyARN name the key
	// being rotated away from: at start the agent re-seals every secret
	// sealed with it under the current key.
	PreviousKeyFile   string `hcl:"previous_key_file,optional"`
	PreviousKeyEnv    string `hcl:"previous_key_env,optional"`
	PreviousKMSKeyARN string `hcl:"previous_kms_key_arn,optional"`
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	return &Config{
		Listen:   "127.0.0.1:8470",
		DataDir:  "./auditexport-data",
		LogLevel: "info",
		AWS: &AWS{
			Region:              "us-east-1",
			AssumeRoleRetry:     30 * time.Second,
			AssumeRoleRetryHCL:  "30s",
			AssumeRolePerSecond: 100,
		},
		Ingest: &Ingest{
			TimestampField:      "timestamp",
			EventNameField:      "eventName",
			MessageIDField:      "messageId",
			MaxEventBytes:       256 << 10,
			MaxRequestBytes:     16 << 20,
			TenantRatePerSecond: 20000,
			TenantRateBurst:     100000,
		},
		Delivery: &Delivery{
			Workers:         32,
			RetryInitial:    time.Second,
			RetryInitialHCL: "1s",
			RetryMax:        5 * time.Minute,
			RetryMaxHCL:     "5m",
			FailingAfter:    5 * time.Minute,
			FailingAfterHCL: "5m",
			Retention:       168 * time.Hour,
			RetentionHCL:    "168h",
			LeaseTTL:        10 * time.Second,
			LeaseTTLHCL:     "10s",
			LeaseRenew:      3 * time.Second,
			LeaseRenewHCL:   "3s",
		},
		Metrics: &Metrics{PerDestination: true},
		HTTP: &HTTP{
			ReadHeaderTimeout:     10 * time.Second,
			ReadHeaderTimeoutHCL:  "10s",
			ReadTimeout:           time.Minute,
			ReadTimeoutHCL:        "1m",
			WriteTimeout:          2 * time.Minute,
			WriteTimeoutHCL:       "2m",
			IdleTimeout:           2 * time.Minute,
			IdleTimeoutHCL:        "2m",
			MaxHeaderBytes:        64 << 10,
			MaxConnections:        1024,
			AuthFailuresPerMinute: 10,
		},
	}
}

// Load reads and validates the configuration file at path. An empty path
// returns Default().
func Load(path string) (*Config, error) {
	if path == "" {
		return Default(), nil
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	return Parse(src, path)
}

// Parse decodes and validates a configuration in HCL native syntax, or in
// HCL's JSON syntax when filename ends in ".json". The filename is used in
// error messages.
func Parse(src []byte, filename string) (*Config, error) {
	parser := hclparse.NewParser()
	var file *hcl.File
	var diags hcl.Diagnostics
	if strings.HasSuffix(filename, ".json") {
		file, diags = parser.ParseJSON(src, filename)
	} else {
		file, diags = parser.ParseHCL(src, filename)
	}
	if diags.HasErrors() {
		return nil, diagError(diags)
	}

	cfg := Default()
	// Blocks that are present decode into the existing default structs, so
	// attributes left out of a block keep their defaults too.
	if diags := gohcl.DecodeBody(file.Body, nil, cfg); diags.HasErrors() {
		return nil, diagError(diags)
	}
	// Report every problem at once rather than one per run.
	if err := errors.Join(cfg.parseDurations(), cfg.Validate()); err != nil {
		return nil, err
	}
	return cfg, nil
}

// diagError turns HCL diagnostics into one error with a "file:line: message"
// line per problem.
func diagError(diags hcl.Diagnostics) error {
	var errs []error
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += "; " + d.Detail
		}
		if d.Subject != nil {
			msg = fmt.Sprintf("%s:%d: %s", d.Subject.Filename, d.Subject.Start.Line, msg)
		}
		errs = append(errs, errors.New(msg))
	}
	return errors.Join(errs...)
}

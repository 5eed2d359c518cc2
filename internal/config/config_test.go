package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadEmptyPathIsDefault(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatalf("Load(\"\"): %v", err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("Load(\"\") = %+v, want Default()", cfg)
	}
}

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate(): %v", err)
	}
}

func TestDefaults(t *testing.T) {
	cfg := Default()
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"listen", cfg.Listen, "127.0.0.1:8470"},
		{"data_dir", cfg.DataDir, "./auditexport-data"},
		{"log_level", cfg.LogLevel, "info"},
		{"log_json", cfg.LogJSON, false},
		{"tls", cfg.TLS, (*TLS)(nil)},
		{"aws.region", cfg.AWS.Region, "us-east-1"},
		{"aws.s3_use_path_style", cfg.AWS.S3UsePathStyle, false},
		{"aws.assume_role_retry", cfg.AWS.AssumeRoleRetry, 30 * time.Second},
		{"aws.allowed_regions", cfg.AWS.AllowedRegions, []string(nil)},
		{"ingest.timestamp_field", cfg.Ingest.TimestampField, "timestamp"},
		{"ingest.event_name_field", cfg.Ingest.EventNameField, "eventName"},
		{"ingest.message_id_field", cfg.Ingest.MessageIDField, "messageId"},
		{"ingest.max_event_bytes", cfg.Ingest.MaxEventBytes, int64(262144)},
		{"ingest.max_request_bytes", cfg.Ingest.MaxRequestBytes, int64(16777216)},
		{"ingest.tenant_rate_per_second", cfg.Ingest.TenantRatePerSecond, 20000},
		{"ingest.tenant_rate_burst", cfg.Ingest.TenantRateBurst, 100000},
		{"delivery.workers", cfg.Delivery.Workers, 32},
		{"aws.assume_role_per_second", cfg.AWS.AssumeRolePerSecond, 100.0},
		{"delivery.tick", cfg.Delivery.Tick, time.Duration(0)},
		{"delivery.retry_initial", cfg.Delivery.RetryInitial, time.Second},
		{"delivery.retry_max", cfg.Delivery.RetryMax, 5 * time.Minute},
		{"delivery.failing_after", cfg.Delivery.FailingAfter, 5 * time.Minute},
		{"delivery.retention", cfg.Delivery.Retention, 168 * time.Hour},
		{"delivery.agent_id", cfg.Delivery.AgentID, ""},
		{"delivery.lease_ttl", cfg.Delivery.LeaseTTL, 10 * time.Second},
		{"delivery.lease_renew", cfg.Delivery.LeaseRenew, 3 * time.Second},
		{"http.read_header_timeout", cfg.HTTP.ReadHeaderTimeout, 10 * time.Second},
		{"http.read_timeout", cfg.HTTP.ReadTimeout, time.Minute},
		{"http.write_timeout", cfg.HTTP.WriteTimeout, 2 * time.Minute},
		{"http.idle_timeout", cfg.HTTP.IdleTimeout, 2 * time.Minute},
		{"http.max_header_bytes", cfg.HTTP.MaxHeaderBytes, 65536},
		{"http.max_connections", cfg.HTTP.MaxConnections, 1024},
		{"http.auth_failures_per_minute", cfg.HTTP.AuthFailuresPerMinute, 10},
		{"secrets", cfg.Secrets, (*Secrets)(nil)},
		{"store", cfg.Store, (*Store)(nil)},
		{"metrics.per_destination", cfg.Metrics.PerDestination, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

// An empty file, or a block with nothing in it, keeps every default.
func TestParseKeepsDefaults(t *testing.T) {
	for _, src := range []string{"", "aws {}\ningest {}\ndelivery {}\nhttp {}\nmetrics {}\n"} {
		cfg, err := Parse([]byte(src), "agent.hcl")
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		if !reflect.DeepEqual(cfg, Default()) {
			t.Errorf("Parse(%q) = %+v, want Default()", src, cfg)
		}
	}
}

// metrics { per_destination = false } turns the per-destination series off.
func TestParseMetricsBlock(t *testing.T) {
	cfg, err := Parse([]byte("metrics {\n  per_destination = false\n}\n"), "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Metrics.PerDestination {
		t.Fatal("metrics.per_destination = false parsed as true")
	}
}

// Setting one attribute of a block leaves its siblings at their defaults.
func TestParsePartialBlock(t *testing.T) {
	cfg, err := Parse([]byte("delivery {\n  workers = 8\n}\n"), "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Delivery.Workers = 8
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v, want %+v", cfg.Delivery, want.Delivery)
	}
}

func TestLoadFullFile(t *testing.T) {
	dir := t.TempDir()
	cert := writeFile(t, dir, "cert.pem")
	key := writeFile(t, dir, "key.pem")
	src := `
listen    = "0.0.0.0:9000"
data_dir  = "/var/lib/auditexport"
log_level = "debug"
log_json  = true

tls {
  cert_file = "` + cert + `"
  key_file  = "` + key + `"
}

aws {
  region            = "eu-west-1"
  s3_endpoint       = "http://127.0.0.1:9001"
  sts_endpoint      = "https://sts.example.test"
  s3_use_path_style = true
  principal_arn     = "arn:aws:iam::123456789012:role/delivery"
  access_key_id     = "AKIDEXAMPLE"
  secret_access_key = "secret"
  assume_role_retry = "45s"
  allowed_regions   = ["us-east-1", "eu-west-1"]
}

ingest {
  timestamp_field        = "ts"
  event_name_field       = "action"
  message_id_field       = "id"
  max_event_bytes        = 1024
  max_request_bytes      = 4096
  tenant_rate_per_second = 0
  tenant_rate_burst      = 0
}

delivery {
  workers       = 16
  tick          = "2s"
  retry_initial = "500ms"
  retry_max     = "1m"
  failing_after = "10m"
  retention     = "720h"
  agent_id      = "agent-eu-1"
  lease_ttl     = "6s"
  lease_renew   = "2s"
}

http {
  read_header_timeout      = "5s"
  read_timeout             = "30s"
  write_timeout            = "90s"
  idle_timeout             = "1m"
  max_header_bytes         = 8192
  max_connections          = 64
  auth_failures_per_minute = 0
}

secrets {
  kms_key_arn       = "arn:aws:kms:eu-west-1:123456789012:key/new"
  kms_endpoint      = "http://127.0.0.1:9002"
  previous_key_file = "/etc/auditexport/secrets.key"
}

metrics {
  per_destination = false
}
`
	path := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}

	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &Config{
		Listen:   "0.0.0.0:9000",
		DataDir:  "/var/lib/auditexport",
		LogLevel: "debug",
		LogJSON:  true,
		TLS:      &TLS{CertFile: cert, KeyFile: key},
		AWS: &AWS{
			Region:              "eu-west-1",
			S3Endpoint:          "http://127.0.0.1:9001",
			STSEndpoint:         "https://sts.example.test",
			S3UsePathStyle:      true,
			PrincipalARN:        "arn:aws:iam::123456789012:role/delivery",
			AccessKeyID:         "AKIDEXAMPLE",
			SecretAccessKey:     "secret",
			AllowedRegions:      []string{"us-east-1", "eu-west-1"},
			AssumeRoleRetry:     45 * time.Second,
			AssumeRoleRetryHCL:  "45s",
			AssumeRolePerSecond: 100,
		},
		Ingest: &Ingest{
			TimestampField:  "ts",
			EventNameField:  "action",
			MessageIDField:  "id",
			MaxEventBytes:   1024,
			MaxRequestBytes: 4096,
		},
		Delivery: &Delivery{
			Workers:         16,
			Tick:            2 * time.Second,
			TickHCL:         "2s",
			RetryInitial:    500 * time.Millisecond,
			RetryInitialHCL: "500ms",
			RetryMax:        time.Minute,
			RetryMaxHCL:     "1m",
			FailingAfter:    10 * time.Minute,
			FailingAfterHCL: "10m",
			Retention:       720 * time.Hour,
			RetentionHCL:    "720h",
			AgentID:         "agent-eu-1",
			LeaseTTL:        6 * time.Second,
			LeaseTTLHCL:     "6s",
			LeaseRenew:      2 * time.Second,
			LeaseRenewHCL:   "2s",
		},
		HTTP: &HTTP{
			ReadHeaderTimeout:    5 * time.Second,
			ReadHeaderTimeoutHCL: "5s",
			ReadTimeout:          30 * time.Second,
			ReadTimeoutHCL:       "30s",
			WriteTimeout:         90 * time.Second,
			WriteTimeoutHCL:      "90s",
			IdleTimeout:          time.Minute,
			IdleTimeoutHCL:       "1m",
			MaxHeaderBytes:       8192,
			MaxConnections:       64,
		},
		Secrets: &Secrets{
			KMSKeyARN:       "arn:aws:kms:eu-west-1:123456789012:key/new",
			KMSEndpoint:     "http://127.0.0.1:9002",
			PreviousKeyFile: "/etc/auditexport/secrets.key",
		},
		Metrics: &Metrics{PerDestination: false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load:\n got  %+v\n want %+v", got, want)
		t.Errorf("aws:\n got  %+v\n want %+v", got.AWS, want.AWS)
		t.Errorf("ingest:\n got  %+v\n want %+v", got.Ingest, want.Ingest)
		t.Errorf("delivery:\n got  %+v\n want %+v", got.Delivery, want.Delivery)
		t.Errorf("http:\n got  %+v\n want %+v", got.HTTP, want.HTTP)
		t.Errorf("secrets:\n got  %+v\n want %+v", got.Secrets, want.Secrets)
	}
}

func TestParseJSONSyntax(t *testing.T) {
	src := `{"listen": "127.0.0.1:1234", "delivery": {"workers": 2}}`
	cfg, err := Parse([]byte(src), "agent.hcl.json")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:1234" || cfg.Delivery.Workers != 2 {
		t.Fatalf("got listen %q workers %d", cfg.Listen, cfg.Delivery.Workers)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.hcl"))
	if err == nil || !strings.Contains(err.Error(), "nope.hcl") {
		t.Fatalf("Load of a missing file: got %v, want an error naming the file", err)
	}
}

// HCL errors carry the file and line of the mistake.
func TestParseHCLErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "unknown attribute",
			src:  "listen = \"127.0.0.1:1\"\nlisten_addr = \"x\"\n",
			want: []string{"agent.hcl:2:", "Unsupported argument", `"listen_addr"`},
		},
		{
			name: "unknown attribute in block",
			src:  "delivery {\n  workers = 2\n  wokers = 3\n}\n",
			want: []string{"agent.hcl:3:", "Unsupported argument", `"wokers"`},
		},
		{
			name: "unknown block",
			src:  "storage {\n}\n",
			want: []string{"agent.hcl:1:", "Unsupported block type", `"storage"`},
		},
		{
			name: "duplicate block",
			src:  "aws {}\naws {}\n",
			want: []string{"agent.hcl:2:", "Duplicate aws block"},
		},
		{
			name: "wrong type",
			src:  "delivery {\n  workers = \"many\"\n}\n",
			want: []string{"agent.hcl:2:", "Unsuitable value type"},
		},
		{
			name: "syntax error",
			src:  "listen = \n",
			want: []string{"agent.hcl:1:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), "agent.hcl")
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// Each invalid value is reported with the field's name in the file and what
// would be accepted.
func TestParseValidationErrors(t *testing.T) {
	dir := t.TempDir()
	cert := writeFile(t, dir, "cert.pem")
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name string
		src  string
		want string
	}{
		{"listen no port", `listen = "localhost"`, `listen: must be host:port`},
		{"listen bad port", `listen = "localhost:http"`, `listen: must be host:port`},
		{"listen port range", `listen = "localhost:70000"`, `0 to 65535`},
		{"data_dir empty", `data_dir = ""`, `data_dir: must name a directory`},
		{"log_level", `log_level = "verbose"`, `log_level: must be one of trace, debug, info, warn, error, got "verbose"`},
		{"tls empty", "tls {}", `tls: set both cert_file and key_file`},
		{"tls cert only", `tls { cert_file = "` + cert + `" }`, `tls.key_file: must be set when tls.cert_file is set`},
		{"tls key only", `tls { key_file = "` + cert + `" }`, `tls.cert_file: must be set when tls.key_file is set`},
		{"tls missing file", `tls {
  cert_file = "` + cert + `"
  key_file = "` + missing + `"
}`, `tls.key_file: cannot read "` + missing + `"`},
		{"tls directory", `tls {
  cert_file = "` + dir + `"
  key_file = "` + cert + `"
}`, `tls.cert_file: must be a file`},
		{"aws.region", `aws { region = "" }`, `aws.region: must be set`},
		{"aws.s3_endpoint scheme", `aws { s3_endpoint = "ftp://host" }`, `aws.s3_endpoint: must be an http or https URL`},
		{"aws.s3_endpoint no scheme", `aws { s3_endpoint = "127.0.0.1:9000" }`, `aws.s3_endpoint: must be an http or https URL`},
		{"aws.sts_endpoint", `aws { sts_endpoint = "https://" }`, `aws.sts_endpoint: must be an http or https URL`},
		{"aws.principal_arn", `aws { principal_arn = "delivery" }`, `aws.principal_arn: must be an ARN`},
		{"aws.access_key_id alone", `aws { access_key_id = "AKID" }`, `aws.access_key_id: must be set together with aws.secret_access_key`},
		{"aws.secret_access_key alone", `aws { secret_access_key = "s" }`, `aws.access_key_id: must be set together with aws.secret_access_key`},
		{"aws.assume_role_retry syntax", `aws { assume_role_retry = "30" }`, `aws.assume_role_retry: must be a duration such as "30s", "5m" or "1h", got "30"`},
		{"aws.allowed_regions format", `aws { allowed_regions = ["us-east-1", "US-West-2"] }`, `aws.allowed_regions: "US-West-2" is not an AWS region name such as "us-east-1"`},
		{"aws.allowed_regions empty name", `aws { allowed_regions = [""] }`, `aws.allowed_regions: "" is not an AWS region name`},
		{"aws.allowed_regions twice", `aws { allowed_regions = ["eu-west-1", "eu-west-1"] }`, `aws.allowed_regions: "eu-west-1" is listed twice`},
		{"aws.allowed_regions type", `aws { allowed_regions = "us-east-1" }`, `agent.hcl:1: Unsuitable value type; Unsuitable value: list of string required`},
		{"aws.assume_role_retry negative", `aws { assume_role_retry = "-1s" }`, `aws.assume_role_retry: must not be negative`},
		{"ingest.timestamp_field", `ingest { timestamp_field = "" }`, `ingest.timestamp_field: must name`},
		{"ingest.event_name_field", `ingest { event_name_field = "" }`, `ingest.event_name_field: must name`},
		{"ingest.message_id_field", `ingest { message_id_field = "" }`, `ingest.message_id_field: must name`},
		{"ingest.max_event_bytes", `ingest { max_event_bytes = 0 }`, `ingest.max_event_bytes: must be positive, got 0`},
		{"ingest.max_request_bytes", `ingest { max_request_bytes = -1 }`, `ingest.max_request_bytes: must be positive, got -1`},
		{"ingest.max_request_bytes below event", `ingest {
  max_event_bytes = 100
  max_request_bytes = 99
}`, `ingest.max_request_bytes: must be at least ingest.max_event_bytes (100), got 99`},
		{"ingest.tenant_rate_per_second", `ingest { tenant_rate_per_second = -5 }`, `ingest.tenant_rate_per_second: must be 0 (unlimited) or more, got -5`},
		{"ingest.tenant_rate_burst", `ingest { tenant_rate_burst = 0 }`, `ingest.tenant_rate_burst: must be at least 1`},
		{"delivery.workers zero", `delivery { workers = 0 }`, `delivery.workers: must be between 1 and 256, got 0`},
		{"delivery.workers large", `delivery { workers = 1000 }`, `delivery.workers: must be between 1 and 256, got 1000`},
		{"delivery.tick syntax", `delivery { tick = "often" }`, `delivery.tick: must be a duration`},
		{"delivery.tick negative", `delivery { tick = "-1s" }`, `delivery.tick: must be positive`},
		{"delivery.retry_initial empty", `delivery { retry_initial = "" }`, `delivery.retry_initial: must be a duration such as "30s", "5m" or "1h", got ""`},
		{"delivery.retry_initial zero", `delivery { retry_initial = "0s" }`, `delivery.retry_initial: must be positive, got 0s`},
		{"delivery.retry_max syntax", `delivery { retry_max = "5 minutes" }`, `delivery.retry_max: must be a duration`},
		{"delivery.retry_max below initial", `delivery {
  retry_initial = "10s"
  retry_max = "5s"
}`, `delivery.retry_max: must be at least delivery.retry_initial (10s), got 5s`},
		{"delivery.failing_after", `delivery { failing_after = "-5m" }`, `delivery.failing_after: must be positive, got -5m0s`},
		{"delivery.retention", `delivery { retention = "0" }`, `delivery.retention: must be positive, got 0s`},
		{"delivery.lease_ttl syntax", `delivery { lease_ttl = "soon" }`, `delivery.lease_ttl: must be a duration`},
		{"delivery.lease_ttl short", `delivery {
  lease_ttl = "1s"
  lease_renew = "200ms"
}`, `delivery.lease_ttl: must be at least 2s, got 1s`},
		{"delivery.lease_renew zero", `delivery { lease_renew = "0s" }`, `delivery.lease_renew: must be positive, got 0s`},
		{"delivery.lease_renew half the ttl", `delivery {
  lease_ttl = "10s"
  lease_renew = "5s"
}`, `delivery.lease_renew: must be less than half of delivery.lease_ttl (10s)`},
		{"delivery.lease_renew over the default ttl", `delivery { lease_renew = "20s" }`, `delivery.lease_renew: must be less than half of delivery.lease_ttl (10s)`},
		{"delivery.agent_id spaces", `delivery { agent_id = " a1" }`, `delivery.agent_id: must not contain spaces at its ends or control characters`},
		{"http.read_timeout syntax", `http { read_timeout = "1 minute" }`, `http.read_timeout: must be a duration`},
		{"http.idle_timeout zero", `http { idle_timeout = "0s" }`, `http.idle_timeout: must be positive, got 0s`},
		{"http.read_header_timeout over read_timeout", `http {
  read_header_timeout = "20s"
  read_timeout = "10s"
}`, `http.read_header_timeout: must not be longer than http.read_timeout (10s), got 20s`},
		{"http.write_timeout under assume_role_retry", `http { write_timeout = "30s" }`, `http.write_timeout: must be longer than aws.assume_role_retry (30s)`},
		{"http.max_header_bytes", `http { max_header_bytes = 100 }`, `http.max_header_bytes: must be at least 4096, got 100`},
		{"http.max_connections", `http { max_connections = -1 }`, `http.max_connections: must be 0 (unlimited) or more, got -1`},
		{"http.auth_failures_per_minute", `http { auth_failures_per_minute = -1 }`, `http.auth_failures_per_minute: must be 0 (unlimited) or more`},
		{"secrets two keys", `secrets {
  key_file = "/k"
  key_env = "K"
}`, `secrets.key_file: set only one of secrets.key_file, secrets.key_env and secrets.kms_key_arn`},
		{"secrets two previous keys", `secrets {
  previous_key_file = "/k"
  previous_kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/k"
}`, `secrets.previous_key_file: set only one of secrets.previous_key_file`},
		{"secrets.kms_key_arn", `secrets { kms_key_arn = "alias/audit" }`, `secrets.kms_key_arn: must be a KMS key ARN`},
		{"secrets.kms_key_arn other service", `secrets { kms_key_arn = "arn:aws:iam::123456789012:role/r" }`, `secrets.kms_key_arn: must be a KMS key ARN`},
		{"secrets.kms_endpoint", `secrets { kms_endpoint = "kms.local" }`, `secrets.kms_endpoint: must be an http or https URL`},
		{"secrets previous is current", `secrets {
  key_file = "/k"
  previous_key_file = "/k"
}`, `secrets: the previous key must differ from the current one`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), "agent.hcl")
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// Several mistakes in one file are all reported at once.
func TestParseReportsEveryProblem(t *testing.T) {
	src := `
log_level = "loud"
delivery {
  workers   = 0
  retention = "forever"
}
`
	_, err := Parse([]byte(src), "agent.hcl")
	if err == nil {
		t.Fatal("Parse succeeded, want an error")
	}
	for _, field := range []string{"log_level:", "delivery.workers:", "delivery.retention:"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
}

// Validate reads the Duration fields, so a Config built in code does not
// need the HCL strings.
func TestValidateBuiltInCode(t *testing.T) {
	cfg := Default()
	cfg.Delivery.TickHCL = ""
	cfg.Delivery.Tick = 100 * time.Millisecond
	cfg.Delivery.RetryMax = time.Millisecond
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "delivery.retry_max: must be at least delivery.retry_initial") {
		t.Fatalf("Validate: got %v, want a delivery.retry_max error", err)
	}
	cfg.AWS = nil
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "config.Default()") {
		t.Fatalf("Validate with a nil section: got %v", err)
	}
}

func writeFile(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

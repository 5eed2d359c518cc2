package api

import (
	"errors"
	"strings"
	"testing"
)

func validSpec() DestinationSpec {
	return DestinationSpec{Bucket: "acme-audit", Region: "us-east-1", Prefix: "audit/", RoleARN: "arn:aws:iam::123456789012:role/delivery"}
}

func TestNormalizeDefaults(t *testing.T) {
	s := validSpec()
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	want := DestinationSpec{
		Bucket: "acme-audit", Region: "us-east-1", Prefix: "audit", RoleARN: s.RoleARN,
		Interval: "1h", Format: "ndjson", Compression: "gzip", Encryption: "sse-s3",
		ACL: "bucket-owner-full-control", StorageClass: "STANDARD", Backfill: "1h",
		MaxObjectBytes: DefaultMaxObjectBytes, KeyTemplate: DefaultKeyTemplate, Enabled: s.Enabled,
	}
	if s.Enabled == nil || !*s.Enabled {
		t.Fatal("enabled must default to true")
	}
	if s.Interval != want.Interval || s.Prefix != want.Prefix || s.Format != want.Format ||
		s.Compression != want.Compression || s.Encryption != want.Encryption || s.ACL != want.ACL ||
		s.StorageClass != want.StorageClass || s.Backfill != want.Backfill ||
		s.MaxObjectBytes != want.MaxObjectBytes || s.KeyTemplate != want.KeyTemplate {
		t.Fatalf("defaults = %+v, want %+v", s, want)
	}
}

func TestNormalizeRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(*DestinationSpec)
		field  string
		want   string
	}{
		{"uppercase bucket", func(s *DestinationSpec) { s.Bucket = "Acme" }, "bucket", "not a valid S3 bucket name"},
		{"short bucket", func(s *DestinationSpec) { s.Bucket = "ab" }, "bucket", "3-63"},
		{"ip bucket", func(s *DestinationSpec) { s.Bucket = "192.168.1.1" }, "bucket", "IP address"},
		{"dots bucket", func(s *DestinationSpec) { s.Bucket = "a..b" }, "bucket", "adjacent dots"},
		{"region", func(s *DestinationSpec) { s.Region = "mars-1" }, "region", "mars-1"},
		{"leading slash", func(s *DestinationSpec) { s.Prefix = "/audit" }, "prefix", `"audit"`},
		{"dot dot", func(s *DestinationSpec) { s.Prefix = "a/../b" }, "prefix", ".."},
		{"no auth", func(s *DestinationSpec) { s.RoleARN = "" }, "role_arn", "set role_arn"},
		{"both auth", func(s *DestinationSpec) { s.AccessKeyID = "AKIAEXAMPLE1234567" }, "role_arn", "not both"},
		{"bad role", func(s *DestinationSpec) { s.RoleARN = "arn:aws:iam::1:user/x" }, "role_arn", "IAM role ARN"},
		{"owner not an account", func(s *DestinationSpec) { s.ExpectedBucketOwner = "12345" }, "expected_bucket_owner", "12 digits"},
		{"owner letters", func(s *DestinationSpec) { s.ExpectedBucketOwner = "12345678901a" }, "expected_bucket_owner", "12 digits"},
		{"interval", func(s *DestinationSpec) { s.Interval = "3m" }, "interval", "1m, 5m"},
		{"both schedules", func(s *DestinationSpec) { s.Interval, s.DailyAt = "1h", "05:00" }, "daily_at", "not both"},
		{"daily_at", func(s *DestinationSpec) { s.DailyAt = "25:00" }, "daily_at", "HH:MM"},
		{"format", func(s *DestinationSpec) { s.Format = "csv" }, "format", "ndjson, json, parquet"},
		{"compression", func(s *DestinationSpec) { s.Compression = "brotli" }, "compression", "gzip"},
		{"kms without key", func(s *DestinationSpec) { s.Encryption = "sse-kms" }, "kms_key_arn", "required"},
		{"key without kms", func(s *DestinationSpec) { s.KMSKeyARN = "arn:aws:kms:us-east-1:123456789012:key/k" }, "kms_key_arn", "only used"},
		{"small objects", func(s *DestinationSpec) { s.MaxObjectBytes = 1024 }, "max_object_bytes", "5 MiB"},
		{"backfill", func(s *DestinationSpec) { s.Backfill = "a week" }, "backfill", "7d"},
		{"empty event type", func(s *DestinationSpec) { s.EventTypes = []string{"x", ""} }, "event_types", "entry 1"},
		{"template escapes", func(s *DestinationSpec) { s.KeyTemplate = "../{seq_from}-{seq_to}_{part}" }, "key_template", ".."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.change(&s)
			err := s.Normalize()
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a %s error mentioning %q", err, tt.field, tt.want)
			}
		})
	}
}

func TestParseBackfill(t *testing.T) {
	for in, want := range map[string]string{"0": "0s", "1h": "1h0m0s", "7d": "168h0m0s", "90m": "1h30m0s"} {
		got, err := ParseBackfill(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseBackfill(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"-1h", "1x", "d", "1.5d"} {
		if _, err := ParseBackfill(in); err == nil {
			t.Errorf("ParseBackfill(%q) accepted", in)
		}
	}
}

func TestNormalizeAcceptsBucketOwner(t *testing.T) {
	tests := []struct {
		name   string
		change func(*DestinationSpec)
	}{
		{"the role's account", func(s *DestinationSpec) { s.ExpectedBucketOwner = "123456789012" }},
		{"another account than the role's (a log-archive bucket)", func(s *DestinationSpec) { s.ExpectedBucketOwner = "111122223333" }},
		{"static keys, any account", func(s *DestinationSpec) {
			s.RoleARN, s.AccessKeyID, s.SecretAccessKey = "", "AKIAEXAMPLE1234567", "secret"
			s.ExpectedBucketOwner = "111122223333"
		}},
		{"unset", func(*DestinationSpec) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.change(&s)
			if err := s.Normalize(); err != nil {
				t.Fatalf("Normalize: %v", err)
			}
		})
	}
}

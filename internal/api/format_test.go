package api

import (
	"errors"
	"strings"
	"testing"
)

// Every event_schema goes with every format; Parquet refuses a compression
// of its own and defaults to none.
func TestNormalizeFormatCombinations(t *testing.T) {
	tests := []struct {
		schema, format, compression string
		wantCompression             string
		wantField, wantMsg          string // "" when valid
	}{
		{"", "", "", "gzip", "", ""},
		{"raw", "ndjson", "zstd", "zstd", "", ""},
		{"raw", "json", "none", "none", "", ""},
		{"raw", "parquet", "", "none", "", ""},
		{"raw", "parquet", "none", "none", "", ""},
		{"ocsf", "ndjson", "", "gzip", "", ""},
		{"ocsf", "json", "gzip", "gzip", "", ""},
		{"ocsf", "parquet", "", "none", "", ""},
		{"raw", "parquet", "gzip", "", "compression", `"gzip" cannot be used with format = "parquet"`},
		{"ocsf", "parquet", "zstd", "", "compression", `"zstd" cannot be used with format = "parquet"`},
		{"cef", "ndjson", "", "", "event_schema", "raw, ocsf"},
	}
	for _, tt := range tests {
		name := tt.schema + "+" + tt.format + "+" + tt.compression
		t.Run(name, func(t *testing.T) {
			s := validSpec()
			s.EventSchema, s.Format, s.Compression = tt.schema, tt.format, tt.compression
			err := s.Normalize()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Normalize: %v", err)
				}
				if s.Compression != tt.wantCompression {
					t.Errorf("compression = %q, want %q", s.Compression, tt.wantCompression)
				}
				if tt.schema == "" && s.EventSchema != "raw" {
					t.Errorf("event_schema defaults to %q, want raw", s.EventSchema)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.wantField || !strings.Contains(fe.Message, tt.wantMsg) {
				t.Fatalf("Normalize = %v, want a %s error mentioning %q", err, tt.wantField, tt.wantMsg)
			}
			if tt.wantField == "compression" && !strings.Contains(fe.Message, "format") {
				t.Errorf("message %q does not name format", fe.Message)
			}
		})
	}
}

func TestNormalizeSecurityLakeTemplate(t *testing.T) {
	lake := func(s *DestinationSpec) {
		s.KeyTemplate, s.EventSchema, s.Format, s.SourceName = KeyTemplateSecurityLake, "ocsf", "parquet", "auditexport"
	}
	tests := []struct {
		name      string
		change    func(*DestinationSpec)
		wantField string // "" when valid
		wantMsg   string
	}{
		{"preset", lake, "", ""},
		{"owner account", func(s *DestinationSpec) { lake(s); s.ExpectedBucketOwner = "210987654321" }, "", ""},
		{"no source", func(s *DestinationSpec) { lake(s); s.SourceName = "" }, "source_name", "{source}"},
		{"bad source", func(s *DestinationSpec) { lake(s); s.SourceName = "a/b" }, "source_name", "1-64"},
		{"raw schema", func(s *DestinationSpec) { lake(s); s.EventSchema = "raw" }, "key_template", `event_schema = "ocsf" and format = "parquet"`},
		{"ndjson", func(s *DestinationSpec) { lake(s); s.Format = "ndjson" }, "key_template", `event_schema = "ocsf" and format = "parquet"`},
		{"no account", func(s *DestinationSpec) {
			lake(s)
			s.RoleARN, s.AccessKeyID, s.SecretAccessKey = "", "AKIAEXAMPLE1234567", "secret"
		}, "expected_bucket_owner", "{account}"},
		{"class needs ocsf", func(s *DestinationSpec) { s.KeyTemplate = "{class}/{seq_from}-{seq_to}_{part}" }, "key_template", "{class}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.change(&s)
			err := s.Normalize()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Normalize: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.wantField || !strings.Contains(fe.Message, tt.wantMsg) {
				t.Fatalf("Normalize = %v, want a %s error mentioning %q", err, tt.wantField, tt.wantMsg)
			}
		})
	}
}

func TestAccount(t *testing.T) {
	s := validSpec()
	if got := s.Account(); got != "123456789012" {
		t.Errorf("account of the role = %q", got)
	}
	s.ExpectedBucketOwner = "210987654321"
	if got := s.Account(); got != "210987654321" {
		t.Errorf("account with expected_bucket_owner = %q", got)
	}
}

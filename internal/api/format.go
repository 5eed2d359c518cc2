package api

import (
	"regexp"
	"strings"
)

// Event schemas: what an event looks like once delivered.
const (
	// EventSchemaRaw delivers events as they were ingested.
	EventSchemaRaw = "raw"
	// EventSchemaOCSF maps events to OCSF 1.3 with the agent's ocsf rules.
	EventSchemaOCSF = "ocsf"
	// DefaultEventSchema is the event schema of a destination that sets none.
	DefaultEventSchema = EventSchemaRaw
	// FormatParquet writes Apache Parquet objects, compressed by Parquet
	// itself (zstd pages), the format Amazon Security Lake reads.
	FormatParquet = "parquet"
)

// EventSchemas lists the allowed event_schema values.
var EventSchemas = []string{EventSchemaRaw, EventSchemaOCSF}

// FormatCombinations describes which event_schema, format and compression
// go together, for error messages and documentation.
const FormatCombinations = `event_schema "raw" or "ocsf" with format "ndjson" or "json" (any compression), ` +
	`or with format "parquet" (compression unset or "none": Parquet compresses its pages with zstd itself)`

// DefaultCompressionFor is the compression of a destination that sets none:
// "none" for Parquet, which compresses inside the file, gzip otherwise.
func DefaultCompressionFor(format string) string {
	if format == FormatParquet {
		return "none"
	}
	return DefaultCompression
}

// CheckFormat checks that format and compression go together. Every
// event_schema works with every format.
func CheckFormat(format, compression string) error {
	if format == FormatParquet && compression != "" && compression != "none" {
		return fieldErr("compression", "%q cannot be used with format = %q: Parquet compresses its pages with zstd itself; remove compression or set it to \"none\" (valid: %s)",
			compression, FormatParquet, FormatCombinations)
	}
	return nil
}

func (s *DestinationSpec) validateFormat() error {
	return CheckFormat(s.Format, s.Compression)
}

// SourceNameRe is the syntax of a Security Lake custom source name as far
// as it can be a key segment.
var SourceNameRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Account is the AWS account of a destination for the {account} key
// variable: expected_bucket_owner, else the account of role_arn; "" when
// neither is set.
func (s *DestinationSpec) Account() string {
	if s.ExpectedBucketOwner != "" {
		return s.ExpectedBucketOwner
	}
	// arn:aws:iam::123456789012:role/name
	if parts := strings.SplitN(s.RoleARN, ":", 6); len(parts) == 6 {
		return parts[4]
	}
	return ""
}

// CheckKeyVariables checks that the destination has a value for every
// destination-dependent variable its key template uses.
func (s *DestinationSpec) CheckKeyVariables() error {
	uses := KeyTemplateUses(s.KeyTemplate)
	if s.SourceName != "" && (!SourceNameRe.MatchString(s.SourceName) || strings.Trim(s.SourceName, ".") == "") {
		return fieldErr("source_name", "%q must be 1-64 letters, digits, _, . and -, such as \"auditexport\"", s.SourceName)
	}
	if s.KeyTemplate == KeyTemplateSecurityLake && (s.EventSchema != EventSchemaOCSF || s.Format != FormatParquet) {
		return fieldErr("key_template", "%q needs event_schema = \"ocsf\" and format = \"parquet\": Security Lake reads only OCSF in Parquet (got event_schema = %q, format = %q)",
			KeyTemplateSecurityLake, s.EventSchema, s.Format)
	}
	switch {
	case uses["source"] && s.SourceName == "":
		return fieldErr("source_name", "is required by key_template %q, which uses {source}: set it to the Security Lake custom source name", s.KeyTemplate)
	case uses["account"] && s.Account() == "":
		return fieldErr("expected_bucket_owner", "is required by key_template %q, which uses {account}, when role_arn is not set", s.KeyTemplate)
	case uses["class"] && s.EventSchema != EventSchemaOCSF:
		return fieldErr("key_template", "%q uses {class}, which only event_schema = \"ocsf\" has: set event_schema = \"ocsf\" or remove {class}", s.KeyTemplate)
	}
	return nil
}

package api

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Defaults applied to a DestinationSpec by Normalize.
const (
	DefaultInterval       = "1h"
	DefaultFormat         = "ndjson"
	DefaultCompression    = "gzip"
	DefaultEncryption     = "sse-s3"
	DefaultACL            = "bucket-owner-full-control"
	DefaultStorageClass   = "STANDARD"
	DefaultBackfill       = "1h"
	DefaultMaxObjectBytes = 256 << 20
	// MinObjectBytes is the smallest max_object_bytes: S3's multipart minimum part.
	MinObjectBytes = 5 << 20
	// MaxObjectBytes is the largest max_object_bytes: S3's largest object (5 TiB).
	MaxObjectBytes = 5 << 40
	// MaxPrefixBytes is the longest prefix.
	MaxPrefixBytes = 512
)

// Allowed values of the enumerated destination fields.
var (
	Intervals      = []string{"1m", "5m", "15m", "1h", "2h", "4h", "6h", "12h", "24h"}
	Formats        = []string{"ndjson", "json", "parquet"}
	Compressions   = []string{"gzip", "zstd", "none"}
	Encryptions    = []string{"sse-s3", "sse-kms"}
	ACLs           = []string{"bucket-owner-full-control", "private", "none"}
	StorageClasses = []string{"STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"}
)

// FieldError is a validation error naming the offending field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Patterns of the destination fields. The Terraform provider validates with
// the same expressions at plan time, so a plan that passes is never refused
// by the agent for its syntax.
var (
	// BucketRe is S3's bucket name syntax; ValidateBucket adds the rules a
	// regular expression cannot express (no "..", not an IP address).
	BucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	// RegionRe matches AWS region names such as "us-east-1".
	RegionRe = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$`)
	// RoleARNRe matches IAM role ARNs.
	RoleARNRe = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$`)
	// KMSKeyARNRe matches KMS key and alias ARNs.
	KMSKeyARNRe = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[\w/+=,.@-]+$`)
	// DailyAtRe matches a UTC time of day "HH:MM".
	DailyAtRe = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	// AccountIDRe matches AWS account ids.
	AccountIDRe = regexp.MustCompile(`^[0-9]{12}$`)
	// AccessKeyIDRe matches AWS access key ids.
	AccessKeyIDRe = regexp.MustCompile(`^[A-Z0-9]{16,128}$`)
	// PrefixRe is the character set of a prefix; ValidatePrefix adds the
	// rules on "/" and path segments.
	PrefixRe = regexp.MustCompile(`^[A-Za-z0-9!_.*'()/=-]*$`)
)

// ValidateBucket checks S3's bucket naming rules.
func ValidateBucket(name string) error {
	switch {
	case !BucketRe.MatchString(name):
		return fieldErr("bucket", "%q is not a valid S3 bucket name: use 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit", name)
	case strings.Contains(name, ".."):
		return fieldErr("bucket", "%q is not a valid S3 bucket name: it must not contain two adjacent dots", name)
	case net.ParseIP(name) != nil:
		return fieldErr("bucket", "%q is not a valid S3 bucket name: it must not look like an IP address", name)
	case strings.HasPrefix(name, "xn--") || strings.HasSuffix(name, "-s3alias") || strings.HasSuffix(name, "--ol-s3"):
		return fieldErr("bucket", "%q is not a valid S3 bucket name: the prefix xn-- and the suffixes -s3alias and --ol-s3 are reserved", name)
	}
	return nil
}

// ValidatePrefix checks a key prefix: relative, no "..", no empty segments,
// only characters S3 recommends for keys.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if strings.HasPrefix(prefix, "/") {
		return fieldErr("prefix", "%q must not start with \"/\": write %q", prefix, strings.TrimLeft(prefix, "/"))
	}
	if len(prefix) > MaxPrefixBytes {
		return fieldErr("prefix", "must be at most %d bytes, got %d", MaxPrefixBytes, len(prefix))
	}
	for _, seg := range strings.Split(strings.TrimSuffix(prefix, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fieldErr("prefix", "%q must not contain empty, \".\" or \"..\" path segments", prefix)
		}
	}
	if !PrefixRe.MatchString(prefix) {
		return fieldErr("prefix", "%q may only contain letters, digits and !_.*'()/=-", prefix)
	}
	return nil
}

// Normalize applies defaults to s and validates every field. It returns a
// *FieldError naming the first field that is wrong and how to fix it.
func (s *DestinationSpec) Normalize() error {
	s.applyDefaults()
	checks := []func() error{
		func() error { return ValidateBucket(s.Bucket) },
		s.validateRegion,
		func() error { return ValidatePrefix(s.Prefix) },
		s.validateAuth,
		s.validateBucketOwner,
		s.validateSchedule,
		s.validateEnums,
		s.validateFormat,
		s.validateEncryption,
		s.validateSizes,
		s.validateEventTypes,
		func() error { return ValidateKeyTemplate(s.KeyTemplate, s.Prefix) },
		s.CheckKeyVariables,
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (s *DestinationSpec) applyDefaults() {
	s.Prefix = strings.TrimSuffix(s.Prefix, "/")
	if s.Interval == "" && s.DailyAt == "" {
		s.Interval = DefaultInterval
	}
	setDefault(&s.EventSchema, DefaultEventSchema)
	setDefault(&s.Format, DefaultFormat)
	setDefault(&s.Compression, DefaultCompressionFor(s.Format))
	setDefault(&s.Encryption, DefaultEncryption)
	setDefault(&s.ACL, DefaultACL)
	setDefault(&s.StorageClass, DefaultStorageClass)
	setDefault(&s.Backfill, DefaultBackfill)
	setDefault(&s.KeyTemplate, DefaultKeyTemplate)
	if s.MaxObjectBytes == 0 {
		s.MaxObjectBytes = DefaultMaxObjectBytes
	}
	if s.Enabled == nil {
		t := true
		s.Enabled = &t
	}
}

func setDefault(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func (s *DestinationSpec) validateRegion() error {
	if !RegionRe.MatchString(s.Region) {
		return fieldErr("region", "%q is not an AWS region name such as \"us-east-1\" or \"eu-west-2\"", s.Region)
	}
	return nil
}

// CheckRegionAllowed refuses a region the agent's operator did not allow
// (aws.allowed_regions). An empty allowed list accepts every region.
func CheckRegionAllowed(region string, allowed []string) error {
	if len(allowed) == 0 || slices.Contains(allowed, region) {
		return nil
	}
	return fieldErr("region", "%q is not allowed by this agent: use one of %s", region, strings.Join(allowed, ", "))
}

func (s *DestinationSpec) validateAuth() error {
	hasRole := s.RoleARN != ""
	hasKeys := s.AccessKeyID != "" || s.SecretAccessKey != ""
	switch {
	case hasRole && hasKeys:
		return fieldErr("role_arn", "set either role_arn or access_key_id + secret_access_key, not both")
	case !hasRole && !hasKeys:
		return fieldErr("role_arn", "set role_arn (recommended: a role in your account that trusts the delivery principal) or access_key_id + secret_access_key")
	case hasRole && !RoleARNRe.MatchString(s.RoleARN):
		return fieldErr("role_arn", "%q is not an IAM role ARN such as \"arn:aws:iam::123456789012:role/auditexport\"", s.RoleARN)
	case hasKeys && !AccessKeyIDRe.MatchString(s.AccessKeyID):
		return fieldErr("access_key_id", "must be an AWS access key id (16-128 uppercase letters and digits)")
	}
	return nil
}

// validateBucketOwner checks expected_bucket_owner: an account id. It may
// differ from the role's account: a role in one account may write to a
// bucket of another (a central log-archive account), and naming that account
// is exactly the check this field exists for.
func (s *DestinationSpec) validateBucketOwner() error {
	if s.ExpectedBucketOwner == "" {
		return nil
	}
	if !AccountIDRe.MatchString(s.ExpectedBucketOwner) {
		return fieldErr("expected_bucket_owner", "%q must be an AWS account id: 12 digits, such as \"123456789012\"", s.ExpectedBucketOwner)
	}
	return nil
}

func (s *DestinationSpec) validateSchedule() error {
	if s.Interval != "" && s.DailyAt != "" {
		return fieldErr("daily_at", "set either interval or daily_at, not both")
	}
	if s.Interval != "" && !slices.Contains(Intervals, s.Interval) {
		return fieldErr("interval", "%q is not supported: use one of %s", s.Interval, strings.Join(Intervals, ", "))
	}
	if s.DailyAt != "" && !DailyAtRe.MatchString(s.DailyAt) {
		return fieldErr("daily_at", "%q must be a UTC time of day as HH:MM, e.g. \"05:00\"", s.DailyAt)
	}
	if _, err := ParseBackfill(s.Backfill); err != nil {
		return err
	}
	return nil
}

// ParseBackfill parses the backfill duration ("0", "1h", "24h", "7d").
func ParseBackfill(v string) (time.Duration, error) {
	if v == "0" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(v, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(d, "%d", &n); err == nil && n >= 0 && fmt.Sprint(n) == d {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	dur, err := time.ParseDuration(v)
	if err != nil || dur < 0 {
		return 0, fieldErr("backfill", "%q must be a duration such as \"0\", \"1h\", \"24h\" or \"7d\"", v)
	}
	return dur, nil
}

func (s *DestinationSpec) validateEnums() error {
	enums := []struct {
		field, value string
		allowed      []string
	}{
		{"event_schema", s.EventSchema, EventSchemas},
		{"format", s.Format, Formats},
		{"compression", s.Compression, Compressions},
		{"encryption", s.Encryption, Encryptions},
		{"acl", s.ACL, ACLs},
		{"storage_class", s.StorageClass, StorageClasses},
	}
	for _, e := range enums {
		if !slices.Contains(e.allowed, e.value) {
			return fieldErr(e.field, "%q is not supported: use one of %s", e.value, strings.Join(e.allowed, ", "))
		}
	}
	return nil
}

func (s *DestinationSpec) validateEncryption() error {
	switch {
	case s.Encryption == "sse-kms" && s.KMSKeyARN == "":
		return fieldErr("kms_key_arn", "is required when encryption is \"sse-kms\"")
	case s.Encryption != "sse-kms" && s.KMSKeyARN != "":
		return fieldErr("kms_key_arn", "is only used with encryption = \"sse-kms\"; remove it or set encryption")
	case s.KMSKeyARN != "" && !KMSKeyARNRe.MatchString(s.KMSKeyARN):
		return fieldErr("kms_key_arn", "%q is not a KMS key ARN such as \"arn:aws:kms:us-east-1:123456789012:key/…\"", s.KMSKeyARN)
	}
	return nil
}

func (s *DestinationSpec) validateSizes() error {
	if s.MaxObjectBytes < MinObjectBytes || s.MaxObjectBytes > MaxObjectBytes {
		return fieldErr("max_object_bytes", "must be between %d (5 MiB) and %d (5 TiB), got %d", MinObjectBytes, int64(MaxObjectBytes), s.MaxObjectBytes)
	}
	return nil
}

func (s *DestinationSpec) validateEventTypes() error {
	for i, t := range s.EventTypes {
		if t == "" {
			return fieldErr("event_types", "entry %d is empty", i)
		}
	}
	return nil
}

package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/auditexport/auditexport/internal/api"
)

// LogLevels lists the accepted values of log_level, most verbose first.
var LogLevels = []string{"trace", "debug", "info", "warn", "error"}

// Bounds on delivery.workers.
const (
	MinWorkers = 1
	MaxWorkers = 256
)

// problems collects validation errors so that a user sees every mistake in
// a file at once. Each message starts with the field's name in the file.
type problems []error

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func (p problems) err() error {
	return errors.Join(p...)
}

// parseDurations fills the duration fields from the strings a file set.
func (c *Config) parseDurations() error {
	var p problems
	a, d := c.AWS, c.Delivery
	parseDuration(&p, "aws.assume_role_retry", a.AssumeRoleRetryHCL, true, &a.AssumeRoleRetry)
	parseDuration(&p, "delivery.tick", d.TickHCL, true, &d.Tick)
	parseDuration(&p, "delivery.retry_initial", d.RetryInitialHCL, false, &d.RetryInitial)
	parseDuration(&p, "delivery.retry_max", d.RetryMaxHCL, false, &d.RetryMax)
	parseDuration(&p, "delivery.failing_after", d.FailingAfterHCL, false, &d.FailingAfter)
	parseDuration(&p, "delivery.retention", d.RetentionHCL, false, &d.Retention)
	parseDuration(&p, "delivery.lease_ttl", d.LeaseTTLHCL, false, &d.LeaseTTL)
	parseDuration(&p, "delivery.lease_renew", d.LeaseRenewHCL, false, &d.LeaseRenew)
	if h := c.HTTP; h != nil {
		parseDuration(&p, "http.read_header_timeout", h.ReadHeaderTimeoutHCL, false, &h.ReadHeaderTimeout)
		parseDuration(&p, "http.read_timeout", h.ReadTimeoutHCL, false, &h.ReadTimeout)
		parseDuration(&p, "http.write_timeout", h.WriteTimeoutHCL, false, &h.WriteTimeout)
		parseDuration(&p, "http.idle_timeout", h.IdleTimeoutHCL, false, &h.IdleTimeout)
	}
	return p.err()
}

// parseDuration parses s into dst. An empty s means zero when emptyOK is
// set, and is an error otherwise.
func parseDuration(p *problems, field, s string, emptyOK bool, dst *time.Duration) {
	if s == "" && emptyOK {
		*dst = 0
		return
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		p.add(field, `must be a duration such as "30s", "5m" or "1h", got %q`, s)
		return
	}
	*dst = v
}

// Validate checks the whole configuration, including that the TLS files
// exist. Load and Parse call it; code that builds a Config by hand should
// too. Validate reads the time.Duration fields, not their HCL strings.
func (c *Config) Validate() error {
	var p problems
	c.validateServer(&p)
	if c.TLS != nil {
		c.TLS.validate(&p)
	}
	if c.AWS == nil || c.Ingest == nil || c.Delivery == nil || c.HTTP == nil {
		p = append(p, errors.New("config: the aws, ingest, delivery and http sections must be set; start from config.Default()"))
		return p.err()
	}
	c.AWS.validate(&p)
	c.Ingest.validate(&p)
	c.Delivery.validate(&p)
	c.HTTP.validate(&p, c.AWS.AssumeRoleRetry)
	if c.Secrets != nil {
		c.Secrets.validate(&p)
	}
	if c.Store != nil {
		c.Store.validate(&p)
	}
	if _, err := c.OCSFMapper(); err != nil {
		p = append(p, err)
	}
	return p.err()
}

func (c *Config) validateServer(p *problems) {
	if err := checkHostPort(c.Listen); err != nil {
		p.add("listen", `must be host:port such as "127.0.0.1:8470", %v`, err)
	}
	if c.DataDir == "" {
		p.add("data_dir", "must name a directory for the agent's data")
	}
	if !validLogLevel(c.LogLevel) {
		p.add("log_level", "must be one of %s, got %q", strings.Join(LogLevels, ", "), c.LogLevel)
	}
}

// checkHostPort accepts an empty host (every interface) and a numeric port,
// where 0 asks the system for a free one.
func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("got %q", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("the port must be a number from 0 to 65535, got %q", s)
	}
	return nil
}

func validLogLevel(s string) bool {
	for _, l := range LogLevels {
		if s == l {
			return true
		}
	}
	return false
}

func (t *TLS) validate(p *problems) {
	switch {
	case t.CertFile == "" && t.KeyFile == "":
		p.add("tls", "set both cert_file and key_file, or remove the tls block to serve plain HTTP")
		return
	case t.CertFile == "":
		p.add("tls.cert_file", "must be set when tls.key_file is set")
		return
	case t.KeyFile == "":
		p.add("tls.key_file", "must be set when tls.cert_file is set")
		return
	}
	checkFile(p, "tls.cert_file", t.CertFile)
	checkFile(p, "tls.key_file", t.KeyFile)
}

func checkFile(p *problems, field, path string) {
	info, err := os.Stat(path)
	switch {
	case err != nil:
		p.add(field, "cannot read %q: %v", path, errors.Unwrap(err))
	case info.IsDir():
		p.add(field, "must be a file, %q is a directory", path)
	}
}

func (a *AWS) validate(p *problems) {
	if a.Region == "" {
		p.add("aws.region", `must be set, such as "us-east-1"`)
	}
	checkEndpoint(p, "aws.s3_endpoint", a.S3Endpoint)
	checkEndpoint(p, "aws.sts_endpoint", a.STSEndpoint)
	if a.PrincipalARN != "" && !strings.HasPrefix(a.PrincipalARN, "arn:") {
		p.add("aws.principal_arn", `must be an ARN such as "arn:aws:iam::123456789012:role/auditexport", got %q`, a.PrincipalARN)
	}
	if (a.AccessKeyID == "") != (a.SecretAccessKey == "") {
		p.add("aws.access_key_id", "must be set together with aws.secret_access_key; leave both empty to use the default credential chain")
	}
	checkRegions(p, "aws.allowed_regions", a.AllowedRegions)
	if a.AssumeRolePerSecond <= 0 || a.AssumeRolePerSecond > 10000 {
		p.add("aws.assume_role_per_second", "must be more than 0 and at most 10000, got %g", a.AssumeRolePerSecond)
	}
	if a.AssumeRoleRetry < 0 {
		p.add("aws.assume_role_retry", "must not be negative, got %s", a.AssumeRoleRetry)
	}
}

// checkRegions accepts a list of distinct AWS region names.
func checkRegions(p *problems, field string, regions []string) {
	seen := map[string]bool{}
	for _, r := range regions {
		switch {
		case !api.RegionRe.MatchString(r):
			p.add(field, `%q is not an AWS region name such as "us-east-1" or "eu-west-2"`, r)
		case seen[r]:
			p.add(field, "%q is listed twice", r)
		}
		seen[r] = true
	}
}

// checkEndpoint accepts an empty value (the AWS default) or an absolute
// http or https URL.
func checkEndpoint(p *problems, field, s string) {
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add(field, `must be an http or https URL such as "http://127.0.0.1:9000", got %q`, s)
	}
}

func (in *Ingest) validate(p *problems) {
	if in.TimestampField == "" {
		p.add("ingest.timestamp_field", "must name the event's timestamp field")
	}
	if in.EventNameField == "" {
		p.add("ingest.event_name_field", "must name the event's name field")
	}
	if in.MessageIDField == "" {
		p.add("ingest.message_id_field", "must name the event's message id field")
	}
	if in.MaxEventBytes <= 0 {
		p.add("ingest.max_event_bytes", "must be positive, got %d", in.MaxEventBytes)
	}
	if in.MaxRequestBytes <= 0 {
		p.add("ingest.max_request_bytes", "must be positive, got %d", in.MaxRequestBytes)
	} else if in.MaxRequestBytes < in.MaxEventBytes {
		p.add("ingest.max_request_bytes", "must be at least ingest.max_event_bytes (%d), got %d", in.MaxEventBytes, in.MaxRequestBytes)
	}
	if in.TenantRatePerSecond < 0 {
		p.add("ingest.tenant_rate_per_second", "must be 0 (unlimited) or more, got %d", in.TenantRatePerSecond)
	}
	if in.TenantRatePerSecond > 0 && in.TenantRateBurst < 1 {
		p.add("ingest.tenant_rate_burst", "must be at least 1 when ingest.tenant_rate_per_second is set, got %d", in.TenantRateBurst)
	}
}

func (d *Delivery) validate(p *problems) {
	if d.Workers < MinWorkers || d.Workers > MaxWorkers {
		p.add("delivery.workers", "must be between %d and %d, got %d", MinWorkers, MaxWorkers, d.Workers)
	}
	if d.Tick < 0 {
		p.add("delivery.tick", "must be positive, or empty to use each destination's interval, got %s", d.Tick)
	}
	checkPositive(p, "delivery.retry_initial", d.RetryInitial)
	checkPositive(p, "delivery.retry_max", d.RetryMax)
	if d.RetryInitial > 0 && d.RetryMax > 0 && d.RetryMax < d.RetryInitial {
		p.add("delivery.retry_max", "must be at least delivery.retry_initial (%s), got %s", d.RetryInitial, d.RetryMax)
	}
	checkPositive(p, "delivery.failing_after", d.FailingAfter)
	checkPositive(p, "delivery.retention", d.Retention)
	d.validateLeases(p)
}

// MinLeaseTTL is the shortest delivery.lease_ttl: below it a busy database
// or a short pause would let leases lapse between heartbeats.
const MinLeaseTTL = 2 * time.Second

// validateLeases checks the lease timings. The heartbeat must fit at least
// twice in the TTL, so that one late or failed renewal does not hand the
// destinations to another agent.
func (d *Delivery) validateLeases(p *problems) {
	if d.LeaseTTL < MinLeaseTTL {
		p.add("delivery.lease_ttl", "must be at least %s, got %s", MinLeaseTTL, d.LeaseTTL)
	}
	checkPositive(p, "delivery.lease_renew", d.LeaseRenew)
	if d.LeaseRenew > 0 && d.LeaseTTL >= MinLeaseTTL && d.LeaseRenew >= d.LeaseTTL/2 {
		p.add("delivery.lease_renew", "must be less than half of delivery.lease_ttl (%s), so that a missed heartbeat does not lose the leases, got %s", d.LeaseTTL, d.LeaseRenew)
	}
	if strings.TrimSpace(d.AgentID) != d.AgentID || strings.ContainsAny(d.AgentID, "\x00\n\r\t") {
		p.add("delivery.agent_id", "must not contain spaces at its ends or control characters, got %q", d.AgentID)
	}
	if len(d.AgentID) > 200 {
		p.add("delivery.agent_id", "must be at most 200 bytes, got %d", len(d.AgentID))
	}
}

func checkPositive(p *problems, field string, d time.Duration) {
	if d <= 0 {
		p.add(field, "must be positive, got %s", d)
	}
}

func (h *HTTP) validate(p *problems, assumeRoleRetry time.Duration) {
	checkPositive(p, "http.read_header_timeout", h.ReadHeaderTimeout)
	checkPositive(p, "http.read_timeout", h.ReadTimeout)
	checkPositive(p, "http.write_timeout", h.WriteTimeout)
	checkPositive(p, "http.idle_timeout", h.IdleTimeout)
	if h.ReadTimeout > 0 && h.ReadHeaderTimeout > h.ReadTimeout {
		p.add("http.read_header_timeout", "must not be longer than http.read_timeout (%s), got %s", h.ReadTimeout, h.ReadHeaderTimeout)
	}
	// A connection test retries AssumeRole for up to assume_role_retry
	// and then writes a test object, all before the response is written.
	if h.WriteTimeout > 0 && h.WriteTimeout <= assumeRoleRetry {
		p.add("http.write_timeout", "must be longer than aws.assume_role_retry (%s), which a destination's connection test may take, got %s", assumeRoleRetry, h.WriteTimeout)
	}
	if h.MaxHeaderBytes < 4096 {
		p.add("http.max_header_bytes", "must be at least 4096, got %d", h.MaxHeaderBytes)
	}
	if h.MaxConnections < 0 {
		p.add("http.max_connections", "must be 0 (unlimited) or more, got %d", h.MaxConnections)
	}
	if h.AuthFailuresPerMinute < 0 {
		p.add("http.auth_failures_per_minute", "must be 0 (unlimited) or more, got %d", h.AuthFailuresPerMinute)
	}
}

func (s *Secrets) validate(p *problems) {
	checkOneKey(p, "secrets.", s.KeyFile, s.KeyEnv, s.KMSKeyARN)
	checkOneKey(p, "secrets.previous_", s.PreviousKeyFile, s.PreviousKeyEnv, s.PreviousKMSKeyARN)
	checkKMSARN(p, "secrets.kms_key_arn", s.KMSKeyARN)
	checkKMSARN(p, "secrets.previous_kms_key_arn", s.PreviousKMSKeyARN)
	checkEndpoint(p, "secrets.kms_endpoint", s.KMSEndpoint)
	if s.KeyFile != "" && s.KeyFile == s.PreviousKeyFile || s.KeyEnv != "" && s.KeyEnv == s.PreviousKeyEnv ||
		s.KMSKeyARN != "" && s.KMSKeyARN == s.PreviousKMSKeyARN {
		p.add("secrets", "the previous key must differ from the current one")
	}
}

// checkOneKey reports a secrets block that names more than one key source.
func checkOneKey(p *problems, prefix, file, env, arn string) {
	n := 0
	for _, v := range []string{file, env, arn} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		p.add(prefix+"key_file", "set only one of %[1]skey_file, %[1]skey_env and %[1]skms_key_arn", prefix)
	}
}

func checkKMSARN(p *problems, field, arn string) {
	if arn != "" && !strings.HasPrefix(arn, "arn:") || strings.HasPrefix(arn, "arn:") && !strings.Contains(arn, ":kms:") {
		p.add(field, `must be a KMS key ARN such as "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", got %q`, arn)
	}
}

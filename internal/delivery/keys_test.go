package delivery

import (
	"strings"
	"testing"
	"time"
)

func TestKey(t *testing.T) {
	day := time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)
	end := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	base := KeyParts{Prefix: "audit", EventType: "user.login", Day: day, Tenant: "acme",
		WindowStart: end.Add(-time.Hour), WindowEnd: end, FirstSeq: 7, LastSeq: 1234, Part: 2, Ext: ".ndjson.gz"}
	tests := []struct {
		name   string
		change func(*KeyParts)
		want   string
	}{
		{"default", func(*KeyParts) {}, "audit/user.login/2026-11-25/acme/20261125T150000Z_000000000007-000000001234_0002.ndjson.gz"},
		{"no prefix", func(p *KeyParts) { p.Prefix = "" }, "user.login/2026-11-25/acme/20261125T150000Z_000000000007-000000001234_0002.ndjson.gz"},
		{"hourly template", func(p *KeyParts) {
			p.Template = "{prefix}/{yyyy}/{mm}/{dd}/{hh}/{window_start}_{seq_from}-{seq_to}_{part}"
		}, "audit/2026/11/25/14/20261125T140000Z_000000000007-000000001234_0002.ndjson.gz"},
		{"security lake", func(p *KeyParts) {
			p.Template, p.Prefix, p.Ext = "security_lake", "", ".parquet"
			p.Source, p.Region, p.Account, p.Class = "acme-audit", "eu-west-1", "123456789012", "authentication"
		}, "ext/acme-audit/region=eu-west-1/accountId=123456789012/eventDay=20261125/authentication_user.login_20261125T150000Z_000000000007-000000001234_0002.parquet"},
		{"security lake hours", func(p *KeyParts) {
			p.Template, p.Source, p.Region, p.Account, p.Class = "{yyyymmdd}/{hh}/{class}/{seq_from}-{seq_to}_{part}", "s", "r", "a", "api_activity"
		}, "audit/20261125/14/api_activity/000000000007-000000001234_0002.ndjson.gz"},
		{"unsafe event name", func(p *KeyParts) { p.EventType = "../../etc/passwd" }, "audit/.._.._etc_passwd/2026-11-25/acme/20261125T150000Z_000000000007-000000001234_0002.ndjson.gz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base
			tt.change(&p)
			if got := Key(p); got != tt.want {
				t.Fatalf("Key = %s\n want %s", got, tt.want)
			}
		})
	}
}

func TestSafeSegment(t *testing.T) {
	for in, want := range map[string]string{
		"user.login": "user.login", "": "_unknown", "..": "__", "a/b c": "a_b_c",
		strings.Repeat("x", 300): strings.Repeat("x", 200),
	} {
		if got := SafeSegment(in); got != want {
			t.Errorf("SafeSegment(%q) = %q, want %q", in, got, want)
		}
	}
}

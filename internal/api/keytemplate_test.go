package api

import (
	"strings"
	"testing"
)

func TestValidateKeyTemplate(t *testing.T) {
	tests := []struct {
		tmpl, prefix string
		want         string // "" when valid
	}{
		{DefaultKeyTemplate, "audit", ""},
		{"{prefix}/" + DefaultKeyTemplate, "audit", ""},
		{"{yyyy}/{mm}/{dd}/{hh}/{event_type}_{window_start}_{seq_from}-{seq_to}_{part}", "", ""},
		{"{event_type}/{window_end}", "", "must contain {seq_from}"},
		{"{seq_from}-{seq_to}", "", "must contain {seq_from}"},
		{"../{seq_from}-{seq_to}_{part}", "", ".."},
		{"/{seq_from}-{seq_to}_{part}", "", "must not start"},
		{"a//{seq_from}-{seq_to}_{part}", "", "empty"},
		{"{seq_from}-{seq_to}_{part}/", "", "must not start or end"},
		{"{bucket}/{seq_from}-{seq_to}_{part}", "", "unknown variable {bucket}"},
		{"x/{prefix}/{seq_from}-{seq_to}_{part}", "", "unknown variable {prefix}"},
		{"{seq_from}-{seq_to}_{part", "", "unmatched brace"},
		{"a b/{seq_from}-{seq_to}_{part}", "", "may only contain"},
		{strings.Repeat("x", 1000) + "/{seq_from}-{seq_to}_{part}", "p", "1024"},
	}
	for _, tt := range tests {
		err := ValidateKeyTemplate(tt.tmpl, tt.prefix)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("ValidateKeyTemplate(%q) = %v, want valid", tt.tmpl, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("ValidateKeyTemplate(%q) = %v, want an error mentioning %q", tt.tmpl, err, tt.want)
		}
	}
}

func TestSecurityLakePresetIsValid(t *testing.T) {
	if err := ValidateKeyTemplate(KeyTemplateSecurityLake, ""); err != nil {
		t.Fatalf("preset: %v", err)
	}
	if got := ExpandKeyTemplate(KeyTemplateSecurityLake); !strings.HasPrefix(got, "ext/{source}/region={region}/accountId={account}/eventDay={yyyymmdd}/") {
		t.Errorf("preset expands to %q", got)
	}
	if got := ExpandKeyTemplate(DefaultKeyTemplate); got != DefaultKeyTemplate {
		t.Errorf("a template expands to %q", got)
	}
}

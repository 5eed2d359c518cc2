package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFind(t *testing.T) {
	dir := t.TempDir()
	system := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(system, []byte(""), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.hcl")
	tests := []struct {
		name                 string
		flag, env, system    string
		wantPath, wantSource string
	}{
		{"flag wins", "flag.hcl", "env.hcl", system, "flag.hcl", "-config"},
		{"environment", "", "env.hcl", system, "env.hcl", EnvConfig},
		{"system file", "", "", system, system, system},
		{"defaults when no system file", "", "", missing, "", "the built-in defaults"},
		// A named file that does not exist is Load's error to report, not
		// a reason to fall back to another file.
		{"missing flag file is kept", missing, "", system, missing, "-config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, from := find(tt.flag, tt.env, tt.system)
			if path != tt.wantPath || from != tt.wantSource {
				t.Errorf("find(%q, %q, %q) = %q, %q; want %q, %q", tt.flag, tt.env, tt.system, path, from, tt.wantPath, tt.wantSource)
			}
		})
	}
}

func TestFindReadsTheEnvironment(t *testing.T) {
	t.Setenv(EnvConfig, "/from/env.hcl")
	if path, from := Find(""); path != "/from/env.hcl" || from != EnvConfig {
		t.Errorf("Find(\"\") = %q, %q; want the %s file", path, from, EnvConfig)
	}
}

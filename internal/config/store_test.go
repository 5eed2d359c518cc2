package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStoreBlockDatabaseURL(t *testing.T) {
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "db-url")
	if err := os.WriteFile(urlFile, []byte("postgres://agent:s3cret@db.internal:5432/audit?sslmode=verify-full\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		src       string
		env       string
		wantURL   string
		wantFrom  string
		wantConns int
		wantPG    bool
	}{
		{"no block is SQLite", ``, "", "", "", DefaultPostgresConns, false},
		{"url", `store {
  postgres {
    url       = "postgres://agent@db.internal/audit"
    max_conns = 4
  }
}`, "", "postgres://agent@db.internal/audit", "store.postgres.url", 4, true},
		{"url_file, trimmed", `store {
  postgres { url_file = "` + urlFile + `" }
}`, "", "postgres://agent:s3cret@db.internal:5432/audit?sslmode=verify-full", "store.postgres.url_file", DefaultPostgresConns, true},
		{"env overrides url", `store {
  postgres { url = "postgres://agent@db.internal/audit" }
}`, "postgresql://other@db2/audit", "postgresql://other@db2/audit", EnvDatabaseURL, DefaultPostgresConns, true},
		{"env supplies the url of an empty block", `store {
  postgres {}
}`, "postgres://other@db2/audit", "postgres://other@db2/audit", EnvDatabaseURL, DefaultPostgresConns, true},
		{"env alone selects PostgreSQL", ``, "postgres://other@db2/audit", "postgres://other@db2/audit", EnvDatabaseURL, DefaultPostgresConns, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvDatabaseURL, tt.env)
			cfg, err := Parse([]byte(tt.src), "agent.hcl")
			if err != nil {
				t.Fatal(err)
			}
			got, from, err := cfg.DatabaseURL()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.wantURL || from != tt.wantFrom {
				t.Errorf("DatabaseURL() = %q from %q, want %q from %q", got, from, tt.wantURL, tt.wantFrom)
			}
			if n := cfg.PostgresMaxConns(); n != tt.wantConns {
				t.Errorf("PostgresMaxConns() = %d, want %d", n, tt.wantConns)
			}
			if cfg.UsesPostgres() != tt.wantPG {
				t.Errorf("UsesPostgres() = %v, want %v", cfg.UsesPostgres(), tt.wantPG)
			}
		})
	}
}

func TestStoreBlockValidationErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"url and url_file", `store {
  postgres {
    url      = "postgres://a@db/x"
    url_file = "/run/secrets/db"
  }
}`, `store.postgres.url: set either url or url_file, not both`},
		{"not postgres", `store {
  postgres { url = "mysql://a:hunter2@db/x" }
}`, `store.postgres.url: must be a postgres:// URL such as`},
		{"a DSN is not a URL", `store {
  postgres { url = "host=db user=a" }
}`, `store.postgres.url: must be a postgres:// URL`},
		{"url_file missing", `store {
  postgres { url_file = "` + missing + `" }
}`, `store.postgres.url_file: cannot read "` + missing + `"`},
		{"max_conns negative", `store {
  postgres {
    url       = "postgres://a@db/x"
    max_conns = -1
  }
}`, `store.postgres.max_conns: must be between 1 and 100 (or left out for 8), got -1`},
		{"max_conns large", `store {
  postgres {
    url       = "postgres://a@db/x"
    max_conns = 500
  }
}`, `store.postgres.max_conns: must be between 1 and 100`},
		{"unknown attribute", `store {
  postgres { uri = "postgres://a@db/x" }
}`, `Unsupported argument; An argument named "uri" is not expected here`},
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
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// The URL that comes from the environment or a file is checked when it is
// read, naming where it came from, and never quoted with its password.
func TestDatabaseURLErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad-url")
	if err := os.WriteFile(bad, []byte("mysql://a:hunter2@db/x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		src  string
		env  string
		want string
	}{
		{"env not postgres", ``, "https://a:hunter2@db/x", EnvDatabaseURL + `: must be a postgres:// URL`},
		{"file not postgres", `store {
  postgres { url_file = "` + bad + `" }
}`, "", `store.postgres.url_file: ` + bad + `: must be a postgres:// URL`},
		{"empty block without env", `store {
  postgres {}
}`, "", `store.postgres: set url or url_file, or ` + EnvDatabaseURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvDatabaseURL, tt.env)
			cfg, err := Parse([]byte(tt.src), "agent.hcl")
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = cfg.DatabaseURL()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DatabaseURL() error = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://agent:hunter2@db:5432/audit?sslmode=verify-full", "postgres://agent:xxxxx@db:5432/audit?sslmode=verify-full"},
		{"postgres://agent@db/audit?password=hunter2", "postgres://agent@db/audit?password=xxxxx"},
		{"postgres://db/audit", "postgres://db/audit"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

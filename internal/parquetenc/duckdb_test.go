package parquetenc

import (
	"testing"

	"github.com/auditexport/auditexport/internal/testenv"
)

// duckdb runs named SQL queries with DuckDB and returns their rows.
func duckdb(t *testing.T, queries map[string]string) map[string][]map[string]any {
	t.Helper()
	return testenv.DuckDB(t, queries)
}

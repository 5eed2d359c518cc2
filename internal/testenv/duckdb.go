package testenv

import (
	"bytes"
	_ "embed" // the DuckDB query script
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// DuckDBVersion is the DuckDB Node.js package the tests read Parquet with:
// an engine independent of the writer.
const DuckDBVersion = "@duckdb/node-api@1.5.6-r.1"

//go:embed duckdb_query.mjs
var duckdbScript []byte

var duckdbOnce struct {
	sync.Once
	dir string
	err error
}

// duckdbDir installs DuckDB's Node.js package into the user cache once
// (npm install --prefix) and returns the folder. A machine without node or
// npm fails the test: the Parquet files must be proven readable.
func duckdbDir(t testing.TB) string {
	t.Helper()
	duckdbOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			duckdbOnce.err = err
			return
		}
		dir := filepath.Join(cache, "auditexport", "duckdb")
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api", "package.json")); err != nil {
			npm, err := exec.LookPath("npm")
			if err != nil {
				duckdbOnce.err = err
				return
			}
			cmd := exec.Command(npm, "install", "--no-audit", "--no-fund", "--prefix", dir, DuckDBVersion)
			if out, err := cmd.CombinedOutput(); err != nil {
				duckdbOnce.err = &exec.ExitError{ProcessState: cmd.ProcessState, Stderr: out}
				return
			}
		}
		err = os.WriteFile(filepath.Join(dir, "query.mjs"), duckdbScript, 0o644)
		duckdbOnce.dir, duckdbOnce.err = dir, err
	})
	if duckdbOnce.err != nil {
		var ee *exec.ExitError
		if errors.As(duckdbOnce.err, &ee) {
			t.Fatalf("install DuckDB (%s) with npm: %s", DuckDBVersion, ee.Stderr)
		}
		t.Fatalf("DuckDB (%s) needs node and npm: %v", DuckDBVersion, duckdbOnce.err)
	}
	return duckdbOnce.dir
}

// DuckDB runs named SQL queries in one in-memory DuckDB and returns their
// rows, numbers as json.Number.
func DuckDB(t testing.TB, queries map[string]string) map[string][]map[string]any {
	t.Helper()
	dir := duckdbDir(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("DuckDB needs node: %v", err)
	}
	q, _ := json.Marshal(queries)
	cmd := exec.Command(node, filepath.Join(dir, "query.mjs"), string(q))
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s", err, stderr.String())
	}
	var res map[string][]map[string]any
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("duckdb output: %v\n%s", err, out)
	}
	return res
}

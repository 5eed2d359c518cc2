package parquetenc

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// duckdbVersion is the DuckDB Node.js package the tests read Parquet with.
const duckdbVersion = "@duckdb/node-api@1.5.6-r.1"

var duckdbOnce struct {
	sync.Once
	dir string
	err error
}

// duckdbDir installs DuckDB's Node.js package into the user cache once
// (npm install --prefix) and returns the folder. A machine without node or
// npm fails the test: the Parquet files must be proven readable.
func duckdbDir(t *testing.T) string {
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
			cmd := exec.Command(npm, "install", "--no-audit", "--no-fund", "--prefix", dir, duckdbVersion)
			if out, err := cmd.CombinedOutput(); err != nil {
				duckdbOnce.err = &exec.ExitError{ProcessState: cmd.ProcessState, Stderr: out}
				return
			}
		}
		script, err := os.ReadFile(filepath.Join("testdata", "query.mjs"))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "query.mjs"), script, 0o644)
		}
		duckdbOnce.dir, duckdbOnce.err = dir, err
	})
	if duckdbOnce.err != nil {
		var ee *exec.ExitError
		if errors.As(duckdbOnce.err, &ee) {
			t.Fatalf("install DuckDB (%s) with npm: %s", duckdbVersion, ee.Stderr)
		}
		t.Fatalf("DuckDB (%s) needs node and npm: %v", duckdbVersion, duckdbOnce.err)
	}
	return duckdbOnce.dir
}

// duckdb runs named SQL queries and returns their rows.
func duckdb(t *testing.T, queries map[string]string) map[string][]map[string]any {
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

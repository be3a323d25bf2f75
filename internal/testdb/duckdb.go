package testdb

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// duckScript runs one query given as argv[1], in time zone UTC, and
// prints its columns, their types and its rows as JSON, each value as
// DuckDB itself renders it as text (NULL as null).
const duckScript = `
import duckdb, json, sys
con = duckdb.connect()
con.execute("SET TimeZone='UTC'")
rel = con.sql(sys.argv[1])
text = con.sql("SELECT COLUMNS(*)::VARCHAR FROM rel")
print(json.dumps({"columns": rel.columns, "types": [str(t) for t in rel.types], "rows": text.fetchall()}))
`

// DuckResult is what a DuckDB query returned.
type DuckResult struct {
	Columns []string
	Types   []string
	Rows    [][]*string
}

// DuckDB runs a query in DuckDB (the Python package test-services.sh
// installs), a query engine of its own to read Parquet files back with;
// the test is skipped where it is not installed.
func DuckDB(t testing.TB, query string) DuckResult {
	t.Helper()
	pys, _ := filepath.Glob("/usr/local/lib/eddy-test/duckdb-*/bin/python")
	if len(pys) == 0 {
		t.Skip("DuckDB is not installed (run scripts/test-services.sh)")
	}
	sort.Strings(pys)
	var out, errb bytes.Buffer
	cmd := exec.Command(pys[len(pys)-1], "-c", duckScript, query)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("duckdb %q: %v\n%s", query, err, errb.String())
	}
	var r DuckResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("duckdb %q: %v\n%s", query, err, out.String())
	}
	return r
}

// Lines renders each row as its values joined by spaces, null as null.
func (r DuckResult) Lines(null string) []string {
	var out []string
	for _, row := range r.Rows {
		vals := make([]string, len(row))
		for i, v := range row {
			vals[i] = null
			if v != nil {
				vals[i] = *v
			}
		}
		out = append(out, strings.Join(vals, " "))
	}
	return out
}

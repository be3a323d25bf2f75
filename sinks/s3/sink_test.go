package s3

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/testdb"
	elog "github.com/eddy-cdc/eddy/log"
)

// testSink opens an s3-sink on srv's bucket with params over the
// defaults, assigned no partitions yet (a fresh group).
func testSink(t *testing.T, srv *testdb.S3Server, bucket string, params map[string]any) (*Sink, map[string]any) {
	t.Helper()
	p := map[string]any{"bucket": bucket, "endpoint": srv.Endpoint(), "path_style": true,
		"access_key_id": testdb.S3AccessKey, "secret_access_key": testdb.S3SecretKey}
	for k, v := range params {
		p[k] = v
	}
	cat, err := connect.BuiltinCatalog()
	if err != nil {
		t.Fatal(err)
	}
	pp, err := connect.NewParams(cat.Plugin("s3-sink"), p)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(pp, connect.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.(*Sink).Assign(map[elog.TopicPartition]int64{})
	t.Cleanup(func() { s.Close() })
	return s.(*Sink), p
}

func mustParse(t *testing.T, schema string) avro.Schema {
	t.Helper()
	s, err := avro.ParseWithCache(schema, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rat(s string) *big.Rat { r, _ := new(big.Rat).SetString(s); return r }

// download writes every object of the bucket into a directory, for DuckDB.
func download(t *testing.T, params map[string]any) (string, []object) {
	t.Helper()
	dir := t.TempDir()
	objs := objects(t, params)
	for _, o := range objs {
		path := filepath.Join(dir, filepath.FromSlash(o.key))
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, o.body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, objs
}

// Every Avro type lands in Parquet as its logical type, and a query
// engine of its own (DuckDB) reads the values back as they were: nested
// records, arrays of records, maps, decimals, times, UUIDs, NULLs,
// unicode, a large value, empty arrays and maps.
func TestParquetTypesAsAQueryEngineReadsThem(t *testing.T) {
	srv := testdb.NewS3Server(t)
	bucket := srv.Bucket("types")
	s, params := testSink(t, srv, bucket, map[string]any{"format": "parquet", "flush_records": 3})
	schema := mustParse(t, `{"type":"record","name":"Value","namespace":"shop.public.every","fields":[
		{"name":"id","type":"long"},
		{"name":"b","type":"boolean"},
		{"name":"i","type":"int"},
		{"name":"f","type":"float"},
		{"name":"d","type":"double"},
		{"name":"s","type":"string"},
		{"name":"u","type":{"type":"string","logicalType":"uuid"}},
		{"name":"by","type":"bytes"},
		{"name":"fx","type":{"type":"fixed","name":"Four","size":4}},
		{"name":"e","type":{"type":"enum","name":"Mood","symbols":["calm","busy"]}},
		{"name":"dt","type":{"type":"int","logicalType":"date"}},
		{"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
		{"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
		{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
		{"name":"tsu","type":{"type":"long","logicalType":"timestamp-micros"}},
		{"name":"lts","type":{"type":"long","logicalType":"local-timestamp-micros"}},
		{"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
		{"name":"wide","type":{"type":"bytes","logicalType":"decimal","precision":38,"scale":10}},
		{"name":"nested","type":{"type":"record","name":"Inner","fields":[{"name":"x","type":"int"},{"name":"y","type":["null","string"],"default":null}]}},
		{"name":"arr","type":{"type":"array","items":"long"}},
		{"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line","fields":[{"name":"k","type":"string"},{"name":"v","type":["null","double"]}]}}},
		{"name":"m","type":{"type":"map","values":"string"}},
		{"name":"opt","type":["null","long"],"default":null},
		{"name":"big","type":["null","string"],"default":null}]}`)
	ts := time.Date(2024, 2, 29, 10, 11, 12, 345678000, time.UTC)
	large := strings.Repeat("ü", 300_000)
	rows := []map[string]any{
		{"id": int64(1), "b": true, "i": 7, "f": float32(1.5), "d": 2.25, "s": "ünï ✓", "u": "123e4567-e89b-12d3-a456-426614174000",
			"by": []byte{0, 1, 2}, "fx": []byte{1, 2, 3, 4}, "e": "busy", "dt": time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
			"tm": 13*time.Hour + 5*time.Minute + 7*time.Second + 8*time.Millisecond, "tu": 23*time.Hour + 59*time.Minute + 59*time.Second + 999999*time.Microsecond,
			"ts": ts, "tsu": ts, "lts": ts, "dec": rat("-12.34"), "wide": rat("1234567890123456789012345678.0123456789"),
			"nested": map[string]any{"x": 1, "y": nil}, "arr": []any{int64(1), int64(-2)},
			"lines": []any{map[string]any{"k": "a", "v": 1.5}, map[string]any{"k": "b", "v": nil}},
			"m":     map[string]any{"b": "2", "a": "1"}, "opt": nil, "big": large},
		{"id": int64(2), "b": false, "i": -2147483648, "f": float32(-0.25), "d": -1e300, "s": "", "u": "00000000-0000-0000-0000-000000000000",
			"by": []byte{}, "fx": []byte{0, 0, 0, 0}, "e": "calm", "dt": time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC),
			"tm": time.Duration(0), "tu": time.Duration(0), "ts": time.UnixMilli(-1).UTC(), "tsu": time.UnixMicro(0).UTC(), "lts": time.UnixMicro(0).UTC(),
			"dec": rat("0"), "wide": rat("-0.0000000001"), "nested": map[string]any{"x": -1, "y": "z"}, "arr": []any{}, "lines": []any{},
			"m": map[string]any{}, "opt": int64(5), "big": nil},
	}
	var recs []connect.Record
	for i, v := range rows {
		recs = append(recs, connect.Record{Topic: "shop.public.every", Offset: int64(i), Value: v, ValueSchema: schema, Timestamp: ts})
	}
	ctx := context.Background()
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	// One more makes three: the file is stored.
	recs = []connect.Record{{Topic: "shop.public.every", Offset: 2, Value: rows[1], ValueSchema: schema, Timestamp: ts}}
	recs[0].Value = copyWith(rows[1], "id", int64(3))
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	dir, objs := download(t, params)
	if len(objs) != 1 || !strings.HasSuffix(objs[0].key, "shop.public.every/partition=0/shop.public.every+0+00000000000000000000.parquet") {
		t.Fatalf("objects %v", keys(objs))
	}
	glob := filepath.Join(dir, "**", "*.parquet")
	desc := testdb.DuckDB(t, "DESCRIBE SELECT * FROM read_parquet('"+glob+"', hive_partitioning=false)")
	var types []string
	for _, r := range desc.Rows {
		types = append(types, *r[0]+" "+*r[1])
	}
	want := []string{"id BIGINT", "b BOOLEAN", "i INTEGER", "f FLOAT", "d DOUBLE", "s VARCHAR", "u UUID", "by BLOB", "fx BLOB", "e VARCHAR",
		"dt DATE", "tm TIME", "tu TIME", "ts TIMESTAMP WITH TIME ZONE", "tsu TIMESTAMP WITH TIME ZONE", "lts TIMESTAMP",
		"dec DECIMAL(10,2)", "wide DECIMAL(38,10)", "nested STRUCT(x INTEGER, y VARCHAR)", "arr BIGINT[]",
		"lines STRUCT(k VARCHAR, v DOUBLE)[]", "m MAP(VARCHAR, VARCHAR)", "opt BIGINT", "big VARCHAR"}
	if strings.Join(types, "\n") != strings.Join(want, "\n") {
		t.Fatalf("DuckDB reads the columns as\n%s\nwant\n%s", strings.Join(types, "\n"), strings.Join(want, "\n"))
	}
	got := testdb.DuckDB(t, "SELECT id, b, i, f, d, s, u, hex(\"by\"), hex(fx), e, dt, tm, tu, ts, tsu, lts, dec, wide, nested, arr, lines, m, opt, length(big) FROM read_parquet('"+glob+"', hive_partitioning=false) ORDER BY id")
	wantRows := [][]string{
		{"1", "true", "7", "1.5", "2.25", "ünï ✓", "123e4567-e89b-12d3-a456-426614174000", "000102", "01020304", "busy", "2024-02-29", "13:05:07.008", "23:59:59.999999",
			"2024-02-29 10:11:12.345+00", "2024-02-29 10:11:12.345678+00", "2024-02-29 10:11:12.345678", "-12.34", "1234567890123456789012345678.0123456789",
			"{'x': 1, 'y': NULL}", "[1, -2]", "[{'k': a, 'v': 1.5}, {'k': b, 'v': NULL}]", "{a=1, b=2}", "", "300000"},
		{"2", "false", "-2147483648", "-0.25", "-1e+300", "", "00000000-0000-0000-0000-000000000000", "", "00000000", "calm", "1969-12-31", "00:00:00", "00:00:00",
			"1969-12-31 23:59:59.999+00", "1970-01-01 00:00:00+00", "1970-01-01 00:00:00", "0.00", "-0.0000000001",
			"{'x': -1, 'y': z}", "[]", "[]", "{}", "5", ""},
	}
	checkStats(t, glob, "id", "1", "3")
	checkStats(t, glob, "s", "", "ünï ✓")
	for i, w := range wantRows {
		r := got.Rows[i]
		for j := range w {
			v := ""
			if r[j] != nil {
				v = *r[j]
			}
			if v != w[j] {
				t.Errorf("row %d, %s: DuckDB reads %q, want %q", i+1, got.Columns[j], v, w[j])
			}
		}
	}
}

// checkStats: the column chunks carry min and max (engines skip row
// groups by them).
func checkStats(t *testing.T, glob, column, min, max string) {
	t.Helper()
	st := testdb.DuckDB(t, "SELECT stats_min_value, stats_max_value FROM parquet_metadata('"+glob+"') WHERE path_in_schema = '"+column+"'")
	if len(st.Rows) == 0 || st.Rows[0][0] == nil || *st.Rows[0][0] != min || *st.Rows[0][1] != max {
		all := testdb.DuckDB(t, "SELECT * FROM parquet_metadata('"+glob+"') WHERE path_in_schema = '"+column+"'")
		var b strings.Builder
		for i, c := range all.Columns {
			if v := all.Rows[0][i]; v != nil {
				fmt.Fprintf(&b, "%s=%s ", c, *v)
			}
		}
		t.Fatalf("statistics of %s: %v, want min %s max %s; the metadata: %s", column, st.Rows, min, max, b.String())
	}
}

func copyWith(m map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(m))
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

func keys(objs []object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.key)
	}
	return out
}

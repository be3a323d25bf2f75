package s3

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/hamba/avro/v2"
	"github.com/parquet-go/parquet-go"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
	"github.com/eddy-cdc/eddy/internal/testdb"
	elog "github.com/eddy-cdc/eddy/log"
)

// testSink opens an s3-sink on srv's bucket with params over the
// defaults, assigned no partitions yet (a fresh group).
func testSink(t testing.TB, srv *testdb.S3Server, bucket string, params map[string]any) (*Sink, map[string]any) {
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

func mustParse(t testing.TB, schema string) avro.Schema {
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
	return dir, named(t, testdb.S3Download(t, client(params), params["bucket"].(string), dir))
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
		{"name":"big","type":["null","string"],"default":null},
		{"name":"num","type":["null",{"type":"bytes","logicalType":"decimal","precision":8,"scale":3},"string"],"default":null}]}`)
	ts := time.Date(2024, 2, 29, 10, 11, 12, 345678000, time.UTC)
	large := strings.Repeat("ü", 300_000)
	rows := []map[string]any{
		{"id": int64(1), "b": true, "i": 7, "f": float32(1.5), "d": 2.25, "s": "ünï ✓", "u": "123e4567-e89b-12d3-a456-426614174000",
			"by": []byte{0, 1, 2}, "fx": []byte{1, 2, 3, 4}, "e": "busy", "dt": time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
			"tm": 13*time.Hour + 5*time.Minute + 7*time.Second + 8*time.Millisecond, "tu": 23*time.Hour + 59*time.Minute + 59*time.Second + 999999*time.Microsecond,
			"ts": ts, "tsu": ts, "lts": ts, "dec": rat("-12.34"), "wide": rat("1234567890123456789012345678.0123456789"),
			"nested": map[string]any{"x": 1, "y": nil}, "arr": []any{int64(1), int64(-2)},
			"lines": []any{map[string]any{"k": "a", "v": 1.5}, map[string]any{"k": "b", "v": nil}},
			"m":     map[string]any{"b": "2", "a": "1"}, "opt": nil, "big": large, "num": rat("1.5")},
		{"id": int64(2), "b": false, "i": -2147483648, "f": float32(-0.25), "d": -1e300, "s": "", "u": "00000000-0000-0000-0000-000000000000",
			"by": []byte{}, "fx": []byte{0, 0, 0, 0}, "e": "calm", "dt": time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC),
			"tm": time.Duration(0), "tu": time.Duration(0), "ts": time.UnixMilli(-1).UTC(), "tsu": time.UnixMicro(0).UTC(), "lts": time.UnixMicro(0).UTC(),
			"dec": rat("0"), "wide": rat("-0.0000000001"), "nested": map[string]any{"x": -1, "y": "z"}, "arr": []any{}, "lines": []any{},
			"m": map[string]any{}, "opt": int64(5), "big": nil, "num": nil},
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
		"lines STRUCT(k VARCHAR, v DOUBLE)[]", "m MAP(VARCHAR, VARCHAR)", "opt BIGINT", "big VARCHAR", "num DECIMAL(8,3)"}
	if strings.Join(types, "\n") != strings.Join(want, "\n") {
		t.Fatalf("DuckDB reads the columns as\n%s\nwant\n%s", strings.Join(types, "\n"), strings.Join(want, "\n"))
	}
	got := testdb.DuckDB(t, "SELECT id, b, i, f, d, s, u, hex(\"by\"), hex(fx), e, dt, tm, tu, ts, tsu, lts, dec, wide, nested, arr, lines, m, opt, length(big), num FROM read_parquet('"+glob+"', hive_partitioning=false) ORDER BY id")
	wantRows := [][]string{
		{"1", "true", "7", "1.5", "2.25", "ünï ✓", "123e4567-e89b-12d3-a456-426614174000", "000102", "01020304", "busy", "2024-02-29", "13:05:07.008", "23:59:59.999999",
			"2024-02-29 10:11:12.345+00", "2024-02-29 10:11:12.345678+00", "2024-02-29 10:11:12.345678", "-12.34", "1234567890123456789012345678.0123456789",
			"{'x': 1, 'y': NULL}", "[1, -2]", "[{'k': a, 'v': 1.5}, {'k': b, 'v': NULL}]", "{a=1, b=2}", "", "300000", "1.500"},
		{"2", "false", "-2147483648", "-0.25", "-1e+300", "", "00000000-0000-0000-0000-000000000000", "", "00000000", "calm", "1969-12-31", "00:00:00", "00:00:00",
			"1969-12-31 23:59:59.999+00", "1970-01-01 00:00:00+00", "1970-01-01 00:00:00", "0.00", "-0.0000000001",
			"{'x': -1, 'y': z}", "[]", "[]", "{}", "5", "", ""},
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

// Interleaved schema versions do not make a file per record (Confluent's
// S3 sink rolls at every change): three tables routed into one topic and
// two versions of one of them (a rolling deploy) arrive interleaved, and
// each flush stores one file per schema that cannot be written into
// another. Records of an older version are written into a newer file
// that can hold them (the column it lacks takes its default).
func TestInterleavedSchemasDoNotFloodFiles(t *testing.T) {
	srv := testdb.NewS3Server(t)
	bucket := srv.Bucket("interleaved")
	s, params := testSink(t, srv, bucket, map[string]any{"format": "parquet", "flush_records": 1000})
	a1 := mustParse(t, `{"type":"record","name":"A","namespace":"m","fields":[{"name":"id","type":"long"},{"name":"v","type":"string"}]}`)
	a2 := mustParse(t, `{"type":"record","name":"A","namespace":"m","fields":[{"name":"id","type":"long"},{"name":"v","type":"string"},{"name":"extra","type":["null","string"],"default":null}]}`)
	b := mustParse(t, `{"type":"record","name":"B","namespace":"m","fields":[{"name":"k","type":"string"},{"name":"n","type":"int"},{"name":"w","type":"double"}]}`)
	c := mustParse(t, `{"type":"record","name":"C","namespace":"m","fields":[{"name":"x","type":"boolean"}]}`)
	value := func(sch avro.Schema, i int) map[string]any {
		switch sch {
		case a1:
			return map[string]any{"id": int64(i), "v": fmt.Sprint("v", i)}
		case a2:
			return map[string]any{"id": int64(i), "v": fmt.Sprint("v", i), "extra": "new ✓"}
		case b:
			return map[string]any{"k": fmt.Sprint("k", i), "n": i, "w": float64(i) / 2}
		}
		return map[string]any{"x": i%2 == 0}
	}
	var recs []connect.Record
	for i := range 3000 {
		sch := []avro.Schema{a1, b, a2, c, a1, a2}[i%6]
		recs = append(recs, connect.Record{Topic: "mixed", Offset: int64(i), Value: value(sch, i), ValueSchema: sch, Timestamp: time.UnixMilli(1_767_225_600_000)})
	}
	// Partition 1: the newer version first, then both: one file a flush.
	for i := range 2000 {
		sch := a2
		if i > 0 && i%3 == 0 {
			sch = a1
		}
		recs = append(recs, connect.Record{Topic: "mixed", Partition: 1, Offset: int64(i), Value: value(sch, i), ValueSchema: sch, Timestamp: time.UnixMilli(1_767_225_600_000)})
	}
	for i := 0; i < len(recs); i += 500 {
		if err := s.Write(context.Background(), recs[i:min(i+500, len(recs))]); err != nil {
			t.Fatal(err)
		}
	}
	dir, objs := download(t, params)
	perPart := map[string]int{}
	records := 0
	for _, o := range objs {
		perPart[fmt.Sprint("p", o.partition)]++
		n, _ := strconv.Atoi(o.meta["eddy-records"])
		records += n
	}
	// Partition 0's flushes begin with A1, A1 and A2: 4, 4 and 3 files (the
	// third's A1 records go into its A2 file).
	if perPart["p0"] != 4+4+3 || perPart["p1"] != 2 || records != 5000 {
		t.Fatalf("%d objects (%v) holding %d records, want 11 on partition 0 (3 flushes of 4 schemas, one projected), 2 on partition 1, 5000 records:\n%s",
			len(objs), perPart, records, strings.Join(keys(objs), "\n"))
	}
	r := testdb.DuckDB(t, "SELECT count(*), count(extra), min(id), max(id) FROM read_parquet('"+filepath.Join(dir, "mixed", "partition=1", "*.parquet")+"')")
	if got := strings.Join([]string{*r.Rows[0][0], *r.Rows[0][1], *r.Rows[0][2], *r.Rows[0][3]}, " "); got != "2000 1334 0 1999" {
		t.Fatalf("partition 1 reads as count, count(extra), min, max = %s, want 2000 1334 0 1999 (the older rows without extra)", got)
	}
}

// Flattened, each change is its row (a delete's row before) with __op,
// __source_ts_ms, __position, __partition and __offset; a truncate is a
// row of those alone.
func TestFlattenedRows(t *testing.T) {
	srv := testdb.NewS3Server(t)
	bucket := srv.Bucket("flat")
	s, params := testSink(t, srv, bucket, map[string]any{"format": "jsonl", "flatten": true, "flush_records": 4, "path": "${table}"})
	env := mustParse(t, `{"type":"record","name":"Envelope","namespace":"shop.public.t","fields":[
		{"name":"before","type":["null",{"type":"record","name":"Value","fields":[{"name":"id","type":"long"},{"name":"v","type":["null","string"],"default":null}]}],"default":null},
		{"name":"after","type":["null","Value"],"default":null},
		{"name":"source","type":{"type":"record","name":"Source","fields":[{"name":"table","type":"string"},{"name":"ts_ms","type":"long"}]}},
		{"name":"op","type":"string"},{"name":"ts_ms","type":["null","long"],"default":null}]}`)
	src := map[string]any{"table": "t", "ts_ms": int64(1767225600123)}
	row := func(id int64, v any) map[string]any { return map[string]any{"id": id, "v": v} }
	var recs []connect.Record
	for i, e := range []map[string]any{
		{"op": "c", "after": row(1, "a"), "source": src},
		{"op": "u", "before": row(1, "a"), "after": row(1, "ü ✓"), "source": src},
		{"op": "d", "before": row(1, "ü ✓"), "source": src},
		{"op": "t", "source": src},
	} {
		recs = append(recs, connect.Record{Topic: "shop.public.t", Partition: 2, Offset: int64(10 + i), Value: e, ValueSchema: env,
			Headers: []elog.Header{{Key: connect.HeaderPosition, Value: []byte{0x01, byte(i)}}}})
	}
	if err := s.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	objs := objects(t, params)
	if len(objs) != 1 || objs[0].key != "t/shop.public.t+2+00000000000000000010.jsonl" {
		t.Fatalf("objects %v", keys(objs))
	}
	want := `{"id":1,"v":"a","__op":"c","__source_ts_ms":1767225600123,"__position":"0100","__partition":2,"__offset":10}
{"id":1,"v":"ü ✓","__op":"u","__source_ts_ms":1767225600123,"__position":"0101","__partition":2,"__offset":11}
{"id":1,"v":"ü ✓","__op":"d","__source_ts_ms":1767225600123,"__position":"0102","__partition":2,"__offset":12}
{"id":null,"v":null,"__op":"t","__source_ts_ms":1767225600123,"__position":"0103","__partition":2,"__offset":13}
`
	if string(objs[0].body) != want {
		t.Fatalf("the file holds\n%s\nwant\n%s", objs[0].body, want)
	}
}

// A file larger than upload_part_bytes goes up in parts; past
// memory_bytes its bytes are held in a temporary file, and the object is
// the same as one made in memory. An upload a crash left unfinished at
// the key is aborted, not completed.
func TestLargeFilesInPartsAndSpilled(t *testing.T) {
	srv := testdb.NewS3Server(t)
	ctx := context.Background()
	client := srv.Client()
	var sums []string
	for _, memory := range []int{1 << 20, 256 << 20} {
		bucket := srv.Bucket(fmt.Sprintf("large-%d", memory>>20))
		key := "big/big+0+00000000000000000000.jsonl"
		stale, err := client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		s, params := testSink(t, srv, bucket, map[string]any{"format": "jsonl", "flush_records": 20000, "flush_bytes": 0,
			"memory_bytes": memory, "upload_part_bytes": 5 << 20, "spill_dir": t.TempDir(), "path": "big"})
		var recs []connect.Record
		for i := range 20000 {
			recs = append(recs, connect.Record{Topic: "big", Offset: int64(i), Value: map[string]any{"i": int64(i), "pad": strings.Repeat(fmt.Sprint(i%10), 1000)}})
		}
		for i := 0; i < len(recs); i += 3000 {
			if err := s.Write(ctx, recs[i:min(i+3000, len(recs))]); err != nil {
				t.Fatal(err)
			}
			if used := s.mem.used; used > int64(memory) {
				t.Fatalf("the held files take %d bytes of memory, over the budget of %d", used, memory)
			}
		}
		objs := objects(t, params)
		if len(objs) != 1 || len(objs[0].body) < 19<<20 {
			t.Fatalf("objects %v", keys(objs))
		}
		head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		if parts := (len(objs[0].body) + 5<<20 - 1) / (5 << 20); !strings.HasSuffix(aws.ToString(head.ETag), fmt.Sprintf(`-%d"`, parts)) {
			t.Fatalf("ETag %s: not an upload of %d parts", aws.ToString(head.ETag), parts)
		}
		if n := strings.Count(string(objs[0].body), "\n"); n != 20000 {
			t.Fatalf("%d lines", n)
		}
		ups, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range ups.Uploads {
			if aws.ToString(u.UploadId) == aws.ToString(stale.UploadId) {
				t.Fatal("the upload left unfinished is still there")
			}
		}
		sums = append(sums, objs[0].meta["eddy-sha256"])
		// The same records again (a replay after a crash before the
		// commit): the conditional completion finds the object, kept.
		again, _ := testSink(t, srv, bucket, map[string]any{"format": "jsonl", "flush_records": 20000, "flush_bytes": 0,
			"memory_bytes": memory, "upload_part_bytes": 5 << 20, "path": "big"})
		if err := again.Write(ctx, recs); err != nil {
			t.Fatalf("the same file again: %v", err)
		}
		if again := objects(t, params); len(again) != 1 || again[0].meta["eddy-sha256"] != sums[len(sums)-1] {
			t.Fatalf("after a replay: %v", keys(again))
		}
	}
	if sums[0] != sums[1] {
		t.Fatalf("spilled and in memory, the files differ: %s %s", sums[0], sums[1])
	}
}

// An object already at a file's key is kept when it holds the file's
// bytes (a replay), or its records (another version wrote it); any other
// stops the task, never replaced.
func TestAnObjectIsNeverReplaced(t *testing.T) {
	srv := testdb.NewS3Server(t)
	ctx := context.Background()
	bucket := srv.Bucket("conflict")
	key := "t/t+0+00000000000000000000.jsonl"
	rec := func(i int) connect.Record {
		return connect.Record{Topic: "t", Offset: int64(i), Value: map[string]any{"i": int64(i)}}
	}
	put := func(body string, meta map[string]string) {
		if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader(body), Metadata: meta}); err != nil {
			t.Fatal(err)
		}
	}
	// The same records in other bytes, from another version.
	put("{\"i\": 0}\n{\"i\": 1}\n", map[string]string{"eddy-first-offset": "0", "eddy-last-offset": "1", "eddy-records": "2", "eddy-sha256": "old"})
	s, params := testSink(t, srv, bucket, map[string]any{"format": "jsonl", "flush_records": 2, "path": "t"})
	if err := s.Write(ctx, []connect.Record{rec(0), rec(1)}); err != nil {
		t.Fatalf("an object of the same records: %v", err)
	}
	if objs := objects(t, params); len(objs) != 1 || string(objs[0].body) != "{\"i\": 0}\n{\"i\": 1}\n" {
		t.Fatalf("the object was replaced: %v", objs)
	}
	// Someone else's object.
	put("not ours\n", nil)
	s, _ = testSink(t, srv, bucket, map[string]any{"format": "jsonl", "flush_records": 2, "path": "t"})
	err := s.Write(ctx, []connect.Record{rec(0), rec(1)})
	if !connect.IsPermanent(err) || !strings.Contains(err.Error(), "already holds other contents") {
		t.Fatalf("a foreign object at the key: %v, want a permanent error saying so", err)
	}
	if objs := objects(t, params); string(objs[0].body) != "not ours\n" {
		t.Fatal("the foreign object was replaced")
	}
}

// A file stored in one request carries the SHA-256 the sink took as it
// wrote it (x-amz-checksum-sha256), checked by the store against the
// body; the payload is not hashed a second time to sign it.
func TestStoredWithTheFilesChecksum(t *testing.T) {
	srv := testdb.NewS3Server(t)
	ctx := context.Background()
	bucket := srv.Bucket("checksum")
	s, params := testSink(t, srv, bucket, map[string]any{"format": "jsonl", "flush_records": 3, "path": "t"})
	var recs []connect.Record
	for i := range 3 {
		recs = append(recs, connect.Record{Topic: "t", Offset: int64(i), Value: map[string]any{"i": int64(i), "s": "żółw 🐢"}})
	}
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	objs := objects(t, params)
	if len(objs) != 1 {
		t.Fatalf("objects %v", keys(objs))
	}
	head, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String(objs[0].key), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(objs[0].body)
	if want := base64.StdEncoding.EncodeToString(sum[:]); aws.ToString(head.ChecksumSHA256) != want || objs[0].meta["eddy-sha256"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("checksum %q, eddy-sha256 %q; the body's SHA-256 is %s", aws.ToString(head.ChecksumSHA256), objs[0].meta["eddy-sha256"], want)
	}
}

// A missing bucket stops the task at start, saying so, unless
// create_bucket makes it.
func TestMissingBucket(t *testing.T) {
	srv := testdb.NewS3Server(t)
	cat, _ := connect.BuiltinCatalog()
	for _, create := range []bool{false, true} {
		pp, err := connect.NewParams(cat.Plugin("s3-sink"), map[string]any{"bucket": "not-there", "endpoint": srv.Endpoint(), "path_style": true,
			"access_key_id": testdb.S3AccessKey, "secret_access_key": testdb.S3SecretKey, "create_bucket": create})
		if err != nil {
			t.Fatal(err)
		}
		s, _ := New(pp, connect.Env{})
		err = s.Open(context.Background())
		switch {
		case !create && (!connect.IsPermanent(err) || !strings.Contains(err.Error(), "does not exist")):
			t.Fatalf("a missing bucket: %v, want a permanent error saying so", err)
		case create && err != nil:
			t.Fatalf("create_bucket: %v", err)
		}
		s.Close()
	}
	if _, err := srv.Client().HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("not-there")}); err != nil {
		t.Fatalf("the bucket was not made: %v", err)
	}
}

// A flattened change read straight from the log's bytes into its Parquet
// row, or its JSON line, is what the value path makes, for every type (so
// the files are the same whichever way a record went).
func TestDirectParquetRowsAreTheValuePath(t *testing.T) {
	rowFields := `{"name":"id","type":"long"},{"name":"b","type":["null","boolean"]},{"name":"i","type":"int"},{"name":"f","type":"float"},
		{"name":"d","type":["null","double"]},{"name":"s","type":"string"},{"name":"u","type":{"type":"string","logicalType":"uuid"}},
		{"name":"by","type":"bytes"},{"name":"fx","type":{"type":"fixed","name":"Four","size":4}},
		{"name":"e","type":{"type":"enum","name":"Mood","symbols":["calm","busy"]}},{"name":"dt","type":{"type":"int","logicalType":"date"}},
		{"name":"tm","type":{"type":"int","logicalType":"time-millis"}},{"name":"ts","type":["null",{"type":"long","logicalType":"timestamp-micros"}]},
		{"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
		{"name":"wide","type":["null",{"type":"bytes","logicalType":"decimal","precision":38,"scale":10}]},
		{"name":"num","type":["null",{"type":"bytes","logicalType":"decimal","precision":8,"scale":3},"string"]},
		{"name":"nested","type":["null",{"type":"record","name":"Inner","fields":[{"name":"x","type":"int"},{"name":"y","type":["null","string"]}]}]},
		{"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line","fields":[{"name":"k","type":"string"},{"name":"v","type":["null","double"]}]}}},
		{"name":"m","type":{"type":"map","values":"string"}}`
	env := mustParse(t, `{"type":"record","name":"Envelope","namespace":"x","fields":[
		{"name":"before","type":["null",{"type":"record","name":"Value","fields":[`+rowFields+`]}],"default":null},
		{"name":"after","type":["null","Value"],"default":null},
		{"name":"source","type":{"type":"record","name":"Source","fields":[{"name":"ts_ms","type":"long"},{"name":"table","type":"string"}]}},
		{"name":"op","type":"string"}]}`)
	row := map[string]any{"id": int64(-5), "b": true, "i": -7, "f": float32(1.5), "d": nil, "s": "ünï ✓", "u": "123e4567-e89b-12d3-a456-426614174000",
		"by": []byte{0, 1}, "fx": []byte{1, 2, 3, 4}, "e": "busy", "dt": time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), "tm": 5 * time.Second,
		"ts": time.UnixMicro(-1).UTC(), "dec": rat("-12.34"), "wide": rat("1234567890123456789012345678.0123456789"), "num": rat("1.5"),
		"nested": map[string]any{"x": 1, "y": nil}, "lines": []any{map[string]any{"k": "a", "v": 1.5}, map[string]any{"k": "b", "v": nil}},
		"m": map[string]any{"b": "2", "a": "1"}}
	codec, err := avrobin.Compile(env)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := newShape(env, true)
	if err != nil {
		t.Fatal(err)
	}
	if sh.flatParquet() == nil {
		t.Fatal("no direct reader for the shape")
	}
	pq, _ := sh.parquet()
	src := map[string]any{"ts_ms": int64(1767225600123), "table": "t"}
	for _, e := range []map[string]any{
		{"op": "c", "after": row, "source": src},
		{"op": "d", "before": row, "source": src},
		{"op": "u", "before": copyWith(row, "s", "old"), "after": copyWith(row, "num", nil), "source": src},
		{"op": "t", "source": src},
		{"op": "c", "after": copyWith(copyWith(copyWith(row, "dec", rat("0.5")), "wide", rat("-0.0000000001")), "num", rat("100")), "source": src},
		{"op": "c", "after": copyWith(copyWith(copyWith(row, "dec", rat("-0.05")), "wide", nil), "num", "NaN"), "source": src},
	} {
		body, err := codec.Encode(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		r := &connect.Record{Partition: 3, Offset: 77, Headers: []elog.Header{{Key: connect.HeaderPosition, Value: []byte{9, 8}}}}
		direct, _, derr := sh.directRow(body, r)
		o, _, err := sh.rawRow(body, r)
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := pq.Row(nil, o)
		if (derr != nil) != (err != nil) {
			t.Fatalf("%s: read straight into Parquet: %v; the value path: %v", e["op"], derr, err)
		}
		levels := func(row parquet.Row) string {
			var b strings.Builder
			for _, v := range row {
				fmt.Fprintf(&b, "%d/%d/%d:%v ", v.Column(), v.RepetitionLevel(), v.DefinitionLevel(), v)
			}
			return b.String()
		}
		if derr == nil && levels(direct.Row) != levels(want) {
			t.Fatalf("%s: read straight into Parquet\n%s\nthe value path\n%s", e["op"], levels(direct.Row), levels(want))
		}
		// And as JSON lines.
		if sh.flatJSON() == nil {
			t.Fatal("no direct JSON reader for the shape")
		}
		line, _, err := sh.directJSON(body, r)
		if err != nil {
			t.Fatalf("%s: %v", e["op"], err)
		}
		o, _, err = sh.rawRow(body, r)
		if err != nil {
			t.Fatal(err)
		}
		wantLine, err := avrobin.AppendJSON(nil, o, sh.out)
		if err != nil {
			t.Fatal(err)
		}
		if string(line.b) != string(wantLine)+"\n" {
			t.Fatalf("%s: rendered straight as JSON\n%s\nthe value path\n%s", e["op"], line.b, wantLine)
		}
	}
}

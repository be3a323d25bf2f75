package mysql

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
	"github.com/eddy-cdc/eddy/internal/testdb"
)

// build builds mysql-source on params, as connector name.
func build(t *testing.T, params map[string]any, name string) *Source {
	t.Helper()
	return buildWith(t, params, name, nil)
}

// buildWith builds mysql-source with a history (nil: none).
func buildWith(t *testing.T, params map[string]any, name string, history func() (connect.History, error)) *Source {
	t.Helper()
	cat, err := connect.BuiltinCatalog()
	if err != nil {
		t.Fatal(err)
	}
	p, err := connect.NewParams(cat.Plugin("mysql-source"), params)
	if err != nil {
		t.Fatal(err)
	}
	src, err := New(p, connect.Env{Connector: name, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), History: history})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src.(*Source)
}

// openSource builds and opens mysql-source on params at position.
func openSource(t *testing.T, params map[string]any, position []byte) *Source {
	t.Helper()
	src := build(t, params, "test")
	if err := src.Open(context.Background(), position); err != nil {
		t.Fatalf("open: %v", err)
	}
	return src
}

// pollN polls until n records with a topic came (position markers are
// skipped), or fails after a minute.
func pollN(t *testing.T, src *Source, n int) []connect.Record {
	t.Helper()
	var out []connect.Record
	deadline := time.Now().Add(time.Minute)
	for len(out) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d records after a minute, want %d", len(out), n)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		recs, err := src.Poll(ctx)
		timedOut := ctx.Err() != nil
		cancel()
		if err != nil && !timedOut {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Topic != "" {
				r.Key, r.Value = avrobin.Plain(r.Key), avrobin.Plain(r.Value) // the stream's are ordered records
				out = append(out, r)
			}
		}
	}
	return out
}

const everyTypeDDL = `create table every_type (
	id int primary key,
	ti tinyint, tiu tinyint unsigned, si smallint, siu smallint unsigned, mi mediumint, miu mediumint unsigned,
	i int, iu int unsigned, bi bigint, biu bigint unsigned,
	d65 decimal(65,30), d52 decimal(5,2), f float, db double,
	b1 bit(1), b10 bit(10), b64 bit(64), bo bool, y year,
	dt date, dz date not null default '2000-01-01', tm time(6), tm0 time, dtm datetime(6), dtm0 datetime, ts timestamp(3) null,
	c char(5), vc varchar(100), tx mediumtext, l1 varchar(20) character set latin1, bn binary(4), vb varbinary(10), bl blob,
	e enum('a','b','c'), st set('x','y','z'), j json, g geometry,
	gv int as (ti * 2) virtual, gs varchar(110) as (concat(vc, '!')) stored)`

// everyTypeRows are three rows from id base+1: extremes and every kind of
// value, all NULL, and MySQL's zero dates.
func everyTypeRows(base int) []string {
	return []string{
		"set session sql_mode = ''", // zero dates allowed, as older applications write them
		fmt.Sprintf(`insert into every_type (id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, d65, d52, f, db, b1, b10, b64, bo, y,
			dt, dz, tm, tm0, dtm, dtm0, ts, c, vc, tx, l1, bn, vb, bl, e, st, j, g) values
			(%d, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
			'12345678901234567890123456789012345.123456789012345678901234567891', -999.99, 1.5, -2.25e300,
			1, b'1000000011', x'ffffffffffffffff', true, 2155,
			'9999-12-31', '0000-00-00', '-838:59:59.000000', '838:59:59', '2024-02-29 13:14:15.123456', '1000-01-01 00:00:00', '2038-01-19 03:14:07.499',
			'ab', 'ünïcødé ☃ 😀', repeat('x☃', 20000), 'café €', x'0102', x'00ff', x'deadbeef',
			'b', 'x,z', '{"a": [1, 2.5, "x"], "b": null}', ST_GeomFromText('POINT(1 2)', 4326))`, base+1),
		fmt.Sprintf("insert into every_type (id) values (%d)", base+2),
		fmt.Sprintf(`insert into every_type (id, ti, biu, dt, dz, tm, dtm, ts, vc, e, st) values (%d, 0, 0, '0000-00-00', '0000-00-00', '00:00:00',
			'0000-00-00 00:00:00', '0000-00-00 00:00:00', '', '', '')`, base+3),
	}
}

// render writes a decoded value for comparison.
func render(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case *big.Rat:
		return x.FloatString(30)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []byte:
		return "0x" + hex.EncodeToString(x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+":"+render(x[k]))
		}
		return "{" + strings.Join(parts, " ") + "}"
	case string:
		if len(x) > 60 {
			return fmt.Sprintf("%q…(%d bytes)", x[:20], len(x))
		}
		return fmt.Sprintf("%q", x)
	}
	return fmt.Sprintf("%T(%v)", v, v)
}

// after is a record's after-image, rendered per field, the id left out.
func after(t *testing.T, r connect.Record) map[string]string {
	t.Helper()
	img, ok := r.Value.(map[string]any)["after"].(map[string]any)
	if !ok {
		t.Fatalf("record without an after-image: %v", r.Value)
	}
	out := map[string]string{}
	for k, v := range img {
		if k != "id" {
			out[k] = render(v)
		}
	}
	return out
}

// Every type, read by the snapshot and decoded from the binlog: the same
// values and the same schema both ways, and the values Debezium gives.
func TestTypesBothPaths(t *testing.T) {
	params := origin(t, append([]string{everyTypeDDL}, everyTypeRows(0)...), "every_type")
	src := openSource(t, params, nil)
	snap := pollN(t, src, 3)
	testdb.MariaExec(t, originDB(params), everyTypeRows(100)...)
	stream := pollN(t, src, 3)
	for i := range 3 {
		if got, want := stream[i].ValueSchema.String(), snap[i].ValueSchema.String(); got != want {
			t.Errorf("row %d: the stream's schema differs from the snapshot's:\n  stream   %s\n  snapshot %s", i+1, got, want)
		}
		s, b := after(t, snap[i]), after(t, stream[i])
		for k, v := range s {
			if b[k] != v {
				t.Errorf("row %d %s: snapshot %s, binlog %s", i+1, k, v, b[k])
			}
		}
	}
	want := map[string]string{
		"ti": "int32(-128)", "tiu": "int32(255)", "si": "int32(-32768)", "siu": "int32(65535)", "mi": "int32(-8388608)", "miu": "int32(16777215)",
		"i": "int32(-2147483648)", "iu": "int64(4294967295)", "bi": "int64(-9223372036854775808)", "biu": "18446744073709551615.000000000000000000000000000000",
		"d65": "12345678901234567890123456789012345.123456789012345678901234567891", "d52": "-999.990000000000000000000000000000",
		"f": "float32(1.5)", "db": "float64(-2.25e+300)", "b1": "bool(true)", "b10": "0x0302", "b64": "0xffffffffffffffff", "bo": "int32(1)", "y": "int32(2155)",
		"dt": "9999-12-31T00:00:00Z", "dz": "1970-01-01T00:00:00Z", "tm": "int64(-3020399000000)", "tm0": "int64(3020399000000)",
		"dtm": "2024-02-29T13:14:15.123456Z", "dtm0": "1000-01-01T00:00:00Z", "ts": "2038-01-19T03:14:07.499Z",
		"c": `"ab"`, "vc": `"ünïcødé ☃ 😀"`, "l1": `"café €"`, "bn": "0x01020000", "vb": "0x00ff", "bl": "0xdeadbeef",
		"e": `"b"`, "st": `"x,z"`, "j": `"{\"a\": [1, 2.5, \"x\"], \"b\": null}"`,
		"g": "{srid:int32(4326) wkb:0x0101000000000000000000f03f0000000000000040}", "gv": "int32(-256)", "gs": `"ünïcødé ☃ 😀!"`,
	}
	got := after(t, snap[0])
	for k, v := range want {
		if got[k] != v {
			t.Errorf("row 1 %s: got %s, want %s", k, got[k], v)
		}
	}
	if !strings.HasPrefix(got["tx"], `"x☃x☃`) || !strings.HasSuffix(got["tx"], "(80000 bytes)") {
		t.Errorf("row 1 tx: %s", got["tx"])
	}
	for k, v := range after(t, snap[1]) {
		if v != "NULL" && k != "dz" {
			t.Errorf("row 2 %s: %s, want NULL", k, v)
		}
	}
	zero := after(t, snap[2])
	for k, v := range map[string]string{"dt": "NULL", "dz": "1970-01-01T00:00:00Z", "tm": "int64(0)", "dtm": "NULL", "ts": "NULL", "biu": "0.000000000000000000000000000000", "e": `""`, "st": `""`} {
		if zero[k] != v {
			t.Errorf("row 3 %s: got %s, want %s", k, zero[k], v)
		}
	}
}

// Every type again, with no column metadata in the binlog
// (binlog_row_metadata=MINIMAL): the table is created mid-stream, so its
// rows are decoded with the columns parsed from its CREATE TABLE, and
// they must equal what a snapshot reads, schema and values.
func TestTypesFromHistory(t *testing.T) {
	testdb.MariaBinlogExclusive(t)
	testdb.MariaExec(t, "", "set global binlog_row_metadata = 'MINIMAL'")
	t.Cleanup(func() { testdb.MariaExec(t, "", "set global binlog_row_metadata = 'FULL'") })
	params := origin(t, []string{"create table every_first (id int primary key)"}, "every_*")
	history := historyIn(t)
	src := buildWith(t, params, "test", history)
	if err := src.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	testdb.MariaExec(t, originDB(params), append([]string{everyTypeDDL}, everyTypeRows(0)...)...)
	stream := pollN(t, src, 3)
	reader := buildWith(t, params, "reader", historyIn(t))
	if err := reader.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	snap := pollN(t, reader, 3)
	for i := range 3 {
		if got, want := stream[i].ValueSchema.String(), snap[i].ValueSchema.String(); got != want {
			t.Errorf("row %d: the stream's schema differs from the snapshot's:\n  stream   %s\n  snapshot %s", i+1, got, want)
		}
		s, b := after(t, snap[i]), after(t, stream[i])
		if len(s) != len(b) {
			t.Errorf("row %d: %d fields from the snapshot, %d from the binlog", i+1, len(s), len(b))
		}
		for k, v := range s {
			if b[k] != v {
				t.Errorf("row %d %s: snapshot %s, binlog %s", i+1, k, v, b[k])
			}
		}
	}
}

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	elog "github.com/eddy-cdc/eddy/log"
)

// typeMatrix is one column per type: its SQL type, a literal with an edge
// case, and the value the event carries (Eddy's value model, as the Avro
// converter reads it back).
var typeMatrix = []struct {
	col, typ, literal string
	want              any
}{
	{"c_int2", "int2", "-32768", -32768},
	{"c_int4", "int4", "2147483647", 2147483647},
	{"c_int8", "int8", "-9223372036854775808", int64(math.MinInt64)},
	{"c_oid", "oid", "4294967295", int64(4294967295)},
	{"c_num", "numeric(10,3)", "1234567.891", big.NewRat(1234567891, 1000)},
	{"c_num_nan", "numeric(5,2)", "'NaN'", "NaN"},
	{"c_numu", "numeric", "'-0.000000000000000000000000000001'", "-0.000000000000000000000000000001"},
	{"c_f4", "real", "'NaN'", float32(math.NaN())},
	{"c_f8", "float8", "'-Infinity'", math.Inf(-1)},
	{"c_f8b", "float8", "1.5e300", 1.5e300},
	{"c_money", "money", "12.34", "$12.34"},
	{"c_bool", "bool", "true", true},
	{"c_text", "text", `E'h\u00e9llo\n"x"'`, "héllo\n\"x\""},
	{"c_varchar", "varchar(5)", "'abc'", "abc"},
	{"c_char", "char(3)", "'ab'", "ab "},
	{"c_bytea", "bytea", `'\x00ff10'`, []byte{0, 0xff, 0x10}},
	{"c_date", "date", "'0044-03-15 BC'", time.Date(-43, 3, 15, 0, 0, 0, 0, time.UTC)},
	{"c_date_inf", "date", "'infinity'", time.Unix(math.MaxInt32*86400, 0).UTC()},
	{"c_time", "time", "'24:00:00'", 24 * time.Hour},
	{"c_timetz", "timetz", "'04:05:06.789+02'", "04:05:06.789+02"},
	{"c_ts", "timestamp", "'2024-02-29 13:14:15.123456'", time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)},
	{"c_ts_inf", "timestamp", "'-infinity'", time.UnixMicro(math.MinInt64).UTC()},
	{"c_tstz", "timestamptz", "'2024-02-29 13:14:15.5+05:30'", time.Date(2024, 2, 29, 7, 44, 15, 500000000, time.UTC)},
	{"c_interval", "interval", "'1 year 2 mons 3 days 04:05:06.7'", "1 year 2 mons 3 days 04:05:06.7"},
	{"c_uuid", "uuid", "'7c9e6679-7425-40de-944b-e07fc1f90ae7'", "7c9e6679-7425-40de-944b-e07fc1f90ae7"},
	{"c_json", "json", `'{"a": [1, 2]}'`, `{"a": [1, 2]}`},
	{"c_jsonb", "jsonb", `'{"b": 1, "a": 2}'`, `{"a": 2, "b": 1}`},
	{"c_xml", "xml", "'<a>x</a>'", "<a>x</a>"},
	{"c_inet", "inet", "'192.168.0.1/24'", "192.168.0.1/24"},
	{"c_inet_host", "inet", "'10.1.2.3'", "10.1.2.3"},
	{"c_cidr", "cidr", "'10.0.0.0/8'", "10.0.0.0/8"},
	{"c_macaddr", "macaddr", "'08:00:2b:01:02:03'", "08:00:2b:01:02:03"},
	{"c_bit", "bit(4)", "B'1010'", "1010"},
	{"c_varbit", "varbit", "B'101'", "101"},
	{"c_int_arr", "int[]", "'{1,NULL,3}'", []any{int32(1), nil, int32(3)}},
	{"c_int_2d", "int[][]", "'{{1,2},{3,NULL}}'", []any{[]any{int32(1), int32(2)}, []any{int32(3), nil}}},
	{"c_text_empty_arr", "text[]", "'{}'", []any{}},
	{"c_text_arr", "text[]", `'{"a,b","c\"d",NULL,""}'`, []any{"a,b", `c"d`, nil, ""}},
	{"c_num_arr", "numeric(4,1)[]", "'{1.5,-2.0}'", []any{big.NewRat(3, 2), big.NewRat(-2, 1)}},
	{"c_enum", "mood", "'happy'", "happy"},
	{"c_domain", "posint", "5", int32(5)},
	{"c_composite", "pair", `'(1,"a b")'`, `(1,"a b")`},
	{"c_range", "int4range", "'[1,5)'", "[1,5)"},
	{"c_tsrange", "tstzrange", "'[2024-01-01 00:00+00,infinity)'", `["2024-01-01 00:00:00+00",infinity)`},
	{"c_hstore", "hstore", `'a=>1, "b c"=>NULL'`, map[string]any{"a": "1", "b c": nil}},
	{"c_point", "point", "'(1,2)'", "(1,2)"},
	{"c_box", "box", "'((0,0),(1,1))'", "(1,1),(0,0)"},
}

// Every type round-trips through Avro (and JSON) with its edge cases, the
// same whether the row came through the snapshot or the stream, and NULL
// in every column.
func TestPostgresTypeMatrix(t *testing.T) {
	dsn, conn := testDB(t)
	ctx := context.Background()
	cols := []string{"id int primary key"}
	var names, literals []string
	for _, c := range typeMatrix {
		cols = append(cols, c.col+" "+c.typ)
		names = append(names, c.col)
		literals = append(literals, c.literal)
	}
	setup := `create extension if not exists hstore;
		create type mood as enum ('sad', 'happy');
		create domain posint as int check (value > 0);
		create type pair as (x int, y text);
		create table types (` + strings.Join(cols, ", ") + `);`
	if _, err := conn.Exec(ctx, setup); err != nil {
		t.Fatal(err)
	}
	insert := func(id int) {
		q := fmt.Sprintf("insert into types (id, %s) values (%d, %s)", strings.Join(names, ", "), id, strings.Join(literals, ", "))
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	insert(1) // read by the snapshot
	if _, err := conn.Exec(ctx, "insert into types (id) values (2)"); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [types], topic_prefix: shop}
  - name: pgjson
    plugin: postgres-source
    config: {dsn: %q, tables: [types], topic_prefix: js, format: json}
`, dsn, dsn))
	time.Sleep(500 * time.Millisecond)
	insert(3) // streamed
	cs := p.waitChanges(t, "shop.public.types", 3)
	for _, c := range cs {
		switch c.key {
		case 2:
			for _, tc := range typeMatrix {
				if v := c.after[tc.col]; v != nil {
					t.Errorf("NULL %s came as %#v", tc.col, v)
				}
			}
			continue
		case 1, 3:
		default:
			t.Fatalf("key %d", c.key)
		}
		how := map[int64]string{1: "snapshot", 3: "stream"}[c.key]
		for _, tc := range typeMatrix {
			if got := c.after[tc.col]; !sameValue(got, tc.want) {
				t.Errorf("%s: %s %s = %s: got %#v, want %#v", how, tc.col, tc.typ, tc.literal, got, tc.want)
			}
		}
	}
	// The JSON connector writes the same values as JSON.
	tp, err := p.log.Topic("js.public.types")
	for deadline := time.Now().Add(20 * time.Second); err != nil && time.Now().Before(deadline); tp, err = p.log.Topic("js.public.types") {
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	part, _ := tp.Partition(0)
	for deadline := time.Now().Add(20 * time.Second); part.HighWatermark() < 3 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	res, _ := part.Fetch(0, 1<<20)
	recs, _ := elog.DecodeBatches(nil, res.Data, 0)
	if len(recs) < 3 {
		t.Fatalf("%d JSON records", len(recs))
	}
	var ev struct {
		After map[string]json.RawMessage `json:"after"`
	}
	if err := json.Unmarshal(recs[0].Value, &ev); err != nil {
		t.Fatalf("not JSON: %s", recs[0].Value)
	}
	for col, want := range map[string]string{
		"c_num": `"1234567.891"`, "c_int8": "-9223372036854775808", "c_f4": `"NaN"`, "c_bytea": `"AP8Q"`,
		"c_int_arr": "[1,null,3]", "c_hstore": `{"a":"1","b c":null}`, "c_ts": `"2024-02-29T13:14:15.123456Z"`, "c_time": "86400000000",
	} {
		if got := string(ev.After[col]); got != want {
			t.Errorf("JSON %s = %s, want %s", col, got, want)
		}
	}
}

func sameValue(got, want any) bool {
	switch w := want.(type) {
	case *big.Rat:
		g, ok := got.(*big.Rat)
		return ok && g.Cmp(w) == 0
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Equal(w)
	case float32:
		g, ok := got.(float32)
		return ok && (g == w || (math.IsNaN(float64(g)) && math.IsNaN(float64(w))))
	case int:
		return reflect.DeepEqual(got, w) || reflect.DeepEqual(got, int32(w))
	case int32: // Avro int reads back as int
		return reflect.DeepEqual(got, w) || reflect.DeepEqual(got, int(w))
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameValue(g[i], w[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(got, want)
}

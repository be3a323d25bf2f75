package sql

import (
	"bytes"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
)

// rawEnvelope is an envelope with a field of every type the raw path
// renders.
var rawEnvelope = envelopeSchema("shop.public.t", `
		{"name":"id","type":"long"},
		{"name":"i","type":["null","int"]},
		{"name":"b","type":["null","boolean"]},
		{"name":"f","type":["null","float"]},
		{"name":"d","type":["null","double"]},
		{"name":"s","type":["null","string"]},
		{"name":"by","type":["null","bytes"]},
		{"name":"dec","type":["null",{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}]},
		{"name":"dec0","type":["null",{"type":"bytes","logicalType":"decimal","precision":10,"scale":0}]},
		{"name":"bigdec","type":["null",{"type":"bytes","logicalType":"decimal","precision":38,"scale":10}]},
		{"name":"fixdec","type":["null",{"type":"fixed","name":"FD","size":9,"logicalType":"decimal","precision":20,"scale":4}]},
		{"name":"day","type":["null",{"type":"int","logicalType":"date"}]},
		{"name":"day_ts","type":["null",{"type":"int","logicalType":"date"}]},
		{"name":"tsm","type":["null",{"type":"long","logicalType":"timestamp-millis"}]},
		{"name":"tsu","type":["null",{"type":"long","logicalType":"timestamp-micros"}]},
		{"name":"lts","type":["null",{"type":"long","logicalType":"local-timestamp-micros"}]},
		{"name":"tm","type":["null",{"type":"int","logicalType":"time-millis"}]},
		{"name":"tu","type":["null",{"type":"long","logicalType":"time-micros"}]},
		{"name":"u","type":["null",{"type":"string","logicalType":"uuid"}]},
		{"name":"nd","type":["null",{"type":"bytes","logicalType":"decimal","precision":12,"scale":3},"string"]}`)

// envelopeSchema is a Debezium envelope in namespace whose row (Value)
// has the fields given.
func envelopeSchema(namespace, fields string) string {
	return `{"type":"record","name":"Envelope","namespace":"` + namespace + `","fields":[
	{"name":"before","type":["null",{"type":"record","name":"Value","fields":[` + fields + `
	]}],"default":null},
	{"name":"after","type":["null","Value"],"default":null},
	{"name":"source","type":{"type":"record","name":"Source","fields":[
		{"name":"name","type":"string"},
		{"name":"lsn","type":["null","long"]},
		{"name":"schema","type":"string"},
		{"name":"table","type":["null","string"]},
		{"name":"tags","type":{"type":"map","values":"string"}}
	]}},
	{"name":"op","type":"string"},
	{"name":"ts_ms","type":["null","long"]}
]}`
}

// rawCols are target column types, as the sink creates them or reads
// them back from a table someone else made.
var rawCols = map[string]string{"id": "bigint", "i": "integer", "b": "boolean", "f": "real", "d": "double precision", "s": "text",
	"by": "bytea", "dec": "numeric(12,2)", "dec0": "numeric(10,0)", "bigdec": "numeric(38,10)", "fixdec": "numeric(20,4)",
	"day": "date", "day_ts": "timestamp", "tsm": "timestamptz", "tsu": "timestamp with time zone", "lts": "timestamp", "tm": "time", "tu": "time", "u": "uuid", "nd": "numeric"}

// randomRow is an after-image in hamba/avro's form (unions wrapped),
// with the awkward values often.
func randomRow(rng *rand.Rand, id int64) map[string]any {
	pick := func(vals ...any) any { return vals[rng.IntN(len(vals))] }
	wrap := func(branch string, v any) any {
		if rng.IntN(8) == 0 {
			return nil
		}
		return map[string]any{branch: v}
	}
	ratOf := func(unscaled *big.Int, scale int) *big.Rat {
		return new(big.Rat).SetFrac(unscaled, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil))
	}
	unscaled := func(max int64) *big.Int {
		v := big.NewInt(rng.Int64N(max))
		if rng.IntN(2) == 0 {
			v.Neg(v)
		}
		return v
	}
	bigUnscaled := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(rng.IntN(37))), nil)
	bigUnscaled.Add(bigUnscaled, big.NewInt(rng.Int64()))
	if rng.IntN(2) == 0 {
		bigUnscaled.Neg(bigUnscaled)
	}
	day := pick(time.Unix(int64(rng.IntN(40000)-20000)*86400, 0).UTC(), time.Unix(math.MaxInt32*86400, 0).UTC(), time.Unix(math.MinInt32*86400, 0).UTC(),
		time.Unix(-800000*86400, 0).UTC())
	tsu := pick(time.UnixMicro(rng.Int64N(4e15)-2e15).UTC(), time.UnixMicro(math.MaxInt64).UTC(), time.UnixMicro(math.MinInt64).UTC(), time.Unix(1700000000, 0).UTC())
	s := pick("plain", "", "tab\there", "new\nline\r", `back\slash`, "naïve ☃", "\\N")
	return map[string]any{
		"id":     id,
		"i":      wrap("int", pick(0, -1, math.MaxInt32, math.MinInt32, rng.IntN(1000))),
		"b":      wrap("boolean", rng.IntN(2) == 0),
		"f":      wrap("float", pick(float32(1.5), float32(math.NaN()), float32(math.Inf(-1)), float32(rng.Float64()*1e10), float32(1e-40))),
		"d":      wrap("double", pick(0.1, math.NaN(), math.Inf(1), rng.NormFloat64()*1e300, math.Copysign(0, -1), 5e-324)),
		"s":      wrap("string", s),
		"by":     wrap("bytes", pick([]byte{}, []byte{0, '\\', '\t', 0xff}, []byte("abc"))),
		"dec":    wrap("bytes.decimal", ratOf(unscaled(1e12), 2)),
		"dec0":   wrap("bytes.decimal", ratOf(unscaled(1e10), 0)),
		"bigdec": wrap("bytes.decimal", ratOf(bigUnscaled, 10)),
		"fixdec": wrap("shop.public.t.FD", ratOf(unscaled(math.MaxInt64), 4)),
		"day":    wrap("int.date", day),
		"day_ts": wrap("int.date", day),
		"tsm":    wrap("long.timestamp-millis", time.UnixMilli(rng.Int64N(4e12)-2e12).UTC()),
		"tsu":    wrap("long.timestamp-micros", tsu),
		"lts":    wrap("long.local-timestamp-micros", time.UnixMicro(rng.Int64N(4e15)-2e15).UTC()),
		"tm":     wrap("int.time-millis", time.Duration(rng.Int64N(86400000))*time.Millisecond),
		"tu":     wrap("long.time-micros", time.Duration(rng.Int64N(86400000000))*time.Microsecond),
		"u":      wrap("string.uuid", pick("0b7f2a8e-8c1a-4d0f-9a3b-6f1e2d3c4b5a", "{0B7F2A8E8C1A4D0F-9A3B6F1E2D3C4B5A}", "0b7f2a8e8c1a4d0f9a3b6f1e2d3c4b5a")),
		"nd": pick(wrap("bytes.decimal", ratOf(unscaled(1e12), 3)),
			wrap("string", pick("NaN", "Infinity", "-Infinity", "nan", " inf ", "1.50", "-0.000", "0", "1e3", "1.5E-3", "-12.3400e2", ".5", "5.", "+007.250", "123456789012345678901234567890.000000000000001"))),
	}
}

// TestRawRowsRenderAsDecodedRows checks the raw path against the value
// path: for random envelopes, the COPY text rendered from the Avro bytes
// equals the text of the decoded row, byte for byte.
func TestRawRowsRenderAsDecodedRows(t *testing.T) {
	schema, err := avro.ParseWithCache(rawEnvelope, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	env := avrobin.CompileEnvelope(schema)
	if env == nil {
		t.Fatal("the envelope does not compile for the raw path")
	}
	rt, ok := avrobin.CompileCopyText(env.After(), rawCols)
	if !ok {
		t.Fatal("the row does not compile for the raw path")
	}
	var names []string
	for _, f := range env.After().Fields() {
		names = append(names, f.Name())
	}
	p := &Postgres{}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 3000 {
		row := randomRow(rng, int64(n))
		op := []string{"c", "u", "r"}[n%3]
		body, err := avro.Marshal(schema, map[string]any{
			"before": nil, "after": map[string]any{"shop.public.t.Value": row},
			"source": map[string]any{"name": "pg", "lsn": map[string]any{"long": int64(n)}, "schema": "public", "table": map[string]any{"string": "t"}, "tags": map[string]any{"a": "b"}},
			"op":     op, "ts_ms": nil,
		})
		if err != nil {
			t.Fatal(err)
		}
		sc, err := env.Scan(new(avrobin.Reader), body)
		if err != nil {
			t.Fatalf("row %d: scan: %v", n, err)
		}
		if string(sc.Op) != op || string(sc.Schema) != "public" || string(sc.Table) != "t" || sc.After == nil {
			t.Fatalf("row %d: scanned op %q schema %q table %q", n, sc.Op, sc.Schema, sc.Table)
		}
		got, err := rt.Append(new(avrobin.Reader), nil, sc.After)
		if err != nil {
			t.Fatalf("row %d: render: %v", n, err)
		}
		av, err := connect.NewAvroValue(schema, 1, body)
		if err != nil {
			t.Fatal(err)
		}
		c := change{raw: sc.After, val: av}
		if err := c.decodeRow(); err != nil {
			t.Fatal(err)
		}
		want, err := p.renderer(nil, names, &targetTable{cols: rawCols})(nil, &c)
		if err != nil {
			t.Fatalf("row %d: render decoded: %v", n, err)
		}
		if !bytes.Equal(got, want) {
			gf, wf := bytes.Split(got, []byte("\t")), bytes.Split(want, []byte("\t"))
			for i := range min(len(gf), len(wf)) {
				if !bytes.Equal(gf[i], wf[i]) {
					t.Errorf("row %d column %s: raw %q, decoded %q", n, names[i], gf[i], wf[i])
				}
			}
			t.Fatalf("row %d: raw and decoded rows differ:\nraw     %q\ndecoded %q", n, got, want)
		}
	}
}

// A schema with a field the raw path does not render, or a value that is
// not an envelope, goes the decoded way.
func TestRawPathDeclines(t *testing.T) {
	withArray := `{"type":"record","name":"E","fields":[
		{"name":"after","type":["null",{"type":"record","name":"V","fields":[{"name":"id","type":"long"},{"name":"tags","type":{"type":"array","items":"string"}}]}]},
		{"name":"op","type":"string"}]}`
	s, err := avro.ParseWithCache(withArray, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	env := avrobin.CompileEnvelope(s)
	if env == nil {
		t.Fatal("an envelope with an array field should still scan")
	}
	if _, ok := avrobin.CompileCopyText(env.After(), map[string]string{"id": "bigint", "tags": "jsonb"}); ok {
		t.Fatal("an array field compiled for the raw path")
	}
	flat, err := avro.ParseWithCache(`{"type":"record","name":"F","fields":[{"name":"id","type":"long"},{"name":"__deleted","type":"string"}]}`, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	if avrobin.CompileEnvelope(flat) != nil {
		t.Fatal("a flattened record compiled as an envelope")
	}
}

func FuzzEnvelopeScan(f *testing.F) {
	schema, err := avro.ParseWithCache(rawEnvelope, "", &avro.SchemaCache{})
	if err != nil {
		f.Fatal(err)
	}
	env := avrobin.CompileEnvelope(schema)
	rt, _ := avrobin.CompileCopyText(env.After(), rawCols)
	body, _ := avro.Marshal(schema, map[string]any{"before": nil, "after": map[string]any{"shop.public.t.Value": randomRow(rand.New(rand.NewPCG(3, 4)), 7)},
		"source": map[string]any{"name": "pg", "lsn": nil, "schema": "public", "table": nil, "tags": map[string]any{}}, "op": "c", "ts_ms": nil})
	f.Add(body)
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, err := env.Scan(new(avrobin.Reader), b)
		if err == nil && sc.After != nil {
			rt.Append(new(avrobin.Reader), nil, sc.After)
		}
	})
}

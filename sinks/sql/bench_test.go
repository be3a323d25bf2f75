package sql

import (
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
	elog "github.com/eddy-cdc/eddy/log"
)

// benchEnvelope is the envelope of the integration benchmark's 10-column
// table as postgres-source writes it.
var benchEnvelope = envelopeSchema("shop.public.wide", `
		{"name":"id","type":"long"},
		{"name":"a","type":["null","int"]},
		{"name":"b","type":["null","long"]},
		{"name":"c","type":["null","string"]},
		{"name":"d","type":["null","string"]},
		{"name":"e","type":["null",{"type":"bytes","logicalType":"decimal","precision":12,"scale":2},"string"]},
		{"name":"f","type":["null",{"type":"long","logicalType":"timestamp-micros"}]},
		{"name":"g","type":["null","boolean"]},
		{"name":"h","type":["null","double"]},
		{"name":"i","type":["null","string"]}`)

// BenchmarkRawChangesAndCopy is postgres-sink's own work on a batch of
// 60,000 created rows, as the runtime hands them over (keys and values
// raw): collapsing them into changes, and rendering them for a
// binary COPY. It reports ns and allocations per record.
func BenchmarkRawChangesAndCopy(b *testing.B) {
	schema, err := avro.ParseWithCache(benchEnvelope, "", &avro.SchemaCache{})
	if err != nil {
		b.Fatal(err)
	}
	keySchema, err := avro.ParseWithCache(`{"type":"record","name":"Key","namespace":"shop.public.wide","fields":[{"name":"id","type":"long"}]}`, "", &avro.SchemaCache{})
	if err != nil {
		b.Fatal(err)
	}
	const n = 60000
	recs := make([]connect.Record, n)
	for i := range recs {
		body, err := avro.Marshal(schema, map[string]any{
			"before": nil,
			"after": map[string]any{"shop.public.wide.Value": map[string]any{
				"id": int64(i), "a": map[string]any{"int": i % 1000}, "b": map[string]any{"long": int64(i) * 7},
				"c": map[string]any{"string": fmt.Sprintf("%032x", i)}, "d": map[string]any{"string": "constant"},
				"e": map[string]any{"bytes.decimal": big.NewRat(int64(i), 3).SetFrac64(int64(i)*100/3, 100)},
				"f": map[string]any{"long.timestamp-micros": time.Now().UTC()}, "g": map[string]any{"boolean": i%2 == 0},
				"h": map[string]any{"double": float64(i) * 1.5}, "i": map[string]any{"string": "xxxxxxxxxxxxxxxxxxxx"}}},
			"source": map[string]any{"name": "pg", "lsn": map[string]any{"long": int64(i)}, "schema": "public", "table": map[string]any{"string": "wide"}, "tags": map[string]any{}},
			"op":     "r", "ts_ms": nil,
		})
		if err != nil {
			b.Fatal(err)
		}
		v, err := connect.NewAvroValue(schema, 1, body)
		if err != nil {
			b.Fatal(err)
		}
		kb, err := avro.Marshal(keySchema, map[string]any{"id": int64(i)})
		if err != nil {
			b.Fatal(err)
		}
		k, err := connect.NewAvroValue(keySchema, 2, kb)
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = connect.Record{Topic: "shop.public.wide", Key: k, Value: v, ValueSchema: schema, Offset: int64(i),
			Headers: []elog.Header{{Key: connect.HeaderPosition, Value: []byte(fmt.Sprintf("%016x", i))}}}
	}
	s := &Postgres{sinkBase: newBase(connect.Params{}, connect.Env{Connector: "c"}, pgRecordFault), renderers: map[rendererKey]rowRenderers{}}
	s.template, s.pkMode, s.mode = "${schema}_${table}", "record_key", "upsert"
	t := &targetTable{cols: map[string]string{"id": "bigint", "a": "integer", "b": "bigint", "c": "text", "d": "text", "e": "numeric(12,2)",
		"f": "timestamptz", "g": "boolean", "h": "double precision", "i": "text"}}
	var buf []byte
	var rd avrobin.Reader
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		cs, err := s.changes(recs)
		if err != nil || len(cs) != n {
			b.Fatalf("%d changes: %v", len(cs), err)
		}
		ptrs := make([]*change, len(cs))
		for i := range cs {
			ptrs[i] = &cs[i]
		}
		rb := s.binaryRenderer(ptrs, t)
		if rb == nil {
			b.Fatal("no binary renderer")
		}
		buf = buf[:0]
		for _, c := range ptrs {
			if buf, err = rb.Append(&rd, buf, c.raw); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
	b.ReportMetric(float64(testing.AllocsPerRun(1, func() { s.changes(recs) }))/n, "allocs/record")
}

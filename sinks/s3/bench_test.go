package s3

import (
	"context"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
	"github.com/eddy-cdc/eddy/internal/testdb"
	elog "github.com/eddy-cdc/eddy/log"
)

// BenchmarkWrite is the sink's own share of the work (rows to files to
// the store) on change events of a table of 10 columns, flattened, as the
// runtime hands them over: the log's Avro bytes (raw, as this sink asks
// for them), or decoded (when the connector has transforms):
//
//	go test -run '^$' -bench Write -benchtime 300000x ./sinks/s3/
func BenchmarkWrite(b *testing.B) {
	for _, format := range []string{"parquet", "jsonl"} {
		for _, raw := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/raw=%v", format, raw), func(b *testing.B) { benchWrite(b, format, raw) })
		}
	}
}

func benchWrite(b *testing.B, format string, raw bool) {
	srv := testdb.NewS3Server(b)
	bucket := srv.Bucket(fmt.Sprint("bench-", format))
	s, _ := testSink(b, srv, bucket, map[string]any{"format": format, "flatten": true, "flush_records": 100000, "flush_bytes": 134217728})
	env := mustParse(b, benchEnvelope)
	codec, err := avrobin.Compile(env)
	if err != nil {
		b.Fatal(err)
	}
	const distinct = 4096
	vals := make([]*connect.AvroValue, distinct)
	for j := range vals {
		body, err := codec.Encode(nil, benchChange(int64(j)))
		if err != nil {
			b.Fatal(err)
		}
		if vals[j], err = connect.NewAvroValue(env, 1, body); err != nil {
			b.Fatal(err)
		}
	}
	recs := make([]connect.Record, 2000)
	b.ResetTimer()
	for i := 0; i < b.N; i += len(recs) {
		n := min(len(recs), b.N-i)
		for j := range n {
			off := int64(i + j)
			recs[j] = connect.Record{Topic: "bench.public.events", Offset: off, Timestamp: time.UnixMilli(1767225600000),
				Headers: []elog.Header{{Key: connect.HeaderPosition, Value: []byte{1, 2, 3, byte(j)}}}}
			if raw {
				recs[j].Value = vals[off%distinct]
			} else {
				recs[j].Value, recs[j].ValueSchema = benchChange(off), env
			}
		}
		if err := s.Write(context.Background(), recs[:n]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

const benchEnvelope = `{"type":"record","name":"Envelope","namespace":"bench.public.events","fields":[
	{"name":"before","type":["null",{"type":"record","name":"Value","fields":[
		{"name":"id","type":"long"},{"name":"a","type":"int"},{"name":"b","type":["null","long"],"default":null},
		{"name":"c","type":["null","double"],"default":null},
		{"name":"d","type":["null",{"type":"bytes","logicalType":"decimal","precision":12,"scale":2},"string"],"default":null},
		{"name":"e","type":["null","string"],"default":null},{"name":"f","type":["null","string"],"default":null},
		{"name":"g","type":["null","boolean"],"default":null},
		{"name":"h","type":["null",{"type":"long","logicalType":"timestamp-micros"}],"default":null},
		{"name":"i","type":["null",{"type":"int","logicalType":"date"}],"default":null}]}],"default":null},
	{"name":"after","type":["null","Value"],"default":null},
	{"name":"source","type":{"type":"record","name":"Source","namespace":"io.eddy.postgres","fields":[
		{"name":"version","type":"string"},{"name":"connector","type":"string"},{"name":"name","type":"string"},
		{"name":"ts_ms","type":"long"},{"name":"snapshot","type":["null","string"]},{"name":"db","type":"string"},
		{"name":"schema","type":"string"},{"name":"table","type":"string"},
		{"name":"txId","type":["null","long"],"default":null},{"name":"lsn","type":["null","long"],"default":null}]}},
	{"name":"op","type":"string"},{"name":"ts_ms","type":["null","long"],"default":null}]}`

// benchChange is a snapshot read of row off of the benchmarks' table.
func benchChange(off int64) map[string]any {
	row := map[string]any{"id": off, "a": int(off % 1000), "b": off * 7, "c": float64(off) / 3, "d": big.NewRat(off%100000, 100),
		"e": "8f14e45fceea167a5a36dedd4bea2543", "f": "cat-7", "g": off%2 == 0, "h": time.UnixMicro(1767225600000000 + off), "i": time.Unix(1767225600, 0).UTC()}
	return map[string]any{"before": nil, "after": row, "op": "r", "ts_ms": nil,
		"source": map[string]any{"version": "eddy", "connector": "postgresql", "name": "bench", "ts_ms": int64(1767225600000), "snapshot": "true",
			"db": "b", "schema": "public", "table": "events", "txId": nil, "lsn": nil}}
}

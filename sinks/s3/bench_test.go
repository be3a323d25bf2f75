package s3

import (
	"context"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/testdb"
	elog "github.com/eddy-cdc/eddy/log"
)

// BenchmarkWrite is the sink's own share of the work (rows to files to
// the store), on decoded change events of a table of 10 columns, as the
// runtime hands them over:
//
//	go test -run '^$' -bench Write -benchtime 200000x ./sinks/s3/
func BenchmarkWrite(b *testing.B) {
	for _, format := range []string{"parquet", "jsonl"} {
		b.Run(format, func(b *testing.B) {
			srv := testdb.NewS3Server(b)
			bucket := srv.Bucket(fmt.Sprint("bench-", format))
			s, _ := testSink(b, srv, bucket, map[string]any{"format": format, "flatten": true, "flush_records": 100000, "flush_bytes": 134217728})
			env := mustParse(b, benchEnvelope)
			recs := make([]connect.Record, 2000)
			b.ResetTimer()
			for i := 0; i < b.N; i += len(recs) {
				n := min(len(recs), b.N-i)
				for j := range n {
					off := int64(i + j)
					row := map[string]any{"id": off, "a": int(off % 1000), "b": off * 7, "c": float64(off) / 3, "d": big.NewRat(off%100000, 100),
						"e": "8f14e45fceea167a5a36dedd4bea2543", "f": "cat-7", "g": off%2 == 0, "h": time.UnixMicro(1767225600000000 + off), "i": time.Unix(1767225600, 0).UTC()}
					recs[j] = connect.Record{Topic: "bench.public.events", Offset: off, ValueSchema: env, Timestamp: time.UnixMilli(1767225600000),
						Value: map[string]any{"before": nil, "after": row, "op": "r", "ts_ms": nil,
							"source": map[string]any{"version": "eddy", "connector": "postgresql", "name": "bench", "ts_ms": int64(1767225600000), "snapshot": "true", "db": "b", "schema": "public", "table": "events", "txId": nil, "lsn": nil}},
						Headers: []elog.Header{{Key: connect.HeaderPosition, Value: []byte{1, 2, 3, byte(j)}}}}
				}
				if err := s.Write(context.Background(), recs[:n]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
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

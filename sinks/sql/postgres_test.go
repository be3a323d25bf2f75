package sql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/testdb"
	elog "github.com/eddy-cdc/eddy/log"
)

// testDatabase makes a database of its own on the local PostgreSQL and
// returns its DSN; it is dropped when the test ends.
func testDatabase(t *testing.T) string { return testdb.Postgres(t, "eddy_sqlsink") }

// partsRecords returns a maker of records of table parts (id long, v
// string) as the runtime hands them to a raw sink: record i with op c, u,
// r, d or t (a truncate), keys and values as Avro bytes, position i.
func partsRecords(t *testing.T) func(i int, op string, id int64, v string) connect.Record {
	schema, err := avro.ParseWithCache(envelopeSchema("shop.public.parts", `
		{"name":"id","type":"long"},
		{"name":"v","type":["null","string"]}`), "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	keySchema, err := avro.ParseWithCache(`{"type":"record","name":"Key","namespace":"shop.public.parts","fields":[{"name":"id","type":"long"}]}`, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	return func(i int, op string, id int64, v string) connect.Record {
		var after any
		if op != "t" && op != "d" {
			after = map[string]any{"shop.public.parts.Value": map[string]any{"id": id, "v": map[string]any{"string": v}}}
		}
		body, err := avro.Marshal(schema, map[string]any{"before": nil, "after": after,
			"source": map[string]any{"name": "pg", "lsn": nil, "schema": "public", "table": map[string]any{"string": "parts"}, "tags": map[string]any{}},
			"op":     op, "ts_ms": nil})
		if err != nil {
			t.Fatal(err)
		}
		val, err := connect.NewAvroValue(schema, 1, body)
		if err != nil {
			t.Fatal(err)
		}
		r := connect.Record{Topic: "shop.public.parts", Value: val, ValueSchema: schema, Offset: int64(i),
			Headers: []elog.Header{{Key: connect.HeaderPosition, Value: fmt.Appendf(nil, "%012d", i)}}}
		if op != "t" {
			kb, err := avro.Marshal(keySchema, map[string]any{"id": id})
			if err != nil {
				t.Fatal(err)
			}
			if r.Key, err = connect.NewAvroValue(keySchema, 2, kb); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
}

// openPostgresSink opens a postgres-sink (connector parts) with params,
// logging into logged; it is closed when the test ends.
func openPostgresSink(t *testing.T, params map[string]any, logged io.Writer) connect.Sink {
	t.Helper()
	cat, err := connect.BuiltinCatalog()
	if err != nil {
		t.Fatal(err)
	}
	p, err := connect.NewParams(cat.Plugin("postgres-sink"), params)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := NewPostgres(p, connect.Env{Connector: "parts", Logger: slog.New(slog.NewTextHandler(logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	return sink
}

// A batch large enough to be applied in parts (applyPipelined) ends as
// the records applied one by one would: with keys created in one part and
// updated or deleted in later ones, a truncate in the middle, and rows
// created again after it. The same records in small batches (apply) must
// give the same table.
func TestLargeBatchAppliesInParts(t *testing.T) {
	ctx := context.Background()
	rec := partsRecords(t)
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 5*pipelinePart + 123
	recs := make([]connect.Record, 0, n)
	want := map[int64]string{}
	for i := range n {
		id := rng.Int64N(30000)
		op := []string{"c", "u", "u", "d"}[rng.IntN(4)]
		switch {
		case i == 2*pipelinePart+77:
			op = "t" // in the middle of the third part
		case op != "d" && want[id] == "" || i < pipelinePart:
			op = "c"
		}
		v := fmt.Sprintf("v%d", i)
		switch op {
		case "t":
			clear(want)
		case "d":
			delete(want, id)
		default:
			want[id] = v
		}
		recs = append(recs, rec(i, op, id, v))
	}
	for _, batch := range []int{n, 1000} {
		t.Run(fmt.Sprintf("batches of %d", batch), func(t *testing.T) {
			dsn := testDatabase(t)
			var logged strings.Builder
			sink := openPostgresSink(t, map[string]any{"dsn": dsn, "table": "${table}"}, &logged)
			for start := 0; start < n; start += batch {
				if err := sink.Write(ctx, recs[start:min(start+batch, n)]); err != nil {
					t.Fatal(err)
				}
			}
			if strings.Contains(logged.String(), "failed") { // no batch went the slow way
				t.Fatalf("the sink logged a failure:\n%s", logged.String())
			}
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			rows, _ := conn.Query(ctx, "select id, v from parts")
			got := map[int64]string{}
			for rows.Next() {
				var id int64
				var v string
				if err := rows.Scan(&id, &v); err != nil {
					t.Fatal(err)
				}
				got[id] = v
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Errorf("the table holds %d rows, want %d", len(got), len(want))
			}
			for id, v := range want {
				if got[id] != v {
					t.Fatalf("row %d: %q, want %q", id, got[id], v)
				}
			}
			var next int64
			if err := conn.QueryRow(ctx, "select next_offset from eddy_offsets where connector = 'parts'").Scan(&next); err != nil || next != n {
				t.Fatalf("eddy_offsets says %d (%v), want %d", next, err, n)
			}
		})
	}
}

// batch_size splits a write into transactions that each store their
// offsets; a record the target refuses is reported at its index in the
// whole write, everything before it stored; and when the runtime sends a
// write again after a failure, what the sink stored is passed over. In
// insert mode, where applying a row twice fails, all three show.
func TestBatchSizeAndRetriesAreExactlyOnce(t *testing.T) {
	ctx := context.Background()
	rec := partsRecords(t)
	const n, poison = 5000, 2500
	recs := make([]connect.Record, n)
	for i := range recs {
		v := fmt.Sprintf("v%d", i)
		if i == poison {
			v = "nul \x00 byte" // no PostgreSQL text holds it
		}
		recs[i] = rec(i, "c", int64(i), v)
	}
	dsn := testDatabase(t)
	var logged strings.Builder
	sink := openPostgresSink(t, map[string]any{"dsn": dsn, "table": "${table}", "mode": "insert", "batch_size": 1000}, &logged)
	err := sink.Write(ctx, recs)
	var re *connect.RecordError
	if !errors.As(err, &re) || re.Index != poison {
		t.Fatalf("want the record at %d refused, got %v", poison, err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	state := func() (rows, next int64) {
		t.Helper()
		if err := conn.QueryRow(ctx, "select (select count(*) from parts), (select next_offset from eddy_offsets where connector = 'parts')").Scan(&rows, &next); err != nil {
			t.Fatal(err)
		}
		return rows, next
	}
	if rows, next := state(); rows != poison || next != poison {
		t.Fatalf("after the refusal: %d rows, next offset %d; want %d and %d", rows, next, poison, poison)
	}
	// As the runtime does after a failed write it cannot pin on a record:
	// all of it again. The stored part is passed over; the poison is
	// refused again.
	if err := sink.Write(ctx, recs); !errors.As(err, &re) || re.Index != poison {
		t.Fatalf("the write again: want the record at %d refused, got %v", poison, err)
	}
	if err := sink.Write(ctx, recs[poison+1:]); err != nil {
		t.Fatal(err)
	}
	if rows, next := state(); rows != n-1 || next != n {
		t.Fatalf("at the end: %d rows, next offset %d; want %d and %d", rows, next, n-1, n)
	}
	if err := sink.Write(ctx, recs); err != nil { // all stored (the poison dead-lettered): nothing to do
		t.Fatal(err)
	}
	if rows, next := state(); rows != n-1 || next != n {
		t.Fatalf("after a write of what was stored: %d rows, next offset %d", rows, next)
	}
}

// flush_interval is bounded: the task must hear from its group while it
// waits to fill a batch.
func TestFlushIntervalIsBounded(t *testing.T) {
	cat, err := connect.BuiltinCatalog()
	if err != nil {
		t.Fatal(err)
	}
	for plugin, dsn := range map[string]string{"postgres-sink": "postgres://u@h:1/d", "mysql-sink": "mysql://u@h:1/d"} {
		p, err := connect.NewParams(cat.Plugin(plugin), map[string]any{"dsn": dsn, "flush_interval": "30s"})
		if err != nil {
			t.Fatal(err)
		}
		newSink := map[string]func(connect.Params, connect.Env) (connect.Sink, error){"postgres-sink": NewPostgres, "mysql-sink": NewMySQL}[plugin]
		if _, err := newSink(p, connect.Env{}); err == nil || !strings.Contains(err.Error(), "flush_interval") {
			t.Errorf("%s took flush_interval 30s: %v", plugin, err)
		}
	}
}

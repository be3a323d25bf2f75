package sql

import (
	"bytes"
	"context"
	"maps"
	"math"
	"math/big"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/internal/avrobin"
	"github.com/eddy-cdc/eddy/internal/testdb"
)

// TestBinaryCopyStoresWhatTextCopyStores writes the same random raw rows
// into a real PostgreSQL twice, once through COPY's text format and once
// through its binary format, into tables with the sink's own column types
// and with others (unconstrained numeric, timestamp(3), varchar(n),
// bigint for an Avro int), and requires the stored rows to read back
// alike, as text (so a numeric's display scale counts).
func TestBinaryCopyStoresWhatTextCopyStores(t *testing.T) {
	ctx := context.Background()
	if c, err := net.DialTimeout("tcp", "127.0.0.1:5432", 2*time.Second); err != nil {
		t.Skipf("PostgreSQL is not running (run scripts/test-services.sh): %v", err)
	} else {
		c.Close()
	}
	testdb.PostgresInUse(t)
	conn, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	schema, err := avro.ParseWithCache(rawEnvelope, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	env := avrobin.CompileEnvelope(schema)
	var afters [][]byte
	rng := rand.New(rand.NewPCG(3, 4))
	for n := range 3000 {
		row := randomRow(rng, int64(n))
		if n < len(edgeDecimals) { // decimals whose base-10000 groups are awkward
			if edgeDecimals[n].CmpAbs(big.NewInt(1e10)) < 0 {
				row["dec0"] = map[string]any{"bytes.decimal": new(big.Rat).SetInt(edgeDecimals[n])}
			}
			row["bigdec"] = map[string]any{"bytes.decimal": new(big.Rat).SetFrac(edgeDecimals[n], big.NewInt(1e10))}
		}
		if n%7 == 0 { // a BC date, leap day of 1 BC included
			row["day"] = map[string]any{"int.date": time.Date(-int(rng.IntN(3000)), 2, 28+rng.IntN(2), 0, 0, 0, 0, time.UTC)}
		}
		body, err := avro.Marshal(schema, map[string]any{
			"before": nil, "after": map[string]any{"shop.public.t.Value": row},
			"source": map[string]any{"name": "pg", "lsn": nil, "schema": "public", "table": nil, "tags": map[string]any{}},
			"op":     "c", "ts_ms": nil,
		})
		if err != nil {
			t.Fatal(err)
		}
		sc, err := env.Scan(new(avrobin.Reader), body)
		if err != nil {
			t.Fatal(err)
		}
		afters = append(afters, sc.After)
	}
	other := maps.Clone(rawCols)
	other["i"], other["dec"], other["bigdec"], other["tsu"], other["s"] = "bigint", "numeric", "numeric", "timestamp(3) with time zone", "character varying(40)"
	for name, cols := range map[string]map[string]string{"sink's types": rawCols, "other types": other} {
		t.Run(name, func(t *testing.T) {
			rt, ok := avrobin.CompileCopyText(env.After(), cols)
			if !ok {
				t.Fatal("no text renderer")
			}
			rb, ok := avrobin.CompileCopyBinary(env.After(), cols)
			if !ok {
				t.Fatal("no binary renderer")
			}
			var names, defs []string
			for _, f := range env.After().Fields() {
				names = append(names, pgIdent(f.Name()))
				defs = append(defs, pgIdent(f.Name())+" "+cols[f.Name()])
			}
			for _, tbl := range []string{"via_text", "via_binary"} {
				if _, err := conn.Exec(ctx, "create temp table "+tbl+" ("+strings.Join(defs, ", ")+")"); err != nil {
					t.Fatal(err)
				}
				defer conn.Exec(ctx, "drop table "+tbl)
			}
			var text []byte
			bin := []byte(avrobin.CopyBinaryHeader)
			for _, a := range afters {
				if text, err = rt.Append(new(avrobin.Reader), text, a); err != nil {
					t.Fatal(err)
				}
				if bin, err = rb.Append(new(avrobin.Reader), bin, a); err != nil {
					t.Fatal(err)
				}
			}
			bin = append(bin, avrobin.CopyBinaryTrailer...)
			list := strings.Join(names, ", ")
			if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(text), "copy via_text ("+list+") from stdin"); err != nil {
				t.Fatalf("text copy: %v", err)
			}
			if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(bin), "copy via_binary ("+list+") from stdin with (format binary)"); err != nil {
				t.Fatalf("binary copy: %v", err)
			}
			rows, err := conn.Query(ctx, `select 'binary only', r from (select x::text from via_binary x except all select y::text from via_text y) d(r)
				union all select 'text only', r from (select x::text from via_text x except all select y::text from via_binary y) d(r) limit 10`)
			if err != nil {
				t.Fatal(err)
			}
			diffs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
				var side, row string
				err := r.Scan(&side, &row)
				return side + ": " + row, err
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) > 0 {
				t.Fatalf("the two formats stored different rows:\n%s", strings.Join(diffs, "\n"))
			}
			var n int
			if err := conn.QueryRow(ctx, "select count(*) from via_binary").Scan(&n); err != nil || n != len(afters) {
				t.Fatalf("binary table holds %d rows (%v), want %d", n, err, len(afters))
			}
		})
	}
}

// edgeDecimals are unscaled decimals around base-10000 boundaries.
var edgeDecimals = func() []*big.Int {
	var out []*big.Int
	for _, s := range []string{"0", "1", "-1", "9999", "10000", "-10000", "10001", "99990000", "100000000", "1000000000000",
		"123456789012345678901234567890", "-100000000000000000000000000000000000", "5", "50", "500", "5000", "50000"} {
		v, _ := new(big.Int).SetString(s, 10)
		out = append(out, v)
	}
	out = append(out, big.NewInt(math.MaxInt64), big.NewInt(math.MinInt64))
	return out
}()

// A pairing the binary form does not cover leaves the schema to the text
// format.
func TestBinaryCopyDeclines(t *testing.T) {
	schema, err := avro.ParseWithCache(rawEnvelope, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	env := avrobin.CompileEnvelope(schema)
	for _, c := range [][2]string{{"f", "double precision"}, {"d", "real"}, {"i", "numeric"}, {"s", "jsonb"}, {"tu", "time with time zone"}, {"day", "time"},
		{"u", "bytea"}, {"dec", "numeric(12,2)[]"}, {"s", "character varying(10)[]"}, {"tsu", "timestamp(3) with time zone[]"}} {
		col, typ := c[0], c[1]
		cols := maps.Clone(rawCols)
		cols[col] = typ
		if _, ok := avrobin.CompileCopyBinary(env.After(), cols); ok {
			t.Errorf("%s as %s compiled for binary COPY", col, typ)
		}
	}
	if _, ok := avrobin.CompileCopyBinary(env.After(), rawCols); !ok {
		t.Error("the sink's own types do not compile for binary COPY")
	}
}

package sql

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/connect"
	elog "github.com/eddy-cdc/eddy/log"
)

// A truncate applied in one Write supersedes, in later Writes, the
// records of other partitions from before it, and only those, even though
// the fetched bytes its position came from are overwritten in between.
func TestTruncateOutlivesTheFetchBuffer(t *testing.T) {
	s := newBase(connect.Params{}, connect.Env{Connector: "c"}, pgRecordFault)
	s.template, s.pkMode, s.deletes = "${schema}_${table}", "record_key", true
	buf := []byte{0x01, 5, 0x01, 7, 0x01, 9} // positions as they sit in a fetch
	rec := func(pos []byte, value any) connect.Record {
		return connect.Record{Topic: "shop.public.orders", Key: map[string]any{"id": 1}, Value: value,
			Headers: []elog.Header{{Key: connect.HeaderPosition, Value: pos}}}
	}
	truncate := map[string]any{"op": "t", "source": map[string]any{"schema": "public", "table": "orders"}}
	cs, err := s.changes([]connect.Record{rec(buf[2:4], truncate)})
	if err != nil || len(cs) != 1 || !cs[0].truncate {
		t.Fatalf("changes of a truncate: %v %+v", err, cs)
	}
	s.keepTruncates(map[string][]byte{cs[0].table: cs[0].pos}) // committed
	copy(buf, []byte{0x01, 0xff, 0x01, 0xff, 0x01, 0xff})      // the next fetch reuses the buffer

	row := map[string]any{"op": "c", "after": map[string]any{"id": 1}, "source": map[string]any{"schema": "public", "table": "orders"}}
	cs, err = s.changes([]connect.Record{rec([]byte{0x01, 8}, row)})
	if err != nil || len(cs) != 1 {
		t.Fatalf("a record after the truncate was dropped: %v %+v", err, cs)
	}
	cs, err = s.changes([]connect.Record{rec([]byte{0x01, 6}, row)})
	if err != nil || len(cs) != 0 {
		t.Fatalf("a record before the truncate was kept: %v %+v", err, cs)
	}
}

// A raw key's identity, read from its Avro bytes, is the decoded key's:
// the records of one row collapse alike whichever way their keys came.
func TestRawKeyIdentityIsTheDecodedOne(t *testing.T) {
	s := newBase(connect.Params{}, connect.Env{Connector: "c"}, pgRecordFault)
	schemas := []string{
		`{"type":"record","name":"K1","fields":[{"name":"id","type":"long"}]}`,
		`{"type":"record","name":"K2","fields":[{"name":"n","type":"int"}]}`,
		`{"type":"record","name":"K3","fields":[{"name":"code","type":"string"}]}`,
		`{"type":"record","name":"K4","fields":[{"name":"z","type":"string"},{"name":"a","type":"long"},{"name":"m","type":"int"}]}`,
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, text := range schemas {
		schema, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
		if err != nil {
			t.Fatal(err)
		}
		ident := s.keyIdent(schema)
		if ident == nil {
			t.Fatalf("%s: no raw identity", text)
		}
		for range 200 {
			m := map[string]any{}
			for _, f := range schema.(*avro.RecordSchema).Fields() {
				switch f.Type().Type() {
				case avro.Long:
					m[f.Name()] = rng.Int64() - math.MaxInt64/2
				case avro.Int:
					m[f.Name()] = int(rng.Int32())
				default:
					m[f.Name()] = []string{"", "a", "ü=\x00", "1"}[rng.IntN(4)]
				}
			}
			body, err := avro.Marshal(schema, m)
			if err != nil {
				t.Fatal(err)
			}
			rk, err := connect.NewAvroValue(schema, 1, body)
			if err != nil {
				t.Fatal(err)
			}
			raw := change{table: "t", rawKey: rk, ident: ident}
			got, err := s.appendChangeKey(nil, &raw)
			if err != nil {
				t.Fatal(err)
			}
			key, err := raw.keyMap()
			if err != nil {
				t.Fatal(err)
			}
			want := appendChangeKey(nil, &change{table: "t", key: key})
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: raw identity %q, decoded %q", text, got, want)
			}
		}
	}
	for _, text := range []string{
		`{"type":"record","name":"L","fields":[{"name":"d","type":{"type":"int","logicalType":"date"}}]}`,
		`{"type":"record","name":"U","fields":[{"name":"id","type":["null","long"]}]}`,
		`"long"`,
	} {
		schema, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
		if err != nil {
			t.Fatal(err)
		}
		if s.keyIdent(schema) != nil {
			t.Errorf("%s: read raw, though its decoded identity differs", text)
		}
	}
}

// accepts takes envelopes, flattened rows or either; a record of the other
// kind is refused with a reason rather than written as something else.
func TestAcceptsRefusesTheOtherKind(t *testing.T) {
	envelope := connect.Record{Topic: "shop.public.orders", Key: map[string]any{"id": 1},
		Value: map[string]any{"op": "c", "after": map[string]any{"id": 1}, "source": map[string]any{"schema": "public", "table": "orders"}}}
	flat := connect.Record{Topic: "shop.public.orders", Key: map[string]any{"id": 1}, Value: map[string]any{"id": 1, "v": "x"}}
	for _, c := range []struct {
		accepts       recordKind
		envOK, flatOK bool
	}{{"any", true, true}, {"envelope", true, false}, {"flattened", false, true}} {
		s := newBase(connect.Params{}, connect.Env{Connector: "c"}, pgRecordFault)
		s.template, s.pkMode, s.accepts = "${table}", "record_key", c.accepts
		for _, r := range []struct {
			rec  connect.Record
			ok   bool
			kind string
		}{{envelope, c.envOK, "envelope"}, {flat, c.flatOK, "flattened"}} {
			cs, err := s.changes([]connect.Record{r.rec})
			if r.ok && (err != nil || len(cs) != 1) {
				t.Errorf("accepts %s: a %s record: %v", c.accepts, r.kind, err)
			}
			if !r.ok && (err == nil || !strings.Contains(err.Error(), "accepts "+string(c.accepts))) {
				t.Errorf("accepts %s: a %s record was not refused: %v", c.accepts, r.kind, err)
			}
		}
	}
}

// A change that lacks columns takes them from the same key's earlier
// change in the batch (which the target does not hold yet); the columns
// neither carries stay unavailable, and other keys are untouched.
func TestUnavailableColumnsFilledFromTheBatch(t *testing.T) {
	s := newBase(connect.Params{}, connect.Env{Connector: "c"}, pgRecordFault)
	s.template, s.pkMode, s.deletes = "${schema}_${table}", "record_key", true
	src := map[string]any{"schema": "public", "table": "doc"}
	rec := func(id int, op string, after map[string]any, unavailable string) connect.Record {
		r := connect.Record{Topic: "shop.public.doc", Key: map[string]any{"id": id}, Value: map[string]any{"op": op, "after": after, "source": src}}
		if unavailable != "" {
			r.Headers = []elog.Header{{Key: connect.HeaderUnavailable, Value: []byte(unavailable)}}
		}
		return r
	}
	cs, err := s.changes([]connect.Record{
		rec(1, "c", map[string]any{"id": 1, "n": 0, "body": "big", "b": []byte("blob")}, ""),
		rec(2, "u", map[string]any{"id": 2, "n": 5, "body": "__eddy_unavailable_value", "b": []byte("__eddy_unavailable_value")}, "body,b"),
		rec(1, "u", map[string]any{"id": 1, "n": 1, "body": "__eddy_unavailable_value", "b": []byte("__eddy_unavailable_value")}, "body,b"),
		rec(1, "u", map[string]any{"id": 1, "n": 2, "body": "__eddy_unavailable_value", "b": []byte("new")}, "body"),
		rec(2, "u", map[string]any{"id": 2, "n": 6, "body": "__eddy_unavailable_value", "b": []byte("__eddy_unavailable_value")}, "body,b"),
	})
	if err != nil || len(cs) != 2 {
		t.Fatalf("changes: %v %+v", err, cs)
	}
	one, two := cs[0], cs[1]
	if one.row["n"] != 2 || one.row["body"] != "big" || string(one.row["b"].([]byte)) != "new" || len(one.unavailable) != 0 {
		t.Fatalf("key 1: %v, unavailable %v", one.row, one.unavailable)
	}
	if two.row["n"] != 6 || strings.Join(two.unavailable, ",") != "body,b" {
		t.Fatalf("key 2: %v, unavailable %v", two.row, two.unavailable)
	}
}

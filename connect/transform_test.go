package connect

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/internal/avrobin"
)

const testEnvelope = `{"type":"record","name":"Envelope","namespace":"t.public.orders","fields":[
	{"name":"before","type":["null",{"type":"record","name":"Value","fields":[
		{"name":"id","type":"long"},
		{"name":"customer","type":"string"},
		{"name":"status","type":["null","string"],"default":null},
		{"name":"note","type":"string"},
		{"name":"at","type":{"type":"long","logicalType":"timestamp-micros"}}]}],"default":null},
	{"name":"after","type":["null","Value"],"default":null},
	{"name":"source","type":{"type":"record","name":"Source","fields":[{"name":"table","type":"string"},{"name":"lsn","type":"long"}]}},
	{"name":"op","type":"string"},
	{"name":"ts_ms","type":["null","long"],"default":null}]}`

func change(op string) *Record {
	at := time.UnixMicro(1_700_000_000_000_000).UTC()
	row := func(c string) map[string]any {
		return map[string]any{"id": int64(7), "customer": c, "status": "paid", "note": "n", "at": at}
	}
	v := map[string]any{"op": op, "ts_ms": int64(5), "source": map[string]any{"table": "orders", "lsn": int64(42)}, "before": nil, "after": nil}
	switch op {
	case "c":
		v["after"] = row("ann")
	case "u":
		v["before"], v["after"] = row("ann"), row("bob")
	case "d":
		v["before"] = row("bob")
	}
	return &Record{Topic: "t.public.orders", Key: map[string]any{"id": int64(7)}, Value: v, ValueSchema: mustParse(testEnvelope)}
}

func transformOf(t *testing.T, name string, params map[string]any) Transform {
	t.Helper()
	cat, err := BuiltinCatalog()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewParams(cat.Plugin(name), params)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := newTransform(name, p)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// roundTrip encodes the record's value with its (transformed) schema and
// decodes it, proving schema and value agree; hamba/avro must read the
// bytes too.
func roundTrip(t *testing.T, r *Record) any {
	t.Helper()
	if r.Value == nil {
		return nil
	}
	js, _ := json.Marshal(r.ValueSchema)
	s, err := avro.ParseWithCache(string(js), "", &avro.SchemaCache{}) // the schema must also survive the registry's parse
	if err != nil {
		t.Fatalf("schema %s: %v", r.ValueSchema, err)
	}
	k, err := avrobin.Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.Encode(nil, r.Value)
	if err != nil {
		t.Fatalf("encode %v with %s: %v", r.Value, s, err)
	}
	var generic any
	if err := (avro.Config{}).Freeze().Unmarshal(s, b, &generic); err != nil {
		t.Fatalf("hamba/avro cannot read it: %v", err)
	}
	out, err := k.Decode(avrobin.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func after(v any) map[string]any { return v.(map[string]any)["after"].(map[string]any) }

func TestDropRenameMask(t *testing.T) {
	r := change("u")
	if keep, err := transformOf(t, "drop_fields", map[string]any{"fields": []string{"note", "status"}}).Apply(r); !keep || err != nil {
		t.Fatal(keep, err)
	}
	got := roundTrip(t, r).(map[string]any)
	if _, ok := after(got)["note"]; ok || len(after(got)) != 3 || len(got["before"].(map[string]any)) != 3 {
		t.Fatalf("drop_fields: %v", got)
	}

	r = change("u")
	if _, err := transformOf(t, "rename_fields", map[string]any{"renames": map[string]string{"customer": "note", "note": "customer"}}).Apply(r); err != nil {
		t.Fatal(err)
	}
	got = roundTrip(t, r).(map[string]any)
	if after(got)["note"] != "bob" || after(got)["customer"] != "n" {
		t.Fatalf("rename_fields swap: %v", after(got))
	}

	r = change("u")
	if _, err := transformOf(t, "mask_fields", map[string]any{"fields": []string{"customer", "status", "id"}, "salt": "s"}).Apply(r); err != nil {
		t.Fatal(err)
	}
	got = roundTrip(t, r).(map[string]any)
	sum := sha256.Sum256([]byte("sbob"))
	if after(got)["customer"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("mask hash: %v", after(got)["customer"])
	}
	if _, ok := after(got)["id"].(string); !ok {
		t.Fatalf("a masked long becomes a string: %T", after(got)["id"])
	}
	r = change("c")
	r.Value.(map[string]any)["after"].(map[string]any)["status"] = nil
	if _, err := transformOf(t, "mask_fields", map[string]any{"fields": []string{"customer", "status"}, "mode": "fixed"}).Apply(r); err != nil {
		t.Fatal(err)
	}
	got = roundTrip(t, r).(map[string]any)
	if after(got)["customer"] != "****" || after(got)["status"] != nil {
		t.Fatalf("mask fixed: %v", after(got))
	}
}

func TestUnwrap(t *testing.T) {
	for _, c := range []struct {
		name   string
		params map[string]any
		op     string
		keep   bool
		want   map[string]any // nil: a tombstone
	}{
		{"create", nil, "c", true, map[string]any{"id": int64(7), "customer": "ann"}},
		{"update with fields", map[string]any{"add_fields": []string{"op", "table", "lsn"}}, "u", true,
			map[string]any{"customer": "bob", "__op": "u", "__table": "orders", "__lsn": int64(42)}},
		{"delete as tombstone", nil, "d", true, nil},
		{"delete dropped", map[string]any{"delete_handling": "drop"}, "d", false, nil},
		{"delete rewritten", map[string]any{"delete_handling": "rewrite"}, "d", true, map[string]any{"customer": "bob", "__deleted": "true"}},
		{"update rewritten", map[string]any{"delete_handling": "rewrite"}, "u", true, map[string]any{"customer": "bob", "__deleted": "false"}},
	} {
		r := change(c.op)
		keep, err := transformOf(t, "unwrap", c.params).Apply(r)
		if err != nil || keep != c.keep {
			t.Fatalf("%s: keep %v, %v", c.name, keep, err)
		}
		if !keep {
			continue
		}
		got := roundTrip(t, r)
		if c.want == nil {
			if got != nil || r.ValueSchema != nil {
				t.Fatalf("%s: want a tombstone, have %v", c.name, got)
			}
			continue
		}
		for k, v := range c.want {
			if g := got.(map[string]any)[k]; !reflect.DeepEqual(g, v) {
				t.Fatalf("%s: %s = %#v, want %#v (%v)", c.name, k, g, v, got)
			}
		}
	}
	// Tombstones from the source: dropped by default, kept on request.
	tomb := &Record{Topic: "t", Key: map[string]any{"id": int64(1)}}
	if keep, _ := transformOf(t, "unwrap", nil).Apply(tomb); keep {
		t.Fatal("a source tombstone passed drop_tombstones: true")
	}
	if keep, _ := transformOf(t, "unwrap", map[string]any{"drop_tombstones": false}).Apply(tomb); !keep {
		t.Fatal("a source tombstone was dropped with drop_tombstones: false")
	}
	// Fields after unwrap edit the flat row.
	r := change("c")
	transformOf(t, "unwrap", nil).Apply(r)
	transformOf(t, "drop_fields", map[string]any{"fields": []string{"note"}}).Apply(r)
	if got := roundTrip(t, r).(map[string]any); len(got) != 4 {
		t.Fatalf("drop after unwrap: %v", got)
	}
}

func TestFilterRouteHeader(t *testing.T) {
	for _, c := range []struct {
		params map[string]any
		op     string
		keep   bool
	}{
		{map[string]any{"tables": []string{"orders"}}, "c", true},
		{map[string]any{"tables": []string{"users"}}, "c", false},
		{map[string]any{"ops": []string{"c", "u"}}, "d", false},
		{map[string]any{"ops": []string{"d"}}, "d", true},
		{map[string]any{"field": "customer", "equals": "bob"}, "u", true},
		{map[string]any{"field": "customer", "equals": "bob"}, "c", false},
		{map[string]any{"field": "customer", "matches": "^b"}, "d", true}, // a delete matches on its before-state
		{map[string]any{"field": "customer", "matches": "^b", "action": "drop"}, "u", false},
		{map[string]any{"field": "nothere", "equals": "x", "action": "drop"}, "u", true},
	} {
		keep, err := transformOf(t, "filter", c.params).Apply(change(c.op))
		if err != nil || keep != c.keep {
			t.Errorf("filter %v on %s: keep %v (%v), want %v", c.params, c.op, keep, err, c.keep)
		}
	}

	r := change("c")
	rt := transformOf(t, "route", map[string]any{"regex": `t\.public\.(.*)`, "replacement": "warehouse.$1"})
	if _, err := rt.Apply(r); err != nil || r.Topic != "warehouse.orders" {
		t.Fatalf("route: %s %v", r.Topic, err)
	}
	r = change("c")
	r.Topic = "other"
	if rt.Apply(r); r.Topic != "other" {
		t.Fatalf("route changed a topic it does not match: %s", r.Topic)
	}
	bad := transformOf(t, "route", map[string]any{"regex": `(.*)`, "replacement": "$1 x"})
	if _, err := bad.Apply(change("c")); err == nil {
		t.Fatal("route to an invalid topic name passed")
	}

	r = change("u")
	transformOf(t, "insert_header", map[string]any{"headers": map[string]string{"origin": "eddy", "what": "${topic}/${op}"}}).Apply(r)
	if string(r.Header("what")) != "t.public.orders/u" || string(r.Header("origin")) != "eddy" {
		t.Fatalf("headers: %+v", r.Headers)
	}
}

func mustParse(text string) avro.Schema {
	s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		panic(err)
	}
	return s
}

// A row state missing as a typed nil map (how a source that builds
// map[string]any values naturally leaves it) is a null everywhere: field
// edits skip it, JSON writes null, Avro writes the null branch.
func TestTypedNilRowState(t *testing.T) {
	r := change("c")
	var none map[string]any
	r.Value.(map[string]any)["before"] = none
	if _, err := transformOf(t, "drop_fields", map[string]any{"fields": []string{"note"}}).Apply(r); err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, r).(map[string]any)["before"]; got != nil {
		t.Fatalf("before came back as %#v", got)
	}
	out, err := avrobin.AppendJSON(nil, map[string]any{"before": none}, nil)
	if err != nil || string(out) != `{"before":null}` {
		t.Fatalf("%s %v", out, err)
	}
}

// A source block in schema order (avrobin.Ordered, as mysql-source makes
// them) reads as its map does in the transforms that look into it.
func TestOrderedSourceBlock(t *testing.T) {
	ordered := func(op string) *Record {
		r := change(op)
		r.Value.(map[string]any)["source"] = &avrobin.Ordered{Names: []string{"table", "lsn"}, Values: []any{"orders", int64(42)}}
		return r
	}
	for table, keep := range map[string]bool{"orders": true, "users": false} {
		if got, err := transformOf(t, "filter", map[string]any{"tables": []string{table}}).Apply(ordered("c")); err != nil || got != keep {
			t.Errorf("filter tables %s: keep %v (%v), want %v", table, got, err, keep)
		}
	}
	r := ordered("u")
	if _, err := transformOf(t, "unwrap", map[string]any{"add_fields": []string{"table", "lsn"}}).Apply(r); err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, r).(map[string]any); got["__table"] != "orders" || got["__lsn"] != int64(42) {
		t.Errorf("unwrap with source fields: %v", got)
	}
}

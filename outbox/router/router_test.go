package router_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/connect/connecttest"
	"github.com/eddy-cdc/eddy/internal/avrobin"
	"github.com/eddy-cdc/eddy/outbox"
	"github.com/eddy-cdc/eddy/outbox/router"
)

var at = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

func row(op, id, aggType, aggID, typ string, payload, headers any) connect.Record {
	r := map[string]any{"id": id, "aggregatetype": aggType, "aggregateid": aggID, "type": typ, "payload": payload, "headers": headers}
	v := map[string]any{"op": op, "after": r, "before": nil, "ts_ms": int64(1),
		"source": map[string]any{"table": "outbox", "schema": "public", "db": "shop"}}
	if op == "d" {
		v["after"], v["before"] = nil, r
	}
	return connect.Record{Topic: "shop.public.outbox", Key: map[string]any{"id": id}, Value: v, Position: []byte(id), Timestamp: at}
}

func message(prefix string, m outbox.Message) connect.Record {
	content, _ := json.Marshal(m)
	v := map[string]any{"op": "m", "ts_ms": int64(1), "source": map[string]any{"table": "", "schema": ""},
		"message": map[string]any{"prefix": prefix, "content": content}}
	return connect.Record{Topic: "shop.message", Key: map[string]any{"prefix": prefix}, Value: v, Position: []byte(m.ID), Timestamp: at}
}

func records() []connect.Record {
	return []connect.Record{
		row("c", "e1", "order", "42", "OrderCreated", `{"id":42,"total":9.9}`, nil),
		row("r", "e2", "customer", "c-7", "CustomerSeen", `{"name":"Zoë"}`, `{"trace":"t1"}`),
		message("outbox", outbox.Message{ID: "e3", AggregateType: "order", AggregateID: "43", Type: "OrderPaid", Payload: json.RawMessage(`{"paid":true}`)}),
	}
}

func build(t *testing.T, params map[string]any) connect.Transform {
	t.Helper()
	cat, err := connect.BuiltinCatalog()
	if err != nil {
		t.Fatal(err)
	}
	p, err := connect.NewParams(cat.Plugin("outbox"), params)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := router.New(p, connect.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestContract(t *testing.T) {
	connecttest.TransformSuite(t, connecttest.TransformTarget{
		Plugin: "outbox", New: router.New, Params: map[string]any{}, Records: records,
		BadConfigs: []connecttest.BadConfig{
			{Params: map[string]any{"fields_additional": []any{"tenant:envelope"}}, Key: "fields_additional"},
			{Params: map[string]any{"fields_additional": []any{"tenant"}}, Key: "fields_additional"},
			{Params: map[string]any{"topic": "bad topic"}, Key: "topic"},
			{Params: map[string]any{"table": ""}, Key: "table"},
			{Params: map[string]any{"on_update": "explode"}, Key: "on_update"},
		},
	})
}

func header(r connect.Record, k string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value), true
		}
	}
	return "", false
}

// Rows and messages become events: topic, key, value, headers; the
// position and timestamp stay.
func TestRoutes(t *testing.T) {
	tr := build(t, map[string]any{"fields_additional": []any{"type:header:eventType"}})
	recs := records()
	want := []struct{ topic, key, value, id, typ string }{
		{"outbox.event.order", "42", `{"id":42,"total":9.9}`, "e1", "OrderCreated"},
		{"outbox.event.customer", "c-7", `{"name":"Zoë"}`, "e2", "CustomerSeen"},
		{"outbox.event.order", "43", `{"paid":true}`, "e3", "OrderPaid"},
	}
	for i := range recs {
		keep, err := tr.Apply(&recs[i])
		if err != nil || !keep {
			t.Fatalf("record %d: %v %v", i, keep, err)
		}
		r, w := recs[i], want[i]
		if r.Topic != w.topic || r.Key != w.key || string(r.Value.([]byte)) != w.value || r.KeySchema != nil || r.ValueSchema != nil {
			t.Errorf("record %d: %s %v %s", i, r.Topic, r.Key, r.Value)
		}
		for k, v := range map[string]string{"id": w.id, router.HeaderEventID: w.id, "type": w.typ} {
			if got, _ := header(r, k); got != v {
				t.Errorf("record %d: header %s = %q, want %q", i, k, got, v)
			}
		}
		if string(r.Position) != w.id || !r.Timestamp.Equal(at) {
			t.Errorf("record %d: position %q, timestamp %v", i, r.Position, r.Timestamp)
		}
	}
	if v, _ := header(recs[1], "trace"); v != "t1" {
		t.Errorf("the headers column's trace: %q", v)
	}
	if v, _ := header(recs[0], "eventType"); v != "OrderCreated" {
		t.Errorf("fields_additional: %q", v)
	}
}

// Deletes (the cleanup's), their tombstones, truncates and updates are
// no events; on_update: fail makes an update a record error. A null
// payload is a null value; a payload that is not JSON is a record error.
func TestNotEvents(t *testing.T) {
	tr := build(t, map[string]any{})
	del := row("d", "e1", "order", "42", "X", `{}`, nil)
	tomb := connect.Record{Topic: del.Topic, Key: del.Key, Position: []byte("t")}
	trunc := row("t", "", "", "", "", nil, nil)
	trunc.Value.(map[string]any)["after"] = nil
	upd := row("u", "e1", "order", "42", "X", `{}`, nil)
	for i, r := range []connect.Record{del, tomb, trunc, upd} {
		if keep, err := tr.Apply(&r); keep || err != nil {
			t.Errorf("record %d (%s): keep %v, err %v", i, r.Topic, keep, err)
		}
	}
	fail := build(t, map[string]any{"on_update": "fail"})
	upd = row("u", "e1", "order", "42", "X", `{}`, nil)
	if _, err := fail.Apply(&upd); err == nil || !strings.Contains(err.Error(), "update") {
		t.Errorf("on_update fail: %v", err)
	}
	null := row("c", "e5", "order", "42", "OrderDeleted", nil, nil)
	if keep, err := tr.Apply(&null); !keep || err != nil || null.Value != nil || null.Key != "42" {
		t.Errorf("null payload: %v %v %+v", keep, err, null)
	}
	bad := row("c", "e6", "order", "42", "X", `{"a":`, nil)
	if _, err := tr.Apply(&bad); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("bad payload: %v", err)
	}
	noRoute := row("c", "e7", "", "42", "X", `{}`, nil)
	if _, err := tr.Apply(&noRoute); err == nil || !strings.Contains(err.Error(), "aggregatetype") {
		t.Errorf("no route: %v", err)
	}
	other := message("audit", outbox.Message{ID: "x"})
	if keep, err := tr.Apply(&other); !keep || err != nil || other.Topic != "shop.message" {
		t.Errorf("a message of another prefix: %v %v %s", keep, err, other.Topic)
	}
	garbage := message("outbox", outbox.Message{})
	garbage.Value.(map[string]any)["message"].(map[string]any)["content"] = []byte("not json")
	if _, err := tr.Apply(&garbage); err == nil {
		t.Error("a message that is no outbox event was routed")
	}
}

// A qualified table matches its schema (PostgreSQL) or database (MySQL)
// only; a compact source block (an Ordered record) is read too.
func TestTableMatch(t *testing.T) {
	tr := build(t, map[string]any{"table": "shop.outbox"})
	r := row("c", "e1", "order", "42", "X", `{}`, nil)
	r.Value.(map[string]any)["source"] = map[string]any{"table": "outbox", "db": "shop"}
	if tr.Apply(&r); r.Topic != "outbox.event.order" {
		t.Errorf("db.table: %s", r.Topic)
	}
	r = row("c", "e1", "order", "42", "X", `{}`, nil)
	r.Value.(map[string]any)["source"] = map[string]any{"table": "outbox", "schema": "billing"}
	if tr.Apply(&r); r.Topic != "shop.public.outbox" {
		t.Errorf("another schema's outbox was routed: %s", r.Topic)
	}
	ord := &avrobin.Ordered{Names: []string{"table", "schema"}, Values: []any{"outbox", "shop"}}
	r = row("c", "e1", "order", "42", "X", `{}`, nil)
	r.Value.(map[string]any)["source"] = ord
	if tr.Apply(&r); r.Topic != "outbox.event.order" {
		t.Errorf("an Ordered source block: %s", r.Topic)
	}
}

// expand_json: payloads become Avro records of an inferred schema that
// grows with the payloads (a new field, an integer seen with a fraction,
// a field of a second type), each version readable by the next, and the
// values encode with their schema.
func TestExpandJSON(t *testing.T) {
	tr := build(t, map[string]any{"expand_json": true})
	var schemas []avro.Schema
	for i, p := range []string{
		`{"id":1,"total":10,"customer":{"name":"Ann"},"lines":[{"sku":"a","qty":1}]}`,
		`{"id":2,"total":10}`,
		`{"id":3,"total":10.5,"note":"ünïcode ☕","lines":[]}`,
		`{"id":"four","total":1,"customer":{"name":"Bo","vip":true}}`,
		`{"id":5,"total-amount":7,"total_amount":8}`,
	} {
		r := row("c", "e", "order", "1", "X", p, nil)
		if keep, err := tr.Apply(&r); !keep || err != nil {
			t.Fatalf("payload %d: %v %v", i, keep, err)
		}
		codec, err := avrobin.Compile(r.ValueSchema)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := codec.Encode(nil, r.Value); err != nil {
			t.Fatalf("payload %d: %v\nschema %s\nvalue %#v", i, err, r.ValueSchema, r.Value)
		}
		if n := len(schemas); n == 0 || schemas[n-1] != r.ValueSchema {
			schemas = append(schemas, r.ValueSchema)
		}
	}
	if len(schemas) != 4 { // payload 2 brings nothing new
		t.Fatalf("%d schema versions, want 4", len(schemas))
	}
	for i := 1; i < len(schemas); i++ {
		if err := avro.NewSchemaCompatibility().Compatible(schemas[i], schemas[i-1]); err != nil {
			t.Errorf("version %d cannot read version %d: %v\n%s\n%s", i+1, i, err, schemas[i], schemas[i-1])
		}
	}
	last := schemas[len(schemas)-1].(*avro.RecordSchema)
	var names []string
	for _, f := range last.Fields() {
		names = append(names, f.Name())
	}
	if got := strings.Join(names, ","); got != "id,total,customer,lines,note,total_amount,total_amount_2" {
		t.Errorf("fields %s", got)
	}
	for _, p := range []string{`[1,2]`, `"text"`, `12`} {
		r := row("c", "e", "order", "1", "X", p, nil)
		if _, err := tr.Apply(&r); err == nil || !strings.Contains(err.Error(), "not an object") {
			t.Errorf("payload %s: %v", p, err)
		}
	}
}

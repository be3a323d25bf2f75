package avrobin

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/hamba/avro/v2"
)

// An ordered record encodes as the map of the same fields does, in
// binary and in JSON, inside a union too; out of order or short, it is
// taken as the map it stands for.
func TestOrderedEncodesAsItsMap(t *testing.T) {
	s := avro.MustParse(`{"type":"record","name":"E","fields":[
		{"name":"src","type":["null",{"type":"record","name":"S","fields":[
			{"name":"a","type":"string"},{"name":"b","type":"long"},{"name":"c","type":["null","int"],"default":null}]}]}]}`)
	c, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{"src": map[string]any{"a": "x", "b": int64(7), "c": int32(3)}}
	want, err := c.Encode(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, err := AppendJSON(nil, m, s)
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]*Ordered{
		"in order":     {Names: []string{"a", "b", "c"}, Values: []any{"x", int64(7), int32(3)}},
		"out of order": {Names: []string{"c", "a", "b"}, Values: []any{int32(3), "x", int64(7)}},
		"short":        {Names: []string{"a", "b"}, Values: []any{"x", int64(7)}},
	} {
		v := map[string]any{"src": o}
		got, err := c.Encode(nil, v)
		if name == "short" {
			// c defaults to null: the map with a and b.
			want, _ := c.Encode(nil, map[string]any{"src": map[string]any{"a": "x", "b": int64(7)}})
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: %x %v, want %x", name, got, err, want)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %x %v, want %x", name, got, err, want)
		}
		j, err := AppendJSON(nil, v, s)
		if err != nil || string(j) != string(wantJSON) {
			t.Errorf("%s: JSON %s %v, want %s", name, j, err, wantJSON)
		}
	}
	if v, ok := (&Ordered{Names: []string{"a"}, Values: []any{1}}).Get("a"); !ok || v != 1 {
		t.Errorf("Get: %v %v", v, ok)
	}
}

// Plain makes every ordered record in a value a map, nested ones too,
// and leaves the rest as it is.
func TestPlain(t *testing.T) {
	inner := &Ordered{Names: []string{"a", "b"}, Values: []any{int64(1), nil}}
	v := map[string]any{
		"row":    &Ordered{Names: []string{"x", "in"}, Values: []any{"y", inner}},
		"none":   (*Ordered)(nil),
		"list":   []any{inner, "s"},
		"scalar": int32(3),
	}
	got := Plain(v)
	want := map[string]any{
		"row":    map[string]any{"x": "y", "in": map[string]any{"a": int64(1), "b": nil}},
		"none":   nil,
		"list":   []any{map[string]any{"a": int64(1), "b": nil}, "s"},
		"scalar": int32(3),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Plain: %#v\nwant %#v", got, want)
	}
	if Plain(nil) != nil || Plain("s") != "s" {
		t.Fatal("Plain of a scalar changed it")
	}
}

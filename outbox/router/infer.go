package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/internal/capture"
)

// expand_json (Debezium's table.expand.json.payload): a JSON object
// payload becomes an Avro record. Its schema is inferred from the
// payloads of the topic, merged: a field seen once stays in the schema
// (null when an event lacks it), a field seen with a second type gets a
// union of both, an integer field seen with a fraction becomes a double.
// Each change of the merged schema is a new version, which the registry
// checks as it checks any: every field is optional with a null default,
// and unions only widen, so the versions are backward compatible.

// kinds of JSON value a node has seen, as bits.
const (
	kBool = 1 << iota
	kLong
	kDouble
	kString
	kRecord
	kArray
)

// node is what the payloads have shown of one value.
type node struct {
	kinds  int
	fields []*field // a record's, in first-seen order
	byKey  map[string]*field
	names  map[string]bool // Avro names taken
	elem   *node           // an array's
}

type field struct {
	key, name string // the JSON key, its Avro name
	n         *node
}

// inferred is one topic's merged schema.
type inferred struct {
	root   *node
	schema avro.Schema
}

// maxInferred bounds the topics whose schemas are kept.
const maxInferred = 10000

func (r *Router) expandJSON(topic string, payload []byte) (any, avro.Schema, error) {
	v, err := parseOrdered(payload)
	if err != nil {
		return nil, nil, err
	}
	obj, ok := v.(*object)
	if !ok {
		return nil, nil, fmt.Errorf("the payload is a JSON %s, not an object", jsonKind(v))
	}
	st := r.expanded[topic]
	if st == nil {
		if len(r.expanded) >= maxInferred {
			clear(r.expanded)
		}
		st = &inferred{root: &node{}}
		r.expanded[topic] = st
	}
	if st.root.merge(obj) || st.schema == nil {
		ns := capture.AvroName(topic)
		js, err := json.Marshal(st.root.recordSchema(ns, "Payload"))
		if err != nil {
			return nil, nil, err
		}
		s, err := avro.ParseBytesWithCache(js, "", &avro.SchemaCache{})
		if err != nil {
			return nil, nil, fmt.Errorf("inferred schema: %w", err)
		}
		st.schema = s
	}
	return st.root.value(obj), st.schema, nil
}

// object is a JSON object with its keys in order.
type object struct {
	keys []string
	vals map[string]any
}

// parseOrdered parses JSON keeping object key order, numbers as
// json.Number.
func parseOrdered(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := parseValue(dec)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if dec.More() {
		return nil, errors.New("payload: more than one JSON value")
	}
	return v, nil
}

func parseValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &object{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				if _, dup := o.vals[k]; !dup {
					o.keys = append(o.keys, k)
				}
				o.vals[k] = v
			}
			_, err := dec.Token() // }
			return o, err
		case '[':
			a := []any{}
			for dec.More() {
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := dec.Token() // ]
			return a, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return tok, nil // bool, json.Number, string, nil
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	}
	return "object"
}

func isInt(n json.Number) bool {
	_, err := strconv.ParseInt(string(n), 10, 64)
	return err == nil
}

// merge notes what v shows; it reports whether the node changed.
func (n *node) merge(v any) bool {
	before := n.kinds
	changed := false
	switch x := v.(type) {
	case nil:
	case bool:
		n.kinds |= kBool
	case json.Number:
		if isInt(x) && n.kinds&kDouble == 0 {
			n.kinds |= kLong
		} else {
			n.kinds |= kDouble
			n.kinds &^= kLong // an integer field that saw a fraction: a double
		}
	case string:
		n.kinds |= kString
	case []any:
		n.kinds |= kArray
		if n.elem == nil {
			n.elem, changed = &node{}, true
		}
		for _, e := range x {
			changed = n.elem.merge(e) || changed
		}
	case *object:
		n.kinds |= kRecord
		if n.byKey == nil {
			n.byKey, n.names = map[string]*field{}, map[string]bool{}
		}
		for _, k := range x.keys {
			f := n.byKey[k]
			if f == nil {
				f = &field{key: k, name: n.avroName(k), n: &node{}}
				n.byKey[k] = f
				n.fields = append(n.fields, f)
				changed = true
			}
			changed = f.n.merge(x.vals[k]) || changed
		}
	}
	return changed || n.kinds != before
}

// avroName is a field name Avro takes, unique in the record.
func (n *node) avroName(key string) string {
	name := capture.AvroName(key)
	if name == "" {
		name = "_"
	}
	for i := 2; n.names[name]; i++ {
		name = capture.AvroName(key) + "_" + strconv.Itoa(i)
	}
	n.names[name] = true
	return name
}

// typeSchema is the node's Avro type, always with null (a value may be
// missing or null); name names a record.
func (n *node) typeSchema(ns, name string) any {
	branches := []any{"null"}
	if n.kinds&kBool != 0 {
		branches = append(branches, "boolean")
	}
	if n.kinds&kLong != 0 {
		branches = append(branches, "long")
	}
	if n.kinds&kDouble != 0 {
		branches = append(branches, "double")
	}
	if n.kinds&kString != 0 {
		branches = append(branches, "string")
	}
	if n.kinds&kRecord != 0 {
		branches = append(branches, n.recordSchema(ns, name))
	}
	if n.kinds&kArray != 0 {
		branches = append(branches, map[string]any{"type": "array", "items": n.elem.typeSchema(ns, name+"_item")})
	}
	if len(branches) == 1 {
		return "null"
	}
	return branches
}

func (n *node) recordSchema(ns, name string) map[string]any {
	fs := make([]any, 0, len(n.fields))
	for _, f := range n.fields {
		fs = append(fs, map[string]any{"name": f.name, "type": f.n.typeSchema(ns, name+"_"+f.name), "default": nil})
	}
	return map[string]any{"type": "record", "name": name, "namespace": ns, "fields": fs}
}

// value is v in the shape of the node's schema.
func (n *node) value(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n.kinds&kLong != 0 && isInt(x) {
			i, _ := strconv.ParseInt(string(x), 10, 64)
			return i
		}
		f, _ := strconv.ParseFloat(string(x), 64)
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = n.elem.value(e)
		}
		return out
	case *object:
		out := make(map[string]any, len(n.fields))
		for _, f := range n.fields {
			out[f.name] = f.n.value(x.vals[f.key])
		}
		return out
	}
	return v // nil, bool, string
}

package connect

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"time"
	"unicode/utf8"

	"github.com/hamba/avro/v2"

	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/registry"
)

// Converter turns records into log bytes and back: Avro in the Confluent
// wire format with schemas in the registry (subjects <topic>-key and
// <topic>-value), or JSON. Reading detects the format of each key and value,
// so a sink reads what any producer wrote.
type Converter struct {
	serde *registry.Serde
	json  bool // write JSON rather than Avro
}

// NewConverter writes Avro through serde (format "avro") or JSON ("json").
func NewConverter(serde *registry.Serde, format string) *Converter {
	return &Converter{serde: serde, json: format == "json"}
}

// Encode fills out's key, value, headers and timestamp from r. The
// record's own bytes are appended to buf, which is returned grown.
func (c *Converter) Encode(ctx context.Context, r *Record, buf []byte, out *elog.Record) ([]byte, error) {
	var err error
	start := len(buf)
	if buf, err = c.encodeOne(ctx, r.Topic, "-key", r.KeySchema, r.Key, buf); err != nil {
		return buf, fmt.Errorf("serialize key: %w", err)
	}
	keyEnd := len(buf)
	if buf, err = c.encodeOne(ctx, r.Topic, "-value", r.ValueSchema, r.Value, buf); err != nil {
		return buf, fmt.Errorf("serialize value: %w", err)
	}
	// The slices are cut only now: buf may have moved while growing.
	out.Key, out.Value = nil, nil
	if r.Key != nil {
		out.Key = buf[start:keyEnd:keyEnd]
	}
	if r.Value != nil {
		out.Value = buf[keyEnd:len(buf):len(buf)]
	}
	out.Headers, out.Timestamp = r.Headers, r.Timestamp
	return buf, nil
}

func (c *Converter) encodeOne(ctx context.Context, topic, suffix string, schema avro.Schema, v any, buf []byte) ([]byte, error) {
	if v == nil {
		return buf, nil
	}
	switch x := v.(type) {
	case []byte:
		return append(buf, x...), nil
	case string:
		if schema == nil {
			return append(buf, x...), nil
		}
	}
	if c.json || schema == nil {
		b, err := json.Marshal(jsonValue(v))
		if err != nil {
			return buf, err
		}
		return append(buf, b...), nil
	}
	w, err := wrapUnions(schema, v)
	if err != nil {
		return buf, err
	}
	return c.serde.Encode(ctx, buf, topic+suffix, schema, w)
}

// Decode reads a log record into a Record: Avro wire format (by its
// schema id), JSON, or else raw bytes (text as a string).
func (c *Converter) Decode(ctx context.Context, topic string, partition int, in *elog.Record) (Record, error) {
	r := Record{Topic: topic, Partition: partition, Offset: in.Offset, Timestamp: in.Timestamp, Headers: in.Headers}
	var err error
	if r.Key, r.KeySchema, err = c.decodeOne(ctx, in.Key); err != nil {
		return r, fmt.Errorf("deserialize key: %w", err)
	}
	if r.Value, r.ValueSchema, err = c.decodeOne(ctx, in.Value); err != nil {
		return r, fmt.Errorf("deserialize value: %w", err)
	}
	return r, nil
}

func (c *Converter) decodeOne(ctx context.Context, data []byte) (any, avro.Schema, error) {
	switch {
	case data == nil:
		return nil, nil, nil
	case len(data) >= 5 && data[0] == 0:
		var v any
		s, err := c.serde.Decode(ctx, data, &v)
		if err != nil {
			return nil, nil, err
		}
		return unwrapUnions(s, v), s, nil
	case json.Valid(data):
		var v any
		if err := json.Unmarshal(data, &v); err == nil {
			return v, nil, nil
		}
	}
	if utf8.Valid(data) {
		return string(data), nil, nil
	}
	return append([]byte(nil), data...), nil, nil
}

// wrapUnions rewrites v into the form hamba/avro encodes: a non-null
// union value becomes {branch name: value}. Maps are copied, never edited,
// so r.Value stays as the source made it.
func wrapUnions(s avro.Schema, v any) (any, error) {
	switch s := deref(s).(type) {
	case *avro.RecordSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: want a record (map), have %T", s.FullName(), v)
		}
		out := make(map[string]any, len(m))
		for _, f := range s.Fields() {
			fv, ok := m[f.Name()]
			if !ok {
				continue // hamba writes the field's default or fails naming it
			}
			w, err := wrapUnions(f.Type(), fv)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.Name(), err)
			}
			out[f.Name()] = w
		}
		return out, nil
	case *avro.UnionSchema:
		if v == nil {
			return nil, nil
		}
		b := unionBranch(s, v)
		if b == nil {
			return nil, fmt.Errorf("no branch of union %s takes a %T", s.String(), v)
		}
		w, err := wrapUnions(b, v)
		if err != nil {
			return nil, err
		}
		return map[string]any{branchName(b): w}, nil
	case *avro.ArraySchema:
		a, ok := v.([]any)
		if !ok || !needsWrap(s.Items()) {
			return v, nil
		}
		out := make([]any, len(a))
		for i := range a {
			w, err := wrapUnions(s.Items(), a[i])
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = w
		}
		return out, nil
	case *avro.MapSchema:
		m, ok := v.(map[string]any)
		if !ok || !needsWrap(s.Values()) {
			return v, nil
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			w, err := wrapUnions(s.Values(), e)
			if err != nil {
				return nil, fmt.Errorf("[%q]: %w", k, err)
			}
			out[k] = w
		}
		return out, nil
	}
	return v, nil
}

func needsWrap(s avro.Schema) bool {
	switch deref(s).(type) {
	case *avro.RecordSchema, *avro.UnionSchema, *avro.ArraySchema, *avro.MapSchema:
		return true
	}
	return false
}

// unionBranch picks the branch for a non-null value: the only non-null
// branch, or the first whose type fits the Go value.
func unionBranch(u *avro.UnionSchema, v any) avro.Schema {
	var only avro.Schema
	n := 0
	for _, t := range u.Types() {
		if t.Type() != avro.Null {
			only, n = t, n+1
		}
	}
	if n == 1 {
		return only
	}
	for _, t := range u.Types() {
		if fits(t, v) {
			return t
		}
	}
	return nil
}

func fits(s avro.Schema, v any) bool {
	s = deref(s)
	switch v.(type) {
	case string:
		return s.Type() == avro.String || s.Type() == avro.Enum
	case int64, int, int32:
		return s.Type() == avro.Long || s.Type() == avro.Int
	case float64, float32:
		return s.Type() == avro.Double || s.Type() == avro.Float
	case bool:
		return s.Type() == avro.Boolean
	case []byte:
		return s.Type() == avro.Bytes || s.Type() == avro.Fixed
	case map[string]any:
		return s.Type() == avro.Record || s.Type() == avro.Map
	case []any:
		return s.Type() == avro.Array
	case time.Time:
		return s.Type() == avro.Long || s.Type() == avro.Int
	case *big.Rat:
		return s.Type() == avro.Bytes || s.Type() == avro.Fixed
	}
	return false
}

// branchName is how hamba/avro names a union branch: the full name of a
// named type, type.logicalType for logical types, else the type.
func branchName(s avro.Schema) string {
	s = deref(s)
	if n, ok := s.(avro.NamedSchema); ok {
		return n.FullName()
	}
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
		return string(s.Type()) + "." + string(l.Logical().Type())
	}
	return string(s.Type())
}

// unwrapUnions undoes hamba's {branch: value} form in decoded data, in
// place, guided by the writer's schema.
func unwrapUnions(s avro.Schema, v any) any {
	switch s := deref(s).(type) {
	case *avro.RecordSchema:
		if m, ok := v.(map[string]any); ok {
			for _, f := range s.Fields() {
				if fv, ok := m[f.Name()]; ok {
					m[f.Name()] = unwrapUnions(f.Type(), fv)
				}
			}
		}
	case *avro.UnionSchema:
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			return v
		}
		for k, inner := range m {
			for _, t := range s.Types() {
				if branchName(t) == k || string(t.Type()) == k {
					return unwrapUnions(t, inner)
				}
			}
		}
	case *avro.ArraySchema:
		if a, ok := v.([]any); ok && needsWrap(s.Items()) {
			for i := range a {
				a[i] = unwrapUnions(s.Items(), a[i])
			}
		}
	case *avro.MapSchema:
		if m, ok := v.(map[string]any); ok && needsWrap(s.Values()) {
			for k := range m {
				m[k] = unwrapUnions(s.Values(), m[k])
			}
		}
	}
	return v
}

// JSONValue makes a decoded value JSON-friendly, in place: decimals
// (*big.Rat) become exact strings.
func JSONValue(v any) any { return jsonValue(v) }

// jsonValue makes a decoded value JSON-friendly: decimals as strings with
// their digits, bytes stay base64 (encoding/json's choice), times RFC 3339.
func jsonValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if r, ok := e.(*big.Rat); ok {
				x[k] = ratString(r)
			} else if _, nested := e.(map[string]any); nested {
				jsonValue(e)
			} else if _, nested := e.([]any); nested {
				jsonValue(e)
			}
		}
	case []any:
		for i, e := range x {
			if r, ok := e.(*big.Rat); ok {
				x[i] = ratString(r)
			} else {
				jsonValue(e)
			}
		}
	case *big.Rat:
		return ratString(x)
	}
	return v
}

// ratString renders a decimal exactly. An Avro decimal is an integer over
// a power of ten, so its reduced denominator is 2^a * 5^b and max(a, b)
// digits after the point are exact; other fractions get 20 digits.
func ratString(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	d := new(big.Int).Set(r.Denom())
	a, b := 0, 0
	five, m := big.NewInt(5), new(big.Int)
	for d.Bit(0) == 0 {
		d.Rsh(d, 1)
		a++
	}
	for {
		q, rem := new(big.Int).QuoRem(d, five, m)
		if rem.Sign() != 0 {
			break
		}
		d, b = q, b+1
	}
	if d.Cmp(big.NewInt(1)) != 0 {
		return r.FloatString(20)
	}
	return r.FloatString(max(a, b))
}

// deref resolves a reference to a named type defined earlier in a schema.
func deref(s avro.Schema) avro.Schema {
	if r, ok := s.(*avro.RefSchema); ok {
		return r.Schema()
	}
	return s
}

package connect

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/internal/avrobin"
)

// unwrap: Debezium's ExtractNewRecordState.
type unwrap struct {
	deletes       string // drop, tombstone, rewrite
	dropTombstone bool
	add           []string
	cache         map[avro.Schema]avro.Schema
}

func newUnwrap(p Params) (*unwrap, error) {
	u := &unwrap{deletes: p.String("delete_handling"), dropTombstone: p.Bool("drop_tombstones"), add: p.Strings("add_fields"), cache: map[avro.Schema]avro.Schema{}}
	for _, a := range u.add {
		if a == "" || strings.ContainsAny(a, " .") {
			return nil, fmt.Errorf("add_fields: %q is not a field name", a)
		}
	}
	return u, nil
}

func (u *unwrap) Apply(r *Record) (bool, error) {
	if r.Value == nil {
		return !u.dropTombstone, nil
	}
	m, ok := r.Value.(map[string]any)
	if !ok || !isEnvelope(m) {
		return true, nil // already flat
	}
	op, _ := m["op"].(string)
	row, _ := m["after"].(map[string]any)
	if op == "d" {
		switch u.deletes {
		case "drop":
			return false, nil
		case "tombstone":
			r.Value, r.ValueSchema = nil, nil
			return true, nil
		}
		row, _ = m["before"].(map[string]any)
		if row == nil {
			row = map[string]any{}
		}
	}
	if row == nil {
		return false, nil // a truncate or a heartbeat: nothing to flatten
	}
	src, _ := fieldsOf(m["source"])
	for _, a := range u.add {
		if v, ok := m[a]; ok && a != "before" && a != "after" && a != "source" {
			row["__"+a] = v
		} else if v, ok := src[a]; ok {
			row["__"+a] = v
		} else {
			row["__"+a] = nil
		}
	}
	if u.deletes == "rewrite" {
		row["__deleted"] = fmt.Sprint(op == "d")
	}
	r.Value = row
	if r.ValueSchema != nil {
		s, err := u.schema(r.ValueSchema)
		if err != nil {
			return false, err
		}
		r.ValueSchema = s
	}
	return true, nil
}

func (u *unwrap) schema(s avro.Schema) (avro.Schema, error) {
	if out, ok := u.cache[s]; ok {
		return out, nil
	}
	env, row, ok := envelopeSchema(s)
	if !ok {
		return s, nil
	}
	fields := slices.Clone(row.Fields())
	var srcSchema *avro.RecordSchema
	for _, f := range env.Fields() {
		if f.Name() == "source" {
			srcSchema, _ = avrobin.NonNull(f.Type()).(*avro.RecordSchema)
		}
	}
	for _, a := range u.add {
		var typ avro.Schema
		for _, f := range env.Fields() {
			if f.Name() == a {
				typ = f.Type()
			}
		}
		if typ == nil && srcSchema != nil {
			for _, f := range srcSchema.Fields() {
				if f.Name() == a {
					typ = f.Type()
				}
			}
		}
		if typ == nil {
			typ = avro.NewPrimitiveSchema(avro.String, nil)
		}
		if !nullable(typ) {
			u, err := avro.NewUnionSchema([]avro.Schema{avro.NewNullSchema(), typ})
			if err != nil {
				return nil, err
			}
			typ = u
		}
		f, err := avro.NewField("__"+a, typ, avro.WithDefault(nil))
		if err != nil {
			return nil, err
		}
		fields = append(fields, f)
	}
	if u.deletes == "rewrite" {
		f, err := avro.NewField("__deleted", avro.NewPrimitiveSchema(avro.String, nil), avro.WithDefault("false"))
		if err != nil {
			return nil, err
		}
		fields = append(fields, f)
	}
	out, err := withFields(row, fields)
	if err != nil {
		return nil, err
	}
	u.cache[s] = out
	return out, nil
}

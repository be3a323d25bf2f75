package connect

import (
	"fmt"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/internal/avrobin"
)

// Transform changes or drops one record at a time (Kafka Connect's single
// message transforms). Apply edits r in place and reports whether to keep
// it; an error is the record's fault (a *RecordError for the runtime).
// A Transform is used by one task's goroutine; each task builds its own.
type Transform interface {
	Apply(r *Record) (keep bool, err error)
}

// builtinTransform returns the constructor of one of the runtime's own
// transforms; own is false for a plugin's (Plugins.Transforms).
func builtinTransform(name string) (build func(Params) (Transform, error), own bool) {
	switch name {
	case "filter", "route", "drop_fields", "rename_fields", "mask_fields", "unwrap", "insert_header":
		return func(p Params) (Transform, error) { return newTransform(name, p) }, true
	}
	return nil, false
}

// newTransform builds the named transform of the runtime's own from
// validated params.
func newTransform(name string, p Params) (Transform, error) {
	switch name {
	case "filter":
		return newFilter(p)
	case "route":
		return newRoute(p)
	case "drop_fields":
		return newFieldEdit(p.Strings("fields"), nil), nil // nil edit: the fields stay out
	case "rename_fields":
		return newRename(p)
	case "mask_fields":
		return newMask(p), nil
	case "unwrap":
		return newUnwrap(p)
	case "insert_header":
		return newInsertHeader(p), nil
	}
	return nil, fmt.Errorf("transform %q has no implementation", name)
}

// Debezium's envelope: a value with before, after, op (and source, ts_ms).
// Transforms that edit fields edit the row states inside it; on a value
// that is not an envelope (say, after unwrap) they edit the value itself.

// fieldsOf is a record value of the value model as a map: a map as it
// is, an ordered record (a source's compact source block) as a map.
func fieldsOf(v any) (map[string]any, bool) {
	switch x := v.(type) {
	case map[string]any:
		return x, true
	case *avrobin.Ordered:
		return x.Map(), x != nil
	}
	return nil, false
}

// rows returns the row maps a field edit applies to.
func rows(v any) []map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	if isEnvelope(m) {
		var out []map[string]any
		for _, k := range []string{"before", "after"} {
			if r, ok := m[k].(map[string]any); ok && r != nil { // a nil map is a missing state
				out = append(out, r)
			}
		}
		return out
	}
	return []map[string]any{m}
}

func isEnvelope(m map[string]any) bool {
	_, op := m["op"]
	_, after := m["after"]
	_, before := m["before"]
	return op && (after || before)
}

// envelopeSchema reports whether s is an envelope schema, and its row
// record schema.
func envelopeSchema(s avro.Schema) (*avro.RecordSchema, *avro.RecordSchema, bool) {
	rs, ok := s.(*avro.RecordSchema)
	if !ok {
		return nil, nil, false
	}
	var row *avro.RecordSchema
	names := map[string]bool{}
	for _, f := range rs.Fields() {
		names[f.Name()] = true
		if f.Name() == "after" || f.Name() == "before" {
			if r, ok := avrobin.NonNull(f.Type()).(*avro.RecordSchema); ok {
				row = r
			}
		}
	}
	if !names["op"] || row == nil {
		return nil, nil, false
	}
	return rs, row, true
}

func nullable(s avro.Schema) bool {
	u, ok := s.(*avro.UnionSchema)
	return ok && u.Nullable()
}

// withFields returns a record schema named like s with the given fields.
func withFields(s *avro.RecordSchema, fields []*avro.Field) (*avro.RecordSchema, error) {
	opts := []avro.SchemaOption{}
	if s.Doc() != "" {
		opts = append(opts, avro.WithDoc(s.Doc()))
	}
	return avro.NewRecordSchema(s.Name(), s.Namespace(), fields, opts...)
}

// field copies f under a new name and type, keeping its doc and default.
func field(f *avro.Field, name string, typ avro.Schema) (*avro.Field, error) {
	opts := []avro.SchemaOption{}
	if f.Doc() != "" {
		opts = append(opts, avro.WithDoc(f.Doc()))
	}
	if f.HasDefault() && typ == f.Type() {
		opts = append(opts, avro.WithDefault(f.Default()))
	} else if nullable(typ) {
		opts = append(opts, avro.WithDefault(nil))
	}
	return avro.NewField(name, typ, opts...)
}

// rebuildEnvelope replaces the row schema in before and after: defined in
// the first of them, referred to by name in the second (a named type may be
// defined once per schema).
func rebuildEnvelope(env *avro.RecordSchema, row *avro.RecordSchema) (*avro.RecordSchema, error) {
	fields := make([]*avro.Field, 0, len(env.Fields()))
	defined := false
	for _, f := range env.Fields() {
		typ := f.Type()
		if f.Name() == "before" || f.Name() == "after" {
			var branch avro.Schema = row
			if defined {
				branch = avro.NewRefSchema(row)
			}
			defined = true
			u, err := avro.NewUnionSchema([]avro.Schema{avro.NewNullSchema(), branch})
			if err != nil {
				return nil, err
			}
			typ = u
		}
		nf, err := field(f, f.Name(), typ)
		if err != nil {
			return nil, err
		}
		fields = append(fields, nf)
	}
	return withFields(env, fields)
}

// schemaEdit maps a value schema through a row edit, caching by schema.
type schemaEdit struct {
	cache map[avro.Schema]avro.Schema
	row   func(*avro.RecordSchema) (*avro.RecordSchema, error)
}

func (e *schemaEdit) apply(s avro.Schema) (avro.Schema, error) {
	if s == nil {
		return nil, nil
	}
	if out, ok := e.cache[s]; ok {
		return out, nil
	}
	if e.cache == nil {
		e.cache = map[avro.Schema]avro.Schema{}
	}
	var out avro.Schema
	if env, row, ok := envelopeSchema(s); ok {
		nr, err := e.row(row)
		if err != nil {
			return nil, err
		}
		if out, err = rebuildEnvelope(env, nr); err != nil {
			return nil, err
		}
	} else if rs, ok := s.(*avro.RecordSchema); ok {
		nr, err := e.row(rs)
		if err != nil {
			return nil, err
		}
		out = nr
	} else {
		return nil, fmt.Errorf("value schema is a %s, not a record", s.Type())
	}
	e.cache[s] = out
	return out, nil
}

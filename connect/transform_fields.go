package connect

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/hamba/avro/v2"
)

// Field edits: drop_fields, rename_fields and mask_fields, one edit per
// named field of the rows and their schemas.

// fieldEdit applies one edit per named field to rows and schemas.
type fieldEdit struct {
	fields map[string]string                                 // field -> argument of the edit
	edit   func(row map[string]any, name, arg string, v any) // v was removed from row; nil edit drops it
	typeOf func(f *avro.Field, arg string) (name string, typ avro.Schema, keep bool)
	schema schemaEdit
}

func newFieldEdit(names []string, edit func(map[string]any, string, string, any)) *fieldEdit {
	fe := &fieldEdit{fields: map[string]string{}, edit: edit}
	for _, n := range names {
		fe.fields[n] = ""
	}
	fe.typeOf = func(f *avro.Field, _ string) (string, avro.Schema, bool) { return f.Name(), f.Type(), false }
	fe.schema.row = fe.row
	return fe
}

func (fe *fieldEdit) row(rs *avro.RecordSchema) (*avro.RecordSchema, error) {
	var fields []*avro.Field
	for _, f := range rs.Fields() {
		arg, hit := fe.fields[f.Name()]
		if !hit {
			fields = append(fields, f)
			continue
		}
		name, typ, keep := fe.typeOf(f, arg)
		if !keep {
			continue
		}
		nf, err := field(f, name, typ)
		if err != nil {
			return nil, err
		}
		fields = append(fields, nf)
	}
	return withFields(rs, fields)
}

func (fe *fieldEdit) Apply(r *Record) (bool, error) {
	// Take every edited value out first, so that renames such as a->b,
	// b->a swap instead of overwriting.
	type taken struct {
		name, arg string
		v         any
	}
	var buf [8]taken
	for _, row := range rows(r.Value) {
		hits := buf[:0]
		for name, arg := range fe.fields {
			if v, ok := row[name]; ok {
				hits = append(hits, taken{name, arg, v})
				delete(row, name)
			}
		}
		if fe.edit != nil {
			for _, h := range hits {
				fe.edit(row, h.name, h.arg, h.v)
			}
		}
	}
	s, err := fe.schema.apply(r.ValueSchema)
	if err != nil {
		return false, err
	}
	r.ValueSchema = s
	return true, nil
}

func newRename(p Params) (*fieldEdit, error) {
	renames := p.Map("renames")
	seen := map[string]bool{}
	for from, to := range renames {
		if to == "" || seen[to] {
			return nil, fmt.Errorf("renames: %s: the new names must be distinct and not empty", from)
		}
		seen[to] = true
	}
	fe := newFieldEdit(nil, func(row map[string]any, _, to string, v any) { row[to] = v })
	fe.fields = renames
	fe.typeOf = func(f *avro.Field, to string) (string, avro.Schema, bool) { return to, f.Type(), true }
	return fe, nil
}

// mask_fields: values become the hex SHA-256 of salt+value, or a fixed
// mask; the field's type becomes string (nullable when it was).
func newMask(p Params) *fieldEdit {
	salt, fixed, mask := p.String("salt"), p.String("mode") == "fixed", p.String("mask")
	fe := newFieldEdit(p.Strings("fields"), func(row map[string]any, name, _ string, v any) {
		switch {
		case v == nil:
			row[name] = nil
		case fixed:
			row[name] = mask
		default:
			h := sha256.New()
			h.Write([]byte(salt))
			fmt.Fprint(h, v)
			row[name] = hex.EncodeToString(h.Sum(nil))
		}
	})
	str := avro.NewPrimitiveSchema(avro.String, nil)
	nullStr, _ := avro.NewUnionSchema([]avro.Schema{avro.NewNullSchema(), str})
	fe.typeOf = func(f *avro.Field, _ string) (string, avro.Schema, bool) {
		if nullable(f.Type()) {
			return f.Name(), nullStr, true
		}
		return f.Name(), str, true
	}
	return fe
}

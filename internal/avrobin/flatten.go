package avrobin

import (
	"fmt"

	"github.com/hamba/avro/v2"
)

// Flattener reads a Debezium envelope's Avro binary straight into the
// values of its row, in the row schema's order, with no map per change:
// the after-image, or the before-image for a delete or when there is no
// after-image (a truncate has neither). Sinks that write rows (files of
// flattened changes) use it on the log's bytes.
type Flattener struct {
	fields  []flatField
	columns int
	names   []string
}

type flatField struct {
	role     byte // 'b' before, 'a' after, 'o' op, 's' source, 0 skipped
	skip     Skipper
	branches []avro.Schema // a union's branches; nil for a plain field
	row      []*Codec      // an image's fields
	source   []sourceField
}

type sourceField struct {
	name  string // "ts_ms", "schema", "db", "table", or "" to skip
	codec *Codec
	skip  Skipper
}

// Flat is what Decode read besides the row.
type Flat struct {
	Op                string
	TsMs              any // the source's ts_ms, nil when absent
	Schema, DB, Table string
}

// CompileFlattener returns the flattener of an envelope schema, or nil
// when s is not an envelope (fields before, after and op, the images one
// record type).
func CompileFlattener(s avro.Schema) *Flattener {
	rs, ok := Deref(s).(*avro.RecordSchema)
	if !ok {
		return nil
	}
	named := map[string]*Codec{}
	fl := &Flattener{}
	var row *avro.RecordSchema
	var hasOp bool
	for _, f := range rs.Fields() {
		ff := flatField{}
		t := f.Type()
		if u, ok := t.(*avro.UnionSchema); ok {
			ff.branches = u.Types()
		}
		var err error
		if ff.skip, err = CompileSkip(t); err != nil {
			return nil
		}
		switch f.Name() {
		case "op":
			if t.Type() != avro.String {
				return nil
			}
			ff.role, hasOp = 'o', true
		case "before", "after":
			rec := RecordBranch(t)
			if rec == nil || (row != nil && rec.FullName() != row.FullName()) {
				return nil
			}
			row = rec
			ff.role = f.Name()[0]
			for _, rf := range rec.Fields() {
				c, err := compileNode(rf.Type(), named)
				if err != nil {
					return nil
				}
				ff.row = append(ff.row, c)
			}
		case "source":
			rec := RecordBranch(t)
			if rec == nil {
				break
			}
			ff.role = 's'
			for _, sf := range rec.Fields() {
				x := sourceField{}
				if x.skip, err = CompileSkip(sf.Type()); err != nil {
					return nil
				}
				switch sf.Name() {
				case "ts_ms", "schema", "db", "table":
					if x.codec, err = compileNode(sf.Type(), named); err != nil {
						return nil
					}
					x.name = sf.Name()
				}
				ff.source = append(ff.source, x)
			}
		}
		fl.fields = append(fl.fields, ff)
	}
	if !hasOp || row == nil {
		return nil
	}
	fl.columns = len(row.Fields())
	for _, f := range row.Fields() {
		fl.names = append(fl.names, f.Name())
	}
	return fl
}

// Columns are the row's column names, in order.
func (fl *Flattener) Columns() []string { return fl.names }

// Decode reads an envelope's body, putting the row's values in
// vals[:len(Columns())] and using before (as long) for the before-image.
func (fl *Flattener) Decode(body []byte, vals, before []any) (Flat, error) {
	var out Flat
	r := NewReader(body)
	hasAfter, hasBefore := false, false
	for _, f := range fl.fields {
		if f.role != 0 && f.branches != nil && f.role != 'o' {
			isNull, err := nullBranch(r, f.branches)
			if err != nil {
				return out, err
			}
			if isNull {
				continue
			}
		}
		switch f.role {
		case 0:
			if err := f.skip(r); err != nil {
				return out, err
			}
		case 'o':
			op, err := r.Str()
			if err != nil {
				return out, fmt.Errorf("op: %w", err)
			}
			out.Op = op
		case 'a', 'b':
			dst := vals
			if f.role == 'b' {
				dst, hasBefore = before, true
			} else {
				hasAfter = true
			}
			for i, c := range f.row {
				v, err := c.dec(r)
				if err != nil {
					return out, fmt.Errorf("%s: %w", fl.names[i], err)
				}
				dst[i] = v
			}
		case 's':
			if err := readSource(r, f.source, &out); err != nil {
				return out, err
			}
		}
	}
	switch {
	case hasBefore && (out.Op == "d" || !hasAfter):
		copy(vals[:fl.columns], before[:fl.columns])
	case !hasAfter:
		clear(vals[:fl.columns])
	}
	return out, nil
}

// readSource reads a source block, keeping the fields Flat has.
func readSource(r *Reader, fields []sourceField, out *Flat) error {
	for _, sf := range fields {
		if sf.name == "" {
			if err := sf.skip(r); err != nil {
				return err
			}
			continue
		}
		v, err := sf.codec.dec(r)
		if err != nil {
			return fmt.Errorf("source.%s: %w", sf.name, err)
		}
		switch sf.name {
		case "ts_ms":
			out.TsMs = v
		case "schema":
			out.Schema, _ = v.(string)
		case "db":
			out.DB, _ = v.(string)
		case "table":
			out.Table, _ = v.(string)
		}
	}
	return nil
}

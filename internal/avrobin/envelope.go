package avrobin

import (
	"fmt"

	"github.com/hamba/avro/v2"
)

// The raw path: a sink reads Debezium envelopes straight from the log's
// Avro bytes. An envelope is scanned for its op, its source's schema and
// table, and the span of its after-image, without building a map per
// record; the after-image can then be rendered field by field (as COPY
// text or binary, see pgtext.go and pgbinary.go). Anything the raw path
// does not know falls back to decoding the record.

// Envelope reads the parts of one envelope schema a sink needs.
type Envelope struct {
	fields []envField
	after  *avro.RecordSchema // the after-image's schema
}

// An envelope field is skipped, or read for its role.
type envField struct {
	role     byte // 0: skip; 'o': op; 's': source; 'a': after
	skip     Skipper
	branches []avro.Schema // a union's branches; nil for a plain field
	source   *sourceFields
	after    Skipper // over the after-image record
}

// sourceFields reads schema and table from the source block.
type sourceFields struct {
	names []string // "schema", "table" or "" to skip
	skips []Skipper
	types [][]avro.Schema // union branches per field, nil for a plain string
}

// Scanned is what an envelope says, aliasing the record's bytes.
type Scanned struct {
	Op            byte   // 'c', 'u', 'd', 'r', 't', or 0
	After         []byte // the after-image's fields; nil when null
	Schema, Table []byte // the source's schema and table; nil when absent
	HasSource     bool
}

// CompileEnvelope returns the reader of an envelope schema, or nil when s
// is not an envelope the raw path reads (the record is then decoded).
func CompileEnvelope(s avro.Schema) *Envelope {
	rs, ok := s.(*avro.RecordSchema)
	if !ok {
		return nil
	}
	e := &Envelope{}
	var hasOp, hasAfter bool
	for _, f := range rs.Fields() {
		ef := envField{}
		t, branches := f.Type(), []avro.Schema(nil)
		if u, ok := t.(*avro.UnionSchema); ok {
			branches = u.Types()
		}
		var err error
		if ef.skip, err = CompileSkip(t); err != nil {
			return nil
		}
		switch f.Name() {
		case "op":
			if t.Type() != avro.String {
				return nil
			}
			ef.role, hasOp = 'o', true
		case "after", "source":
			rec := RecordBranch(t)
			if rec == nil {
				return nil
			}
			ef.branches = branches
			if f.Name() == "after" {
				if ef.after, err = CompileSkip(rec); err != nil {
					return nil
				}
				ef.role, e.after, hasAfter = 'a', rec, true
				break
			}
			if ef.source = compileSource(rec); ef.source == nil {
				return nil
			}
			ef.role = 's'
		}
		e.fields = append(e.fields, ef)
	}
	if !hasOp || !hasAfter {
		return nil
	}
	return e
}

// RecordBranch is the record a field holds: itself, or the only non-null
// branch of a union; nil if it holds no record.
func RecordBranch(t avro.Schema) *avro.RecordSchema {
	if u, ok := t.(*avro.UnionSchema); ok {
		t = nil
		for _, b := range u.Types() {
			if b.Type() == avro.Null {
				continue
			}
			if t != nil {
				return nil // a second non-null branch
			}
			t = b
		}
	}
	if r, ok := t.(*avro.RefSchema); ok {
		t = r.Schema()
	}
	rec, _ := t.(*avro.RecordSchema)
	return rec
}

// nullBranch reads a union's branch index and says whether it is null.
func nullBranch(r *Reader, branches []avro.Schema) (bool, error) {
	i, err := r.Long()
	if err != nil {
		return false, err
	}
	if i < 0 || i >= int64(len(branches)) {
		return false, fmt.Errorf("union: branch %d out of range", i)
	}
	return branches[i].Type() == avro.Null, nil
}

func compileSource(rs *avro.RecordSchema) *sourceFields {
	sf := &sourceFields{}
	for _, f := range rs.Fields() {
		k, err := CompileSkip(f.Type())
		if err != nil {
			return nil
		}
		name := ""
		var branches []avro.Schema
		if f.Name() == "schema" || f.Name() == "table" {
			name = f.Name()
			switch t := f.Type().(type) {
			case *avro.UnionSchema:
				branches = t.Types()
				for _, b := range branches {
					if b.Type() != avro.Null && b.Type() != avro.String {
						name = ""
					}
				}
			default:
				if t.Type() != avro.String {
					name = ""
				}
			}
		}
		sf.names = append(sf.names, name)
		sf.skips = append(sf.skips, k)
		sf.types = append(sf.types, branches)
	}
	return sf
}

// After is the schema of the envelope's after-image.
func (e *Envelope) After() *avro.RecordSchema { return e.after }

// Scan reads an envelope's body with r.
func (e *Envelope) Scan(r *Reader, body []byte) (Scanned, error) {
	var out Scanned
	r.Reset(body)
	for i := range e.fields {
		f := &e.fields[i]
		switch f.role {
		case 0:
			if err := f.skip(r); err != nil {
				return out, err
			}
			continue
		case 'o':
			b, err := r.Bytes()
			if err != nil {
				return out, err
			}
			if len(b) == 1 {
				out.Op = b[0]
			}
			continue
		}
		if f.branches != nil {
			null, err := nullBranch(r, f.branches)
			if err != nil {
				return out, err
			}
			if null {
				continue
			}
		}
		if f.role == 'a' {
			start := r.Offset()
			if err := f.after(r); err != nil {
				return out, err
			}
			out.After = body[start:r.Offset()]
			continue
		}
		out.HasSource = true
		sf := f.source
		for j, name := range sf.names {
			if name == "" {
				if err := sf.skips[j](r); err != nil {
					return out, err
				}
				continue
			}
			if sf.types[j] != nil {
				null, err := nullBranch(r, sf.types[j])
				if err != nil {
					return out, err
				}
				if null {
					continue
				}
			}
			b, err := r.Bytes()
			if err != nil {
				return out, err
			}
			if name == "schema" {
				out.Schema = b
			} else {
				out.Table = b
			}
		}
	}
	return out, nil
}

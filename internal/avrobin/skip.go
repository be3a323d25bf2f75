package avrobin

import (
	"fmt"

	"github.com/hamba/avro/v2"
)

// MaxDepth bounds how deeply records nest.
const MaxDepth = 256

// Skipper steps over one value of its schema.
type Skipper func(r *Reader) error

// CompileSkip builds the skipper of s; named types refer back to their
// skippers, so recursive records compile.
func CompileSkip(s avro.Schema) (Skipper, error) {
	return compileSkip(s, map[string]*Skipper{})
}

func compileSkip(s avro.Schema, named map[string]*Skipper) (Skipper, error) {
	switch s := s.(type) {
	case *avro.RefSchema:
		if p := named[s.Schema().FullName()]; p != nil {
			return func(r *Reader) error { return (*p)(r) }, nil
		}
		return compileSkip(s.Schema(), named)
	case *avro.NullSchema:
		return func(*Reader) error { return nil }, nil
	case *avro.PrimitiveSchema:
		switch s.Type() {
		case avro.Boolean:
			return fixed(1), nil
		case avro.Int, avro.Long:
			return func(r *Reader) error { _, err := r.Long(); return err }, nil
		case avro.Float:
			return fixed(4), nil
		case avro.Double:
			return fixed(8), nil
		case avro.String, avro.Bytes:
			return func(r *Reader) error { _, err := r.Bytes(); return err }, nil
		}
	case *avro.FixedSchema:
		return fixed(s.Size()), nil
	case *avro.EnumSchema:
		return func(r *Reader) error { _, err := r.Long(); return err }, nil
	case *avro.ArraySchema:
		item, err := compileSkip(s.Items(), named)
		if err != nil {
			return nil, err
		}
		return func(r *Reader) error { return r.Blocks(func() error { return item(r) }) }, nil
	case *avro.MapSchema:
		val, err := compileSkip(s.Values(), named)
		if err != nil {
			return nil, err
		}
		return func(r *Reader) error {
			return r.Blocks(func() error {
				if _, err := r.Bytes(); err != nil {
					return err
				}
				return val(r)
			})
		}, nil
	case *avro.UnionSchema:
		branches := make([]Skipper, len(s.Types()))
		for i, t := range s.Types() {
			b, err := compileSkip(t, named)
			if err != nil {
				return nil, err
			}
			branches[i] = b
		}
		return func(r *Reader) error {
			i, err := r.Long()
			if err != nil {
				return err
			}
			if i < 0 || i >= int64(len(branches)) {
				return fmt.Errorf("union: branch %d out of range", i)
			}
			return branches[i](r)
		}, nil
	case *avro.RecordSchema:
		self := new(Skipper)
		named[s.FullName()] = self
		fields := make([]Skipper, len(s.Fields()))
		for i, f := range s.Fields() {
			k, err := compileSkip(f.Type(), named)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", s.FullName(), f.Name(), err)
			}
			fields[i] = k
		}
		*self = func(r *Reader) error {
			if r.Depth++; r.Depth > MaxDepth {
				return fmt.Errorf("avro: records nest deeper than %d", MaxDepth)
			}
			defer func() { r.Depth-- }()
			for _, k := range fields {
				if err := k(r); err != nil {
					return err
				}
			}
			return nil
		}
		return *self, nil
	}
	return nil, fmt.Errorf("avro: schema type %s is not supported", s.Type())
}

func fixed(n int) Skipper {
	return func(r *Reader) error { _, err := r.Take(n); return err }
}

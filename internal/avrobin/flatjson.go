package avrobin

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	"github.com/hamba/avro/v2"
)

// FlatJSON reads a Debezium envelope's Avro binary straight into the JSON
// line of its flattened change, the same bytes AppendJSON makes of the
// flattened row (the row's columns, then __op, __source_ts_ms,
// __position, __partition and __offset), with no value of the model in
// between for columns of plain types.
type FlatJSON struct {
	fields  []flatJSONField
	names   [][]byte // `"name":` of each column, the first without a comma
	columns int
}

type flatJSONField struct {
	role     byte
	skip     Skipper
	branches []avro.Schema
	cols     []jsonColumn
	source   []sourceField
}

type jsonColumn func(r *Reader, dst []byte) ([]byte, error)

// CompileFlatJSON returns the reader of an envelope schema into flattened
// JSON lines, or nil when it is not an envelope.
func CompileFlatJSON(envelope avro.Schema) *FlatJSON {
	fl := CompileFlattener(envelope)
	rs, _ := Deref(envelope).(*avro.RecordSchema)
	if fl == nil || rs == nil {
		return nil
	}
	named := map[string]*Codec{}
	fj := &FlatJSON{columns: fl.columns}
	for i, name := range fl.names {
		var b []byte
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, name)
		fj.names = append(fj.names, append(b, ':'))
	}
	for i, f := range rs.Fields() {
		ff := flatJSONField{role: fl.fields[i].role, skip: fl.fields[i].skip, branches: fl.fields[i].branches, source: fl.fields[i].source}
		if ff.role == 'a' || ff.role == 'b' {
			for _, rf := range RecordBranch(f.Type()).Fields() {
				col := compileJSONColumn(rf.Type(), named)
				if col == nil {
					return nil
				}
				ff.cols = append(ff.cols, col)
			}
		}
		fj.fields = append(fj.fields, ff)
	}
	return fj
}

func compileJSONColumn(t avro.Schema, named map[string]*Codec) jsonColumn {
	t = Deref(t)
	if u, ok := t.(*avro.UnionSchema); ok {
		types := u.Types()
		cols := make([]jsonColumn, len(types))
		for i, b := range types {
			b = Deref(b)
			if b.Type() == avro.Null {
				cols[i] = func(_ *Reader, dst []byte) ([]byte, error) { return append(dst, "null"...), nil }
				continue
			}
			if cols[i] = jsonLeaf(b); cols[i] == nil {
				return genericJSON(t, named)
			}
		}
		return func(r *Reader, dst []byte) ([]byte, error) {
			i, err := r.Long()
			if err != nil {
				return dst, err
			}
			if i < 0 || i >= int64(len(cols)) {
				return dst, fmt.Errorf("union: branch %d out of range", i)
			}
			return cols[i](r, dst)
		}
	}
	if c := jsonLeaf(t); c != nil {
		return c
	}
	return genericJSON(t, named)
}

// genericJSON decodes the value and renders it as AppendJSON does.
func genericJSON(t avro.Schema, named map[string]*Codec) jsonColumn {
	c, err := compileNode(t, named)
	if err != nil {
		return nil
	}
	s := NonNull(t)
	return func(r *Reader, dst []byte) ([]byte, error) {
		v, err := c.dec(r)
		if err != nil {
			return dst, err
		}
		return AppendJSON(dst, v, s)
	}
}

// jsonLeaf renders a value of plain type t as AppendJSON renders its
// decoded value, or is nil for a type it does not read.
func jsonLeaf(t avro.Schema) jsonColumn {
	switch k := KindOf(t); k {
	case KindBoolean:
		return func(r *Reader, dst []byte) ([]byte, error) {
			b, err := r.Boolean()
			return strconv.AppendBool(dst, b), err
		}
	case KindInt, KindLong:
		read := (*Reader).Long
		if k == KindInt {
			read = (*Reader).Int
		}
		return func(r *Reader, dst []byte) ([]byte, error) {
			n, err := read(r)
			return strconv.AppendInt(dst, n, 10), err
		}
	case KindFloat:
		return func(r *Reader, dst []byte) ([]byte, error) {
			f, err := r.Float()
			return appendJSONFloat(dst, float64(f), 32), err
		}
	case KindDouble:
		return func(r *Reader, dst []byte) ([]byte, error) {
			f, err := r.Double()
			return appendJSONFloat(dst, f, 64), err
		}
	case KindString, KindUUID:
		if e, ok := t.(*avro.EnumSchema); ok {
			symbols := e.Symbols()
			return func(r *Reader, dst []byte) ([]byte, error) {
				i, err := r.Int()
				if err != nil {
					return dst, err
				}
				if i < 0 || i >= int64(len(symbols)) {
					return dst, fmt.Errorf("enum: symbol %d out of range", i)
				}
				return appendJSONString(dst, symbols[i]), nil
			}
		}
		return func(r *Reader, dst []byte) ([]byte, error) {
			b, err := r.Bytes()
			return appendJSONString(dst, unsafe.String(unsafe.SliceData(b), len(b))), err
		}
	case KindBytes:
		return func(r *Reader, dst []byte) ([]byte, error) {
			b, err := r.Bytes()
			return appendBase64(dst, b), err
		}
	case KindFixed:
		size := t.(*avro.FixedSchema).Size()
		return func(r *Reader, dst []byte) ([]byte, error) {
			b, err := r.Take(size)
			return appendBase64(dst, b), err
		}
	case KindDate:
		return func(r *Reader, dst []byte) ([]byte, error) {
			n, err := r.Int()
			return appendJSONTime(dst, time.Unix(n*86400, 0)), err
		}
	case KindTimeMillis:
		return func(r *Reader, dst []byte) ([]byte, error) {
			n, err := r.Int()
			return strconv.AppendInt(dst, n*1000, 10), err // as a time.Duration renders: microseconds
		}
	case KindTimeMicros:
		return func(r *Reader, dst []byte) ([]byte, error) {
			n, err := r.Long()
			return strconv.AppendInt(dst, n, 10), err
		}
	case KindTimestampMillis, KindLocalTimestampMillis:
		return func(r *Reader, dst []byte) ([]byte, error) {
			n, err := r.Long()
			return appendJSONTime(dst, time.UnixMilli(n)), err
		}
	case KindTimestampMicros, KindLocalTimestampMicros:
		return func(r *Reader, dst []byte) ([]byte, error) {
			n, err := r.Long()
			return appendJSONTime(dst, time.UnixMicro(n)), err
		}
	case KindDecimal:
		_, d := Logical(t)
		scale, read := d.Scale(), decimalReader(t)
		return func(r *Reader, dst []byte) ([]byte, error) {
			b, err := read(r)
			if err != nil {
				return dst, err
			}
			dst = append(dst, '"')
			return append(appendDecimal(dst, b, scale), '"'), nil
		}
	}
	return nil
}

func appendBase64(dst, b []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

func appendJSONTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// Decode renders an envelope's body as the JSON line of its flattened
// change (with the newline) into dst; before is scratch.
func (fj *FlatJSON) Decode(body, dst, before []byte, position []byte, partition int, offset int64) ([]byte, []byte, Flat, error) {
	var out Flat
	r := NewReader(body)
	start := len(dst)
	dst = append(dst, '{')
	before = before[:0]
	hasAfter, hasBefore := false, false
	for _, f := range fj.fields {
		if f.role != 0 && f.role != 'o' && f.branches != nil {
			isNull, err := nullBranch(r, f.branches)
			if err != nil {
				return dst, before, out, err
			}
			if isNull {
				continue
			}
		}
		switch f.role {
		case 0:
			if err := f.skip(r); err != nil {
				return dst, before, out, err
			}
		case 'o':
			op, err := r.Str()
			if err != nil {
				return dst, before, out, fmt.Errorf("op: %w", err)
			}
			out.Op = op
		case 'a', 'b':
			var err error
			if f.role == 'b' {
				before, hasBefore = append(before, '{'), true
				if before, err = fj.columnsJSON(r, f.cols, before); err != nil {
					return dst, before, out, err
				}
			} else {
				hasAfter = true
				if dst, err = fj.columnsJSON(r, f.cols, dst); err != nil {
					return dst, before, out, err
				}
			}
		case 's':
			if err := readSource(r, f.source, &out); err != nil {
				return dst, before, out, err
			}
		}
	}
	switch {
	case hasBefore && (out.Op == "d" || !hasAfter):
		dst = append(dst[:start], before...)
	case !hasAfter: // a truncate: every column null
		for _, n := range fj.names {
			dst = append(append(dst, n...), "null"...)
		}
	}
	sep := ","
	if fj.columns == 0 {
		sep = ""
	}
	dst = append(dst, sep+`"__op":`...)
	dst = appendJSONString(dst, out.Op)
	dst = append(dst, `,"__source_ts_ms":`...)
	if ts, ok := toInt(out.TsMs); ok {
		dst = strconv.AppendInt(dst, ts, 10)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"__position":`...)
	if position != nil {
		dst = append(dst, '"')
		dst = hex.AppendEncode(dst, position)
		dst = append(dst, '"')
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"__partition":`...)
	dst = strconv.AppendInt(dst, int64(partition), 10)
	dst = append(dst, `,"__offset":`...)
	dst = strconv.AppendInt(dst, offset, 10)
	return append(dst, '}', '\n'), before, out, nil
}

// columnsJSON renders an image's columns, "name":value each.
func (fj *FlatJSON) columnsJSON(r *Reader, cols []jsonColumn, dst []byte) ([]byte, error) {
	var err error
	for i, col := range cols {
		dst = append(dst, fj.names[i]...)
		if dst, err = col(r, dst); err != nil {
			return dst, fmt.Errorf("%s: %w", fj.names[i], err)
		}
	}
	return dst, nil
}

// decimalReader reads a decimal's unscaled bytes, of a bytes or a fixed
// type; they alias the input.
func decimalReader(t avro.Schema) func(*Reader) ([]byte, error) {
	if f, ok := t.(*avro.FixedSchema); ok {
		size := f.Size()
		return func(r *Reader) ([]byte, error) { return r.Take(size) }
	}
	return (*Reader).Bytes
}

package sql

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/internal/avrobin"
)

// The raw path: postgres-sink reads Debezium envelopes straight from the
// log's Avro bytes. An envelope is scanned for its op, its source's schema
// and table, and the span of its after-image, and the after-image is
// rendered into COPY text field by field, without building a map per
// record. The text is what pgText gives for the decoded value (the same
// helpers write it), and anything the raw path does not know falls back
// to decoding the record.

// envelope reads the parts of one envelope schema the sink needs.
type envelope struct {
	fields []envField
	after  *avro.RecordSchema // the after-image's schema
}

// An envelope field is skipped, or read for its role.
type envField struct {
	role     byte // 0: skip; 'o': op; 's': source; 'a': after
	skip     avrobin.Skipper
	branches []avro.Schema // a union's branches; nil for a plain field
	source   *sourceFields
	after    avrobin.Skipper // over the after-image record
}

// sourceFields reads schema and table from the source block.
type sourceFields struct {
	names []string // "schema", "table" or "" to skip
	skips []avrobin.Skipper
	types [][]avro.Schema // union branches per field, nil for a plain string
}

// scanned is what an envelope says, aliasing the record's bytes.
type scanned struct {
	op            byte   // 'c', 'u', 'd', 'r', 't', or 0
	after         []byte // the after-image's fields; nil when null
	schema, table []byte
	hasSource     bool
}

// compileEnvelope returns the reader of an envelope schema, or nil when s
// is not an envelope the raw path reads (the record is then decoded).
func compileEnvelope(s avro.Schema) *envelope {
	rs, ok := s.(*avro.RecordSchema)
	if !ok {
		return nil
	}
	e := &envelope{}
	var hasOp, hasAfter bool
	for _, f := range rs.Fields() {
		ef := envField{}
		t, branches := f.Type(), []avro.Schema(nil)
		if u, ok := t.(*avro.UnionSchema); ok {
			branches = u.Types()
		}
		var err error
		if ef.skip, err = avrobin.CompileSkip(t); err != nil {
			return nil
		}
		switch f.Name() {
		case "op":
			if t.Type() != avro.String {
				return nil
			}
			ef.role, hasOp = 'o', true
		case "after", "source":
			rec := recordBranch(t)
			if rec == nil {
				return nil
			}
			ef.branches = branches
			if f.Name() == "after" {
				if ef.after, err = avrobin.CompileSkip(rec); err != nil {
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

// recordBranch is the record a field holds: itself, or the only non-null
// branch of a union; nil if it holds no record.
func recordBranch(t avro.Schema) *avro.RecordSchema {
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
func nullBranch(r *avrobin.Reader, branches []avro.Schema) (bool, error) {
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
		k, err := avrobin.CompileSkip(f.Type())
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

// scan reads an envelope's body with r.
func (e *envelope) scan(r *avrobin.Reader, body []byte) (scanned, error) {
	var out scanned
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
				out.op = b[0]
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
			out.after = body[start:r.Offset()]
			continue
		}
		out.hasSource = true
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
				out.schema = b
			} else {
				out.table = b
			}
		}
	}
	return out, nil
}

// fieldWriter appends one field of a raw row in a COPY format.
type fieldWriter func(r *avrobin.Reader, dst []byte) ([]byte, error)

// rowText renders an after-image's fields as one COPY text line, in the
// schema's field order: each field escaped, or \N for NULL.
type rowText []fieldWriter

// compileRowText builds the renderer of a record schema for a target
// table's column types; ok is false when a field's type is one the raw
// path does not render (the records are then decoded).
func compileRowText(rs *avro.RecordSchema, cols map[string]string) (rowText, bool) {
	out := make(rowText, 0, len(rs.Fields()))
	for _, f := range rs.Fields() {
		ft := compileFieldText(f.Type(), cols[f.Name()])
		if ft == nil {
			return nil, false
		}
		out = append(out, ft)
	}
	return out, true
}

func (rt rowText) append(r *avrobin.Reader, dst, after []byte) ([]byte, error) {
	r.Reset(after)
	for i, f := range rt {
		if i > 0 {
			dst = append(dst, '\t')
		}
		var err error
		if dst, err = f(r, dst); err != nil {
			return dst, err
		}
	}
	return append(dst, '\n'), nil
}

func compileFieldText(t avro.Schema, typ string) fieldWriter {
	return compileField(t, func(v avro.Schema) fieldWriter { return compileValueText(v, typ) },
		func(_ *avrobin.Reader, dst []byte) ([]byte, error) { return append(dst, `\N`...), nil })
}

// compileField builds the writer of a field's value in one COPY format:
// value compiles a non-null type (nil: the format does not cover it),
// null writes NULL, and a union reads its branch first.
func compileField(t avro.Schema, value func(avro.Schema) fieldWriter, null fieldWriter) fieldWriter {
	if r, ok := t.(*avro.RefSchema); ok {
		t = r.Schema()
	}
	u, ok := t.(*avro.UnionSchema)
	if !ok {
		return value(t)
	}
	branches := make([]fieldWriter, len(u.Types()))
	for i, b := range u.Types() {
		if b.Type() == avro.Null {
			branches[i] = null
			continue
		}
		if branches[i] = value(b); branches[i] == nil {
			return nil
		}
	}
	return func(r *avrobin.Reader, dst []byte) ([]byte, error) {
		i, err := r.Long()
		if err != nil {
			return dst, err
		}
		if i < 0 || i >= int64(len(branches)) {
			return dst, fmt.Errorf("union: branch %d out of range", i)
		}
		return branches[i](r, dst)
	}
}

// compileValueText renders the non-null types the raw path knows; nil
// for the others (arrays, maps, records, enums, plain fixed).
func compileValueText(t avro.Schema, typ string) fieldWriter {
	integer := func(read func(*avrobin.Reader) (int64, error), text func(dst []byte, n int64) []byte) fieldWriter {
		return func(r *avrobin.Reader, dst []byte) ([]byte, error) {
			n, err := read(r)
			if err != nil {
				return dst, err
			}
			return text(dst, n), nil
		}
	}
	asTime := func(at func(int64) time.Time) func([]byte, int64) []byte {
		return func(dst []byte, n int64) []byte { return appendPgTime(dst, at(n), typ) }
	}
	asDuration := func(unit time.Duration) func([]byte, int64) []byte {
		return func(dst []byte, n int64) []byte { return appendPgDuration(dst, time.Duration(n)*unit) }
	}
	decimalOf := func(take func(*avrobin.Reader) ([]byte, error)) fieldWriter {
		_, d := avrobin.Logical(t)
		scale := d.Scale()
		return func(r *avrobin.Reader, dst []byte) ([]byte, error) {
			b, err := take(r)
			if err != nil {
				return dst, err
			}
			return appendDecimal(dst, b, scale), nil
		}
	}
	decimal := func(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }
	switch avrobin.KindOf(t) {
	case avrobin.KindBoolean:
		return func(r *avrobin.Reader, dst []byte) ([]byte, error) {
			b, err := r.Boolean()
			return strconv.AppendBool(dst, b), err
		}
	case avrobin.KindInt:
		return integer((*avrobin.Reader).Int, decimal)
	case avrobin.KindDate:
		return integer((*avrobin.Reader).Int, asTime(func(n int64) time.Time { return time.Unix(n*86400, 0) }))
	case avrobin.KindTimeMillis:
		return integer((*avrobin.Reader).Int, asDuration(time.Millisecond))
	case avrobin.KindLong:
		return integer((*avrobin.Reader).Long, decimal)
	case avrobin.KindTimestampMillis, avrobin.KindLocalTimestampMillis:
		return integer((*avrobin.Reader).Long, asTime(time.UnixMilli))
	case avrobin.KindTimestampMicros, avrobin.KindLocalTimestampMicros:
		return integer((*avrobin.Reader).Long, asTime(time.UnixMicro))
	case avrobin.KindTimeMicros:
		return integer((*avrobin.Reader).Long, asDuration(time.Microsecond))
	case avrobin.KindFloat:
		return func(r *avrobin.Reader, dst []byte) ([]byte, error) {
			f, err := r.Float()
			if err != nil {
				return dst, err
			}
			return appendFloat(dst, float64(f), 32), nil
		}
	case avrobin.KindDouble:
		return func(r *avrobin.Reader, dst []byte) ([]byte, error) {
			f, err := r.Double()
			if err != nil {
				return dst, err
			}
			return appendFloat(dst, f, 64), nil
		}
	case avrobin.KindString, avrobin.KindUUID:
		return func(r *avrobin.Reader, dst []byte) ([]byte, error) {
			b, err := r.Bytes()
			if err != nil {
				return dst, err
			}
			return appendCopyText(dst, b), nil
		}
	case avrobin.KindBytes:
		return func(r *avrobin.Reader, dst []byte) ([]byte, error) {
			b, err := r.Bytes()
			if err != nil {
				return dst, err
			}
			return hex.AppendEncode(append(dst, `\\x`...), b), nil // \x, escaped for COPY
		}
	case avrobin.KindDecimal:
		if f, ok := avrobin.Deref(t).(*avro.FixedSchema); ok {
			size := f.Size()
			return decimalOf(func(r *avrobin.Reader) ([]byte, error) { return r.Take(size) })
		}
		return decimalOf((*avrobin.Reader).Bytes)
	}
	return nil
}

// appendDecimal writes an Avro decimal (big-endian two's complement, over
// 10^scale) as ratText does: exact, without trailing zeros.
func appendDecimal(dst, b []byte, scale int) []byte {
	if len(b) > 8 || scale > 18 {
		n := new(big.Int).SetBytes(b)
		if len(b) > 0 && b[0]&0x80 != 0 {
			n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
		}
		return append(dst, ratText(new(big.Rat).SetFrac(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))...)
	}
	var v int64
	if len(b) > 0 && b[0]&0x80 != 0 {
		v = -1
	}
	for _, c := range b {
		v = v<<8 | int64(c)
	}
	neg := v < 0
	u := uint64(v)
	if neg {
		u = -u
	}
	var digits [24]byte
	d := strconv.AppendUint(digits[:0], u, 10)
	for len(d) <= scale { // at least one digit before the point
		d = append([]byte{'0'}, d...)
	}
	whole, frac := d[:len(d)-scale], d[len(d)-scale:]
	frac = bytes.TrimRight(frac, "0")
	if neg && (len(frac) > 0 || string(whole) != "0") {
		dst = append(dst, '-')
	}
	dst = append(dst, whole...)
	if len(frac) > 0 {
		dst = append(append(dst, '.'), frac...)
	}
	return dst
}

// keyIdent reads a raw key's identity: the bytes appendChangeKey writes
// for the decoded key, so raw and decoded keys of one row collapse
// alike. It covers keys of up to 8 long, int or string fields (no
// logical types), the commonest keys by far; others are decoded.
type keyIdent struct {
	kinds []avro.Type // per field, in schema order
	names []string    // per field
	order []int       // the fields by name, as sortedNames orders them
}

func compileKeyIdent(s avro.Schema) *keyIdent {
	rs, ok := s.(*avro.RecordSchema)
	if !ok || len(rs.Fields()) == 0 || len(rs.Fields()) > 8 {
		return nil
	}
	k := &keyIdent{}
	for i, f := range rs.Fields() {
		t := f.Type()
		if l, ok := t.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
			return nil
		}
		switch t.Type() {
		case avro.Int, avro.Long, avro.String:
		default:
			return nil
		}
		if _, ok := t.(*avro.PrimitiveSchema); !ok {
			return nil
		}
		k.kinds = append(k.kinds, t.Type())
		k.names = append(k.names, f.Name())
		k.order = append(k.order, i)
	}
	sort.SliceStable(k.order, func(a, b int) bool { return k.names[k.order[a]] < k.names[k.order[b]] })
	return k
}

// append writes the identity of the key in body.
func (k *keyIdent) append(r *avrobin.Reader, dst, body []byte) ([]byte, error) {
	var ints [8]int64
	var strs [8][]byte
	r.Reset(body)
	for i, t := range k.kinds {
		var err error
		if t == avro.String {
			strs[i], err = r.Bytes()
		} else {
			ints[i], err = r.Long()
		}
		if err != nil {
			return dst, fmt.Errorf("key: %w", err)
		}
	}
	for _, i := range k.order {
		dst = append(append(dst, k.names[i]...), '=')
		if k.kinds[i] == avro.String {
			dst = append(dst, strs[i]...)
		} else {
			dst = strconv.AppendInt(dst, ints[i], 10)
		}
		if len(k.kinds) > 1 {
			dst = append(dst, 0)
		}
	}
	return dst, nil
}

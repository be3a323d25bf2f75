package avrobin

import (
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strings"

	"github.com/hamba/avro/v2"
	"github.com/parquet-go/parquet-go"
)

// FlatParquet reads a Debezium envelope's Avro binary straight into the
// Parquet row of its flattened change (the row's columns, each of which
// may be null, then __op, __source_ts_ms, __position, __partition and
// __offset, as the flattened schema compiled into pq has them), with no
// value of the model in between for the columns of plain types; other
// columns (records, arrays, maps, unions of several types) are decoded
// and shredded as Row does. The row's bytes are copies: it may outlive
// the envelope's.
type FlatParquet struct {
	fields  []flatPQField
	columns int
	nodes   []*pqNode // the row's columns
	extra   []*pqNode // the nodes of the five extra columns
}

type flatPQField struct {
	role     byte // 'b' before, 'a' after, 'o' op, 's' source, 0 skipped
	skip     Skipper
	branches []avro.Schema
	cols     []rawColumn
	source   []sourceField
}

// rawColumn writes one column of the row from its Avro binary.
type rawColumn func(r *Reader, dst parquet.Row) (parquet.Row, int, error)

// ParquetRow is a flattened change already shredded for a Parquet file
// of its shape (FlatParquet.Decode).
type ParquetRow struct {
	Row  parquet.Row
	Size int
}

// CompileFlatParquet returns the reader of an envelope schema into rows
// of pq (compiled from the flattened schema), or nil when it cannot.
func CompileFlatParquet(envelope avro.Schema, pq *Parquet) *FlatParquet {
	fl := CompileFlattener(envelope)
	rs, _ := Deref(envelope).(*avro.RecordSchema)
	if fl == nil || rs == nil || len(pq.root.fields) != fl.columns+5 {
		return nil
	}
	named := map[string]*Codec{}
	fp := &FlatParquet{columns: fl.columns, nodes: pq.root.fields[:fl.columns], extra: pq.root.fields[fl.columns:]}
	for i, f := range rs.Fields() {
		ff := flatPQField{role: fl.fields[i].role, skip: fl.fields[i].skip, branches: fl.fields[i].branches, source: fl.fields[i].source}
		if ff.role == 'a' || ff.role == 'b' {
			rec := RecordBranch(f.Type())
			for j, rf := range rec.Fields() {
				col := compileRawColumn(rf.Type(), pq.root.fields[j], named)
				if col == nil {
					return nil
				}
				ff.cols = append(ff.cols, col)
			}
		}
		fp.fields = append(fp.fields, ff)
	}
	for i, n := range fp.extra {
		if n.kind != []Kind{KindString, KindLong, KindString, KindInt, KindLong}[i] {
			return nil
		}
	}
	return fp
}

// compileRawColumn compiles the writer of a column of Avro type t into
// node n (optional, as every flattened column is).
func compileRawColumn(t avro.Schema, n *pqNode, named map[string]*Codec) rawColumn {
	if !n.optional {
		return nil
	}
	t = Deref(t)
	null := -1
	inner := t
	if u, ok := t.(*avro.UnionSchema); ok {
		types := u.Types()
		if dec := decimalOrText(u); dec != nil { // a decimal, or NaN as text: read the decimal's bytes as they are
			leaf := rawLeaf(dec, n)
			if leaf == nil {
				return genericColumn(t, n, named)
			}
			return func(r *Reader, dst parquet.Row) (parquet.Row, int, error) {
				i, err := r.Long()
				if err != nil {
					return dst, 0, err
				}
				if i < 0 || i >= int64(len(types)) {
					return dst, 0, fmt.Errorf("union: branch %d out of range", i)
				}
				switch b := Deref(types[i]); {
				case b.Type() == avro.Null:
					return append(dst, parquet.NullValue().Level(0, n.defLevel-1, n.col)), 0, nil
				case KindOf(b) == KindDecimal:
					v, size, err := leaf(r)
					return append(dst, v.Level(0, n.defLevel, n.col)), size, err
				default:
					text, err := r.Str()
					if err != nil {
						return dst, 0, err
					}
					return dst, 0, fmt.Errorf("decimal: %q is not a number", text)
				}
			}
		}
		if len(types) != 2 || !u.Nullable() {
			return genericColumn(t, n, named)
		}
		for i, b := range types {
			if b.Type() == avro.Null {
				null = i
			} else {
				inner = Deref(b)
			}
		}
	}
	leaf := rawLeaf(inner, n)
	if leaf == nil {
		return genericColumn(t, n, named)
	}
	nullDef := n.defLevel - 1
	if null < 0 {
		return func(r *Reader, dst parquet.Row) (parquet.Row, int, error) {
			v, size, err := leaf(r)
			return append(dst, v.Level(0, n.defLevel, n.col)), size, err
		}
	}
	return func(r *Reader, dst parquet.Row) (parquet.Row, int, error) {
		i, err := r.Long()
		if err != nil {
			return dst, 0, err
		}
		if i == int64(null) {
			return append(dst, parquet.NullValue().Level(0, nullDef, n.col)), 0, nil
		}
		if i < 0 || i > 1 {
			return dst, 0, fmt.Errorf("union: branch %d out of range", i)
		}
		v, size, err := leaf(r)
		return append(dst, v.Level(0, n.defLevel, n.col)), size, err
	}
}

// genericColumn decodes the value and shreds it as Row does.
func genericColumn(t avro.Schema, n *pqNode, named map[string]*Codec) rawColumn {
	c, err := compileNode(t, named)
	if err != nil {
		return nil
	}
	return func(r *Reader, dst parquet.Row) (parquet.Row, int, error) {
		v, err := c.dec(r)
		if err != nil {
			return dst, 0, err
		}
		return n.shred(dst, v, 0, 0)
	}
}

// rawLeaf reads a value of plain type t as node n's Parquet value, or is
// nil when t is not one it reads.
func rawLeaf(t avro.Schema, n *pqNode) func(r *Reader) (parquet.Value, int, error) {
	if n.kind != KindOf(t) && !(n.kind == KindString && t.Type() == avro.Enum) {
		return nil
	}
	switch n.kind {
	case KindBoolean:
		return func(r *Reader) (parquet.Value, int, error) {
			b, err := r.Boolean()
			return parquet.BooleanValue(b), 1, err
		}
	case KindInt, KindDate, KindTimeMillis:
		return func(r *Reader) (parquet.Value, int, error) {
			i, err := r.Int()
			return parquet.Int32Value(int32(i)), 4, err
		}
	case KindLong, KindTimeMicros, KindTimestampMillis, KindTimestampMicros, KindLocalTimestampMillis, KindLocalTimestampMicros:
		return func(r *Reader) (parquet.Value, int, error) {
			i, err := r.Long()
			return parquet.Int64Value(i), 8, err
		}
	case KindFloat:
		return func(r *Reader) (parquet.Value, int, error) {
			f, err := r.Float()
			return parquet.FloatValue(f), 4, err
		}
	case KindDouble:
		return func(r *Reader) (parquet.Value, int, error) {
			f, err := r.Double()
			return parquet.DoubleValue(f), 8, err
		}
	case KindString:
		if e, ok := t.(*avro.EnumSchema); ok {
			symbols := e.Symbols()
			return func(r *Reader) (parquet.Value, int, error) {
				i, err := r.Int()
				if err != nil {
					return parquet.Value{}, 0, err
				}
				if i < 0 || i >= int64(len(symbols)) {
					return parquet.Value{}, 0, fmt.Errorf("enum: symbol %d out of range", i)
				}
				return parquet.ByteArrayValue(unsafeBytes(symbols[i])), len(symbols[i]), nil
			}
		}
		return copiedBytes(parquet.ByteArrayValue)
	case KindBytes:
		return copiedBytes(parquet.ByteArrayValue)
	case KindUUID:
		return func(r *Reader) (parquet.Value, int, error) {
			b, err := r.Bytes()
			if err != nil {
				return parquet.Value{}, 0, err
			}
			u, err := hex.DecodeString(strings.ReplaceAll(string(b), "-", ""))
			if err != nil || len(u) != 16 {
				return parquet.Value{}, 0, fmt.Errorf("uuid: %q is not a UUID", b)
			}
			return parquet.FixedLenByteArrayValue(u), 16, nil
		}
	case KindFixed:
		size := t.(*avro.FixedSchema).Size()
		return func(r *Reader) (parquet.Value, int, error) {
			b, err := r.Take(size)
			return parquet.FixedLenByteArrayValue(append([]byte(nil), b...)), size, err
		}
	case KindDecimal:
		read := decimalReader(t)
		return func(r *Reader) (parquet.Value, int, error) {
			b, err := read(r)
			if err != nil {
				return parquet.Value{}, 0, err
			}
			return n.unscaledValue(b)
		}
	}
	return nil
}

func copiedBytes(mk func([]byte) parquet.Value) func(r *Reader) (parquet.Value, int, error) {
	return func(r *Reader) (parquet.Value, int, error) {
		b, err := r.Bytes()
		if err != nil {
			return parquet.Value{}, 0, err
		}
		return mk(append([]byte(nil), b...)), len(b), nil
	}
}

// unscaledValue is a decimal's unscaled two's complement bytes as n's
// column holds it.
func (n *pqNode) unscaledValue(b []byte) (parquet.Value, int, error) {
	if n.width == 0 && len(b) <= 8 { // INT32 or INT64: sign-extend
		var x int64
		if len(b) > 0 && b[0]&0x80 != 0 {
			x = -1
		}
		for _, c := range b {
			x = x<<8 | int64(c)
		}
		if digits := decimalDigits(x); digits > n.precision {
			return parquet.Value{}, 0, fmt.Errorf("decimal: %d has more than %d digits", x, n.precision)
		}
		if n.precision <= 9 {
			return parquet.Int32Value(int32(x)), 4, nil
		}
		return parquet.Int64Value(x), 8, nil
	}
	u := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		u.Sub(u, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
	}
	return n.leaf(u)
}

func decimalDigits(x int64) int {
	if x == math.MinInt64 {
		return 19
	}
	if x < 0 {
		x = -x
	}
	d := 1
	for x >= 10 {
		x /= 10
		d++
	}
	return d
}

// Decode reads an envelope's body into row (reset; before is scratch for
// the before-image) and says what else it read.
func (fp *FlatParquet) Decode(body []byte, row, before parquet.Row, position []byte, partition int, offset int64) (parquet.Row, parquet.Row, int, Flat, error) {
	var out Flat
	r := NewReader(body)
	row, before = row[:0], before[:0]
	hasAfter, hasBefore := false, false
	size, beforeSize := 0, 0
	for _, f := range fp.fields {
		if f.role != 0 && f.role != 'o' && f.branches != nil {
			isNull, err := nullBranch(r, f.branches)
			if err != nil {
				return row, before, 0, out, err
			}
			if isNull {
				continue
			}
		}
		switch f.role {
		case 0:
			if err := f.skip(r); err != nil {
				return row, before, 0, out, err
			}
		case 'o':
			op, err := r.Str()
			if err != nil {
				return row, before, 0, out, fmt.Errorf("op: %w", err)
			}
			out.Op = op
		case 'a', 'b':
			dst, n := row, 0
			if f.role == 'b' {
				dst = before
			}
			for i, col := range f.cols {
				var k int
				var err error
				if dst, k, err = col(r, dst); err != nil {
					return row, before, 0, out, fmt.Errorf("column %d: %w", i, err)
				}
				n += k
			}
			if f.role == 'b' {
				before, beforeSize, hasBefore = dst, n, true
			} else {
				row, size, hasAfter = dst, n, true
			}
		case 's':
			if err := readSource(r, f.source, &out); err != nil {
				return row, before, 0, out, err
			}
		}
	}
	switch {
	case hasBefore && (out.Op == "d" || !hasAfter):
		row = append(row[:0], before...)
		size = beforeSize
	case !hasAfter: // a truncate: no row
		row = row[:0]
		for _, n := range fp.nodes {
			row = n.nulls(row, 0, n.defLevel-1)
		}
	}
	// The extra columns.
	e := fp.extra
	row = append(row, parquet.ByteArrayValue([]byte(out.Op)).Level(0, e[0].defLevel, e[0].col))
	if ts, ok := toInt(out.TsMs); ok {
		row = append(row, parquet.Int64Value(ts).Level(0, e[1].defLevel, e[1].col))
	} else {
		row = append(row, parquet.NullValue().Level(0, e[1].defLevel-1, e[1].col))
	}
	if position != nil {
		h := make([]byte, hex.EncodedLen(len(position)))
		hex.Encode(h, position)
		row = append(row, parquet.ByteArrayValue(h).Level(0, e[2].defLevel, e[2].col))
	} else {
		row = append(row, parquet.NullValue().Level(0, e[2].defLevel-1, e[2].col))
	}
	row = append(row, parquet.Int32Value(int32(partition)).Level(0, e[3].defLevel, e[3].col),
		parquet.Int64Value(offset).Level(0, e[4].defLevel, e[4].col))
	if !sortedByColumn(row) { // repeated groups of several leaves interleave
		sort.SliceStable(row, func(i, j int) bool { return row[i].Column() < row[j].Column() })
	}
	return row, before, size + len(out.Op) + 8 + 2*len(position) + 12, out, nil
}

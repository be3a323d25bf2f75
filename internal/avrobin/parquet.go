package avrobin

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/big"
	"reflect"
	"sort"
	"strings"
	"time"
	"unsafe"

	"github.com/hamba/avro/v2"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"
)

// Parquet: an Avro schema as a Parquet schema, with its logical types
// kept, and values of the model shredded into Parquet rows (each leaf's
// values with their repetition and definition levels) by a tree compiled
// once per schema.
//
//	boolean, int, long, float, double   BOOLEAN, INT32, INT64, FLOAT, DOUBLE
//	string, enum, uuid                  STRING, ENUM, UUID (16 bytes)
//	bytes, fixed                        BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY
//	decimal(p, s)                       DECIMAL(p, s) on BYTE_ARRAY (two's complement)
//	date, time-millis, time-micros      DATE, TIME(MILLIS), TIME(MICROS)
//	timestamp-*                         TIMESTAMP(unit, adjusted to UTC)
//	local-timestamp-*                   TIMESTAMP(unit, not adjusted)
//	record                              a group, fields in the record's order
//	array, map                          LIST, MAP (string keys)
//	["null", T]                         T, optional
//	[decimal, string] (and null)        DECIMAL (a NaN is refused)
//	other unions                        JSON text of the value
//
// A field that is not a union is required.

// Parquet is a compiled Avro schema for Parquet files.
type Parquet struct {
	Schema  *parquet.Schema
	root    *pqNode
	columns int
}

// pqNode shreds one Avro schema node.
type pqNode struct {
	kind      Kind
	avroType  avro.Type
	optional  bool
	fields    []*pqNode // a record's fields, in order
	names     []string
	elem      *pqNode // an array's element, a map's value
	col       int     // a leaf's column index
	first     int     // the first and one past the last column under it
	end       int
	scale     int
	precision int
	width     int // a wide decimal's bytes
	repLevel  int // of a list's or map's repeated group
	defLevel  int // this node's own definition level, when present
	schema    avro.Schema
}

// CompileParquet maps s, a record schema, to Parquet.
func CompileParquet(s avro.Schema) (*Parquet, error) {
	rs, ok := Deref(s).(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("parquet: the schema is a %s, not a record", s.Type())
	}
	c := &pqCompiler{}
	root, node, err := c.record(rs, 0, 0, 0)
	if err != nil {
		return nil, err
	}
	return &Parquet{Schema: parquet.NewSchema(rs.Name(), node), root: root, columns: c.col}, nil
}

type pqCompiler struct{ col int }

func (c *pqCompiler) record(rs *avro.RecordSchema, rep, def, depth int) (*pqNode, parquet.Node, error) {
	if depth > 32 {
		return nil, nil, fmt.Errorf("parquet: %s nests too deep", rs.FullName())
	}
	n := &pqNode{kind: KindOther, avroType: avro.Record, first: c.col, defLevel: def}
	g := &orderedGroup{}
	for _, f := range rs.Fields() {
		child, node, err := c.node(f.Type(), rep, def, depth+1)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f.Name(), err)
		}
		n.fields = append(n.fields, child)
		n.names = append(n.names, f.Name())
		g.fields = append(g.fields, namedField{Node: node, name: f.Name()})
	}
	n.end = c.col
	return n, g, nil
}

// node compiles s at repetition level rep and definition level def (of
// its parent when present).
func (c *pqCompiler) node(s avro.Schema, rep, def, depth int) (*pqNode, parquet.Node, error) {
	s = Deref(s)
	optional := false
	if u, ok := s.(*avro.UnionSchema); ok {
		nonNull := 0
		for _, t := range u.Types() {
			if t.Type() != avro.Null {
				nonNull++
			}
		}
		if dec := decimalOrText(u); dec != nil {
			// A decimal, or its special values as text (PostgreSQL's
			// numeric(p, s)): a DECIMAL column; a NaN cannot be written.
			optional = nonNull < len(u.Types())
			s = dec
		} else if u.Nullable() && nonNull == 1 {
			optional = true
			s = Deref(NonNull(u))
		} else {
			// A union of several types: its value as JSON text.
			n := &pqNode{kind: KindOther, avroType: avro.Union, optional: true, col: c.col, first: c.col, end: c.col + 1, defLevel: def + 1, schema: s}
			c.col++
			return n, parquet.Optional(parquet.JSON()), nil
		}
	}
	if optional {
		def++
	}
	n, node, err := c.required(s, rep, def, depth)
	if err != nil {
		return nil, nil, err
	}
	n.optional = optional
	if optional {
		node = parquet.Optional(node)
	}
	return n, node, nil
}

func (c *pqCompiler) required(s avro.Schema, rep, def, depth int) (*pqNode, parquet.Node, error) {
	switch x := s.(type) {
	case *avro.RecordSchema:
		return c.record(x, rep, def, depth)
	case *avro.ArraySchema:
		// LIST: a repeated group "list" of one "element".
		n := &pqNode{kind: KindOther, avroType: avro.Array, first: c.col, repLevel: rep + 1, defLevel: def}
		elem, node, err := c.node(x.Items(), rep+1, def+1, depth+1)
		if err != nil {
			return nil, nil, err
		}
		n.elem, n.end = elem, c.col
		return n, parquet.List(node), nil
	case *avro.MapSchema:
		n := &pqNode{kind: KindOther, avroType: avro.Map, first: c.col, repLevel: rep + 1, defLevel: def}
		c.col++ // the key
		elem, node, err := c.node(x.Values(), rep+1, def+1, depth+1)
		if err != nil {
			return nil, nil, err
		}
		n.elem, n.end = elem, c.col
		return n, parquet.Map(parquet.String(), node), nil
	}
	k := KindOf(s)
	n := &pqNode{kind: k, avroType: s.Type(), col: c.col, first: c.col, end: c.col + 1, defLevel: def, schema: s}
	c.col++
	var node parquet.Node
	switch k {
	case KindBoolean:
		node = parquet.Leaf(parquet.BooleanType)
	case KindInt:
		node = parquet.Leaf(parquet.Int32Type)
	case KindLong:
		node = parquet.Leaf(parquet.Int64Type)
	case KindFloat:
		node = parquet.Leaf(parquet.FloatType)
	case KindDouble:
		node = parquet.Leaf(parquet.DoubleType)
	case KindString:
		if s.Type() == avro.Enum {
			node = parquet.Enum()
		} else {
			node = parquet.String()
		}
	case KindUUID:
		node = parquet.UUID()
	case KindBytes:
		node = parquet.Leaf(parquet.ByteArrayType)
	case KindFixed:
		node = parquet.Leaf(parquet.FixedLenByteArrayType(s.(*avro.FixedSchema).Size()))
	case KindDate:
		node = parquet.Date()
	case KindTimeMillis:
		node = parquet.TimeAdjusted(parquet.Millisecond, false) // a time of day, in no zone
	case KindTimeMicros:
		node = parquet.TimeAdjusted(parquet.Microsecond, false)
	case KindTimestampMillis:
		node = parquet.Timestamp(parquet.Millisecond)
	case KindTimestampMicros:
		node = parquet.Timestamp(parquet.Microsecond)
	case KindLocalTimestampMillis:
		node = parquet.TimestampAdjusted(parquet.Millisecond, false)
	case KindLocalTimestampMicros:
		node = parquet.TimestampAdjusted(parquet.Microsecond, false)
	case KindDecimal:
		_, d := Logical(s)
		if d.Precision() < 1 {
			return nil, nil, fmt.Errorf("parquet: a decimal without a precision")
		}
		// As Spark writes them: INT32 to 9 digits, INT64 to 18, then
		// fixed-length two's complement wide enough for the precision.
		n.scale, n.precision = d.Scale(), d.Precision()
		switch {
		case n.precision <= 9:
			node = parquet.Decimal(n.scale, n.precision, parquet.Int32Type)
		case n.precision <= 18:
			node = parquet.Decimal(n.scale, n.precision, parquet.Int64Type)
		default:
			n.width = decimalWidth(n.precision)
			node = parquet.Decimal(n.scale, n.precision, parquet.FixedLenByteArrayType(n.width))
		}
	default:
		if s.Type() == avro.Enum {
			n.kind = KindString
			node = parquet.Enum()
			break
		}
		if s.Type() == avro.Null {
			n.avroType, n.optional, n.defLevel = avro.Union, true, def+1 // always null
			return n, parquet.Optional(parquet.String()), nil
		}
		return nil, nil, fmt.Errorf("parquet: no mapping for %s", s.Type())
	}
	return n, node, nil
}

// Row appends v's row to dst (reset), and returns the bytes its values
// take, before encoding; an error names the field that does not fit.
func (p *Parquet) Row(dst parquet.Row, v any) (parquet.Row, int, error) {
	dst = dst[:0]
	size := 0
	var err error
	if dst, size, err = p.root.shred(dst, v, 0, size); err != nil {
		return dst, 0, err
	}
	if !sortedByColumn(dst) { // repeated groups of several leaves interleave
		sort.SliceStable(dst, func(i, j int) bool { return dst[i].Column() < dst[j].Column() })
	}
	return dst, size, nil
}

func sortedByColumn(r parquet.Row) bool {
	for i := 1; i < len(r); i++ {
		if r[i].Column() < r[i-1].Column() {
			return false
		}
	}
	return true
}

// nulls appends a null at definition level def for every leaf under n.
func (n *pqNode) nulls(dst parquet.Row, rep, def int) parquet.Row {
	for c := n.first; c < n.end; c++ {
		dst = append(dst, parquet.NullValue().Level(rep, def, c))
	}
	return dst
}

// shred appends the values of v under n, the first at repetition level
// rep.
func (n *pqNode) shred(dst parquet.Row, v any, rep, size int) (parquet.Row, int, error) {
	if v == nil {
		if !n.optional {
			return dst, size, fmt.Errorf("null where the schema has no null")
		}
		return n.nulls(dst, rep, n.defLevel-1), size, nil
	}
	def := n.defLevel
	switch n.avroType {
	case avro.Record:
		var err error
		switch m := v.(type) {
		case map[string]any:
			for i, f := range n.fields {
				if dst, size, err = f.shred(dst, m[n.names[i]], rep, size); err != nil {
					return dst, size, fmt.Errorf("%s: %w", n.names[i], err)
				}
			}
		case *Ordered:
			inOrder := len(m.Names) == len(n.names) && len(m.Values) == len(n.names)
			for i, f := range n.fields {
				var e any
				if inOrder && m.Names[i] == n.names[i] {
					e = m.Values[i]
				} else {
					e, _ = m.Get(n.names[i])
				}
				if dst, size, err = f.shred(dst, e, rep, size); err != nil {
					return dst, size, fmt.Errorf("%s: %w", n.names[i], err)
				}
			}
		default:
			return dst, size, fmt.Errorf("record: have %T", v)
		}
		return dst, size, nil
	case avro.Array:
		items, ok := v.([]any)
		if !ok {
			return dst, size, fmt.Errorf("array: have %T", v)
		}
		if len(items) == 0 {
			return n.nulls(dst, rep, def), size, nil
		}
		var err error
		for i, e := range items {
			r := rep
			if i > 0 {
				r = n.repLevel
			}
			if dst, size, err = n.elem.shred(dst, e, r, size); err != nil {
				return dst, size, fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return dst, size, nil
	case avro.Map:
		keys, get, ok := mapEntries(v)
		if !ok {
			return dst, size, fmt.Errorf("map: have %T", v)
		}
		if len(keys) == 0 {
			return n.nulls(dst, rep, def), size, nil
		}
		var err error
		for i, k := range keys {
			r := rep
			if i > 0 {
				r = n.repLevel
			}
			dst = append(dst, parquet.ByteArrayValue(unsafeBytes(k)).Level(r, def+1, n.first))
			size += len(k)
			if dst, size, err = n.elem.shred(dst, get(k), r, size); err != nil {
				return dst, size, fmt.Errorf("[%q]: %w", k, err)
			}
		}
		return dst, size, nil
	case avro.Union: // several types: JSON text; or null alone
		if n.schema == nil || n.schema.Type() == avro.Null {
			return n.nulls(dst, rep, def-1), size, nil
		}
		b, err := AppendJSON(nil, v, n.schema)
		if err != nil {
			return dst, size, err
		}
		return append(dst, parquet.ByteArrayValue(b).Level(rep, def, n.col)), size + len(b), nil
	}
	pv, k, err := n.leaf(v)
	if err != nil {
		return dst, size, err
	}
	return append(dst, pv.Level(rep, def, n.col)), size + k, nil
}

// leaf is v as a Parquet value of n's kind, and the bytes it takes.
func (n *pqNode) leaf(v any) (parquet.Value, int, error) {
	switch n.kind {
	case KindBoolean:
		b, ok := v.(bool)
		if !ok {
			return parquet.Value{}, 0, fmt.Errorf("boolean: have %T", v)
		}
		return parquet.BooleanValue(b), 1, nil
	case KindInt:
		i, ok := toInt(v)
		if !ok || i < -1<<31 || i >= 1<<31 {
			return parquet.Value{}, 0, fmt.Errorf("int: have %T %v", v, v)
		}
		return parquet.Int32Value(int32(i)), 4, nil
	case KindLong:
		i, ok := toInt(v)
		if !ok {
			return parquet.Value{}, 0, fmt.Errorf("long: have %T", v)
		}
		return parquet.Int64Value(i), 8, nil
	case KindFloat:
		f, ok := toFloat(v)
		if !ok {
			return parquet.Value{}, 0, fmt.Errorf("float: have %T", v)
		}
		return parquet.FloatValue(float32(f)), 4, nil
	case KindDouble:
		f, ok := toFloat(v)
		if !ok {
			return parquet.Value{}, 0, fmt.Errorf("double: have %T", v)
		}
		return parquet.DoubleValue(f), 8, nil
	case KindString:
		switch x := v.(type) {
		case string:
			return parquet.ByteArrayValue(unsafeBytes(x)), len(x), nil
		case []byte:
			return parquet.ByteArrayValue(x), len(x), nil
		}
		return parquet.Value{}, 0, fmt.Errorf("string: have %T", v)
	case KindUUID:
		s, ok := v.(string)
		if !ok {
			return parquet.Value{}, 0, fmt.Errorf("uuid: have %T", v)
		}
		b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
		if err != nil || len(b) != 16 {
			return parquet.Value{}, 0, fmt.Errorf("uuid: %q is not a UUID", s)
		}
		return parquet.FixedLenByteArrayValue(b), 16, nil
	case KindBytes, KindFixed:
		b, ok := v.([]byte)
		if !ok {
			if s, isStr := v.(string); isStr {
				b = unsafeBytes(s)
			} else {
				return parquet.Value{}, 0, fmt.Errorf("bytes: have %T", v)
			}
		}
		if n.kind == KindFixed {
			if want := n.schema.(*avro.FixedSchema).Size(); len(b) != want {
				return parquet.Value{}, 0, fmt.Errorf("fixed: %d bytes, want %d", len(b), want)
			}
			return parquet.FixedLenByteArrayValue(b), len(b), nil
		}
		return parquet.ByteArrayValue(b), len(b), nil
	case KindDate:
		switch x := v.(type) {
		case time.Time:
			days := x.Unix() / 86400
			if x.Unix() < 0 && x.Unix()%86400 != 0 {
				days--
			}
			return parquet.Int32Value(int32(days)), 4, nil
		}
		i, ok := toInt(v)
		if !ok {
			return parquet.Value{}, 0, fmt.Errorf("date: have %T", v)
		}
		return parquet.Int32Value(int32(i)), 4, nil
	case KindTimeMillis, KindTimeMicros:
		var d time.Duration
		switch x := v.(type) {
		case time.Duration:
			d = x
		default:
			i, ok := toInt(v)
			if !ok {
				return parquet.Value{}, 0, fmt.Errorf("time: have %T", v)
			}
			if n.kind == KindTimeMillis {
				return parquet.Int32Value(int32(i)), 4, nil
			}
			return parquet.Int64Value(i), 8, nil
		}
		if n.kind == KindTimeMillis {
			return parquet.Int32Value(int32(d.Milliseconds())), 4, nil
		}
		return parquet.Int64Value(d.Microseconds()), 8, nil
	case KindTimestampMillis, KindTimestampMicros, KindLocalTimestampMillis, KindLocalTimestampMicros:
		millis := n.kind == KindTimestampMillis || n.kind == KindLocalTimestampMillis
		if t, ok := v.(time.Time); ok {
			if millis {
				return parquet.Int64Value(t.UnixMilli()), 8, nil
			}
			return parquet.Int64Value(t.UnixMicro()), 8, nil
		}
		i, ok := toInt(v)
		if !ok {
			return parquet.Value{}, 0, fmt.Errorf("timestamp: have %T", v)
		}
		return parquet.Int64Value(i), 8, nil
	case KindDecimal:
		u, _ := v.(*big.Int)         // unscaled already
		if b, ok := v.([]byte); ok { // already unscaled two's complement
			u = new(big.Int).SetBytes(b)
			if len(b) > 0 && b[0]&0x80 != 0 {
				u.Sub(u, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
			}
		} else if u == nil {
			var err error
			if u, err = unscaled(v, n.scale); err != nil {
				return parquet.Value{}, 0, err
			}
		}
		if len(new(big.Int).Abs(u).Text(10)) > n.precision {
			return parquet.Value{}, 0, fmt.Errorf("decimal: %s has more than %d digits", u.Text(10), n.precision)
		}
		switch {
		case n.width == 0 && n.precision <= 9:
			return parquet.Int32Value(int32(u.Int64())), 4, nil
		case n.width == 0:
			return parquet.Int64Value(u.Int64()), 8, nil
		}
		b := twosComplement(u)
		if len(b) < n.width { // sign-extended to the column's width
			pad := byte(0)
			if u.Sign() < 0 {
				pad = 0xff
			}
			b = append(bytes.Repeat([]byte{pad}, n.width-len(b)), b...)
		}
		return parquet.FixedLenByteArrayValue(b), n.width, nil
	}
	return parquet.Value{}, 0, fmt.Errorf("parquet: no value for %v", n.kind)
}

// decimalOrText returns the decimal of a union of a decimal and a string
// (and null), else nil.
func decimalOrText(u *avro.UnionSchema) avro.Schema {
	var dec avro.Schema
	text := false
	for _, t := range u.Types() {
		t = Deref(t)
		switch {
		case t.Type() == avro.Null:
		case KindOf(t) == KindDecimal && dec == nil:
			dec = t
		case KindOf(t) == KindString && !text:
			text = true
		default:
			return nil
		}
	}
	if !text {
		return nil
	}
	return dec
}

// decimalWidth is the fewest bytes of two's complement that hold every
// number of precision digits.
func decimalWidth(precision int) int {
	most := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(precision)), nil)
	for n := 1; ; n++ {
		if new(big.Int).Lsh(big.NewInt(1), uint(8*n-1)).Cmp(most) >= 0 {
			return n
		}
	}
}

// mapEntries lists a map's keys in order (the same value, the same bytes).
func mapEntries(v any) ([]string, func(string) any, bool) {
	switch m := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys, func(k string) any { return m[k] }, true
	case map[string]string:
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys, func(k string) any { return m[k] }, true
	}
	return nil, nil, false
}

// unsafeBytes is s without a copy: the writer copies values into its
// column buffers before Row's caller lets go of them.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// orderedGroup is a Parquet group whose fields keep the record's order
// (parquet.Group sorts them by name).
type orderedGroup struct{ fields []parquet.Field }

type namedField struct {
	parquet.Node
	name string
}

func (f namedField) Name() string                           { return f.name }
func (f namedField) Value(base reflect.Value) reflect.Value { return base.FieldByName(goName(f.name)) }

func (g *orderedGroup) ID() int                     { return 0 }
func (g *orderedGroup) String() string              { return fmt.Sprintf("group(%d fields)", len(g.fields)) }
func (g *orderedGroup) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g *orderedGroup) Optional() bool              { return false }
func (g *orderedGroup) Repeated() bool              { return false }
func (g *orderedGroup) Required() bool              { return true }
func (g *orderedGroup) Leaf() bool                  { return false }
func (g *orderedGroup) Fields() []parquet.Field     { return g.fields }
func (g *orderedGroup) Encoding() encoding.Encoding { return nil }
func (g *orderedGroup) Compression() compress.Codec { return nil }
func (g *orderedGroup) GoType() reflect.Type {
	fields := make([]reflect.StructField, len(g.fields))
	for i, f := range g.fields {
		fields[i] = reflect.StructField{Name: goName(f.Name()), Type: f.GoType(), Tag: reflect.StructTag(`parquet:"` + f.Name() + `"`)}
	}
	return reflect.StructOf(fields)
}

// goName is an exported Go name for a field, for GoType.
func goName(name string) string {
	var b strings.Builder
	b.WriteString("F_")
	for _, r := range name {
		if r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "_%x_", r)
		}
	}
	return b.String()
}

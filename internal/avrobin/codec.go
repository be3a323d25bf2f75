package avrobin

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
)

// Codec writes and reads Avro binary for one schema in Eddy's value
// model: records as map[string]any, a nullable field as nil or its value
// (no union wrappers), arrays as []any, logical types as Go types
// (timestamps and dates as time.Time, times as time.Duration, decimals as
// *big.Rat). It is compiled once per schema into a tree of small codecs,
// so a record costs a type switch per field and no reflection; hamba/avro's
// generic map path looked up a codec per field value and needed the union
// wrappers allocated on every record.
//
// Decoding never panics on malformed input: every length is checked
// against what is left.
type Codec struct {
	enc func(dst []byte, v any) ([]byte, error)
	dec func(r *Reader) (any, error)
}

// Encode appends v, a value of the model, in Avro binary.
func (c *Codec) Encode(dst []byte, v any) ([]byte, error) { return c.enc(dst, v) }

// Decode reads one value from r into the model.
func (c *Codec) Decode(r *Reader) (any, error) { return c.dec(r) }

// Compile builds the codec of s; named types refer back to their
// codecs, so recursive records compile.
func Compile(s avro.Schema) (*Codec, error) {
	return compileNode(s, map[string]*Codec{})
}

func compileNode(s avro.Schema, named map[string]*Codec) (*Codec, error) {
	switch s := s.(type) {
	case *avro.RefSchema:
		if c := named[s.Schema().FullName()]; c != nil {
			return &Codec{
				enc: func(dst []byte, v any) ([]byte, error) { return c.enc(dst, v) },
				dec: func(r *Reader) (any, error) { return c.dec(r) },
			}, nil
		}
		return compileNode(s.Schema(), named)
	case *avro.NullSchema:
		return &Codec{
			enc: func(dst []byte, v any) ([]byte, error) {
				if !isNull(v) {
					return dst, fmt.Errorf("null: have %T", v)
				}
				return dst, nil
			},
			dec: func(*Reader) (any, error) { return nil, nil },
		}, nil
	case *avro.PrimitiveSchema:
		return compilePrimitive(s)
	case *avro.RecordSchema:
		return compileRecord(s, named)
	case *avro.EnumSchema:
		return compileEnum(s), nil
	case *avro.FixedSchema:
		return compileFixed(s)
	case *avro.ArraySchema:
		return compileArray(s, named)
	case *avro.MapSchema:
		return compileMap(s, named)
	case *avro.UnionSchema:
		return compileUnion(s, named)
	}
	return nil, fmt.Errorf("avro: schema type %s is not supported", s.Type())
}

// compileEnum codes an enum as its symbol.
func compileEnum(s *avro.EnumSchema) *Codec {
	syms := s.Symbols()
	index := make(map[string]int, len(syms))
	for i, sym := range syms {
		index[sym] = i
	}
	return &Codec{
		enc: func(dst []byte, v any) ([]byte, error) {
			str, ok := v.(string)
			if !ok {
				return dst, fmt.Errorf("enum %s: want a string, have %T", s.FullName(), v)
			}
			i, ok := index[str]
			if !ok {
				return dst, fmt.Errorf("enum %s: %q is not a symbol", s.FullName(), str)
			}
			return binary.AppendVarint(dst, int64(i)), nil
		},
		dec: func(r *Reader) (any, error) {
			i, err := r.Long()
			if err != nil {
				return nil, err
			}
			if i < 0 || i >= int64(len(syms)) {
				return nil, fmt.Errorf("enum %s: index %d out of range", s.FullName(), i)
			}
			return syms[i], nil
		},
	}
}

// compileArray codes an array as []any.
func compileArray(s *avro.ArraySchema, named map[string]*Codec) (*Codec, error) {
	items, err := compileNode(s.Items(), named)
	if err != nil {
		return nil, err
	}
	return &Codec{
		enc: func(dst []byte, v any) ([]byte, error) {
			a, ok := v.([]any)
			if !ok {
				if v == nil {
					return append(dst, 0), nil
				}
				return dst, fmt.Errorf("array: want []any, have %T", v)
			}
			if len(a) > 0 {
				dst = binary.AppendVarint(dst, int64(len(a)))
				for i, e := range a {
					var err error
					if dst, err = items.enc(dst, e); err != nil {
						return dst, fmt.Errorf("[%d]: %w", i, err)
					}
				}
			}
			return append(dst, 0), nil
		},
		dec: func(r *Reader) (any, error) {
			out := []any{}
			err := r.Blocks(func() error {
				e, err := items.dec(r)
				out = append(out, e)
				return err
			})
			return out, err
		},
	}, nil
}

// compileMap codes a map as map[string]any (map[string]string is taken too).
func compileMap(s *avro.MapSchema, named map[string]*Codec) (*Codec, error) {
	vals, err := compileNode(s.Values(), named)
	if err != nil {
		return nil, err
	}
	return &Codec{
		enc: func(dst []byte, v any) ([]byte, error) {
			var err error
			switch m := v.(type) {
			case map[string]any:
				if len(m) > 0 {
					dst = binary.AppendVarint(dst, int64(len(m)))
					for _, k := range slices.Sorted(maps.Keys(m)) { // the same value, the same bytes
						dst = appendAvroString(dst, k)
						if dst, err = vals.enc(dst, m[k]); err != nil {
							return dst, fmt.Errorf("[%q]: %w", k, err)
						}
					}
				}
			case map[string]string:
				if len(m) > 0 {
					dst = binary.AppendVarint(dst, int64(len(m)))
					for _, k := range slices.Sorted(maps.Keys(m)) {
						dst = appendAvroString(dst, k)
						if dst, err = vals.enc(dst, m[k]); err != nil {
							return dst, fmt.Errorf("[%q]: %w", k, err)
						}
					}
				}
			case nil:
			default:
				return dst, fmt.Errorf("map: want map[string]any, have %T", v)
			}
			return append(dst, 0), nil
		},
		dec: func(r *Reader) (any, error) {
			out := map[string]any{}
			err := r.Blocks(func() error {
				k, err := r.Str()
				if err != nil {
					return err
				}
				e, err := vals.dec(r)
				out[k] = e
				return err
			})
			return out, err
		},
	}, nil
}

func compileRecord(s *avro.RecordSchema, named map[string]*Codec) (*Codec, error) {
	c := &Codec{}
	named[s.FullName()] = c
	type fieldCodec struct {
		name   string
		codec  *Codec
		def    any
		hasDef bool
	}
	fields := make([]fieldCodec, len(s.Fields()))
	for i, f := range s.Fields() {
		fc, err := compileNode(f.Type(), named)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", s.FullName(), f.Name(), err)
		}
		fields[i] = fieldCodec{name: f.Name(), codec: fc, hasDef: f.HasDefault()}
		if f.HasDefault() {
			fields[i].def = f.Default()
		}
	}
	c.enc = func(dst []byte, v any) ([]byte, error) {
		if o, ok := v.(*Ordered); ok && o != nil && len(o.Names) == len(fields) && len(o.Values) == len(fields) {
			inOrder := true
			for i := range fields {
				if o.Names[i] != fields[i].name {
					inOrder = false
					break
				}
			}
			if inOrder {
				for i := range fields {
					var err error
					if dst, err = fields[i].codec.enc(dst, o.Values[i]); err != nil {
						return dst, fmt.Errorf("%s: %w", fields[i].name, err)
					}
				}
				return dst, nil
			}
		}
		if o, ok := v.(*Ordered); ok {
			v = o.Map()
		}
		m, ok := v.(map[string]any)
		if !ok {
			return dst, fmt.Errorf("record %s: want a map, have %T", s.FullName(), v)
		}
		for i := range fields {
			f := &fields[i]
			fv, ok := m[f.name]
			if !ok {
				if !f.hasDef {
					return dst, fmt.Errorf("record %s: field %s is missing and has no default", s.FullName(), f.name)
				}
				fv = f.def
			}
			var err error
			if dst, err = f.codec.enc(dst, fv); err != nil {
				return dst, fmt.Errorf("%s: %w", f.name, err)
			}
		}
		return dst, nil
	}
	c.dec = func(r *Reader) (any, error) {
		if r.Depth++; r.Depth > MaxDepth {
			return nil, fmt.Errorf("avro: records nest deeper than %d", MaxDepth)
		}
		defer func() { r.Depth-- }()
		m := make(map[string]any, len(fields))
		for i := range fields {
			v, err := fields[i].codec.dec(r)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", fields[i].name, err)
			}
			m[fields[i].name] = v
		}
		return m, nil
	}
	return c, nil
}

func compileUnion(s *avro.UnionSchema, named map[string]*Codec) (*Codec, error) {
	types := s.Types()
	codecs := make([]*Codec, len(types))
	null, only := -1, -1
	for i, t := range types {
		c, err := compileNode(t, named)
		if err != nil {
			return nil, err
		}
		codecs[i] = c
		if t.Type() == avro.Null {
			null = i
		} else if only == -1 {
			only = i
		} else {
			only = -2 // several non-null branches
		}
	}
	return &Codec{
		enc: func(dst []byte, v any) ([]byte, error) {
			i := -1
			switch {
			case isNull(v):
				i = null
			case only >= 0:
				i = only
			default:
				for j, t := range types {
					if fits(t, v) {
						i = j
						break
					}
				}
			}
			if i < 0 {
				return dst, fmt.Errorf("no branch of union %s takes a %T", s.String(), v)
			}
			dst = binary.AppendVarint(dst, int64(i))
			return codecs[i].enc(dst, v)
		},
		dec: func(r *Reader) (any, error) {
			i, err := r.Long()
			if err != nil {
				return nil, err
			}
			if i < 0 || i >= int64(len(codecs)) {
				return nil, fmt.Errorf("union: branch %d out of range", i)
			}
			return codecs[i].dec(r)
		},
	}, nil
}

// isNull is nil, or a nil map or slice of the value model in an interface.
func isNull(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		return x == nil
	case []any:
		return x == nil
	case *Ordered:
		return x == nil
	}
	return false
}

func compileFixed(s *avro.FixedSchema) (*Codec, error) {
	size := s.Size()
	if d, ok := s.Logical().(*avro.DecimalLogicalSchema); ok {
		scale := d.Scale()
		return &Codec{
			enc: func(dst []byte, v any) ([]byte, error) {
				n, err := unscaled(v, scale)
				if err != nil {
					return dst, err
				}
				b := twosComplement(n)
				if len(b) > size {
					return dst, fmt.Errorf("decimal: %v does not fit %d bytes", v, size)
				}
				pad := byte(0)
				if n.Sign() < 0 {
					pad = 0xff
				}
				for range size - len(b) {
					dst = append(dst, pad)
				}
				return append(dst, b...), nil
			},
			dec: func(r *Reader) (any, error) {
				b, err := r.Take(size)
				if err != nil {
					return nil, err
				}
				return ratOf(b, scale), nil
			},
		}, nil
	}
	return &Codec{
		enc: func(dst []byte, v any) ([]byte, error) {
			b, ok := v.([]byte)
			if !ok || len(b) != size {
				return dst, fmt.Errorf("fixed %s: want %d bytes, have %T", s.FullName(), size, v)
			}
			return append(dst, b...), nil
		},
		dec: func(r *Reader) (any, error) {
			b, err := r.Take(size)
			return append([]byte(nil), b...), err
		},
	}, nil
}

func compilePrimitive(s *avro.PrimitiveSchema) (*Codec, error) {
	logical, _ := Logical(s)
	switch s.Type() {
	case avro.Boolean:
		return boolCodec(), nil
	case avro.Int:
		return compileInt(logical), nil
	case avro.Long:
		return compileLong(logical), nil
	case avro.Float:
		return floatCodec(), nil
	case avro.Double:
		return doubleCodec(), nil
	case avro.String:
		return stringCodec(), nil
	case avro.Bytes:
		return bytesCodec(s), nil
	}
	return nil, fmt.Errorf("avro: primitive %s is not supported", s.Type())
}

// boolCodec codes a boolean.
func boolCodec() *Codec {
	return &Codec{
		enc: func(dst []byte, v any) ([]byte, error) {
			b, ok := v.(bool)
			if !ok {
				return dst, fmt.Errorf("boolean: have %T", v)
			}
			if b {
				return append(dst, 1), nil
			}
			return append(dst, 0), nil
		},
		dec: func(r *Reader) (any, error) { return r.Boolean() },
	}
}

// floatCodec codes a float as float32.
func floatCodec() *Codec {
	return &Codec{
		enc: func(dst []byte, v any) ([]byte, error) {
			f, ok := toFloat(v)
			if !ok {
				return dst, fmt.Errorf("float: have %T", v)
			}
			return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(f))), nil
		},
		dec: func(r *Reader) (any, error) { return r.Float() },
	}
}

// doubleCodec codes a double as float64.
func doubleCodec() *Codec {
	return &Codec{
		enc: func(dst []byte, v any) ([]byte, error) {
			f, ok := toFloat(v)
			if !ok {
				return dst, fmt.Errorf("double: have %T", v)
			}
			return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f)), nil
		},
		dec: func(r *Reader) (any, error) { return r.Double() },
	}
}

// stringCodec codes a string (a []byte is taken too).
func stringCodec() *Codec {
	return &Codec{
		enc: func(dst []byte, v any) ([]byte, error) {
			switch x := v.(type) {
			case string:
				return appendAvroString(dst, x), nil
			case []byte:
				return appendAvroString(dst, string(x)), nil
			}
			return dst, fmt.Errorf("string: have %T", v)
		},
		dec: func(r *Reader) (any, error) { return r.Str() },
	}
}

// bytesCodec codes bytes as []byte, or a decimal as *big.Rat.
func bytesCodec(s *avro.PrimitiveSchema) *Codec {
	if d, ok := s.Logical().(*avro.DecimalLogicalSchema); ok {
		scale := d.Scale()
		return &Codec{
			enc: func(dst []byte, v any) ([]byte, error) {
				n, err := unscaled(v, scale)
				if err != nil {
					return dst, err
				}
				b := twosComplement(n)
				dst = binary.AppendVarint(dst, int64(len(b)))
				return append(dst, b...), nil
			},
			dec: func(r *Reader) (any, error) {
				b, err := r.Bytes()
				if err != nil {
					return nil, err
				}
				return ratOf(b, scale), nil
			},
		}
	}
	return &Codec{
		enc: func(dst []byte, v any) ([]byte, error) {
			switch x := v.(type) {
			case []byte:
				dst = binary.AppendVarint(dst, int64(len(x)))
				return append(dst, x...), nil
			case string:
				return appendAvroString(dst, x), nil
			}
			return dst, fmt.Errorf("bytes: have %T", v)
		},
		dec: func(r *Reader) (any, error) {
			b, err := r.Bytes()
			return append([]byte(nil), b...), err
		},
	}
}

// intDecoder reads an int or long with read and makes it a value with
// logical, the logical type's conversion, chosen once per schema (plain
// when logical is nil: no logical type, or one Eddy does not know).
func intDecoder(read func(*Reader) (int64, error), logical, plain func(int64) any) func(*Reader) (any, error) {
	if logical == nil {
		logical = plain
	}
	return func(r *Reader) (any, error) {
		n, err := read(r)
		if err != nil {
			return nil, err
		}
		return logical(n), nil
	}
}

// compileInt codes an int, with its logical type (date, time-millis).
func compileInt(logical avro.LogicalType) *Codec {
	return &Codec{
		enc: func(dst []byte, v any) ([]byte, error) {
			var n int64
			switch x := v.(type) {
			case time.Time:
				if logical != avro.Date {
					return dst, fmt.Errorf("int: have a time")
				}
				n = int64(math.Floor(float64(x.Unix()) / 86400))
			case time.Duration:
				n = x.Milliseconds()
			default:
				var ok bool
				if n, ok = toInt(v); !ok {
					return dst, fmt.Errorf("int: have %T", v)
				}
			}
			if n < math.MinInt32 || n > math.MaxInt32 {
				return dst, fmt.Errorf("int: %d is out of range", n)
			}
			return binary.AppendVarint(dst, n), nil
		},
		dec: intDecoder((*Reader).Int, map[avro.LogicalType]func(int64) any{
			avro.Date:       func(n int64) any { return time.Unix(n*86400, 0).UTC() },
			avro.TimeMillis: func(n int64) any { return time.Duration(n) * time.Millisecond },
		}[logical], func(n int64) any { return int(n) }),
	}
}

// compileLong codes a long, with its logical type (timestamps, time-micros).
func compileLong(logical avro.LogicalType) *Codec {
	return &Codec{
		enc: func(dst []byte, v any) ([]byte, error) {
			var n int64
			switch x := v.(type) {
			case int64:
				n = x
			case time.Time:
				switch logical {
				case avro.TimestampMillis, avro.LocalTimestampMillis:
					n = x.UnixMilli()
				case avro.TimestampMicros, avro.LocalTimestampMicros:
					n = x.UnixMicro()
				default:
					return dst, fmt.Errorf("long: have a time")
				}
			case time.Duration:
				n = x.Microseconds()
			default:
				var ok bool
				if n, ok = toInt(v); !ok {
					return dst, fmt.Errorf("long: have %T", v)
				}
			}
			return binary.AppendVarint(dst, n), nil
		},
		dec: intDecoder((*Reader).Long, map[avro.LogicalType]func(int64) any{
			avro.TimestampMillis:      func(n int64) any { return time.UnixMilli(n).UTC() },
			avro.LocalTimestampMillis: func(n int64) any { return time.UnixMilli(n).UTC() },
			avro.TimestampMicros:      func(n int64) any { return time.UnixMicro(n).UTC() },
			avro.LocalTimestampMicros: func(n int64) any { return time.UnixMicro(n).UTC() },
			avro.TimeMicros:           func(n int64) any { return time.Duration(n) * time.Microsecond },
		}[logical], func(n int64) any { return n }),
	}
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case float64: // JSON numbers
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), true
		}
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	}
	return 0, false
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case int32:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// unscaled is v * 10^scale as an integer: v a *big.Rat, a decimal string
// or an integer; a value with more digits than the scale is refused.
func unscaled(v any, scale int) (*big.Int, error) {
	var r *big.Rat
	switch x := v.(type) {
	case *big.Rat:
		r = x
	case string:
		var ok bool
		if r, ok = new(big.Rat).SetString(strings.TrimSpace(x)); !ok {
			return nil, fmt.Errorf("decimal: %q is not a number", x)
		}
	case big.Rat:
		r = &x
	default:
		n, ok := toInt(v)
		if !ok {
			return nil, fmt.Errorf("decimal: have %T", v)
		}
		r = new(big.Rat).SetInt64(n)
	}
	// num * 10^scale / denom, which must leave no remainder.
	p := pow10(scale)
	if r.IsInt() {
		return new(big.Int).Mul(r.Num(), p), nil
	}
	q, rem := new(big.Int).QuoRem(p, r.Denom(), new(big.Int))
	if rem.Sign() != 0 {
		return nil, fmt.Errorf("decimal: %s has more than %d digits after the point", r.FloatString(scale+4), scale)
	}
	return q.Mul(q, r.Num()), nil
}

// powers10 are 10^0 to 10^76, computed once and never changed.
var powers10 = func() []*big.Int {
	out := make([]*big.Int, 77)
	for i := range out {
		out[i] = new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(i)), nil)
	}
	return out
}()

// pow10 is 10^n; callers must not change it.
func pow10(n int) *big.Int {
	if n >= 0 && n < len(powers10) {
		return powers10[n]
	}
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
}

// twosComplement is n as big-endian two's complement in the fewest bytes.
func twosComplement(n *big.Int) []byte {
	if n.Sign() >= 0 {
		b := n.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	// -n - 1, inverted
	m := new(big.Int).Neg(n)
	m.Sub(m, big.NewInt(1))
	b := m.Bytes()
	for i := range b {
		b[i] = ^b[i]
	}
	if len(b) == 0 || b[0]&0x80 == 0 {
		b = append([]byte{0xff}, b...)
	}
	return b
}

func ratOf(b []byte, scale int) *big.Rat {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
	}
	return new(big.Rat).SetFrac(n, pow10(scale))
}

func appendAvroString(dst []byte, s string) []byte {
	dst = binary.AppendVarint(dst, int64(len(s)))
	return append(dst, s...)
}

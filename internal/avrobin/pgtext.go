package avrobin

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
)

// PostgreSQL's text forms: PgText renders a decoded value as PostgreSQL
// reads it for a column type, and CopyText renders an after-image's Avro
// bytes as one COPY text line with the same helpers, so a row written
// either way stores the same values.

// PgText renders a value as PostgreSQL reads it for the column type (the
// parameter is cast to that type); nil is NULL.
func PgText(v any, typ string) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return x, nil
	}
	b, err := AppendPgText(nil, v, typ)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// AppendPgText appends the text of a non-nil value; the raw-Avro path
// renders with the same helpers, so both paths write the same text.
func AppendPgText(dst []byte, v any, typ string) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return append(dst, x...), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case float32:
		return appendFloat(dst, float64(x), 32), nil
	case float64:
		return appendFloat(dst, x, 64), nil
	case []byte:
		return hex.AppendEncode(append(dst, `\x`...), x), nil
	case *big.Rat:
		return append(dst, ratText(x)...), nil
	case time.Duration:
		return appendPgDuration(dst, x), nil
	case time.Time:
		return appendPgTime(dst, x, typ), nil
	case []any:
		if elem, ok := strings.CutSuffix(typ, "[]"); ok {
			return appendPgArray(dst, x, elem)
		}
		return AppendJSON(dst, x, nil)
	case map[string]any, map[string]string:
		return AppendJSON(dst, x, nil)
	}
	return dst, fmt.Errorf("a %T has no PostgreSQL form", v)
}

// appendPgArray writes an array literal for an array column: {1,NULL,3},
// nested arrays nested, every element quoted (which any element type
// reads).
func appendPgArray(dst []byte, a []any, elem string) ([]byte, error) {
	dst = append(dst, '{')
	for i, e := range a {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch x := e.(type) {
		case nil:
			dst = append(dst, "NULL"...)
		case []any:
			var err error
			if dst, err = appendPgArray(dst, x, elem); err != nil {
				return dst, err
			}
		default:
			text, err := AppendPgText(nil, x, elem)
			if err != nil {
				return dst, err
			}
			dst = append(dst, '"')
			for _, c := range text {
				if c == '"' || c == '\\' {
					dst = append(dst, '\\')
				}
				dst = append(dst, c)
			}
			dst = append(dst, '"')
		}
	}
	return append(dst, '}'), nil
}

// appendPgDuration writes a time of day as hh:mm:ss.micros.
func appendPgDuration(dst []byte, x time.Duration) []byte {
	return fmt.Appendf(dst, "%02d:%02d:%02d.%06d", int(x.Hours()), int(x.Minutes())%60, int(x.Seconds())%60, (x % time.Second).Microseconds())
}

// appendPgTime writes a date or timestamp for the column type; the
// sources' infinities come back as PostgreSQL's.
func appendPgTime(dst []byte, x time.Time, typ string) []byte {
	switch {
	case x.Equal(time.UnixMicro(math.MaxInt64)) || x.Equal(time.Unix(math.MaxInt32*86400, 0)):
		return append(dst, "infinity"...)
	case x.Equal(time.UnixMicro(math.MinInt64)) || x.Equal(time.Unix(math.MinInt32*86400, 0)):
		return append(dst, "-infinity"...)
	}
	layout := "2006-01-02 15:04:05.999999Z07:00"
	switch typ {
	case "date":
		layout = "2006-01-02"
	case "timestamp":
		layout = "2006-01-02 15:04:05.999999"
	}
	x = x.UTC()
	if y := x.Year(); y <= 0 { // astronomical year 0 is 1 BC, which PostgreSQL writes as such
		dst = x.AppendFormat(fmt.Appendf(dst, "%04d", 1-y), layout[len("2006"):])
		return append(dst, " BC"...)
	}
	return x.AppendFormat(dst, layout)
}

func appendFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}

// ratText renders a decimal exactly (its denominator divides a power of
// ten).
func ratText(r *big.Rat) string {
	b, _ := AppendJSON(nil, r, nil) // a quoted exact string
	return string(b[1 : len(b)-1])
}

// AppendCopyText escapes a value for COPY's text format.
func AppendCopyText[T string | []byte](dst []byte, s T) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// fieldWriter appends one field of a raw row in a COPY format.
type fieldWriter func(r *Reader, dst []byte) ([]byte, error)

// CopyText renders an after-image's fields as one COPY text line, in the
// schema's field order: each field escaped, or \N for NULL.
type CopyText []fieldWriter

// CompileCopyText builds the renderer of a record schema for a target
// table's column types; ok is false when a field's type is one the raw
// path does not render (the records are then decoded).
func CompileCopyText(rs *avro.RecordSchema, cols map[string]string) (CopyText, bool) {
	out := make(CopyText, 0, len(rs.Fields()))
	for _, f := range rs.Fields() {
		ft := compileFieldText(f.Type(), cols[f.Name()])
		if ft == nil {
			return nil, false
		}
		out = append(out, ft)
	}
	return out, true
}

func (rt CopyText) Append(r *Reader, dst, after []byte) ([]byte, error) {
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
		func(_ *Reader, dst []byte) ([]byte, error) { return append(dst, `\N`...), nil })
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
	return func(r *Reader, dst []byte) ([]byte, error) {
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
	integer := func(read func(*Reader) (int64, error), text func(dst []byte, n int64) []byte) fieldWriter {
		return func(r *Reader, dst []byte) ([]byte, error) {
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
	decimalOf := func(take func(*Reader) ([]byte, error)) fieldWriter {
		_, d := Logical(t)
		scale := d.Scale()
		return func(r *Reader, dst []byte) ([]byte, error) {
			b, err := take(r)
			if err != nil {
				return dst, err
			}
			return appendDecimal(dst, b, scale), nil
		}
	}
	decimal := func(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }
	switch KindOf(t) {
	case KindBoolean:
		return func(r *Reader, dst []byte) ([]byte, error) {
			b, err := r.Boolean()
			return strconv.AppendBool(dst, b), err
		}
	case KindInt:
		return integer((*Reader).Int, decimal)
	case KindDate:
		return integer((*Reader).Int, asTime(func(n int64) time.Time { return time.Unix(n*86400, 0) }))
	case KindTimeMillis:
		return integer((*Reader).Int, asDuration(time.Millisecond))
	case KindLong:
		return integer((*Reader).Long, decimal)
	case KindTimestampMillis, KindLocalTimestampMillis:
		return integer((*Reader).Long, asTime(time.UnixMilli))
	case KindTimestampMicros, KindLocalTimestampMicros:
		return integer((*Reader).Long, asTime(time.UnixMicro))
	case KindTimeMicros:
		return integer((*Reader).Long, asDuration(time.Microsecond))
	case KindFloat:
		return func(r *Reader, dst []byte) ([]byte, error) {
			f, err := r.Float()
			if err != nil {
				return dst, err
			}
			return appendFloat(dst, float64(f), 32), nil
		}
	case KindDouble:
		return func(r *Reader, dst []byte) ([]byte, error) {
			f, err := r.Double()
			if err != nil {
				return dst, err
			}
			return appendFloat(dst, f, 64), nil
		}
	case KindString, KindUUID:
		return func(r *Reader, dst []byte) ([]byte, error) {
			b, err := r.Bytes()
			if err != nil {
				return dst, err
			}
			return AppendCopyText(dst, b), nil
		}
	case KindBytes:
		return func(r *Reader, dst []byte) ([]byte, error) {
			b, err := r.Bytes()
			if err != nil {
				return dst, err
			}
			return hex.AppendEncode(append(dst, `\\x`...), b), nil // \x, escaped for COPY
		}
	case KindDecimal:
		if f, ok := Deref(t).(*avro.FixedSchema); ok {
			size := f.Size()
			return decimalOf(func(r *Reader) ([]byte, error) { return r.Take(size) })
		}
		return decimalOf((*Reader).Bytes)
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

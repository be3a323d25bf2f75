package sql

import (
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/internal/avrobin"
)

// pgType is the PostgreSQL column type for an Avro field type.
func pgType(s avro.Schema) string {
	s = nonNull(s)
	if u, ok := s.(*avro.UnionSchema); ok { // decimal or the special values as text
		for _, t := range u.Types() {
			if l, ok := t.(avro.LogicalTypeSchema); ok && l.Logical() != nil && l.Logical().Type() == avro.Decimal {
				return pgType(t)
			}
		}
		return "text"
	}
	var logical avro.LogicalType
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
		logical = l.Logical().Type()
		if d, ok := l.Logical().(*avro.DecimalLogicalSchema); ok {
			return fmt.Sprintf("numeric(%d,%d)", d.Precision(), d.Scale())
		}
	}
	switch logical {
	case avro.Date:
		return "date"
	case avro.TimeMillis, avro.TimeMicros:
		return "time"
	case avro.TimestampMillis, avro.TimestampMicros:
		return "timestamptz"
	case avro.LocalTimestampMillis, avro.LocalTimestampMicros:
		return "timestamp"
	case avro.UUID:
		return "uuid"
	}
	switch s.Type() {
	case avro.Boolean:
		return "boolean"
	case avro.Int:
		return "integer"
	case avro.Long:
		return "bigint"
	case avro.Float:
		return "real"
	case avro.Double:
		return "double precision"
	case avro.Bytes, avro.Fixed:
		return "bytea"
	case avro.Array, avro.Map, avro.Record:
		return "jsonb"
	}
	return "text"
}

// nonNull is the non-null part of a nullable union: the branch, or a
// union of the rest.
func nonNull(s avro.Schema) avro.Schema {
	if r, ok := s.(*avro.RefSchema); ok {
		return r.Schema()
	}
	u, ok := s.(*avro.UnionSchema)
	if !ok {
		return s
	}
	var rest []avro.Schema
	for _, t := range u.Types() {
		if t.Type() != avro.Null {
			rest = append(rest, t)
		}
	}
	if len(rest) == 1 {
		return nonNull(rest[0])
	}
	out, _ := avro.NewUnionSchema(rest)
	return out
}

// pgText renders a value as PostgreSQL reads it for the column type (the
// parameter is cast to that type); nil is NULL.
func pgText(v any, typ string) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return x, nil
	}
	b, err := appendPgText(nil, v, typ)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// appendPgText appends the text of a non-nil value; the raw-Avro path
// renders with the same helpers, so both paths write the same text.
func appendPgText(dst []byte, v any, typ string) ([]byte, error) {
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
		return avrobin.AppendJSON(dst, x, nil)
	case map[string]any, map[string]string:
		return avrobin.AppendJSON(dst, x, nil)
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
			text, err := appendPgText(nil, x, elem)
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
	b, _ := avrobin.AppendJSON(nil, r, nil) // a quoted exact string
	return string(b[1 : len(b)-1])
}

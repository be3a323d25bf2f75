package sql

import (
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/connect"
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
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float32:
		return floatText(float64(x), 32), nil
	case float64:
		return floatText(x, 64), nil
	case []byte:
		return `\x` + hex.EncodeToString(x), nil
	case *big.Rat:
		return ratText(x), nil
	case time.Duration:
		return fmt.Sprintf("%02d:%02d:%02d.%06d", int(x.Hours()), int(x.Minutes())%60, int(x.Seconds())%60, (x % time.Second).Microseconds()), nil
	case time.Time:
		switch {
		case x.Equal(time.UnixMicro(math.MaxInt64)) || x.Equal(time.Unix(math.MaxInt32*86400, 0)):
			return "infinity", nil
		case x.Equal(time.UnixMicro(math.MinInt64)) || x.Equal(time.Unix(math.MinInt32*86400, 0)):
			return "-infinity", nil
		}
		switch typ {
		case "date":
			return x.UTC().Format("2006-01-02"), nil
		case "timestamp":
			return x.UTC().Format("2006-01-02 15:04:05.999999"), nil
		}
		return x.UTC().Format("2006-01-02 15:04:05.999999Z07:00"), nil
	case []any, map[string]any, map[string]string:
		b, err := connect.AppendJSON(nil, x, nil)
		return string(b), err
	}
	return nil, fmt.Errorf("a %T has no PostgreSQL form", v)
}

func floatText(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// ratText renders a decimal exactly (its denominator divides a power of
// ten).
func ratText(r *big.Rat) string {
	b, _ := connect.AppendJSON(nil, r, nil) // a quoted exact string
	return string(b[1 : len(b)-1])
}

package avrobin

import (
	"encoding/json"
	"math/big"
	"time"

	"github.com/hamba/avro/v2"
)

// fits reports whether a Go value can be written as s (for unions with
// several non-null branches).
func fits(s avro.Schema, v any) bool {
	s = Deref(s)
	switch v.(type) {
	case string:
		return s.Type() == avro.String || s.Type() == avro.Enum
	case int64, int, int32:
		return s.Type() == avro.Long || s.Type() == avro.Int
	case float64, float32:
		return s.Type() == avro.Double || s.Type() == avro.Float
	case bool:
		return s.Type() == avro.Boolean
	case []byte:
		return s.Type() == avro.Bytes || s.Type() == avro.Fixed
	case map[string]any:
		return s.Type() == avro.Record || s.Type() == avro.Map
	case *Ordered:
		return s.Type() == avro.Record
	case []any:
		return s.Type() == avro.Array
	case time.Time:
		return s.Type() == avro.Long || s.Type() == avro.Int
	case *big.Rat:
		return s.Type() == avro.Bytes || s.Type() == avro.Fixed
	case json.Number:
		return s.Type() == avro.Long || s.Type() == avro.Int || s.Type() == avro.Double || s.Type() == avro.Float
	}
	return false
}

// DecimalString renders a decimal exactly, as the JSON of records writes
// it: "19.99", not big.Rat's "1999/100".
func DecimalString(r *big.Rat) string { return ratString(r) }

// ratString renders a decimal exactly. An Avro decimal is an integer over
// a power of ten, so its reduced denominator is 2^a * 5^b and max(a, b)
// digits after the point are exact; other fractions get 20 digits.
func ratString(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	d := new(big.Int).Set(r.Denom())
	a, b := 0, 0
	five, m := big.NewInt(5), new(big.Int)
	for d.Bit(0) == 0 {
		d.Rsh(d, 1)
		a++
	}
	for {
		q, rem := new(big.Int).QuoRem(d, five, m)
		if rem.Sign() != 0 {
			break
		}
		d, b = q, b+1
	}
	if d.Cmp(big.NewInt(1)) != 0 {
		return r.FloatString(20)
	}
	return r.FloatString(max(a, b))
}

// Deref resolves a reference to a named type defined earlier in a schema.
func Deref(s avro.Schema) avro.Schema {
	if r, ok := s.(*avro.RefSchema); ok {
		return r.Schema()
	}
	return s
}

// NonNull returns the branch of a ["null", T] union, or s itself.
func NonNull(s avro.Schema) avro.Schema {
	u, ok := s.(*avro.UnionSchema)
	if !ok {
		return Deref(s)
	}
	for _, t := range u.Types() {
		if t.Type() != avro.Null {
			return Deref(t)
		}
	}
	return s
}

// Logical returns the logical type of a primitive or fixed schema ("" when
// it has none) and, for a decimal, its schema.
func Logical(s avro.Schema) (avro.LogicalType, *avro.DecimalLogicalSchema) {
	l, ok := s.(avro.LogicalTypeSchema)
	if !ok || l.Logical() == nil {
		return "", nil
	}
	d, _ := l.Logical().(*avro.DecimalLogicalSchema)
	return l.Logical().Type(), d
}

// Kind is what a schema is once its logical type is read: the cases the
// codec and every renderer of Avro tell apart, decided once per schema
// rather than per value.
type Kind uint8

// The kinds. A logical type on the wrong physical type (a date on a long)
// is its physical kind, as the Avro spec says to read it.
const (
	KindOther Kind = iota // records, enums, arrays, maps, unions, null
	KindBoolean
	KindInt
	KindLong
	KindFloat
	KindDouble
	KindString
	KindBytes
	KindFixed
	KindDate                 // int: days since 1970-01-01
	KindTimeMillis           // int: milliseconds after midnight
	KindTimeMicros           // long: microseconds after midnight
	KindTimestampMillis      // long: milliseconds since the epoch, UTC
	KindTimestampMicros      // long: microseconds since the epoch, UTC
	KindLocalTimestampMillis // long: milliseconds, in no time zone
	KindLocalTimestampMicros // long: microseconds, in no time zone
	KindDecimal              // bytes or fixed: an unscaled two's-complement integer
	KindUUID                 // string
)

// KindOf classifies s (a reference to a named type is followed).
func KindOf(s avro.Schema) Kind {
	s = Deref(s)
	logical, decimal := Logical(s)
	switch s.Type() {
	case avro.Boolean:
		return KindBoolean
	case avro.Int:
		switch logical {
		case avro.Date:
			return KindDate
		case avro.TimeMillis:
			return KindTimeMillis
		}
		return KindInt
	case avro.Long:
		switch logical {
		case avro.TimeMicros:
			return KindTimeMicros
		case avro.TimestampMillis:
			return KindTimestampMillis
		case avro.TimestampMicros:
			return KindTimestampMicros
		case avro.LocalTimestampMillis:
			return KindLocalTimestampMillis
		case avro.LocalTimestampMicros:
			return KindLocalTimestampMicros
		}
		return KindLong
	case avro.Float:
		return KindFloat
	case avro.Double:
		return KindDouble
	case avro.String:
		if logical == avro.UUID {
			return KindUUID
		}
		return KindString
	case avro.Bytes:
		if decimal != nil {
			return KindDecimal
		}
		return KindBytes
	case avro.Fixed:
		if decimal != nil {
			return KindDecimal
		}
		return KindFixed
	}
	return KindOther
}

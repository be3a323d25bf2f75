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

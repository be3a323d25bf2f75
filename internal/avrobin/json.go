package avrobin

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hamba/avro/v2"
)

// AppendJSON appends v, a value of Eddy's model, as JSON: records in their
// schema's field order when s is given (else map keys sorted), bytes as
// base64, times as RFC 3339, durations as microseconds, decimals as exact
// strings, NaN and infinities as strings. It is the sinks' fast path:
// no reflection for the types a converter produces.
func AppendJSON(dst []byte, v any, s avro.Schema) ([]byte, error) {
	if s != nil {
		s = Deref(s)
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case string:
		return appendJSONString(dst, x), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case float64:
		return appendJSONFloat(dst, x, 64), nil
	case float32:
		return appendJSONFloat(dst, float64(x), 32), nil
	case json.Number:
		return append(dst, x...), nil
	case []byte:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, x)
		return append(dst, '"'), nil
	case time.Time:
		dst = append(dst, '"')
		dst = x.UTC().AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"'), nil
	case time.Duration:
		return strconv.AppendInt(dst, x.Microseconds(), 10), nil
	case *big.Rat:
		return appendJSONString(dst, ratString(x)), nil
	case *Ordered:
		if x == nil {
			return append(dst, "null"...), nil
		}
		if rs, ok := nonNullOrNil(s).(*avro.RecordSchema); ok && sameNames(rs, x) {
			dst = append(dst, '{')
			for i, f := range rs.Fields() {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = appendJSONString(dst, f.Name())
				dst = append(dst, ':')
				var err error
				if dst, err = AppendJSON(dst, x.Values[i], NonNull(f.Type())); err != nil {
					return dst, err
				}
			}
			return append(dst, '}'), nil
		}
		return AppendJSON(dst, x.Map(), s)
	case map[string]any:
		if x == nil { // a missing row state, as the Avro codec takes it
			return append(dst, "null"...), nil
		}
		return appendJSONObject(dst, x, s)
	case []any:
		var items avro.Schema
		if a, ok := nonNullOrNil(s).(*avro.ArraySchema); ok {
			items = a.Items()
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = AppendJSON(dst, e, nonNullOrNil(items)); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case map[string]string:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendJSONString(dst, x[k])
		}
		return append(dst, '}'), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("render %T as JSON: %w", v, err)
	}
	return append(dst, b...), nil
}

// sameNames says whether o's fields are rs's, in its order.
func sameNames(rs *avro.RecordSchema, o *Ordered) bool {
	fields := rs.Fields()
	if len(fields) != len(o.Names) || len(o.Values) != len(o.Names) {
		return false
	}
	for i, f := range fields {
		if f.Name() != o.Names[i] {
			return false
		}
	}
	return true
}

// nonNullOrNil is nonNull that keeps nil as nil.
func nonNullOrNil(s avro.Schema) avro.Schema {
	if s == nil {
		return nil
	}
	return NonNull(s)
}

func appendJSONObject(dst []byte, m map[string]any, s avro.Schema) ([]byte, error) {
	var err error
	start := len(dst)
	dst = append(dst, '{')
	if rs, ok := nonNullOrNil(s).(*avro.RecordSchema); ok && len(rs.Fields()) == len(m) {
		complete := true
		for i, f := range rs.Fields() {
			fv, ok := m[f.Name()]
			if !ok {
				complete = false // the value does not follow its schema: render what it holds
				break
			}
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, f.Name())
			dst = append(dst, ':')
			if dst, err = AppendJSON(dst, fv, NonNull(f.Type())); err != nil {
				return dst, err
			}
		}
		if complete {
			return append(dst, '}'), nil
		}
		dst = append(dst[:start], '{')
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		if dst, err = AppendJSON(dst, m[k], nil); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

func appendJSONFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendJSONString(dst, strconv.FormatFloat(f, 'g', -1, bits))
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string.
func AppendJSONString(dst []byte, s string) []byte { return appendJSONString(dst, s) }

// appendJSONString quotes s for JSON; invalid UTF-8 becomes U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

package mysql

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/hamba/avro/v2"
)

// kind is a column's type as both paths can tell it: the binlog's table
// map (with binlog_row_metadata=FULL) and information_schema. Everything
// the Avro schema depends on is in column, so a row read by the snapshot
// and one decoded from the binlog get the same schema.
type kind uint8

const (
	kTiny kind = iota + 1
	kSmall
	kMedium
	kInt
	kBig
	kDecimal
	kFloat
	kDouble
	kBit
	kYear
	kDate
	kTime
	kDatetime
	kTimestamp
	kText   // CHAR, VARCHAR, TEXT in a character set
	kBinary // BINARY(n): padded with zero bytes to its length
	kBytes  // VARBINARY, BLOB
	kEnum
	kSet
	kJSON // MySQL's JSON (MariaDB's JSON is LONGTEXT)
	kGeometry
)

var kindNames = map[kind]string{kTiny: "TINYINT", kSmall: "SMALLINT", kMedium: "MEDIUMINT", kInt: "INT", kBig: "BIGINT", kDecimal: "DECIMAL",
	kFloat: "FLOAT", kDouble: "DOUBLE", kBit: "BIT", kYear: "YEAR", kDate: "DATE", kTime: "TIME", kDatetime: "DATETIME", kTimestamp: "TIMESTAMP",
	kText: "TEXT", kBinary: "BINARY", kBytes: "BLOB", kEnum: "ENUM", kSet: "SET", kJSON: "JSON", kGeometry: "GEOMETRY"}

// column is one column of a captured table.
type column struct {
	name     string
	kind     kind
	unsigned bool
	prec     int // DECIMAL
	scale    int
	bits     int      // BIT(n)
	length   int      // BINARY(n)
	charset  string   // kText, kEnum, kSet: the column's character set
	labels   []string // ENUM and SET
	nullable bool
	key      bool
}

// same says whether two descriptions make the same schema and decode
// alike.
func (c column) same(o column) bool {
	return c.name == o.name && c.kind == o.kind && c.unsigned == o.unsigned && c.prec == o.prec && c.scale == o.scale &&
		c.bits == o.bits && c.length == o.length && c.charset == o.charset && c.nullable == o.nullable && c.key == o.key &&
		strings.Join(c.labels, "\x00") == strings.Join(o.labels, "\x00")
}

func prim(t avro.Type, l avro.LogicalSchema, props map[string]any) avro.Schema {
	return avro.NewPrimitiveSchema(t, l, avro.WithProps(props))
}

// schema is the column's Avro type, without the null branch; ns names
// the record of a geometry column.
func (c column) schema(ns string) avro.Schema {
	named := func(n string) map[string]any { return map[string]any{"connect.name": n} }
	switch c.kind {
	case kTiny, kSmall, kMedium:
		return prim(avro.Int, nil, nil)
	case kInt:
		if c.unsigned {
			return prim(avro.Long, nil, nil)
		}
		return prim(avro.Int, nil, nil)
	case kBig:
		if c.unsigned { // above 2^63 a long would wrap: Debezium's bigint.unsigned.handling.mode=precise
			return prim(avro.Bytes, avro.NewDecimalLogicalSchema(20, 0), nil)
		}
		return prim(avro.Long, nil, nil)
	case kDecimal:
		return prim(avro.Bytes, avro.NewDecimalLogicalSchema(c.prec, c.scale), nil)
	case kFloat:
		return prim(avro.Float, nil, nil)
	case kDouble:
		return prim(avro.Double, nil, nil)
	case kBit:
		if c.bits == 1 {
			return prim(avro.Boolean, nil, nil)
		}
		return prim(avro.Bytes, nil, map[string]any{"connect.name": "io.debezium.data.Bits", "connect.parameters": map[string]any{"length": strconv.Itoa(c.bits)}})
	case kYear:
		return prim(avro.Int, nil, named("io.debezium.time.Year"))
	case kDate:
		return prim(avro.Int, avro.NewPrimitiveLogicalSchema(avro.Date), nil)
	case kTime:
		// Microseconds, negative and past 24 hours as MySQL's TIME allows
		// (-838:59:59 to 838:59:59): Avro's time-micros holds a time of day.
		return prim(avro.Long, nil, named("io.debezium.time.MicroTime"))
	case kDatetime:
		return prim(avro.Long, avro.NewPrimitiveLogicalSchema(avro.LocalTimestampMicros), nil)
	case kTimestamp:
		return prim(avro.Long, avro.NewPrimitiveLogicalSchema(avro.TimestampMicros), nil)
	case kBinary, kBytes:
		return prim(avro.Bytes, nil, nil)
	case kEnum, kSet:
		n := "io.debezium.data.Enum"
		if c.kind == kSet {
			n = "io.debezium.data.EnumSet"
		}
		return prim(avro.String, nil, map[string]any{"connect.name": n, "connect.parameters": map[string]any{"allowed": strings.Join(c.labels, ",")}})
	case kJSON:
		return prim(avro.String, nil, named("io.debezium.data.Json"))
	case kGeometry:
		srid, _ := avro.NewUnionSchema([]avro.Schema{avro.NewNullSchema(), prim(avro.Int, nil, nil)})
		wkb, _ := avro.NewField("wkb", prim(avro.Bytes, nil, nil))
		sf, _ := avro.NewField("srid", srid, avro.WithDefault(nil))
		rec, err := avro.NewRecordSchema("Geometry", ns, []*avro.Field{wkb, sf}, avro.WithProps(named("io.debezium.data.geometry.Geometry")))
		if err != nil {
			return prim(avro.Bytes, nil, nil)
		}
		return rec
	}
	return prim(avro.String, nil, nil)
}

// Decoding. The binlog path gets go-mysql's values (DATETIME and
// TIMESTAMP as time.Time, but zero dates, DATE and TIME as text; decimals
// as text); the
// snapshot path gets the server's values in the binary protocol, in the
// connection's utf8mb4 and time_zone +00:00. Both end in the same Avro
// value model: int32, int64, float32, float64, bool, string, []byte,
// *big.Rat (decimals), time.Time (dates, timestamps), map[string]any
// (geometry).

// fromBinlog decodes a value as go-mysql gives it from a row event.
func (c *column) fromBinlog(v any, dec decoder) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.kind {
	case kTiny, kSmall, kMedium, kInt, kBig:
		return c.integer(v)
	case kDecimal:
		return parseDecimal(fmt.Sprint(v))
	case kFloat:
		if f, ok := v.(float32); ok {
			return f, nil
		}
	case kDouble:
		if f, ok := v.(float64); ok {
			return f, nil
		}
	case kBit:
		if n, ok := v.(int64); ok {
			return c.bitValue(uint64(n)), nil
		}
	case kYear:
		if n, ok := v.(int); ok {
			return int32(n), nil
		}
	case kDate, kTime, kDatetime, kTimestamp:
		switch x := v.(type) {
		case time.Time:
			if c.kind == kDatetime { // the wall clock, which go-mysql puts in UTC
				return x, nil
			}
			return x.UTC(), nil
		case string:
			return c.temporal(x)
		}
	case kText, kJSON:
		b := asBytes(v)
		if c.kind == kJSON || dec == nil {
			return string(b), nil
		}
		return dec(b)
	case kBinary:
		b := append([]byte(nil), asBytes(v)...)
		for len(b) < c.length { // the binlog drops BINARY(n)'s trailing zero bytes
			b = append(b, 0)
		}
		return b, nil
	case kBytes:
		return append([]byte(nil), asBytes(v)...), nil
	case kEnum:
		if n, ok := v.(int64); ok {
			if n == 0 || int(n) > len(c.labels) {
				return "", nil // the empty "error" value MySQL stores for an invalid label
			}
			return c.labels[n-1], nil
		}
	case kSet:
		if n, ok := v.(int64); ok {
			var picked []string
			for i, l := range c.labels {
				if n&(1<<i) != 0 {
					picked = append(picked, l)
				}
			}
			return strings.Join(picked, ","), nil
		}
	case kGeometry:
		return geometry(asBytes(v))
	}
	return nil, fmt.Errorf("binlog value %T for a %s column", v, kindNames[c.kind])
}

// fromSQL decodes a value of the snapshot's result.
func (c *column) fromSQL(v mysql.FieldValue) (any, error) {
	switch v.Type {
	case mysql.FieldValueTypeNull:
		return nil, nil
	case mysql.FieldValueTypeSigned:
		if c.kind == kYear {
			return int32(v.AsInt64()), nil
		}
		return c.integer(v.AsInt64())
	case mysql.FieldValueTypeUnsigned:
		if c.kind == kYear {
			return int32(v.AsUint64()), nil
		}
		return c.integer(v.AsUint64())
	case mysql.FieldValueTypeFloat:
		if c.kind == kFloat {
			return float32(v.AsFloat64()), nil
		}
		return v.AsFloat64(), nil
	}
	b := v.AsString()
	switch c.kind {
	case kDecimal:
		return parseDecimal(string(b))
	case kBit: // big-endian bytes
		var n uint64
		for _, x := range b {
			n = n<<8 | uint64(x)
		}
		return c.bitValue(n), nil
	case kYear:
		n, err := strconv.Atoi(string(b))
		return int32(n), err
	case kDate, kTime, kDatetime, kTimestamp:
		return c.temporal(string(b))
	case kText, kJSON, kEnum, kSet:
		return string(b), nil
	case kBinary, kBytes:
		return append([]byte(nil), b...), nil
	case kGeometry:
		return geometry(b)
	case kTiny, kSmall, kMedium, kInt, kBig:
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			u, uerr := strconv.ParseUint(string(b), 10, 64)
			if uerr != nil {
				return nil, err
			}
			return c.integer(u)
		}
		return c.integer(n)
	}
	return nil, fmt.Errorf("value %q for a %s column", b, kindNames[c.kind])
}

func asBytes(v any) []byte {
	switch x := v.(type) {
	case string:
		return []byte(x)
	case []byte:
		return x
	}
	return []byte(fmt.Sprint(v))
}

// integer is an integer column's value in its Avro type. The binlog logs
// unsigned values in the signed type of their width: they are read back
// by the width.
func (c *column) integer(v any) (any, error) {
	var n int64  // the signed reading
	var u uint64 // the unsigned reading of the same bits at the column's width
	switch x := v.(type) {
	case int8:
		n, u = int64(x), uint64(uint8(x))
	case int16:
		n, u = int64(x), uint64(uint16(x))
	case int32:
		n, u = int64(x), uint64(uint32(x))
		if c.kind == kMedium {
			u &= 0xffffff
		}
	case int64:
		n, u = x, uint64(x)
	case uint64:
		n, u = int64(x), x
	default:
		return nil, fmt.Errorf("integer value %T for a %s column", v, kindNames[c.kind])
	}
	switch {
	case c.kind == kBig && c.unsigned:
		return new(big.Rat).SetInt(new(big.Int).SetUint64(u)), nil
	case c.kind == kBig:
		return n, nil
	case c.kind == kInt && c.unsigned:
		return int64(u), nil
	case c.unsigned:
		return int32(u), nil
	}
	return int32(n), nil
}

// bitValue is BIT(1) as a boolean, a wider BIT as its bytes, least
// significant first (Debezium's io.debezium.data.Bits).
func (c *column) bitValue(n uint64) any {
	if c.bits == 1 {
		return n != 0
	}
	b := make([]byte, (c.bits+7)/8)
	for i := range b {
		b[i] = byte(n >> (8 * i))
	}
	return b
}

func parseDecimal(s string) (any, error) {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok {
		return nil, fmt.Errorf("decimal %q", s)
	}
	return r, nil
}

// geometry splits MySQL's internal geometry (a 4-byte little-endian SRID,
// then the WKB) into Debezium's Geometry record.
func geometry(b []byte) (any, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("geometry of %d bytes", len(b))
	}
	return map[string]any{"wkb": append([]byte(nil), b[4:]...), "srid": int32(binary.LittleEndian.Uint32(b))}, nil
}

// zeroDate stands for MySQL's zero (or partly zero) dates: null where the
// column allows it, else the epoch, as Debezium documents.
func (c *column) zeroDate() any {
	if c.nullable {
		return nil
	}
	if c.kind == kTime {
		return int64(0)
	}
	return time.Unix(0, 0).UTC()
}

// temporal parses the text of a DATE, TIME, DATETIME or TIMESTAMP value
// (a TIMESTAMP's in UTC).
func (c *column) temporal(s string) (any, error) {
	if c.kind == kTime {
		return parseTime(s)
	}
	date, clock, _ := strings.Cut(s, " ")
	y, m, d, ok := splitDate(date)
	if !ok {
		return nil, fmt.Errorf("%s %q", kindNames[c.kind], s)
	}
	if y == 0 || m == 0 || d == 0 {
		return c.zeroDate(), nil
	}
	var micros int64
	if clock != "" {
		us, err := parseTime(clock)
		if err != nil {
			return nil, fmt.Errorf("%s %q", kindNames[c.kind], s)
		}
		micros = us.(int64)
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Add(time.Duration(micros) * time.Microsecond)
	return t, nil
}

func splitDate(s string) (y, m, d int, ok bool) {
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return 0, 0, 0, false
	}
	var err [3]error
	y, err[0] = strconv.Atoi(parts[0])
	m, err[1] = strconv.Atoi(parts[1])
	d, err[2] = strconv.Atoi(parts[2])
	return y, m, d, err[0] == nil && err[1] == nil && err[2] == nil
}

// parseTime parses [-]H+:MM:SS[.f] into microseconds (an int64).
func parseTime(s string) (any, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	hms, frac, _ := strings.Cut(s, ".")
	parts := strings.Split(hms, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("time %q", s)
	}
	var total int64
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("time %q", s)
		}
		total += n * [3]int64{3600e6, 60e6, 1e6}[i]
	}
	if frac != "" {
		frac = (frac + "000000")[:6]
		n, err := strconv.ParseInt(frac, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("time %q", s)
		}
		total += n
	}
	if neg {
		total = -total
	}
	return total, nil
}

package postgres

import (
	"encoding/hex"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
)

// Type OIDs of the built-in types with a mapping of their own; every other
// type is carried as its text form.
const (
	oidBool        = 16
	oidBytea       = 17
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidOID         = 26
	oidFloat4      = 700
	oidFloat8      = 701
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
)

// column is how one column maps: its Avro type and the decoder of its
// text form.
type column struct {
	name   string
	oid    uint32
	typmod int32
	key    bool
	schema avro.Schema // without the null branch
	decode func(string) (any, error)
}

// mapColumn picks the Avro type of a PostgreSQL type.
func mapColumn(name string, oid uint32, typmod int32) column {
	c := column{name: name, oid: oid, typmod: typmod}
	prim := func(t avro.Type, l avro.LogicalSchema) avro.Schema { return avro.NewPrimitiveSchema(t, l) }
	switch oid {
	case oidBool:
		c.schema = prim(avro.Boolean, nil)
		c.decode = func(s string) (any, error) { return s == "t", nil }
	case oidInt2, oidInt4:
		c.schema = prim(avro.Int, nil)
		c.decode = func(s string) (any, error) {
			n, err := strconv.ParseInt(s, 10, 32)
			return int32(n), err
		}
	case oidInt8, oidOID:
		c.schema = prim(avro.Long, nil)
		c.decode = func(s string) (any, error) { return strconv.ParseInt(s, 10, 64) }
	case oidFloat4:
		c.schema = prim(avro.Float, nil)
		c.decode = func(s string) (any, error) {
			f, err := strconv.ParseFloat(s, 32)
			return float32(f), err
		}
	case oidFloat8:
		c.schema = prim(avro.Double, nil)
		c.decode = func(s string) (any, error) { return strconv.ParseFloat(s, 64) }
	case oidNumeric:
		if typmod >= 4 { // numeric(p, s): an exact decimal
			prec, scale := int((typmod-4)>>16)&0xffff, int(typmod-4)&0xffff
			c.schema = prim(avro.Bytes, avro.NewDecimalLogicalSchema(prec, scale))
			c.decode = func(s string) (any, error) {
				r, ok := new(big.Rat).SetString(s)
				if !ok {
					return nil, fmt.Errorf("numeric %q does not fit numeric(%d,%d) as a decimal", s, prec, scale)
				}
				return r, nil
			}
		} else { // unconstrained: any scale, NaN; kept exactly as text
			c.schema = prim(avro.String, nil)
			c.decode = func(s string) (any, error) { return s, nil }
		}
	case oidBytea:
		c.schema = prim(avro.Bytes, nil)
		c.decode = func(s string) (any, error) {
			if !strings.HasPrefix(s, `\x`) {
				return nil, fmt.Errorf("bytea %q is not in hex format", s)
			}
			return hex.DecodeString(s[2:])
		}
	case oidDate:
		c.schema = prim(avro.Int, avro.NewPrimitiveLogicalSchema(avro.Date))
		c.decode = func(s string) (any, error) { return time.Parse("2006-01-02", s) }
	case oidTime:
		c.schema = prim(avro.Long, avro.NewPrimitiveLogicalSchema(avro.TimeMicros))
		c.decode = parseTimeOfDay
	case oidTimestamp:
		c.schema = prim(avro.Long, avro.NewPrimitiveLogicalSchema(avro.LocalTimestampMicros))
		c.decode = func(s string) (any, error) { return time.Parse("2006-01-02 15:04:05.999999", s) }
	case oidTimestamptz:
		c.schema = prim(avro.Long, avro.NewPrimitiveLogicalSchema(avro.TimestampMicros))
		c.decode = parseTimestamptz
	case oidUUID:
		c.schema = prim(avro.String, avro.NewPrimitiveLogicalSchema(avro.UUID))
		c.decode = func(s string) (any, error) { return s, nil }
	default:
		c.schema = prim(avro.String, nil)
		c.decode = func(s string) (any, error) { return s, nil }
	}
	return c
}

func parseTimeOfDay(s string) (any, error) {
	t, err := time.Parse("15:04:05.999999", s)
	if err != nil {
		if s == "24:00:00" {
			return 24 * time.Hour, nil
		}
		return nil, err
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute +
		time.Duration(t.Second())*time.Second + time.Duration(t.Nanosecond()), nil
}

// parseTimestamptz reads PostgreSQL's ISO output ("2024-01-02
// 03:04:05.123456+00", offsets with minutes too) as an instant.
func parseTimestamptz(s string) (any, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999-07", "2006-01-02 15:04:05.999999-07:00", "2006-01-02 15:04:05.999999-07:00:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return nil, fmt.Errorf("timestamptz %q: not in ISO format", s)
}

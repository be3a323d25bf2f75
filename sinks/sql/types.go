package sql

import (
	"fmt"

	"github.com/hamba/avro/v2"
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

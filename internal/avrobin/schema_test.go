package avrobin

import (
	"testing"

	"github.com/hamba/avro/v2"
)

func TestKindOf(t *testing.T) {
	for text, want := range map[string]Kind{
		`"boolean"`: KindBoolean, `"int"`: KindInt, `"long"`: KindLong, `"float"`: KindFloat, `"double"`: KindDouble,
		`"string"`: KindString, `"bytes"`: KindBytes, `{"type":"fixed","name":"f","size":4}`: KindFixed,
		`{"type":"int","logicalType":"date"}`:                                                  KindDate,
		`{"type":"int","logicalType":"time-millis"}`:                                           KindTimeMillis,
		`{"type":"long","logicalType":"time-micros"}`:                                          KindTimeMicros,
		`{"type":"long","logicalType":"timestamp-millis"}`:                                     KindTimestampMillis,
		`{"type":"long","logicalType":"timestamp-micros"}`:                                     KindTimestampMicros,
		`{"type":"long","logicalType":"local-timestamp-millis"}`:                               KindLocalTimestampMillis,
		`{"type":"long","logicalType":"local-timestamp-micros"}`:                               KindLocalTimestampMicros,
		`{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}`:                     KindDecimal,
		`{"type":"fixed","name":"d","size":8,"logicalType":"decimal","precision":9,"scale":2}`: KindDecimal,
		`{"type":"string","logicalType":"uuid"}`:                                               KindUUID,
		`{"type":"long","logicalType":"date"}`:                                                 KindLong, // a logical type on the wrong type is its physical kind
		`{"type":"record","name":"r","fields":[]}`:                                             KindOther,
		`["null","long"]`: KindOther,
	} {
		s, err := avro.Parse(text)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		if got := KindOf(s); got != want {
			t.Errorf("KindOf(%s) = %d, want %d", text, got, want)
		}
	}
}

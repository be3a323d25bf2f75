package postgres

import (
	"encoding/hex"
	"testing"

	"github.com/eddy-cdc/eddy/internal/golden"
)

// Source positions are stored in __connect_offsets and compared byte-wise
// on restart: their layout is an upgrade contract.
func TestGoldenPositions(t *testing.T) {
	out := "snapshot " + hex.EncodeToString(snapshotPos(3, 2, 1000)) + "\n" +
		"snapshot-end " + hex.EncodeToString(append(snapshotPos(3, 0, 0)[:9], snapshotEndMark...)) + "\n" +
		"stream " + hex.EncodeToString(streamPos(0x16A3B840, 7)) + "\n"
	golden.Check(t, "positions.txt", []byte(out))
}

// The key and envelope schemas a table gets are registered under its
// subjects; consumers and sinks decode with them. A change of field names,
// order, namespace or properties is an upgrade concern, seen here first.
func TestGoldenEnvelopeSchemas(t *testing.T) {
	tb := &table{schema: "public", name: "order lines"}
	for _, c := range []struct {
		name   string
		oid    uint32
		typmod int32
		key    bool
	}{
		{"order_id", oidInt8, -1, true},
		{"line", oidInt4, -1, true},
		{"sku", 25, -1, false}, // text
		{"price", oidNumeric, (12<<16 | 2) + 4, false},
		{"placed", oidTimestamptz, -1, false},
		{"ref", oidUUID, -1, false},
	} {
		col := mapColumn(c.name, c.oid, c.typmod)
		col.key = c.key
		tb.cols = append(tb.cols, col)
	}
	if err := tb.buildSchemas("shop"); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "order_lines.key.avsc", []byte(tb.keySchema.String()+"\n"))
	golden.Check(t, "order_lines.value.avsc", []byte(tb.valueSchema.String()+"\n"))
	golden.Check(t, "order_lines.topic.txt", []byte(tb.topic+"\n"))
}

package connect

import (
	"encoding/json"
	"testing"

	"github.com/eddy-cdc/eddy/internal/golden"
)

// A source connector's stored position in __connect_offsets, key (Kafka
// Connect's shape) and value: an upgrade contract.
func TestGoldenConnectOffsets(t *testing.T) {
	golden.Check(t, "connect_offsets.key.json", offsetKey("shop-source"))
	so := SourceOffset{Position: []byte{0x01, 0, 0, 0, 0, 0x16, 0xa3, 0xb8, 0x40}, Ends: map[string][]int64{"shop.public.orders": {10, 0, 7}}}
	v, err := json.Marshal(so)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "connect_offsets.value.json", v)
	var back SourceOffset
	if err := json.Unmarshal(golden.Read(t, "connect_offsets.value.json"), &back); err != nil {
		t.Fatal(err)
	}
	v2, _ := json.Marshal(back)
	golden.Check(t, "connect_offsets.value.json", v2)
}

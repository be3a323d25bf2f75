package registry

import (
	"encoding/json"
	"testing"

	"github.com/eddy-cdc/eddy/internal/golden"
)

// The records of _schemas are an upgrade contract (and Confluent's shapes):
// each kind, key and value, as a registry writes it, read back and written
// again identically.
func TestGoldenSchemasRecords(t *testing.T) {
	subj := "shop.public.orders-value"
	for _, c := range []struct {
		name  string
		key   recordKey
		value any // a pointer to the value's type when decoding
		fresh func() any
	}{
		{"schema", schemaKey(subj, 3), &schemaValue{Subject: subj, Version: 3, ID: 17, Schema: `{"type":"record","name":"user","fields":[{"name":"id","type":"long"}]}`,
			References: []Reference{{Name: "common.Money", Subject: "money", Version: 2}}, Deleted: true},
			func() any { return &schemaValue{} }},
		{"config-global", recordKey{KeyType: "CONFIG", Magic: 0}, &configValue{CompatibilityLevel: Full}, func() any { return &configValue{} }},
		{"config-subject", recordKey{KeyType: "CONFIG", Subject: &subj, Magic: 0}, &configValue{CompatibilityLevel: BackwardTransitive}, func() any { return &configValue{} }},
		{"mode-global", modeKey(""), &modeValue{Mode: ReadOnly}, func() any { return &modeValue{} }},
		{"mode-subject", modeKey(subj), &modeValue{Mode: ReadWrite}, func() any { return &modeValue{} }},
		{"id-watermark", recordKey{KeyType: "ID", Magic: 0}, &idValue{NextID: 42}, func() any { return &idValue{} }},
		{"schema-deleted", schemaKey(subj, 4), nil, nil},
	} {
		rec := record(c.key, c.value)
		if c.value == nil {
			rec = record(c.key, nil)
		}
		golden.Check(t, c.name+".key.json", rec.Key)
		var k recordKey
		if err := json.Unmarshal(golden.Read(t, c.name+".key.json"), &k); err != nil {
			t.Fatal(err)
		}
		if c.value == nil {
			if rec.Value != nil {
				t.Fatalf("%s: a tombstone with a value", c.name)
			}
			golden.Check(t, c.name+".key.json", record(k, nil).Key)
			continue
		}
		golden.Check(t, c.name+".value.json", rec.Value)
		v := c.fresh()
		if err := json.Unmarshal(golden.Read(t, c.name+".value.json"), v); err != nil {
			t.Fatal(err)
		}
		back := record(k, v)
		golden.Check(t, c.name+".key.json", back.Key)
		golden.Check(t, c.name+".value.json", back.Value)
	}
}

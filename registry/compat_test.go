package registry

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
)

// rec builds a record schema named "r" from field JSON snippets.
func rec(fields ...string) string {
	return `{"type":"record","name":"r","namespace":"eddy.test","fields":[` + strings.Join(fields, ",") + `]}`
}

func f(name, typ string) string { return fmt.Sprintf(`{"name":%q,"type":%s}`, name, typ) }

func fd(name, typ, def string) string {
	return fmt.Sprintf(`{"name":%q,"type":%s,"default":%s}`, name, typ, def)
}

func fa(name, typ, aliases string) string {
	return fmt.Sprintf(`{"name":%q,"type":%s,"aliases":%s}`, name, typ, aliases)
}

const (
	enumABC   = `{"type":"enum","name":"e","symbols":["A","B","C"]}`
	enumAB    = `{"type":"enum","name":"e","symbols":["A","B"]}`
	enumABdef = `{"type":"enum","name":"e","symbols":["A","B"],"default":"A"}`
	enumABCd  = `{"type":"enum","name":"e","symbols":["A","B","C"],"default":"A"}`
	enumOther = `{"type":"enum","name":"other","symbols":["A","B"]}`
	fixed4    = `{"type":"fixed","name":"fx","size":4}`
	fixed8    = `{"type":"fixed","name":"fx","size":8}`
	fixed4b   = `{"type":"fixed","name":"fy","size":4}`
	nestedA   = `{"type":"record","name":"n","fields":[{"name":"x","type":"int"}]}`
	nestedAB  = `{"type":"record","name":"n","fields":[{"name":"x","type":"int"},{"name":"y","type":"string","default":""}]}`
	nestedABn = `{"type":"record","name":"n","fields":[{"name":"x","type":"int"},{"name":"y","type":"string"}]}`
	nestedXL  = `{"type":"record","name":"n","fields":[{"name":"x","type":"long"}]}`
	decimal92 = `{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}`
	decimal12 = `{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}`
	dateInt   = `{"type":"int","logicalType":"date"}`
	tsMicros  = `{"type":"long","logicalType":"timestamp-micros"}`
	tsMillis  = `{"type":"long","logicalType":"timestamp-millis"}`
	uuidStr   = `{"type":"string","logicalType":"uuid"}`
)

// compatCases: old schema, new schema, and whether the new schema can read
// data written with the old (backward) and the old can read the new
// (forward). FULL is both; NONE always passes.
var compatCases = []struct {
	name              string
	old, new          string
	backward, forward bool
}{
	// Fields.
	{"identical", rec(f("a", `"int"`)), rec(f("a", `"int"`)), true, true},
	{"add field with default", rec(f("a", `"int"`)), rec(f("a", `"int"`), fd("b", `"string"`, `"x"`)), true, true},
	{"add field without default", rec(f("a", `"int"`)), rec(f("a", `"int"`), f("b", `"string"`)), false, true},
	{"remove field that had a default", rec(f("a", `"int"`), fd("b", `"string"`, `"x"`)), rec(f("a", `"int"`)), true, true},
	{"remove field without default", rec(f("a", `"int"`), f("b", `"string"`)), rec(f("a", `"int"`)), true, false},
	{"add optional field, null default", rec(f("a", `"int"`)), rec(f("a", `"int"`), fd("b", `["null","string"]`, `null`)), true, true},
	{"add int field with default", rec(f("a", `"int"`)), rec(f("a", `"int"`), fd("n", `"int"`, `0`)), true, true},
	{"add record field with default", rec(f("a", `"int"`)), rec(f("a", `"int"`), fd("n", nestedA, `{"x":1}`)), true, true},
	{"change a field's default", rec(fd("a", `"int"`, `1`)), rec(fd("a", `"int"`, `2`)), true, true},
	{"reorder fields", rec(f("a", `"int"`), f("b", `"string"`)), rec(f("b", `"string"`), f("a", `"int"`)), true, true},
	{"replace field without defaults", rec(f("a", `"int"`)), rec(f("b", `"int"`)), false, false},
	{"rename field with alias", rec(f("a", `"int"`)), rec(fa("b", `"int"`, `["a"]`)), true, false},
	{"rename field with alias and default", rec(fd("a", `"int"`, `0`)), rec(`{"name":"b","type":"int","aliases":["a"],"default":0}`), true, true},
	{"add field to empty record", rec(), rec(fd("a", `"int"`, `0`)), true, true},
	{"remove all fields", rec(f("a", `"int"`)), rec(), true, false},
	// Primitive promotions and changes.
	{"int to long", rec(f("a", `"int"`)), rec(f("a", `"long"`)), true, false},
	{"int to float", rec(f("a", `"int"`)), rec(f("a", `"float"`)), true, false},
	{"int to double", rec(f("a", `"int"`)), rec(f("a", `"double"`)), true, false},
	{"long to float", rec(f("a", `"long"`)), rec(f("a", `"float"`)), true, false},
	{"long to double", rec(f("a", `"long"`)), rec(f("a", `"double"`)), true, false},
	{"float to double", rec(f("a", `"float"`)), rec(f("a", `"double"`)), true, false},
	{"long to int", rec(f("a", `"long"`)), rec(f("a", `"int"`)), false, true},
	{"double to float", rec(f("a", `"double"`)), rec(f("a", `"float"`)), false, true},
	{"double to int", rec(f("a", `"double"`)), rec(f("a", `"int"`)), false, true},
	{"string to bytes", rec(f("a", `"string"`)), rec(f("a", `"bytes"`)), true, true},
	{"bytes to string", rec(f("a", `"bytes"`)), rec(f("a", `"string"`)), true, true},
	{"int to string", rec(f("a", `"int"`)), rec(f("a", `"string"`)), false, false},
	{"string to int", rec(f("a", `"string"`)), rec(f("a", `"int"`)), false, false},
	{"boolean to int", rec(f("a", `"boolean"`)), rec(f("a", `"int"`)), false, false},
	{"null to int", rec(f("a", `"null"`)), rec(f("a", `"int"`)), false, false},
	{"record field to string", rec(f("a", nestedA)), rec(f("a", `"string"`)), false, false},
	{"top-level int to long", `"int"`, `"long"`, true, false},
	{"top-level string to record", `"string"`, rec(f("a", `"int"`)), false, false},
	// Unions.
	{"field becomes optional", rec(f("a", `"string"`)), rec(f("a", `["null","string"]`)), true, false},
	{"optional field becomes required", rec(f("a", `["null","string"]`)), rec(f("a", `"string"`)), false, true},
	{"add branch to union", rec(f("a", `["null","string"]`)), rec(f("a", `["null","string","int"]`)), true, false},
	{"remove branch from union", rec(f("a", `["null","string","int"]`)), rec(f("a", `["null","string"]`)), false, true},
	{"reorder union branches", rec(f("a", `["null","string"]`)), rec(f("a", `["string","null"]`)), true, true},
	{"union branch promoted int to long", rec(f("a", `["null","int"]`)), rec(f("a", `["null","long"]`)), true, false},
	{"union to unrelated union", rec(f("a", `["null","int"]`)), rec(f("a", `["null","boolean"]`)), false, false},
	{"int into union with long", rec(f("a", `"int"`)), rec(f("a", `["null","long"]`)), true, false},
	{"top-level union grows", `["int","string"]`, `["int","string","boolean"]`, true, false},
	// Enums.
	{"enum adds symbol", rec(f("e", enumAB)), rec(f("e", enumABC)), true, false},
	{"enum removes symbol", rec(f("e", enumABC)), rec(f("e", enumAB)), false, true},
	{"enum removes symbol, new has default", rec(f("e", enumABC)), rec(f("e", enumABdef)), true, true},
	{"enum adds symbol, old had default", rec(f("e", enumABdef)), rec(f("e", enumABCd)), true, true},
	{"enum renamed", rec(f("e", enumAB)), rec(f("e", enumOther)), false, false},
	{"enum to string", rec(f("e", enumAB)), rec(f("e", `"string"`)), false, false},
	// Fixed.
	{"fixed same", rec(f("x", fixed4)), rec(f("x", fixed4)), true, true},
	{"fixed size changes", rec(f("x", fixed4)), rec(f("x", fixed8)), false, false},
	{"fixed renamed", rec(f("x", fixed4)), rec(f("x", fixed4b)), false, false},
	// Arrays and maps.
	{"array items int to long", rec(f("a", `{"type":"array","items":"int"}`)), rec(f("a", `{"type":"array","items":"long"}`)), true, false},
	{"array items string to int", rec(f("a", `{"type":"array","items":"string"}`)), rec(f("a", `{"type":"array","items":"int"}`)), false, false},
	{"map values int to double", rec(f("m", `{"type":"map","values":"int"}`)), rec(f("m", `{"type":"map","values":"double"}`)), true, false},
	{"map values string to int", rec(f("m", `{"type":"map","values":"string"}`)), rec(f("m", `{"type":"map","values":"int"}`)), false, false},
	{"array to map", rec(f("a", `{"type":"array","items":"int"}`)), rec(f("a", `{"type":"map","values":"int"}`)), false, false},
	{"array of records gains field with default", rec(f("a", `{"type":"array","items":`+nestedA+`}`)), rec(f("a", `{"type":"array","items":`+nestedAB+`}`)), true, true},
	// Nested records.
	{"nested record gains field with default", rec(f("n", nestedA)), rec(f("n", nestedAB)), true, true},
	{"nested record gains field without default", rec(f("n", nestedA)), rec(f("n", nestedABn)), false, true},
	{"nested field int to long", rec(f("n", nestedA)), rec(f("n", nestedXL)), true, false},
	// Record names and aliases.
	{"record renamed", `{"type":"record","name":"a","fields":[]}`, `{"type":"record","name":"b","fields":[]}`, false, false},
	{"record renamed with alias", `{"type":"record","name":"a","fields":[]}`, `{"type":"record","name":"b","aliases":["a"],"fields":[]}`, true, false},
	// Logical types resolve as their underlying types.
	{"decimal precision grows", rec(f("d", decimal92)), rec(f("d", decimal12)), true, true},
	{"date to int", rec(f("d", dateInt)), rec(f("d", `"int"`)), true, true},
	{"timestamp-millis to timestamp-micros", rec(f("t", tsMillis)), rec(f("t", tsMicros)), true, true},
	{"uuid to string", rec(f("u", uuidStr)), rec(f("u", `"string"`)), true, true},
	{"date to long", rec(f("d", dateInt)), rec(f("d", `"long"`)), true, false},
	// Recursive schemas.
	{"recursive list gains field with default",
		`{"type":"record","name":"node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","node"]}]}`,
		`{"type":"record","name":"node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","node"]},{"name":"w","type":"int","default":0}]}`,
		true, true},
}

func parse(t *testing.T, s string) avro.Schema {
	t.Helper()
	sch, err := avro.ParseWithCache(s, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return sch
}

func TestCompatibilityTable(t *testing.T) {
	if len(compatCases) < 60 {
		t.Fatalf("the table has %d pairs; the registry promises at least 60", len(compatCases))
	}
	for _, c := range compatCases {
		t.Run(c.name, func(t *testing.T) {
			old, nw := parse(t, c.old), parse(t, c.new)
			for _, lv := range []struct {
				level Level
				want  bool
			}{
				{None, true},
				{Backward, c.backward},
				{Forward, c.forward},
				{Full, c.backward && c.forward},
				{BackwardTransitive, c.backward},
				{ForwardTransitive, c.forward},
				{FullTransitive, c.backward && c.forward},
			} {
				msgs := CheckCompatibility(lv.level, nw, []avro.Schema{old})
				if got := len(msgs) == 0; got != lv.want {
					t.Errorf("%s: compatible=%v, want %v (%v)", lv.level, got, lv.want, msgs)
				}
			}
		})
	}
}

// Transitive levels check every earlier version, the plain ones only the
// last: v1 {a}, v2 {a, b default 0}, v3 {a, b without default}.
func TestTransitiveLevels(t *testing.T) {
	v1 := parse(t, rec(f("a", `"int"`)))
	v2 := parse(t, rec(f("a", `"int"`), fd("b", `"int"`, `0`)))
	v3 := parse(t, rec(f("a", `"int"`), f("b", `"int"`)))
	history := []avro.Schema{v1, v2}
	if msgs := CheckCompatibility(Backward, v3, history); len(msgs) != 0 {
		t.Fatalf("BACKWARD against v2 only: %v", msgs)
	}
	msgs := CheckCompatibility(BackwardTransitive, v3, history)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "version 1") {
		t.Fatalf("BACKWARD_TRANSITIVE must fail on version 1: %v", msgs)
	}
	// Forward: v1 {a, b default}, v2 {a}, candidate v3 {a, c without default}.
	w1 := parse(t, rec(f("a", `"int"`), f("b", `"int"`)))
	w2 := parse(t, rec(f("a", `"int"`), f("b", `"int"`), f("c", `"int"`)))
	w3 := parse(t, rec(f("a", `"int"`), f("c", `"int"`)))
	if msgs := CheckCompatibility(Forward, w3, []avro.Schema{w1, w2}); len(msgs) == 0 {
		t.Fatal("FORWARD: v2 needs b, which v3 lacks")
	}
	if msgs := CheckCompatibility(FullTransitive, v2, []avro.Schema{v1}); len(msgs) != 0 {
		t.Fatalf("FULL_TRANSITIVE for an added defaulted field: %v", msgs)
	}
	if msgs := CheckCompatibility(Full, v3, nil); len(msgs) != 0 {
		t.Fatalf("the first version is always compatible: %v", msgs)
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]Level{"backward": Backward, " FULL_TRANSITIVE ": FullTransitive, "None": None} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseLevel("SIDEWAYS"); err == nil {
		t.Error("ParseLevel accepted SIDEWAYS")
	}
}

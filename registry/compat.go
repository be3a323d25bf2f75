package registry

import (
	"fmt"
	"strings"

	"github.com/hamba/avro/v2"
)

// Level is a compatibility level, as Confluent's Schema Registry names it.
type Level string

// The levels. BACKWARD (Confluent's default) means consumers using the new
// schema can read data written with the last one; FORWARD, that consumers
// still on the last schema can read data written with the new one; FULL,
// both. The _TRANSITIVE levels check against every earlier version instead
// of the last one only.
const (
	None               Level = "NONE"
	Backward           Level = "BACKWARD"
	BackwardTransitive Level = "BACKWARD_TRANSITIVE"
	Forward            Level = "FORWARD"
	ForwardTransitive  Level = "FORWARD_TRANSITIVE"
	Full               Level = "FULL"
	FullTransitive     Level = "FULL_TRANSITIVE"
)

// ParseLevel reads a level, case-insensitively.
func ParseLevel(s string) (Level, error) {
	l := Level(strings.ToUpper(strings.TrimSpace(s)))
	switch l {
	case None, Backward, BackwardTransitive, Forward, ForwardTransitive, Full, FullTransitive:
		return l, nil
	}
	return "", fmt.Errorf("compatibility level %q: want one of NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE", s)
}

func (l Level) transitive() bool { return strings.HasSuffix(string(l), "_TRANSITIVE") }

func (l Level) backward() bool {
	return l == Backward || l == BackwardTransitive || l == Full || l == FullTransitive
}

func (l Level) forward() bool {
	return l == Forward || l == ForwardTransitive || l == Full || l == FullTransitive
}

// CheckCompatibility reports why candidate may not follow the versions in
// previous (oldest first) under level; an empty result means it may. Each
// message names the version and the direction that fails, in the manner of
// Confluent's verbose compatibility answer.
//
// The reading rules are Avro's schema resolution, as hamba/avro implements
// them: field defaults, numeric promotion (int -> long -> float -> double),
// string <-> bytes, enum symbols and enum defaults, union branches, record
// and field aliases, fixed names and sizes, recursively through records,
// arrays and maps. Logical types resolve as their underlying types do, as in
// Avro's Java implementation that Confluent uses.
func CheckCompatibility(level Level, candidate avro.Schema, previous []avro.Schema) []string {
	if level == None || len(previous) == 0 {
		return nil
	}
	against := previous[len(previous)-1:]
	if level.transitive() {
		against = previous
	}
	var msgs []string
	check := avro.NewSchemaCompatibility()
	for i, old := range against {
		version := len(previous) - len(against) + i + 1
		if level.backward() {
			if err := check.Compatible(candidate, old); err != nil {
				msgs = append(msgs, fmt.Sprintf("version %d: the new schema cannot read data written with it (backward): %v", version, err))
			}
		}
		if level.forward() {
			if err := check.Compatible(old, candidate); err != nil {
				msgs = append(msgs, fmt.Sprintf("version %d: it cannot read data written with the new schema (forward): %v", version, err))
			}
		}
	}
	return msgs
}

package datagen

import (
	"context"
	"encoding/binary"
	"reflect"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
)

func gen(t *testing.T, params map[string]any) *Generator {
	t.Helper()
	cat, err := connect.BuiltinCatalog()
	if err != nil {
		t.Fatal(err)
	}
	p, err := connect.NewParams(cat.Plugin("datagen-source"), params)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(p, connect.Env{Connector: "g"})
	if err != nil {
		t.Fatal(err)
	}
	return s.(*Generator)
}

// Creates first, then updates with the previous state as before, a delete
// every tenth round followed by a tombstone, and a create after it; the
// same seed gives the same events.
func TestEventsCycleAndRepeat(t *testing.T) {
	g := gen(t, map[string]any{"keys": 2, "tables": []string{"a", "b"}, "rate": 0})
	now := time.Now()
	ops := map[uint64]string{}
	for i := range uint64(4 * 21) {
		recs := g.Event(i, now)
		op := recs[0].Value.(map[string]any)["op"].(string)
		ops[i] = op
		round := i / 4
		want := "u"
		switch {
		case round%10 == 0:
			want = "c"
		case round%10 == 9:
			want = "d"
		}
		if op != want {
			t.Fatalf("event %d (round %d): op %s, want %s", i, round, op, want)
		}
		if op == "d" && (len(recs) != 2 || recs[1].Value != nil || string(recs[1].Position[:8]) != string(recs[0].Position[:8]) || recs[1].Position[8] != 1) {
			t.Fatalf("event %d: a delete is followed by its tombstone: %+v", i, recs)
		}
		if op == "u" {
			v := recs[0].Value.(map[string]any)
			before, after := v["before"].(map[string]any), v["after"].(map[string]any)
			prev := g.Event(i-4, now)[0].Value.(map[string]any)["after"].(map[string]any)
			if !reflect.DeepEqual(before, prev) || after["seq"].(int64) != int64(i) {
				t.Fatalf("event %d: before %v is not the previous after %v", i, before, prev)
			}
		}
	}
	other := gen(t, map[string]any{"keys": 2, "tables": []string{"a", "b"}, "rate": 0})
	if !reflect.DeepEqual(g.Event(77, now), other.Event(77, now)) {
		t.Fatal("the same seed gave different events")
	}
}

// Open continues after a stored position; max_events ends the stream.
func TestOpenContinuesAndStops(t *testing.T) {
	g := gen(t, map[string]any{"max_events": 10, "batch_size": 4, "rate": 0})
	ctx := context.Background()
	pos := binary.BigEndian.AppendUint64(nil, 5)
	if err := g.Open(ctx, append(pos, 0)); err != nil {
		t.Fatal(err)
	}
	recs, err := g.Poll(ctx)
	if err != nil || len(recs) != 4 || binary.BigEndian.Uint64(recs[0].Position) != 6 {
		t.Fatalf("poll after 5: %d records, %v", len(recs), err)
	}
	if last := binary.BigEndian.Uint64(recs[len(recs)-1].Position); last != 9 {
		t.Fatalf("last event %d", last)
	}
	if _, err := g.Poll(ctx); err == nil {
		t.Fatal("no end after max_events")
	}
}

package connecttest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	elog "github.com/eddy-cdc/eddy/log"
)

// TransformTarget is what a transform plugin gives TransformSuite.
type TransformTarget struct {
	Plugin string
	New    func(connect.Params, connect.Env) (connect.Transform, error)
	Params map[string]any // a working configuration
	// Records are records the transform acts on, made afresh on each
	// call (a transform edits records in place).
	Records    func() []connect.Record
	BadConfigs []BadConfig
}

// TransformSuite is the contract every transform plugin meets:
//   - bad configurations are refused, naming their key;
//   - records it does not act on pass unchanged (a position marker, a
//     tombstone, raw bytes, a string, a value that is no envelope);
//   - a record's position and timestamp are kept, and the same input
//     gives the same output (a task rebuilt after a crash transforms the
//     replayed records as before);
//   - hostile input (a field of every wrong type) is a record error or a
//     pass, never a panic.
func TransformSuite(t *testing.T, tg TransformTarget) {
	t.Run("bad configs", func(t *testing.T) {
		checkBadConfigs(t, tg.Plugin, tg.New, tg.BadConfigs)
	})
	build := func(t *testing.T) connect.Transform {
		return mustConstruct(t, tg.Plugin, tg.New, tg.Params)
	}
	t.Run("passes what it does not act on", func(t *testing.T) {
		tr := build(t)
		at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		for i, in := range []connect.Record{
			{Position: []byte{1}},
			{Topic: "other", Key: "k", Position: []byte{2}, Timestamp: at},
			{Topic: "other", Key: []byte{0xff}, Value: []byte{0, 1, 2}, Position: []byte{3}},
			{Topic: "other", Value: "text", Headers: []elog.Header{{Key: "h", Value: []byte("v")}}, Position: []byte{4}},
			{Topic: "other", Value: map[string]any{"id": int64(1), "name": "a"}, Position: []byte{5}},
			{Topic: "other", Value: map[string]any{"op": "c", "after": map[string]any{"id": int64(1)}, "source": map[string]any{"table": "unrelated"}}, Position: []byte{6}},
		} {
			rec := in
			keep, err := tr.Apply(&rec)
			if err != nil || !keep || !reflect.DeepEqual(rec, in) {
				t.Errorf("record %d: keep %v, err %v, %+v, want it unchanged: %+v", i, keep, err, rec, in)
			}
		}
	})
	t.Run("keeps positions, same output for same input", func(t *testing.T) {
		a, b := build(t), build(t)
		ins, again := tg.Records(), tg.Records()
		if len(ins) == 0 {
			t.Fatal("no records to act on")
		}
		acted := 0
		for i := range ins {
			before := ins[i]
			ka, ea := a.Apply(&ins[i])
			kb, eb := b.Apply(&again[i])
			if ka != kb || fmt.Sprint(ea) != fmt.Sprint(eb) || !reflect.DeepEqual(ins[i], again[i]) {
				t.Errorf("record %d: two runs differ: %v %v %+v / %v %v %+v", i, ka, ea, ins[i], kb, eb, again[i])
			}
			if string(ins[i].Position) != string(before.Position) || !ins[i].Timestamp.Equal(before.Timestamp) {
				t.Errorf("record %d: position or timestamp changed", i)
			}
			if !reflect.DeepEqual(ins[i], before) || !ka {
				acted++
			}
		}
		if acted == 0 {
			t.Error("the transform changed none of the records it acts on")
		}
	})
	t.Run("hostile input", func(t *testing.T) {
		tr := build(t)
		wrong := []any{nil, "", "x", int64(-1), 3.5, true, []byte{0xff, 0}, []any{1, "a"}, map[string]any{}, map[string]any{"a": []any{}}}
		for i, rec := range tg.Records() {
			m, ok := rec.Value.(map[string]any)
			if !ok {
				continue
			}
			for _, path := range paths(m, nil) {
				for _, w := range wrong {
					r := tg.Records()[i]
					set(r.Value.(map[string]any), path, w)
					func() {
						defer func() {
							if p := recover(); p != nil {
								t.Errorf("record %d with %v = %#v: panic: %v", i, path, w, p)
							}
						}()
						tr.Apply(&r)
					}()
				}
			}
		}
	})
}

// paths lists the paths to every value of nested maps.
func paths(m map[string]any, prefix []string) [][]string {
	var out [][]string
	for k, v := range m {
		p := append(append([]string(nil), prefix...), k)
		out = append(out, p)
		if sub, ok := v.(map[string]any); ok {
			out = append(out, paths(sub, p)...)
		}
	}
	return out
}

func set(m map[string]any, path []string, v any) {
	for _, k := range path[:len(path)-1] {
		sub, ok := m[k].(map[string]any)
		if !ok {
			return
		}
		m = sub
	}
	m[path[len(path)-1]] = v
}

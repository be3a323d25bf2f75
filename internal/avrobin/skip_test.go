package avrobin

import (
	"testing"

	"github.com/hamba/avro/v2"
)

const skipSchema = `{"type":"record","name":"R","fields":[
	{"name":"b","type":"boolean"},
	{"name":"i","type":"int"},
	{"name":"l","type":"long"},
	{"name":"f","type":"float"},
	{"name":"d","type":"double"},
	{"name":"s","type":"string"},
	{"name":"by","type":"bytes"},
	{"name":"fx","type":{"type":"fixed","name":"F","size":3}},
	{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
	{"name":"a","type":{"type":"array","items":"long"}},
	{"name":"m","type":{"type":"map","values":["null","string"]}},
	{"name":"u","type":["null","string","long"]},
	{"name":"next","type":["null","R"]}
]}`

func TestSkipStepsOverExactlyOneValue(t *testing.T) {
	s := avro.MustParse(skipSchema)
	inner := map[string]any{"b": false, "i": 1, "l": int64(2), "f": float32(1), "d": 2.0, "s": "", "by": []byte{},
		"fx": [3]byte{}, "e": "A", "a": []any{}, "m": map[string]any{}, "u": nil, "next": nil}
	v := map[string]any{"b": true, "i": -7, "l": int64(1) << 40, "f": float32(1.5), "d": 2.25, "s": "héllo", "by": []byte{1, 2, 3},
		"fx": [3]byte{9, 8, 7}, "e": "B", "a": []any{int64(1), int64(-2), int64(3)}, "m": map[string]any{"k": map[string]any{"string": "v"}, "n": nil},
		"u": map[string]any{"long": int64(5)}, "next": map[string]any{"R": inner}}
	b, err := avro.Marshal(s, v)
	if err != nil {
		t.Fatal(err)
	}
	skip, err := CompileSkip(s)
	if err != nil {
		t.Fatal(err)
	}
	trailer := []byte{0x55}
	r := NewReader(append(b, trailer...))
	if err := skip(r); err != nil {
		t.Fatal(err)
	}
	if r.Offset() != len(b) {
		t.Fatalf("skipped %d bytes of a %d-byte value", r.Offset(), len(b))
	}
	for cut := range len(b) {
		r.Reset(b[:cut])
		if err := skip(r); err == nil {
			t.Fatalf("a value cut at %d of %d bytes skipped without error", cut, len(b))
		}
	}
}

func FuzzSkip(f *testing.F) {
	s := avro.MustParse(skipSchema)
	skip, err := CompileSkip(s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{0x01, 0x0e, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(b)
		if err := skip(r); err == nil && r.Offset() > len(b) {
			t.Fatalf("read %d of %d bytes", r.Offset(), len(b))
		}
	})
}

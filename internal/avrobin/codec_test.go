package avrobin

import (
	"bytes"
	"math"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
)

const matrixSchema = `{"type":"record","name":"M","namespace":"t","fields":[
	{"name":"b","type":"boolean"},
	{"name":"i","type":"int"},
	{"name":"l","type":"long"},
	{"name":"f","type":"float"},
	{"name":"d","type":"double"},
	{"name":"s","type":"string"},
	{"name":"by","type":"bytes"},
	{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
	{"name":"fx","type":{"type":"fixed","name":"F","size":3}},
	{"name":"a","type":{"type":"array","items":["null","long"]}},
	{"name":"m","type":{"type":"map","values":"string"}},
	{"name":"ns","type":["null","string"],"default":null},
	{"name":"nr","type":["null",{"type":"record","name":"In","fields":[{"name":"x","type":"int"}]}],"default":null},
	{"name":"nr2","type":["null","In"],"default":null},
	{"name":"multi","type":["null","long","string"]},
	{"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":20,"scale":3}},
	{"name":"decf","type":{"type":"fixed","name":"D","size":8,"logicalType":"decimal","precision":18,"scale":2}},
	{"name":"uuid","type":{"type":"string","logicalType":"uuid"}},
	{"name":"date","type":{"type":"int","logicalType":"date"}},
	{"name":"tms","type":{"type":"int","logicalType":"time-millis"}},
	{"name":"tus","type":{"type":"long","logicalType":"time-micros"}},
	{"name":"tsm","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"tsu","type":{"type":"long","logicalType":"timestamp-micros"}},
	{"name":"lts","type":{"type":"long","logicalType":"local-timestamp-micros"}},
	{"name":"withdef","type":"string","default":"dflt"}]}`

func matrixValue() map[string]any {
	return map[string]any{
		"b": true, "i": -42, "l": int64(math.MaxInt64), "f": float32(1.5), "d": math.Inf(-1), "s": "héllo\n",
		"by": []byte{0, 1, 255}, "e": "C", "fx": []byte("abc"), "a": []any{int64(1), nil, int64(-3)},
		"m": map[string]any{"k": "v"}, "ns": nil, "nr": map[string]any{"x": 7}, "nr2": nil, "multi": "str",
		"dec": big.NewRat(-123456, 1000), "decf": big.NewRat(1999, 100), "uuid": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
		"date": time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), "tms": 3 * time.Second, "tus": 1500 * time.Microsecond,
		"tsm": time.UnixMilli(1_700_000_000_123).UTC(), "tsu": time.UnixMicro(-1_000_001).UTC(), "lts": time.UnixMicro(5).UTC(),
	}
}

// hambaForm is the same value as hamba/avro takes it: unions wrapped.
func hambaForm(v map[string]any) map[string]any {
	w := map[string]any{}
	for k, x := range v {
		w[k] = x
	}
	w["a"] = []any{map[string]any{"long": int64(1)}, nil, map[string]any{"long": int64(-3)}}
	w["nr"] = map[string]any{"t.In": map[string]any{"x": 7}}
	w["multi"] = map[string]any{"string": "str"}
	w["withdef"] = "dflt"
	w["fx"] = [3]byte{'a', 'b', 'c'}
	return w
}

// What the compiled codec writes, hamba/avro reads as it reads its own
// bytes; what hamba/avro writes (arrays and maps in sized blocks, too),
// the codec reads back as Eddy's value model.
func TestAvroCodecMatchesHamba(t *testing.T) {
	s, err := avro.ParseWithCache(matrixSchema, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := k.enc(nil, matrixValue())
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := avro.Config{}.Freeze().Marshal(s, hambaForm(matrixValue()))
	if err != nil {
		t.Fatal(err)
	}
	api := avro.Config{}.Freeze()
	var fromMine, fromTheirs any
	if err := api.Unmarshal(s, mine, &fromMine); err != nil {
		t.Fatal(err)
	}
	api.Unmarshal(s, theirs, &fromTheirs)
	if !reflect.DeepEqual(fromMine, fromTheirs) {
		t.Fatalf("hamba/avro reads our bytes as\n%v\nand its own as\n%v", fromMine, fromTheirs)
	}
	if bytes.Equal(mine, theirs) {
		t.Log("identical bytes") // they differ only in how arrays and maps are blocked
	}
	got, err := k.dec(NewReader(theirs))
	if err != nil {
		t.Fatal(err)
	}
	want := matrixValue()
	want["withdef"] = "dflt"
	for name, w := range want {
		g := got.(map[string]any)[name]
		switch wv := w.(type) {
		case *big.Rat:
			if g.(*big.Rat).Cmp(wv) != 0 {
				t.Errorf("%s: %v, want %v", name, g, w)
			}
		case time.Time:
			if !g.(time.Time).Equal(wv) {
				t.Errorf("%s: %v, want %v", name, g, w)
			}
		default:
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s: %#v, want %#v", name, g, w)
			}
		}
	}
}

func TestAvroCodecRefusesWrongValues(t *testing.T) {
	s, _ := avro.ParseWithCache(matrixSchema, "", &avro.SchemaCache{})
	k, _ := Compile(s)
	for field, bad := range map[string]any{
		"i": int64(1) << 40, "e": "Z", "fx": []byte("ab"), "s": 5, "dec": big.NewRat(1, 3000), "l": "x", "multi": 1.5,
	} {
		v := matrixValue()
		v[field] = bad
		if _, err := k.enc(nil, v); err == nil {
			t.Errorf("%s = %v was accepted", field, bad)
		}
	}
	v := matrixValue()
	delete(v, "s")
	if _, err := k.enc(nil, v); err == nil {
		t.Error("a missing field without a default was accepted")
	}
}

// The decoder never panics, whatever the bytes.
func FuzzAvroDecode(f *testing.F) {
	s, _ := avro.ParseWithCache(matrixSchema, "", &avro.SchemaCache{})
	k, _ := Compile(s)
	good, _ := k.enc(nil, matrixValue())
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		k.dec(NewReader(b))
	})
}

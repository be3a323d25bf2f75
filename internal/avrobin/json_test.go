package avrobin

import (
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hamba/avro/v2"
)

func TestAppendJSON(t *testing.T) {
	s, _ := avro.ParseWithCache(matrixSchema, "", &avro.SchemaCache{})
	v := matrixValue()
	v["withdef"] = "x"
	out, err := AppendJSON(nil, v, s)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(out) {
		t.Fatalf("not JSON: %s", out)
	}
	// Fields in schema order; the types as documented.
	for _, want := range []string{
		`{"b":true,"i":-42,"l":9223372036854775807,"f":1.5,"d":"-Inf","s":"héllo\n"`,
		`"by":"AAH/"`, `"a":[1,null,-3]`, `"m":{"k":"v"}`, `"nr":{"x":7}`, `"dec":"-123.456"`, `"decf":"19.99"`,
		`"date":"1969-12-31T00:00:00Z"`, `"tms":3000000`, `"tsm":"2023-11-14T22:13:20.123Z"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("%s lacks %s", out, want)
		}
	}
	// Without a schema: keys sorted, still valid.
	out, err = AppendJSON(nil, map[string]any{"z": 1, "a": []any{big.NewRat(1, 4), time.Duration(5) * time.Microsecond, math.NaN()}}, nil)
	if err != nil || string(out) != `{"a":["0.25",5,"NaN"],"z":1}` {
		t.Fatalf("%s %v", out, err)
	}
}

// Whatever the string, the output is JSON that reads back as the string
// (invalid UTF-8 replaced).
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\ nl\n ctl\x01 tab\t", "é中🙂", "bad \xff utf8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q -> %s: %v", s, out, err)
		}
		if want := strings.ToValidUTF8(s, "\uFFFD"); utf8.ValidString(s) && back != want {
			t.Fatalf("%q came back as %q", s, back)
		}
	})
}

package postgres

import (
	"reflect"
	"testing"
)

func TestParseArray(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []any
	}{
		{`{}`, []any{}},
		{`{1,2,NULL}`, []any{"1", "2", nil}},
		{`{"a,b","c\"d","NULL",""}`, []any{"a,b", `c"d`, "NULL", ""}},
		{`{{1,2},{3,NULL}}`, []any{[]any{"1", "2"}, []any{"3", nil}}},
		{`[0:1]={x,y}`, []any{"x", "y"}},
		{`{"back\\slash"}`, []any{`back\slash`}},
	} {
		got, err := parseArray(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %#v, %v; want %#v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{``, `{`, `{1,2`, `{1}x`, `1,2`, `{"a}`} {
		if _, err := parseArray(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseHstore(t *testing.T) {
	got, err := parseHstore(`"a"=>"1", "b c"=>NULL, "q\"uote"=>"x\\y"`)
	want := map[string]any{"a": "1", "b c": nil, `q"uote`: `x\y`}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%#v, %v", got, err)
	}
	if got, err := parseHstore(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %#v, %v", got, err)
	}
	for _, bad := range []string{`"a"`, `"a"=>`, `a=>b`, `"a"=>"b" "c"=>"d"`} {
		if _, err := parseHstore(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// The text-format parsers never panic, whatever the server sends.
func FuzzParseArray(f *testing.F) {
	for _, s := range []string{`{}`, `{1,NULL}`, `{{"a"},{"b"}}`, `[1:2]={1,2}`, `{"\\"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := parseArray(s); err == nil {
			decodeArray(v, 3, func(string) (any, error) { return nil, nil })
		}
		parseHstore(s)
	})
}

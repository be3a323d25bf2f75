package postgres

import (
	"testing"

	"github.com/eddy-cdc/eddy/internal/capture"
)

func TestTablePattern(t *testing.T) {
	for _, tc := range []struct {
		entry, want, err string
		matches          []string
		misses           []string
	}{
		{entry: "orders", want: "public.orders", matches: []string{"public.orders"}},
		{entry: "public.*", want: "public.*", matches: []string{"public.a", "public.OrderItems"}, misses: []string{"sales.a"}},
		{entry: `public."OrderItems"`, want: "public.OrderItems", matches: []string{"public.OrderItems"}, misses: []string{"public.orderitems"}},
		{entry: `"Sales"."order lines"`, want: "Sales.order lines", matches: []string{"Sales.order lines"}},
		{entry: `public."a.b"`, want: "public.a.b", matches: []string{"public.a.b"}},
		{entry: `public."x*"`, want: `public.x\*`, matches: []string{"public.x*"}, misses: []string{"public.xy"}},
		{entry: `public."say ""hi"""`, want: `public.say "hi"`, matches: []string{`public.say "hi"`}},
		{entry: "a.b.c", err: `"a.b.c": want schema.table (quote a name that holds a dot: schema."a.b")`},
		{entry: `public."open`, err: `"public.\"open": a quote is not closed`},
		{entry: `public."a"b`, err: `"public.\"a\"b": text after a quoted name; write schema."Table"`},
		{entry: "public.", err: `"public.": an empty schema or table name`},
	} {
		got, err := tablePattern(tc.entry)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: error %v, want %s", tc.entry, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.entry, got, err, tc.want)
		}
		for _, m := range tc.matches {
			if !capture.Match(got, m) {
				t.Errorf("%s does not match %s", tc.entry, m)
			}
		}
		for _, m := range tc.misses {
			if capture.Match(got, m) {
				t.Errorf("%s matches %s", tc.entry, m)
			}
		}
	}
}

func TestTopicName(t *testing.T) {
	for _, tc := range [][4]string{
		{"shop", "public", "orders", "shop.public.orders"},
		{"shop", "public", "order lines", "shop.public.order_lines"},
		{"shop", "Sales", "OrderItems", "shop.Sales.OrderItems"},
		{"shop", "public", `bad"name$`, "shop.public.bad_name_"},
		{"shop", "public", "über", "shop.public._ber"},
	} {
		if got := capture.TopicName(tc[0], tc[1], tc[2]); got != tc[3] {
			t.Errorf("capture.TopicName(%q, %q, %q) = %q, want %q", tc[0], tc[1], tc[2], got, tc[3])
		}
	}
}

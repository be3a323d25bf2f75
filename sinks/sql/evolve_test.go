package sql

import "testing"

func TestHolds(t *testing.T) {
	for _, tc := range []struct {
		a, b      string
		ok, known bool
	}{
		{"integer", "integer", true, true},
		{"bigint", "integer", true, true},
		{"integer", "bigint", false, true},
		{"smallint", "integer", false, true},
		{"numeric", "bigint", true, true},
		{"numeric(10,0)", "integer", true, true},
		{"numeric(9,0)", "integer", false, true},
		{"numeric(12,2)", "numeric(10,2)", true, true},
		{"numeric(10,2)", "numeric(12,2)", false, true},
		{"numeric(12,2)", "numeric(12,4)", false, true},
		{"numeric(12,2)", "numeric", false, true},
		{"double precision", "real", true, true},
		{"real", "double precision", false, true},
		{"character varying(20)", "character varying(10)", true, true},
		{"character varying(10)", "character varying(20)", false, true},
		{"character varying", "character varying(20)", true, true},
		{"character varying(20)", "character(5)", true, true},
		{"character(5)", "character(3)", false, true},
		{"text", "bigint", true, true},
		{"text", "mood", true, true},
		{"integer", "text", false, true},
		{"integer", "character varying(3)", false, true},
		{"timestamptz", "timestamp with time zone", true, true},
		{"jsonb", "integer[]", true, false},
		{"mood", "mood", true, true},
		{"date", "timestamp without time zone", true, false},
	} {
		ok, known := holds(tc.a, tc.b)
		if ok != tc.ok || known != tc.known {
			t.Errorf("holds(%q, %q) = %v, %v; want %v, %v", tc.a, tc.b, ok, known, tc.ok, tc.known)
		}
	}
}

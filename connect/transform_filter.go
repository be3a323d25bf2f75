package connect

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// filter: keep (or drop) records matching every condition that is set.
type filter struct {
	drop    bool
	tables  []string
	ops     []string
	path    []string
	equals  *string
	matches *regexp.Regexp
}

func newFilter(p Params) (*filter, error) {
	f := &filter{drop: p.String("action") == "drop", tables: p.Strings("tables"), ops: p.Strings("ops")}
	for _, op := range f.ops {
		if !slices.Contains([]string{"c", "u", "d", "r", "t"}, op) {
			return nil, fmt.Errorf("ops: %q is not one of c, u, d, r, t", op)
		}
	}
	if fld := p.String("field"); fld != "" {
		f.path = strings.Split(fld, ".")
		if p.Line("equals") > 0 || p.String("equals") != "" {
			eq := p.String("equals")
			f.equals = &eq
		}
		if m := p.String("matches"); m != "" {
			re, err := regexp.Compile(m)
			if err != nil {
				return nil, fmt.Errorf("matches: %v", err)
			}
			f.matches = re
		}
		if f.equals == nil && f.matches == nil {
			return nil, fmt.Errorf("field needs equals or matches")
		}
	} else if p.String("equals") != "" || p.String("matches") != "" {
		return nil, fmt.Errorf("equals and matches need a field")
	}
	if len(f.tables) == 0 && len(f.ops) == 0 && f.path == nil {
		return nil, fmt.Errorf("a filter needs tables, ops or a field")
	}
	return f, nil
}

func (f *filter) Apply(r *Record) (bool, error) {
	match := true
	m, _ := r.Value.(map[string]any)
	if len(f.tables) > 0 {
		match = slices.Contains(f.tables, tableOf(r, m))
	}
	if match && len(f.ops) > 0 {
		op, _ := m["op"].(string)
		match = slices.Contains(f.ops, op)
	}
	if match && f.path != nil {
		row := m
		if m != nil && isEnvelope(m) {
			row, _ = m["after"].(map[string]any)
			if row == nil {
				row, _ = m["before"].(map[string]any)
			}
		}
		v, ok := lookup(row, f.path)
		text := fmt.Sprint(v)
		switch {
		case !ok:
			match = false
		case f.equals != nil && text != *f.equals:
			match = false
		case f.matches != nil && !f.matches.MatchString(text):
			match = false
		}
	}
	return match != f.drop, nil
}

// tableOf is the record's source table, or the last part of its topic.
func tableOf(r *Record, m map[string]any) string {
	if src, ok := fieldsOf(m["source"]); ok {
		if t, ok := src["table"].(string); ok {
			return t
		}
	}
	return r.Topic[strings.LastIndexByte(r.Topic, '.')+1:]
}

func lookup(m map[string]any, path []string) (any, bool) {
	var v any = m
	for _, p := range path {
		mm, ok := fieldsOf(v)
		if !ok {
			return nil, false
		}
		if v, ok = mm[p]; !ok {
			return nil, false
		}
	}
	return v, true
}

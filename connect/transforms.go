package connect

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/internal/avrobin"

	elog "github.com/eddy-cdc/eddy/log"
)

// mask_fields: values become the hex SHA-256 of salt+value, or a fixed
// mask; the field's type becomes string (nullable when it was).
func newMask(p Params) *fieldEdit {
	salt, fixed, mask := p.String("salt"), p.String("mode") == "fixed", p.String("mask")
	fe := newFieldEdit(p.Strings("fields"), func(row map[string]any, name, _ string, v any) {
		switch {
		case v == nil:
			row[name] = nil
		case fixed:
			row[name] = mask
		default:
			h := sha256.New()
			h.Write([]byte(salt))
			fmt.Fprint(h, v)
			row[name] = hex.EncodeToString(h.Sum(nil))
		}
	})
	str := avro.NewPrimitiveSchema(avro.String, nil)
	nullStr, _ := avro.NewUnionSchema([]avro.Schema{avro.NewNullSchema(), str})
	fe.typeOf = func(f *avro.Field, _ string) (string, avro.Schema, bool) {
		if nullable(f.Type()) {
			return f.Name(), nullStr, true
		}
		return f.Name(), str, true
	}
	return fe
}

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
	if src, ok := m["source"].(map[string]any); ok {
		if t, ok := src["table"].(string); ok {
			return t
		}
	}
	return r.Topic[strings.LastIndexByte(r.Topic, '.')+1:]
}

func lookup(m map[string]any, path []string) (any, bool) {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = mm[p]; !ok {
			return nil, false
		}
	}
	return v, true
}

// route: Kafka Connect's RegexRouter.
type route struct {
	re   *regexp.Regexp
	repl string
	memo map[string]string
}

func newRoute(p Params) (*route, error) {
	re, err := regexp.Compile("^(?:" + p.String("regex") + ")$")
	if err != nil {
		return nil, fmt.Errorf("regex: %v", err)
	}
	return &route{re: re, repl: p.String("replacement"), memo: map[string]string{}}, nil
}

func (t *route) Apply(r *Record) (bool, error) {
	out, ok := t.memo[r.Topic]
	if !ok {
		out = r.Topic
		if m := t.re.FindStringSubmatchIndex(r.Topic); m != nil {
			out = string(t.re.ExpandString(nil, t.repl, r.Topic, m))
		}
		if err := elog.ValidateTopicName(out); err != nil {
			return false, fmt.Errorf("route %s -> %q: %w", r.Topic, out, err)
		}
		if len(t.memo) < 10000 {
			t.memo[r.Topic] = out
		}
	}
	r.Topic = out
	return true, nil
}

// insert_header: fixed headers, with ${topic} and ${op} per record.
type insertHeader struct {
	keys, vals []string
	dynamic    []bool
}

func newInsertHeader(p Params) *insertHeader {
	h := &insertHeader{}
	hs := p.Map("headers")
	keys := make([]string, 0, len(hs))
	for k := range hs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		h.keys = append(h.keys, k)
		h.vals = append(h.vals, hs[k])
		h.dynamic = append(h.dynamic, strings.Contains(hs[k], "${"))
	}
	return h
}

func (h *insertHeader) Apply(r *Record) (bool, error) {
	for i, k := range h.keys {
		v := h.vals[i]
		if h.dynamic[i] {
			op := ""
			if m, ok := r.Value.(map[string]any); ok {
				op, _ = m["op"].(string)
			}
			v = strings.NewReplacer("${topic}", r.Topic, "${op}", op).Replace(v)
		}
		r.Headers = append(r.Headers, elog.Header{Key: k, Value: []byte(v)})
	}
	return true, nil
}

// unwrap: Debezium's ExtractNewRecordState.
type unwrap struct {
	deletes       string // drop, tombstone, rewrite
	dropTombstone bool
	add           []string
	cache         map[avro.Schema]avro.Schema
}

func newUnwrap(p Params) (*unwrap, error) {
	u := &unwrap{deletes: p.String("delete_handling"), dropTombstone: p.Bool("drop_tombstones"), add: p.Strings("add_fields"), cache: map[avro.Schema]avro.Schema{}}
	for _, a := range u.add {
		if a == "" || strings.ContainsAny(a, " .") {
			return nil, fmt.Errorf("add_fields: %q is not a field name", a)
		}
	}
	return u, nil
}

func (u *unwrap) Apply(r *Record) (bool, error) {
	if r.Value == nil {
		return !u.dropTombstone, nil
	}
	m, ok := r.Value.(map[string]any)
	if !ok || !isEnvelope(m) {
		return true, nil // already flat
	}
	op, _ := m["op"].(string)
	row, _ := m["after"].(map[string]any)
	if op == "d" {
		switch u.deletes {
		case "drop":
			return false, nil
		case "tombstone":
			r.Value, r.ValueSchema = nil, nil
			return true, nil
		}
		row, _ = m["before"].(map[string]any)
		if row == nil {
			row = map[string]any{}
		}
	}
	if row == nil {
		return false, nil // a truncate or a heartbeat: nothing to flatten
	}
	src, _ := m["source"].(map[string]any)
	for _, a := range u.add {
		if v, ok := m[a]; ok && a != "before" && a != "after" && a != "source" {
			row["__"+a] = v
		} else if v, ok := src[a]; ok {
			row["__"+a] = v
		} else {
			row["__"+a] = nil
		}
	}
	if u.deletes == "rewrite" {
		row["__deleted"] = fmt.Sprint(op == "d")
	}
	r.Value = row
	if r.ValueSchema != nil {
		s, err := u.schema(r.ValueSchema)
		if err != nil {
			return false, err
		}
		r.ValueSchema = s
	}
	return true, nil
}

func (u *unwrap) schema(s avro.Schema) (avro.Schema, error) {
	if out, ok := u.cache[s]; ok {
		return out, nil
	}
	env, row, ok := envelopeSchema(s)
	if !ok {
		return s, nil
	}
	fields := slices.Clone(row.Fields())
	var srcSchema *avro.RecordSchema
	for _, f := range env.Fields() {
		if f.Name() == "source" {
			srcSchema, _ = avrobin.NonNull(f.Type()).(*avro.RecordSchema)
		}
	}
	for _, a := range u.add {
		var typ avro.Schema
		for _, f := range env.Fields() {
			if f.Name() == a {
				typ = f.Type()
			}
		}
		if typ == nil && srcSchema != nil {
			for _, f := range srcSchema.Fields() {
				if f.Name() == a {
					typ = f.Type()
				}
			}
		}
		if typ == nil {
			typ = avro.NewPrimitiveSchema(avro.String, nil)
		}
		if !nullable(typ) {
			u, err := avro.NewUnionSchema([]avro.Schema{avro.NewNullSchema(), typ})
			if err != nil {
				return nil, err
			}
			typ = u
		}
		f, err := avro.NewField("__"+a, typ, avro.WithDefault(nil))
		if err != nil {
			return nil, err
		}
		fields = append(fields, f)
	}
	if u.deletes == "rewrite" {
		f, err := avro.NewField("__deleted", avro.NewPrimitiveSchema(avro.String, nil), avro.WithDefault("false"))
		if err != nil {
			return nil, err
		}
		fields = append(fields, f)
	}
	out, err := withFields(row, fields)
	if err != nil {
		return nil, err
	}
	u.cache[s] = out
	return out, nil
}

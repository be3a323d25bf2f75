package postgres

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/capture"
)

// Type OIDs of the built-in types with a mapping of their own; every other
// type is carried as its text form.
const (
	oidBool        = 16
	oidBytea       = 17
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidOID         = 26
	oidFloat4      = 700
	oidFloat8      = 701
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
)

// typeInfo is what the catalog says of a type the fixed mapping does not
// name: domains map as their base type, arrays as Avro arrays of their
// element, hstore as a map.
type typeInfo struct {
	kind   byte // 'd' domain, 'a' array, 'h' hstore
	base   uint32
	typmod int32
}

// loadTypes reads the domains, arrays and hstore of the database.
func loadTypes(ctx context.Context, conn *pgx.Conn) (map[uint32]typeInfo, error) {
	rows, err := conn.Query(ctx, `select oid, typtype::text, typbasetype, typtypmod, typelem, typcategory::text, typname from pg_type
		where typtype = 'd' or (typcategory = 'A' and typelem <> 0) or typname = 'hstore'`)
	if err != nil {
		return nil, fmt.Errorf("read types: %w", err)
	}
	defer rows.Close()
	out := map[uint32]typeInfo{}
	for rows.Next() {
		var oid, base, elem uint32
		var typtype, cat, name string
		var typmod int32
		if err := rows.Scan(&oid, &typtype, &base, &typmod, &elem, &cat, &name); err != nil {
			return nil, err
		}
		switch {
		case name == "hstore":
			out[oid] = typeInfo{kind: 'h'}
		case typtype == "d":
			out[oid] = typeInfo{kind: 'd', base: base, typmod: typmod}
		case cat == "A":
			out[oid] = typeInfo{kind: 'a', base: elem}
		}
	}
	return out, rows.Err()
}

// typeKey is a column type: its oid and modifier.
type typeKey struct {
	oid    uint32
	typmod int32
}

// sourceProps are the field properties of a column of type oid(typmod),
// read from the catalog once per type.
func (s *Source) sourceProps(ctx context.Context, oid uint32, typmod int32) (map[string]any, error) {
	k := typeKey{oid, typmod}
	if p, ok := s.props[k]; ok {
		return p, nil
	}
	if s.conn == nil {
		return nil, fmt.Errorf("read type %d: no catalog connection", oid)
	}
	var exact, name string
	var enum []string
	var domain *string
	err := s.conn.QueryRow(ctx, `select format_type(t.oid, $2), upper(t.typname),
		case when t.typtype = 'e' then array(select enumlabel::text from pg_enum e where e.enumtypid = t.oid order by e.enumsortorder) end,
		case when t.typtype = 'd' then format_type(t.typbasetype, t.typtypmod) || coalesce(' ' || (select string_agg(pg_get_constraintdef(c.oid), ' ' order by c.conname)
			from pg_constraint c where c.contypid = t.oid), '') || case when t.typnotnull then ' not null' else '' end end
		from pg_type t where t.oid = $1`, oid, typmod).Scan(&exact, &name, &enum, &domain)
	if err != nil {
		return nil, fmt.Errorf("read type %d: %w", oid, err)
	}
	p := map[string]any{connect.PropSourceType: name, connect.PropPGType: exact}
	if typmod >= 4 {
		switch oid {
		case 1042, 1043: // char(n), varchar(n)
			p[connect.PropSourceLength] = strconv.Itoa(int(typmod - 4))
		case oidNumeric:
			p[connect.PropSourceLength] = strconv.Itoa(int((typmod-4)>>16) & 0xffff)
			p[connect.PropSourceScale] = strconv.Itoa(int(typmod-4) & 0xffff)
		}
	}
	if enum != nil {
		labels := make([]any, len(enum))
		for i, l := range enum {
			labels[i] = l
		}
		p[connect.PropPGEnum] = labels
	}
	if domain != nil {
		p[connect.PropPGDomain] = *domain
	}
	if s.props == nil {
		s.props = map[typeKey]map[string]any{}
	}
	s.props[k] = p
	return p, nil
}

// loadProps gives each column the field properties of its type
// (sourceProps).
func (s *Source) loadProps(ctx context.Context, cols []column) error {
	for i := range cols {
		p, err := s.sourceProps(ctx, cols[i].oid, cols[i].typmod)
		if err != nil {
			return err
		}
		cols[i].props = p
	}
	return nil
}

// mapType maps any type: the catalog's domains, arrays and hstore first,
// then the built-in mapping. dims is an array column's declared number of
// dimensions (attndims); 0 or 1 is a plain array.
func mapType(name string, oid uint32, typmod int32, types map[uint32]typeInfo, dims int) column {
	ti, ok := types[oid]
	if !ok {
		return mapColumn(name, oid, typmod)
	}
	switch ti.kind {
	case 'd':
		tm := typmod
		if ti.typmod >= 0 {
			tm = ti.typmod
		}
		c := mapType(name, ti.base, tm, types, dims)
		c.oid, c.typmod = oid, typmod
		return c
	case 'h':
		c := column{name: name, oid: oid, typmod: typmod}
		c.schema = avro.NewMapSchema(nullableString)
		c.decode = func(s string) (any, error) { return parseHstore(s) }
		return c
	}
	elem := mapType(name, ti.base, typmod, types, 0)
	c := column{name: name, oid: oid, typmod: typmod, dims: max(dims, 1)}
	c.schema = elem.schema
	for range c.dims {
		c.schema = avro.NewArraySchema(capture.WithNull(c.schema))
	}
	depth := c.dims
	c.decode = func(s string) (any, error) {
		v, err := parseArray(s)
		if err != nil {
			return nil, err
		}
		return decodeArray(v, depth, elem.decode)
	}
	return c
}

// decodeArray decodes a parsed array of the given depth: nested []any
// down to the elements, each decoded by elem.
func decodeArray(v []any, depth int, elem func(string) (any, error)) (any, error) {
	out := make([]any, len(v))
	for i, e := range v {
		switch x := e.(type) {
		case nil:
		case []any:
			if depth < 2 {
				return nil, fmt.Errorf("an array of more dimensions than the column declares (%d): declare them, such as int[][]", depth)
			}
			d, err := decodeArray(x, depth-1, elem)
			if err != nil {
				return nil, err
			}
			out[i] = d
		case string:
			if depth > 1 {
				return nil, fmt.Errorf("an array of fewer dimensions than the column declares (%d)", depth)
			}
			d, err := elem(x)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = d
		}
	}
	return out, nil
}

var nullableString, _ = avro.NewUnionSchema([]avro.Schema{avro.NewNullSchema(), avro.NewPrimitiveSchema(avro.String, nil)})

// column is how one column maps: its Avro type and the decoder of its
// text form.
type column struct {
	// props are the Avro field's properties that say the source type
	// (sourceProps).
	props  map[string]any
	dims   int // arrays: dimensions
	name   string
	oid    uint32
	typmod int32
	key    bool
	schema avro.Schema // without the null branch
	decode func(string) (any, error)
}

// mapColumn picks the Avro type of a PostgreSQL type.
func mapColumn(name string, oid uint32, typmod int32) column {
	c := column{name: name, oid: oid, typmod: typmod}
	prim := func(t avro.Type, l avro.LogicalSchema) avro.Schema { return avro.NewPrimitiveSchema(t, l) }
	switch oid {
	case oidBool:
		c.schema = prim(avro.Boolean, nil)
		c.decode = func(s string) (any, error) { return s == "t" || s == "true", nil }
	case oidInt2, oidInt4:
		c.schema = prim(avro.Int, nil)
		c.decode = func(s string) (any, error) {
			n, err := strconv.ParseInt(s, 10, 32)
			return int32(n), err
		}
	case oidInt8, oidOID:
		c.schema = prim(avro.Long, nil)
		c.decode = func(s string) (any, error) { return strconv.ParseInt(s, 10, 64) }
	case oidFloat4:
		c.schema = prim(avro.Float, nil)
		c.decode = func(s string) (any, error) {
			f, err := strconv.ParseFloat(s, 32)
			return float32(f), err
		}
	case oidFloat8:
		c.schema = prim(avro.Double, nil)
		c.decode = func(s string) (any, error) { return strconv.ParseFloat(s, 64) }
	case oidNumeric:
		if typmod >= 4 { // numeric(p, s): an exact decimal, or the special values as text
			prec, scale := int((typmod-4)>>16)&0xffff, int(typmod-4)&0xffff
			c.schema, _ = avro.NewUnionSchema([]avro.Schema{prim(avro.Bytes, avro.NewDecimalLogicalSchema(prec, scale)), prim(avro.String, nil)})
			c.decode = func(s string) (any, error) {
				r, ok := new(big.Rat).SetString(s)
				if !ok {
					return s, nil // NaN, Infinity, -Infinity: no decimal holds them
				}
				return r, nil
			}
		} else { // unconstrained: any scale, NaN; kept exactly as text
			c.schema = prim(avro.String, nil)
			c.decode = func(s string) (any, error) { return s, nil }
		}
	case oidBytea:
		c.schema = prim(avro.Bytes, nil)
		c.decode = func(s string) (any, error) {
			if !strings.HasPrefix(s, `\x`) {
				return nil, fmt.Errorf("bytea %q is not in hex format", s)
			}
			return hex.DecodeString(s[2:])
		}
	case oidDate:
		c.schema = prim(avro.Int, avro.NewPrimitiveLogicalSchema(avro.Date))
		c.decode = parseDate
	case oidTime:
		c.schema = prim(avro.Long, avro.NewPrimitiveLogicalSchema(avro.TimeMicros))
		c.decode = parseTimeOfDay
	case oidTimestamp:
		c.schema = prim(avro.Long, avro.NewPrimitiveLogicalSchema(avro.LocalTimestampMicros))
		c.decode = func(s string) (any, error) { return parseTimestamp(s, "2006-01-02 15:04:05.999999") }
	case oidTimestamptz:
		c.schema = prim(avro.Long, avro.NewPrimitiveLogicalSchema(avro.TimestampMicros))
		c.decode = parseTimestamptz
	case oidUUID:
		c.schema = prim(avro.String, avro.NewPrimitiveLogicalSchema(avro.UUID))
		c.decode = func(s string) (any, error) { return s, nil }
	default:
		c.schema = prim(avro.String, nil)
		c.decode = func(s string) (any, error) { return s, nil }
	}
	return c
}

func parseTimeOfDay(s string) (any, error) {
	t, err := time.Parse("15:04:05.999999", s)
	if err != nil {
		if s == "24:00:00" {
			return 24 * time.Hour, nil
		}
		return nil, err
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute +
		time.Duration(t.Second())*time.Second + time.Duration(t.Nanosecond()), nil
}

// Infinite dates and timestamps become the greatest and least values the
// Avro type holds.
var (
	infinityMicros = time.UnixMicro(math.MaxInt64).UTC()
	minusInfMicros = time.UnixMicro(math.MinInt64).UTC()
	infinityDate   = time.Unix(math.MaxInt32*86400, 0).UTC()
	minusInfDate   = time.Unix(math.MinInt32*86400, 0).UTC()
)

// bc turns "0044-03-15 BC" into the astronomical year "-0043-03-15" that
// time.Parse does not read either, so it returns the year offset instead.
func bc(s string) (string, bool) {
	if r, ok := strings.CutSuffix(s, " BC"); ok {
		return r, true
	}
	return s, false
}

func parseDate(s string) (any, error) {
	switch s {
	case "infinity":
		return infinityDate, nil
	case "-infinity":
		return minusInfDate, nil
	}
	r, isBC := bc(s)
	t, err := time.Parse("2006-01-02", r)
	if err != nil {
		return nil, err
	}
	return fromBC(t, isBC), nil
}

// fromBC moves a year of the Common Era to the same year Before it (year
// 1 BC is year 0).
func fromBC(t time.Time, isBC bool) time.Time {
	if !isBC {
		return t
	}
	return t.AddDate(1-2*t.Year(), 0, 0)
}

func parseTimestamp(s, layout string) (any, error) {
	switch s {
	case "infinity":
		return infinityMicros, nil
	case "-infinity":
		return minusInfMicros, nil
	}
	r, isBC := bc(s)
	t, err := time.Parse(layout, r)
	if err != nil {
		return nil, err
	}
	return fromBC(t, isBC).UTC(), nil
}

// parseTimestamptz reads PostgreSQL's ISO output ("2024-01-02
// 03:04:05.123456+00", offsets with minutes too) as an instant.
func parseTimestamptz(s string) (any, error) {
	var err error
	for _, layout := range []string{"2006-01-02 15:04:05.999999-07", "2006-01-02 15:04:05.999999-07:00", "2006-01-02 15:04:05.999999-07:00:00"} {
		var v any
		if v, err = parseTimestamp(s, layout); err == nil {
			return v, nil
		}
	}
	return nil, fmt.Errorf("timestamptz %q: not in ISO format", s)
}

// parseArray reads an array's text form, {a,"b c",NULL} or {{1,2},{3,4}},
// into nested []any of strings (nil for NULL).
func parseArray(s string) ([]any, error) {
	if i := strings.IndexByte(s, '='); i >= 0 && strings.HasPrefix(s, "[") {
		s = s[i+1:] // [0:2]={...}: explicit bounds
	}
	p := &arrayParser{s: s}
	v, err := p.array()
	if err != nil {
		return nil, err
	}
	if p.i != len(s) {
		return nil, fmt.Errorf("array %q: trailing text at %d", s, p.i)
	}
	return v, nil
}

type arrayParser struct {
	s string
	i int
}

func (p *arrayParser) array() ([]any, error) {
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return nil, fmt.Errorf("array %q: expected { at %d", p.s, p.i)
	}
	p.i++
	out := []any{}
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return out, nil
	}
	for {
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("array %q: unterminated", p.s)
		}
		switch p.s[p.i] {
		case '{':
			sub, err := p.array()
			if err != nil {
				return nil, err
			}
			out = append(out, sub)
		case '"':
			p.i++
			var b strings.Builder
			for p.i < len(p.s) && p.s[p.i] != '"' {
				if p.s[p.i] == '\\' && p.i+1 < len(p.s) {
					p.i++
				}
				b.WriteByte(p.s[p.i])
				p.i++
			}
			p.i++
			out = append(out, b.String())
		default:
			start := p.i
			for p.i < len(p.s) && p.s[p.i] != ',' && p.s[p.i] != '}' {
				p.i++
			}
			if v := p.s[start:p.i]; strings.EqualFold(v, "NULL") {
				out = append(out, nil)
			} else {
				out = append(out, v)
			}
		}
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("array %q: unterminated", p.s)
		}
		if p.s[p.i] == '}' {
			p.i++
			return out, nil
		}
		if p.s[p.i] != ',' {
			return nil, fmt.Errorf("array %q: unexpected %q at %d", p.s, p.s[p.i], p.i)
		}
		p.i++
	}
}

// parseHstore reads hstore's text form, "a"=>"1", "b"=>NULL.
func parseHstore(s string) (map[string]any, error) {
	out := map[string]any{}
	i := 0
	quotedString := func() (string, bool, error) {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if strings.HasPrefix(s[i:], "NULL") {
			i += 4
			return "", true, nil
		}
		if i >= len(s) || s[i] != '"' {
			return "", false, fmt.Errorf("hstore %q: expected a quoted string at %d", s, i)
		}
		i++
		var b strings.Builder
		for i < len(s) && s[i] != '"' {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
			i++
		}
		if i >= len(s) {
			return "", false, fmt.Errorf("hstore %q: unterminated string", s)
		}
		i++
		return b.String(), false, nil
	}
	for {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i >= len(s) {
			return out, nil
		}
		k, _, err := quotedString()
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(s[i:], "=>") {
			return nil, fmt.Errorf("hstore %q: expected => at %d", s, i)
		}
		i += 2
		v, null, err := quotedString()
		if err != nil {
			return nil, err
		}
		if null {
			out[k] = nil
		} else {
			out[k] = v
		}
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i < len(s) {
			if s[i] != ',' {
				return nil, fmt.Errorf("hstore %q: expected , at %d", s, i)
			}
			i++
		}
	}
}

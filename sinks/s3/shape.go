package s3

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/parquet-go/parquet-go"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
)

// shape is what the sink makes of one value schema: the schema its rows
// are written in (the envelope as it is, or the flattened row), compiled
// once.
type shape struct {
	in       avro.Schema // the record's value schema
	out      avro.Schema // what a file of this shape holds
	fp       [32]byte    // out's fingerprint: files of one shape share it
	codec    *avrobin.Codec
	envelope bool             // in is a Debezium envelope
	flatten  bool             // rows are written flattened (out is the row schema with the extra columns)
	columns  []string         // flattened: the row's own columns
	flat     *avrobin.Ordered // flattened: the row being written
	raw      *avrobin.Flattener
	before   []any
	pq       *avrobin.Parquet
	pqErr    error
	fpq      *avrobin.FlatParquet // flattened Parquet straight from the log's bytes; nil: not for this shape
	fpqDone  bool
	pqRow    avrobin.ParquetRow
	pqBefore parquet.Row
	fjs      *avrobin.FlatJSON // flattened JSON lines straight from the log's bytes
	fjsDone  bool
	line     jsonLine
	lineB4   []byte
}

// jsonLine is a flattened change already rendered as its JSON line.
type jsonLine struct{ b []byte }

// flatJSON is the shape's reader of changes straight into JSON lines,
// compiled when first needed; nil when it has none.
func (sh *shape) flatJSON() *avrobin.FlatJSON {
	if !sh.fjsDone {
		sh.fjsDone = true
		if sh.flatten {
			sh.fjs = avrobin.CompileFlatJSON(sh.in)
		}
	}
	return sh.fjs
}

// directJSON renders a change's bytes as its JSON line (reused: valid
// until the next call).
func (sh *shape) directJSON(body []byte, r *connect.Record) (*jsonLine, avrobin.Flat, error) {
	line, before, f, err := sh.fjs.Decode(body, sh.line.b[:0], sh.lineB4, r.Header(connect.HeaderPosition), r.Partition, r.Offset)
	sh.line.b, sh.lineB4 = line, before
	return &sh.line, f, err
}

// flatParquet is the shape's reader of changes straight into Parquet
// rows, compiled when first needed; nil when it has none.
func (sh *shape) flatParquet() *avrobin.FlatParquet {
	if !sh.fpqDone {
		sh.fpqDone = true
		if pq, err := sh.parquet(); err == nil && sh.flatten {
			sh.fpq = avrobin.CompileFlatParquet(sh.in, pq)
		}
	}
	return sh.fpq
}

// directRow reads a change's bytes into its Parquet row (reused: valid
// until the next call).
func (sh *shape) directRow(body []byte, r *connect.Record) (*avrobin.ParquetRow, avrobin.Flat, error) {
	row, before, size, f, err := sh.fpq.Decode(body, sh.pqRow.Row, sh.pqBefore, r.Header(connect.HeaderPosition), r.Partition, r.Offset)
	sh.pqRow.Row, sh.pqBefore, sh.pqRow.Size = row, before, size
	return &sh.pqRow, f, err
}

// parquet is the shape's Parquet schema, compiled when first needed.
func (sh *shape) parquet() (*avrobin.Parquet, error) {
	if sh.pq == nil && sh.pqErr == nil {
		sh.pq, sh.pqErr = avrobin.CompileParquet(sh.out)
	}
	return sh.pq, sh.pqErr
}

// The columns flatten adds after a row's own, as Debezium's unwrap names
// its added fields.
const flattenExtra = `{"name":"__op","type":"string"},
	{"name":"__source_ts_ms","type":["null","long"],"default":null},
	{"name":"__position","type":["null","string"],"default":null},
	{"name":"__partition","type":"int"},
	{"name":"__offset","type":"long"}`

// newShape reads a value schema. A Debezium envelope (fields before,
// after, op) is flattened to its row when flatten is set; anything else is
// written as it is.
func newShape(in avro.Schema, flatten bool) (*shape, error) {
	sh := &shape{in: in, out: in}
	rs, _ := avrobin.Deref(in).(*avro.RecordSchema)
	var row *avro.RecordSchema
	if rs != nil {
		var op bool
		for _, f := range rs.Fields() {
			switch f.Name() {
			case "op":
				op = f.Type().Type() == avro.String
			case "after":
				row = avrobin.RecordBranch(f.Type())
			}
		}
		sh.envelope = op && row != nil
	}
	if flatten && sh.envelope {
		var def map[string]any
		if err := json.Unmarshal([]byte(row.String()), &def); err != nil {
			return nil, fmt.Errorf("flatten %s: %w", row.FullName(), err)
		}
		var extra []any
		if err := json.Unmarshal([]byte("["+flattenExtra+"]"), &extra); err != nil {
			return nil, err
		}
		// Every column can be null, so a truncate (which a snapshot taken
		// again begins with) is a row of its own, with only __op and the
		// position.
		fields, _ := def["fields"].([]any)
		for _, f := range fields {
			if fm, ok := f.(map[string]any); ok {
				fm["type"], fm["default"] = nullable(fm["type"]), nil
			}
		}
		def["fields"] = append(fields, extra...)
		b, err := json.Marshal(def)
		if err != nil {
			return nil, err
		}
		if sh.out, err = avro.ParseBytesWithCache(b, "", &avro.SchemaCache{}); err != nil {
			return nil, fmt.Errorf("flatten %s: %w", row.FullName(), err)
		}
		sh.flatten = true
		for _, f := range row.Fields() {
			sh.columns = append(sh.columns, f.Name())
		}
		names := append(append([]string(nil), sh.columns...), "__op", "__source_ts_ms", "__position", "__partition", "__offset")
		sh.flat = &avrobin.Ordered{Names: names, Values: make([]any, len(names))}
		if sh.raw = avrobin.CompileFlattener(in); sh.raw != nil && len(sh.raw.Columns()) != len(sh.columns) {
			sh.raw = nil
		}
		sh.before = make([]any, len(sh.columns))
	}
	sh.fp = sh.out.Fingerprint()
	var err error
	if sh.codec, err = avrobin.Compile(sh.out); err != nil {
		return nil, fmt.Errorf("compile %s: %w", name(sh.out), err)
	}
	return sh, nil
}

func name(s avro.Schema) string {
	if n, ok := avrobin.Deref(s).(avro.NamedSchema); ok {
		return n.FullName()
	}
	return string(s.Type())
}

// row is the value a file of this shape holds for r: the envelope, or its
// row with the extra columns (a truncate's row has only those). A
// flattened row is an *avrobin.Ordered the shape reuses: valid until the
// next call.
func (sh *shape) row(r *connect.Record) (any, error) {
	if !sh.flatten {
		return r.Value, nil
	}
	env, isMap := r.Value.(map[string]any)
	if !isMap {
		return nil, fmt.Errorf("flatten: the value is %T, not an envelope", r.Value)
	}
	op, _ := env["op"].(string)
	img := env["after"]
	if op == "d" || img == nil {
		img = env["before"]
	}
	out := sh.flat
	vals := out.Values
	if m, ok := img.(map[string]any); ok {
		for i, c := range sh.columns {
			vals[i] = m[c]
		}
	} else { // a truncate: no row
		clear(vals[:len(sh.columns)])
	}
	var ts any
	if src, _ := env["source"].(map[string]any); src != nil {
		ts = src["ts_ms"]
	}
	sh.extras(op, ts, r)
	return out, nil
}

// extras sets the flattened row's columns after the row's own.
func (sh *shape) extras(op string, tsMs any, r *connect.Record) {
	vals := sh.flat.Values[len(sh.columns):]
	vals[0], vals[1], vals[2] = op, tsMs, nil
	if p := r.Header(connect.HeaderPosition); p != nil {
		vals[2] = hex.EncodeToString(p) // hex sorts as the bytes do
	}
	vals[3], vals[4] = int32(r.Partition), r.Offset
}

// rawRow is row, for a flattened change left in Avro binary (body); it
// also says the change's source table.
func (sh *shape) rawRow(body []byte, r *connect.Record) (*avrobin.Ordered, avrobin.Flat, error) {
	f, err := sh.raw.Decode(body, sh.flat.Values, sh.before)
	if err != nil {
		return nil, f, err
	}
	sh.extras(f.Op, f.TsMs, r)
	return sh.flat, f, nil
}

// nullable is an Avro type (as JSON) that also takes null.
func nullable(t any) any {
	if u, ok := t.([]any); ok { // null first, as a null default wants
		out := []any{"null"}
		for _, b := range u {
			if b != "null" {
				out = append(out, b)
			}
		}
		return out
	}
	if t == "null" {
		return t
	}
	return []any{"null", t}
}

// canTake says whether a row of shape w can be written into a file of
// shape f without losing anything: every field of w is in f with a type f
// can hold it in, and every field of f that w lacks has a default.
func canTake(f, w avro.Schema) bool { return fits(avrobin.Deref(f), avrobin.Deref(w), 0) }

func fits(f, w avro.Schema, depth int) bool {
	if depth > 32 {
		return false
	}
	if f.Fingerprint() == w.Fingerprint() {
		return true
	}
	fu, fUnion := f.(*avro.UnionSchema)
	wu, wUnion := w.(*avro.UnionSchema)
	switch {
	case fUnion && wUnion:
		for _, wt := range wu.Types() { // each branch of w has a home in f
			if !unionHas(fu, wt, depth) {
				return false
			}
		}
		return true
	case fUnion:
		return unionHas(fu, w, depth)
	case wUnion:
		return false // f cannot hold every branch of w (a null, say)
	}
	f, w = avrobin.Deref(f), avrobin.Deref(w)
	fl, _ := avrobin.Logical(f)
	wl, _ := avrobin.Logical(w)
	if fl != wl || avrobin.KindOf(f) == avrobin.KindDecimal {
		return false // a decimal of another precision or scale is another type
	}
	switch w.Type() {
	case avro.Int:
		return f.Type() == avro.Long || f.Type() == avro.Double
	case avro.Float:
		return f.Type() == avro.Double
	case avro.Record:
		fr, ok := f.(*avro.RecordSchema)
		if !ok || fr.FullName() != w.(*avro.RecordSchema).FullName() {
			return false
		}
		wf := map[string]*avro.Field{}
		for _, x := range w.(*avro.RecordSchema).Fields() {
			wf[x.Name()] = x
		}
		for _, x := range fr.Fields() {
			y, ok := wf[x.Name()]
			delete(wf, x.Name())
			if !ok {
				if !x.HasDefault() {
					return false
				}
				continue
			}
			if !fits(x.Type(), y.Type(), depth+1) {
				return false
			}
		}
		return len(wf) == 0
	case avro.Array:
		fa, ok := f.(*avro.ArraySchema)
		return ok && fits(fa.Items(), w.(*avro.ArraySchema).Items(), depth+1)
	case avro.Map:
		fm, ok := f.(*avro.MapSchema)
		return ok && fits(fm.Values(), w.(*avro.MapSchema).Values(), depth+1)
	case avro.Enum:
		fe, ok := f.(*avro.EnumSchema)
		if !ok {
			return false
		}
		have := map[string]bool{}
		for _, s := range fe.Symbols() {
			have[s] = true
		}
		for _, s := range w.(*avro.EnumSchema).Symbols() {
			if !have[s] {
				return false
			}
		}
		return true
	}
	return f.Type() == w.Type() && f.Type() != avro.Fixed
}

func unionHas(u *avro.UnionSchema, w avro.Schema, depth int) bool {
	for _, t := range u.Types() {
		if fits(t, w, depth+1) {
			return true
		}
	}
	return false
}

// project rewrites v, a value of schema w, as a value of schema f (canTake
// said yes): fields f has and w lacks take their defaults.
func project(f, w avro.Schema, v any) any {
	f, w = avrobin.Deref(f), avrobin.Deref(w)
	if v == nil || f.Fingerprint() == w.Fingerprint() {
		return v
	}
	if u, ok := f.(*avro.UnionSchema); ok {
		f = avrobin.NonNull(u)
	}
	if u, ok := w.(*avro.UnionSchema); ok {
		w = avrobin.NonNull(u)
	}
	f, w = avrobin.Deref(f), avrobin.Deref(w)
	switch f.Type() {
	case avro.Record:
		fr, wr := f.(*avro.RecordSchema), w.(*avro.RecordSchema)
		m, _ := v.(map[string]any)
		if o, ok := v.(*avrobin.Ordered); ok {
			m = o.Map()
		}
		out := make(map[string]any, len(fr.Fields()))
		for _, x := range fr.Fields() {
			y := fieldOf(wr, x.Name())
			if y == nil {
				out[x.Name()] = defaultOf(x)
				continue
			}
			out[x.Name()] = project(x.Type(), y.Type(), m[x.Name()])
		}
		return out
	case avro.Array:
		items, _ := v.([]any)
		out := make([]any, len(items))
		for i, e := range items {
			out[i] = project(f.(*avro.ArraySchema).Items(), w.(*avro.ArraySchema).Items(), e)
		}
		return out
	case avro.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			out[k] = project(f.(*avro.MapSchema).Values(), w.(*avro.MapSchema).Values(), e)
		}
		return out
	}
	return v // numbers widen as they are written
}

func fieldOf(r *avro.RecordSchema, name string) *avro.Field {
	for _, f := range r.Fields() {
		if f.Name() == name {
			return f
		}
	}
	return nil
}

// defaultOf is a field's default in the value model.
func defaultOf(f *avro.Field) any {
	d := f.Default()
	if d == nil {
		return nil
	}
	t := avrobin.Deref(f.Type())
	if u, ok := t.(*avro.UnionSchema); ok {
		t = avrobin.Deref(u.Types()[0]) // a union's default is of its first branch
	}
	switch t.Type() {
	case avro.Int:
		if n, ok := d.(int); ok {
			return n
		}
		if x, ok := d.(float64); ok {
			return int(x)
		}
	case avro.Long:
		if x, ok := d.(float64); ok {
			return int64(x)
		}
	}
	return d
}

// timeOf reads a time from a field's value: a time, milliseconds since
// the epoch, or an RFC 3339 string.
func timeOf(v any) (time.Time, bool) {
	switch x := v.(type) {
	case time.Time:
		return x, true
	case int64:
		return time.UnixMilli(x), true
	case int:
		return time.UnixMilli(int64(x)), true
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		return t, err == nil
	}
	return time.Time{}, false
}

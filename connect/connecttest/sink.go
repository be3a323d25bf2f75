// Package connecttest holds the contract suites every plugin runs: one for
// sinks, one for sources. A plugin provides a small target (how to make a
// fresh destination or origin, read back what it holds, break and heal
// it) and the suite checks what the runtime relies on.
package connecttest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/connect"
	elog "github.com/eddy-cdc/eddy/log"
)

// Semantics is what a sink's destination holds of the records it got.
type Semantics int

const (
	// Upsert: the latest row per key; deletes remove it, a truncate
	// empties the table (database sinks).
	Upsert Semantics = iota
	// Append: every record, once, in offset order per partition (files,
	// object stores).
	Append
)

// Row is one thing a destination holds of the suite's two tables: under
// Upsert a row (Table, Key and Value), under Append a record (all
// fields).
type Row struct {
	Table     string // "parts" (topic Topic) or "lines" (topic LinesTopic)
	Partition int
	Offset    int64
	Op        string
	Key       string // parts: the id, in decimal; lines: LinesKey
	Value     string // parts: the v column, "" for NULL; lines: LinesValue
}

// tp is the topic-partition of the record a row came from.
func (r Row) tp() elog.TopicPartition {
	if r.Table == "lines" {
		return elog.TopicPartition{Topic: LinesTopic, Partition: r.Partition}
	}
	return elog.TopicPartition{Topic: Topic, Partition: r.Partition}
}

func (r Row) String() string {
	return fmt.Sprintf("{%s p%d@%d %s %s=%q}", r.Table, r.Partition, r.Offset, r.Op, r.Key, r.Value)
}

// LinesKey renders the key of a row of lines (order_id bigint, line int).
func LinesKey(orderID, line int64) string { return fmt.Sprintf("%d/%d", orderID, line) }

// LinesValue renders the other columns of a row of lines: sku text, qty
// int, price double precision, note text (nil: NULL), weight bigint.
func LinesValue(sku string, qty int64, price float64, note *string, weight int64) string {
	n := "NULL"
	if note != nil {
		n = strconv.Quote(*note)
	}
	return fmt.Sprintf("%s|%d|%g|%s|%d", sku, qty, price, n, weight)
}

// BadConfig is a configuration a sink must refuse at construction, and
// the key its error names.
type BadConfig struct {
	Params map[string]any
	Key    string
}

// SinkTarget is what a sink plugin gives SinkSuite.
type SinkTarget struct {
	Plugin    string // the catalog name
	New       func(connect.Params, connect.Env) (connect.Sink, error)
	Semantics Semantics
	// Destination makes a fresh, empty destination and returns the
	// sink's parameters for it. A connect.BufferingSink's parameters must
	// have it store every few records, so the checks see what it stored.
	Destination func(t *testing.T) map[string]any
	// Read returns what the destination holds of Topic, in any order.
	Read func(t *testing.T, params map[string]any) []Row
	// Refuse, when set, makes the destination refuse v = "poison" for
	// the record's own sake (a CHECK constraint); it is called after a
	// first write made the table.
	Refuse func(t *testing.T, params map[string]any)
	// Breaks name the target's own troubles, each making writes fail
	// until heal is called: "read-only", "connections closed", ...
	Breaks map[string]func(t *testing.T, params map[string]any) (heal func())
	// Disconnect, when set, closes the sink's connections at once, as a
	// server restart does; used while a write is under way.
	Disconnect func(t *testing.T, params map[string]any)
	BadConfigs []BadConfig
}

// The suite's records are changes of two tables of schema public, as
// postgres-source writes them: parts (id bigint key, v text), and the
// wider lines, keyed on two columns (order_id bigint, line int; sku text,
// qty int, price double precision, note text, weight bigint). Batches mix
// them, so a sink that assumes one shape per batch fails.
const (
	Topic      = "shop.public.parts"
	LinesTopic = "shop.public.lines"
)

const poison = "poison"

var (
	suiteSchemas struct {
		once               sync.Once
		key, value         avro.Schema
		linesKey, linesVal avro.Schema
		err                error
	}
)

// schemas are the key and value schemas of parts, then of lines.
func schemas() (key, value, linesKey, linesValue avro.Schema, err error) {
	s := &suiteSchemas
	s.once.Do(func() {
		parse := func(schema string) avro.Schema { // each on its own, as the registry hands schemas out
			if s.err != nil {
				return nil
			}
			var out avro.Schema
			out, s.err = avro.ParseWithCache(schema, "", &avro.SchemaCache{})
			return out
		}
		s.key = parse(`{"type":"record","name":"Key","namespace":"shop.public.parts","fields":[{"name":"id","type":"long"}]}`)
		s.value = parse(envelopeSchema("parts", `{"name":"id","type":"long"},{"name":"v","type":["null","string"],"default":null}`))
		s.linesKey = parse(`{"type":"record","name":"Key","namespace":"shop.public.lines","fields":[{"name":"order_id","type":"long"},{"name":"line","type":"int"}]}`)
		s.linesVal = parse(envelopeSchema("lines", `{"name":"order_id","type":"long"},{"name":"line","type":"int"},
			{"name":"sku","type":"string"},{"name":"qty","type":"int"},{"name":"price","type":"double"},
			{"name":"note","type":["null","string"],"default":null},{"name":"weight","type":"long"}`))
	})
	return s.key, s.value, s.linesKey, s.linesVal, s.err
}

// envelopeSchema is postgres-source's envelope for a table of schema
// public with the row fields given.
func envelopeSchema(table, fields string) string {
	const source = `{"type":"record","name":"Source","namespace":"io.eddy.postgres","fields":[
				{"name":"version","type":"string"},{"name":"connector","type":"string"},{"name":"name","type":"string"},
				{"name":"ts_ms","type":"long"},{"name":"snapshot","type":["null","string"]},{"name":"db","type":"string"},
				{"name":"schema","type":"string"},{"name":"table","type":"string"},
				{"name":"txId","type":["null","long"],"default":null},{"name":"lsn","type":["null","long"],"default":null}]}`
	return `{"type":"record","name":"Envelope","namespace":"shop.public.` + table + `","fields":[
			{"name":"before","type":["null",{"type":"record","name":"Value","fields":[` + fields + `]}],"default":null},
			{"name":"after","type":["null","Value"],"default":null},
			{"name":"source","type":` + source + `},
			{"name":"op","type":"string"},
			{"name":"ts_ms","type":["null","long"],"default":null}]}`
}

// change is one change of one of the suite's tables: of parts, or, with
// line set, of lines (order id, line), whose other columns derive from v.
type change struct {
	part int
	op   string // c, u, d, t
	id   int64
	line int32 // > 0: a change of lines
	v    *string
}

// lc, lu and ld change the row of lines (order, line).
func lc(order int64, line int32, v string) change {
	return change{op: "c", id: order, line: line, v: &v}
}
func lu(order int64, line int32, v string) change {
	return change{op: "u", id: order, line: line, v: &v}
}
func ld(order int64, line int32) change { return change{op: "d", id: order, line: line} }

func (ch change) table() string {
	if ch.line > 0 {
		return "lines"
	}
	return "parts"
}

func (ch change) topic() string {
	if ch.line > 0 {
		return LinesTopic
	}
	return Topic
}

// linesRow is the row of lines a change writes, in hamba/avro's form.
func (ch change) linesRow() map[string]any {
	sku, qty, price, weight := ch.linesColumns()
	var note any
	if ch.v != nil {
		note = map[string]any{"string": *ch.v}
	}
	return map[string]any{"order_id": ch.id, "line": ch.line, "sku": sku, "qty": int32(qty), "price": price, "note": note, "weight": weight}
}

// linesColumns are the columns of lines a change's v decides (note is v).
func (ch change) linesColumns() (sku string, qty int64, price float64, weight int64) {
	v := ""
	if ch.v != nil {
		v = *ch.v
	}
	n := int64(len([]rune(v)))
	return "sku-" + v, n, float64(n) / 4, n * 1_000_003
}

// row is what a destination holds for a change: its table, key and value.
func (ch change) row() (table, key, value string) {
	if ch.line == 0 {
		v := ""
		if ch.v != nil {
			v = *ch.v
		}
		return "parts", fmt.Sprint(ch.id), v
	}
	sku, qty, price, weight := ch.linesColumns()
	return "lines", LinesKey(ch.id, int64(ch.line)), LinesValue(sku, qty, price, ch.v, weight)
}

func c(id int64, v string) change { return change{op: "c", id: id, v: &v} }
func u(id int64, v string) change { return change{op: "u", id: id, v: &v} }
func cNull(id int64) change       { return change{op: "c", id: id} }
func d(id int64) change           { return change{op: "d", id: id} }
func truncate() change            { return change{op: "t"} }

func (ch change) onPartition(p int) change { ch.part = p; return ch }

// sinkRun is one sink instance on one destination, with the records it
// was given and the model of what the destination must hold.
type sinkRun struct {
	t      *testing.T
	tg     SinkTarget
	params map[string]any
	sink   connect.Sink
	raw    bool
	next   map[elog.TopicPartition]int64            // next offset per partition
	built  map[elog.TopicPartition]map[int64]change // the change of every record built, by partition and offset
	bodies [][]byte                                 // what poison overwrites
	model  map[[2]string]string                     // Upsert: table and key -> value
	log    []Row                                    // Append: every record delivered
	done   map[elog.TopicPartition]int64
	// A BufferingSink stores at points of its own: the destination holds
	// what it got before the first offset it holds, and a new instance
	// resumes there (as the runtime's committed offsets would have it).
	buffering connect.BufferingSink
	resume    map[elog.TopicPartition]int64
}

func (r *sinkRun) open() {
	r.t.Helper()
	s := mustConstruct(r.t, r.tg.Plugin, r.tg.New, r.params)
	if err := s.Open(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.sink = s
	if os, ok := s.(connect.OffsetStore); ok { // as the runtime does before the first write
		if _, err := os.Offsets(context.Background()); err != nil {
			r.t.Fatal(err)
		}
	}
	rv, ok := s.(connect.RawValueSink)
	r.raw = ok && rv.RawValues()
	r.buffering, _ = s.(connect.BufferingSink)
	if r.buffering != nil { // as the runtime does after each join
		r.buffering.Assign(maps.Clone(r.resume))
	}
	r.t.Cleanup(func() { s.Close() })
}

// stored says whether the record at off of tp is in the destination:
// every delivered record, for a sink that is not buffering.
func (r *sinkRun) stored(tp elog.TopicPartition, off int64) bool {
	if r.buffering == nil {
		return true
	}
	first, held := r.buffering.Holding(tp)
	return !held || off < first
}

func newRun(t *testing.T, tg SinkTarget) *sinkRun {
	r := &sinkRun{t: t, tg: tg, params: tg.Destination(t), next: map[elog.TopicPartition]int64{}, model: map[[2]string]string{}, done: map[elog.TopicPartition]int64{},
		built: map[elog.TopicPartition]map[int64]change{}, resume: map[elog.TopicPartition]int64{}}
	r.open()
	return r
}

// records builds the records of changes with the next offsets, as the
// runtime hands them over: Avro bodies for a raw sink, the value model
// otherwise, with the headers a source connector writes.
func (r *sinkRun) records(changes ...change) []connect.Record {
	r.t.Helper()
	keyS, valS, linesKeyS, linesValS, err := schemas()
	if err != nil {
		r.t.Fatal(err)
	}
	out := make([]connect.Record, 0, len(changes))
	for _, ch := range changes {
		tp := elog.TopicPartition{Topic: ch.topic(), Partition: ch.part}
		off := r.next[tp]
		r.next[tp]++
		var img, key any
		ks, vs := keyS, valS
		switch {
		case ch.line > 0:
			ks, vs = linesKeyS, linesValS
			img = map[string]any{"shop.public.lines.Value": ch.linesRow()}
			key = map[string]any{"order_id": ch.id, "line": ch.line}
		case ch.op != "t":
			var v any
			if ch.v != nil {
				v = map[string]any{"string": *ch.v}
			}
			img = map[string]any{"shop.public.parts.Value": map[string]any{"id": ch.id, "v": v}}
			key = map[string]any{"id": ch.id}
		}
		env := map[string]any{"before": nil, "after": nil, "op": ch.op, "ts_ms": nil,
			"source": map[string]any{"version": "eddy", "connector": "postgresql", "name": "shop", "ts_ms": int64(1767225600000),
				"snapshot": nil, "db": "shop", "schema": "public", "table": ch.table(), "txId": nil, "lsn": nil}}
		if ch.op == "d" {
			env["before"] = img
		} else if ch.op != "t" {
			env["after"] = img
		}
		pos := fmt.Appendf(nil, "%d-%012d", ch.part, off)
		rec := connect.Record{Topic: tp.Topic, Partition: ch.part, Offset: off, Timestamp: time.UnixMilli(1767225600000 + off),
			ValueSchema: vs, Headers: []elog.Header{{Key: connect.HeaderConnector, Value: []byte("pg")}, {Key: connect.HeaderPosition, Value: pos}}}
		r.bodies = append(r.bodies, pos)
		rec.Value = r.value(vs, 1, env)
		if key != nil {
			rec.Key, rec.KeySchema = r.value(ks, 2, key), ks
		}
		out = append(out, rec)
		if r.built[tp] == nil {
			r.built[tp] = map[int64]change{}
		}
		r.built[tp][off] = ch
	}
	return out
}

// value encodes v in schema s (registered as id): raw for a raw sink,
// decoded otherwise, as the runtime hands it over.
func (r *sinkRun) value(s avro.Schema, id int, v any) any {
	r.t.Helper()
	body, err := avro.Marshal(s, v)
	if err != nil {
		r.t.Fatal(err)
	}
	r.bodies = append(r.bodies, body)
	av, err := connect.NewAvroValue(s, id, body)
	if err != nil {
		r.t.Fatal(err)
	}
	if r.raw {
		return av
	}
	dv, err := av.Decode()
	if err != nil {
		r.t.Fatal(err)
	}
	return dv
}

// delivered notes that recs reached the destination, in the model.
func (r *sinkRun) delivered(recs []connect.Record) {
	for _, rec := range recs {
		tp := elog.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}
		if rec.Offset < r.done[tp] {
			continue // sent again: applies nothing
		}
		r.done[tp] = rec.Offset + 1
		ch, ok := r.built[tp][rec.Offset]
		if !ok {
			r.t.Fatalf("record %s p%d@%d was never built", rec.Topic, rec.Partition, rec.Offset)
		}
		table, key, v := ch.row()
		switch ch.op {
		case "t":
			key, v = "", "" // a truncate has no key
		case "d":
			v = ""
		}
		r.log = append(r.log, Row{Table: table, Partition: rec.Partition, Offset: rec.Offset, Op: ch.op, Key: key, Value: v})
		switch ch.op {
		case "c", "u", "r":
			r.model[[2]string{table, key}] = v
		case "d":
			delete(r.model, [2]string{table, key})
		case "t":
			maps.DeleteFunc(r.model, func(k [2]string, _ string) bool { return k[0] == table })
		}
	}
}

// write sends recs and, when the sink takes them, notes them delivered.
func (r *sinkRun) write(recs []connect.Record) error {
	err := r.sink.Write(context.Background(), recs)
	var re *connect.RecordError
	switch {
	case err == nil:
		r.delivered(recs)
	case errors.As(err, &re):
		r.delivered(recs[:re.Index])
	}
	return err
}

func (r *sinkRun) mustWrite(recs []connect.Record) {
	r.t.Helper()
	if err := r.write(recs); err != nil {
		r.t.Fatalf("write of %d records: %v", len(recs), err)
	}
}

// flush closes the sink (so a buffering one writes out) and opens a new
// one on the same destination.
func (r *sinkRun) reopen() {
	r.t.Helper()
	if r.buffering != nil { // what it held unstored comes again from where the group's offsets stand
		for tp, done := range r.done {
			if first, held := r.buffering.Holding(tp); held {
				done = first
			}
			r.resume[tp], r.done[tp] = done, done
		}
		r.log = slices.DeleteFunc(r.log, func(row Row) bool { return row.Offset >= r.resume[row.tp()] })
	}
	if err := r.sink.Close(); err != nil {
		r.t.Fatalf("close: %v", err)
	}
	r.open()
}

// check compares the destination with the model.
func (r *sinkRun) check(what string) {
	r.t.Helper()
	got := r.tg.Read(r.t, r.params)
	var want []Row
	if r.tg.Semantics == Upsert {
		for k, v := range r.model {
			want = append(want, Row{Table: k[0], Key: k[1], Value: v})
		}
		for i := range got {
			got[i] = Row{Table: got[i].Table, Key: got[i].Key, Value: got[i].Value}
		}
	} else {
		for _, row := range r.log {
			if r.stored(row.tp(), row.Offset) {
				want = append(want, row)
			}
		}
	}
	sortRows(got)
	sortRows(want)
	if !slices.Equal(got, want) {
		r.t.Fatalf("%s: the destination holds\n  %v\nwant\n  %v", what, got, want)
	}
}

func sortRows(rs []Row) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		if a.Offset != b.Offset {
			return a.Offset < b.Offset
		}
		return a.Key < b.Key
	})
}

// SinkSuite runs the sink contract against tg.
func SinkSuite(t *testing.T, tg SinkTarget) {
	t.Run("writes every kind of change", func(t *testing.T) { sinkWritesChanges(t, tg) })
	t.Run("a write sent again applies nothing twice", func(t *testing.T) { sinkAppliesOnce(t, tg) })
	t.Run("poisoned fetches", func(t *testing.T) { sinkPoisonedFetches(t, tg) })
	if tg.Refuse != nil {
		t.Run("a record the destination refuses is named by its index", func(t *testing.T) { sinkRefusedRecord(t, tg) })
	}
	for name, brk := range tg.Breaks {
		t.Run("target fault: "+name, func(t *testing.T) { sinkTargetFault(t, tg, name, brk) })
	}
	if tg.Disconnect != nil {
		t.Run("connections closed mid-write", func(t *testing.T) { sinkDisconnected(t, tg) })
	}
	t.Run("resumes from its own offsets", func(t *testing.T) { sinkResumes(t, tg) })
	t.Run("a restart resends what it held, stored once", func(t *testing.T) { sinkRestartResends(t, tg) })
	t.Run("close twice", func(t *testing.T) { sinkCloseTwice(t, tg) })
	t.Run("bad config refused at construction", func(t *testing.T) { sinkBadConfig(t, tg) })
}

// sinkWritesChanges: every kind of change: creates, updates, deletes, NULL, unicode, a truncate, a large value.
func sinkWritesChanges(t *testing.T, tg SinkTarget) {
	r := newRun(t, tg)
	r.mustWrite(r.records(c(1, "a"), lc(1, 1, "pen"), c(2, "b"), lc(1, 2, "ink ✓"), c(3, "c"), u(2, "bb"), lu(1, 1, "pens"),
		d(3), lc(2, 1, ""), cNull(4), change{op: "c", id: 2, line: 2}, c(5, "unicode ✓ ünï"), ld(1, 2)))
	r.check("after creates, updates, deletes and NULLs in two tables")
	r.mustWrite(r.records(truncate(), c(6, "e"), lc(3, 1, "after"), u(1, "z"), c(7, strings.Repeat("x", 100_000)), lc(3, 2, strings.Repeat("ü", 50_000))))
	r.check("after a truncate of one table, an update of a row it removed and large values")
	r.mustWrite(nil)
	r.check("after an empty write")
}

// sinkAppliesOnce: a batch sent again, older or overlapping, applies nothing twice.
func sinkAppliesOnce(t *testing.T, tg SinkTarget) {
	r := newRun(t, tg)
	first := r.records(c(10, "a"), lc(10, 1, "a"), u(10, "b"), lu(10, 1, "b"), u(10, "c"), c(11, "x"), ld(10, 1))
	r.mustWrite(first)
	r.mustWrite(first[:4]) // an older batch again: the runtime's retry after a commit it did not see
	r.check("after an older batch came again")
	r.mustWrite(append(first[4:], r.records(u(11, "y"), lc(10, 1, "again"), c(12, "n"))...)) // overlapping: only the new part applies
	r.check("after a batch overlapping what was applied")
	r.reopen()
	r.mustWrite(first)
	r.check("after the first batch came again to a new instance")
}

// sinkPoisonedFetches: the fetch buffers overwritten once Write returns leave the destination right.
func sinkPoisonedFetches(t *testing.T, tg SinkTarget) {
	r := newRun(t, tg)
	for i := range 5 {
		batch := r.records(c(int64(20+i), "v"), lc(int64(i), 1, "v"), u(int64(20+i), fmt.Sprint("w", i)), lu(int64(i), 1, fmt.Sprint("w", i)), c(int64(40+i), "keep"))
		r.mustWrite(batch)
		for _, b := range r.bodies { // the runtime reuses fetch buffers once Write returns
			for j := range b {
				b[j] = 0xdb
			}
		}
		r.bodies = nil
	}
	r.reopen()
	r.check("after every fetch was overwritten once written")
}

// sinkRefusedRecord: a record the destination refuses is a RecordError with its index; the ones before it are delivered.
func sinkRefusedRecord(t *testing.T, tg SinkTarget) {
	r := newRun(t, tg)
	r.mustWrite(r.records(c(1, "made")))
	tg.Refuse(t, r.params)
	batch := r.records(c(30, "ok"), c(31, "ok"), c(32, poison), c(33, "ok"))
	err := r.write(batch)
	var re *connect.RecordError
	if !errors.As(err, &re) || re.Index != 2 {
		t.Fatalf("write with a refused record at 2: %v, want a RecordError at index 2", err)
	}
	if connect.IsPermanent(err) {
		t.Fatalf("a record's fault is marked permanent: %v", err)
	}
	r.check("the records before the refused one are delivered, none after")
	r.mustWrite(batch[3:])
	r.check("after the rest")
}

// sinkDisconnected: connections closed during a large write: the write sent again applies it once.
func sinkDisconnected(t *testing.T, tg SinkTarget) {
	r := newRun(t, tg)
	var changes []change
	for i := range 20000 {
		changes = append(changes, c(int64(i), fmt.Sprint("v", i)))
	}
	batch := r.records(changes...)
	errc := make(chan error, 1)
	go func() { errc <- r.sink.Write(context.Background(), batch) }()
	time.Sleep(20 * time.Millisecond)
	tg.Disconnect(t, r.params)
	err := <-errc
	var re *connect.RecordError
	if errors.As(err, &re) || connect.IsPermanent(err) {
		t.Fatalf("a closed connection reported as %v", err)
	}
	for try := 0; err != nil && try < 50; try++ {
		time.Sleep(100 * time.Millisecond)
		err = r.sink.Write(context.Background(), batch)
	}
	if err != nil {
		t.Fatalf("retries after the connections closed: %v", err)
	}
	r.delivered(batch)
	r.check("after a write cut short and sent again")
}

// sinkResumes: a new instance resumes from the sink's own offsets.
func sinkResumes(t *testing.T, tg SinkTarget) {
	r := newRun(t, tg)
	if _, ok := r.sink.(connect.OffsetStore); !ok {
		t.Skip("the sink keeps no offsets of its own: the group's are the resume point")
	}
	r.mustWrite(r.records(c(1, "a"), c(2, "b").onPartition(1), lc(1, 1, "l"), c(3, "c"), u(1, "a2"), c(5, "e").onPartition(1), lc(1, 2, "m").onPartition(1), lu(1, 1, "n")))
	r.reopen()
	got, err := r.sink.(connect.OffsetStore).Offsets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[elog.TopicPartition]int64{{Topic: Topic, Partition: 0}: 3, {Topic: Topic, Partition: 1}: 2,
		{Topic: LinesTopic, Partition: 0}: 2, {Topic: LinesTopic, Partition: 1}: 1}
	for tp, n := range want {
		if got[tp] != n {
			t.Fatalf("offsets after a restart: %v, want %v", got, want)
		}
	}
}

// sinkRestartResends: a new instance is given again, from where the
// runtime would resume, every record the last one had not stored (or, for
// a sink with offsets of its own, from where those say), among records it
// stored; the destination holds each once.
func sinkRestartResends(t *testing.T, tg SinkTarget) {
	r := newRun(t, tg)
	var sent []connect.Record
	var changes []change
	for i := range 60 {
		switch i % 4 {
		case 0, 2:
			changes = append(changes, c(int64(i), fmt.Sprint("v", i)).onPartition(i%3%2))
		case 1:
			changes = append(changes, lc(int64(i), int32(i%5+1), fmt.Sprint("l", i)).onPartition(i%2))
		case 3:
			changes = append(changes, u(int64(i-1), "again ✓").onPartition((i-1)%3%2))
		}
	}
	all := r.records(changes...)
	for i := 0; i < len(all); i += 7 {
		batch := all[i:min(i+7, len(all))]
		r.mustWrite(batch)
		sent = append(sent, batch...)
		if i == 21 || i == 42 {
			r.reopen()
			from := r.resume
			if os, ok := r.sink.(connect.OffsetStore); ok {
				var err error
				if from, err = os.Offsets(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			var again []connect.Record
			for _, rec := range sent {
				if rec.Offset >= from[elog.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}] {
					again = append(again, rec)
				}
			}
			r.mustWrite(again)
			r.check(fmt.Sprintf("after a restart at record %d and the records after the resume point sent again", i+7))
		}
	}
	r.check("after every record")
	if r.buffering != nil {
		stored := 0
		for _, row := range r.log {
			if r.stored(row.tp(), row.Offset) {
				stored++
			}
		}
		if stored < len(r.log)/2 {
			t.Fatalf("a buffering sink stored %d of %d records: give it a destination that stores every few records", stored, len(r.log))
		}
	}
}

// sinkCloseTwice: Close twice is no error.
func sinkCloseTwice(t *testing.T, tg SinkTarget) {
	r := newRun(t, tg)
	r.mustWrite(r.records(c(1, "a")))
	if err := r.sink.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := r.sink.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// sinkBadConfig: a bad configuration is refused at construction, naming the key.
func sinkBadConfig(t *testing.T, tg SinkTarget) { checkBadConfigs(t, tg.Plugin, tg.New, tg.BadConfigs) }

// sinkTargetFault: a target made to fail for its own reasons (brk) gets
// an error the runtime retries, never a record's fault, and the retry
// after healing applies everything once.
func sinkTargetFault(t *testing.T, tg SinkTarget, name string, brk func(*testing.T, map[string]any) func()) {
	r := newRun(t, tg)
	r.mustWrite(r.records(c(1, "before")))
	heal := brk(t, r.params)
	batch := r.records(c(50, "a"), lc(50, 1, "a"), u(1, "changed"), d(50), lu(50, 1, "b"))
	err := r.write(batch)
	var re *connect.RecordError
	if err == nil || errors.As(err, &re) || connect.IsPermanent(err) {
		heal()
		t.Fatalf("write to a target that is %s: %v, want an error the runtime retries (no record's fault)", name, err)
	}
	heal()
	var retryErr error
	for range 50 { // the runtime retries the whole batch until the target is back
		if retryErr = r.write(batch); retryErr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if retryErr != nil {
		t.Fatalf("the target healed, the retry: %v", retryErr)
	}
	r.check("after the retry")
}

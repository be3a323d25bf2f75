package connecttest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
)

// SourceTarget is what a source plugin gives SourceSuite: an origin in
// which the suite makes three tables of different shapes (OriginTables),
// and ways to change it and to cut the source off.
type SourceTarget struct {
	Plugin string
	New    func(connect.Params, connect.Env) (connect.Source, error)
	// Origin makes a fresh origin, runs setup in it (the tables'
	// statements, then their rows) and returns the source's parameters,
	// capturing the tables parts, order_lines and empty_things to topics
	// prefixed "shop" (shop.<schema or database>.<table>).
	Origin func(t *testing.T, setup []string) map[string]any
	// Exec runs SQL statements on the origin, each in its own
	// transaction. The suite writes SQL that PostgreSQL and MySQL both
	// read.
	Exec func(t *testing.T, params map[string]any, stmts ...string)
	// Disconnect, when set, closes the source's connections to the
	// origin, as a failover or a network cut does.
	Disconnect func(t *testing.T, params map[string]any)
	// Forget, when set, makes the origin lose what it kept for the
	// source's position (a replication slot dropped, binlogs purged).
	Forget     func(t *testing.T, params map[string]any)
	BadConfigs []BadConfig
}

// OriginTables are the tables the suite captures: a narrow one, a wider
// one keyed on two columns, and one that stays empty.
var OriginTables = []string{
	"create table parts (id bigint primary key, v text)",
	"create table order_lines (order_id bigint not null, line int not null, sku varchar(100) not null, qty int not null, " +
		"price double precision not null, note text, weight bigint not null, primary key (order_id, line))",
	"create table empty_things (id bigint primary key, payload text)",
}

// origin is the setup of an origin whose parts holds rows 1..parts (v
// "v<id>") and whose order_lines holds order 1's lines 1..lines.
func origin(parts, lines int) []string {
	setup := slices.Clone(OriginTables)
	for i := 1; i <= parts; i++ {
		setup = append(setup, fmt.Sprintf("insert into parts values (%d, 'v%d')", i, i))
	}
	for i := 1; i <= lines; i++ {
		setup = append(setup, fmt.Sprintf("insert into order_lines values (1, %d, 'sku-%d', %d, %d.25, null, %d)", i, i, i, i, i*1000))
	}
	return setup
}

// event is what the suite reads of a record.
type event struct {
	table string // parts, order_lines, empty_things
	op    string // r, c, u, d; "" for a tombstone
	key   string // parts: the id; lines: LinesKey
	v     string // parts: v; lines: LinesValue
	pos   []byte
}

func (e event) String() string {
	if e.table == "parts" {
		return fmt.Sprintf("%s %s=%q", e.op, e.key, e.v)
	}
	return fmt.Sprintf("%s %s %s=%q", e.table, e.op, e.key, e.v)
}

type sourceRun struct {
	t      *testing.T
	tg     SourceTarget
	params map[string]any
	src    connect.Source
	last   []byte // position of the last record polled
}

func (r *sourceRun) open(position []byte) {
	r.t.Helper()
	src := mustConstruct(r.t, r.tg.Plugin, r.tg.New, r.params)
	if err := src.Open(context.Background(), position); err != nil {
		r.t.Fatalf("open at %x: %v", position, err)
	}
	r.src, r.last = src, position
	r.t.Cleanup(func() { src.Close() })
}

// poll reads until n events came (or a minute passed), checking that
// positions only grow. It commits nothing: commit does, as the runtime
// does once records are durable in the log.
func (r *sourceRun) poll(n int) ([]event, error) {
	r.t.Helper()
	var out []event
	deadline := time.Now().Add(time.Minute)
	for len(out) < n {
		if time.Now().After(deadline) {
			r.t.Fatalf("%d events after a minute, want %d: %v", len(out), n, out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		recs, err := r.src.Poll(ctx)
		timedOut := ctx.Err() != nil
		cancel()
		if err == io.EOF || (err != nil && timedOut) {
			continue
		}
		if err != nil {
			return out, err
		}
		for _, rec := range recs {
			if r.last != nil && bytes.Compare(rec.Position, r.last) <= 0 {
				r.t.Fatalf("position %x after %x: positions must grow", rec.Position, r.last)
			}
			r.last = rec.Position
			e, err := readEvent(rec)
			if err != nil {
				r.t.Fatal(err)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// mustPoll is poll, failing the test on an error.
func (r *sourceRun) mustPoll(n int) []event {
	r.t.Helper()
	got, err := r.poll(n)
	if err != nil {
		r.t.Fatal(err)
	}
	return got
}

// snapshotted makes an origin of rows rows, opens the source on it, reads
// the snapshot and commits it, as every case but the first starts.
func snapshotted(t *testing.T, tg SourceTarget, rows int) *sourceRun {
	t.Helper()
	r := &sourceRun{t: t, tg: tg, params: tg.Origin(t, origin(rows, 0))}
	r.open(nil)
	got := r.mustPoll(rows)
	r.commit(got[len(got)-1].pos)
	return r
}

func (r *sourceRun) commit(pos []byte) {
	r.t.Helper()
	if err := r.src.Commit(context.Background(), pos); err != nil {
		r.t.Fatalf("commit: %v", err)
	}
}

func readEvent(rec connect.Record) (event, error) {
	e := event{pos: rec.Position}
	rest, ok := strings.CutPrefix(rec.Topic, "shop.")
	if _, table, found := strings.Cut(rest, "."); ok && found {
		e.table = table
	}
	switch e.table {
	case "parts", "order_lines", "empty_things":
	default:
		return e, fmt.Errorf("record on topic %s, want shop.<schema>.parts, order_lines or empty_things", rec.Topic)
	}
	key, _ := avrobin.Plain(rec.Key).(map[string]any) // a source may give ordered records
	e.key = rowKey(e.table, key)
	if rec.Value == nil {
		return e, nil // a tombstone
	}
	v, ok := avrobin.Plain(rec.Value).(map[string]any)
	if !ok {
		return e, fmt.Errorf("value %T, want the envelope", rec.Value)
	}
	e.op, _ = v["op"].(string)
	img, _ := v["after"].(map[string]any)
	if e.op == "d" {
		img, _ = v["before"].(map[string]any)
	}
	if img == nil {
		return e, nil
	}
	if k := rowKey(e.table, img); k != e.key {
		return e, fmt.Errorf("%s: key %s, image %s", e.table, e.key, k)
	}
	if e.op == "d" {
		return e, nil
	}
	switch e.table {
	case "parts":
		e.v, _ = img["v"].(string)
	case "order_lines":
		sku, _ := img["sku"].(string)
		price, _ := img["price"].(float64)
		var note *string
		if n, ok := img["note"].(string); ok {
			note = &n
		}
		e.v = LinesValue(sku, Int64(img["qty"]), price, note, Int64(img["weight"]))
	}
	return e, nil
}

// rowKey renders a row's key columns as Row's Key does.
func rowKey(table string, row map[string]any) string {
	if table == "order_lines" {
		return LinesKey(Int64(row["order_id"]), Int64(row["line"]))
	}
	return fmt.Sprint(Int64(row["id"]))
}

// Int64 is an integer column's value as a source decodes it (int, int32
// or int64); -1 for anything else.
func Int64(v any) int64 {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case int64:
		return x
	}
	return -1
}

// bySnapshotTable orders a snapshot's events by table, keeping each
// table's own order: a source may read its tables in any order.
func bySnapshotTable(events []event) []event {
	out := slices.Clone(events)
	slices.SortStableFunc(out, func(a, b event) int { return strings.Compare(a.table, b.table) })
	return out
}

func expectEvents(t *testing.T, what string, got []event, want ...string) {
	t.Helper()
	var g []string
	for _, e := range got {
		g = append(g, e.String())
	}
	if strings.Join(g, ", ") != strings.Join(want, ", ") {
		t.Fatalf("%s:\n  got  %s\n  want %s", what, strings.Join(g, ", "), strings.Join(want, ", "))
	}
}

// SourceSuite runs the source contract against tg.
func SourceSuite(t *testing.T, tg SourceTarget) {
	t.Run("snapshot, then changes, then resume after a commit", func(t *testing.T) { sourceSnapshotChangesResume(t, tg) })
	if tg.Disconnect != nil {
		t.Run("connections closed mid-stream", func(t *testing.T) { sourceDisconnected(t, tg) })
	}
	if tg.Forget != nil {
		t.Run("a position the origin no longer holds is an error, not a skip", func(t *testing.T) { sourceForgotten(t, tg) })
	}
	t.Run("an idle poll ends with its context", func(t *testing.T) { sourceIdlePoll(t, tg) })
	t.Run("close twice", func(t *testing.T) { sourceCloseTwice(t, tg) })
	t.Run("bad config refused at construction", func(t *testing.T) { sourceBadConfig(t, tg) })
}

// sourceSnapshotChangesResume: the snapshot, then the changes, then a resume after a commit that brings exactly what followed it.
func sourceSnapshotChangesResume(t *testing.T, tg SourceTarget) {
	r := &sourceRun{t: t, tg: tg, params: tg.Origin(t, origin(3, 2))}
	r.open(nil)
	got := r.mustPoll(5)
	expectEvents(t, "the snapshot, by table", bySnapshotTable(got), `order_lines r 1/1="sku-1|1|1.25|NULL|1000"`, `order_lines r 1/2="sku-2|2|2.25|NULL|2000"`,
		`r 1="v1"`, `r 2="v2"`, `r 3="v3"`)
	r.commit(got[4].pos)
	large := strings.Repeat("x", 10000)
	tg.Exec(t, r.params, "insert into parts values (4, 'four')", "update parts set v = 'two ✓' where id = 2",
		"insert into order_lines values (2, 1, 'sku-ü', 3, 0.5, 'naïve ☃', 9007199254740993)", "delete from parts where id = 3",
		"update order_lines set qty = 7, note = '' where order_id = 1 and line = 2", "delete from order_lines where order_id = 1 and line = 1",
		"insert into parts values (5, '"+large+"')")
	changes := []string{`c 4="four"`, `u 2="two ✓"`, `order_lines c 2/1="sku-ü|3|0.5|\"naïve ☃\"|9007199254740993"`, `d 3=""`, ` 3=""`,
		`order_lines u 1/2="sku-2|7|2.25|\"\"|2000"`, `order_lines d 1/1=""`, `order_lines  1/1=""`, `c 5="` + large + `"`}
	got = r.mustPoll(len(changes))
	expectEvents(t, "the changes", got, changes...)
	resumeAt := got[1].pos // committed up to the update: what follows must come again, nothing before
	r.commit(resumeAt)
	if err := r.src.Close(); err != nil {
		t.Fatal(err)
	}
	tg.Exec(t, r.params, "insert into parts values (6, 'while-closed')", "insert into empty_things values (1, null)")
	r.open(resumeAt)
	want := slices.Concat(changes[2:], []string{`c 6="while-closed"`, `empty_things c 1=""`})
	got = r.mustPoll(len(want))
	expectEvents(t, "resumed after the update", got, want...)
}

// sourceDisconnected: connections closed mid-stream lose nothing once the source is reopened at its committed position.
func sourceDisconnected(t *testing.T, tg SourceTarget) {
	r := snapshotted(t, tg, 1)
	tg.Exec(t, r.params, "insert into parts values (2, 'before')")
	committed := r.mustPoll(1)[0].pos
	r.commit(committed)
	tg.Disconnect(t, r.params)
	tg.Exec(t, r.params, "insert into parts values (3, 'during')", "update parts set v = 'after' where id = 2")
	// The source either reconnects by itself or fails; then the
	// runtime opens it again at the committed position.
	got, err := r.poll(2)
	if err != nil {
		r.src.Close()
		r.open(committed)
		got = r.mustPoll(2)
	}
	expectEvents(t, "after the cut", got, `c 3="during"`, `u 2="after"`)
}

// sourceForgotten: a position the origin forgot fails permanently: never a silent skip.
func sourceForgotten(t *testing.T, tg SourceTarget) {
	r := snapshotted(t, tg, 1)
	tg.Exec(t, r.params, "insert into parts values (2, 'streamed')")
	streamed := r.mustPoll(1)[0].pos
	r.commit(streamed)
	if err := r.src.Close(); err != nil {
		t.Fatal(err)
	}
	tg.Forget(t, r.params)
	tg.Exec(t, r.params, "insert into parts values (3, 'lost')")
	src := mustConstruct(t, tg.Plugin, tg.New, r.params)
	defer src.Close()
	err := src.Open(context.Background(), streamed)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		recs, perr := src.Poll(ctx)
		cancel()
		if perr == nil || ctx.Err() != nil {
			t.Fatalf("a source whose position the origin forgot opened and polled %d records without an error", len(recs))
		}
		err = perr
	}
	if !connect.IsPermanent(err) {
		t.Fatalf("the lost position's error %v is not permanent: the runtime would retry it forever", err)
	}
}

// sourceIdlePoll: an idle Poll returns once its context ends.
func sourceIdlePoll(t *testing.T, tg SourceTarget) {
	r := snapshotted(t, tg, 1)
	// Nothing changes: a poll must come back when the runtime stops it,
	// or stopping a connector would hang.
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		recs, err := r.src.Poll(ctx)
		cancel()
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("an idle poll took %s after its context ended", took)
		}
		if err == nil && len(recs) > 0 {
			t.Fatalf("an idle poll returned %d records", len(recs))
		}
	}
}

// sourceCloseTwice: Close twice is no error.
func sourceCloseTwice(t *testing.T, tg SourceTarget) {
	r := snapshotted(t, tg, 1)
	if err := r.src.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := r.src.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// sourceBadConfig: a bad configuration is refused at construction, naming the key.
func sourceBadConfig(t *testing.T, tg SourceTarget) {
	checkBadConfigs(t, tg.Plugin, tg.New, tg.BadConfigs)
}

package mysql

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/testdb"
)

// While the captured table is idle and another is written, the source
// hands out position markers past its last change; reopened at one, it
// goes on with the next change, none before.
func TestMarkersFollowTheBinlog(t *testing.T) {
	params := origin(t, []string{"create table t (id int primary key)", "create table other (id int primary key)"}, "t")
	params["heartbeat_interval"] = "100ms"
	db := originDB(params)
	src := openSource(t, params, nil)
	testdb.MariaExec(t, db, "insert into t values (1)")
	last := pollN(t, src, 1)[0].Position
	testdb.MariaExec(t, db, "insert into other values (1)", "insert into other values (2)")
	var marker []byte
	deadline := time.Now().Add(10 * time.Second)
	for marker == nil && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		recs, err := src.Poll(ctx)
		timedOut := ctx.Err() != nil
		cancel()
		if err != nil && !timedOut {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Topic != "" {
				t.Fatalf("a change of an uncaptured table: %v", r.Value)
			}
			if bytes.Compare(r.Position, last) <= 0 {
				t.Fatalf("marker %x not after the last change %x", r.Position, last)
			}
			marker = r.Position
		}
	}
	if marker == nil {
		t.Fatal("no position marker while the captured table was idle")
	}
	p, err := parsePosition(marker)
	if err != nil {
		t.Fatal(err)
	}
	if q, _ := parsePosition(last); p.at.pos <= q.at.pos && p.at.file == q.at.file {
		t.Errorf("marker at %s, not past the last change at %s", p.at, q.at)
	}
	src.Close()
	testdb.MariaExec(t, db, "insert into t values (2)")
	again := openSource(t, params, marker)
	got := pollN(t, again, 1)
	if id := got[0].Value.(map[string]any)["after"].(map[string]any)["id"]; id != int32(2) {
		t.Fatalf("after the marker came id %v, want 2", id)
	}
}

// A snapshot cut off by a crash is taken again from the start, each
// table's reads preceded by a truncate event; the stream then goes on from
// the new snapshot's position.
func TestInterruptedSnapshotIsRetaken(t *testing.T) {
	setup := []string{"create table a (id int primary key, v text)", "create table b (k1 int, k2 varchar(10), primary key (k1, k2))",
		"insert into a select seq, concat('v', seq) from seq_1_to_250", "insert into b select seq % 7, seq from seq_1_to_90"}
	params := origin(t, setup, "a", "b")
	params["snapshot_chunk_rows"] = 40
	params["batch_size"] = 50
	src := openSource(t, params, nil)
	first := pollN(t, src, 120) // part of a, cut off there
	src.Close()
	testdb.MariaExec(t, originDB(params), "delete from a where id <= 10", "insert into b values (100, 'new')")
	again := openSource(t, params, first[len(first)-1].Position)
	got := pollN(t, again, 2+240+91)
	counts := map[string]int{}
	for i, r := range got {
		v := r.Value.(map[string]any)
		op := v["op"].(string)
		table := v["source"].(map[string]any)["table"].(string)
		counts[table+" "+op]++
		if op == "t" && i != 0 && i != 241 {
			t.Errorf("truncate of %s at %d, not before its table's reads", table, i)
		}
		if bytes.Compare(r.Position, first[len(first)-1].Position) <= 0 {
			t.Fatalf("record %d at %x, not after the interrupted snapshot's %x: the runtime would skip it", i, r.Position, first[len(first)-1].Position)
		}
	}
	if counts["a t"] != 1 || counts["b t"] != 1 || counts["a r"] != 240 || counts["b r"] != 91 {
		t.Fatalf("the retaken snapshot: %v", counts)
	}
	if snap := got[len(got)-1].Value.(map[string]any)["source"].(map[string]any)["snapshot"]; snap != "last" {
		t.Errorf("the final read's snapshot is %v, want last", snap)
	}
	testdb.MariaExec(t, originDB(params), "insert into a values (1000, 'after')")
	if r := pollN(t, again, 1)[0]; r.Value.(map[string]any)["op"] != "c" {
		t.Errorf("after the snapshot: %v", r.Value)
	}
}

// A stored position whose binlog was purged: snapshot: when_needed takes
// a new snapshot (after truncate events); accept_binlog_gap goes on from
// the oldest binlog, the changes in between lost, as asked.
func TestPurgedBinlogChoices(t *testing.T) {
	testdb.MariaBinlogExclusive(t) // purges the server's binlogs
	params := origin(t, []string{"create table t (id int primary key, v text)", "insert into t values (1, 'one')"}, "t")
	db, user := originDB(params), originUser(params)
	src := openSource(t, params, nil)
	pollN(t, src, 1)
	testdb.MariaExec(t, db, "insert into t values (2, 'two')")
	stored := pollN(t, src, 1)[0].Position
	src.Close()
	testdb.MariaExec(t, db, "insert into t values (3, 'lost')")
	purgeBinlogs(t, user)
	testdb.MariaExec(t, db, "insert into t values (4, 'after')")

	params["snapshot"] = "when_needed"
	again := openSource(t, params, stored)
	var ops []string
	for _, r := range pollN(t, again, 5) {
		v := r.Value.(map[string]any)
		id := any(nil)
		if a, ok := v["after"].(map[string]any); ok {
			id = a["id"]
		}
		ops = append(ops, fmt.Sprintf("%v %v", v["op"], id))
	}
	if got := strings.Join(ops, " "); got != "t <nil> r 1 r 2 r 3 r 4" {
		t.Errorf("when_needed after a purge: %s, want a truncate and a new snapshot", got)
	}
	again.Close()

	purgeBinlogs(t, user)
	testdb.MariaExec(t, db, "insert into t values (5, 'after the gap')")
	params["snapshot"], params["accept_binlog_gap"] = "initial", true
	gap := openSource(t, params, stored)
	if id := pollN(t, gap, 1)[0].Value.(map[string]any)["after"].(map[string]any)["id"]; id != int32(5) {
		t.Errorf("accept_binlog_gap: the first change is id %v, want 5 (the oldest binlog's)", id)
	}
}

// A transaction with savepoints is one transaction: its rows, the ones
// rolled back to a savepoint left out, and a restart from within a
// statement whose rows span several rows events (after one table map)
// reads the rest of it.
func TestSavepoints(t *testing.T) {
	params := origin(t, []string{"create table t (id int primary key, v text)"}, "t")
	src := openSource(t, params, nil)
	c := testdb.MariaRoot(t)
	if err := c.UseDB(originDB(params)); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"begin", "insert into t values (1, 'a')", "savepoint one", "insert into t values (2, 'b')", "rollback to savepoint one",
		"insert into t values (3, 'c')", "savepoint two", "insert into t select seq, repeat('x', 200) from seq_10_to_2009", "release savepoint two", "commit"} {
		if _, err := c.Execute(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	ids := func(recs []connect.Record) (out []int32) {
		for _, r := range recs {
			out = append(out, r.Value.(map[string]any)["after"].(map[string]any)["id"].(int32))
		}
		return out
	}
	got := pollN(t, src, 2002)
	want := []int32{1, 3}
	for id := int32(10); id <= 2009; id++ {
		want = append(want, id)
	}
	if !slices.Equal(ids(got), want) {
		t.Fatalf("changes %v…, want 1, 3, 10…2009", ids(got)[:5])
	}
	src.Close()
	again := openSource(t, params, got[1000].Position)
	if rest := ids(pollN(t, again, 1001)); !slices.Equal(rest, want[1001:]) {
		t.Fatalf("after a restart from within the big statement: %d changes from %d, want %d from %d", len(rest), rest[0], len(want)-1001, want[1001])
	}
}

package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/testdb"
	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/registry"
)

// mariaLoad runs transactions over several MariaDB tables until stop is
// closed: inserts (v = 0, or v + 1 on a key that exists), updates
// (v = v + 1) and deletes, some transactions touching several tables.
// Failed transactions (deadlocks between the writers) are rolled back.
func mariaLoad(db string, tables []string, keys int, seed uint64, stop <-chan struct{}) int {
	conn, err := client.Connect(testdb.MariaAddr, "root", "", db)
	if err != nil {
		return 0
	}
	defer conn.Close()
	rng := rand.New(rand.NewPCG(seed, 5))
	n := 0
	for {
		select {
		case <-stop:
			return n
		default:
		}
		if _, err := conn.Execute("begin"); err != nil {
			return n
		}
		ok := true
		for range 1 + rng.IntN(4) {
			table, id := tables[rng.IntN(len(tables))], 1+rng.IntN(keys)
			var q string
			switch rng.IntN(10) {
			case 0:
				q = fmt.Sprintf("delete from %s where id = %d", table, id)
			case 1, 2:
				q = fmt.Sprintf("insert into %s (id, v, note) values (%d, 0, 'new ☃') on duplicate key update v = v + 1", table, id)
			default:
				q = fmt.Sprintf("update %s set v = v + 1, note = md5(rand()) where id = %d", table, id)
			}
			if _, err := conn.Execute(q); err != nil {
				ok = false
				break
			}
		}
		if !ok {
			conn.Execute("rollback")
			continue
		}
		if _, err := conn.Execute("commit"); err == nil {
			n++
		}
	}
}

// mariaImage is a MariaDB table's id -> v.
func mariaImage(t *testing.T, c *client.Conn, table string) map[int64]int64 {
	t.Helper()
	res, err := c.Execute("select id, v from " + table)
	if err != nil {
		t.Fatal(err)
	}
	m := map[int64]int64{}
	for i := range res.RowNumber() {
		id, _ := res.GetInt(i, 0)
		v, _ := res.GetInt(i, 1)
		m[id] = v
	}
	return m
}

// column0 is the first column of a query's rows, or the error; on
// PostgreSQL or MariaDB.
func column0(q string, pg *pgx.Conn, my *client.Conn) []string {
	var out []string
	if pg != nil {
		rows, err := pg.Query(context.Background(), q)
		if err != nil {
			return []string{"error: " + err.Error()}
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			rows.Scan(&s)
			out = append(out, s)
		}
		return out
	}
	res, err := my.Execute(q)
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	for i := range res.RowNumber() {
		s, _ := res.GetString(i, 0)
		out = append(out, s)
	}
	return out
}

// Kill -9 `eddy run` at 20 random points of a MariaDB -> log ->
// PostgreSQL and -> MariaDB (another database) pipeline, while three
// writers change tables of different shapes and a column is added
// mid-stream: at the end the log holds every committed change exactly
// once (each key's version goes up by one from event to event), and both
// targets equal the source row by row. Twice: with the binlog's own
// column metadata (binlog_row_metadata=FULL), and without it, the rows
// decoded with the connector's schema history, rebuilt on every restart.
func TestMariaDBKillRunDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	t.Run("binlog metadata", func(t *testing.T) {
		testdb.MariaBinlogShared(t)
		mariaKillRun(t, false)
	})
	t.Run("schema history", func(t *testing.T) {
		testdb.MariaBinlogExclusive(t) // a server setting, for this test
		testdb.MariaExec(t, "", "set global binlog_row_metadata = 'MINIMAL'")
		t.Cleanup(func() { testdb.MariaExec(t, "", "set global binlog_row_metadata = 'FULL'") })
		mariaKillRun(t, true)
	})
}

func mariaKillRun(t *testing.T, history bool) {
	root := testdb.MariaRoot(t)
	db := testdb.MariaDB(t, "eddy_it_src")
	if err := root.UseDB(db); err != nil {
		t.Fatal(err)
	}
	tables := []string{"orders", "wide", "items"}
	testdb.MariaExec(t, db,
		"create table orders (id int primary key, v bigint not null, note text)",
		`create table wide (id int primary key, v bigint not null, note text, name varchar(40) default 'ünï', born date default '1990-02-03',
			score decimal(8,3) default 1.5, flag bit(1) default 1, doc json default '{"k": [1, 2]}', amount bigint unsigned default 18446744073709551615,
			at datetime(6) default '2024-01-02 03:04:05.123456', dur time default '-100:00:00', kind enum('a','b') default 'b',
			raw varbinary(16) default x'00ff', big mediumtext)`,
		"create table items (id int not null, grp int not null default 7, v bigint not null, note text, primary key (id, grp))",
		"create table empty_t (id int primary key, v bigint not null, note text)",
		"insert into orders select seq, 0, 'initial' from seq_1_to_3000",
		"insert into wide (id, v, note, big) select seq, 0, 'initial', repeat('ü', 2000) from seq_1_to_1500",
		"insert into items (id, v, note) select seq, 0, 'initial' from seq_1_to_1500",
	)
	dstDSN, dst := testDB(t)
	myDSN, my := mariaDB(t)
	bin := buildEddy(t)
	dir := t.TempDir()
	prefix := "shop." + db + "."
	cfg := eddyConfig(t, dir, fmt.Sprintf(`topics:
  - {name: %[1]sorders, partitions: 3}
  - {name: %[1]swide, partitions: 2}
connectors:
  - name: maria
    plugin: mysql-source
    config: {dsn: "mysql://root@%[2]s", server_id: %[3]d, tables: ["%[4]s.*"], topic_prefix: shop, batch_size: 300, snapshot_chunk_rows: 400}
  - name: replica
    plugin: postgres-sink
    topics: [%[1]sorders, %[1]swide, %[1]sitems, %[1]sempty_t]
    config: {dsn: %[5]q}
  - name: myreplica
    plugin: mysql-sink
    topics: [%[1]sorders, %[1]swide, %[1]sitems, %[1]sempty_t]
    config: {dsn: %[6]q}
`, prefix, testdb.MariaAddr, 5000+rand.IntN(1e6), db, dstDSN, myDSN))
	logPath := filepath.Join(dir, "eddy.log")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	txns := make([]int, 3)
	for i := range txns {
		wg.Add(1)
		go func() { defer wg.Done(); txns[i] = mariaLoad(db, tables, 2000, uint64(i+1), stop) }()
	}
	killRuns(t, bin, cfg, logPath, 20, 11, func(round int, rng *rand.Rand) time.Duration {
		if round < 3 { // the first kills come while the snapshot is read
			return time.Duration(20+rng.IntN(150)) * time.Millisecond
		}
		return time.Duration(100+rng.IntN(700)) * time.Millisecond
	}, func(round int) {
		switch round {
		case 10: // DDL mid-stream, between two kills, under the writers
			testdb.MariaExec(t, db, "alter table orders add column extra int")
		case 14: // a retyped column, and a table renamed out and back
			testdb.MariaExec(t, db, "alter table wide modify name varchar(60) character set latin1 default 'ünï'")
			testdb.MariaExec(t, db, "rename table empty_t to empty_moved, empty_moved to empty_t", "insert into empty_t values (1, 0, 'renamed back')")
		}
	})
	close(stop)
	wg.Wait()
	testdb.MariaExec(t, db, "update orders set extra = id, v = v + 1 where id % 100 = 0")

	p := startEddy(t, bin, cfg, logPath)
	defer p.kill()
	<-p.up
	// Both targets catch up with the source, row by row.
	// concat_ws reads the same in both, NULLs left out.
	rows := map[string]string{"orders": "concat_ws('|', id, v, note, extra)", "wide": "concat_ws('|', id, v, note, name, born, score, amount, kind)",
		"items": "concat_ws('|', id, grp, v, note)"}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var diffs []string
		for tb, cols := range rows {
			q := "select " + cols + " from %s order by id"
			want := column0(fmt.Sprintf(q, tb), nil, root)
			target := db + "_" + tb
			if d, _ := firstDiff(want, column0(fmt.Sprintf(q, `"`+target+`"`), dst, nil)); d != "" {
				diffs = append(diffs, "PostgreSQL "+tb+": "+d)
			}
			if d, _ := firstDiff(want, column0(fmt.Sprintf(q, "`"+target+"`"), nil, my)); d != "" {
				diffs = append(diffs, "MariaDB "+tb+": "+d)
			}
		}
		if len(diffs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("the targets never matched the source: %s\n%.4000s", strings.Join(diffs, "; "), b[max(0, len(b)-4000):])
		}
		time.Sleep(300 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("eddy run on SIGTERM: %v", err)
	}
	// The log holds every change once.
	reader := startPipeline(t, dir, "")
	events := 0
	for _, tb := range append(slices.Clone(tables), "empty_t") {
		changes := reader.readChanges(t, prefix+tb)
		events += len(changes)
		got, want := replay(t, changes), mariaImage(t, root, tb)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: the log's image (%d rows) differs from the table (%d rows)", tb, len(got), len(want))
		}
	}
	b, _ := os.ReadFile(logPath)
	if history {
		// The history topic holds the definitions the restarts read back.
		tp, err := reader.log.Topic(connect.HistoryTopicPrefix + "maria")
		if err != nil {
			t.Fatal(err)
		}
		part, _ := tp.Partition(0)
		if len(readRecords(t, part)) == 0 {
			t.Errorf("the schema history topic is empty")
		}
		if !strings.Contains(string(b), "decoded with the connector's schema history") {
			t.Errorf("eddy never said it decodes rows with the schema history")
		}
	}
	t.Logf("%d transactions, %d events, 20 kills, DDL mid-stream; %d snapshots started, %d restarts skipped records the log held",
		txns[0]+txns[1]+txns[2], events, strings.Count(string(b), "snapshot started"), strings.Count(string(b), "in the log already"))
}

// MariaDB restarted mid-stream: the source's connections die with it, the
// runtime opens it again at its stored position, and the log's image of
// the table ends equal to the table, every change once.
func TestMariaDBServerRestartMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts MariaDB")
	}
	testdb.MariaRestart(t) // the restart would end every other test's connections
	db := testdb.MariaDB(t, "eddy_it_restart")
	testdb.MariaExec(t, db, "create table orders (id int primary key, v bigint not null, note text)", "insert into orders select seq, 0, 'initial' from seq_1_to_500")
	dir := t.TempDir()
	p := startPipeline(t, dir, fmt.Sprintf(`
connectors:
  - name: maria
    plugin: mysql-source
    config: {dsn: "mysql://root@%s", tables: [%s.orders], topic_prefix: shop}
`, testdb.MariaAddr, db))
	txns := loadAcross(t, func(seed uint64, stop <-chan struct{}) int {
		return mariaLoad(db, []string{"orders"}, 1000, seed, stop)
	}, 1, restartMariaDB)
	root := testdb.MariaRoot(t)
	if err := root.UseDB(db); err != nil {
		t.Fatal(err)
	}
	if res, err := root.Execute("select variable_value from information_schema.global_status where variable_name = 'UPTIME'"); err != nil {
		t.Fatal(err)
	} else if up, _ := res.GetString(0, 0); atoi(up) > 60 {
		t.Fatalf("MariaDB has been up %s s: it was not restarted", up)
	}
	want := mariaImage(t, root, "orders")
	topic := "shop." + db + ".orders"
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got := replay(t, p.readChanges(t, topic))
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log's image (%d rows) never matched the table (%d rows)", len(got), len(want))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%d transactions across the restart; the log's image equals the table", txns)
}

// Transforms on mysql-source's stream (whose records are built in schema
// order, not as maps): drop, rename and mask fields edit the before and
// after images of snapshot and stream events alike, and unwrap flattens
// them, in a second connector on the same table.
func TestMariaDBTransformsOnTheStream(t *testing.T) {
	testdb.MariaBinlogShared(t)
	db := testdb.MariaDB(t, "eddy_it_xform")
	testdb.MariaExec(t, db, "create table people (id int primary key, email varchar(80) not null, name varchar(40), secret text)",
		"insert into people values (1, 'ann@example.com', 'Ann', 's1')")
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: edit
    plugin: mysql-source
    config: {dsn: "mysql://root@%[1]s", tables: [%[2]s.people], topic_prefix: edit, server_id: 7101}
    transforms:
      - {type: drop_fields, fields: [secret]}
      - {type: rename_fields, renames: {name: full_name}}
      - {type: mask_fields, fields: [email], mode: fixed, mask: "@"}
  - name: flat
    plugin: mysql-source
    config: {dsn: "mysql://root@%[1]s", tables: [%[2]s.people], topic_prefix: flat, server_id: 7102}
    transforms:
      - {type: unwrap, add_fields: [table, op]}
`, testdb.MariaAddr, db))
	edits := "edit." + db + ".people"
	waitUntil(t, 30*time.Second, func() bool { return len(p.readChanges(t, edits)) == 1 })
	testdb.MariaExec(t, db, "insert into people values (2, 'bo@example.com', 'Bø ✓', 's2')",
		"update people set name = 'Ann B' where id = 1", "delete from people where id = 2")
	waitUntil(t, 30*time.Second, func() bool { return len(p.readChanges(t, edits)) == 5 }) // r c u d tombstone
	ops := ""
	for _, c := range p.readChanges(t, edits) {
		ops += c.op + " "
		for _, img := range []map[string]any{c.before, c.after} {
			if img == nil {
				continue
			}
			if _, ok := img["secret"]; ok {
				t.Errorf("%s: secret kept: %v", c.op, img)
			}
			if _, ok := img["name"]; ok || img["full_name"] == nil {
				t.Errorf("%s: name not renamed: %v", c.op, img)
			}
			if img["email"] != "@" {
				t.Errorf("%s: email not masked: %v", c.op, img)
			}
		}
	}
	if ops != "r c u d tombstone " {
		t.Fatalf("ops %q", ops)
	}
	// unwrap: the after image and the added fields as the value.
	flat := "flat." + db + ".people"
	tp := func() *elog.Partition {
		tp, err := p.log.Topic(flat)
		if err != nil {
			return nil
		}
		part, _ := tp.Partition(0)
		return part
	}
	waitUntil(t, 30*time.Second, func() bool { part := tp(); return part != nil && part.HighWatermark() >= 4 })
	conv := connect.NewConverter(registry.NewSerde(registry.Local(p.reg)), "avro")
	var got []string
	for _, rec := range readRecords(t, tp()) {
		r, err := conv.Decode(context.Background(), flat, 0, &rec)
		if err != nil {
			t.Fatal(err)
		}
		if r.Value == nil {
			got = append(got, "tombstone")
			continue
		}
		v := r.Value.(map[string]any)
		got = append(got, fmt.Sprintf("%v %v %v %v %v", v["__op"], v["__table"], v["id"], v["name"], v["secret"]))
	}
	want := []string{"r people 1 Ann s1", "c people 2 Bø ✓ s2", "u people 1 Ann B s1", "tombstone"}
	if !slices.Equal(got, want) {
		t.Fatalf("unwrapped values\n%q\nwant\n%q", got, want)
	}
}

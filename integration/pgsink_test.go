package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/testdb"
	elog "github.com/eddy-cdc/eddy/log"
)

// tableRows renders a table's rows, ordered by id, for comparison.
func tableRows(t *testing.T, conn *pgx.Conn, q string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(vals...))
	}
	return out
}

// PostgreSQL source -> log -> postgres-sink into another database, under
// a mixed workload: the target table ends equal to the source, row by row,
// and eddy_offsets equals the log's high watermarks.
func TestPostgresToPostgres(t *testing.T) {
	srcDSN, src := testDB(t)
	dstDSN, dst := testDB(t)
	ctx := context.Background()
	if _, err := src.Exec(ctx, `create table orders (id int primary key, v bigint not null, note text, amount numeric(10,2), at timestamptz);
		insert into orders select g, 0, 'initial', g / 100.0, now() from generate_series(1, 3000) g`); err != nil {
		t.Fatal(err)
	}
	p := replicaPipeline(t, 3, srcDSN, "postgres-sink", dstDSN)
	stop := make(chan struct{})
	done := make(chan int)
	go func() { done <- mixedLoad(srcDSN, []string{"orders"}, 4000, 11, stop) }()
	time.Sleep(2 * time.Second)
	if _, err := src.Exec(ctx, "alter table orders add column tag text"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Exec(ctx, "update orders set tag = 'tagged' where id % 7 = 0"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	close(stop)
	txns := <-done
	// A truncate reaches the target through each of the 3 partitions, and
	// rows written after it stay: those in the fetches that bring the
	// truncate, and those of later fetches, which the sink weighs against
	// the truncate's stored position (the pipeline poisons each fetch once
	// delivered, so a position kept from the fetch would be garbage).
	if _, err := src.Exec(ctx, "truncate orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Exec(ctx, "insert into orders (id, v, note) select g, 0, 'after truncate' from generate_series(1, 50) g"); err != nil {
		t.Fatal(err)
	}
	waitSlot(t, src, "eddy_pg", time.Minute)
	waitSinkCaughtUp(t, p, dst)
	if _, err := src.Exec(ctx, "insert into orders (id, v, note) select g, 0, 'later' from generate_series(51, 100) g"); err != nil {
		t.Fatal(err)
	}
	waitSlot(t, src, "eddy_pg", time.Minute)
	waitSinkCaughtUp(t, p, dst)
	a := tableRows(t, src, "select id, v, note, amount, at, tag from orders order by id")
	b := tableRows(t, dst, "select id, v, note, amount, at, tag from public_orders order by id")
	if len(a) != len(b) {
		t.Fatalf("source has %d rows, target %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("row %d differs:\nsource %s\ntarget %s", i, a[i], b[i])
		}
	}
	t.Logf("%d transactions, %d rows equal", txns, len(a))
}

// waitSinkCaughtUp returns once the sink replica's eddy_offsets (in dst)
// add up to the high watermarks of shop.public.orders; it fails if the
// sink does, or after a minute.
func waitSinkCaughtUp(t *testing.T, p *pipeline, dst *pgx.Conn) {
	t.Helper()
	tp, err := p.log.Topic("shop.public.orders")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if st, _ := p.w.Status("replica"); st.Tasks[0].State == "FAILED" {
			t.Fatalf("the sink failed: %s", st.Tasks[0].Trace)
		}
		var want, got int64
		for i := range tp.Partitions() {
			part, _ := tp.Partition(i)
			want += part.HighWatermark()
		}
		dst.QueryRow(context.Background(), "select coalesce(sum(next_offset), 0) from eddy_offsets where connector = 'replica'").Scan(&got)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("eddy_offsets sum to %d, the log holds %d", got, want)
		}
	}
}

// Kill -9 eddy run at 20 random points of a PostgreSQL -> log ->
// PostgreSQL and -> MariaDB pipeline under a mixed workload: at the end
// both targets equal the source row by row, and both eddy_offsets tables
// equal the log's high watermarks.
func TestPostgresToPostgresKill(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	srcDSN, src := testDB(t)
	dstDSN, dst := testDB(t)
	myDSN, my := mariaDB(t)
	ctx := context.Background()
	// Three shapes: narrow; wide, of many types, with a value stored out
	// of line that the load's updates leave unchanged (so they do not
	// carry it); a composite key.
	tables := []string{"orders", "customers", "items"}
	if _, err := src.Exec(ctx, `create function bigtext() returns text language sql as $$ select string_agg(md5(random()::text), '') from generate_series(1, 300) $$;
		create table orders (id int primary key, v bigint not null, note text);
		create table customers (id int primary key, v bigint not null, note text, name varchar(40) default 'ünï', born date default '1990-02-03',
			score numeric(8,3) default 1.5, tags text[] default '{a,"b c",NULL}', doc jsonb default '{"k": [1, 2]}', big text default bigtext());
		create table items (id int not null unique, grp int not null default 7, v bigint not null, note text, primary key (id, grp));
		insert into orders select g, 0, 'initial' from generate_series(1, 1500) g;
		insert into customers (id, v, note) select g, 0, 'initial' from generate_series(1, 1500) g;
		insert into items (id, v, note) select g, 0, 'initial' from generate_series(1, 1500) g`); err != nil {
		t.Fatal(err)
	}
	bin := buildEddy(t)
	dir := t.TempDir()
	cfg := eddyConfig(t, dir, fmt.Sprintf(`topics:
  - {name: shop.public.orders, partitions: 3}
  - {name: shop.public.customers, partitions: 2}
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders, customers, items], topic_prefix: shop, batch_size: 300}
  - name: replica
    plugin: postgres-sink
    topics: [shop.public.orders, shop.public.customers, shop.public.items]
    config: {dsn: %q}
  - name: myreplica
    plugin: mysql-sink
    topics: [shop.public.orders, shop.public.customers, shop.public.items]
    config: {dsn: %q}
`, srcDSN, dstDSN, myDSN))
	logPath := filepath.Join(dir, "eddy.log")
	stop := make(chan struct{})
	done := make(chan int)
	go func() { done <- mixedLoad(srcDSN, tables, 2000, 21, stop) }()
	killRuns(t, bin, cfg, logPath, 20, 4, nil, nil)
	close(stop)
	txns := <-done
	p := startEddy(t, bin, cfg, logPath)
	defer p.kill()
	<-p.up
	waitSlot(t, src, "eddy_pg", 2*time.Minute, logPath)
	// The sink has caught up when eddy_offsets holds every partition's end.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var got int64
		dst.QueryRow(ctx, "select coalesce(sum(next_offset), 0) from eddy_offsets where connector = 'replica'").Scan(&got)
		var diffs []string
		suspects := map[string][]int64{} // per table, the keys of the rows that differ
		for _, tb := range tables {
			var inPG bool
			dst.QueryRow(ctx, "select to_regclass($1) is not null", "public_"+tb).Scan(&inPG)
			inMaria := false
			if res, err := my.Execute("select count(*) from information_schema.tables where table_schema = database() and table_name = ?", "public_"+tb); err == nil {
				n, _ := res.GetInt(0, 0)
				inMaria = n == 1
			}
			if !inPG || !inMaria { // the sinks have not come to it yet
				diffs = append(diffs, fmt.Sprintf("%s: in PostgreSQL %v, in MariaDB %v", tb, inPG, inMaria))
				continue
			}
			a := tableRows(t, src, "select id, v, note from "+tb+" order by id")
			for _, target := range []struct {
				name string
				rows []string
				// whole compares whole rows, every type, when the keys are there
				whole func() (want, got []string)
			}{
				{"PostgreSQL", tableRows(t, dst, "select id, v, note from public_"+tb+" order by id"), func() ([]string, []string) {
					return tableRows(t, src, "select t::text from "+tb+" t order by id"), tableRows(t, dst, "select t::text from public_"+tb+" t order by id")
				}},
				{"MariaDB", mariaRows(t, my, "select id, v, note from public_"+tb+" order by id"), nil},
			} {
				want, rows := a, target.rows
				if target.whole != nil && len(a) == len(rows) {
					want, rows = target.whole()
				}
				if d, keys := firstDiff(want, rows); d != "" {
					diffs = append(diffs, target.name+" "+tb+": "+d)
					for _, k := range keys {
						if !slices.Contains(suspects[tb], k) {
							suspects[tb] = append(suspects[tb], k)
						}
					}
				}
			}
		}
		if len(diffs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			p.cmd.Process.Signal(syscall.SIGTERM)
			p.cmd.Wait()
			offs := tableRows(t, dst, "select topic, partition, next_offset from eddy_offsets order by 1, 2")
			t.Logf("PostgreSQL eddy_offsets: %v; MariaDB: %v", offs, mariaRows(t, my, "select topic, `partition`, next_offset from eddy_offsets order by 1, 2"))
			t.Fatalf("the target never matched the source (offsets sum %d): %s\nthe log says: %s\n%.4000s", got, strings.Join(diffs, "; "),
				logVersusSource(t, dir, src, tables, suspects), b[max(0, len(b)-4000):])
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	// eddy_offsets equals the log's high watermarks.
	reader := startPipeline(t, dir, "")
	var want int64
	for _, tb := range tables {
		tp, _ := reader.log.Topic("shop.public." + tb)
		for i := range tp.Partitions() {
			part, _ := tp.Partition(i)
			want += part.HighWatermark()
			var next int64
			dst.QueryRow(ctx, "select next_offset from eddy_offsets where connector = 'replica' and topic = $1 and partition = $2", "shop.public."+tb, i).Scan(&next)
			if next != part.HighWatermark() {
				t.Fatalf("eddy_offsets %s/%d = %d, high watermark %d", tb, i, next, part.HighWatermark())
			}
			res, err := my.Execute("select next_offset from eddy_offsets where connector = 'myreplica' and topic = ? and `partition` = ?", "shop.public."+tb, i)
			if err != nil || res.RowNumber() != 1 {
				t.Fatalf("MariaDB eddy_offsets %s/%d: %v", tb, i, err)
			}
			if mn, _ := res.GetInt(0, 0); mn != part.HighWatermark() {
				t.Fatalf("MariaDB eddy_offsets %s/%d = %d, high watermark %d", tb, i, mn, part.HighWatermark())
			}
		}
	}
	t.Logf("%d transactions, 20 kills, %d records delivered exactly once", txns, want)
}

// A row the target refuses (a CHECK constraint there) is found by the
// sink halving the failed batch and dead-lettered; every other row and
// the offsets are applied. On PostgreSQL and on MariaDB.
// sinkDestination is a database sink's target in the integration tests:
// its plugin and DSN, and a way to run a statement and count.
type sinkDestination struct {
	plugin, dsn string
	exec        func(q string)
	count       func(q string) int64
}

var sinkDestinations = map[string]func(t *testing.T) sinkDestination{
	"postgres": func(t *testing.T) sinkDestination {
		dsn, c := testDB(t)
		ctx := context.Background()
		return sinkDestination{plugin: "postgres-sink", dsn: dsn,
			exec: func(q string) {
				if _, err := c.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			},
			count: func(q string) (n int64) { c.QueryRow(ctx, q).Scan(&n); return n }}
	},
	"mariadb": func(t *testing.T) sinkDestination {
		dsn, c := mariaDB(t)
		return sinkDestination{plugin: "mysql-sink", dsn: dsn,
			exec: func(q string) {
				if _, err := c.Execute(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			},
			count: func(q string) int64 {
				res, err := c.Execute(q)
				if err != nil {
					return -1
				}
				n, _ := res.GetInt(0, 0)
				return n
			}}
	},
}

func TestSinkPoisonRecord(t *testing.T) {
	const rows, poison = 5000, 3777
	for _, target := range []string{"postgres", "mariadb"} {
		t.Run(target, func(t *testing.T) {
			srcDSN, src := testDB(t)
			ctx := context.Background()
			if _, err := src.Exec(ctx, "create table orders (id int primary key, v bigint not null, note text)"); err != nil {
				t.Fatal(err)
			}
			if _, err := src.Exec(ctx, "insert into orders select g, 0, case when g = $1 then 'poison' else 'fine' end from generate_series(1, $2) g", poison, rows); err != nil {
				t.Fatal(err)
			}
			const ddl = "create table public_orders (id int primary key, v bigint not null, note text, check (note <> 'poison'))"
			dest := sinkDestinations[target](t)
			dest.exec(ddl)
			count := func() (n, next int64) {
				return dest.count("select count(*) from public_orders"), dest.count("select coalesce(max(next_offset), 0) from eddy_offsets where connector = 'replica'")
			}
			plugin, dstDSN := dest.plugin, dest.dsn
			p := replicaPipeline(t, 1, srcDSN, plugin, dstDSN, "errors: {tolerance: all, dead_letter_topic: replica.dlq}")
			deadline := time.Now().Add(time.Minute)
			for {
				n, next := count()
				dlq, err := p.log.Topic("replica.dlq")
				if n == rows-1 && next == rows && err == nil {
					part, _ := dlq.Partition(0)
					if part.HighWatermark() == 1 {
						res, _ := part.Fetch(0, 1<<20)
						recs, _ := elog.DecodeBatches(nil, res.Data, 0)
						var msg, off string
						for _, h := range recs[0].Headers {
							switch h.Key {
							case connect.HeaderErrMessage:
								msg = string(h.Value)
							case connect.HeaderErrOffset:
								off = string(h.Value)
							}
						}
						if !strings.Contains(strings.ToLower(msg), "constraint") || off != fmt.Sprint(poison-1) {
							t.Fatalf("dead letter at offset %s (want %d), message %q", off, poison-1, msg)
						}
						break
					}
				}
				if time.Now().After(deadline) {
					st, _ := p.w.Status("replica")
					t.Fatalf("%d rows in the target, eddy_offsets at %d (want %d, %d: the poison record counts as delivered); status %+v", n, next, rows-1, rows, st.Tasks[0])
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// The target (here the same server as the source) restarted mid-stream:
// the sink reconnects and retries, the source too, and the target ends
// equal to the source.
func TestPostgresToPostgresServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts PostgreSQL")
	}
	testdb.PostgresRestart(t)
	srcDSN, src := testDB(t)
	dstDSN, _ := testDB(t)
	ctx := context.Background()
	if _, err := src.Exec(ctx, "create table orders (id int primary key, v bigint not null, note text)"); err != nil {
		t.Fatal(err)
	}
	p := replicaPipeline(t, 1, srcDSN, "postgres-sink", dstDSN)
	txns := loadAcrossRestart(t, srcDSN, 31, restartPostgres)
	src, err := pgx.Connect(ctx, srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	dst, err := pgx.Connect(ctx, dstDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close(ctx)
	waitSlot(t, src, "eddy_pg", time.Minute)
	deadline := time.Now().Add(time.Minute)
	for {
		a := tableRows(t, src, "select id, v, note from orders order by id")
		b := tableRows(t, dst, "select id, v, note from public_orders order by id")
		if fmt.Sprint(a) == fmt.Sprint(b) {
			t.Logf("%d transactions across a server restart, %d rows equal", txns, len(a))
			return
		}
		if time.Now().After(deadline) {
			st, _ := p.w.Status("replica")
			t.Fatalf("the target (%d rows) never matched the source (%d rows); sink %+v", len(b), len(a), st.Tasks[0])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// replicaPipeline runs postgres-source on orders (topic
// shop.public.orders, with the given partitions) and the sink plugin as
// connector "replica" into dstDSN; sinkLines are more keys of the sink's
// connector (errors:, say).
func replicaPipeline(t *testing.T, partitions int, srcDSN, plugin, dstDSN string, sinkLines ...string) *pipeline {
	var extra strings.Builder
	for _, l := range sinkLines {
		extra.WriteString("    " + l + "\n")
	}
	return startPipeline(t, t.TempDir(), fmt.Sprintf(`
topics:
  - {name: shop.public.orders, partitions: %d}
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders], topic_prefix: shop}
  - name: replica
    plugin: %s
    topics: [shop.public.orders]
    config: {dsn: %q}
%s`, partitions, srcDSN, plugin, dstDSN, extra.String()))
}

// firstDiff describes the first difference between the rows of a source
// and a target ("" when equal), and gives the keys (first fields) of the
// two rows.
func firstDiff(src, dst []string) (string, []int64) {
	for i := range min(len(src), len(dst)) {
		if src[i] != dst[i] {
			var keys []int64
			for _, row := range []string{src[i], dst[i]} {
				if k, err := strconv.ParseInt(strings.Fields(row)[0], 10, 64); err == nil {
					keys = append(keys, k)
				}
			}
			return fmt.Sprintf("row %d: source %s, target %s", i, src[i], dst[i]), keys
		}
	}
	if len(src) != len(dst) {
		return fmt.Sprintf("source has %d rows, target %d", len(src), len(dst)), nil
	}
	return "", nil
}

// logVersusSource explains a target that differs: it replays the log of
// each table (replay fails the test if the log itself missed or doubled a
// change), says whether the log's image equals the source, and shows each
// partition's end and the changes of the suspect keys, with every
// truncate, so a failure says where the rows went.
func logVersusSource(t *testing.T, dir string, src *pgx.Conn, tables []string, suspects map[string][]int64) string {
	reader := startPipeline(t, dir, "")
	var out []string
	for _, tb := range tables {
		changes := reader.readChanges(t, "shop.public."+tb)
		tp, _ := reader.log.Topic("shop.public." + tb)
		for i := range tp.Partitions() {
			part, _ := tp.Partition(i)
			out = append(out, fmt.Sprintf("%s/%d high watermark %d", tb, i, part.HighWatermark()))
		}
		for _, k := range suspects[tb] {
			var hist []string
			for _, c := range changes {
				if c.key == k || c.op == "t" {
					hist = append(hist, fmt.Sprintf("p%d %s v=%v snap=%s", c.partition, c.op, c.after["v"], c.snap))
				}
			}
			out = append(out, fmt.Sprintf("%s key %d in the log: %s", tb, k, strings.Join(hist, ", ")))
		}
		if fmt.Sprint(replay(t, changes)) == fmt.Sprint(tableImage(t, src, tb)) {
			out = append(out, tb+": the log's image equals the source")
		} else {
			out = append(out, tb+": the log's image differs from the source")
		}
	}
	return strings.Join(out, "; ")
}

package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/connect"
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
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
topics:
  - {name: shop.public.orders, partitions: 3}
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders], topic_prefix: shop}
  - name: replica
    plugin: postgres-sink
    topics: [shop.public.orders]
    config: {dsn: %q}
`, srcDSN, dstDSN))
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
	// rows written after it stay.
	if _, err := src.Exec(ctx, "truncate orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Exec(ctx, "insert into orders (id, v, note) select g, 0, 'after truncate' from generate_series(1, 50) g"); err != nil {
		t.Fatal(err)
	}
	waitSlot(t, src, "eddy_pg", time.Minute)
	tp, _ := p.log.Topic("shop.public.orders")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, _ := p.w.Status("replica"); st.Tasks[0].State == "FAILED" {
			t.Fatalf("the sink failed: %s", st.Tasks[0].Trace)
		}
		var want, got int64
		for i := range tp.Partitions() {
			part, _ := tp.Partition(i)
			want += part.HighWatermark()
		}
		dst.QueryRow(ctx, "select coalesce(sum(next_offset), 0) from eddy_offsets where connector = 'replica'").Scan(&got)
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("eddy_offsets sum to %d, the log holds %d", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	tables := []string{"orders", "customers"}
	for _, tb := range tables {
		if _, err := src.Exec(ctx, fmt.Sprintf(`create table %s (id int primary key, v bigint not null, note text)`, tb)); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Exec(ctx, fmt.Sprintf(`insert into %s select g, 0, 'initial' from generate_series(1, 1500) g`, tb)); err != nil {
			t.Fatal(err)
		}
	}
	bin := buildEddy(t)
	dir := t.TempDir()
	cfg := eddyConfig(t, dir, fmt.Sprintf(`topics:
  - {name: shop.public.orders, partitions: 3}
  - {name: shop.public.customers, partitions: 2}
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders, customers], topic_prefix: shop, batch_size: 300}
  - name: replica
    plugin: postgres-sink
    topics: [shop.public.orders, shop.public.customers]
    config: {dsn: %q}
  - name: myreplica
    plugin: mysql-sink
    topics: [shop.public.orders, shop.public.customers]
    config: {dsn: %q}
`, srcDSN, dstDSN, myDSN))
	logPath := filepath.Join(dir, "eddy.log")
	stop := make(chan struct{})
	done := make(chan int)
	go func() { done <- mixedLoad(srcDSN, tables, 2000, 21, stop) }()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 4))
	for round := range 20 {
		p := startEddy(t, bin, cfg, logPath)
		select {
		case <-p.up:
		case <-time.After(30 * time.Second):
			p.kill()
			t.Fatalf("round %d: eddy did not start", round)
		}
		time.Sleep(time.Duration(100+rng.IntN(700)) * time.Millisecond)
		p.kill()
	}
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
		var equal = true
		for _, tb := range tables {
			a := tableRows(t, src, "select id, v, note from "+tb+" order by id")
			b := tableRows(t, dst, "select id, v, note from public_"+tb+" order by id")
			m := mariaRows(t, my, "select id, v, note from public_"+tb+" order by id")
			equal = equal && fmt.Sprint(a) == fmt.Sprint(b) && fmt.Sprint(a) == fmt.Sprint(m)
		}
		if equal {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("the target never matched the source (offsets sum %d)\n%.4000s", got, b[max(0, len(b)-4000):])
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
// record-by-record retry and dead-lettered; every other row and the
// offsets are applied. Under tolerance none the task stops FAILED on it.
func TestPostgresSinkPoisonRecord(t *testing.T) {
	srcDSN, src := testDB(t)
	dstDSN, dst := testDB(t)
	ctx := context.Background()
	if _, err := src.Exec(ctx, "create table orders (id int primary key, v bigint not null, note text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Exec(ctx, "create table public_orders (id int primary key, v bigint not null, note text check (note <> 'poison'))"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Exec(ctx, "insert into orders select g, 0, case when g = 77 then 'poison' else 'fine' end from generate_series(1, 200) g"); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders], topic_prefix: shop}
  - name: replica
    plugin: postgres-sink
    topics: [shop.public.orders]
    config: {dsn: %q}
    errors: {tolerance: all, dead_letter_topic: replica.dlq}
`, srcDSN, dstDSN))
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		dst.QueryRow(ctx, "select count(*) from public_orders").Scan(&n)
		dlq, err := p.log.Topic("replica.dlq")
		if n == 199 && err == nil {
			part, _ := dlq.Partition(0)
			if part.HighWatermark() == 1 {
				res, _ := part.Fetch(0, 1<<20)
				recs, _ := elog.DecodeBatches(nil, res.Data, 0)
				msg := ""
				for _, h := range recs[0].Headers {
					if h.Key == connect.HeaderErrMessage {
						msg = string(h.Value)
					}
				}
				if !strings.Contains(msg, "check") {
					t.Fatalf("dead letter message: %q", msg)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			st, _ := p.w.Status("replica")
			t.Fatalf("%d rows in the target; status %+v", n, st.Tasks[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
	var next int64
	dst.QueryRow(ctx, "select next_offset from eddy_offsets where connector = 'replica'").Scan(&next)
	if next != 200 {
		t.Fatalf("eddy_offsets at %d, want 200 (the poison record counts as delivered)", next)
	}
}

// The target (here the same server as the source) restarted mid-stream:
// the sink reconnects and retries, the source too, and the target ends
// equal to the source.
func TestPostgresToPostgresServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts PostgreSQL")
	}
	srcDSN, src := testDB(t)
	dstDSN, _ := testDB(t)
	ctx := context.Background()
	if _, err := src.Exec(ctx, "create table orders (id int primary key, v bigint not null, note text)"); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders], topic_prefix: shop}
  - name: replica
    plugin: postgres-sink
    topics: [shop.public.orders]
    config: {dsn: %q}
`, srcDSN, dstDSN))
	txns := loadAcrossRestart(t, srcDSN, 31)
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

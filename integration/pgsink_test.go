package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

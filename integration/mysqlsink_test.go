package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

// mariaDB creates a database of its own on MariaDB and drops it after.
func mariaDB(t *testing.T) (dsn string, conn *client.Conn) { return mariaDBB(t) }

func mariaDBB(t testing.TB) (dsn string, conn *client.Conn) {
	t.Helper()
	requireService(t, "MariaDB", mariaAddr)
	c, err := client.Connect(mariaAddr, "root", "", "")
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("eddy_it_%d", rand.IntN(1e9))
	if _, err := c.Execute("create database " + name); err != nil {
		t.Fatal(err)
	}
	c.UseDB(name)
	t.Cleanup(func() {
		c.Execute("drop database " + name)
		c.Close()
	})
	return "mysql://root@" + mariaAddr + "/" + name, c
}

func mariaRows(t *testing.T, c *client.Conn, q string) []string {
	t.Helper()
	res, err := c.Execute(q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := range res.RowNumber() {
		id, _ := res.GetInt(i, 0)
		v, _ := res.GetInt(i, 1)
		note, _ := res.GetString(i, 2)
		out = append(out, fmt.Sprint(id, v, note))
	}
	return out
}

// PostgreSQL source -> log -> mysql-sink into MariaDB under a mixed
// workload: the target equals the source and eddy_offsets equals the
// log's high watermarks.
func TestPostgresToMariaDB(t *testing.T) {
	srcDSN, src := testDB(t)
	dstDSN, dst := mariaDB(t)
	ctx := context.Background()
	if _, err := src.Exec(ctx, `create table orders (id int primary key, v bigint not null, note text)`); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Exec(ctx, `insert into orders select g, 0, 'initial' from generate_series(1, 2000) g`); err != nil {
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
    plugin: mysql-sink
    topics: [shop.public.orders]
    config: {dsn: %q}
`, srcDSN, dstDSN))
	stop := make(chan struct{})
	done := make(chan int)
	go func() { done <- mixedLoad(srcDSN, []string{"orders"}, 3000, 41, stop) }()
	time.Sleep(2 * time.Second)
	close(stop)
	txns := <-done
	if _, err := src.Exec(ctx, "truncate orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Exec(ctx, "insert into orders (id, v, note) select g, 0, 'after truncate' from generate_series(1, 40) g"); err != nil {
		t.Fatal(err)
	}
	waitSlot(t, src, "eddy_pg", time.Minute)
	tp, _ := p.log.Topic("shop.public.orders")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, _ := p.w.Status("replica"); st.Tasks[0].State == "FAILED" {
			t.Fatalf("the sink failed: %s", st.Tasks[0].Trace)
		}
		var want int64
		for i := range tp.Partitions() {
			part, _ := tp.Partition(i)
			want += part.HighWatermark()
		}
		res, err := dst.Execute("select coalesce(sum(next_offset), 0) from eddy_offsets where connector = 'replica'")
		got := int64(-1)
		if err == nil {
			got, _ = res.GetInt(0, 0)
		}
		a := tableRows(t, src, "select id, v, note from orders order by id")
		b := mariaRows(t, dst, "select id, v, note from public_orders order by id")
		if got == want && fmt.Sprint(a) == fmt.Sprint(b) {
			t.Logf("%d transactions, %d rows equal in MariaDB", txns, len(a))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("eddy_offsets %d, log %d; source %d rows, target %d", got, want, len(a), len(b))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

package integration

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/internal/testdb"
)

// mariaDB creates a database of its own on MariaDB and drops it after.
func mariaDB(t *testing.T) (dsn string, conn *client.Conn) { return mariaDBB(t) }

func mariaDBB(t testing.TB) (dsn string, conn *client.Conn) {
	t.Helper()
	requireService(t, "MariaDB", mariaAddr)
	testdb.MariaInUse(t)
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
	p := replicaPipeline(t, 3, srcDSN, "mysql-sink", dstDSN)
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
	n := waitMariaEqual(t, p, src, dst)
	t.Logf("%d transactions, %d rows equal in MariaDB", txns, n)
}

// waitMariaEqual waits until the sink replica has delivered the whole of
// shop.public.orders to MariaDB (eddy_offsets equal to the log's ends)
// and public_orders there equals orders at the source, and returns the
// rows compared. It fails after a minute, or when the sink fails.
func waitMariaEqual(t *testing.T, p *pipeline, src *pgx.Conn, my *client.Conn) int {
	t.Helper()
	tp, _ := p.log.Topic("shop.public.orders")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		st, _ := p.w.Status("replica")
		if st.Tasks[0].State == "FAILED" {
			t.Fatalf("the sink failed: %s", st.Tasks[0].Trace)
		}
		var want int64
		for i := range tp.Partitions() {
			part, _ := tp.Partition(i)
			want += part.HighWatermark()
		}
		got := int64(-1)
		if res, err := my.Execute("select coalesce(sum(next_offset), 0) from eddy_offsets where connector = 'replica'"); err == nil {
			got, _ = res.GetInt(0, 0)
		}
		a := tableRows(t, src, "select id, v, note from orders order by id")
		b := mariaRows(t, my, "select id, v, note from public_orders order by id")
		if got == want && fmt.Sprint(a) == fmt.Sprint(b) {
			return len(a)
		}
		if time.Now().After(deadline) {
			d, _ := firstDiff(a, b)
			t.Fatalf("eddy_offsets %d, log %d; source %d rows, target %d; %s; sink %+v", got, want, len(a), len(b), d, st.Tasks[0])
		}
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return math.MaxInt
	}
	return n
}

// restartMariaDB stops and starts the MariaDB server as
// scripts/test-services.sh does, and waits until it takes connections.
func restartMariaDB(t *testing.T) {
	t.Helper()
	testdb.MariaRestart(t) // every other test's connections would die
	start := func() error {
		os.MkdirAll("/run/mysqld", 0o755)
		exec.Command("chown", "mysql:mysql", "/run/mysqld").Run()
		return exec.Command("start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/mariadbd").Run()
	}
	t.Cleanup(func() { start() })
	if out, err := exec.Command("start-stop-daemon", "--stop", "--oknodo", "--exec", "/usr/sbin/mariadbd", "--retry", "60").CombinedOutput(); err != nil {
		t.Fatalf("stop MariaDB: %v\n%s", err, out)
	}
	if err := start(); err != nil {
		t.Fatalf("start MariaDB: %v", err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		c, err := client.Connect(mariaAddr, "root", "", "")
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("MariaDB did not come back: %v", err)
		}
	}
}

// MariaDB restarted mid-stream: mysql-sink reconnects and the runtime
// retries the batch; the target ends equal to the source, and
// eddy_offsets equal to the log.
func TestPostgresToMariaDBServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts MariaDB")
	}
	testdb.MariaRestart(t)
	srcDSN, src := testDB(t)
	dstDSN, _ := mariaDB(t) // its connection dies with the server
	ctx := context.Background()
	if _, err := src.Exec(ctx, "create table orders (id int primary key, v bigint not null, note text)"); err != nil {
		t.Fatal(err)
	}
	p := replicaPipeline(t, 1, srcDSN, "mysql-sink", dstDSN)
	txns := loadAcrossRestart(t, srcDSN, 43, restartMariaDB)
	waitSlot(t, src, "eddy_pg", time.Minute)
	my, err := client.Connect(mariaAddr, "root", "", dstDSN[strings.LastIndex(dstDSN, "/")+1:])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { my.Execute("drop database " + my.GetDB()); my.Close() })
	// The sink's connection died with the server: rows written after the
	// restart arrive only if it reconnected.
	if res, err := my.Execute("select variable_value from information_schema.global_status where variable_name = 'UPTIME'"); err != nil {
		t.Fatal(err)
	} else if up, _ := res.GetString(0, 0); atoi(up) > 60 {
		t.Fatalf("MariaDB has been up %s s: it was not restarted", up)
	}
	n := waitMariaEqual(t, p, src, my)
	t.Logf("%d transactions across the restart, %d rows equal", txns, n)
}

// A PostgreSQL enum that gains a label (no DDL on the table): mysql-sink
// gives the MariaDB enum column the label before the row that needs it,
// so the row arrives and nothing is dead-lettered.
func TestPostgresToMariaDBEnumGainsLabels(t *testing.T) {
	srcDSN, src := testDB(t)
	myDSN, my := mariaDB(t)
	exec := func(q string) { t.Helper(); testdb.Exec(t, src, q) }
	exec(`create type mood as enum ('sad', 'ok');
		create table feelings (id int primary key, feel mood);
		insert into feelings values (1, 'ok')`)
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [feelings], topic_prefix: shop}
  - name: replica
    plugin: mysql-sink
    topics: [shop.public.feelings]
    errors: {tolerance: all, dead_letter_topic: replica.dlq}
    config: {dsn: %q}
`, srcDSN, myDSN))
	topics := []string{"shop.public.feelings"}
	offsets := mariaOffsets(my, "replica")
	p.waitChanges(t, "shop.public.feelings", 1)
	sinkDone(t, p, "replica", topics, offsets)
	exec(`alter type mood add value 'meh'`)
	exec(`alter type mood add value 'glad' before 'sad'`)
	exec(`insert into feelings values (2, 'meh'), (3, 'glad')`)
	waitSlot(t, src, "eddy_pg", time.Minute)
	sinkDone(t, p, "replica", topics, offsets)
	if got, want := strings.Join(mariaText(t, my, "select group_concat(concat(id, '=', feel) order by id) from public_feelings"), ""), "1=ok,2=meh,3=glad"; got != want {
		t.Fatalf("MariaDB holds %s, want %s", got, want)
	}
	if got := strings.Join(mariaText(t, my, "select column_type from information_schema.columns where table_schema = database() and table_name = 'public_feelings' and column_name = 'feel'"), ""); got != "enum('glad','sad','ok','meh')" {
		t.Fatalf("the column is %s", got)
	}
	noDeadLetters(t, p, "replica.dlq")
}

package integration

import (
	"context"
	"fmt"
	"math/big"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/connect/connecttest"
	"github.com/eddy-cdc/eddy/internal/testdb"
)

// waitChanges waits until the topic holds at least n events and returns
// them; a FAILED connector ends the wait with its error.
func (p *pipeline) waitChanges(t *testing.T, topic string, n int) []change {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, _ := p.w.Status("pg"); st.Tasks[0].State == connect.StateFailed {
			t.Fatalf("the connector failed: %s", st.Tasks[0].Trace)
		}
		if cs := p.readChanges(t, topic); len(cs) >= n {
			return cs
		}
		if time.Now().After(deadline) {
			st, _ := p.w.Status("pg")
			t.Fatalf("fewer than %d events in %s after 30s: %d; the connector: %+v", n, topic, len(p.readChanges(t, topic)), st.Tasks)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Schema changes mid-stream, unchanged TOASTed values and truncate: each
// DDL registers a new schema version before the first event that needs
// it; an update that leaves a TOASTed value alone carries the placeholder;
// a truncate is an event of its own.
func TestPostgresDDLToastTruncate(t *testing.T) {
	dsn, conn := testDB(t)
	exec := func(q string) { t.Helper(); testdb.Exec(t, conn, q) }
	exec(`create table orders (id int primary key, v bigint not null, big text)`)
	p := startPipeline(t, t.TempDir(), pgSourceYAML(dsn, ""))
	const topic = "shop.public.orders"
	time.Sleep(300 * time.Millisecond) // streaming has begun (an empty snapshot)
	exec(`insert into orders values (1, 0, (select string_agg(md5(g::text), '') from generate_series(1, 400) g))`)
	exec(`update orders set v = 1 where id = 1`)
	cs := p.waitChanges(t, topic, 2)
	if big, _ := cs[0].after["big"].(string); len(big) != 12800 {
		t.Fatalf("insert: big has %d characters", len(big))
	}
	if cs[1].op != "u" || cs[1].after["big"] != "__eddy_unavailable_value" {
		t.Fatalf("update of another column: big = %.40v", cs[1].after["big"])
	}

	exec(`alter table orders add column tag text`)
	exec(`insert into orders (id, v, tag) values (2, 0, 'new column')`)
	cs = p.waitChanges(t, topic, 3)
	if cs[2].after["tag"] != "new column" {
		t.Fatalf("after add column: %v", cs[2].after)
	}
	exec(`alter table orders drop column tag`)
	exec(`alter table orders alter column v type numeric(12,2)`)
	exec(`alter table orders rename column big to body`)
	exec(`insert into orders (id, v, body) values (3, 12.5, 'renamed')`)
	cs = p.waitChanges(t, topic, 4)
	after := cs[3].after
	if _, ok := after["tag"]; ok || after["body"] != "renamed" || after["v"].(*big.Rat).Cmp(big.NewRat(25, 2)) != 0 {
		t.Fatalf("after drop, retype and rename: %v", after)
	}
	versions, err := p.reg.Versions(topic+"-value", false)
	if err != nil || len(versions) < 3 {
		t.Fatalf("value schema versions: %v, %v", versions, err)
	}

	exec(`truncate orders`)
	cs = p.waitChanges(t, topic, 5)
	if cs[4].op != "t" {
		t.Fatalf("truncate: %+v", cs[4])
	}
	exec(`delete from orders`) // nothing left: no events
	exec(`insert into orders (id, v) values (9, 0)`)
	exec(`delete from orders where id = 9`)
	cs = p.waitChanges(t, topic, 8)
	if cs[6].op != "d" || cs[6].key != 9 || cs[7].op != "tombstone" {
		t.Fatalf("delete and tombstone: %+v %+v", cs[6], cs[7])
	}
}

// PostgreSQL restarted mid-stream: the task fails, retries with backoff,
// reconnects to its slot and carries on; nothing is lost or doubled.
func TestPostgresRestartMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts PostgreSQL")
	}
	testdb.PostgresRestart(t)
	dsn, conn := testDB(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `create table orders (id int primary key, v bigint not null, note text);
		insert into orders select g, 0, 'initial' from generate_series(1, 1000) g`); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, t.TempDir(), pgSourceYAML(dsn, ""))
	txns := loadAcrossRestart(t, dsn, 1, restartPostgres)
	conn.Close(ctx)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	waitSlot(t, conn, "eddy_pg", time.Minute)
	got, want := replay(t, p.readChanges(t, "shop.public.orders")), tableImage(t, conn, "orders")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the restart the log's image (%d rows) differs from the table (%d rows)", len(got), len(want))
	}
	t.Logf("%d transactions across a PostgreSQL restart", txns)
}

// When the captured tables are idle but the server is not, the slot keeps
// moving with the server's WAL, so it holds back no WAL; a heartbeat query
// makes the connector write some of its own when the whole server is idle.
func TestPostgresIdleSlotAdvances(t *testing.T) {
	dsn, conn := testDB(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `create table orders (id int primary key, v bigint not null, note text);
		create table other (id serial primary key, x text);
		create table heartbeat (id int primary key, at timestamptz); insert into heartbeat values (1, now())`); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, t.TempDir(), pgSourceYAML(dsn, `      heartbeat_interval: 200ms
      heartbeat_query: "update heartbeat set at = now()"
`))
	time.Sleep(500 * time.Millisecond)
	for range 200 {
		if _, err := conn.Exec(ctx, "insert into other (x) select md5(g::text) from generate_series(1, 50) g"); err != nil {
			t.Fatal(err)
		}
	}
	waitSlot(t, conn, "eddy_pg", 30*time.Second) // nothing captured, yet the slot caught up
	var before string
	conn.QueryRow(ctx, "select confirmed_flush_lsn::text from pg_replication_slots where slot_name = 'eddy_pg'").Scan(&before)
	// Only the heartbeat writes now; the slot must still move.
	for deadline := time.Now().Add(10 * time.Second); ; {
		var moved bool
		conn.QueryRow(ctx, "select confirmed_flush_lsn > $1::pg_lsn from pg_replication_slots where slot_name = 'eddy_pg'", before).Scan(&moved)
		if moved {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the heartbeat did not move the slot in 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(p.readChanges(t, "shop.public.orders")) != 0 {
		t.Fatal("events for an idle table")
	}
}

// Setup mistakes stop the connector at once (FAILED, not retried) with an
// error that says what to do.
func TestPostgresPreflightErrors(t *testing.T) {
	dsn, conn := testDB(t)
	ctx := context.Background()
	for _, q := range []string{
		"create table nokey (a int, b text)",
		"create table orders (id int primary key, v bigint not null, note text)",
		"select pg_create_logical_replication_slot('foreign_slot', 'test_decoding')",
		"drop role if exists eddy_norepl",
		"create role eddy_norepl login",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	defer conn.Exec(ctx, "drop role if exists eddy_norepl")
	noRepl := strings.Replace(dsn, "postgres@", "eddy_norepl@", 1)
	for _, c := range []struct {
		name, dsn, config, want string
	}{
		{"no primary key", dsn, "tables: [nokey]",
			"table public.nokey has no primary key and its replica identity is DEFAULT, so updates and deletes cannot be captured: add a primary key, or ALTER TABLE public.nokey REPLICA IDENTITY FULL"},
		{"missing table", dsn, "tables: [public.nothere]", "table public.nothere does not exist"},
		{"foreign slot", dsn, "tables: [orders], slot: foreign_slot",
			"slot foreign_slot uses plugin test_decoding, not pgoutput: it belongs to another tool; choose another slot name"},
		{"no replication", noRepl, "tables: [orders]", "role eddy_norepl lacks REPLICATION: ALTER ROLE eddy_norepl WITH REPLICATION"},
	} {
		p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, %s}
`, c.dsn, c.config))
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, _ := p.w.Status("pg")
			if st.Tasks[0].State == "FAILED" {
				if !strings.Contains(st.Tasks[0].Trace, c.want) {
					t.Errorf("%s: trace %q lacks %q", c.name, st.Tasks[0].Trace, c.want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: not FAILED after 10s: %+v", c.name, st.Tasks[0])
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.stop(t)
	}
	conn.Exec(ctx, "select pg_drop_replication_slot('foreign_slot')")
}

// Before-images: the whole old row under REPLICA IDENTITY FULL, the key
// alone otherwise (and no before-image for an update that keeps the key).
func TestPostgresBeforeImages(t *testing.T) {
	dsn, conn := testDB(t)
	ctx := context.Background()
	for _, q := range []string{
		"create table orders (id int primary key, v bigint not null, note text)",
		"create table items (id int primary key, v bigint not null, note text)",
		"alter table items replica identity full",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders, items], topic_prefix: shop}
`, dsn))
	time.Sleep(300 * time.Millisecond)
	for _, tb := range []string{"orders", "items"} {
		for _, q := range []string{"insert into %s values (1, 0, 'a')", "update %s set v = 1, note = 'b' where id = 1", "delete from %s where id = 1"} {
			if _, err := conn.Exec(ctx, fmt.Sprintf(q, tb)); err != nil {
				t.Fatal(err)
			}
		}
	}
	full := p.waitChanges(t, "shop.public.items", 4)
	if b := full[1].before; b == nil || b["note"] != "a" || connecttest.Int64(b["v"]) != 0 {
		t.Fatalf("FULL update before-image: %v", b)
	}
	if b := full[2].before; b == nil || b["note"] != "b" {
		t.Fatalf("FULL delete before-image: %v", b)
	}
	def := p.waitChanges(t, "shop.public.orders", 4)
	if def[1].before != nil {
		t.Fatalf("DEFAULT update before-image: %v", def[1].before)
	}
	if b := def[2].before; b == nil || connecttest.Int64(b["id"]) != 1 || b["note"] != nil {
		t.Fatalf("DEFAULT delete before-image (the key only): %v", b)
	}
}

// slot_drop_on_delete: deleting a stopped connector's offsets drops its
// slot, so a connector taken out of service holds no WAL.
func TestPostgresSlotDropOnDelete(t *testing.T) {
	dsn, conn := testDB(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "create table orders (id int primary key, v bigint not null, note text)"); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, t.TempDir(), pgSourceYAML(dsn, "      slot_drop_on_delete: true\n"))
	slots := func() int {
		var n int
		conn.QueryRow(ctx, "select count(*) from pg_replication_slots where slot_name = 'eddy_pg'").Scan(&n)
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); slots() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no slot")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := conn.Exec(ctx, "insert into orders values (1, 0, 'x')"); err != nil {
		t.Fatal(err)
	}
	p.waitChanges(t, "shop.public.orders", 1)
	if err := p.w.Stop(ctx, "pg"); err != nil {
		t.Fatal(err)
	}
	if slots() != 1 {
		t.Fatal("stopping dropped the slot")
	}
	if err := p.w.ResetOffsets(ctx, "pg"); err != nil {
		t.Fatal(err)
	}
	if slots() != 0 {
		t.Fatal("the slot survived the offsets' deletion")
	}
}

// restartPostgres restarts the server, and leaves it running after the
// test whatever happened.
func restartPostgres(t *testing.T) {
	t.Helper()
	testdb.PostgresRestart(t) // every other test's connections would die
	t.Cleanup(func() { exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "start").Run() })
	if out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart").CombinedOutput(); err != nil {
		t.Fatalf("restart PostgreSQL: %v\n%s", err, out)
	}
}

// loadAcrossRestart runs mixedLoad on orders for a second, restarts a
// server, runs it a second more (reconnecting while the source is away)
// and returns the transactions committed.
func loadAcrossRestart(t *testing.T, dsn string, seed uint64, restart func(*testing.T)) int {
	t.Helper()
	return loadAcross(t, func(seed uint64, stop <-chan struct{}) int {
		return mixedLoad(dsn, []string{"orders"}, 1500, seed, stop)
	}, seed, restart)
}

// loadAcross runs load (again and again while the server is away) from
// a second before restart until a second after it, and returns the
// transactions it committed.
func loadAcross(t *testing.T, load func(seed uint64, stop <-chan struct{}) int, seed uint64, restart func(*testing.T)) int {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			n += load(seed+uint64(n), stop)
			time.Sleep(100 * time.Millisecond) // the server is away: try again
		}
	}()
	time.Sleep(time.Second)
	restart(t)
	time.Sleep(time.Second)
	close(stop)
	return <-done
}

// Offsets reset with the slot kept (the default) and rows deleted before
// the new snapshot: the snapshot starts with a truncate marker, so the
// log's image drops the rows the first snapshot read and the table no
// longer has. The same holds after a crash before the first position was
// stored: the slot exists, nothing is stored, the log holds reads.
func TestPostgresResnapshotWithSlotKeptRetractsDeletedRows(t *testing.T) {
	dsn, conn := testDB(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "create table orders (id int primary key, v bigint not null, note text); insert into orders select g, 0, 'x' from generate_series(1, 10) g"); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, t.TempDir(), pgSourceYAML(dsn, ""))
	p.waitChanges(t, "shop.public.orders", 10)
	if err := p.w.Stop(ctx, "pg"); err != nil {
		t.Fatal(err)
	}
	if err := p.w.ResetOffsets(ctx, "pg"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "delete from orders where id <= 3"); err != nil {
		t.Fatal(err)
	}
	if err := p.w.Resume("pg"); err != nil {
		t.Fatal(err)
	}
	want := tableImage(t, conn, "orders")
	var got map[int64]int64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		changes := p.readChanges(t, "shop.public.orders")
		if got = replay(t, changes); fmt.Sprint(got) == fmt.Sprint(want) && len(changes) > 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log's image after the new snapshot holds %d rows, the table %d: %s", len(got), len(want), imageDiff(got, want, changes))
		}
	}
}

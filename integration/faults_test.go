package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddy-cdc/eddy/admin"
	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/testdb"
)

// A target made read-only for a while (as after a failover) is the
// target's fault, not the records': with errors.tolerance all, nothing
// goes to the dead-letter topic, the status says the sink is retrying and
// why, and once the target is writable the replica equals the source.
func TestReadOnlyTargetDeadLettersNothing(t *testing.T) {
	srcDSN, src := testDB(t)
	dstDSN, dst := testDB(t)
	ctx := context.Background()
	if _, err := src.Exec(ctx, `create table orders (id int primary key, v bigint not null, note text);
		create table tags (id int, k text, primary key (id, k));
		insert into orders select g, 0, 'initial' from generate_series(1, 300) g`); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders, tags], topic_prefix: shop}
  - name: replica
    plugin: postgres-sink
    topics: [shop.public.orders, shop.public.tags]
    errors: {tolerance: all, dead_letter_topic: replica.dlq, retry_max_delay: 500ms}
    config: {dsn: %q}
`, srcDSN, dstDSN))
	topics := []string{"shop.public.orders", "shop.public.tags"}
	offsets := pgOffsets(dst, "replica")
	p.waitChanges(t, "shop.public.orders", 300)
	sinkDone(t, p, "replica", topics, offsets)

	// Read-only, and the sink's sessions dropped so that it meets it.
	var db string
	dst.QueryRow(ctx, "select current_database()").Scan(&db)
	exec := func(q string) { t.Helper(); testdb.Exec(t, dst, q) }
	exec(fmt.Sprintf("alter database %s set default_transaction_read_only = on", db))
	exec(fmt.Sprintf("select pg_terminate_backend(pid) from pg_stat_activity where datname = '%s' and pid <> pg_backend_pid()", db))
	for i := range 400 {
		if _, err := src.Exec(ctx, "update orders set v = v + 1 where id = $1", 1+i%300); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Exec(ctx, "insert into tags values ($1, $2)", i%7, fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	var trace string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, _ := p.w.Status("replica")
		if st.Tasks[0].State != connect.StateRunning {
			t.Fatalf("the sink is %s: %s", st.Tasks[0].State, st.Tasks[0].Trace)
		}
		if trace = st.Tasks[0].Trace; strings.Contains(trace, "retrying") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the status never said the sink was retrying: %+v", st.Tasks[0])
		}
	}
	if !strings.Contains(trace, "read-only transaction") {
		t.Fatalf("the status does not say why: %s", trace)
	}
	time.Sleep(3 * time.Second) // retried for a while
	// Writable again: the sink's next session sees it.
	exec(fmt.Sprintf("alter database %s set default_transaction_read_only = off", db))
	waitSlot(t, src, "eddy_pg", time.Minute)
	sinkDone(t, p, "replica", topics, offsets)
	for _, tb := range []string{"orders", "tags"} {
		q := "select t::text from %s t order by 1"
		if a, b := tableRows(t, src, fmt.Sprintf(q, tb)), tableRows(t, dst, fmt.Sprintf(q, "public_"+tb)); !slices.Equal(a, b) {
			d, _ := firstDiff(a, b)
			t.Fatalf("%s: %s", tb, d)
		}
	}
	noDeadLetters(t, p, "replica.dlq")
	if st, _ := p.w.Status("replica"); st.Tasks[0].Trace != "" {
		t.Fatalf("the status still says %q", st.Tasks[0].Trace)
	}
}

// The same for MariaDB: a server set read_only (1290) while the sink's
// user has no right to write past it.
func TestReadOnlyMariaDBDeadLettersNothing(t *testing.T) {
	srcDSN, src := testDB(t)
	_, my := mariaDB(t)
	ctx := context.Background()
	res, _ := my.Execute("select database()")
	db, _ := res.GetString(0, 0)
	user := "eddy_" + db[len(db)-6:]
	for _, q := range []string{
		"create user '" + user + "'@'127.0.0.1' identified by 'pw'",
		"grant all on `" + db + "`.* to '" + user + "'@'127.0.0.1'",
	} {
		if _, err := my.Execute(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		my.Execute("set global read_only = 0")
		my.Execute("drop user '" + user + "'@'127.0.0.1'")
	})
	if _, err := src.Exec(ctx, `create table orders (id int primary key, v bigint not null, note text);
		insert into orders select g, 0, 'initial' from generate_series(1, 200) g`); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders], topic_prefix: shop}
  - name: replica
    plugin: mysql-sink
    topics: [shop.public.orders]
    errors: {tolerance: all, dead_letter_topic: replica.dlq, retry_max_delay: 500ms}
    config: {dsn: "mysql://%s:pw@%s/%s"}
`, srcDSN, user, mariaAddr, db))
	offsets := mariaOffsets(my, "replica")
	p.waitChanges(t, "shop.public.orders", 200)
	sinkDone(t, p, "replica", []string{"shop.public.orders"}, offsets)
	if _, err := my.Execute("set global read_only = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Exec(ctx, "update orders set v = v + 1"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, _ := p.w.Status("replica")
		if strings.Contains(st.Tasks[0].Trace, "retrying") {
			if !strings.Contains(st.Tasks[0].Trace, "1290") {
				t.Fatalf("the status does not say why: %s", st.Tasks[0].Trace)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the status never said the sink was retrying: %+v", st.Tasks[0])
		}
	}
	time.Sleep(2 * time.Second)
	if _, err := my.Execute("set global read_only = 0"); err != nil {
		t.Fatal(err)
	}
	sinkDone(t, p, "replica", []string{"shop.public.orders"}, offsets)
	if a, b := tableRows(t, src, "select id, v, note from orders order by id"), mariaRows(t, my, "select id, v, note from public_orders order by id"); fmt.Sprint(a) != fmt.Sprint(b) {
		d, _ := firstDiff(a, b)
		t.Fatalf("MariaDB: %s", d)
	}
	noDeadLetters(t, p, "replica.dlq")
}

// A slot the server invalidated (it retained more WAL than
// max_slot_wal_keep_size) stops the connector with the choice, since the
// changes it held are gone; under snapshot: when_needed the connector
// takes a new snapshot instead, and the log's image equals the table.
func TestPostgresInvalidatedSlot(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MB of WAL")
	}
	dsn, conn := testDB(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `create table orders (id int primary key, v bigint not null, note text);
		insert into orders select g, 0, 'initial' from generate_series(1, 100) g`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := startPipeline(t, dir, pgSourceYAML(dsn, ""))
	p.waitChanges(t, "shop.public.orders", 100)
	waitSlot(t, conn, "eddy_pg", 30*time.Second)
	p.stop(t)

	// The server may keep little WAL for slots; then it writes a lot.
	for _, q := range []string{"alter system set max_slot_wal_keep_size = '1MB'", "select pg_reload_conf()"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		conn.Exec(ctx, "alter system reset max_slot_wal_keep_size")
		conn.Exec(ctx, "select pg_reload_conf()")
	})
	if _, err := conn.Exec(ctx, "update orders set v = v + 1 where id = 1"); err != nil { // a change the slot held
		t.Fatal(err)
	}
	var status string
	for range 8 {
		conn.Exec(ctx, "create temp table if not exists filler (s text); insert into filler select repeat(md5(g::text), 10) from generate_series(1, 20000) g")
		conn.Exec(ctx, "select pg_switch_wal()")
		conn.Exec(ctx, "checkpoint")
		conn.QueryRow(ctx, "select coalesce(wal_status, '') from pg_replication_slots where slot_name = 'eddy_pg'").Scan(&status)
		if status == "lost" {
			break
		}
	}
	if status != "lost" {
		t.Fatalf("the slot is %q after 8 WAL segments", status)
	}

	p = startPipeline(t, dir, pgSourceYAML(dsn, ""))
	waitFailed(t, p, "pg", "slot eddy_pg was invalidated by the server", "snapshot: when_needed")
	p.stop(t)

	p = startPipeline(t, dir, pgSourceYAML(dsn, "      snapshot: when_needed"))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got, want := replay(t, p.readChanges(t, "shop.public.orders")), tableImage(t, conn, "orders"); fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			st, _ := p.w.Status("pg")
			t.Fatalf("the log's image never equalled the table: %+v", st.Tasks)
		}
	}
}

// A connector removed from the configuration leaves its slot, which holds
// WAL while the database is written: the remaining connector reports it
// as orphaned in eddy_source_retained_bytes (and in a warning), and under
// orphan_slots: drop drops it once it has stayed inactive.
func TestPostgresOrphanedSlot(t *testing.T) {
	dsn, conn := testDB(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `create table orders (id int primary key, v bigint not null, note text);
		create table outbox (id int primary key, payload text)`); err != nil {
		t.Fatal(err)
	}
	two := fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %[1]q, tables: [orders], topic_prefix: shop, slot_check_interval: 2s}
  - name: ob
    plugin: postgres-source
    config: {dsn: %[1]q, tables: [outbox], topic_prefix: ob}
`, dsn)
	dir := t.TempDir()
	p := startPipeline(t, dir, two)
	waitSlot(t, conn, "eddy_pg", 30*time.Second)
	waitSlot(t, conn, "eddy_ob", 30*time.Second)
	p.stop(t)

	one := func(extra string) string {
		return fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders], topic_prefix: shop, slot_check_interval: 2s%s}
`, dsn, extra)
	}
	p = startPipeline(t, dir, one(""))
	if _, err := conn.Exec(ctx, "insert into orders select g, 0, repeat('x', 500) from generate_series(1, 2000) g"); err != nil {
		t.Fatal(err)
	}
	retained := func() (float64, bool) {
		mfs, err := prometheusGather(p)
		if err != nil {
			t.Fatal(err)
		}
		v, ok := mfs["eddy_source_retained_bytes{connector=pg,name=eddy_ob,orphaned=true}"]
		return v, ok
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if n, ok := retained(); ok && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("eddy_source_retained_bytes never showed slot eddy_ob as orphaned")
		}
	}
	if n, ok := func() (float64, bool) {
		mfs, _ := prometheusGather(p)
		v, ok := mfs["eddy_source_retained_bytes{connector=pg,name=eddy_pg,orphaned=false}"]
		return v, ok
	}(); !ok {
		t.Fatalf("the connector's own slot is not reported (%v)", n)
	}
	var slots int
	conn.QueryRow(ctx, "select count(*) from pg_replication_slots where slot_name = 'eddy_ob'").Scan(&slots)
	if slots != 1 {
		t.Fatal("orphan_slots: warn dropped the slot")
	}
	p.stop(t)

	p = startPipeline(t, dir, one(", orphan_slots: drop"))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		conn.QueryRow(ctx, "select count(*) from pg_replication_slots where slot_name = 'eddy_ob'").Scan(&slots)
		if slots == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("orphan_slots: drop left the orphaned slot")
		}
	}
	conn.QueryRow(ctx, "select count(*) from pg_replication_slots where slot_name = 'eddy_pg'").Scan(&slots)
	if slots != 1 {
		t.Fatal("the connector's own slot went too")
	}
}

// prometheusGather reads the worker's series as name{label=value,...} ->
// value.
func prometheusGather(p *pipeline) (map[string]float64, error) {
	reg := prometheus.NewRegistry()
	for _, c := range p.w.Metrics().Collectors() {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out, nil
}

// Deleting a source connector through the admin API, as `eddy connectors
// delete` does: without a choice the API refuses, naming the slot and the
// WAL it retains; release=false removes the connector and keeps the slot;
// release=true drops the slot with it.
func TestPostgresDeleteConnectorSlot(t *testing.T) {
	dsn, conn := testDB(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `create table orders (id int primary key, note text);
		create table outbox (id int primary key, payload text)`); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %[1]q, tables: [orders], topic_prefix: shop}
  - name: ob
    plugin: postgres-source
    config: {dsn: %[1]q, tables: [outbox], topic_prefix: ob}
`, dsn))
	waitSlot(t, conn, "eddy_pg", 30*time.Second)
	waitSlot(t, conn, "eddy_ob", 30*time.Second)
	cat, err := connect.BuiltinCatalog()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(admin.NewServer(admin.NewLocal(p.log), nil, admin.WithWorker(p.w, cat)))
	defer srv.Close()
	cl, err := admin.NewClient(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	slotExists := func(name string) bool {
		var n int
		if err := conn.QueryRow(ctx, "select count(*) from pg_replication_slots where slot_name = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	_, err = cl.DeleteConnector(ctx, "ob", nil)
	if !errors.Is(err, connect.ErrHoldsUpstream) || !strings.Contains(err.Error(), "replication slot eddy_ob") || !strings.Contains(err.Error(), "release=true") {
		t.Fatalf("delete without a choice: %v, want a refusal naming the slot and the choices", err)
	}
	if st, err := p.w.Status("ob"); err != nil || st.Tasks[0].State != connect.StateRunning {
		t.Fatalf("the refused delete touched the connector: %+v %v", st, err)
	}

	keep := false
	res, err := cl.DeleteConnector(ctx, "ob", &keep)
	if err != nil {
		t.Fatalf("delete, keeping the slot: %v", err)
	}
	if len(res.Held) != 1 || res.Held[0].Name != "replication slot eddy_ob" || res.Held[0].Released || !strings.Contains(res.Note, "eddy.yaml") {
		t.Fatalf("delete result %+v", res)
	}
	if _, err := p.w.Status("ob"); !errors.Is(err, connect.ErrUnknownConnector) {
		t.Fatalf("status of the deleted connector: %v", err)
	}
	if !slotExists("eddy_ob") {
		t.Fatal("release=false dropped the slot")
	}

	release := true
	if res, err = cl.DeleteConnector(ctx, "pg", &release); err != nil {
		t.Fatalf("delete, releasing the slot: %v", err)
	}
	if len(res.Held) != 1 || !res.Held[0].Released {
		t.Fatalf("delete result %+v", res)
	}
	if slotExists("eddy_pg") {
		t.Fatal("release=true left the slot")
	}
	if _, err := cl.DeleteConnector(ctx, "pg", &release); !errors.Is(err, connect.ErrUnknownConnector) {
		t.Fatalf("deleting twice: %v, want unknown connector", err)
	}
	conn.Exec(ctx, "select pg_drop_replication_slot('eddy_ob')")
}

// Each kind of trouble a PostgreSQL target has, made real one at a time
// under a running pipeline (errors.tolerance all): a revoked privilege
// (42501), a lock held past the sink's lock_timeout (55P03), the role's
// connection limit reached (53300) and the sink's sessions terminated
// (57P01) are the target's fault: the status says the sink is retrying
// and why, nothing is dead-lettered, and once healed the replica equals
// the source. A row that breaks a CHECK constraint of the replica (23514)
// is the record's fault: it alone goes to the dead-letter topic.
func TestPostgresSinkFaultPaths(t *testing.T) {
	srcDSN, src := shapesDB(t) // tables of every shape beside orders: wide, narrow, a composite key, empty
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, postgresDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	role := fmt.Sprintf("eddy_sink_%d", os.Getpid())
	admin.Exec(ctx, "drop role if exists "+role)
	if _, err := admin.Exec(ctx, "create role "+role+" login"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), postgresDSN)
		if err == nil {
			c.Exec(context.Background(), "drop role if exists "+role)
			c.Close(context.Background())
		}
	})
	_, dst := testDB(t) // dropped before the role
	var db string
	dst.QueryRow(ctx, "select current_database()").Scan(&db)
	exec := func(c *pgx.Conn, q string) { t.Helper(); testdb.Exec(t, c, q) }
	exec(dst, "alter database "+db+" owner to "+role)
	exec(src, `create table orders (id int primary key, v bigint not null, note text);
		insert into orders select g, 0, 'initial' from generate_series(1, 200) g`)
	sinkDSN := fmt.Sprintf("postgres://%s@127.0.0.1:5432/%s?sslmode=disable&options=-c%%20lock_timeout%%3D300", role, db)
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders, narrow, wide, 'public."order lines"', empty_t], topic_prefix: shop}
  - name: replica
    plugin: postgres-sink
    topics: [shop.public.orders, shop.public.narrow, shop.public.wide, shop.public.order_lines, shop.public.empty_t]
    errors: {tolerance: all, dead_letter_topic: replica.dlq, retry_max_delay: 300ms, retry_timeout: 5m}
    config: {dsn: %q}
`, srcDSN, sinkDSN))
	topics := []string{"shop.public.orders", "shop.public.narrow", "shop.public.wide", "shop.public.order_lines", "shop.public.empty_t"}
	offsets := pgOffsets(dst, "replica")
	p.waitChanges(t, "shop.public.orders", 200)
	sinkDone(t, p, "replica", topics, offsets)
	terminate := fmt.Sprintf("select pg_terminate_backend(pid) from pg_stat_activity where usename = '%s'", role)
	same := func() {
		t.Helper()
		for src2dst, tb := range map[string]string{"orders": "public_orders", "narrow": "public_narrow", "wide": "public_wide",
			`"order lines"`: `"public_order lines"`, "empty_t": "public_empty_t"} {
			q := "select t::text from %s t order by 1" // whole rows, every type
			var b []string
			var made bool // an empty table's target is never made
			dst.QueryRow(ctx, "select to_regclass($1) is not null", tb).Scan(&made)
			if made {
				b = tableRows(t, dst, fmt.Sprintf(q, tb))
			}
			if a := tableRows(t, src, fmt.Sprintf(q, src2dst)); !slices.Equal(a, b) {
				d, _ := firstDiff(a, b)
				t.Fatalf("replica %s: %s", tb, d)
			}
		}
	}

	for _, tc := range []struct {
		name  string
		want  string // in the status while the sink retries
		fault func()
		heal  func()
	}{
		{"privilege revoked 42501", "42501",
			func() { exec(dst, "revoke insert, update on public_orders from "+role) },
			func() { exec(dst, "grant insert, update on public_orders to "+role) }},
		{"lock timeout 55P03", "55P03", nil, nil}, // a transaction of its own, below
		{"connection limit 53300", "53300",
			func() { exec(admin, "alter role "+role+" connection limit 0"); exec(admin, terminate) },
			func() { exec(admin, "alter role "+role+" connection limit -1") }},
		{"sessions terminated 57P01", "57P01",
			func() { exec(admin, terminate) }, func() {}},
	} {
		var locker pgx.Tx
		brk, heal := tc.fault, tc.heal
		if brk == nil {
			brk = func() {
				var err error
				if locker, err = dst.Begin(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := locker.Exec(ctx, "lock table public_orders in access exclusive mode"); err != nil {
					t.Fatal(err)
				}
			}
			heal = func() { locker.Rollback(ctx) }
		}
		brk()
		exec(src, "update orders set v = v + 1, note = '"+tc.name+"'")
		exec(src, `update narrow set v = v + 1 where id % 5 = 0; update wide set n = n + 1, vc = 'fault ✓' where id % 7 = 0;
			update "order lines" set qty = qty + 1, note = null where order_id % 4 = 0`)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			st, _ := p.w.Status("replica")
			if st.Tasks[0].State != connect.StateRunning {
				t.Fatalf("%s: the sink is %s: %s", tc.name, st.Tasks[0].State, st.Tasks[0].Trace)
			}
			if trace := st.Tasks[0].Trace; strings.Contains(trace, "retrying") && strings.Contains(trace, tc.want) {
				t.Logf("%s: %s", tc.name, trace)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the status never said the sink was retrying on %s: %+v", tc.name, tc.want, st.Tasks[0])
			}
		}
		time.Sleep(time.Second) // retried for a while
		heal()
		sinkDone(t, p, "replica", topics, offsets)
		same()
		noDeadLetters(t, p, "replica.dlq")
	}

	// The record's own fault: the replica refuses one value.
	exec(dst, "alter table public_orders add constraint small_v check (v < 1000)")
	exec(src, "update orders set v = 5000 where id = 7; update orders set v = v + 1 where id <> 7")
	p.waitChanges(t, "shop.public.orders", 200+4*200+200)
	sinkDone(t, p, "replica", topics, offsets)
	dlq, err := p.log.Topic("replica.dlq")
	if err != nil {
		t.Fatalf("the refused record was not dead-lettered: %v", err)
	}
	part, _ := dlq.Partition(0)
	recs := readRecords(t, part)
	if len(recs) != 1 {
		t.Fatalf("%d records dead-lettered, want the one the CHECK refused", len(recs))
	}
	var why string
	for _, h := range recs[0].Headers {
		why += h.Key + "=" + string(h.Value) + " "
	}
	if !strings.Contains(why, "23514") && !strings.Contains(why, "small_v") {
		t.Fatalf("the dead letter does not say why: %s", why)
	}
}

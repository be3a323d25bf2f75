package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/connect/connecttest"
	"github.com/eddy-cdc/eddy/internal/testdb"
)

// shapesDDL is a schema of the shapes users have, for one connector: a
// narrow table, a wide one of many types with values stored out of line
// (TOAST), a composite key under a name that needs quoting, a table with
// no rows, a mixed-case name, an old-style inheritance parent whose
// children have no primary key, and a declaratively partitioned table.
const shapesDDL = `
create type mood as enum ('sad', 'ok', 'happy');
create domain posint as integer check (value > 0);
create table narrow (id int primary key, v int);
create table wide (
	id bigint primary key, n int not null default 0, s smallint, amount numeric(20,5), ratio numeric, r real, d double precision,
	c5 char(5), vc varchar(20), body text, doc jsonb, js json, blob bytea, day date, at timestamp, atz timestamptz, tod time,
	todz timetz, span interval, u uuid, ip inet, mac macaddr, ints integer[], words text[], feel mood, pos posint, cash money,
	bits bit(4), rng int4range, pt point, x xml, flag boolean);
create table "order lines" (order_id int, line_no smallint, qty int not null, note text, primary key (order_id, line_no));
create table empty_t (id int primary key, v text);
create table "OrderItems" (id int primary key, qty int);
create table payment (payment_id int primary key, amount numeric(5,2), paid date);
create table payment_p2007_01 (check (paid < '2007-02-01')) inherits (payment);
create table payment_p2007_02 (check (paid >= '2007-02-01')) inherits (payment);
create table m (id int, d date, v int, primary key (id, d)) partition by range (d);
create table m_2025 partition of m for values from ('2025-01-01') to ('2026-01-01');
create table m_2026 partition of m for values from ('2026-01-01') to ('2027-01-01');
`

// shapesRows fills the shapes' tables; big is a value TOAST keeps out of
// line (12,800 characters of md5 text compress poorly).
const shapesRows = `
insert into narrow select g, g from generate_series(1, 300) g;
insert into wide select g, 0, g, g * 1.5, g / 7.0, g / 3.0, g / 9.0, 'ab', 'vc' || g,
	(select string_agg(md5((g * 1000 + h)::text), '') from generate_series(1, 400) h),
	jsonb_build_object('k', g, 'big', (select string_agg(md5((g * 7 + h)::text), '') from generate_series(1, 300) h)),
	'{"a": [1, 2]}', (select string_agg(decode(md5((g + h)::text), 'hex'), '') from generate_series(1, 600) h),
	'2024-03-15'::date + g, '2024-03-15 10:11:12.5'::timestamp + g * interval '1 hour', '2024-03-15 10:11:12.123456+02'::timestamptz,
	'13:14:15', '13:14:15+05:30', '1 year 2 mons 3 days 04:05:06', gen_random_uuid(), '10.0.0.1', '08:00:2b:01:02:03',
	array[g, null, 3], array['a b', 'ü', null], 'happy', g, 12.34, B'1010', int4range(g, g + 10), point(g, -g),
	'<a>ü</a>', g % 2 = 0
	from generate_series(1, 40) g;
insert into wide (id) values (1000);
insert into "order lines" select o, l, o * l, case when l = 2 then null else 'ünïcode ' || o end from generate_series(1, 50) o, generate_series(1, 3) l;
insert into "OrderItems" values (1, 1), (2, 2);
insert into payment values (1, 1.00, '2007-01-01');
insert into payment_p2007_01 values (2, 2.00, '2007-01-15'), (3, 3.00, '2007-01-20');
insert into payment_p2007_02 values (4, 4.00, '2007-02-15');
insert into m select g, '2025-01-01'::date + (g % 700), g from generate_series(1, 1000) g;
`

// shapesDB is a test database with the shapes' tables and rows.
func shapesDB(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	dsn, conn := testDB(t)
	for _, q := range []string{shapesDDL, shapesRows} {
		if _, err := conn.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	return dsn, conn
}

// The tables one connector captures come in every shape: the snapshot
// reads all of them (tables of different widths once made it restart
// forever), the application's own writes keep working (an inheritance
// child without a replica identity once made its deletes fail), the
// changes of a partitioned table arrive under its name (they once went
// nowhere), names that need quoting are accepted and become valid topic
// names, and database and role settings that change how values print
// do not break capture.
func TestPostgresSourceShapes(t *testing.T) {
	dsn, conn := testDB(t)
	ctx := context.Background()
	exec := func(q string, args ...any) { t.Helper(); testdb.Exec(t, conn, q, args...) }
	exec(shapesDDL)
	exec(shapesRows)
	var db string
	conn.QueryRow(ctx, "select current_database()").Scan(&db)
	// Settings that change how values print, at the database and the role.
	exec(fmt.Sprintf(`alter database %s set datestyle = 'SQL, DMY'; alter database %s set timezone = 'America/New_York';
		alter role postgres in database %s set intervalstyle = 'sql_standard'; alter role postgres in database %s set extra_float_digits = 0;
		alter role postgres in database %s set bytea_output = 'escape'`, db, db, db, db, db))

	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config:
      dsn: %q
      tables: [narrow, wide, 'public."order lines"', empty_t, 'public."OrderItems"', payment, m]
      topic_prefix: shop
      snapshot_chunk_rows: 64
      batch_size: 100
`, dsn))
	want := map[string]int{"narrow": 300, "wide": 41, "order_lines": 150, "OrderItems": 2, "payment": 1, "m": 1000}
	for tb, n := range want {
		p.waitChanges(t, "shop.public."+tb, n)
	}
	waitSlot(t, conn, "eddy_pg", 30*time.Second)
	st, _ := p.w.Status("pg")
	if st.SourceLagBytes == nil || *st.SourceLagBytes > 1<<20 {
		t.Fatalf("right after the snapshot the source lag is %v bytes, want a little", st.SourceLagBytes)
	}

	// The application's own writes, with the connector streaming: a
	// fresh connection, so the database's settings apply to it.
	app, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	var style string
	app.QueryRow(ctx, "show datestyle").Scan(&style)
	if style != "SQL, DMY" {
		t.Fatalf("the database's datestyle is %q", style)
	}
	for _, q := range []string{
		"delete from payment where payment_id in (1, 2)",
		"update payment set amount = amount + 1 where payment_id = 3",
		"insert into payment values (5, 5.00, '2007-03-01')",
		"update m set v = v + 1 where id <= 100",
		"update m set d = '2026-06-01' where id = 7", // moves to m_2026
		"delete from m where id = 8",
		"insert into m values (5000, '2026-02-02', 1)",
		"update wide set n = n + 1 where id <= 10",
		"insert into empty_t values (1, 'first')",
		`update "order lines" set qty = qty + 1 where order_id = 1`,
	} {
		if _, err := app.Exec(ctx, q); err != nil {
			t.Fatalf("the application's %q failed: %v", q, err)
		}
	}
	// payment: its own row's delete, update-free; the children's rows are
	// theirs, not payment's.
	pay := p.waitChanges(t, "shop.public.payment", 4) // r 1, d 1, tombstone, c 5
	if len(pay) != 4 || pay[1].op != "d" || pay[3].op != "c" || connecttest.Int64(pay[3].after["payment_id"]) != 5 {
		t.Fatalf("payment's events: %+v", pay)
	}
	// m: its changes under the root's name, a row moved between
	// partitions among them; the log's image equals the table.
	ms := p.waitChanges(t, "shop.public.m", 1000+100)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		rows := tableRows(t, conn, "select concat_ws('|', id, d, v) from m")
		slices.Sort(rows)
		got, want := imageOf(ms, 2, "id", "d", "v"), strings.Join(rows, "\n")
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("m: the log's image differs from the table:\n%.300s\n%.300s", got, want)
		}
		ms = p.readChanges(t, "shop.public.m")
	}
	p.waitChanges(t, "shop.public.empty_t", 1)
	ws := p.waitChanges(t, "shop.public.wide", 51)
	for _, c := range ws[:41] {
		if c.op != "r" {
			t.Fatalf("wide: %s before the snapshot ended", c.op)
		}
	}
	var day, at, span, blob string
	var r float32
	for _, c := range ws {
		if connecttest.Int64(c.after["id"]) == 1 && c.op == "r" {
			day, at, span = fmt.Sprint(c.after["day"]), fmt.Sprint(c.after["at"]), fmt.Sprint(c.after["span"])
			blob, r = fmt.Sprintf("%x", c.after["blob"])[:8], c.after["r"].(float32)
		}
	}
	if !strings.HasPrefix(day, "2024-03-16 ") || !strings.HasPrefix(at, "2024-03-15 11:11:12.5 ") || span != "1 year 2 mons 3 days 04:05:06" || r != float32(1)/3 {
		t.Fatalf("wide row 1 as read under the database's settings: day %s, at %s, span %s, r %v", day, at, span, r)
	}
	var wantBlob string
	conn.QueryRow(ctx, "select substr(encode(blob, 'hex'), 1, 8) from wide where id = 1").Scan(&wantBlob)
	if blob != wantBlob {
		t.Fatalf("wide row 1's bytea begins %s, want %s", blob, wantBlob)
	}
	if st, _ := p.w.Status("pg"); st.Tasks[0].State != connect.StateRunning {
		t.Fatalf("the connector is %s: %s", st.Tasks[0].State, st.Tasks[0].Trace)
	}

	// The publication publishes exactly the captured tables: no child, no
	// partition on its own.
	rows, _ := conn.Query(ctx, "select relid::regclass::text from pg_publication p, pg_get_publication_tables(p.pubname) where p.pubname = 'eddy_pg' order by 1")
	pub, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	if got := strings.Join(pub, ","); got != `"OrderItems","order lines",empty_t,m,narrow,payment,wide` {
		t.Fatalf("the publication publishes %s", got)
	}

	// The configuration drops tables: the publication follows.
	p.stop(t)
	p = startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [narrow, m], topic_prefix: shop, snapshot: never}
`, dsn))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rows, _ := conn.Query(ctx, "select relid::regclass::text from pg_publication p, pg_get_publication_tables(p.pubname) where p.pubname = 'eddy_pg' order by 1")
		pub, _ = pgx.CollectRows(rows, pgx.RowTo[string])
		if strings.Join(pub, ",") == "m,narrow" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the tables were dropped from the configuration the publication publishes %v", pub)
		}
	}
	// The dropped tables' children and partitions are writable as before.
	if _, err := app.Exec(ctx, "delete from payment_p2007_01; update m_2025 set v = 0 where id = 9"); err != nil {
		t.Fatal(err)
	}
}

// A partitioned table whose partition has no replica identity is refused
// before anything is created: publishing the partition would make the
// application's updates and deletes of it fail.
func TestPostgresPartitionWithoutIdentityRefused(t *testing.T) {
	dsn, conn := testDB(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `create table ev (id int, d date) partition by range (d);
		create table ev_1 partition of ev for values from ('2025-01-01') to ('2026-01-01');
		create table ev_2 partition of ev for values from ('2026-01-01') to ('2027-01-01');
		alter table ev replica identity full; alter table ev_1 replica identity full`); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [ev], topic_prefix: shop}
`, dsn))
	waitFailed(t, p, "pg", "partition public.ev_2 of public.ev has no primary key and its replica identity is DEFAULT", "ALTER TABLE public.ev_2 REPLICA IDENTITY FULL")
	var pubs, slots int
	conn.QueryRow(ctx, "select (select count(*) from pg_publication), (select count(*) from pg_replication_slots where database = current_database())").Scan(&pubs, &slots)
	if pubs != 0 || slots != 0 {
		t.Fatalf("%d publications and %d slots created", pubs, slots)
	}
	if _, err := conn.Exec(ctx, "insert into ev values (1, '2026-05-05'); delete from ev"); err != nil {
		t.Fatal(err)
	}
}

// imageOf replays a table's changes into its rows, each the given columns
// joined by |, sorted, one a line; the first keys columns are the key. A
// date reads as PostgreSQL's ISO text.
func imageOf(changes []change, keys int, cols ...string) string {
	row := func(m map[string]any, cols []string) string {
		parts := make([]string, len(cols))
		for i, c := range cols {
			switch v := m[c].(type) {
			case time.Time:
				parts[i] = v.Format("2006-01-02")
			default:
				parts[i] = fmt.Sprint(v)
			}
		}
		return strings.Join(parts, "|")
	}
	state := map[string]string{}
	for _, c := range changes {
		switch c.op {
		case "t":
			clear(state)
		case "d":
			delete(state, row(c.before, cols[:keys]))
		case "u", "r", "c":
			if c.before != nil {
				delete(state, row(c.before, cols[:keys]))
			}
			state[row(c.after, cols[:keys])] = row(c.after, cols)
		}
	}
	out := make([]string, 0, len(state))
	for _, r := range state {
		out = append(out, r)
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// A PostgreSQL replica keeps every column's type and value: the wide
// table's columns, of 32 types, read the same as text (col::text) and
// have the same format_type in the target, for rows of the snapshot and of
// the stream.
func TestPostgresReplicaKeepsTypes(t *testing.T) {
	srcDSN, src := shapesDB(t)
	dstDSN, dst := testDB(t)
	ctx := context.Background()
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [wide, narrow, 'public."order lines"', empty_t], topic_prefix: shop}
  - name: replica
    plugin: postgres-sink
    topics: [shop.public.wide, shop.public.narrow, shop.public.order_lines, shop.public.empty_t]
    config: {dsn: %q}
`, srcDSN, dstDSN))
	topics := []string{"shop.public.wide", "shop.public.narrow", "shop.public.order_lines", "shop.public.empty_t"}
	offsets := pgOffsets(dst, "replica")
	p.waitChanges(t, "shop.public.wide", 41)
	waitSlot(t, src, "eddy_pg", time.Minute)
	sinkDone(t, p, "replica", topics, offsets)
	// The stream: new rows of every type, and updates.
	if _, err := src.Exec(ctx, strings.ReplaceAll(strings.SplitN(shapesRows, "insert into wide (id)", 2)[0][strings.Index(shapesRows, "insert into wide select"):],
		"generate_series(1, 40) g", "generate_series(2001, 2040) g")); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Exec(ctx, `update wide set n = n + 1, vc = 'changed', ints = array[7], feel = 'sad' where id % 3 = 0`); err != nil {
		t.Fatal(err)
	}
	waitSlot(t, src, "eddy_pg", time.Minute)
	sinkDone(t, p, "replica", topics, offsets)

	rows, err := src.Query(ctx, `select attname, format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'wide'::regclass and attnum > 0 and not attisdropped order by attnum`)
	if err != nil {
		t.Fatal(err)
	}
	type col struct{ name, typ string }
	var cols []col
	for rows.Next() {
		var c col
		rows.Scan(&c.name, &c.typ)
		cols = append(cols, c)
	}
	rows.Close()
	var typesKept, valuesKept int
	var lost []string
	for _, c := range cols {
		var dstType string
		dst.QueryRow(ctx, `select format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'public_wide'::regclass and attname = $1`, c.name).Scan(&dstType)
		if dstType == c.typ {
			typesKept++
		} else {
			lost = append(lost, fmt.Sprintf("%s: type %s became %s", c.name, c.typ, dstType))
		}
		q := fmt.Sprintf("select id::text || ' ' || coalesce(%s::text, 'NULL') from %%s order by id", pgx.Identifier{c.name}.Sanitize())
		a, b := tableRows(t, src, fmt.Sprintf(q, "wide")), tableRows(t, dst, fmt.Sprintf(q, "public_wide"))
		if slices.Equal(a, b) && len(a) == 81 {
			valuesKept++
		} else {
			d, _ := firstDiff(a, b)
			lost = append(lost, fmt.Sprintf("%s: %s", c.name, d))
		}
	}
	t.Logf("of %d typed columns, %d keep their type and %d their values", len(cols), typesKept, valuesKept)
	if len(lost) > 0 {
		t.Fatalf("the replica differs:\n%s", strings.Join(lost, "\n"))
	}
	for _, tb := range [][2]string{{`"order lines"`, `"public_order lines"`}, {"narrow", "public_narrow"}} {
		q := "select t::text from %s t order by 1"
		if a, b := tableRows(t, src, fmt.Sprintf(q, tb[0])), tableRows(t, dst, fmt.Sprintf(q, tb[1])); !slices.Equal(a, b) {
			d, _ := firstDiff(a, b)
			t.Fatalf("%s: %s", tb[0], d)
		}
	}
}

// Types change at the source: a widening the target can take (integer to
// bigint, varchar(10) to varchar(30), numeric(8,2) to numeric(12,2), a new
// enum label) reaches the target column before the rows that need it; a
// change it cannot take stops the sink with the column named, and
// dead-letters nothing.
func TestPostgresReplicaFollowsTypeChanges(t *testing.T) {
	srcDSN, src := testDB(t)
	dstDSN, dst := testDB(t)
	ctx := context.Background()
	exec := func(q string) { t.Helper(); testdb.Exec(t, src, q) }
	exec(`create type mood as enum ('sad', 'ok');
		create table "OrderItems" (id int primary key, qty int, label varchar(10), price numeric(8,2), feel mood);
		insert into "OrderItems" values (1, 1, 'one', 1.50, 'ok')`)
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: ['public."OrderItems"'], topic_prefix: shop}
  - name: replica
    plugin: postgres-sink
    topics: [shop.public.OrderItems]
    errors: {tolerance: all, dead_letter_topic: replica.dlq}
    config: {dsn: %q}
`, srcDSN, dstDSN))
	topics := []string{"shop.public.OrderItems"}
	offsets := pgOffsets(dst, "replica")
	p.waitChanges(t, "shop.public.OrderItems", 1)
	sinkDone(t, p, "replica", topics, offsets)
	exec(`alter table "OrderItems" alter column qty type bigint, alter column label type varchar(30), alter column price type numeric(12,2);
		alter type mood add value 'ecstatic'`)
	exec(`insert into "OrderItems" values (2, 5000000000, 'a label of 22 letters', 1234567890.12, 'ecstatic')`)
	waitSlot(t, src, "eddy_pg", time.Minute)
	sinkDone(t, p, "replica", topics, offsets)
	q := `select concat_ws(' ', id, qty, label, price, feel, (select string_agg(format_type(atttypid, atttypmod), ',' order by attnum)
		from pg_attribute where attrelid = '%s'::regclass and attnum > 0 and not attisdropped)) from %s order by id`
	want := tableRows(t, src, fmt.Sprintf(q, `"OrderItems"`, `"OrderItems"`))
	if got := tableRows(t, dst, fmt.Sprintf(q, `"public_OrderItems"`, `"public_OrderItems"`)); !slices.Equal(got, want) {
		t.Fatalf("after the widening:\nsource %v\ntarget %v", want, got)
	}

	// A label added with no DDL on the table (no Relation message says so).
	exec(`alter type mood add value 'meh'`)
	exec(`insert into "OrderItems" values (4, 4, 'four', 4, 'meh')`)
	waitSlot(t, src, "eddy_pg", time.Minute)
	sinkDone(t, p, "replica", topics, offsets)
	var feel string
	dst.QueryRow(ctx, `select feel::text from "public_OrderItems" where id = 4`).Scan(&feel)
	if feel != "meh" {
		t.Fatalf("row 4's feel in the target: %q", feel)
	}

	// A change no wider type takes: the sink stops, naming the column.
	exec(`alter table "OrderItems" alter column label type integer using length(label)`)
	exec(`insert into "OrderItems" values (3, 3, 3, 3, 'sad')`)
	waitFailed(t, p, "replica", "column public_OrderItems.label is character varying(30) in the target, and the source's is now integer")
	noDeadLetters(t, p, "replica.dlq")
}

// A PostgreSQL table of many types replicated into MariaDB: each column
// gets the nearest MariaDB type (docs/sinks-sql.md), and the values
// arrive.
func TestPostgresToMariaDBTypes(t *testing.T) {
	srcDSN, src := shapesDB(t)
	myDSN, my := mariaDB(t)
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [wide, 'public."order lines"'], topic_prefix: shop}
  - name: replica
    plugin: mysql-sink
    topics: [shop.public.wide, shop.public.order_lines]
    config: {dsn: %q}
`, srcDSN, myDSN))
	p.waitChanges(t, "shop.public.wide", 41)
	sinkDone(t, p, "replica", []string{"shop.public.wide", "shop.public.order_lines"}, mariaOffsets(my, "replica"))
	want := map[string]string{
		"id": "bigint(20)", "n": "int(11)", "s": "smallint(6)", "amount": "decimal(20,5)", "ratio": "longtext", "r": "float", "d": "double",
		"c5": "char(5)", "vc": "varchar(20)", "body": "longtext", "doc": "longtext", "js": "longtext", "blob": "longblob", "day": "date",
		"at": "datetime(6)", "atz": "datetime(6)", "tod": "time(6)", "todz": "longtext", "span": "longtext", "u": "char(36)", "ip": "varchar(43)",
		"mac": "varchar(23)", "ints": "longtext", "words": "longtext", "feel": "enum('sad','ok','happy')", "pos": "int(11)", "cash": "longtext",
		"bits": "longtext", "rng": "longtext", "pt": "longtext", "x": "longtext", "flag": "tinyint(1)",
	}
	res, err := my.Execute("select column_name, column_type from information_schema.columns where table_schema = database() and table_name = 'public_wide'")
	if err != nil {
		t.Fatal(err)
	}
	var wrong []string
	for i := range res.RowNumber() {
		name, _ := res.GetString(i, 0)
		typ, _ := res.GetString(i, 1)
		if want[name] != typ {
			wrong = append(wrong, fmt.Sprintf("%s: %s, want %s", name, typ, want[name]))
		}
	}
	if len(wrong) > 0 || res.RowNumber() != len(want) {
		t.Fatalf("%d columns; types:\n%s", res.RowNumber(), strings.Join(wrong, "\n"))
	}
	a := tableRows(t, src, `select concat_ws(' ', id, n, s, amount, round(r::numeric, 3), rtrim(c5), vc, md5(body), encode(sha256(blob), 'hex'), day, to_char(at, 'YYYY-MM-DD HH24:MI:SS.US'), u, ip, feel, pos, flag::int) from wide order by id`)
	b := mariaText(t, my, "select concat_ws(' ', id, n, s, amount, round(r, 3), c5, vc, md5(body), sha2(`blob`, 256), day, at, u, ip, feel, pos, flag) from public_wide order by id")
	if !slices.Equal(a, b) {
		d, _ := firstDiff(a, b)
		t.Fatalf("wide in MariaDB: %s", d)
	}
	a = tableRows(t, src, `select concat_ws(' ', order_id, line_no, qty, note) from "order lines" order by 1`)
	b = mariaText(t, my, "select concat_ws(' ', order_id, line_no, qty, note) from `public_order lines` order by 1")
	if !slices.Equal(a, b) {
		d, _ := firstDiff(a, b)
		t.Fatalf("order lines in MariaDB: %s", d)
	}
}

// Two tables whose names map to one topic are refused, naming both.
func TestPostgresTopicCollisionRefused(t *testing.T) {
	dsn, conn := testDB(t)
	if _, err := conn.Exec(context.Background(), `create table "a b" (id int primary key); create table a_b (id int primary key)`); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: ['public.a*'], topic_prefix: shop}
`, dsn))
	waitFailed(t, p, "pg", "tables public.a b and public.a_b would both write to topic shop.public.a_b")
}

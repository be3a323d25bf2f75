package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/testdb"
	elog "github.com/eddy-cdc/eddy/log"
)

// bigValues are text, jsonb and bytea values PostgreSQL stores out of
// line (TOAST), different for each seed: md5 text compresses poorly.
const bigValues = `(select string_agg(md5((%[1]s * 1000 + h)::text), '') from generate_series(1, 400) h),
	jsonb_build_object('k', %[1]s, 'big', (select string_agg(md5((%[1]s * 7 + h)::text), '') from generate_series(1, 300) h)),
	(select string_agg(decode(md5((%[1]s + h)::text), 'hex'), '') from generate_series(1, 600) h)`

// pgOffsets reads the sum of what eddy_offsets holds for a sink connector
// in a PostgreSQL target (for sinkDone).
func pgOffsets(conn *pgx.Conn, connector string) func() int64 {
	return func() int64 {
		var n int64
		conn.QueryRow(context.Background(), "select coalesce(sum(next_offset), 0) from eddy_offsets where connector = $1", connector).Scan(&n)
		return n
	}
}

// mariaOffsets is pgOffsets for a MariaDB target; -1 while it cannot tell.
func mariaOffsets(c *client.Conn, connector string) func() int64 {
	return func() int64 {
		res, err := c.Execute("select coalesce(sum(next_offset), 0) from eddy_offsets where connector = ?", connector)
		if err != nil {
			return -1
		}
		n, _ := res.GetInt(0, 0)
		return n
	}
}

// noDeadLetters fails the test if the topic holds any record.
func noDeadLetters(t *testing.T, p *pipeline, topic string) {
	t.Helper()
	tp, err := p.log.Topic(topic)
	if err != nil {
		return // never created: nothing was dead-lettered
	}
	for i := range tp.Partitions() {
		part, _ := tp.Partition(i)
		if n := part.HighWatermark(); n != 0 {
			t.Fatalf("%d records dead-lettered to %s/%d", n, topic, i)
		}
	}
}

// waitFailed waits until connector name is FAILED (30 seconds at most)
// and checks that its error says each of wants.
func waitFailed(t *testing.T, p *pipeline, name string, wants ...string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, _ := p.w.Status(name)
		if st.Tasks[0].State == connect.StateFailed {
			for _, w := range wants {
				if !strings.Contains(st.Tasks[0].Trace, w) {
					t.Fatalf("%s failed, but its error does not say %q: %s", name, w, st.Tasks[0].Trace)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not fail: %+v", name, st.Tasks)
		}
	}
}

// sinkDone waits until connector name has delivered every record of the
// topics to its target (sumOffsets reads what eddy_offsets holds there).
func sinkDone(t *testing.T, p *pipeline, name string, topics []string, sumOffsets func() int64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		st, _ := p.w.Status(name)
		if st.Tasks[0].State == connect.StateFailed {
			t.Fatalf("%s failed: %s", name, st.Tasks[0].Trace)
		}
		var want int64
		for _, topic := range topics {
			if tp, err := p.log.Topic(topic); err == nil {
				for i := range tp.Partitions() {
					part, _ := tp.Partition(i)
					want += part.HighWatermark()
				}
			}
		}
		got := sumOffsets()
		if want > 0 && got == want {
			return
		}
		if time.Now().After(deadline) {
			st, _ := p.w.Status(name)
			t.Fatalf("%s: eddy_offsets sum to %d, the log holds %d; %+v", name, got, want, st.Tasks)
		}
	}
}

// An update that leaves values stored out of line unchanged does not carry
// them; both database sinks leave those columns as the target has them,
// in batches of every size and path (1 row, 63 rows in one multi-row
// statement, 200 rows through COPY, a create and later updates of one key
// in one batch), and the event names the columns in a header.
func TestToastUnchangedKeepsTargetValues(t *testing.T) {
	srcDSN, src := testDB(t)
	pgDSN, pgDst := testDB(t)
	myDSN, myDst := mariaDB(t)
	ctx := context.Background()
	exec := func(q string) { t.Helper(); testdb.Exec(t, src, q) }
	exec(`create table doc (id int primary key, n int not null, body text, j jsonb, b bytea)`)
	exec(`create table note (id int, k int, s text, primary key (id, k))`) // a second shape in the same connector
	exec(fmt.Sprintf(`insert into doc select g, 0, %s from generate_series(1, 400) g`, fmt.Sprintf(bigValues, "g")))
	exec(`insert into note select g, 1, 'n' || g from generate_series(1, 20) g`)
	var toast string
	var stored int
	src.QueryRow(ctx, `select reltoastrelid::regclass::text from pg_class where oid = 'doc'::regclass`).Scan(&toast)
	src.QueryRow(ctx, `select count(distinct chunk_id) from `+toast).Scan(&stored)
	if stored < 3*400 {
		t.Fatalf("%d values of 400 rows are out of line, want 1200", stored)
	}
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
topics:
  - {name: shop.public.doc, partitions: 2}
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [doc, note], topic_prefix: shop}
  - name: to-pg
    plugin: postgres-sink
    topics: [shop.public.doc, shop.public.note]
    config: {dsn: %q}
  - name: to-my
    plugin: mysql-sink
    topics: [shop.public.doc, shop.public.note]
    config: {dsn: %q}
`, srcDSN, pgDSN, myDSN))
	topics := []string{"shop.public.doc", "shop.public.note"}
	caughtUp := func() {
		t.Helper()
		waitSlot(t, src, "eddy_pg", time.Minute)
		sinkDone(t, p, "to-pg", topics, pgOffsets(pgDst, "to-pg"))
		sinkDone(t, p, "to-my", topics, mariaOffsets(myDst, "to-my"))
	}
	caughtUp()
	steps := []string{
		`update doc set n = n + 1 where id = 1`,                // one row: a multi-row statement of one
		`update doc set n = n + 1 where id between 2 and 64`,   // 63 rows
		`update doc set n = n + 1 where id between 65 and 264`, // 200 rows: COPY and merge
		// A create and later updates of one key in one batch: the
		// create is not in the target yet, so the updates take its values.
		`begin; insert into doc values (1000, 0, ` + fmt.Sprintf(bigValues, "1000") + `); update doc set n = n + 1 where id = 1000; update doc set n = n + 1 where id in (1000, 3); update note set s = s || '!' where id = 1; commit`,
		// Updates that do change the big values, among unchanged ones.
		`update doc set n = n + 1, body = body || 'x' where id % 50 = 0`,
		`update doc set n = n + 1, j = j || '{"more": 1}' where id % 70 = 0`,
	}
	for _, q := range steps {
		exec(q)
		caughtUp()
	}
	want := tableRows(t, src, `select concat_ws(' ', id, n, md5(body), md5(j::text), md5(b)) from doc order by id`)
	if got := tableRows(t, pgDst, `select concat_ws(' ', id, n, md5(body), md5(j::text), md5(b)) from public_doc order by id`); !slices.Equal(got, want) {
		d, _ := firstDiff(want, got)
		t.Fatalf("postgres-sink: %s", d)
	}
	if got := mariaText(t, myDst, `select concat_ws(' ', id, n, md5(body), md5(j), md5(b)) from public_doc order by id`); !slices.Equal(got, want) {
		d, _ := firstDiff(want, got)
		t.Fatalf("mysql-sink: %s", d)
	}
	// The events say which columns they lack.
	var headed int
	tp, _ := p.log.Topic("shop.public.doc")
	for i := range tp.Partitions() {
		part, _ := tp.Partition(i)
		for _, r := range readRecords(t, part) {
			rec := connect.Record{Headers: r.Headers}
			if h := rec.Header(connect.HeaderUnavailable); h != nil {
				if !slices.Contains([]string{"body,j,b", "j,b", "body,b"}, string(h)) {
					t.Fatalf("header %s = %q", connect.HeaderUnavailable, h)
				}
				headed++
			}
		}
	}
	if headed < 264 {
		t.Fatalf("%d events name unavailable columns, want at least 264", headed)
	}
}

// A change that lacks out-of-line values for a row the target does not
// have (the sink started after the snapshot, say) fails the sink with the
// reason; nothing is written with a placeholder.
func TestToastUnchangedWithoutTargetRowFails(t *testing.T) {
	srcDSN, src := testDB(t)
	pgDSN, pgDst := testDB(t)
	ctx := context.Background()
	if _, err := src.Exec(ctx, fmt.Sprintf(`create table doc (id int primary key, n int not null, body text, j jsonb, b bytea);
		insert into doc select g, 0, %s from generate_series(1, 3) g`, fmt.Sprintf(bigValues, "g"))); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [doc], topic_prefix: shop, snapshot: never}
  - name: to-pg
    plugin: postgres-sink
    topics: [shop.public.doc]
    config: {dsn: %q}
`, srcDSN, pgDSN))
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var active bool
		src.QueryRow(ctx, "select coalesce(bool_or(active), false) from pg_replication_slots where slot_name = 'eddy_pg'").Scan(&active)
		if active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the source did not start streaming")
		}
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := src.Exec(ctx, "insert into doc values (10, 0, 'small', '{}', '\\x00'); update doc set n = 1 where id in (2, 10)"); err != nil {
		t.Fatal(err)
	}
	waitFailed(t, p, "to-pg", "the target has no row to keep the missing columns from", "body, j, b")
	var placeholders int
	pgDst.QueryRow(ctx, "select count(*) from public_doc where body like '%unavailable%'").Scan(&placeholders)
	if placeholders != 0 {
		t.Fatalf("%d rows hold the placeholder", placeholders)
	}
}

// mariaText renders a MariaDB query's rows as tableRows renders
// PostgreSQL's: the columns' text joined by spaces.
func mariaText(t *testing.T, c *client.Conn, q string) []string {
	t.Helper()
	res, err := c.Execute(q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := range res.RowNumber() {
		parts := make([]string, res.ColumnNumber())
		for j := range parts {
			parts[j], _ = res.GetString(i, j)
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

// readRecords reads a partition's records as stored (headers and all).
func readRecords(t testing.TB, part *elog.Partition) []elog.Record {
	t.Helper()
	var out []elog.Record
	for off := part.LogStartOffset(); off < part.HighWatermark(); {
		res, err := part.Fetch(off, 4<<20)
		if err != nil {
			t.Fatal(err)
		}
		if out, err = elog.DecodeBatches(out, res.Data, off); err != nil {
			t.Fatal(err)
		}
		off = res.NextOffset
	}
	return out
}

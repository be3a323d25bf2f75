package clean_test

import (
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/testdb"
	"github.com/eddy-cdc/eddy/outbox"
	"github.com/eddy-cdc/eddy/outbox/clean"
)

func params(t *testing.T, plugin string, values map[string]any) connect.Params {
	t.Helper()
	cat, err := connect.BuiltinCatalog()
	if err != nil {
		t.Fatal(err)
	}
	p, err := connect.NewParams(cat.Plugin(plugin), values)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newJob(t *testing.T, values map[string]any, peer connect.Peer, position func(string) ([]byte, bool)) *clean.Job {
	t.Helper()
	if position == nil {
		position = func(string) ([]byte, bool) { return nil, false }
	}
	j, err := clean.New(params(t, "outbox-clean", values), connect.JobEnv{Job: "clean", Logger: slog.New(slog.DiscardHandler),
		Peers: func() []connect.Peer { return []connect.Peer{peer} }, SourcePosition: position})
	if err != nil {
		t.Fatal(err)
	}
	return j.(*clean.Job)
}

func writeEvents(t *testing.T, ctx context.Context, conn *pgx.Conn, w *outbox.Writer, n int) {
	t.Helper()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := w.Write(ctx, tx, outbox.Event{AggregateType: "order", AggregateID: "a", Type: "T", Payload: []byte(`{"i":` + string(rune('0'+i%10)) + `}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), "select count(*) from outbox").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// PostgreSQL: the job deletes nothing while the connector's slot is
// behind the rows, everything once it is past them, in batches; a table
// outside the publication is refused.
func TestPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.Postgres(t, "eddy_clean")
	conn := testdb.Connect(t, dsn)
	w, _ := outbox.New(outbox.Config{Dialect: outbox.Postgres})
	if err := w.Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	var db string
	conn.QueryRow(ctx, "select current_database()").Scan(&db)
	slot := strings.ReplaceAll(db, "-", "_") + "_slot"
	testdb.Exec(t, conn, "create publication clean_pub for table outbox")
	testdb.Exec(t, conn, "select pg_create_logical_replication_slot($1, 'test_decoding')", slot)
	t.Cleanup(func() {
		c := testdb.Connect(t, dsn)
		c.Exec(context.Background(), "select pg_drop_replication_slot($1)", slot)
	})
	peer := connect.Peer{Name: "pg", Plugin: "postgres-source", Params: params(t, "postgres-source",
		map[string]any{"dsn": dsn, "tables": []any{"public.outbox"}, "slot": slot, "publication": "clean_pub"})}
	j := newJob(t, map[string]any{"connector": "pg", "wait": "0s", "batch_size": 7}, peer, nil)
	writeEvents(t, ctx, conn, w, 50)

	if err := j.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if run := j.Last(); run.Cleaned != 0 || run.Pending != 50 || run.Captured {
		t.Fatalf("the slot is behind every row, yet the run did %+v", run)
	}
	if n := count(t, conn); n != 50 {
		t.Fatalf("%d rows left of 50, none captured", n)
	}
	if v := testutil.ToFloat64(find(t, j, "eddy_outbox_oldest_pending_seconds")); v <= 0 {
		t.Errorf("oldest pending age %v, want > 0", v)
	}

	// The slot confirmed past the rows (as postgres-source confirms once
	// they are durable): all go, 7 at a time.
	testdb.Exec(t, conn, "select pg_replication_slot_advance($1, pg_current_wal_lsn())", slot)
	writeEvents(t, ctx, conn, w, 3) // after the slot's position: stay
	// The new rows' commit is past the slot, so this run waits for
	// capture (wait 0: it gives up at once) and deletes nothing: a run
	// deletes only once capture is past all it sees.
	if err := j.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if run := j.Last(); run.Cleaned != 0 || run.Pending != 53 {
		t.Fatalf("rows after the slot's position are in the snapshot: want nothing cleaned, got %+v", run)
	}
	testdb.Exec(t, conn, "select pg_replication_slot_advance($1, pg_current_wal_lsn())", slot)
	if err := j.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if run := j.Last(); run.Cleaned != 53 || run.Pending != 0 || !run.Captured {
		t.Fatalf("after the slot passed every row: %+v", run)
	}
	if n := count(t, conn); n != 0 {
		t.Fatalf("%d rows left", n)
	}
	if v := testutil.ToFloat64(find(t, j, "eddy_outbox_cleaned_rows_total")); v != 53 {
		t.Errorf("cleaned counter %v, want 53", v)
	}

	// A table the publication does not carry is never cleaned.
	testdb.Exec(t, conn, "create table other_outbox (like outbox including all)")
	bad := newJob(t, map[string]any{"connector": "pg", "table": "other_outbox", "wait": "0s"}, peer, nil)
	if err := bad.Run(ctx); err == nil || !strings.Contains(err.Error(), "not in publication clean_pub") {
		t.Fatalf("a table outside the publication: %v", err)
	}
	_, err := clean.New(params(t, "outbox-clean", map[string]any{"connector": "nope"}), connect.JobEnv{
		Peers: func() []connect.Peer { return []connect.Peer{peer} }, SourcePosition: func(string) ([]byte, bool) { return nil, false }})
	if err == nil || !strings.Contains(err.Error(), `connector: "nope" is not a configured connector`) {
		t.Fatalf("an unknown connector: %v", err)
	}
}

// MariaDB: nothing goes while the connector has no stream position past
// the snapshot's binlog end; a table outside its tables is refused.
func TestMariaDB(t *testing.T) {
	ctx := context.Background()
	name := testdb.MariaDB(t, "eddy_clean")
	db, err := sql.Open("mysql", "root@tcp("+testdb.MariaAddr+")/"+name)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w, _ := outbox.New(outbox.Config{Dialect: outbox.MySQL})
	if err := w.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	tx, _ := db.BeginTx(ctx, nil)
	for range 5 {
		if err := w.Write(ctx, tx, outbox.Event{AggregateType: "order", AggregateID: "a", Type: "T", Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	peer := connect.Peer{Name: "maria", Plugin: "mysql-source", Params: params(t, "mysql-source",
		map[string]any{"dsn": "mysql://root@" + testdb.MariaAddr, "tables": []any{name + ".*"}})}
	j := newJob(t, map[string]any{"connector": "maria", "table": name + ".outbox", "wait": "0s"}, peer,
		func(string) ([]byte, bool) { return nil, false })
	if err := j.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if run := j.Last(); run.Cleaned != 0 || run.Pending != 5 {
		t.Fatalf("with nothing captured the run did %+v", run)
	}
	bad := newJob(t, map[string]any{"connector": "maria", "table": "elsewhere.outbox"}, peer,
		func(string) ([]byte, bool) { return nil, false })
	if err := bad.Run(ctx); err == nil || !strings.Contains(err.Error(), "not among the tables of connector maria") {
		t.Fatalf("a table the connector does not capture: %v", err)
	}
}

// find is the job's series of that name, as a collector of one.
func find(t *testing.T, j *clean.Job, name string) prometheus.Collector {
	t.Helper()
	ch := make(chan prometheus.Metric, 10)
	j.Collect(ch)
	close(ch)
	for m := range ch {
		if strings.Contains(m.Desc().String(), `"`+name+`"`) {
			return single{m}
		}
	}
	t.Fatalf("no series %s", name)
	return nil
}

type single struct{ m prometheus.Metric }

func (s single) Describe(ch chan<- *prometheus.Desc) { ch <- s.m.Desc() }
func (s single) Collect(ch chan<- prometheus.Metric) { ch <- s.m }

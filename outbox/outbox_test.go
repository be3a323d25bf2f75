package outbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/eddy-cdc/eddy/internal/testdb"
	"github.com/eddy-cdc/eddy/outbox"
)

type row struct {
	id, aggType, aggID, typ string
	payload, headers        sql.NullString
}

type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// collect reads rows of (id, aggregatetype, aggregateid, type, payload,
// headers) from pgx or database/sql.
func collect(t *testing.T, rs rowScanner, err error) []row {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	var out []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.id, &r.aggType, &r.aggID, &r.typ, &r.payload, &r.headers); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func pgRows(t *testing.T, c *pgx.Conn, table string) []row {
	t.Helper()
	rs, err := c.Query(context.Background(), "select id::text, aggregatetype, aggregateid, type, payload::text, headers::text from "+table+" order by id")
	if err == nil {
		defer rs.Close()
	}
	return collect(t, rs, err)
}

func sameJSON(t *testing.T, got sql.NullString, want string) {
	t.Helper()
	if want == "" {
		if got.Valid {
			t.Errorf("got %s, want NULL", got.String)
		}
		return
	}
	var g, w any
	if err := json.Unmarshal([]byte(got.String), &g); err != nil || !got.Valid {
		t.Fatalf("got %v (%v), want %s", got, err, want)
	}
	json.Unmarshal([]byte(want), &w)
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("got %s, want %s", gb, wb)
	}
}

func events() []outbox.Event {
	return []outbox.Event{
		{AggregateType: "order", AggregateID: "42", Type: "OrderCreated", Payload: []byte(`{"id":42,"total":"9.90","note":"crème brûlée ☕"}`)},
		{AggregateType: "order", AggregateID: "42", Type: "OrderPaid", Payload: []byte(`{"id":42,"paid":true}`), Headers: map[string]string{"trace": "t-1", "tenant": "ü"}},
		{AggregateType: "customer", AggregateID: "c/7", Type: "CustomerDeleted"}, // no payload: NULL
	}
}

// Table mode on PostgreSQL through pgx: the table from Migrate (twice:
// idempotent), events committed with the transaction, none from one
// rolled back, ids UUIDv7 set in place.
func TestPostgresTable(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.Postgres(t, "outbox")
	c := testdb.Connect(t, dsn)
	w, err := outbox.New(outbox.Config{Dialect: outbox.Postgres})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := w.Migrate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	testdb.Exec(t, c, "create table orders (id int primary key)")

	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx.Exec(ctx, "insert into orders values (1)")
	if err := w.Write(ctx, tx, outbox.Event{AggregateType: "order", AggregateID: "1", Type: "OrderCreated", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	tx.Rollback(ctx)

	evs := events()
	tx, err = c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx.Exec(ctx, "insert into orders values (42)")
	if err := w.Write(ctx, tx, evs...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	checkRows(t, pgRows(t, c, "outbox"), evs)
}

func checkRows(t *testing.T, got []row, evs []outbox.Event) {
	t.Helper()
	if len(got) != len(evs) {
		t.Fatalf("%d rows, want %d: %+v", len(got), len(evs), got)
	}
	for i, e := range evs {
		if e.ID.Version() != 7 {
			t.Errorf("event %d: id %s is not a UUIDv7", i, e.ID)
		}
		r := got[i] // UUIDv7s sort in the order made
		if r.id != e.ID.String() || r.aggType != e.AggregateType || r.aggID != e.AggregateID || r.typ != e.Type {
			t.Errorf("row %d: %+v, want %+v", i, r, e)
		}
		sameJSON(t, r.payload, string(e.Payload))
		want := ""
		if e.Headers != nil {
			b, _ := json.Marshal(e.Headers)
			want = string(b)
		}
		sameJSON(t, r.headers, want)
	}
}

// database/sql on PostgreSQL (pgx's stdlib) into a table made for
// Debezium, in a schema, without the headers column: events without
// headers go in; one with headers is refused with the database's reason,
// and the transaction is the application's to roll back.
func TestPostgresSQLDebeziumTable(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.Postgres(t, "outbox")
	c := testdb.Connect(t, dsn)
	testdb.Exec(t, c, `create schema app`)
	testdb.Exec(t, c, `create table app.outboxevent (id uuid not null primary key, aggregatetype varchar(255) not null,
		aggregateid varchar(255) not null, type varchar(255) not null, payload jsonb)`)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w, err := outbox.New(outbox.Config{Dialect: outbox.Postgres, Table: "app.outboxevent"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Migrate(ctx, db); err != nil { // the table is there: left alone
		t.Fatal(err)
	}
	given := uuid.MustParse("0190a1b2-0000-7000-8000-000000000001")
	evs := []outbox.Event{{ID: given, AggregateType: "order", AggregateID: "9", Type: "OrderShipped", Payload: []byte(`[1,2,3]`)}}
	writeSQL(t, db, w, true, evs...)
	if evs[0].ID != given {
		t.Fatalf("a given id was replaced: %s", evs[0].ID)
	}
	got := sqlRows(t, db, "select id::text, aggregatetype, aggregateid, type, payload::text, null from app.outboxevent")
	if len(got) != 1 || got[0].id != given.String() {
		t.Fatalf("rows %+v", got)
	}
	sameJSON(t, got[0].payload, `[1,2,3]`)

	tx, _ := db.BeginTx(ctx, nil)
	defer tx.Rollback()
	err = w.Write(ctx, tx, outbox.Event{AggregateType: "order", AggregateID: "9", Type: "X", Headers: map[string]string{"a": "b"}})
	if err == nil || !strings.Contains(err.Error(), "headers") {
		t.Fatalf("headers into a table without the column: %v", err)
	}
}

func sqlRows(t *testing.T, db *sql.DB, q string) []row {
	t.Helper()
	rs, err := db.QueryContext(context.Background(), q)
	if err == nil {
		defer rs.Close()
	}
	return collect(t, rs, err)
}

// writeSQL writes events in a database/sql transaction, then commits it
// or rolls it back.
func writeSQL(t *testing.T, db *sql.DB, w *outbox.Writer, commit bool, evs ...outbox.Event) {
	t.Helper()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(context.Background(), tx, evs...); err != nil {
		t.Fatal(err)
	}
	if !commit {
		tx.Rollback()
	} else if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// MariaDB through go-sql-driver/mysql: Migrate (twice), a commit and a
// rollback.
func TestMariaDBTable(t *testing.T) {
	ctx := context.Background()
	name := testdb.MariaDB(t, "outbox")
	db, err := sql.Open("mysql", "root@tcp("+testdb.MariaAddr+")/"+name)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w, err := outbox.New(outbox.Config{Dialect: outbox.MySQL})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := w.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	writeSQL(t, db, w, false, outbox.Event{AggregateType: "order", AggregateID: "1", Type: "OrderCreated", Payload: []byte(`{}`)})
	evs := events()
	writeSQL(t, db, w, true, evs...)
	checkRows(t, sqlRows(t, db, "select id, aggregatetype, aggregateid, type, payload, headers from outbox order by id"), evs)
}

// Message mode: the events are in the WAL as transactional messages (read
// here with test_decoding), a rolled-back one is not, and no table exists.
func TestPostgresMessages(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.Postgres(t, "outbox")
	c := testdb.Connect(t, dsn)
	w, err := outbox.New(outbox.Config{Dialect: outbox.Postgres, Mode: outbox.ModeMessage, Prefix: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	if ddl := w.Schema(); ddl != "" {
		t.Fatalf("message mode has a table: %s", ddl)
	}
	testdb.Exec(t, c, "select pg_create_logical_replication_slot('outbox_msgs', 'test_decoding')")
	tx, _ := c.Begin(ctx)
	if err := w.Write(ctx, tx, outbox.Event{AggregateType: "order", AggregateID: "rolled", Type: "X"}); err != nil {
		t.Fatal(err)
	}
	tx.Rollback(ctx)
	evs := events()
	tx, _ = c.Begin(ctx)
	if err := w.Write(ctx, tx, evs...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rs, err := c.Query(ctx, "select data from pg_logical_slot_get_changes('outbox_msgs', null, null) where data like 'message:%'")
	if err != nil {
		t.Fatal(err)
	}
	datas, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(datas) != len(evs) {
		t.Fatalf("%d messages, want %d: %q", len(datas), len(evs), datas)
	}
	for i, d := range datas {
		if !strings.HasPrefix(d, "message: transactional: 1 prefix: shop,") {
			t.Errorf("message %d: %s", i, d)
		}
		_, content, _ := strings.Cut(d, "content:")
		var m outbox.Message
		if err := json.Unmarshal([]byte(content), &m); err != nil {
			t.Fatalf("message %d: %v: %s", i, err, content)
		}
		e := evs[i]
		if m.ID != e.ID.String() || m.AggregateType != e.AggregateType || m.AggregateID != e.AggregateID || m.Type != e.Type || len(m.Headers) != len(e.Headers) {
			t.Errorf("message %d: %+v, want %+v", i, m, e)
		}
		want := string(e.Payload)
		if want == "" {
			want = "null"
		}
		sameJSON(t, sql.NullString{String: string(m.Payload), Valid: true}, want)
	}
}

// Bad events are refused before anything is written, naming the event.
func TestRefused(t *testing.T) {
	w, err := outbox.New(outbox.Config{Dialect: outbox.Postgres})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		e    outbox.Event
		want string
	}{
		{outbox.Event{AggregateID: "1"}, "no AggregateType"},
		{outbox.Event{AggregateType: "order"}, "no AggregateID"},
		{outbox.Event{AggregateType: "order", AggregateID: "1", Payload: []byte(`{"a":`)}, "not JSON"},
	} {
		err := w.Write(context.Background(), nil, outbox.Event{AggregateType: "ok", AggregateID: "0"}, c.e)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "event 1") {
			t.Errorf("%+v: %v, want %q", c.e, err, c.want)
		}
	}
	if err := w.Write(context.Background(), nil, outbox.Event{AggregateType: "ok", AggregateID: "0"}); err == nil || !strings.Contains(err.Error(), "no transaction") {
		t.Errorf("nil tx: %v", err)
	}
	if err := w.Write(context.Background(), 42, outbox.Event{AggregateType: "ok", AggregateID: "0"}); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("an int tx: %v", err)
	}
	for _, cfg := range []outbox.Config{{Dialect: "oracle"}, {Dialect: outbox.MySQL, Mode: outbox.ModeMessage}, {Dialect: outbox.Postgres, Table: "a.b.c"}, {Dialect: outbox.Postgres, Mode: "queue"}} {
		if _, err := outbox.New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
